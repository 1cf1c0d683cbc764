"""Feedback and the query log, in SQLite (standard library), WAL mode.

Everything a resident typed is masked (bot/privacy.py) before it is written.
A logging failure never breaks an answer: the caller gets None and a
warning is logged (at most one a minute per kind of failure, with a count of
the ones left out). A resident never waits long for the log: the query log
and feedback wait at most RESIDENT_BUSY_MS for a lock held by another
process (and as long again for another thread of this one); staff reports
wait longer.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .privacy import mask_personal_data

log = logging.getLogger("govfaq.records")

SCHEMA = """
CREATE TABLE IF NOT EXISTS query_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,               -- UTC, ISO 8601
    query TEXT NOT NULL,            -- masked
    band TEXT NOT NULL,             -- answer | candidates | clarify | fallback | smalltalk | contacts | ...
    faq_id TEXT,
    candidates TEXT NOT NULL,       -- JSON list of FAQ ids
    confidence REAL
);
CREATE INDEX IF NOT EXISTS query_log_ts ON query_log (ts);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    faq_id TEXT NOT NULL,
    helpful INTEGER NOT NULL,       -- 1 役に立った, 0 役に立たなかった
    comment TEXT,                   -- masked
    query_id INTEGER REFERENCES query_log (id) ON DELETE SET NULL
);
CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts);
"""

MAX_COMMENT_CHARS = 1000
RESIDENT_BUSY_MS = 250  # query log and feedback: an answer is never held up longer by a locked file
STAFF_BUSY_MS = 2000  # purge, insights, rows: staff can wait
WARN_EVERY_S = 60.0  # one warning per kind of failure per minute, not one per request


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RecordsBusy(sqlite3.OperationalError):
    """Another thread of this process held the store longer than a resident may wait."""


class RecordStore:
    def __init__(self, path: Path, retention_days: int = 180, busy_ms: int = RESIDENT_BUSY_MS, staff_busy_ms: int = STAFF_BUSY_MS):
        self.path = Path(path)
        self.retention_days = retention_days
        self.busy_ms = busy_ms
        self.staff_busy_ms = staff_busy_ms
        self._lock = threading.Lock()
        self._ready = False
        self._warned: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def _connect(self, busy_ms: int) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=busy_ms / 1000, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            if not self._ready:
                conn.executescript(SCHEMA)
                self._ready = True
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _connection(self, staff: bool = False):
        """A connection under the store's lock; residents wait for the lock no longer than for SQLite."""
        busy_ms = self.staff_busy_ms if staff else self.busy_ms
        if not self._lock.acquire(timeout=busy_ms / 1000):
            raise RecordsBusy(f"{self.path} busy in this process for {busy_ms} ms")
        try:
            conn = self._connect(busy_ms)
            try:
                yield conn
            finally:
                conn.close()
        except BaseException:
            self._ready = False  # the file may have been replaced or deleted: create the tables again next time
            raise
        finally:
            self._lock.release()

    def _warn(self, what: str, exc: BaseException) -> None:
        """Log a failure; the same kind of failure at most once per WARN_EVERY_S (counting the rest)."""
        now = time.monotonic()
        last = self._warned.get(what)
        if last is not None and now - last < WARN_EVERY_S:
            self._suppressed[what] = self._suppressed.get(what, 0) + 1
            log.debug("%s: %s: %s", what, type(exc).__name__, exc)
            return
        self._warned[what] = now
        more = self._suppressed.pop(what, 0)
        log.warning("%s (%s): %s: %s%s", what, self.path, type(exc).__name__, exc,
                    f" [{more} more since the last warning]" if more else "")

    def log_query(self, query: str, band: str, faq_id: str | None, candidates: list[str], confidence: float) -> int | None:
        """Store one masked query; returns its id, or None if it could not be stored."""
        try:
            with self._connection() as conn:
                cur = conn.execute(
                    "INSERT INTO query_log (ts, query, band, faq_id, candidates, confidence) VALUES (?, ?, ?, ?, ?, ?)",
                    (_now(), mask_personal_data(query)[:2000], band, faq_id, json.dumps(candidates), round(confidence, 4)),
                )
                return int(cur.lastrowid)
        except Exception as exc:  # noqa: BLE001 - whatever fails, the answer goes out
            self._warn("query log unavailable, answer given without logging", exc)
            return None

    def add_feedback(self, faq_id: str, helpful: bool, comment: str | None = None, query_id: int | None = None) -> int | None:
        comment = mask_personal_data(comment)[:MAX_COMMENT_CHARS] if comment else None
        try:
            with self._connection() as conn:
                if query_id is not None and not conn.execute("SELECT 1 FROM query_log WHERE id = ?", (query_id,)).fetchone():
                    query_id = None
                cur = conn.execute(
                    "INSERT INTO feedback (ts, faq_id, helpful, comment, query_id) VALUES (?, ?, ?, ?, ?)",
                    (_now(), faq_id, int(helpful), comment, query_id),
                )
                return int(cur.lastrowid)
        except Exception as exc:  # noqa: BLE001 - the resident gets a polite "not recorded"
            self._warn("feedback not stored", exc)
            return None

    def purge(self, now: dt.datetime | None = None) -> int:
        """Delete rows older than the retention period; returns how many query rows went."""
        now = now or dt.datetime.now(dt.timezone.utc)
        cutoff = (now - dt.timedelta(days=self.retention_days)).isoformat(timespec="seconds")
        try:
            with self._connection(staff=True) as conn:
                conn.execute("DELETE FROM feedback WHERE ts < ?", (cutoff,))
                return conn.execute("DELETE FROM query_log WHERE ts < ?", (cutoff,)).rowcount
        except (sqlite3.Error, OSError) as exc:
            self._warn("could not purge old records", exc)
            return 0

    def insights(self, days: int = 30) -> dict:
        """What staff need to improve the FAQ: unanswered and unhelpful queries, the most
        asked FAQs, and the answer rate by day."""
        since = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).isoformat(timespec="seconds")
        try:
            with self._connection(staff=True) as conn:
                conn.row_factory = sqlite3.Row
                unanswered = [r["query"] for r in conn.execute(
                    "SELECT query FROM query_log WHERE ts >= ? AND band IN ('fallback', 'candidates', 'clarify') ORDER BY id DESC LIMIT 500",
                    (since,))]
                unhelpful = [dict(r) for r in conn.execute(
                    "SELECT f.faq_id, f.comment, q.query FROM feedback f LEFT JOIN query_log q ON q.id = f.query_id "
                    "WHERE f.ts >= ? AND f.helpful = 0 ORDER BY f.id DESC LIMIT 500", (since,))]
                top = [dict(r) for r in conn.execute(
                    "SELECT faq_id, COUNT(*) AS n FROM query_log WHERE ts >= ? AND faq_id IS NOT NULL "
                    "GROUP BY faq_id ORDER BY n DESC LIMIT 20", (since,))]
                by_day = [dict(r) for r in conn.execute(
                    "SELECT substr(ts, 1, 10) AS day, COUNT(*) AS asked, "
                    "SUM(CASE WHEN band IN ('answer', 'contacts') THEN 1 ELSE 0 END) AS answered "
                    "FROM query_log WHERE ts >= ? AND band NOT IN ('smalltalk', 'refused') GROUP BY day ORDER BY day", (since,))]
        except (sqlite3.Error, OSError) as exc:
            self._warn("insights unavailable", exc)
            return {"unanswered": [], "unhelpful": [], "top": [], "by_day": [], "error": str(exc)}
        return {"unanswered": group_similar(unanswered + [u["query"] for u in unhelpful if u["query"]]),
                "unhelpful": unhelpful, "top": top, "by_day": by_day}

    def rows(self, table: str) -> list[dict]:
        if table not in ("query_log", "feedback"):
            raise ValueError(table)
        with self._connection(staff=True) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id")]  # noqa: S608 - fixed names


def _bigrams(text: str) -> set[str]:
    text = "".join(text.split())
    return {text[i : i + 2] for i in range(max(1, len(text) - 1))}


def group_similar(queries: list[str], threshold: float = 0.6) -> list[dict]:
    """Group queries whose character bigrams overlap (overlap coefficient ≥ threshold: the share of
    the shorter query's bigrams found in the group's first query); biggest groups first."""
    groups: list[dict] = []
    for query in queries:
        grams = _bigrams(query)
        for group in groups:
            inter = len(grams & group["grams"])
            if inter and inter / min(len(grams), len(group["grams"])) >= threshold:
                group["queries"].append(query)
                break
        else:
            groups.append({"grams": grams, "queries": [query]})
    out = [{"example": g["queries"][0], "count": len(g["queries"]), "queries": g["queries"][:10]} for g in groups]
    return sorted(out, key=lambda g: -g["count"])
