"""`govfaq loadtest`: many residents at once against the web service, over loopback only.

The tool starts `govfaq serve` on a free loopback port (or targets a server
already running on loopback), waits for `/readyz`, warms up, then runs a
fixed number of concurrent simulated residents for a fixed time and stops
the server again. Every figure is measured; nothing here asserts a
wall-clock time. The exit status reflects unexpected errors, memory growth
over the limit and a rate limit that never answered 429.

What the residents do (a deterministic mix from `--seed`):

- ask one of the FAQ paraphrases (`alt_questions`), and sometimes follow up
  in the same conversation (「締切は？」…, with the returned `session_id`),
  open the FAQ page, or send feedback;
- ask an out-of-scope question (index/calibration/out_of_scope.txt), and
  sometimes a second question in the same conversation;
- walk the シナリオ検索 tree through the API, load the resident page, or
  use the counter's search.

Addresses: the tool plays the reverse proxy in front of the service. Every
conversation carries its own `X-Forwarded-For` address from 198.18.0.0/15
(the range set aside for benchmarks, RFC 2544), so the per-client rate limit
applies per simulated resident, as it would behind a load balancer; uvicorn
honours the header from the trusted loopback proxy (`--forwarded-allow-ips`).
One deliberately abusive client asks faster than the limit from a single
address, on a fixed schedule whatever the replies; its 429 replies (each
must carry `Retry-After`) are counted apart as "deliberate". A 429 to a
resident is an error.

Connections: the residents share one keep-alive pool (the proxy's), except
that a second question in a conversation goes over a new connection, so
with several workers it may reach another worker than the first: the report
gives the share of second questions that kept their `session_id`.

Memory: the resident set size (VmRSS) of the server's whole process tree
(the uvicorn supervisor and its workers) after the warm-up and after the run.

The server the tool starts gets a throw-away data folder that links the
built index, so the load's queries and feedback never reach the real query
log in `var/govfaq.sqlite3`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

MAX_CLIENTS = 500
MAX_DURATION_S = 900.0
RSS_GROWTH_LIMIT_PCT = 10.0
# The benchmarking range (RFC 2544): never a real resident's address.
RESIDENT_NETWORK = ipaddress.ip_network("198.18.0.0/15")
RESIDENT_ADDRESSES = 131_000
ABUSER_ADDRESS = str(RESIDENT_NETWORK[-2])  # 198.19.255.254, outside the residents' share
ABUSER_CONNECTIONS = 8  # requests of the abusive client under way at once, at most
FOLLOW_UPS = ("締切は？", "電話番号は？", "対象は？", "いくら？", "いつまで申し込めますか？", "問い合わせ先は？")
OUT_OF_SCOPE_FILE = Path(__file__).resolve().parent.parent / "index" / "calibration" / "out_of_scope.txt"
# Request kinds in the report, in this order.
KINDS = ("ask", "ask_out_of_scope", "follow_up", "faq_page", "feedback", "scenario", "faq_api", "page", "search")


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

    def summary(self, elapsed: float) -> dict:
        every = [s for values in self.latencies.values() for s in values]
        total = sum(self.requests.values())

        def ms(values: list[float], q: float) -> float | None:
            value = percentile(values, q)
            return None if value is None else round(value * 1000, 2)

        by_kind = {}
        for kind in KINDS:
            if self.requests[kind]:
                lat = self.latencies.get(kind, [])
                by_kind[kind] = {
                    "requests": self.requests[kind],
                    "errors": self.errors_by_kind[kind],
                    "p50_ms": ms(lat, 50),
                    "p95_ms": ms(lat, 95),
                    "p99_ms": ms(lat, 99),
                }
        asked = self.continued_asked
        return {
            "requests": total,
            "conversations": self.conversations,
            "throughput_rps": round(total / elapsed, 2) if elapsed > 0 else None,
            "latency_ms": {
                "p50": ms(every, 50),
                "p95": ms(every, 95),
                "p99": ms(every, 99),
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

    def summary(self, rate: float) -> dict:
        return {
            "rate_per_s": rate,
            "address": ABUSER_ADDRESS,
            "requests": self.requests,
            "answered": self.answered,
            "rate_limited": self.rate_limited,
            "retry_after_s": {"min": min(self.retry_after), "max": max(self.retry_after)} if self.retry_after else None,
            "errors": dict(sorted(self.errors.items())),
        }


def _failure(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.NetworkError):
        return "connection"
    if isinstance(exc, httpx.ProtocolError):
        return "protocol"
    return f"other_{type(exc).__name__}"


# ------------------------------------------------------------------ the load
class LoadRun:
    """Concurrent residents (one shared connection pool, like a proxy's) and one abusive client."""

    def __init__(self, base_url: str, workload: Workload, clients: int, seed: int = 7, timeout: float = 30.0,
                 abuse_rate: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.workload = workload
        self.clients = clients
        self.seed = seed
        self.timeout = timeout
        self.abuse_rate = abuse_rate
        self._addresses = 0

    def _next_address(self) -> str:
        self._addresses += 1
        return str(RESIDENT_NETWORK[1 + self._addresses % RESIDENT_ADDRESSES])

    async def _send(self, client: httpx.AsyncClient, tally: Tally, kind: str, method: str, url: str, address: str,
                    **kwargs) -> dict | str | None:
        """One request; the parsed body of a 2xx reply (dict for JSON, str for a page), else None."""
        started = time.perf_counter()
        try:
            resp = await client.request(method, url, headers={"X-Forwarded-For": address}, **kwargs)
        except httpx.HTTPError as exc:
            tally.error(kind, _failure(exc), detail=f"{method} {url}: {type(exc).__name__}: {exc}"[:200])
            return None
        seconds = time.perf_counter() - started
        if not 200 <= resp.status_code < 300:
            tally.error(kind, f"http_{resp.status_code}", resp.status_code, f"{method} {url}: {resp.text[:120]}")
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            try:
                body = resp.json()
            except ValueError:
                tally.error(kind, "bad_json", resp.status_code)
                return None
        else:
            body = resp.text
        tally.ok(kind, resp.status_code, seconds)
        return body

    async def _ask(self, client, tally, kind, query, address, session_id=None) -> dict | None:
        payload = {"query": query} if session_id is None else {"query": query, "session_id": session_id}
        reply = await self._send(client, tally, kind, "POST", "/api/ask", address, json=payload)
        if not isinstance(reply, dict):
            return None
        if session_id is not None:
            tally.continued_asked += 1
            tally.continued_kept += reply.get("session_id") == session_id
        return reply

    async def conversation(self, client: httpx.AsyncClient, tally: Tally, rng: random.Random, deadline: float,
                           fresh: httpx.AsyncClient | None = None) -> None:
        """One resident: a first request, then perhaps a second one in the same conversation.

        A second question goes over `fresh` (a new connection) when given: it comes later, and a proxy in
        front of several workers does not pin a resident to one, so it may reach another worker.
        """
        later = fresh or client
        address = self._next_address()
        tally.conversations += 1
        w = self.workload
        # Every random draw up front: the sequence of a client's choices does not depend on the replies.
        what, then, which, pick = rng.random(), rng.random(), rng.random(), [rng.random() for _ in range(4)]
        paraphrase = w.paraphrases[int(pick[0] * len(w.paraphrases))][1]

        def more() -> bool:  # a second request only inside the run
            return time.monotonic() < deadline

        if what < 0.55:  # an FAQ question, perhaps a follow-up, the FAQ page or feedback
            reply = await self._ask(client, tally, "ask", paraphrase, address)
            if not reply or not more():
                return
            answered = reply.get("faq_id")
            if then < 0.35:
                follow = w.follow_ups[int(which * len(w.follow_ups))]
                await self._ask(later, tally, "follow_up", follow, address, reply.get("session_id"))
            elif then < 0.50 and answered:
                await self._send(client, tally, "faq_page", "GET", f"/faqs/{answered}", address)
            elif then < 0.55 and answered and reply.get("query_id"):
                body = {"faq_id": answered, "helpful": which < 0.8, "query_id": reply["query_id"]}
                await self._send(client, tally, "feedback", "POST", "/api/feedback", address, json=body)
        elif what < 0.75:  # out of scope, perhaps a second question in the same conversation
            question = w.out_of_scope[int(pick[1] * len(w.out_of_scope))]
            reply = await self._ask(client, tally, "ask_out_of_scope", question, address)
            if reply and then < 0.25 and more():
                await self._ask(later, tally, "follow_up", paraphrase, address, reply.get("session_id"))
        elif what < 0.90:  # シナリオ検索: the fields, a field, perhaps a topic, perhaps an FAQ
            view = await self._send(client, tally, "scenario", "GET", "/api/scenarios", address)
            for draw in pick[1:3]:
                if not isinstance(view, dict) or not more():
                    return
                children = view.get("children") or []
                faqs = view.get("faqs") or []
                if children and (not faqs or draw < 0.7):
                    node = children[int(draw * len(children))]["id"]
                    view = await self._send(client, tally, "scenario", "GET", f"/api/scenarios/{node}", address)
                elif faqs:
                    chosen = faqs[int(draw * len(faqs))]["faq_id"]
                    await self._send(client, tally, "faq_api", "GET", f"/api/faqs/{chosen}", address)
                    return
        elif what < 0.95:
            await self._send(client, tally, "page", "GET", "/", address)
        else:  # the counter's lookup
            await self._send(client, tally, "search", "GET", "/api/search", address, params={"q": paraphrase})

    async def _resident(self, index: int, client: httpx.AsyncClient, fresh: httpx.AsyncClient, tally: Tally,
                        deadline: float, phase: str) -> None:
        rng = random.Random(f"{self.seed}:{phase}:{index}")
        while time.monotonic() < deadline:
            await self.conversation(client, tally, rng, deadline, fresh)

    async def _abuser(self, tally: AbuseTally, deadline: float) -> None:
        """Asks at `abuse_rate` per second from one address, on schedule, without waiting for the replies."""
        rng = random.Random(f"{self.seed}:abuse")
        interval = 1.0 / self.abuse_rate

        async def one(client: httpx.AsyncClient, query: str) -> None:
            tally.requests += 1
            try:
                resp = await client.post("/api/ask", json={"query": query}, headers={"X-Forwarded-For": ABUSER_ADDRESS})
            except httpx.HTTPError as exc:
                tally.errors[_failure(exc)] += 1
                return
            if resp.status_code == 429:
                wait = resp.headers.get("retry-after", "")
                if wait.isdigit() and int(wait) >= 1:
                    tally.rate_limited += 1
                    tally.retry_after.append(int(wait))
                else:
                    tally.errors["http_429_without_retry_after"] += 1
            elif 200 <= resp.status_code < 300:
                tally.answered += 1
            else:
                tally.errors[f"http_{resp.status_code}"] += 1

        async with self._client(ABUSER_CONNECTIONS) as client:
            sent = []
            due = time.monotonic()
            while due < deadline:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                due += interval
                sent.append(asyncio.ensure_future(one(client, rng.choice(self.workload.paraphrases)[1])))
            await asyncio.gather(*sent)

    def _client(self, connections: int, keep_alive: bool = True) -> httpx.AsyncClient:
        """A connection pool (like a proxy's to the service); without keep-alive, a new connection per request."""
        # trust_env=False: no proxy from the environment between the tool and the loopback server.
        return httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, trust_env=False,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections if keep_alive else 0),
        )

    async def run(self, duration: float, abuse: bool = True, phase: str = "load") -> tuple[Tally, AbuseTally, float]:
        """Residents (and the abuser) until `duration` has passed; requests under way are finished and counted."""
        tally, abuse_tally = Tally(), AbuseTally()
        started = time.monotonic()
        deadline = started + duration
        async with self._client(self.clients) as client, self._client(self.clients, keep_alive=False) as fresh:
            tasks = [self._resident(i, client, fresh, tally, deadline, phase) for i in range(self.clients)]
            if abuse and self.abuse_rate > 0:
                tasks.append(self._abuser(abuse_tally, deadline))
            await asyncio.gather(*tasks)
        return tally, abuse_tally, time.monotonic() - started


# ------------------------------------------------------------------ processes
def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3, the state, first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and all its living descendants (parents from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    if _proc_stat(pid) is None:
        return []
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return sorted(tree)


def _status_kib(pid: int, name: str, file: str = "status") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    kib = _status_kib(pid, "VmRSS")
    return None if kib is None else kib * 1024


def tree_memory(pid: int) -> dict:
    """VmRSS (and PSS where readable: shared pages counted once) of a process and its descendants."""
    processes = []
    for member in process_tree(pid):
        rss = rss_bytes(member)
        if rss is None:
            continue
        pss = _status_kib(member, "Pss", "smaps_rollup")
        try:
            name = Path(f"/proc/{member}/comm").read_text().strip()
        except OSError:
            name = "?"
        processes.append({"pid": member, "name": name, "rss_bytes": rss, "pss_bytes": None if pss is None else pss * 1024})
    pss_all = [p["pss_bytes"] for p in processes]
    return {
        "rss_bytes": sum(p["rss_bytes"] for p in processes),
        "pss_bytes": sum(pss_all) if processes and None not in pss_all else None,
        "processes": processes,
    }


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its living descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        fields = _proc_stat(member)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs spent busy since boot (/proc/stat), to see what else ran during the load."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_loopback(url: str) -> str:
    """The URL without a trailing slash; ValueError unless it is http(s) to a loopback address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url}: not an http:// URL")
    host = parts.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(f"{url}: the load test only targets loopback (127.0.0.0/8, ::1, localhost)")
    return url.rstrip("/")


async def wait_ready(base_url: str, timeout: float, needed: int = 3, proc: subprocess.Popen | None = None) -> float:
    """Seconds until /readyz answered 200 `needed` times in a row, each on a fresh connection
    (with several workers, each worker must have loaded the index)."""
    started = time.monotonic()
    streak = 0
    while streak < needed:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it was ready")
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the server was not ready after {timeout:.0f} s")
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=5.0, trust_env=False) as client:
                resp = await client.get("/readyz", headers={"Connection": "close"})
            streak = streak + 1 if resp.status_code == 200 else 0
        except httpx.HTTPError:
            streak = 0
        await asyncio.sleep(0.02 if streak else 0.25)
    return time.monotonic() - started


class Server:
    """`govfaq serve` on a free loopback port, with a throw-away data folder linking the built index."""

    def __init__(self, workers: int, data_dir: Path, ask_rate: int, feedback_rate: int, content_dir: Path | None = None):
        self.workers = workers
        self.content_dir = content_dir
        self.data_dir = Path(data_dir).resolve()
        self.ask_rate = ask_rate
        self.feedback_rate = feedback_rate
        self.proc: subprocess.Popen | None = None
        self.work: Path | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("govfaq")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
        return base + ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                       "--forwarded-allow-ips", "127.0.0.1"]

    def start(self) -> None:
        if not (self.data_dir / "index" / "current").exists():
            raise RuntimeError(f"no built index in {self.data_dir / 'index'}: run `govfaq index build` first")
        self.work = Path(tempfile.mkdtemp(prefix="govfaq-loadtest-"))
        data = self.work / "var"
        data.mkdir()
        for name in ("index", "cache", "templates"):
            if (self.data_dir / name).exists():
                (data / name).symlink_to(self.data_dir / name)
        env = dict(os.environ)
        env.update({
            "GOVFAQ_DATA_DIR": str(data),
            "GOVFAQ_ASK_RATE_PER_MINUTE": str(self.ask_rate),
            "GOVFAQ_FEEDBACK_RATE_PER_MINUTE": str(self.feedback_rate),
        })
        if self.content_dir is not None:
            env["GOVFAQ_CONTENT_DIR"] = str(Path(self.content_dir).resolve())
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.port = free_port()
        self.log = open(self.work / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        # A session of its own: a Ctrl-C at the terminal reaches the tool, which then stops the server.
        self.proc = subprocess.Popen(self.command(), env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.work / "serve.log").read_text(errors="replace").splitlines()[-lines:])
        except (OSError, TypeError):
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            members = process_tree(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)  # uvicorn shuts its workers down gracefully
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            for pid in members:  # only the processes of the server started here, by their id
                if _proc_stat(pid) is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            if self.proc.poll() is None:
                self.proc.wait(timeout=10)
        if getattr(self, "log", None) is not None:
            self.log.close()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)  # links are removed, never followed


# ------------------------------------------------------------------ the tool
@dataclass
class Options:
    clients: int = 50
    duration: float = 60.0
    workers: int = 1
    url: str | None = None
    pid: int | None = None
    seed: int = 7
    timeout: float = 30.0
    warmup: float = 5.0
    abuse_rate: float = 5.0
    max_rss_growth_pct: float = RSS_GROWTH_LIMIT_PCT
    ready_timeout: float = 300.0
    settle: float = 1.0  # seconds between the end of a phase and reading the memory
    data_dir: Path | None = None
    content_dir: Path | None = None

    def check(self) -> None:
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise ValueError(f"--clients must be between 1 and {MAX_CLIENTS}")
        if not 0 < self.duration <= MAX_DURATION_S:
            raise ValueError(f"--duration must be over 0 and at most {MAX_DURATION_S:.0f} s")
        if not 0 <= self.warmup <= 120:
            raise ValueError("--warmup must be between 0 and 120 s")
        if not 0 <= self.abuse_rate <= 100:
            raise ValueError("--abuse-rate must be between 0 and 100 per second")
        if not 1 <= self.workers <= 16:
            raise ValueError("--workers must be between 1 and 16")
        if self.timeout <= 0:
            raise ValueError("--timeout must be positive")
        if self.url is not None:
            self.url = check_loopback(self.url)
        elif self.pid is not None:
            raise ValueError("--pid only goes with --url (the tool measures the server it starts itself)")


def _current_index(data_dir: Path) -> str | None:
    try:
        return os.readlink(data_dir / "index" / "current")
    except OSError:
        return None


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def run_loadtest(options: Options, workload: Workload | None = None, progress=None) -> dict:
    """Start (or reach) the server, warm up, load, measure; the report as one dict."""
    options.check()
    say = progress or (lambda message: None)
    if workload is None:
        workload = load_workload(options.content_dir)
    from bot.settings import Settings

    defaults = Settings.model_fields
    server = None
    report: dict = {
        "target": options.url,
        "started_server": options.url is None,
        "workers": options.workers if options.url is None else None,
        "clients": options.clients,
        "duration_s": options.duration,
        "warmup_s": options.warmup,
        "seed": options.seed,
        "timeout_s": options.timeout,
        "cpu_count": os.cpu_count(),
        "index_rebuilt": None,
    }
    # A plain `kill` of the tool must not leave the server it started running.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if options.url is None:
            data_dir = options.data_dir or Settings().data_dir
            server = Server(options.workers, data_dir, defaults["ask_rate_per_minute"].default,
                            defaults["feedback_rate_per_minute"].default, options.content_dir)
            index_before = _current_index(server.data_dir)
            server.start()
            base_url, pid = server.base_url, server.proc.pid
            report["target"] = base_url
            report["server_command"] = " ".join(server.command()[-9:])
            say(f"started {' '.join(server.command()[-9:])} (pid {pid}); waiting for /readyz")
            try:
                ready = asyncio.run(wait_ready(base_url, options.ready_timeout, needed=5 * options.workers, proc=server.proc))
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{server.log_tail()}") from None
            # A stale index is rebuilt by the server at start-up (into the real data folder, as `govfaq serve`
            # would): its memory then includes the build, so the report says so.
            report["index_rebuilt"] = _current_index(server.data_dir) != index_before
        else:
            base_url, pid = options.url, options.pid
            ready = asyncio.run(wait_ready(base_url, options.ready_timeout))
        report["ready_s"] = round(ready, 2)

        run = LoadRun(base_url, workload, options.clients, options.seed, options.timeout, options.abuse_rate)
        warm_requests = 0
        if options.warmup > 0:
            say(f"ready after {ready:.1f} s; warming up for {options.warmup:g} s")
            warm, _, _ = asyncio.run(run.run(options.warmup, abuse=False, phase="warm-up"))
            warm_requests = sum(warm.requests.values())
        report["warmup_requests"] = warm_requests
        time.sleep(options.settle)  # requests finished; let the worker threads settle before reading memory
        memory_before = tree_memory(pid) if pid else None
        cpu_before, own_before = (tree_cpu_seconds(pid) if pid else None), _own_cpu_seconds()
        busy_before = machine_busy_seconds()

        say(f"{options.clients} clients for {options.duration:g} s"
            + (f", one abusive client at {options.abuse_rate:g}/s" if options.abuse_rate > 0 else ""))
        tally, abuse, elapsed = asyncio.run(run.run(options.duration))
        own_cpu = _own_cpu_seconds() - own_before
        server_cpu = (tree_cpu_seconds(pid) - cpu_before) if pid else None
        busy_after = machine_busy_seconds()
        busy = None if busy_before is None or busy_after is None else busy_after - busy_before
        time.sleep(options.settle)
        memory_after = tree_memory(pid) if pid else None

        report["elapsed_s"] = round(elapsed, 2)
        report.update(tally.summary(elapsed))
        report["deliberate"] = None
        if options.abuse_rate > 0:
            # The limit of the server started here; for --url the shipped default is assumed.
            limit = defaults["ask_rate_per_minute"].default
            report["deliberate"] = abuse.summary(options.abuse_rate) | {
                "limit_per_minute": limit,
                "expect_429": abuse.requests > limit and options.abuse_rate * min(options.duration, 60.0) > limit,
            }
        report["memory"] = _memory_report(memory_before, memory_after, options.max_rss_growth_pct)
        report["cpu"] = {
            "server_s": None if server_cpu is None else round(server_cpu, 2),
            "server_cores": None if server_cpu is None else round(server_cpu / elapsed, 2),
            "loadtest_s": round(own_cpu, 2),
            "loadtest_cores": round(own_cpu / elapsed, 2),
            # Everything else on the machine meanwhile (other programs, the kernel): the figures are only
            # comparable between runs where this stays near 0.
            "other_cores": None if busy is None or server_cpu is None else round(max(0.0, busy - server_cpu - own_cpu) / elapsed, 2),
        }
    finally:
        if server is not None:
            say("stopping the server")
            server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    flags = []
    if report["errors_total"]:
        flags.append("errors")
    if report["memory"] and report["memory"]["growth_pct"] is not None and report["memory"]["growth_pct"] > options.max_rss_growth_pct:
        flags.append("rss_growth")
    abuse = report["deliberate"]
    if abuse is not None and ((abuse["expect_429"] and abuse["rate_limited"] == 0) or abuse["errors"]):
        flags.append("rate_limit")
    report["flags"] = flags
    report["ok"] = not flags
    return report


def _memory_report(before: dict | None, after: dict | None, limit: float) -> dict | None:
    if not before or not after or not before["rss_bytes"]:
        return None
    growth = (after["rss_bytes"] - before["rss_bytes"]) / before["rss_bytes"] * 100
    pss_growth = None
    if before["pss_bytes"] and after["pss_bytes"] is not None:
        pss_growth = round((after["pss_bytes"] - before["pss_bytes"]) / before["pss_bytes"] * 100, 2)
    return {
        "rss_before_bytes": before["rss_bytes"],
        "rss_after_bytes": after["rss_bytes"],
        "growth_pct": round(growth, 2),
        "limit_pct": limit,
        "pss_before_bytes": before["pss_bytes"],
        "pss_after_bytes": after["pss_bytes"],
        "pss_growth_pct": pss_growth,
        "processes_before": [{k: p[k] for k in ("pid", "name", "rss_bytes")} for p in before["processes"]],
        "processes_after": [{k: p[k] for k in ("pid", "name", "rss_bytes")} for p in after["processes"]],
    }


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def format_report(r: dict) -> str:
    mib = 2**20
    lines = []
    who = f"govfaq serve --workers {r['workers']}, started by the tool" if r["started_server"] else "a running server"
    lines.append(f"{'target':<12} {r['target']} ({who}; ready after {r['ready_s']} s)")
    if r.get("index_rebuilt"):
        lines.append(f"{'':<12} the index was stale and the server rebuilt it at start-up: its memory includes the build")
    lines.append(f"{'load':<12} {r['clients']} clients for {r['duration_s']:g} s, seed {r['seed']}, "
                 f"after a {r['warmup_s']:g} s warm-up ({r['warmup_requests']} requests)")
    lines.append(f"{'requests':<12} {r['requests']} in {r['elapsed_s']} s = {r['throughput_rps']} req/s "
                 f"({r['conversations']} conversations)")
    lat = r["latency_ms"]
    lines.append(f"{'latency':<12} p50 {_ms(lat['p50'])}, p95 {_ms(lat['p95'])}, p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}")
    for kind, k in r["by_kind"].items():
        lines.append(f"  {kind:<17} {k['requests']:>6}  p50 {_ms(k['p50_ms']):>9}  p95 {_ms(k['p95_ms']):>9}  "
                     f"p99 {_ms(k['p99_ms']):>9}" + (f"  errors {k['errors']}" if k["errors"] else ""))
    errors = ", ".join(f"{name} {count}" for name, count in r["errors"].items()) or "none"
    lines.append(f"{'errors':<12} {errors}")
    lines.extend(f"  {sample}" for sample in r.get("error_samples", []))
    d = r["deliberate"]
    if d is not None:
        retry = f" with Retry-After {d['retry_after_s']['min']}–{d['retry_after_s']['max']} s" if d["retry_after_s"] else ""
        extra = "; errors " + ", ".join(f"{k} {v}" for k, v in d["errors"].items()) if d["errors"] else ""
        lines.append(f"{'deliberate':<12} 1 client at {d['rate_per_s']:g}/s from {d['address']}: {d['requests']} requests, "
                     f"{d['answered']} answered, {d['rate_limited']} × 429{retry}{extra}"
                     + ("" if d["expect_429"] else f" (too few to pass {d['limit_per_minute']} a minute)"))
    s = r["sessions"]
    if s["continued_asks"]:
        lines.append(f"{'sessions':<12} {s['same_session']} of {s['continued_asks']} second questions kept their "
                     f"conversation ({s['continuity'] * 100:.1f}%)")
    m = r["memory"]
    if m is None:
        lines.append(f"{'memory':<12} not measured (give --pid with --url)")
    else:
        pss = ""
        if m["pss_growth_pct"] is not None:
            pss = f"; PSS {m['pss_before_bytes'] / mib:.0f} → {m['pss_after_bytes'] / mib:.0f} MiB ({m['pss_growth_pct']:+.1f}%)"
        lines.append(f"{'memory':<12} RSS {m['rss_before_bytes'] / mib:.0f} → {m['rss_after_bytes'] / mib:.0f} MiB "
                     f"({m['growth_pct']:+.1f}%, limit {m['limit_pct']:g}%) over {len(m['processes_after'])} process(es){pss}")
    c = r["cpu"]
    server_cpu = f"server {c['server_cores']} cores, " if c["server_cores"] is not None else ""
    others = f", everything else {c['other_cores']} cores" if c.get("other_cores") is not None else ""
    lines.append(f"{'cpu':<12} {server_cpu}load test {c['loadtest_cores']} cores{others}, of {r['cpu_count']} CPUs shared")
    lines.append(f"{'result':<12} " + ("ok" if r["ok"] else "flagged: " + ", ".join(r["flags"])))
    return "\n".join(lines)


def report_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False)
