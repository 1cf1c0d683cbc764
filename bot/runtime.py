"""Wire the pieces together from settings: knowledge base → engine → bot."""

from __future__ import annotations

import logging
import sys

from faq.loader import KnowledgeBase, load_knowledge_base
from index.engine import SearchEngine, engine_from_settings

from .dialogue import Bot
from .records import SCHEMA as RECORDS_SCHEMA
from .records import RecordStore, _prepare_sqlite
from .session import SESSION_SCHEMA, SessionStore, SharedSessionStore
from .settings import Settings
from .storage import database_for

log = logging.getLogger("govfaq")


def load_engine(
    settings: Settings, progress: bool = False, rebuild: bool = False, kb: KnowledgeBase | None = None, embedder=None
) -> SearchEngine:
    """The engine over `kb`, or over the content folder read (and its problems reported) here.
    `embedder`: one already loaded (a reload reuses the model instead of loading a second copy)."""
    if kb is None:
        result = load_knowledge_base(settings.content_dir, settings.sources_dir)
        for problem in result.problems:
            # Report, never die: the valid entries still serve.
            print(f"warning: {problem}", file=sys.stderr)
        kb = result.kb
    engine = engine_from_settings(kb, settings, progress=progress, embedder=embedder)
    if rebuild:
        engine.build(cache_dir=settings.data_dir / "cache" / "embeddings", progress=progress)
        engine.save(settings.data_dir)
        return engine
    return engine.load_or_build(settings.data_dir, progress=progress)


def record_store(settings: Settings) -> RecordStore:
    db = database_for(settings, "govfaq.sqlite3", RECORDS_SCHEMA, prepare=_prepare_sqlite)
    return RecordStore(db, retention_days=settings.log_retention_days)


def load_bot(settings: Settings, progress: bool = False, records: bool = True, kb: KnowledgeBase | None = None) -> Bot:
    """The bot; `records=False` (evaluation) writes nothing to disk: no query log, sessions in memory."""
    store = record_store(settings) if records else None
    if store is not None:
        store.purge()
    sessions = session_store(settings) if records else None
    return Bot(load_engine(settings, progress=progress, kb=kb), records=store, sessions=sessions)


def sessions_path(settings: Settings):
    return settings.data_dir / "sessions.sqlite3"


def session_store(settings: Settings) -> SessionStore:
    if settings.session_store != "memory":
        db = database_for(settings, sessions_path(settings).name, SESSION_SCHEMA)
        return SharedSessionStore(db, ttl_seconds=settings.session_ttl_seconds, max_sessions=settings.max_sessions)
    return SessionStore(ttl_seconds=settings.session_ttl_seconds, max_sessions=settings.max_sessions)
