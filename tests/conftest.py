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
