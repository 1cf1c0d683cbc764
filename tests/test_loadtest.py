"""`govfaq loadtest`: the load generator, its figures and its memory reading.

The fast tests run the tool against a small stub service (Starlette under a
real uvicorn in a thread, on a free loopback port): no model, a couple of
seconds each. They check what was counted, never how long anything took.
The end-to-end run against `govfaq serve` is marked slow.
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

from web import loadtest
from web.loadtest import AbuseTally, LoadRun, Options, Tally, Workload, percentile

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


def test_counts_add_up_and_429s_of_the_abuser_are_deliberate():
    with serve_stub() as (url, counts):
        run = LoadRun(url, WORKLOAD, clients=4, seed=3, timeout=5, abuse_rate=20)
        tally, abuse, elapsed = asyncio.run(run.run(1.5))
    served = sum(counts[k] for k in ("ask", "feedback", "scenario", "faq_api", "faq_page", "page", "search"))
    sent = sum(tally.requests.values())
    # Every request sent was answered and counted once, by the residents or the abuser.
    assert sent + abuse.requests == served
    assert sent > 20 and elapsed > 0
    for kind in ("feedback", "scenario", "faq_api", "faq_page", "page", "search"):
        assert tally.requests[kind] == counts[kind]
    assert tally.requests["ask"] + tally.requests["ask_out_of_scope"] + tally.requests["follow_up"] + abuse.requests == counts["ask"]
    # The out-of-scope question fails in the stub: each one is an error, and nothing else is.
    assert tally.requests["ask_out_of_scope"] > 0
    assert dict(tally.errors) == {"http_500": tally.requests["ask_out_of_scope"]}
    assert counts["ask_500"] == tally.requests["ask_out_of_scope"]
    assert tally.statuses["500"] == tally.errors["http_500"]
    assert sum(len(v) for v in tally.latencies.values()) == sent - sum(tally.errors.values())
    # Each conversation has an address of its own: no resident was limited; the abuser was, with Retry-After.
    assert "429" not in tally.statuses
    assert abuse.requests > STUB_LIMIT
    assert abuse.answered == STUB_LIMIT
    assert abuse.rate_limited == abuse.requests - STUB_LIMIT == counts["ask_429"]
    assert set(abuse.retry_after) == {7}
    assert not abuse.errors
    # Follow-ups carried the session id and got the same one back.
    assert tally.continued_asked > 0 and tally.continued_kept == tally.continued_asked


def test_without_trusted_forwarded_for_every_resident_shares_one_limit():
    """The reason the tool relies on X-Forwarded-For: on loopback every client is 127.0.0.1."""
    with serve_stub(forwarded_allow_ips="") as (url, counts):
        tally, abuse, _ = asyncio.run(LoadRun(url, HEALTHY, clients=3, seed=1, abuse_rate=20).run(1.0))
    limited = tally.errors["http_429"] + abuse.rate_limited
    assert tally.errors["http_429"] > 0
    assert counts["ask"] - limited == STUB_LIMIT  # one bucket for everybody


def test_same_seed_same_choices():
    def kinds(seed: int) -> list[str]:
        sent: list[str] = []

        class Recorder(LoadRun):
            async def _send(self, client, tally, kind, method, url, address, **kwargs):
                sent.append(kind)  # and no reply, as if failed: the conversation ends after its first request

        run = Recorder("http://127.0.0.1:9", HEALTHY, clients=1, seed=seed)
        rng = random.Random(f"{seed}:load:0")
        for _ in range(40):
            asyncio.run(run.conversation(None, Tally(), rng, time.monotonic() + 60))
        return sent

    assert kinds(7) == kinds(7)
    assert kinds(7) != kinds(8)
    assert {"ask", "ask_out_of_scope", "scenario"} <= set(kinds(7))


def test_failures_are_classified():
    async def go(url: str) -> Tally:
        tally = Tally()
        run = LoadRun(url, HEALTHY, clients=1, timeout=0.3)
        async with run._client(1) as client:
            await run._send(client, tally, "search", "GET", "/slow", "198.18.0.1")
            await run._send(client, tally, "page", "GET", "/missing", "198.18.0.1")
        return tally

    with serve_stub() as (url, _):
        tally = asyncio.run(go(url))
    assert dict(tally.errors) == {"timeout": 1, "http_404": 1}
    assert tally.errors_by_kind == Counter({"search": 1, "page": 1})
    assert tally.error_samples[0].startswith("search: timeout (GET /slow: ReadTimeout")
    assert tally.error_samples[1].startswith("page: http_404 (GET /missing")
    closed = loadtest.free_port()  # nothing listens there
    tally = asyncio.run(go(f"http://127.0.0.1:{closed}"))
    assert dict(tally.errors) == {"connection": 2}


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
    assert s["errors"] == {"http_503": 1, "timeout": 1} and s["errors_total"] == 2
    assert s["error_samples"] == ["ask: timeout", "feedback: http_503"]
    assert s["statuses"] == {"200": 5, "503": 1}
    assert s["by_kind"]["ask"] == {"requests": 5, "errors": 1, "p50_ms": 25.0, "p95_ms": 38.5, "p99_ms": 39.7}
    assert s["latency_ms"]["p50"] == 20.0 and s["latency_ms"]["max"] == 40.0
    assert s["sessions"] == {"continued_asks": 4, "same_session": 3, "continuity": 0.75}
    assert AbuseTally().summary(5.0)["retry_after_s"] is None


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


def test_loopback_only_and_bounded():
    for url in ("http://127.0.0.1:8000/", "http://localhost:1", "http://[::1]:8000", "http://127.3.2.1"):
        assert loadtest.check_loopback(url) == url.rstrip("/")
    for url in ("http://10.0.0.1:8000", "http://example.org", "ftp://127.0.0.1", "127.0.0.1:8000"):
        with pytest.raises(ValueError):
            loadtest.check_loopback(url)
    for bad in ({"clients": 0}, {"clients": 501}, {"duration": 0}, {"duration": 901}, {"workers": 0},
                {"pid": 1}, {"url": "http://192.168.1.1"}, {"abuse_rate": -1}):
        with pytest.raises(ValueError):
            Options(**bad).check()
    Options().check()


def test_workload_from_the_knowledge_base(shipped):
    work = loadtest.load_workload()
    assert len(work.paraphrases) == sum(len(f.alt_questions) for f in shipped.kb.faqs) > 100
    assert len(work.out_of_scope) > 50
    assert not any(q.startswith("#") or not q for q in work.out_of_scope)


def test_report_against_a_running_server_measures_the_given_pid():
    with serve_stub() as (url, counts):
        options = Options(clients=3, duration=1.0, warmup=0.5, url=url + "/", pid=os.getpid(), abuse_rate=20, settle=0)
        report = loadtest.run_loadtest(options, workload=HEALTHY)
    readies = 0  # /readyz is not counted by the stub
    served = sum(counts[k] for k in ("ask", "feedback", "scenario", "faq_api", "faq_page", "page", "search"))
    assert report["requests"] + report["warmup_requests"] + report["deliberate"]["requests"] == served - readies
    assert report["target"] == url and report["started_server"] is False and report["workers"] is None
    assert report["index_rebuilt"] is None
    assert report["errors_total"] == 0 and report["errors"] == {}
    assert report["deliberate"]["rate_limited"] > 0
    assert report["deliberate"]["expect_429"] is False  # too few to pass the service's own limit of 120
    memory = report["memory"]
    assert os.getpid() in {p["pid"] for p in memory["processes_after"]}
    assert memory["rss_before_bytes"] > 0 and memory["growth_pct"] is not None
    assert report["flags"] == [] and report["ok"] is True
    assert json.loads(loadtest.report_json(report)) == report
    text = loadtest.format_report(report)
    assert "req/s" in text and "429" in text and "result       ok" in text


def test_cli_prints_one_json_object():
    from bot.cli import build_parser, main

    args = build_parser().parse_args(["loadtest"])
    assert (args.clients, args.duration, args.workers, args.url, args.seed) == (50, 60.0, 1, None, 7)
    assert build_parser().parse_args(["serve", "--forwarded-allow-ips", ""]).forwarded_allow_ips == ""
    assert build_parser().parse_args(["serve"]).forwarded_allow_ips is None
    with serve_stub() as (url, _):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["loadtest", "--url", url, "--clients", "2", "--duration", "0.5", "--warmup", "0",
                         "--abuse-rate", "0", "--json"])
    report = json.loads(out.getvalue())
    assert code == 0 and report["ok"] and report["memory"] is None and report["deliberate"] is None
    assert report["requests"] == sum(v["requests"] for v in report["by_kind"].values())
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


@pytest.mark.slow
def test_end_to_end_against_govfaq_serve():
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "loadtest", "--clients", "4", "--duration", "3", "--warmup", "1",
         "--abuse-rate", "0", "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["started_server"] and report["workers"] == 1 and isinstance(report["index_rebuilt"], bool)
    assert report["requests"] > 0 and report["errors_total"] == 0
    assert report["memory"]["rss_before_bytes"] > 100 * 2**20
    assert report["sessions"]["continuity"] in (None, 1.0)
