"""Wire the pieces together from settings: knowledge base → engine → bot."""

from __future__ import annotations

import logging
import sys

from faq.loader import load_knowledge_base
from index.engine import SearchEngine, engine_from_settings

from .dialogue import Bot
from .settings import Settings

log = logging.getLogger("govfaq")


def load_engine(settings: Settings, progress: bool = False, rebuild: bool = False) -> SearchEngine:
    result = load_knowledge_base(settings.content_dir, settings.sources_dir)
    for problem in result.problems:
        # Report, never die: the valid entries still serve.
        print(f"warning: {problem}", file=sys.stderr)
    engine = engine_from_settings(result.kb, settings, progress=progress)
    if rebuild:
        engine.build(cache_dir=settings.data_dir / "cache" / "embeddings", progress=progress)
        engine.save(settings.data_dir)
        return engine
    return engine.load_or_build(settings.data_dir, progress=progress)


def load_bot(settings: Settings, progress: bool = False) -> Bot:
    return Bot(load_engine(settings, progress=progress))
