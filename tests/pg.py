"""A real PostgreSQL server for the tests (issue 16): nothing about the database is mocked.

`PostgresServer.start()` runs `initdb` and `pg_ctl` from this machine's PostgreSQL (Debian's
`postgresql` package, or the links in /usr/local/bin) in a temporary folder owned by the `postgres`
user, as that user (the tests run as root here, and the server refuses to run as root). It listens
only on a Unix socket in that folder, so parallel runs never fight over a port. Each test gets a
database of its own (`new_database`), created in a few tens of milliseconds; the whole cluster is
removed at the end of the session.

fsync is off: the tests check what the service stores and reads back, not crash durability, and
with it on every commit would wait for the disk.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

PORT = 5432  # only names the socket file: the server listens on no TCP port
ROLE = "govfaq"


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    candidates = []
    initdb = shutil.which("initdb") or ("/usr/local/bin/initdb" if os.path.exists("/usr/local/bin/initdb") else None)
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    # Debian keeps the server binaries off PATH, one folder per major version; the newest wins.
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


class PostgresServer:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.root: Path | None = None
        self._as_postgres = os.geteuid() == 0
        self._counter = itertools.count(1)

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done

    def start(self) -> "PostgresServer":
        self.root = Path(tempfile.mkdtemp(prefix="govfaq-pg-"))
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        os.chmod(self.root, 0o700)
        data = self.root / "data"
        # trust on the socket only: the folder is 0700, so only root and postgres reach it.
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        options = f"-k {self.root} -p {PORT} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start")
        self._admin(f"CREATE ROLE {ROLE} LOGIN")
        return self

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres", user="postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def url(self, database: str, user: str = ROLE) -> str:
        return f"postgresql://{user}@/{database}?host={self.socket_dir}&port={PORT}"

    def new_database(self) -> str:
        """A fresh, empty database owned by the test role; its libpq URL."""
        name = f"t{next(self._counter)}_{os.getpid()}"
        self._admin(f"CREATE DATABASE {name} OWNER {ROLE} TEMPLATE template0")
        return self.url(name)

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
