"""Conversation sessions: what a follow-up question refers to.

Capped in number (oldest dropped first), in turns and in text per session,
and expired after a period without activity. The text of a turn is masked
(bot/privacy.py) before it is kept.

Two stores with one interface: `SessionStore` in this process's memory (the
command line, tests), and `SharedSessionStore`, which the service uses, so
that every worker process sees the same conversation: in a SQLite file
(every worker on that disk) or in PostgreSQL (every instance,
GOVFAQ_DATABASE_URL; bot/storage.py). If the database fails, the shared store
carries on in memory for a minute, logs a warning, and tries again. A
database that is only busy (another worker's write, a checkpoint, a pool with
every connection taken) is waited for, up to two seconds, and is not turned
off: turns kept in one process's memory are invisible to the other workers,
so memory is the last resort, not the first.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .privacy import mask_personal_data
from .storage import Database, SqliteDatabase

log = logging.getLogger("govfaq.sessions")

MAX_TURN_CHARS = 500


@dataclass
class Session:
    id: str
    created: float
    last_seen: float
    program: str | None = None  # the programme of the last answer
    faq_id: str | None = None  # the last FAQ answered
    prefecture: str | None = None  # the last place the person named
    office_id: str | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)  # (query, faq_id or band), capped


class SessionStore:
    def __init__(self, ttl_seconds: float = 1800, max_sessions: int = 10_000, max_turns: int = 20, clock=time.monotonic):
        self.ttl = ttl_seconds
        self.max_sessions = max_sessions
        self.max_turns = max_turns
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str | None) -> Session:
        """The live session with this id, or a new one (a new id when unknown or expired)."""
        now = self.clock()
        with self._lock:
            self._expire(now)
            session = self._sessions.get(session_id or "")
            if session is None:
                session = Session(secrets.token_urlsafe(16), now, now)
                self._sessions[session.id] = session
                while len(self._sessions) > self.max_sessions:
                    self._sessions.popitem(last=False)
            session.last_seen = now
            self._sessions.move_to_end(session.id)
            return session

    def record(self, session: Session, query: str, outcome: str) -> None:
        # Masked before it is cut: a number cut in two would leave digits the patterns no longer see.
        session.turns.append((mask_personal_data(query)[:MAX_TURN_CHARS], outcome))
        del session.turns[: -self.max_turns]

    def drop(self, session_id: str) -> None:
        """Forget one conversation (its client started too many)."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.last_seen <= self.ttl:
                break
            self._sessions.popitem(last=False)

    def __len__(self) -> int:
        return len(self._sessions)


SESSION_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    last_seen REAL NOT NULL,        -- seconds since the epoch: shared by processes, unlike a monotonic clock
    state TEXT NOT NULL             -- JSON of Session, turns masked
);
CREATE INDEX IF NOT EXISTS sessions_last_seen ON sessions (last_seen);
"""


class SharedState:
    """A database several processes share, used by one module, with the failure policy of state that
    can live in memory for a while (conversations, staff logins).

    `run(fn)` gives fn a transaction (bot/storage.py's `Tx`). A busy database is waited for
    (`busy_ms`); if it is still busy, the call returns None and the next call tries again. On any
    other error (read-only, damaged, disk full, server down) it logs a warning, returns None and
    leaves the database alone for `retry_after` seconds, so a broken one slows no answer down twice.
    """

    def __init__(self, db: Database, busy_ms: int = 2000, retry_after: float = 60.0):
        self.db = db
        self.busy_ms = busy_ms
        self.retry_after = retry_after
        self._off_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._off_until

    def run(self, fn, write: bool = True):
        if not self.available:
            return None
        try:
            with self.db.transaction(self.busy_ms, write=write) as tx:
                return fn(tx)
        except self.db.errors as exc:
            if self.db.is_busy(exc):
                log.warning("%s busy for over %d ms, keeping this write in memory until the next: %s", self.db.label, self.busy_ms, exc)
                return None
            log.warning("%s unavailable, carrying on in memory for %.0f s: %s", self.db.label, self.retry_after, exc)
            self._off_until = time.monotonic() + self.retry_after
            return None


def shared_state(store: Path | str | Database, schema: str) -> SharedState:
    """A path is a SQLite file (with `schema`); a Database is used as it is (its schema is migrated)."""
    return SharedState(SqliteDatabase(store, schema) if isinstance(store, (str, Path)) else store)


class SharedSessionStore(SessionStore):
    """Sessions in a database all workers share; in memory while it is unavailable."""

    def __init__(self, store: Path | str | Database, ttl_seconds: float = 1800, max_sessions: int = 10_000, max_turns: int = 20, clock=time.time):
        super().__init__(ttl_seconds, max_sessions, max_turns, clock)
        self.db = shared_state(store, SESSION_SCHEMA)
        self._writes = 0

    def get(self, session_id: str | None) -> Session:
        now = self.clock()
        with self._lock:
            # A copy in memory is one the file has not taken yet, so it is newer than any row there.
            held = self._sessions.get(session_id or "")
        if session_id and held is None:
            row = self.db.run(
                lambda c: c.execute(
                    "SELECT state FROM sessions WHERE id = ? AND last_seen >= ?", (session_id, now - self.ttl)
                ).fetchone(),
                write=False,
            )
            if row is not None:
                try:
                    data = json.loads(row["state"])
                    data["turns"] = [tuple(t) for t in data.get("turns", [])]
                    return Session(**{**data, "last_seen": now})
                except (ValueError, TypeError) as exc:  # a damaged row is a new conversation, not an error
                    log.warning("session %s unreadable, starting a new one: %s", session_id[:8], exc)
        # Unknown, expired, or the file is unavailable: memory still knows this process's sessions.
        return super().get(session_id)

    def record(self, session: Session, query: str, outcome: str) -> None:
        super().record(session, query, outcome)
        now = self.clock()
        state = json.dumps(asdict(session), ensure_ascii=False)
        self._writes += 1
        tidy = self._writes % 200 == 1

        def write(conn) -> bool:
            conn.execute(
                "INSERT INTO sessions (id, last_seen, state) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET last_seen = excluded.last_seen, state = excluded.state",
                (session.id, now, state),
            )
            if tidy:  # now and then: forget expired conversations, and the oldest beyond the cap
                conn.execute("DELETE FROM sessions WHERE last_seen < ?", (now - self.ttl,))
                conn.execute(
                    "DELETE FROM sessions WHERE id NOT IN (SELECT id FROM sessions ORDER BY last_seen DESC LIMIT ?)",
                    (self.max_sessions,),
                )
            return True

        stored = self.db.run(write)
        with self._lock:
            if stored:  # in the file: this process's memory copy is not needed
                self._sessions.pop(session.id, None)
            else:  # kept here until a later write reaches the file; a session read from the file was not here yet
                self._sessions[session.id] = session
                self._sessions.move_to_end(session.id)
                while len(self._sessions) > self.max_sessions:
                    self._sessions.popitem(last=False)

    def drop(self, session_id: str) -> None:
        super().drop(session_id)
        self.db.run(lambda c: c.execute("DELETE FROM sessions WHERE id = ?", (session_id,)))

    def __len__(self) -> int:
        count = self.db.run(
            lambda c: c.execute("SELECT count(*) AS n FROM sessions WHERE last_seen >= ?", (self.clock() - self.ttl,)).fetchone()["n"],
            write=False,
        )
        return (count or 0) + len(self._sessions)


SqliteSessionStore = SharedSessionStore  # the name before PostgreSQL: a path still gives a SQLite file
