"""Feedback and the query log: in a SQLite file (WAL mode, the default) or in the PostgreSQL database
every instance shares (GOVFAQ_DATABASE_URL); bot/storage.py holds what differs between the two.

Everything a resident typed is masked (bot/privacy.py) before it is queued.

One writer per process. A request never touches the file: it puts its row
on a bounded in-memory queue and goes on at once; one writer thread drains
the queue in batched transactions, to whichever database it was given. The ids are made here, in the process
(time-ordered UUIDs), so the answer carries its `query_id` before the row is
written, and feedback keeps that id (the query row is queued first in this
process; another worker's may land a moment later, hence no foreign key). While the process lives no row is dropped: a batch the
file refuses (locked by another process, read-only, disk full) is kept and
retried, and only rows beyond the queue's bound are refused — counted, and
shown on the staff page. A queued row reaches the file within about a
second (at once when the file is free); `close()` (FastAPI lifespan, atexit)
writes what is left.

A failure never breaks an answer: it is logged as a warning at most once a
minute per kind of failure, with a count of the ones left out.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import os
import itertools
import queue
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from .privacy import mask_personal_data
from .storage import Database, SqliteDatabase

log = logging.getLogger("govfaq.records")

SCHEMA = """
CREATE TABLE IF NOT EXISTS query_log (
    id TEXT PRIMARY KEY,            -- made in the process (time-ordered UUID), returned with the answer
    ts TEXT NOT NULL,               -- UTC, ISO 8601
    query TEXT NOT NULL,            -- masked
    band TEXT NOT NULL,             -- answer | candidates | clarify | fallback | smalltalk | contacts | ...
    faq_id TEXT,
    candidates TEXT NOT NULL,       -- JSON list of FAQ ids
    confidence REAL
);
CREATE INDEX IF NOT EXISTS query_log_ts ON query_log (ts);
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    faq_id TEXT NOT NULL,
    helpful INTEGER NOT NULL,       -- 1 役に立った, 0 役に立たなかった
    comment TEXT,                   -- masked
    query_id TEXT                   -- the query_log id the answer carried, no foreign key: with several
                                    -- workers that row may be written by another process a moment later
);
CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts);
"""

# Files written before the ids were made in the process had INTEGER ids (SQLite's rowid): their rows are
# copied into the new tables with the same ids as text, so old feedback keeps its link. Run one statement
# at a time (split at ";", so no comment above may hold one).
MIGRATE_INTEGER_IDS = """
DROP INDEX IF EXISTS query_log_ts;
DROP INDEX IF EXISTS feedback_ts;
ALTER TABLE feedback RENAME TO feedback_v0;
ALTER TABLE query_log RENAME TO query_log_v0;
""" + SCHEMA + """
INSERT INTO query_log SELECT CAST(id AS TEXT), ts, query, band, faq_id, candidates, confidence FROM query_log_v0 ORDER BY id;
INSERT INTO feedback SELECT CAST(id AS TEXT), ts, faq_id, helpful, comment, CAST(query_id AS TEXT) FROM feedback_v0 ORDER BY id;
DROP TABLE feedback_v0;
DROP TABLE query_log_v0;
"""

MAX_COMMENT_CHARS = 1000
QUEUE_ROWS = 20_000  # rows waiting for the writer; beyond this a row is refused and counted (about 10 MB)
BATCH_ROWS = 500  # rows per transaction: one commit (one fsync of the WAL at most) per batch, not per row
WRITER_BUSY_MS = 5000  # the writer waits this long for another process's lock; no request waits on it
RETRY_S = (0.05, 0.2, 1.0)  # pauses between attempts at a batch the file refused (the last one repeats)
STAFF_BUSY_MS = 2000  # purge, insights, rows: staff can wait
FLUSH_S = 2.0  # staff reads wait this long for the rows queued before them
CLOSE_S = 10.0  # at shutdown, how long the writer keeps trying to write what is left
CLOSE_FAILING_S = 2.0  # as long, when the file was already refusing writes
WARN_EVERY_S = 60.0  # one warning per kind of failure per minute, not one per request
_STOP = object()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def new_record_id() -> str:
    """A UUID version 7: 48 bits of Unix milliseconds, then random bits. Unique across processes and
    hosts without asking the file, and sorted by time."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def _prepare_sqlite(conn: sqlite3.Connection) -> None:
    """Create the tables, or move a file written before the ids were made in the process."""
    columns = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(query_log)")}
    if columns.get("id", "").upper() != "INTEGER":
        conn.executescript(SCHEMA)
        return
    conn.execute("PRAGMA foreign_keys=OFF")  # the old tables' foreign key would see half a copy
    conn.execute("BEGIN IMMEDIATE")
    try:
        if {row[1]: row[2] for row in conn.execute("PRAGMA table_info(query_log)")}["id"].upper() == "INTEGER":
            for statement in MIGRATE_INTEGER_IDS.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    log.info("query log and feedback moved to ids made in the process")


def sqlite_records(path: Path | str) -> SqliteDatabase:
    return SqliteDatabase(path, prepare=_prepare_sqlite)


class RecordStore:
    def __init__(
        self,
        store: Path | str | Database,
        retention_days: int = 180,
        queue_rows: int = QUEUE_ROWS,
        batch_rows: int = BATCH_ROWS,
        writer_busy_ms: int = WRITER_BUSY_MS,
        staff_busy_ms: int = STAFF_BUSY_MS,
    ):
        # A path is a SQLite file of its own; bot/storage.database_for gives PostgreSQL when configured.
        self.db: Database = sqlite_records(store) if isinstance(store, (str, Path)) else store
        self.path = getattr(self.db, "path", None)
        self.retention_days = retention_days
        self.batch_rows = batch_rows
        self.writer_busy_ms = writer_busy_ms
        self.staff_busy_ms = staff_busy_ms
        self._queue: queue.Queue = queue.Queue(maxsize=queue_rows)
        self._pending = 0  # queued or being written, not yet committed
        self._written = threading.Condition()
        self._writer: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closing_until: float | None = None
        self.overflow = {"query_log": 0, "feedback": 0}  # rows refused because the queue was full
        self.failing_since: float | None = None  # the writer's last attempt failed (monotonic time of the first)
        self.lost_at_close = 0
        self._warned: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    # ----------------------------------------------------------- the queue
    def _enqueue(self, table: str, row: tuple) -> bool:
        self._ensure_writer()
        with self._written:
            self._pending += 1
        try:
            self._queue.put_nowait((table, row))
        except queue.Full:
            with self._written:
                self._pending -= 1
                self._written.notify_all()
            self.overflow[table] += 1
            self._warn(f"{table} queue full, row refused", RuntimeError(f"{self._queue.maxsize} rows waiting"))
            return False
        return True

    def _ensure_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            return
        with self._start_lock:
            if self._writer is None or not self._writer.is_alive():
                self._closing_until = None
                self._writer = threading.Thread(target=self._drain, name="govfaq-records-writer", daemon=True)
                self._writer.start()
                atexit.register(self._close_at_exit)

    def _next_batch(self) -> tuple[list, bool]:
        """Wait for a row, then take what else is queued (up to batch_rows). True: stop after this batch."""
        item = self._queue.get()
        if item is _STOP:
            return [], True
        batch = [item]
        while len(batch) < self.batch_rows:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _drain(self) -> None:
        batch: list = []
        stop = False
        attempt = 0
        while True:
            if not batch:
                if stop:
                    break
                batch, stop = self._next_batch()
                if not batch:
                    continue
            try:
                with self.db.transaction(self.writer_busy_ms) as tx:
                    _write_batch(tx, batch)
            except Exception as exc:  # noqa: BLE001 - keep the batch and try again; nothing is dropped
                self.failing_since = self.failing_since or time.monotonic()
                self._warn("query log unavailable, rows kept in memory and written when the database allows", exc)
                if self._closing_until is not None and time.monotonic() > self._closing_until:
                    lost = len(batch) + self._take_rest()  # rows only: close()'s stop mark is not one
                    self.lost_at_close += lost
                    log.error("%s: %d rows could not be written before shutdown", self.db.label, lost)
                    self._done(lost)
                    break
                time.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                attempt += 1
                continue
            self.failing_since, attempt = None, 0
            self._done(len(batch))
            batch = []

    def _take_rest(self) -> int:
        """Empty the queue; the number of rows it held."""
        rows = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return rows
            rows += item is not _STOP

    def _done(self, n: int) -> None:
        with self._written:
            self._pending -= n
            self._written.notify_all()

    def flush(self, timeout: float = FLUSH_S) -> bool:
        """Wait until every row queued so far is written (or `timeout` passes); True if written."""
        deadline = time.monotonic() + timeout
        with self._written:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._written.wait(left)
        return True

    def close(self, timeout: float = CLOSE_S) -> None:
        """Write what is queued, then stop the writer (a later row starts it again)."""
        writer = self._writer
        if writer is None or not writer.is_alive():
            return
        self._closing_until = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)  # waits while the queue is full: the writer is draining it
        except queue.Full:
            pass  # the writer gives up at the deadline on its own
        writer.join(timeout + 1)
        atexit.unregister(self._close_at_exit)

    def _close_at_exit(self) -> None:
        # A file that refuses writes now will not take them in the next seconds either: do not hold the exit.
        self.close(CLOSE_S if self.healthy else CLOSE_FAILING_S)

    @property
    def healthy(self) -> bool:
        """False while the file refuses the writer: rows queued now are kept, but not yet stored."""
        return self.failing_since is None

    def status(self) -> dict:
        """For the staff page: rows waiting, rows refused since start-up, whether the file takes writes."""
        return {"queued": self._pending, "overflow": dict(self.overflow), "healthy": self.healthy}

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
        log.warning("%s (%s): %s: %s%s", what, self.db.label, type(exc).__name__, exc,
                    f" [{more} more since the last warning]" if more else "")

    # ------------------------------------------------------------- writing
    def log_query(self, query: str, band: str, faq_id: str | None, candidates: list[str], confidence: float) -> str | None:
        """Queue one masked query; returns its id, or None if the queue was full."""
        row_id = new_record_id()
        row = (row_id, _now(), mask_personal_data(query)[:2000], band, faq_id, json.dumps(candidates), round(confidence, 4))
        return row_id if self._enqueue("query_log", row) else None

    def add_feedback(self, faq_id: str, helpful: bool, comment: str | None = None, query_id: str | None = None) -> str | None:
        """Queue one feedback post; its id, or None when it will not be stored soon (queue full, or
        the file refusing writes: the row is then kept and written when the file allows)."""
        comment = mask_personal_data(comment)[:MAX_COMMENT_CHARS] if comment else None
        row_id = new_record_id()
        row = (row_id, _now(), faq_id, int(helpful), comment, None if query_id is None else str(query_id))
        if not self._enqueue("feedback", row):
            return None
        if not self.healthy:
            self._warn("feedback not stored yet", RuntimeError("the query log file refuses writes"))
            return None
        return row_id

    def purge(self, now: dt.datetime | None = None) -> int:
        """Delete rows older than the retention period; returns how many query rows went."""
        now = now or dt.datetime.now(dt.timezone.utc)
        cutoff = (now - dt.timedelta(days=self.retention_days)).isoformat(timespec="seconds")
        try:
            with self.db.transaction(self.staff_busy_ms) as tx:
                tx.execute("DELETE FROM feedback WHERE ts < ?", (cutoff,))
                return tx.execute("DELETE FROM query_log WHERE ts < ?", (cutoff,)).rowcount
        except self.db.errors as exc:
            self._warn("could not purge old records", exc)
            return 0

    # ------------------------------------------------------------- reading
    def insights(self, days: int = 30) -> dict:
        """What staff need to improve the FAQ: unanswered and unhelpful queries, the most
        asked FAQs, and the answer rate by day (with the rows queued before the call)."""
        self.flush()
        since = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).isoformat(timespec="seconds")
        try:
            with self.db.transaction(self.staff_busy_ms, write=False) as conn:
                unanswered = [r["query"] for r in conn.execute(
                    "SELECT query FROM query_log WHERE ts >= ? AND band IN ('fallback', 'candidates', 'clarify') "
                    "ORDER BY rowid DESC LIMIT 500", (since,))]
                unhelpful = [dict(r) for r in conn.execute(
                    "SELECT f.faq_id, f.comment, q.query FROM feedback f LEFT JOIN query_log q ON q.id = f.query_id "
                    "WHERE f.ts >= ? AND f.helpful = 0 ORDER BY f.rowid DESC LIMIT 500", (since,))]
                top = [dict(r) for r in conn.execute(
                    "SELECT faq_id, COUNT(*) AS n FROM query_log WHERE ts >= ? AND faq_id IS NOT NULL "
                    "GROUP BY faq_id ORDER BY n DESC LIMIT 20", (since,))]
                by_day = [dict(r) for r in conn.execute(
                    "SELECT substr(ts, 1, 10) AS day, COUNT(*) AS asked, "
                    "SUM(CASE WHEN band IN ('answer', 'contacts') THEN 1 ELSE 0 END) AS answered "
                    "FROM query_log WHERE ts >= ? AND band NOT IN ('smalltalk', 'refused') GROUP BY substr(ts, 1, 10) "
                    "ORDER BY day", (since,))]
        except self.db.errors as exc:
            self._warn("insights unavailable", exc)
            return {"unanswered": [], "unhelpful": [], "top": [], "by_day": [], "error": str(exc), "writer": self.status()}
        return {"unanswered": group_similar(unanswered + [u["query"] for u in unhelpful if u["query"]]),
                "unhelpful": unhelpful, "top": top, "by_day": by_day, "writer": self.status()}

    def rows(self, table: str) -> list[dict]:
        """Every row of `table` in the order written (with the rows queued before the call)."""
        if table not in ("query_log", "feedback"):
            raise ValueError(table)
        self.flush()
        with self.db.transaction(self.staff_busy_ms, write=False) as tx:
            return [dict(r) for r in tx.execute(f"SELECT {COLUMNS[table]} FROM {table} ORDER BY rowid")]  # noqa: S608 - fixed names


COLUMNS = {"query_log": "id, ts, query, band, faq_id, candidates, confidence",
           "feedback": "id, ts, faq_id, helpful, comment, query_id"}
# A row already there (written before a retry that did not know it had succeeded) is left as it is.
# The query row a feedback cites may be another worker's, not written yet: its id is kept as given.
INSERT = {table: f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(cols.split(',')))}) ON CONFLICT DO NOTHING"
          for table, cols in COLUMNS.items()}


def _write_batch(tx, batch: list) -> None:
    """The whole batch in the caller's transaction, in queue order (a query before the feedback that
    cites it): one executemany per run of rows for the same table (PostgreSQL pipelines it)."""
    for table, rows in itertools.groupby(batch, key=lambda item: item[0]):
        tx.executemany(INSERT[table], [row for _, row in rows])


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
