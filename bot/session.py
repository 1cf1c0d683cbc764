"""Conversation sessions: what a follow-up question refers to.

Kept in memory, capped in number (oldest dropped first), in turns and in
text per session, and expired after a period without activity.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

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
        session.turns.append((query[:MAX_TURN_CHARS], outcome))
        del session.turns[: -self.max_turns]

    def _expire(self, now: float) -> None:
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.last_seen <= self.ttl:
                break
            self._sessions.popitem(last=False)

    def __len__(self) -> int:
        return len(self._sessions)
