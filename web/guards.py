"""What stands between the public and the bot: rate limits, the per-client cap on conversations and
the staff-login throttle. Counted per client address: the socket peer, or, behind a proxy named in
GOVFAQ_FORWARDED_ALLOW_IPS, the rightmost X-Forwarded-For address that proxy did not add (uvicorn's
ProxyHeadersMiddleware sets it before any of this runs, so a header from anyone else changes nothing).

The counting is the maintained `limits` library (moving windows). In memory by default: per worker
process, so behind several workers or hosts the balancer holds the real limit and these are the second
line. With GOVFAQ_DATABASE_URL the windows live in PostgreSQL (bot/shared_limits.py) and count across
every worker and instance.
Nothing here waits: a refused request is answered at once with 429 and Retry-After.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

MAX_CLIENTS = 50_000  # clients whose conversations are tracked at once (idle ones are forgotten first)


def client_of(request: Request) -> str:
    """The client address the limits count (after the trusted-proxy rewrite, if any)."""
    return request.client.host if request.client else "unknown"


class Budget:
    """At most `items` per client (every item must allow the hit); `check` says how long to wait."""

    def __init__(self, name: str, *items: RateLimitItem, limiter: MovingWindowRateLimiter):
        self.name = name
        self.items = items
        self.limiter = limiter

    def check(self, client: str) -> int:
        """0 when allowed (and counted); otherwise the whole seconds to wait, at least 1."""
        for item in self.items:
            if not self.limiter.hit(item, self.name, client):
                reset = self.limiter.get_window_stats(item, self.name, client).reset_time
                return max(1, math.ceil(reset - time.time()))
        return 0

    def clear(self, client: str) -> None:
        for item in self.items:
            self.limiter.clear(item, self.name, client)


class LoginBudget:
    """Staff logins: a client's own attempts, then everyone's (a wrong guess and a right one count alike;
    a right one clears the client's count)."""

    def __init__(self, own: Budget, everyone: Budget):
        self.own = own
        self.everyone = everyone

    def check(self, client: str) -> int:
        return self.own.check(client) or self.everyone.check("*")

    def clear(self, client: str) -> None:
        self.own.clear(client)


class Limits:
    """The service's budgets, sharing one store: in memory, or in PostgreSQL with GOVFAQ_DATABASE_URL."""

    def __init__(self, settings, staff_login: bool = True):
        self.shared = getattr(settings, "database_url", None) is not None
        if self.shared:
            from bot.shared_limits import PostgresLimitsStorage
            from bot.storage import shared_postgres

            storage = PostgresLimitsStorage(shared_postgres(settings.database_url.get_secret_value(), settings.database_pool_size))
        else:
            storage = MemoryStorage()
        self.limiter = MovingWindowRateLimiter(storage)
        per_minute = settings.ask_rate_per_minute
        self.bot = Budget("bot", RateLimitItemPerMinute(per_minute), limiter=self.limiter) if per_minute else None
        per_minute = settings.feedback_rate_per_minute
        self.feedback = Budget("feedback", RateLimitItemPerMinute(per_minute), limiter=self.limiter) if per_minute else None
        per_client = settings.staff_login_attempts_per_minute
        # A client that keeps guessing is slowed to 4 × the minute's attempts an hour.
        self.staff_login = LoginBudget(
            Budget("login", RateLimitItemPerMinute(per_client), RateLimitItemPerHour(4 * per_client), limiter=self.limiter),
            Budget("login-all", RateLimitItemPerMinute(settings.staff_login_global_per_minute), limiter=self.limiter),
        ) if staff_login else None

    def for_request(self, method: str, path: str, query: str) -> Budget | None:
        """The budget a request counts against: every route that runs the bot shares one."""
        if (method, path) in (("POST", "/api/ask"), ("GET", "/api/search"), ("POST", "/")):
            return self.bot
        if method in ("GET", "HEAD") and path == "/" and _has_param(query, "q"):
            return self.bot
        if (method, path) == ("POST", "/api/feedback"):
            return self.feedback
        if (method, path) == ("POST", "/staff/login"):
            return self.staff_login
        return None


def _has_param(query: str, name: str) -> bool:
    return any(part.split("=", 1)[0] == name for part in query.split("&") if part)


class SessionQuota:
    """At most `per_client` conversations per client. A client starting one more loses its own
    oldest conversation, so that one client cannot push everyone else's out of the store."""

    def __init__(self, per_client: int, max_clients: int = MAX_CLIENTS):
        self.per_client = per_client
        self.max_clients = max_clients
        self._by_client: OrderedDict[str, deque[str]] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, client: str, session_id: str) -> list[str]:
        """Count a new conversation of `client`; returns the ids of that client's conversations to drop."""
        with self._lock:
            ids = self._by_client.pop(client, None) or deque()
            self._by_client[client] = ids  # most recently active last
            ids.append(session_id)
            dropped = [ids.popleft() for _ in range(len(ids) - self.per_client)]
            while len(self._by_client) > self.max_clients:
                self._by_client.popitem(last=False)
            return dropped
