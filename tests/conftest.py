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
    from faq.loader import load_knowledge_base

    return load_knowledge_base()
