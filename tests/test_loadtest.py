"""`govfaq loadtest`: the residents' mix, its figures, the curve, memory, and runs of the locust load.

The mix and the figures are plain Python (web/loadmix.py), tested without a
network. Runs of the real load generator (locust, in a process of its own)
go against a small stub service (Starlette under a real uvicorn in a
thread, on a free loopback port): no model, a few seconds each. They check
what was counted, never how long anything took. The open-loop run against
`govfaq serve` is marked slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from web import loadmix, loadtest
from web.loadmix import AbuseTally, Call, Criterion, Tally, Workload, conversation, judge_curve, percentile, step_figures
from web.loadtest import Options

STUB_LIMIT = 5  # asks per client per minute in the stub
FAILING = "boom"  # the stub answers this question with a 500


def stub_app(counts: Counter, slow_s: float = 0.8) -> Starlette:
    """The routes the load test uses, with a per-client ask limit (by request.client.host, as web/app.py)."""
    seen: dict[str, int] = Counter()
    sessions: set[str] = set()
    ids = itertools.count(1)

    async def readyz(request: Request):
        return JSONResponse({"status": "ready"})

    async def ask(request: Request):
        counts["ask"] += 1
        host = request.client.host
        seen[host] += 1
        if seen[host] > STUB_LIMIT:
            counts["ask_429"] += 1
            return JSONResponse({"detail": "too many"}, status_code=429, headers={"Retry-After": "7"})
        body = await request.json()
        if body["query"] == FAILING:
            counts["ask_500"] += 1
            return JSONResponse({"detail": "failed"}, status_code=500)
        session = body.get("session_id")
        if session not in sessions:
            session = f"s{next(ids)}"
            sessions.add(session)
        return JSONResponse({"kind": "answer", "faq_id": "faq-one", "session_id": session, "query_id": next(ids)})

    async def feedback(request: Request):
        counts["feedback"] += 1
        return JSONResponse({"stored": True, "message": "ok"})

    async def scenarios(request: Request):
        counts["scenario"] += 1
        node = request.path_params.get("node")
        if node is None:
            return JSONResponse({"children": [{"id": "field-a"}, {"id": "field-b"}], "faqs": []})
        return JSONResponse({"children": [], "faqs": [{"faq_id": "faq-one", "question": "q"}]})

    async def faq_api(request: Request):
        counts["faq_api"] += 1
        return JSONResponse({"id": request.path_params["faq_id"]})

    async def faq_page(request: Request):
        counts["faq_page"] += 1
        return HTMLResponse("<p>faq</p>")

    async def page(request: Request):
        counts["page"] += 1
        return HTMLResponse("<p>top</p>")

    async def search(request: Request):
        counts["search"] += 1
        return JSONResponse({"query": request.query_params["q"], "hits": []})

    async def slow(request: Request):
        await asyncio.sleep(slow_s)
        return JSONResponse({})

    return Starlette(routes=[
        Route("/readyz", readyz),
        Route("/api/ask", ask, methods=["POST"]),
        Route("/api/feedback", feedback, methods=["POST"]),
        Route("/api/scenarios", scenarios),
        Route("/api/scenarios/{node}", scenarios),
        Route("/api/faqs/{faq_id}", faq_api),
        Route("/faqs/{faq_id}", faq_page),
        Route("/", page),
        Route("/api/search", search),
        Route("/slow", slow),
    ])


@contextlib.contextmanager
def serve_stub(forwarded_allow_ips: str = "127.0.0.1"):
    """(base URL, request counts) of the stub under uvicorn, proxy headers as `govfaq serve` sets them."""
    counts: Counter = Counter()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(stub_app(counts), log_level="warning", lifespan="off",
                            proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", counts
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


WORKLOAD = Workload(
    paraphrases=(("faq-one", "協力隊の任期は？"), ("faq-two", "補助金はいくら？")),
    out_of_scope=(FAILING,),
)
HEALTHY = Workload(paraphrases=WORKLOAD.paraphrases, out_of_scope=("ごみの分別がわからない",))


WORKLOAD = Workload(
    paraphrases=(("faq-one", "協力隊の任期は？"), ("faq-two", "補助金はいくら？")),
    out_of_scope=(FAILING,),
)
HEALTHY = Workload(paraphrases=WORKLOAD.paraphrases, out_of_scope=("ごみの分別がわからない",))
SERVED = ("ask", "feedback", "scenario", "faq_api", "faq_page", "page", "search")
# The `govfaq loadtest --json` keys before the load came from locust: a contract, only ever added to.
CONTRACT = {
    "target", "started_server", "workers", "clients", "duration_s", "warmup_s", "seed", "timeout_s", "cpu_count",
    "index_rebuilt", "ready_s", "warmup_requests", "elapsed_s", "requests", "conversations", "throughput_rps",
    "latency_ms", "by_kind", "statuses", "errors", "errors_total", "error_samples", "sessions", "deliberate",
    "memory", "cpu", "flags", "ok",
}


def drive(talk, replies) -> list[Call]:
    """Run a conversation, answering each call with `replies(call)`; the calls it made."""
    calls = [next(talk)]
    while True:
        try:
            calls.append(talk.send(replies(calls[-1])))
        except StopIteration:
            return calls


def fake_reply(call: Call):
    """What the service would answer, enough for the conversation to go on."""
    if call.path == "/api/ask":
        return {"kind": "answer", "faq_id": "faq-one", "session_id": call.session_id or "s1", "query_id": 3}
    if call.path == "/api/scenarios":
        return {"children": [{"id": "field-a"}, {"id": "field-b"}], "faqs": []}
    if call.path.startswith("/api/scenarios/"):
        return {"children": [], "faqs": [{"faq_id": "faq-two"}]}
    return "<p>page</p>" if not call.path.startswith("/api/") else {}


def test_the_mix_of_conversations():
    rng = random.Random(11)
    firsts, seconds, calls_seen = Counter(), Counter(), []
    for _ in range(4000):
        calls = drive(conversation(HEALTHY, rng), fake_reply)
        calls_seen.append(calls)
        firsts[calls[0].kind] += 1
        for later in calls[1:]:
            seconds[later.kind] += 1
    share = {kind: count / 4000 for kind, count in firsts.items()}
    assert share["ask"] == pytest.approx(0.55, abs=0.03)
    assert share["ask_out_of_scope"] == pytest.approx(0.20, abs=0.03)
    assert share["scenario"] == pytest.approx(0.15, abs=0.03)
    assert share["page"] == pytest.approx(0.05, abs=0.015) and share["search"] == pytest.approx(0.05, abs=0.015)
    # Follow-ups: 35 % of FAQ questions and a quarter of out-of-scope ones.
    assert seconds["follow_up"] / 4000 == pytest.approx(0.55 * 0.35 + 0.20 * 0.25, abs=0.03)
    assert {"faq_page", "feedback", "faq_api"} <= set(seconds)
    for calls in calls_seen:
        first, rest = calls[0], calls[1:]
        assert not first.fresh and first.session_id is None
        for call in rest:
            if call.kind == "follow_up":  # same conversation, over a new connection
                assert call.session_id == "s1" and call.fresh and call.json["query"]
        if first.kind == "scenario":  # the walk follows the children of the node it is on
            assert [c.path for c in rest][:1] in ([], ["/api/scenarios/field-a"], ["/api/scenarios/field-b"])
            assert all(c.kind == "faq_api" and c.path == "/api/faqs/faq-two" for c in rest[1:])
        if first.kind == "search":
            assert first.path.startswith("/api/search?q=%E")


def test_same_seed_same_choices_and_a_failed_reply_ends_the_conversation():
    def kinds(seed: int, replies=fake_reply) -> list[list[str]]:
        rng = random.Random(seed)
        return [[c.kind for c in drive(conversation(HEALTHY, rng), replies)] for _ in range(60)]

    assert kinds(7) == kinds(7)
    assert kinds(7) != kinds(8)
    # Every draw is made up front: failures change what follows, never the next conversation's choices.
    failed = kinds(7, replies=lambda call: None)
    assert [k[0] for k in failed] == [k[0] for k in kinds(7)]
    assert all(len(k) == 1 for k in failed)


def test_tally_counts_replies_sessions_and_failures():
    tally = Tally()
    follow = Call("follow_up", "POST", "/api/ask", {"query": "締切は？", "session_id": "s1"}, fresh=True)
    assert tally.reply(follow, 200, 0.01, {"session_id": "s1"}) == {"session_id": "s1"}
    assert tally.reply(follow, 200, 0.01, {"session_id": "other"}) == {"session_id": "other"}
    assert tally.reply(follow, 500, 0.01, None, detail="boom") is None
    page = Call("page", "GET", "/")
    assert tally.reply(page, 200, 0.002, None, failure="bad_json") is None
    assert tally.reply(page, 0, 0.3, None, failure="timeout", detail="Timeout") is None
    assert (tally.continued_asked, tally.continued_kept) == (2, 1)
    assert dict(tally.errors) == {"http_500": 1, "bad_json": 1, "timeout": 1}
    assert tally.statuses == Counter({"200": 3, "500": 1})  # a failure without a reply has no status
    assert tally.error_samples[0] == "follow_up: http_500 (POST /api/ask: boom)"
    other = Tally()
    other.reply(page, 200, 0.004, "<p>")
    other.conversations = 2
    tally.merge(other)
    assert tally.requests == Counter({"follow_up": 3, "page": 3}) and tally.conversations == 2
    assert tally.latencies["page"] == [0.004] and tally.questions() == 3
    assert loadmix.failure_of(TimeoutError()) == "timeout" == loadmix.failure_of(socket.timeout())
    assert loadmix.failure_of(type("Timeout", (BaseException,), {})()) == "timeout"  # gevent's
    assert loadmix.failure_of(ConnectionRefusedError()) == "connection" == loadmix.failure_of(ConnectionResetError())
    assert loadmix.failure_of(type("HTTPParseError", (Exception,), {})()) == "protocol"
    assert loadmix.failure_of(ValueError()) == "other_ValueError"


def test_abuse_tally():
    abuse = AbuseTally()
    for status, wait in ((200, None), (429, "7"), (429, "12"), (429, None), (429, "0"), (500, None)):
        abuse.reply(status, wait)
    abuse.reply(0, None, failure="timeout")
    s = abuse.summary(5.0)
    assert (s["requests"], s["answered"], s["rate_limited"]) == (7, 1, 2)
    assert s["retry_after_s"] == {"min": 7, "max": 12}
    assert s["errors"] == {"http_429_without_retry_after": 2, "http_500": 1, "timeout": 1}
    assert s["address"] == loadmix.ABUSER_ADDRESS and not loadmix.RESIDENT_NETWORK.num_addresses < 2
    assert loadmix.ABUSER_ADDRESS not in {loadmix.resident_address(n) for n in range(0, 300_000, 997)}
    assert AbuseTally().summary(5.0)["retry_after_s"] is None


def test_percentiles():
    assert percentile([], 50) is None
    assert percentile([4.0], 99) == 4.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4], 0) == 1 and percentile([1, 2, 3, 4], 100) == 4
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    rng = random.Random(5)
    for size in (2, 7, 100, 1001):
        values = [rng.expovariate(10) for _ in range(size)]
        for q in (50, 95, 99):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_summary_figures():
    tally = Tally()
    for ms in (10, 20, 30, 40):
        tally.ok("ask", 200, ms / 1000)
    tally.ok("scenario", 200, 0.005)
    tally.error("ask", "timeout")
    tally.error("feedback", "http_503", 503)
    tally.continued_asked, tally.continued_kept = 4, 3
    s = tally.summary(elapsed=2.0)
    assert s["requests"] == 7
    assert s["throughput_rps"] == 3.5
    assert s["questions"] == 5 and s["questions_per_s"] == 2.5
    assert s["errors"] == {"http_503": 1, "timeout": 1} and s["errors_total"] == 2
    assert s["error_samples"] == ["ask: timeout", "feedback: http_503"]
    assert s["statuses"] == {"200": 5, "503": 1}
    assert s["by_kind"]["ask"] == {"requests": 5, "errors": 1, "p50_ms": 25.0, "p95_ms": 38.5, "p99_ms": 39.7}
    assert s["latency_ms"]["p50"] == 20.0 and s["latency_ms"]["max"] == 40.0
    assert s["sessions"] == {"continued_asks": 4, "same_session": 3, "continuity": 0.75}


def _step(rate: float, p95_ms: float, errors: int = 0, achieved_share: float = 1.0) -> dict:
    tally = Tally()
    for i in range(100):
        tally.ok("ask" if i % 2 else "page", 200, (p95_ms if i >= 94 else p95_ms / 2) / 1000)
    for _ in range(errors):
        tally.error("ask", "timeout")
    return step_figures(rate, tally, scheduled=int(rate * 10), window_s=10.0,
                        elapsed_s=100 / (rate * achieved_share), late_s=[0.001] * 100)


def test_the_curve_stops_at_the_first_failing_step():
    step = _step(20, 80)
    assert step["offered_rps"] == 20.0 and step["achieved_rps"] == 20.0 and step["requests"] == 100
    assert step["p95_ms"] == pytest.approx(80.0) and step["late_ms"]["p99"] == 1.0
    assert step["questions_per_s"] == 10.0  # half of them were questions
    curve = judge_curve([_step(20, 40), _step(40, 60), _step(60, 120), _step(80, 50)], Criterion())
    assert [s["ok"] for s in curve["steps"]] == [True, True, False, True]
    assert curve["steps"][2]["failed_because"] == ["p95 120.0 ms ≥ 100 ms"]
    # A step that passes above a failed one does not count: the curve ends at the first failure.
    assert curve["highest_ok_rate_per_s"] == 40 and curve["highest_ok_rps"] == 40.0 and curve["limit_found"]
    assert curve["highest_ok_questions_per_s"] == 20.0 and curve["highest_ok_p95_ms"] == pytest.approx(60.0)
    errors = judge_curve([_step(20, 40, errors=1)], Criterion())
    assert errors["highest_ok_rate_per_s"] is None and errors["steps"][0]["failed_because"] == ["1 errors"]
    behind = judge_curve([_step(20, 40, achieved_share=0.9)], Criterion())
    assert behind["steps"][0]["failed_because"] == ["achieved 18.0 of 20.0 req/s offered"]
    every = judge_curve([_step(20, 40), _step(40, 50)], Criterion())
    assert every["highest_ok_rate_per_s"] == 40 and every["limit_found"] is False


def test_memory_of_own_process_and_a_child():
    own = loadtest.rss_bytes(os.getpid())
    with open("/proc/self/statm") as statm_file:
        statm = int(statm_file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert own == pytest.approx(statm, rel=0.2)
    # A fresh child writes 64 MiB (in this long-lived process freed pages may be reused, so grow a new one).
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; blob = b'\\x01' * (64 << 20); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout.readline().strip() == b"ready"
        assert loadtest.rss_bytes(child.pid) > 64 * 2**20
        assert loadtest.process_tree(os.getpid())[0] <= os.getpid()
        assert child.pid in loadtest.process_tree(os.getpid())
        memory = loadtest.tree_memory(os.getpid())
        pids = {p["pid"] for p in memory["processes"]}
        assert {os.getpid(), child.pid} <= pids
        assert memory["rss_bytes"] == sum(p["rss_bytes"] for p in memory["processes"])
        assert memory["rss_bytes"] > loadtest.rss_bytes(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert child.pid not in loadtest.process_tree(os.getpid())
    assert loadtest.process_tree(child.pid) == []
    before = loadtest.tree_cpu_seconds(os.getpid())
    sum(i * i for i in range(3_000_000))
    assert loadtest.tree_cpu_seconds(os.getpid()) > before
    assert loadtest.machine_busy_seconds() > 0 and loadtest.own_cpu_seconds() > 0


def test_waiting_until_a_process_tree_is_idle():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # past the interpreter's start-up
        assert loadtest.wait_idle(sleeper.pid, timeout=3, cores=0.02, window=0.1) < 1.5
        assert loadtest.wait_idle(busy.pid, timeout=0.5, cores=0.02, window=0.1) >= 0.5
    finally:
        for child in (sleeper, busy):
            child.kill()
            child.wait()


def test_loopback_only_and_bounded():
    for url in ("http://127.0.0.1:8000/", "http://localhost:1", "http://[::1]:8000", "http://127.3.2.1"):
        assert loadtest.check_loopback(url) == url.rstrip("/")
    for url in ("http://10.0.0.1:8000", "http://example.org", "ftp://127.0.0.1", "127.0.0.1:8000"):
        with pytest.raises(ValueError):
            loadtest.check_loopback(url)
    for bad in ({"clients": 0}, {"clients": 501}, {"duration": 0}, {"duration": 901}, {"workers": 0},
                {"pid": 1}, {"url": "http://192.168.1.1"}, {"abuse_rate": -1}, {"rate": 0}, {"rate": 1001},
                {"rate": 10, "curve": True}, {"curve": True, "curve_rates": ()}, {"curve": True, "curve_rates": (40, 20)},
                {"curve": True, "step": 0}, {"curve": True, "step": 100, "curve_rates": tuple(range(10, 110, 10))},
                {"arrivals": "bursty"}, {"ask_limit": 0}, {"ask_limit": 10, "url": "http://127.0.0.1:1"}):
        with pytest.raises(ValueError):
            Options(**bad).check()
    Options().check()
    Options(curve=True).check()


def test_phases_of_each_mode():
    closed = Options(clients=7, duration=30, warmup=5)
    assert closed.mode == "closed"
    assert [(p["name"], p["rate"], p.get("measured", True)) for p in closed.phases()] == [
        ("warm-up", None, False), ("load", None, True)]
    assert closed.phases()[1]["clients"] == 7
    assert [p["rate"] for p in Options(rate=50, warmup=0).phases()] == [50]
    curve = Options(curve=True, curve_rates=(20, 40), step=10, warmup=3)
    assert curve.mode == "curve"
    assert [(p["name"], p["duration"], p["rate"]) for p in curve.phases()] == [
        ("warm-up", 3, 20), ("step-20", 10, 20), ("step-40", 10, 40)]
    assert [p.get("drain") for p in curve.phases()] == [None, 10, 10]  # bounded: a curve ends in minutes
    # A full default curve stays within a few minutes per worker count.
    default = Options(curve=True)
    assert default.step * len(default.curve_rates) + default.warmup <= 240


def test_workload_from_the_knowledge_base(shipped):
    work = loadtest.load_workload()
    assert len(work.paraphrases) == sum(len(f.alt_questions) for f in shipped.kb.faqs) > 100
    assert len(work.out_of_scope) > 50
    assert not any(q.startswith("#") or not q for q in work.out_of_scope)


def test_open_loop_counts_add_up_and_429s_of_the_abuser_are_deliberate():
    """A curve whose first step fails (the stub answers out-of-scope questions with 500): one step only."""
    with serve_stub() as (url, counts):
        options = Options(curve=True, curve_rates=(40, 80), step=1.2, warmup=0, url=url + "/", pid=os.getpid(),
                          abuse_rate=20, settle=0, arrivals="uniform")
        report = loadtest.run_loadtest(options, workload=WORKLOAD)
    assert CONTRACT <= set(report)
    assert report["mode"] == "curve" and report["clients"] is None and report["generator"].startswith("locust 2.")
    assert report["target"] == url and report["started_server"] is False and report["workers"] is None
    # Every request sent was answered and counted once, by the residents or the abuser, and locust agrees.
    served = sum(counts[k] for k in SERVED)
    abuse = report["deliberate"]
    assert report["requests"] + abuse["requests"] == served == report["locust"][0]["requests"]
    by_kind = report["by_kind"]
    for kind in ("feedback", "scenario", "faq_api", "faq_page", "page", "search"):
        assert by_kind.get(kind, {"requests": 0})["requests"] == counts[kind]
    asks = sum(by_kind.get(k, {"requests": 0})["requests"] for k in ("ask", "ask_out_of_scope", "follow_up"))
    assert asks + abuse["requests"] == counts["ask"] and asks == report["questions"]
    # The out-of-scope question fails in the stub: each one is an error, and nothing else is.
    assert by_kind["ask_out_of_scope"]["requests"] > 0
    assert report["errors"] == {"http_500": by_kind["ask_out_of_scope"]["requests"]} == {"http_500": counts["ask_500"]}
    assert report["statuses"]["500"] == report["errors_total"] and report["flags"] == ["errors"]
    # Each conversation has an address of its own: no resident was limited; the abuser was, with Retry-After.
    assert "429" not in report["statuses"]
    assert abuse["answered"] == STUB_LIMIT and abuse["rate_limited"] == abuse["requests"] - STUB_LIMIT == counts["ask_429"]
    assert abuse["retry_after_s"] == {"min": 7, "max": 7} and not abuse["errors"]
    assert abuse["expect_429"] is False  # too few to pass the service's own limit of 120
    # Follow-ups carried the session id and got the same one back.
    assert report["sessions"]["continued_asks"] > 0 and report["sessions"]["continuity"] == 1.0
    # The first step failed on its errors, so the curve stopped there; its arrivals came evenly at 40/s.
    curve = report["curve"]
    assert curve["rates_per_s"] == [40, 80] and curve["step_s"] == 1.2 and len(curve["steps"]) == 1
    step = curve["steps"][0]
    assert not step["ok"] and f"{report['errors_total']} errors" in step["failed_because"]
    assert curve["highest_ok_rate_per_s"] is None and curve["limit_found"]
    assert step["offered_rps"] == pytest.approx(40, rel=0.05) and step["requests"] == report["requests"]
    assert step["deliberate"]["answered"] == STUB_LIMIT and step["deliberate"]["rate_limited"] == abuse["rate_limited"]
    assert step["cpu"]["server_cores"] is not None and step["cpu"]["server_ms_per_request"] > 0  # "server": this process
    memory = report["memory"]
    assert os.getpid() in {p["pid"] for p in memory["processes_after"]} and memory["rss_before_bytes"] > 0
    assert json.loads(loadtest.report_json(report)) == report
    text = loadtest.format_report(report)
    assert "curve" in text and "429" in text and "no step met" in text and "flagged: errors" in text


def test_closed_loop_without_trusted_forwarded_for_every_resident_shares_one_limit():
    """The reason the tool relies on X-Forwarded-For: on loopback every client is 127.0.0.1."""
    with serve_stub(forwarded_allow_ips="") as (url, counts):
        report = loadtest.run_loadtest(Options(clients=3, duration=0.8, warmup=0, url=url, abuse_rate=20, settle=0),
                                       workload=HEALTHY)
    assert report["mode"] == "closed" and report["clients"] == 3 and "curve" not in report
    limited = report["errors"]["http_429"] + report["deliberate"]["rate_limited"]
    assert report["errors"]["http_429"] > 0
    assert counts["ask"] - limited == STUB_LIMIT  # one bucket for everybody


def test_cli_prints_one_json_object():
    from bot.cli import build_parser, main

    args = build_parser().parse_args(["loadtest"])
    assert (args.clients, args.duration, args.workers, args.url, args.seed) == (50, 60.0, 1, None, 7)
    assert (args.rate, args.curve, args.curve_rates, args.step, args.arrivals) == (None, False, None, 20.0, "poisson")
    args = build_parser().parse_args(["loadtest", "--curve", "--curve-rates", "10,30", "--ask-limit", "20"])
    assert args.curve and args.curve_rates == (10.0, 30.0) and args.ask_limit == 20
    assert build_parser().parse_args(["serve", "--forwarded-allow-ips", ""]).forwarded_allow_ips == ""
    assert build_parser().parse_args(["serve"]).forwarded_allow_ips is None
    with serve_stub() as (url, _):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["loadtest", "--url", url, "--rate", "30", "--duration", "0.6", "--warmup", "0",
                         "--abuse-rate", "0", "--json"])
    report = json.loads(out.getvalue())
    assert code == 0 and report["ok"] and report["memory"] is None and report["deliberate"] is None
    assert report["mode"] == "rate" and report["rate_per_s"] == 30 and report["arrivals"] == "poisson"
    assert CONTRACT <= set(report) and report["clients"] is None
    assert report["requests"] == sum(v["requests"] for v in report["by_kind"].values()) > 0
    assert report["open_loop"]["requests"] == report["requests"] and report["open_loop"]["errors_total"] == 0
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["loadtest", "--url", "http://192.0.2.1:80"]) == 2
    assert "loopback" in err.getvalue()


def test_server_command_trusts_only_the_loopback_proxy(tmp_path):
    server = loadtest.Server(2, tmp_path, 120, 30)
    command = server.command()
    assert command[command.index("--forwarded-allow-ips") + 1] == "127.0.0.1"
    assert command[command.index("--workers") + 1] == "2" and "127.0.0.1" == command[command.index("--host") + 1]
    with pytest.raises(RuntimeError, match="index build"):
        server.start()  # no built index in an empty folder


def test_the_library_layers_never_import_the_load_test():
    """bot/cli.py (the composition root) runs it; nothing below may import it, nor locust."""
    import pathlib

    root = pathlib.Path(loadtest.__file__).resolve().parent.parent
    for package in ("faq", "index", "bot"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if path.name == "cli.py" and package == "bot":
                continue
            assert "loadtest" not in text and "loadgen" not in text and "locust" not in text, path
    assert "import locust" not in pathlib.Path(loadtest.__file__).read_text(encoding="utf-8")


@pytest.mark.slow
def test_open_loop_against_govfaq_serve():
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "loadtest", "--rate", "8", "--arrivals", "uniform", "--duration", "4",
         "--warmup", "1", "--abuse-rate", "10", "--ask-limit", "20", "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["started_server"] and report["workers"] == 1 and isinstance(report["index_rebuilt"], bool)
    assert "--forwarded-allow-ips 127.0.0.1" in report["server_command"]
    loop = report["open_loop"]
    assert loop["offered_rps"] == pytest.approx(8, rel=0.05)
    assert loop["achieved_rps"] == pytest.approx(loop["offered_rps"], rel=0.2)  # the server kept up at a low rate
    assert report["requests"] > 20 and report["errors_total"] == 0
    abuse = report["deliberate"]  # 40 asks in 4 s from one address against a limit of 20 a minute
    assert abuse["limit_per_minute"] == 20 and abuse["expect_429"]
    assert abuse["answered"] <= 20 and abuse["rate_limited"] >= 15 and not abuse["errors"]
    assert abuse["retry_after_s"]["min"] >= 1
    assert report["sessions"]["continued_asks"] > 0 and report["sessions"]["continuity"] == 1.0
    assert report["memory"]["rss_before_bytes"] > 100 * 2**20
    assert report["ok"] or report["flags"] == ["rss_growth"], report["flags"]
