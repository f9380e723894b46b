"""The corrections store: one SQLAlchemy Core code path for SQLite and PostgreSQL.

SQLite by default: one file, `feedback.sqlite3`, in the data directory, in WAL mode so that
readers never wait for the writer, with a busy timeout so that several worker processes take
turns at writing instead of failing. PostgreSQL (psycopg 3) when given a `postgresql://` URL,
so that many replicas share one store. The schema is Alembic's (`app/feedback/migrations`),
brought to the newest revision when the store opens.

Every call is blocking and meant for a worker thread (`FeedbackService` runs them in a pool of
its own); each write is one transaction, so a failure leaves nothing half stored. A failure of
the database itself becomes StoreUnavailableError (unreachable, locked too long) or
StoreFullError (disk or quota full), each with a message saying what happened.
"""

import fcntl
import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from app.errors import StoreError, StoreFullError, StoreUnavailableError
from app.feedback.dataset import LABELS, NONE_LABEL

log = logging.getLogger("lenet5.feedback")

SQLITE_FILE = "feedback.sqlite3"
SQLITE_BUSY_MS = 10_000
# PostgreSQL's advisory lock key for migrations: only one replica upgrades at a time.
MIGRATION_LOCK = 0x1E4E75

metadata = sa.MetaData()
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    # sha256 of the upload's bytes followed by the label: the same image with the same label is
    # stored once, the same image with another label is a second opinion and kept.
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("image_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("label", sa.String(4), nullable=False),
    sa.Column("image", sa.LargeBinary(), nullable=False),
    sa.Column("frame", sa.LargeBinary(), nullable=False),  # 28×28 uint8, row-major
    sa.Column("predicted", sa.String(4)),  # what the client says the service answered
    sa.Column("version", sa.String(64)),  # the model version the client names
    sa.Column("source", sa.String(64)),
    sa.Column("model_digit", sa.SmallInteger(), nullable=False),  # the serving model, now
    sa.Column("model_rejected", sa.Boolean(), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False, index=True),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(
        "label IN (" + ", ".join(f"'{label}'" for label in LABELS) + ")", name="label_known"
    ),
)
SUMMARY = [c for c in feedback.columns if c.name not in ("image", "frame")]


@dataclass(frozen=True)
class Record:
    """One correction as it is written."""

    image: bytes
    label: str
    frame: bytes
    model_digit: int
    model_rejected: bool
    model_version: str
    model_sha256: str
    predicted: str | None = None
    version: str | None = None
    source: str | None = None

    @property
    def sha256(self) -> str:
        return record_sha256(self.image, self.label)


def record_sha256(image: bytes, label: str) -> str:
    return hashlib.sha256(image + b"\0" + label.encode()).hexdigest()


def database_url(url: str | None, directory: Path) -> URL:
    """The SQLAlchemy URL: `url` if given (postgresql:// means psycopg 3), else the SQLite file
    in `directory`."""
    if not url:
        return URL.create("sqlite+pysqlite", database=str(directory / SQLITE_FILE))
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def describe(url: URL) -> str:
    """The URL fit for logs and messages: the password hidden."""
    return url.render_as_string(hide_password=True)


class Store:
    def __init__(
        self, url: URL, *, pool_size: int = 4, connect_timeout: float = 5, upgrade: bool = True
    ) -> None:
        """`upgrade`: bring the schema up to date before the first use (the service does;
        a reader such as the export leaves a deployed database as it is)."""
        self.url = url
        self.upgrade = upgrade
        self._migrated = False
        self._lock = threading.Lock()
        if url.get_backend_name() == "sqlite":
            assert url.database
            self.directory: Path | None = Path(url.database).parent
            self.engine = sa.create_engine(
                url, pool_size=pool_size, connect_args={"timeout": SQLITE_BUSY_MS / 1000}
            )
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.directory = None
            self.engine = sa.create_engine(
                url,
                pool_size=pool_size,
                pool_pre_ping=True,
                connect_args={"connect_timeout": max(1, round(connect_timeout))},
            )

    @classmethod
    def open(cls, url: str | None, directory: Path, **kwargs: Any) -> "Store":
        return cls(database_url(url, directory), **kwargs)

    @property
    def name(self) -> str:
        return describe(self.url)

    def _ready(self) -> None:
        if self.upgrade:
            self.migrate()  # at the first use; a no-op after

    def migrate(self) -> None:
        """Bring the schema to the newest revision; several processes may call it at once."""
        with self._lock:
            if self._migrated:
                return
            with self._errors("upgrade the schema of"), self._migration_lock() as connection:
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            self._migrated = True

    @contextmanager
    def _migration_lock(self) -> Iterator[sa.Connection]:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.directory / f"{SQLITE_FILE}.migrate-lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                with self.engine.connect() as connection:
                    yield connection
                    connection.commit()
            return
        with self.engine.connect() as connection:
            connection.execute(sa.select(sa.func.pg_advisory_lock(MIGRATION_LOCK)))
            try:
                yield connection
                connection.commit()
            finally:
                connection.execute(sa.select(sa.func.pg_advisory_unlock(MIGRATION_LOCK)))
                connection.commit()

    def add(self, record: Record) -> tuple[int, bool]:
        """Store `record` unless the same image with the same label is there already:
        (its id, whether it was new)."""
        self._ready()
        row = {
            "sha256": record.sha256,
            "image_sha256": hashlib.sha256(record.image).hexdigest(),
            "label": record.label,
            "image": record.image,
            "frame": record.frame,
            "predicted": record.predicted,
            "version": record.version,
            "source": record.source,
            "model_digit": record.model_digit,
            "model_rejected": record.model_rejected,
            "model_version": record.model_version,
            "model_sha256": record.model_sha256,
            "created": datetime.now(UTC),
        }
        with self._errors("store the correction in"):
            try:
                with self.engine.begin() as connection:
                    new_id = connection.execute(
                        feedback.insert().values(row).returning(feedback.c.id)
                    ).scalar_one()
                return int(new_id), True
            except IntegrityError:
                # The unique sha256 refused a repeat (perhaps sent by another worker just now).
                with self.engine.connect() as connection:
                    existing = connection.execute(
                        sa.select(feedback.c.id).where(feedback.c.sha256 == record.sha256)
                    ).scalar_one_or_none()
                if existing is None:
                    raise
                return int(existing), False

    def delete(self, record_id: int) -> bool:
        self._ready()
        with self._errors("delete from"), self.engine.begin() as connection:
            result = connection.execute(feedback.delete().where(feedback.c.id == record_id))
            return result.rowcount > 0

    def records(self, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Records in id order from `after`, with their frames (not their uploads)."""
        self._ready()
        query = (
            sa.select(*SUMMARY, feedback.c.frame)
            .where(feedback.c.id > after)
            .order_by(feedback.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._errors("read from"), self.engine.connect() as connection:
            # Plain str keys: SQLAlchemy's are a str subclass, which orjson refuses.
            rows = [
                {str(k): v for k, v in row._mapping.items()} for row in connection.execute(query)
            ]
        for row in rows:
            # SQLite keeps no time zone: the times were written in UTC.
            if row["created"].tzinfo is None:
                row["created"] = row["created"].replace(tzinfo=UTC)
        return rows

    def stats(self) -> dict[str, Any]:
        """Counts by label, and how often each model version agreed with the corrections."""
        self._ready()
        c = feedback.c
        # The model agrees when it read the labelled digit and accepted it, or rejected what
        # the correction says is not a digit.
        rejected_non_digit = sa.and_(c.label == NONE_LABEL, c.model_rejected)
        digit = sa.cast(c.model_digit, sa.String)
        read_digit = sa.and_(c.label != NONE_LABEL, sa.not_(c.model_rejected), digit == c.label)
        agrees = sa.case((sa.or_(rejected_non_digit, read_digit), 1), else_=0)
        with self._errors("read from"), self.engine.connect() as connection:
            by_label = connection.execute(
                sa.select(c.label, sa.func.count()).group_by(c.label).order_by(c.label)
            ).all()
            by_version = connection.execute(
                sa.select(c.model_version, sa.func.count(), sa.func.sum(agrees))
                .group_by(c.model_version)
                .order_by(c.model_version)
            ).all()
        total = sum(count for _, count in by_label)
        return {
            "total": total,
            "by_label": {label: count for label, count in by_label},
            "by_model_version": {
                version: {
                    "count": count,
                    "agreed": int(agreed or 0),
                    "agreement": (agreed or 0) / count,
                }
                for version, count, agreed in by_version
            },
        }

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise classify(exc, f"cannot {doing} the feedback store {self.name}") from exc


def classify(exc: Exception, what: str) -> StoreError:
    """StoreFullError for a full disk or quota, StoreUnavailableError for everything else."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    reason = " ".join(str(original).split()) or type(original).__name__
    sqlstate = getattr(original, "sqlstate", None) or ""
    full = (
        sqlstate.startswith("53")  # PostgreSQL: insufficient resources (disk full, out of memory)
        or "disk is full" in reason  # SQLite: SQLITE_FULL
        or getattr(original, "errno", None) == 28  # ENOSPC
    )
    if full:
        return StoreFullError(
            f"{what}: the disk is full ({reason}); nothing already stored is lost"
        )
    return StoreUnavailableError(f"{what}: {reason}")


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL stays consistent after a crash and fsyncs only at checkpoints.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config() -> Config:
    """Alembic's configuration for the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", str(files("app.feedback") / "migrations"))
    return config
