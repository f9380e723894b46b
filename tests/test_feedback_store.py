"""The corrections store on SQLite and on a real PostgreSQL server, through one code path."""

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.errors import StoreFullError, StoreUnavailableError
from app.feedback.store import SQLITE_FILE, Record, Store, alembic_config, classify, metadata

FRAME = bytes(784)


def record(
    image: bytes, label: str = "7", *, digit: int = 7, rejected: bool = False, version: str = "v1"
) -> Record:
    return Record(image, label, FRAME, digit, rejected, version, "0" * 64, source="test")


@pytest.fixture
def store(store_url: str | None, tmp_path: Path):
    opened = Store.open(store_url, tmp_path)
    yield opened
    opened.close()


def test_store_migrates_an_empty_database_to_the_newest_revision(store: Store) -> None:
    store.migrate()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == head
        # The migrations build exactly the tables the code reads and writes.
        assert compare_metadata(context, metadata) == []


def test_store_keeps_an_image_once_per_label(store: Store) -> None:
    first, new = store.add(record(b"image one", "7"))
    again, new_again = store.add(record(b"image one", "7"))
    other_label, _ = store.add(record(b"image one", "1"))
    assert (new, new_again, again) == (True, False, first)
    assert other_label != first
    assert [row["label"] for row in store.records()] == ["7", "1"]


def test_store_counts_agreement_by_model_version(store: Store) -> None:
    store.add(record(b"a", "7", digit=7))  # agreed
    store.add(record(b"b", "7", digit=1))  # misread
    store.add(record(b"c", "7", digit=7, rejected=True))  # rejected a digit
    store.add(record(b"d", "none", digit=3, rejected=True))  # rejected a non-digit: agreed
    store.add(record(b"e", "2", digit=2, version="v2"))
    stats = store.stats()
    assert stats["total"] == 5
    assert stats["by_label"] == {"2": 1, "7": 3, "none": 1}
    assert stats["by_model_version"]["v1"] == {"count": 4, "agreed": 2, "agreement": 0.5}
    assert stats["by_model_version"]["v2"]["agreement"] == 1.0


def test_store_deletes_one_record(store: Store) -> None:
    kept, _ = store.add(record(b"kept"))
    gone, _ = store.add(record(b"gone"))
    assert store.delete(gone) is True
    assert store.delete(gone) is False
    assert [row["id"] for row in store.records()] == [kept]


def test_store_refuses_an_unknown_label_in_the_database_itself(store: Store) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        store.add(record(b"x", "11"))
    assert store.records() == []


def test_store_pages_records_in_id_order(store: Store) -> None:
    ids = [store.add(record(bytes([i])))[0] for i in range(5)]
    assert [row["id"] for row in store.records(after=ids[1], limit=2)] == ids[2:4]
    assert store.records()[0]["created"].tzinfo is not None


WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from app.feedback.store import Record, Store
    url, directory, worker = (sys.argv[1] or None), Path(sys.argv[2]), int(sys.argv[3])
    store = Store.open(url, directory)
    new = 0
    for i in range(40):
        # Images 0-19 are sent by every worker, the rest by this worker alone.
        image = f"shared {i}" if i < 20 else f"worker {worker} image {i}"
        new += store.add(Record(image.encode(), "5", bytes(784), 5, False, "v1", "0" * 64))[1]
    print(new)
""")


def test_store_takes_concurrent_writes_from_several_processes(
    store_url: str | None, tmp_path: Path
) -> None:
    """Four processes migrate the same empty store at once and write into it together."""
    command = [sys.executable, "-c", WORKER, store_url or "", str(tmp_path)]
    workers = [
        subprocess.Popen([*command, str(n)], stdout=subprocess.PIPE, text=True) for n in range(4)
    ]
    stored = [int(worker.communicate(timeout=120)[0]) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    assert sum(stored) == 20 + 4 * 20  # each shared image once, every own image
    store = Store.open(store_url, tmp_path)
    assert store.stats()["total"] == 100
    store.close()


def test_sqlite_store_is_one_file_in_wal_mode(tmp_path: Path) -> None:
    store = Store.open(None, tmp_path / "data")
    store.add(record(b"x"))
    store.close()
    with sqlite3.connect(tmp_path / "data" / SQLITE_FILE) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_store_full_reports_it_and_keeps_what_is_stored(tmp_path: Path) -> None:
    store = Store.open(None, tmp_path)
    kept, _ = store.add(record(b"small"))
    pages = store.engine.connect().exec_driver_sql("PRAGMA page_count").scalar()
    store.engine.dispose()

    # SQLite's own ceiling on the file's size stands in for a full disk: the same SQLITE_FULL.
    @sa.event.listens_for(store.engine, "connect")
    def limit(connection, _record) -> None:
        connection.execute(f"PRAGMA max_page_count={pages}")

    with pytest.raises(StoreFullError, match="disk is full.*nothing already stored is lost"):
        store.add(record(b"large" * 100_000))
    assert [row["id"] for row in store.records()] == [kept]
    store.close()


def test_store_reports_an_unreachable_postgresql(tmp_path: Path) -> None:
    store = Store.open(f"postgresql://nobody@/lenet5?host={tmp_path}", tmp_path)
    with pytest.raises(
        StoreUnavailableError, match=r"cannot .* the feedback store postgresql\+psycopg"
    ):
        store.add(record(b"x"))
    store.close()


def test_postgresql_password_never_appears_in_errors(tmp_path: Path) -> None:
    store = Store.open(f"postgresql://user:s3cret@/lenet5?host={tmp_path}", tmp_path)
    with pytest.raises(StoreUnavailableError) as raised:
        store.add(record(b"x"))
    assert "s3cret" not in str(raised.value)
    store.close()


def test_store_reports_an_unwritable_sqlite_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = Store.open(None, blocker / "data")
    with pytest.raises(
        StoreUnavailableError, match="cannot upgrade the schema of the feedback store"
    ):
        store.migrate()


def test_postgresql_disk_full_is_reported_as_full() -> None:
    import psycopg.errors

    error = sa.exc.OperationalError("INSERT", {}, psycopg.errors.DiskFull("could not extend"))
    assert isinstance(classify(error, "cannot store"), StoreFullError)


def test_migrate_command_brings_a_deployed_store_to_the_newest_revision(
    store_url: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from model.cli import main as lenet5

    source = ["--url", store_url] if store_url else ["--db", str(tmp_path)]
    assert lenet5(["feedback", "migrate", *source]) == 0
    assert "schema up to date" in capsys.readouterr().out
    store = Store.open(store_url, tmp_path)
    with store.engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
    assert revision == ScriptDirectory.from_config(alembic_config()).get_current_head()
    store.close()


def test_export_command_reads_a_store_as_it_is_and_never_upgrades_it(
    store_url: str | None, tmp_path: Path
) -> None:
    from model.cli import main as lenet5

    source = ["--url", store_url] if store_url else ["--db", str(tmp_path)]
    with pytest.raises(SystemExit, match="cannot read from the feedback store .*feedback"):
        lenet5(["feedback", "export", "--out", str(tmp_path / "out"), *source])
    assert not (tmp_path / "out").exists()
    store = Store.open(store_url, tmp_path, upgrade=False)
    with store.engine.connect() as connection:
        assert sa.inspect(connection).get_table_names() == []  # no schema was made
    store.close()
