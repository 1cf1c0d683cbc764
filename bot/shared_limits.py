"""Rate-limit counters every instance shares: a `limits` Storage on the PostgreSQL pool (issue 16).

The `limits` library ships storages for memory, Redis, Memcached and MongoDB, none for PostgreSQL,
so this one implements its Storage and MovingWindowSupport interfaces on bot/storage.py's
PostgresDatabase (tables in bot/migrations/pg/0002_rate_limits.sql). A hit takes a transaction-level
advisory lock on its key, so two instances counting the same client at once see each other's hit;
times come from the server's clock, so instances whose clocks differ still share one window.

If the database is unavailable a hit is counted in this process's memory instead (the limit then
holds per process, as without PostgreSQL) and a warning is logged at most once a minute: a rate
limit must never turn a resident's question into an error.
"""

from __future__ import annotations

import logging
import time

from limits.storage import MemoryStorage, MovingWindowSupport, Storage

from .storage import PostgresDatabase

log = logging.getLogger("govfaq.limits")
BUSY_MS = 500  # a request waits at most this long for the database before counting in memory
WARN_EVERY_S = 60.0
TIDY_EVERY = 1000  # hits between deletions of every key's old rows (a client never seen again leaves some)
LONGEST_WINDOW_S = 86_400  # no budget counts over more than a day (the longest is an hour)
NOW = "SELECT extract(epoch FROM clock_timestamp())::float8 AS now"


class PostgresLimitsStorage(Storage, MovingWindowSupport):
    STORAGE_SCHEME = ["govfaq+postgresql"]

    def __init__(self, db: PostgresDatabase):
        super().__init__()
        self.db = db
        self.fallback = MemoryStorage()
        self._warned = 0.0
        self._hits = 0

    @property
    def base_exceptions(self):
        return self.db.errors

    def _run(self, fn, fallback):
        try:
            with self.db.transaction(BUSY_MS) as tx:
                return fn(tx)
        except self.db.errors as exc:
            if time.monotonic() - self._warned > WARN_EVERY_S:
                self._warned = time.monotonic()
                log.warning("%s unavailable, rate limits counted per process meanwhile: %s", self.db.label, exc)
            return fallback()

    # --------------------------------------------------------------- moving window
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        self._hits += 1
        tidy = self._hits % TIDY_EVERY == 0

        def acquire(tx) -> bool:
            tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))
            now = tx.execute(NOW).fetchone()["now"]
            tx.execute("DELETE FROM rate_limit_hits WHERE key = ? AND at <= ?", (key, now - expiry))
            count = tx.execute("SELECT count(*) AS n FROM rate_limit_hits WHERE key = ?", (key,)).fetchone()["n"]
            if count + amount > limit:
                return False
            tx.executemany("INSERT INTO rate_limit_hits (key, at) VALUES (?, ?)", [(key, now)] * amount)
            if tidy:
                tx.execute("DELETE FROM rate_limit_hits WHERE at <= ?", (now - LONGEST_WINDOW_S,))
            return True

        return self._run(acquire, lambda: self.fallback.acquire_entry(key, limit, expiry, amount))

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        def window(tx) -> tuple[float, int]:
            now = tx.execute(NOW).fetchone()["now"]
            row = tx.execute("SELECT min(at) AS first, count(*) AS n FROM rate_limit_hits WHERE key = ? AND at > ?",
                             (key, now - expiry)).fetchone()
            # limits computes the reset as first + expiry on this process's clock: shift by the difference.
            skew = time.time() - now
            return ((row["first"] if row["first"] is not None else now) + skew, row["n"])

        return self._run(window, lambda: self.fallback.get_moving_window(key, limit, expiry))

    # --------------------------------------------------------------- fixed window (Storage)
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        def incr(tx) -> int:
            now = tx.execute(NOW).fetchone()["now"]
            return tx.execute(
                "INSERT INTO rate_limit_counters (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value = CASE WHEN rate_limit_counters.expires <= ? THEN excluded.value ELSE rate_limit_counters.value + excluded.value END, "
                "expires = CASE WHEN rate_limit_counters.expires <= ? THEN excluded.expires ELSE rate_limit_counters.expires END "
                "RETURNING value", (key, amount, now + expiry, now, now)).fetchone()["value"]

        return self._run(incr, lambda: self.fallback.incr(key, expiry, amount))

    def get(self, key: str) -> int:
        row = self._run(lambda tx: tx.execute(
            "SELECT value FROM rate_limit_counters WHERE key = ? AND expires > extract(epoch FROM clock_timestamp())",
            (key,)).fetchone(), lambda: None)
        return row["value"] if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._run(lambda tx: tx.execute("SELECT expires FROM rate_limit_counters WHERE key = ?", (key,)).fetchone(),
                        lambda: None)
        return row["expires"] if row else time.time()

    def check(self) -> bool:
        return bool(self._run(lambda tx: tx.execute("SELECT 1 AS one").fetchone(), lambda: None))

    def reset(self) -> int | None:
        def reset(tx) -> int:
            return tx.execute("DELETE FROM rate_limit_hits").rowcount + tx.execute("DELETE FROM rate_limit_counters").rowcount

        return self._run(reset, lambda: None)

    def clear(self, key: str) -> None:
        def clear(tx) -> None:
            tx.execute("DELETE FROM rate_limit_hits WHERE key = ?", (key,))
            tx.execute("DELETE FROM rate_limit_counters WHERE key = ?", (key,))

        self._run(clear, lambda: None)
        self.fallback.clear(key)
