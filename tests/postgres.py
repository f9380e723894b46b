"""A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries, a cluster in a
temporary directory, reached only through a Unix socket in that directory (no TCP port).

PostgreSQL refuses to run as root, so under root (CI) the cluster belongs to the `postgres`
user and every server command runs through `runuser -u postgres --`.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")


def bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob(f"{SEARCH[0]}/pg_ctl"), reverse=True) + glob.glob(
        f"{SEARCH[1]}/pg_ctl"
    )
    return Path(candidates[0]).parent if candidates else None


class Cluster:
    """initdb + pg_ctl start on enter, pg_ctl stop and removal on exit."""

    def __init__(self, bin_dir: Path, *, durable: bool = False) -> None:
        self.bin = bin_dir
        # Tests need no durability (fsync off is faster); a benchmark measures the real thing.
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="lenet5-pg-"))
        self.data = self.root / "data"
        self.socket = self.root
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> "Cluster":
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.start_server()
        return self

    def start_server(self) -> None:
        """Start the server on the cluster (again, after stop_server)."""
        options = f"-c listen_addresses='' -k {self.socket}"
        if not self.durable:
            options += " -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )

    def stop_server(self) -> None:
        """Stop the server, keeping the cluster's data."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.socket}"

    def create_database(self, name: str) -> str:
        import sqlalchemy as sa

        engine = sa.create_engine(
            self.url().replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
        )
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        return self.url(name)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
