"""Where the service's shared state lives: SQLite files (the embedded default) or one PostgreSQL
database for every instance (GOVFAQ_DATABASE_URL, issue 16).

The query log and feedback (bot/records.py), conversations (bot/session.py), staff logins
(web/staff.py), staff accounts and the audit log (bot/accounts.py) each write their SQL once, in
the subset both databases understand (`?` placeholders, `ON CONFLICT`, `ORDER BY rowid`: the
PostgreSQL tables carry an identity column of that name, so "in the order written" reads the same).
What differs between the two lives here, behind one small interface, `Database`:

- `transaction(busy_ms, write)`: a context manager giving a `Tx`, whose `execute(sql, params)`
  (and `executemany(sql, rows)`) returns a cursor with `fetchone()`, `fetchall()` (rows read by column name) and `rowcount`. It
  commits when the block ends and rolls back when it raises.
- `errors`: the exceptions that mean "the store is unavailable now" (each module keeps its own
  policy for them: the writer queue retries, conversations carry on in memory, an account check
  refuses the login); `integrity_error`: a duplicate key; `is_busy(exc)`: only waited too long.

`SqliteDatabase` keeps one connection per thread (WAL mode), creates its tables on each new
connection, and opens the file again when it was deleted or replaced. `PostgresDatabase` uses one
psycopg_pool.ConnectionPool per process and URL, shared by every module, and applies the versioned
plain-SQL migrations in bot/migrations/pg/ at its first connection, under an advisory lock, so
instances that start together do not run one migration twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("govfaq.storage")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations" / "pg"
DEFAULT_BUSY_MS = 2000


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    def execute(self, sql: str, params: tuple | list = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: list) -> Any: ...


class Database(Protocol):
    kind: str  # "sqlite" | "postgres"
    label: str  # for log lines: a file name, or the database name (never a password)
    errors: tuple[type[BaseException], ...]
    integrity_error: type[BaseException]

    def transaction(self, busy_ms: int | None = None, write: bool = True) -> contextlib.AbstractContextManager[Tx]: ...
    def is_busy(self, exc: BaseException) -> bool: ...
    def exists(self) -> bool: ...
    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------- SQLite
class SqliteDatabase:
    """One SQLite file in WAL mode; a connection per thread, so a reader never waits for a lock in
    this process (the writer thread and the request threads each have their own)."""

    kind = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
    integrity_error = sqlite3.IntegrityError

    def __init__(self, path: Path | str, schema: str = "", prepare: Callable[[sqlite3.Connection], None] | None = None):
        self.path = Path(path)
        self.label = str(self.path)
        self.schema = schema
        self.prepare = prepare  # instead of `schema`: for a file that may need migrating first (bot/records.py)
        self._local = threading.local()
        self._all: set[sqlite3.Connection] = set()
        self._all_lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=DEFAULT_BUSY_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={DEFAULT_BUSY_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives the process being killed
            if self.prepare is not None:
                self.prepare(conn)
            elif self.schema:
                conn.executescript(self.schema)
        except BaseException:
            conn.close()
            raise
        with self._all_lock:
            self._all.add(conn)
        return conn

    def _connection(self, busy_ms: int) -> sqlite3.Connection:
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and _inode(self.path) != local.inode:  # deleted or replaced: use the new file
            self._forget(conn)
            conn = None
        if conn is None:
            conn = self._open()
            local.conn, local.inode, local.busy_ms = conn, _inode(self.path), DEFAULT_BUSY_MS
        if local.busy_ms != busy_ms:
            conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            local.busy_ms = busy_ms
        return conn

    def _forget(self, conn: sqlite3.Connection) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._all_lock:
            self._all.discard(conn)
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    @contextlib.contextmanager
    def transaction(self, busy_ms: int | None = None, write: bool = True) -> Iterator[Tx]:
        conn = self._connection(DEFAULT_BUSY_MS if busy_ms is None else busy_ms)
        try:
            # IMMEDIATE takes the write lock at once (waiting busy_ms for it): a deferred transaction that
            # reads and then writes could fail at once on another process's write instead of waiting.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if not self.is_busy(exc) and isinstance(exc, self.errors):  # a broken file: reopen next time
                self._forget(conn)
            raise

    def is_busy(self, exc: BaseException) -> bool:
        """A lock another connection holds: the file works, it was just taken."""
        return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))

    def exists(self) -> bool:
        return self.path.exists()

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, set()
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


# ------------------------------------------------------------------------------------ PostgreSQL
def _pg_sql(sql: str) -> str:
    # The modules' SQL holds no literal "?" or "%": placeholders are the only ones.
    return sql.replace("?", "%s")


class _PgTx:
    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql: str, params: tuple | list = ()):
        return self.conn.execute(_pg_sql(sql), params)

    def executemany(self, sql: str, rows: list):
        with self.conn.cursor() as cur:  # psycopg pipelines the rows: one round trip, not one per row
            cur.executemany(_pg_sql(sql), rows)


class DatabaseDown(Exception):
    """The pool holds no connection and cannot make one: the server is unavailable, not busy."""


class PostgresDatabase:
    """A PostgreSQL database through a connection pool (psycopg 3), shared by every module of a process."""

    kind = "postgres"

    def __init__(self, url: str, pool_size: int = 4, migrations_dir: Path = MIGRATIONS_DIR):
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.errors = (psycopg.Error, PoolTimeout, DatabaseDown, OSError)
        self.integrity_error = psycopg.IntegrityError
        self._busy = (PoolTimeout, psycopg.errors.LockNotAvailable)
        self._pool_timeout = PoolTimeout
        info = psycopg.conninfo.conninfo_to_dict(url)
        self.label = f"postgresql database {info.get('dbname') or info.get('user') or '?'}"
        self.migrations_dir = migrations_dir
        self._migrated = False
        self._migrate_lock = threading.Lock()
        # open=True starts connecting in the background; a server that is down makes the first
        # transaction wait (busy_ms at most) and fail, never the start-up.
        self.pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, kwargs={"row_factory": dict_row}, open=True,
            name="govfaq", reconnect_timeout=0,
        )

    @contextlib.contextmanager
    def transaction(self, busy_ms: int | None = None, write: bool = True) -> Iterator[Tx]:
        timeout = (DEFAULT_BUSY_MS if busy_ms is None else busy_ms) / 1000
        if not self._migrated:
            self.migrate(timeout)
        # The pool's context commits when the block ends and rolls back when it raises; a broken
        # connection is thrown away by the pool, not given to the next caller.
        with self._connection(timeout) as conn:
            with conn.transaction():
                yield _PgTx(conn)

    @contextlib.contextmanager
    def _connection(self, timeout: float):
        try:
            with self.pool.connection(timeout=timeout) as conn:
                yield conn
        except self._pool_timeout as exc:
            # Every connection taken is a busy database; none at all (the pool cannot connect) is a
            # server that is down, and callers should stop waiting on it, not wait again next time.
            if self.pool.get_stats().get("pool_size", 0) == 0:
                raise DatabaseDown(f"{self.label}: no connection to the server: {exc}") from exc
            raise

    def migrate(self, timeout: float = 30.0) -> list[int]:
        """Apply the migrations this database has not had yet, in order; the versions applied."""
        with self._migrate_lock:
            if self._migrated:
                return []
            applied: list[int] = []
            with self._connection(timeout) as conn:
                with conn.transaction():
                    # One instance at a time: the others wait here, then find the versions done.
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('govfaq schema'))")
                    conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                                 "version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())")
                    done = {r["version"] for r in conn.execute("SELECT version FROM schema_version")}
                    for version, path in migrations(self.migrations_dir):
                        if version in done:
                            continue
                        conn.execute(path.read_text(encoding="utf-8"))
                        conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)", (version, path.name))
                        applied.append(version)
            if applied:
                log.info("%s: schema migrated to version %d", self.label, applied[-1])
            self._migrated = True
            return applied

    def is_busy(self, exc: BaseException) -> bool:
        return isinstance(exc, self._busy)

    def exists(self) -> bool:
        return True

    def close(self) -> None:
        self.pool.close()


def migrations(folder: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    """The migration files NNNN_name.sql in version order; a file named otherwise is an error, not skipped."""
    out = []
    for path in sorted(folder.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_[a-z0-9_]+\.sql", path.name)
        if not match:
            raise ValueError(f"{path}: a migration is named NNNN_name.sql")
        out.append((int(match.group(1)), path))
    versions = [v for v, _ in out]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{folder}: two migrations share a version number")
    return out


# --------------------------------------------------------------------------------------- factory
_shared: dict[str, PostgresDatabase] = {}
_shared_lock = threading.Lock()


def shared_postgres(url: str, pool_size: int = 4) -> PostgresDatabase:
    """The process's one pool for this URL (every module shares it)."""
    with _shared_lock:
        db = _shared.get(url)
        if db is None or db.pool.closed:
            db = _shared[url] = PostgresDatabase(url, pool_size)
        return db


def database_for(settings, file_name: str, schema: str = "", prepare=None) -> Database:
    """The database a module keeps its state in: PostgreSQL when GOVFAQ_DATABASE_URL is set (one for
    every module), otherwise the SQLite file `file_name` in GOVFAQ_DATA_DIR with the module's schema."""
    if settings.database_url is not None:
        return shared_postgres(settings.database_url.get_secret_value(), settings.database_pool_size)
    return SqliteDatabase(Path(settings.data_dir) / file_name, schema=schema, prepare=prepare)
