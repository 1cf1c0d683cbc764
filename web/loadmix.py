"""What the load test's residents do, and how their replies are counted: plain Python, no I/O.

`web/loadgen.py` sends these requests with locust; this module only decides
them and adds up what came back, so the mix and the figures are tested
without a network, a server or gevent.

A conversation is a generator of `Call`s: it yields a request, receives the
parsed body of its reply (a dict for JSON, a str for a page, None on any
failure) and decides the next request from it — a follow-up needs the
`session_id` of the first answer, a シナリオ検索 walk the children of the node it
is on. Every random draw is made up front, so the same seed gives the same
choices whatever the replies. The mix:

- 55 % ask one of the FAQ paraphrases (`alt_questions`); then 35 % follow up
  in the same conversation (「締切は？」…, with the returned `session_id`),
  15 % open the FAQ's page, 5 % send feedback;
- 20 % ask an out-of-scope question (index/calibration/out_of_scope.txt); a
  quarter of them ask an FAQ paraphrase next, in the same conversation;
- 15 % walk the シナリオ検索 tree through the API (fields → field → topic or FAQ);
- 5 % load the resident page, 5 % use the counter's search.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

# The benchmarking range (RFC 2544): never a real resident's address.
RESIDENT_NETWORK = ipaddress.ip_network("198.18.0.0/15")
RESIDENT_ADDRESSES = 131_000
ABUSER_ADDRESS = str(RESIDENT_NETWORK[-2])  # 198.19.255.254, outside the residents' share
FOLLOW_UPS = ("締切は？", "電話番号は？", "対象は？", "いくら？", "いつまで申し込めますか？", "問い合わせ先は？")
OUT_OF_SCOPE_FILE = Path(__file__).resolve().parent.parent / "index" / "calibration" / "out_of_scope.txt"
Kind = Literal["ask", "ask_out_of_scope", "follow_up", "faq_page", "feedback", "scenario", "faq_api", "page", "search"]
# Request kinds in the report, in this order.
KINDS: tuple[Kind, ...] = ("ask", "ask_out_of_scope", "follow_up", "faq_page", "feedback", "scenario", "faq_api", "page", "search")
# The kinds that are a resident's question (the "questions per second").
QUESTIONS: frozenset[str] = frozenset({"ask", "ask_out_of_scope", "follow_up"})
Body = dict | str | None


# ------------------------------------------------------------------ workload
@dataclass(frozen=True)
class Workload:
    """What residents type: FAQ paraphrases, out-of-scope questions and follow-ups."""

    paraphrases: tuple[tuple[str, str], ...]  # (faq_id, paraphrase)
    out_of_scope: tuple[str, ...]
    follow_ups: tuple[str, ...] = FOLLOW_UPS


def read_out_of_scope(path: Path = OUT_OF_SCOPE_FILE) -> tuple[str, ...]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def load_workload(content_dir: Path | None = None) -> Workload:
    """The mix from the knowledge base being served (its `alt_questions`) and the calibration negatives."""
    from faq.loader import CONTENT_DIR, load_knowledge_base

    kb = load_knowledge_base(content_dir or CONTENT_DIR).kb
    paraphrases = tuple((faq.id, alt) for faq in kb.faqs for alt in faq.alt_questions)
    if not paraphrases:
        raise ValueError("the knowledge base has no paraphrases (alt_questions) to ask")
    return Workload(paraphrases, read_out_of_scope())


def resident_address(n: int) -> str:
    """The n-th simulated resident's X-Forwarded-For address (198.18.0.1 …, never the abuser's)."""
    return str(RESIDENT_NETWORK[1 + n % RESIDENT_ADDRESSES])


# ------------------------------------------------------------------ conversations
@dataclass(frozen=True)
class Call:
    """One request of a conversation. `fresh`: send it over a new connection (a later message of the
    conversation; a proxy in front of several workers does not pin a resident to one)."""

    kind: Kind
    method: Literal["GET", "POST"]
    path: str
    json: dict | None = None
    fresh: bool = False

    @property
    def session_id(self) -> str | None:
        return (self.json or {}).get("session_id")


def _ask(kind: Kind, query: str, session_id: str | None = None) -> Call:
    payload = {"query": query} if session_id is None else {"query": query, "session_id": session_id}
    return Call(kind, "POST", "/api/ask", payload, fresh=session_id is not None)


Conversation = Generator[Call, Body, None]


def conversation(workload: Workload, rng: random.Random) -> Conversation:
    """One resident's requests; send each reply's body (None on failure) to get the next request."""
    w = workload
    what, then, which, pick = rng.random(), rng.random(), rng.random(), [rng.random() for _ in range(4)]
    paraphrase = w.paraphrases[int(pick[0] * len(w.paraphrases))][1]
    if what < 0.55:  # an FAQ question, perhaps a follow-up, the FAQ page or feedback
        reply = yield _ask("ask", paraphrase)
        if not isinstance(reply, dict):
            return
        answered = reply.get("faq_id")
        if then < 0.35 and reply.get("session_id"):
            yield _ask("follow_up", w.follow_ups[int(which * len(w.follow_ups))], reply["session_id"])
        elif then < 0.50 and answered:
            yield Call("faq_page", "GET", f"/faqs/{answered}")
        elif then < 0.55 and answered and reply.get("query_id"):
            yield Call("feedback", "POST", "/api/feedback",
                       {"faq_id": answered, "helpful": which < 0.8, "query_id": reply["query_id"]})
    elif what < 0.75:  # out of scope, perhaps a second question in the same conversation
        reply = yield _ask("ask_out_of_scope", w.out_of_scope[int(pick[1] * len(w.out_of_scope))])
        if isinstance(reply, dict) and then < 0.25 and reply.get("session_id"):
            yield _ask("follow_up", paraphrase, reply["session_id"])
    elif what < 0.90:  # シナリオ検索: the fields, a field, perhaps a topic, perhaps an FAQ
        view = yield Call("scenario", "GET", "/api/scenarios")
        for draw in pick[1:3]:
            if not isinstance(view, dict):
                return
            children = view.get("children") or []
            faqs = view.get("faqs") or []
            if children and (not faqs or draw < 0.7):
                view = yield Call("scenario", "GET", f"/api/scenarios/{children[int(draw * len(children))]['id']}")
            elif faqs:
                yield Call("faq_api", "GET", f"/api/faqs/{faqs[int(draw * len(faqs))]['faq_id']}")
                return
            else:
                return
    elif what < 0.95:
        yield Call("page", "GET", "/")
    else:  # the counter's lookup
        yield Call("search", "GET", "/api/search?" + urlencode({"q": paraphrase}))


def failure_of(exc: BaseException | None) -> str:
    """The error class of a request that got no HTTP reply (by the exception's type, so that gevent's and
    geventhttpclient's exceptions are classified without importing them here)."""
    name = type(exc).__name__.lower()
    if isinstance(exc, TimeoutError) or "timeout" in name:  # socket.timeout, gevent.Timeout
        return "timeout"
    if isinstance(exc, (ConnectionError, OSError)) or "closed" in name:  # refused, reset, HTTPConnectionClosed
        return "connection"
    if "parse" in name:  # HTTPParseError
        return "protocol"
    return f"other_{type(exc).__name__}"


# ------------------------------------------------------------------ figures
def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ms(values: list[float], q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None else round(value * 1000, 2)


@dataclass
class Tally:
    """What the residents saw. Latencies are of 2xx replies only, in seconds."""

    requests: Counter = field(default_factory=Counter)  # by kind
    latencies: dict[str, list[float]] = field(default_factory=dict)  # by kind
    statuses: Counter = field(default_factory=Counter)  # "200", "404" …
    errors: Counter = field(default_factory=Counter)  # "http_500", "timeout", "connection" …
    errors_by_kind: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)  # the first few, to say what went wrong
    conversations: int = 0
    continued_asked: int = 0  # asks that sent a session_id
    continued_kept: int = 0  # … and got the same session_id back

    def ok(self, kind: str, status: int, seconds: float) -> None:
        self.requests[kind] += 1
        self.statuses[str(status)] += 1
        self.latencies.setdefault(kind, []).append(seconds)

    def error(self, kind: str, what: str, status: int | None = None, detail: str = "") -> None:
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{kind}: {what}" + (f" ({detail})" if detail else ""))
        self.requests[kind] += 1
        if status is not None:
            self.statuses[str(status)] += 1
        self.errors[what] += 1
        self.errors_by_kind[kind] += 1

    def reply(self, call: Call, status: int, seconds: float, body: Body, failure: str | None = None,
              detail: str = "") -> Body:
        """Count one reply to `call`; the body the conversation goes on with (None unless 2xx)."""
        if failure is None and not 200 <= status < 300:
            failure = f"http_{status}"
        if failure is not None:
            self.error(call.kind, failure, status or None, f"{call.method} {call.path}: {detail}"[:200])
            return None
        self.ok(call.kind, status, seconds)
        if call.session_id is not None and isinstance(body, dict):
            self.continued_asked += 1
            self.continued_kept += body.get("session_id") == call.session_id
        return body

    def merge(self, other: Tally) -> None:
        self.requests.update(other.requests)
        for kind, values in other.latencies.items():
            self.latencies.setdefault(kind, []).extend(values)
        self.statuses.update(other.statuses)
        self.errors.update(other.errors)
        self.errors_by_kind.update(other.errors_by_kind)
        self.error_samples.extend(other.error_samples[: max(0, 5 - len(self.error_samples))])
        self.conversations += other.conversations
        self.continued_asked += other.continued_asked
        self.continued_kept += other.continued_kept

    def questions(self) -> int:
        return sum(self.requests[kind] for kind in QUESTIONS)

    def summary(self, elapsed: float) -> dict:
        every = [s for values in self.latencies.values() for s in values]
        total = sum(self.requests.values())
        by_kind = {}
        for kind in KINDS:
            if self.requests[kind]:
                lat = self.latencies.get(kind, [])
                by_kind[kind] = {
                    "requests": self.requests[kind],
                    "errors": self.errors_by_kind[kind],
                    "p50_ms": _ms(lat, 50),
                    "p95_ms": _ms(lat, 95),
                    "p99_ms": _ms(lat, 99),
                }
        asked = self.continued_asked
        return {
            "requests": total,
            "conversations": self.conversations,
            "throughput_rps": round(total / elapsed, 2) if elapsed > 0 else None,
            "questions": self.questions(),
            "questions_per_s": round(self.questions() / elapsed, 2) if elapsed > 0 else None,
            "latency_ms": {
                "p50": _ms(every, 50),
                "p95": _ms(every, 95),
                "p99": _ms(every, 99),
                "max": round(max(every) * 1000, 2) if every else None,
                "mean": round(sum(every) / len(every) * 1000, 2) if every else None,
            },
            "by_kind": by_kind,
            "statuses": dict(sorted(self.statuses.items())),
            "errors": dict(sorted(self.errors.items())),
            "errors_total": sum(self.errors.values()),
            "error_samples": list(self.error_samples),
            "sessions": {
                "continued_asks": asked,
                "same_session": self.continued_kept,
                "continuity": round(self.continued_kept / asked, 4) if asked else None,
            },
        }


@dataclass
class AbuseTally:
    """The deliberately abusive client: one address, asking faster than the limit."""

    requests: int = 0
    answered: int = 0
    rate_limited: int = 0  # 429 with a valid Retry-After
    retry_after: list[int] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)  # anything else, including a 429 without Retry-After
    unfinished: int = 0  # still under way when a step of the curve ended

    def reply(self, status: int, retry_after: str | None, failure: str | None = None) -> None:
        self.requests += 1
        if failure is not None:
            self.errors[failure] += 1
        elif status == 429:
            wait = (retry_after or "").strip()
            if wait.isdigit() and int(wait) >= 1:
                self.rate_limited += 1
                self.retry_after.append(int(wait))
            else:
                self.errors["http_429_without_retry_after"] += 1
        elif 200 <= status < 300:
            self.answered += 1
        else:
            self.errors[f"http_{status}"] += 1

    def merge(self, other: AbuseTally) -> None:
        self.requests += other.requests
        self.answered += other.answered
        self.rate_limited += other.rate_limited
        self.retry_after.extend(other.retry_after)
        self.errors.update(other.errors)
        self.unfinished += other.unfinished

    def summary(self, rate: float) -> dict:
        return {
            "rate_per_s": rate,
            "address": ABUSER_ADDRESS,
            "requests": self.requests,
            "answered": self.answered,
            "rate_limited": self.rate_limited,
            "retry_after_s": {"min": min(self.retry_after), "max": max(self.retry_after)} if self.retry_after else None,
            "errors": dict(sorted(self.errors.items())),
            "unfinished": self.unfinished,
        }


# ------------------------------------------------------------------ the curve
@dataclass(frozen=True)
class Criterion:
    """What a step of the curve must meet to count: the latency residents accept, no errors, and the
    server kept up with what was offered."""

    p95_ms: float = 100.0
    max_errors: int = 0
    min_achieved_share: float = 0.95  # replies ÷ requests offered

    def failures(self, step: dict) -> list[str]:
        why = []
        p95 = step["p95_ms"]
        if p95 is None or p95 >= self.p95_ms:
            why.append(f"p95 {p95} ms ≥ {self.p95_ms:g} ms")
        if step["errors_total"] > self.max_errors:
            why.append(f"{step['errors_total']} errors")
        if step["offered_rps"] and step["achieved_rps"] < self.min_achieved_share * step["offered_rps"]:
            why.append(f"achieved {step['achieved_rps']} of {step['offered_rps']} req/s offered")
        return why


def step_figures(rate: float, tally: Tally, scheduled: int, window_s: float, elapsed_s: float,
                 late_s: list[float]) -> dict:
    """One step of the curve: `scheduled` requests were due in `window_s` at `rate`; the last reply came
    `elapsed_s` after the step began (in-flight requests are finished); `late_s`: how late the
    generator sent each request against its schedule."""
    every = [s for values in tally.latencies.values() for s in values]
    questions = [s for kind in QUESTIONS for s in tally.latencies.get(kind, [])]
    answered = len(every)
    return {
        "rate_per_s": rate,
        "offered_rps": round(scheduled / window_s, 2) if window_s > 0 else None,
        "achieved_rps": round(answered / elapsed_s, 2) if elapsed_s > 0 else None,
        "questions_per_s": round(len(questions) / elapsed_s, 2) if elapsed_s > 0 else None,
        "requests": sum(tally.requests.values()),
        "p50_ms": _ms(every, 50),
        "p95_ms": _ms(every, 95),
        "p99_ms": _ms(every, 99),
        "questions_p95_ms": _ms(questions, 95),
        "errors_total": sum(tally.errors.values()),
        "errors": dict(sorted(tally.errors.items())),
        "late_ms": {"p50": _ms(late_s, 50), "p99": _ms(late_s, 99), "max": _ms(late_s, 100)},
        "window_s": round(window_s, 2),
        "elapsed_s": round(elapsed_s, 2),
    }


def judge_curve(steps: list[dict], criterion: Criterion) -> dict:
    """Mark each step ok or not (with the reasons) and find the highest rate that met the criterion
    below the first step that did not."""
    highest = None
    for step in steps:
        why = criterion.failures(step)
        step["ok"] = not why
        step["failed_because"] = why
    for step in steps:
        if not step["ok"]:
            break
        highest = step
    return {
        "criterion": {"p95_ms_below": criterion.p95_ms, "errors_at_most": criterion.max_errors,
                      "achieved_share_at_least": criterion.min_achieved_share},
        "steps": steps,
        "highest_ok_rate_per_s": highest["rate_per_s"] if highest else None,
        "highest_ok_rps": highest["achieved_rps"] if highest else None,
        "highest_ok_questions_per_s": highest["questions_per_s"] if highest else None,
        "highest_ok_p95_ms": highest["p95_ms"] if highest else None,
        # False: every step passed, so the highest rate is a lower bound — offer higher rates to find the limit.
        "limit_found": any(not step["ok"] for step in steps),
    }
