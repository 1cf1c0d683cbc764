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
