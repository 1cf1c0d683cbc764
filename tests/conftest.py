import os
from pathlib import Path

import pytest

# The tests prove the offline path: no model hub, ever.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shipped():
    """The shipped knowledge base, loaded once."""
    from tests.fakes import shipped_content

    return shipped_content()


@pytest.fixture(scope="session")
def fast_engine(shipped):
    """The shipped knowledge base indexed with the hashing embedder (no model), built once."""
    from tests.fakes import shipped_engine

    return shipped_engine()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the whole session (tests/pg.py); skipped only when the binaries are absent."""
    from tests.pg import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: `make pg-deps` installs Debian's postgresql")
    server = PostgresServer(bin_dir).start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server) -> str:
    """The libpq URL of a fresh, empty database of this test's own."""
    return postgres_server.new_database()


class Backend:
    """Where a test's stores keep their state: `store(file_name)` is a SQLite file in tmp_path, or a
    new pool on the test's PostgreSQL database. Each call is a store of its own, as a separate worker
    process (or instance) has: two calls with the same name share the state, not a connection."""

    def __init__(self, kind: str, tmp_path: Path, request):
        self.kind, self.tmp_path, self._request = kind, tmp_path, request
        self._url: str | None = None
        self._opened: list = []

    def store(self, file_name: str):
        if self.kind == "sqlite":
            return self.tmp_path / file_name
        from bot.storage import PostgresDatabase

        if self._url is None:
            self._url = self._request.getfixturevalue("pg_url")
        db = PostgresDatabase(self._url, pool_size=4)
        self._opened.append(db)
        return db

    def close(self) -> None:
        for db in self._opened:
            db.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """Runs the test once on SQLite files and once on a real PostgreSQL server (tests/pg.py)."""
    chosen = Backend(request.param, tmp_path, request)
    yield chosen
    chosen.close()
