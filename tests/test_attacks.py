"""The attacks and faults of issue 13 that broke, one test each (fast, unless marked slow).

- a forged X-Forwarded-For gets no fresh limit (in the app, and through `govfaq serve`'s uvicorn options);
- `GET /?q=`, `POST /` and `/api/search` count against the same budget as `/api/ask`;
- one client cannot push everyone's conversations out;
- a staff-login flood is answered at once with 429 + Retry-After (per client, and globally), while
  other requests go on (slow: over a real socket, with the p95 of other requests measured);
- weak staff tokens are refused at start-up without echoing them;
- cookies are Secure (and the staff cookie `__Host-`) over https;
- template overrides come only from GOVFAQ_TEMPLATES_DIR and cannot reach Python;
- /readyz gives no path and no exception text;
- a build left by a dead process is removed at start-up, before a rebuild on a full disk;
- no row of the query log or feedback is lost under concurrency (fast: threads; slow: 32 clients ×
  30 s over a real socket, and `kill -9` losing at most the last second).

The slow tests print their figures (`-s` shows them).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.dialogue import Bot
from bot.records import RecordStore
from bot.session import SessionStore
from bot.settings import Settings, token_weakness
from web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
STRONG = "kiwi-lantern-57-moss-Q"
SLOW_FIGURES = os.environ.get("GOVFAQ_ATTACK_FIGURES")  # a file to append the slow tests' figures to (JSON lines)


@pytest.fixture
def bot(fast_engine, tmp_path):
    return Bot(fast_engine, records=RecordStore(tmp_path / "records.sqlite3"), sessions=SessionStore(max_sessions=1000))


def app_client(bot, tmp_path, base_url="http://testserver", **settings) -> TestClient:
    settings.setdefault("data_dir", tmp_path / "var")
    settings.setdefault("index_poll_seconds", 0)
    return TestClient(create_app(Settings(**settings), bot=bot), base_url=base_url, raise_server_exceptions=False)


# --------------------------------------------------------------------------- #
# limits
# --------------------------------------------------------------------------- #
def test_a_forged_x_forwarded_for_gets_no_fresh_limit(bot, tmp_path):
    client = app_client(bot, tmp_path, ask_rate_per_minute=3)  # default: no proxy trusted
    codes = [client.post("/api/ask", json={"query": "協力隊の任期"}, headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
             for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client(bot, tmp_path):
    # The proxy (TestClient's peer is "testclient") appends the address it saw; a client may put
    # anything before it, which must not buy it a fresh budget.
    client = app_client(bot, tmp_path, ask_rate_per_minute=2, forwarded_allow_ips="testclient")
    codes = [client.post("/api/ask", json={"query": "協力隊の任期"},
                         headers={"X-Forwarded-For": f"198.51.100.{i}, 192.0.2.7"}).status_code for i in range(4)]
    assert codes == [200, 200, 429, 429]
    # Another real client behind the same proxy has its own budget.
    other = client.post("/api/ask", json={"query": "協力隊の任期"}, headers={"X-Forwarded-For": "192.0.2.8"})
    assert other.status_code == 200


def test_govfaq_serve_leaves_the_header_to_the_app_and_the_option_reaches_it(monkeypatch):
    import uvicorn

    from bot import cli
    from bot.settings import get_settings

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.delenv("GOVFAQ_FORWARDED_ALLOW_IPS", raising=False)
    get_settings.cache_clear()
    try:
        assert cli.main(["serve", "--port", "8123"]) == 0
        assert seen["proxy_headers"] is False  # uvicorn's default would trust 127.0.0.1
        assert get_settings().forwarded_allow_ips == ""  # default: the socket peer is the client
        get_settings.cache_clear()
        assert cli.main(["serve", "--port", "8123", "--forwarded-allow-ips", "127.0.0.1"]) == 0
        assert os.environ["GOVFAQ_FORWARDED_ALLOW_IPS"] == "127.0.0.1"  # what the workers' app reads
        assert get_settings().forwarded_allow_ips == "127.0.0.1"
    finally:
        os.environ.pop("GOVFAQ_FORWARDED_ALLOW_IPS", None)  # set by the command, not by monkeypatch
        get_settings.cache_clear()


def test_a_forged_header_over_a_real_socket_through_the_serve_options(bot, tmp_path, monkeypatch):
    """The app on uvicorn with exactly the options `govfaq serve` passes: a local client that forges
    X-Forwarded-For still has one budget."""
    import httpx
    import uvicorn

    from bot import cli

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    cli.main(["serve", "--port", "1"])
    options = {k: v for k, v in seen.items() if k not in ("factory", "host", "port", "workers")}
    app = create_app(Settings(data_dir=tmp_path / "var", ask_rate_per_minute=3, index_poll_seconds=0), bot=bot)
    with live(app, **options) as port:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            codes = [http.post("/api/ask", json={"query": "協力隊の任期"},
                               headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_every_route_that_runs_the_bot_counts_against_one_budget(bot, tmp_path):
    client = app_client(bot, tmp_path, ask_rate_per_minute=4)
    runs_the_bot = [
        lambda: client.get("/", params={"q": "協力隊の任期"}),
        lambda: client.post("/", data={"q": "協力隊の任期"}),
        lambda: client.get("/api/search", params={"q": "協力隊"}),
        lambda: client.post("/api/ask", json={"query": "協力隊の任期"}),
    ]
    assert [call().status_code for call in runs_the_bot] == [200, 200, 200, 200]
    for call in runs_the_bot:  # the budget is spent, whichever route asks next
        refused = call()
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    # Pages that do not run the bot stay open.
    assert client.get("/").status_code == 200 and client.get("/healthz").status_code == 200


def test_one_client_cannot_push_everyone_out_of_the_conversations(fast_engine, tmp_path):
    sessions = SessionStore(max_sessions=30)
    bot = Bot(fast_engine, sessions=sessions)
    client = app_client(bot, tmp_path, ask_rate_per_minute=0, max_sessions_per_client=5, forwarded_allow_ips="testclient")
    victim = client.post("/api/ask", json={"query": "地域おこし協力隊の任期は"}, headers={"X-Forwarded-For": "192.0.2.1"}).json()
    for _ in range(100):  # a new conversation each time, from one address
        client.post("/api/ask", json={"query": "こんにちは"}, headers={"X-Forwarded-For": "203.0.113.66"})
    assert len(sessions) <= 6  # the attacker's last 5, and the victim's
    follow = client.post("/api/ask", json={"query": "何年ですか", "session_id": victim["session_id"]},
                         headers={"X-Forwarded-For": "192.0.2.1"}).json()
    assert follow["session_id"] == victim["session_id"]


# --------------------------------------------------------------------------- #
# staff login
# --------------------------------------------------------------------------- #
def login_form(client, headers=None) -> str:
    page = client.get("/staff/login", headers=headers)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_a_login_flood_is_answered_at_once_with_429_and_retry_after(bot, tmp_path, monkeypatch):
    client = app_client(bot, tmp_path, staff_token=STRONG, staff_login_attempts_per_minute=3)
    slept = []
    monkeypatch.setattr(time, "sleep", lambda s: slept.append(s))  # nothing on the login path may sleep
    csrf = login_form(client)
    codes, waits = [], []
    for _ in range(10):
        response = client.post("/staff/login", data={"password": "wrong-guess-123456", "csrf": csrf})
        codes.append(response.status_code)
        waits.append(response.headers.get("Retry-After"))
        fresh = re.search(r'name="csrf" value="([^"]+)"', response.text)
        csrf = fresh.group(1) if fresh else csrf
    assert codes == [401] * 3 + [429] * 7
    assert all(w is not None and int(w) >= 1 for w in waits[3:])
    # Even the right token waits now, from this client ...
    assert client.post("/staff/login", data={"password": STRONG, "csrf": csrf}).status_code == 429
    assert not slept
    assert client.get("/healthz").status_code == 200


def test_the_global_login_cap_holds_against_many_addresses(bot, tmp_path):
    client = app_client(bot, tmp_path, staff_token=STRONG, staff_login_global_per_minute=6, forwarded_allow_ips="testclient")
    codes = []
    for i in range(9):
        headers = {"X-Forwarded-For": f"203.0.113.{i}"}
        csrf = login_form(client, headers)
        codes.append(client.post("/staff/login", data={"password": "wrong-guess-123456", "csrf": csrf}, headers=headers).status_code)
    assert codes == [401] * 6 + [429] * 3


def test_a_right_login_resets_the_clients_count(bot, tmp_path):
    client = app_client(bot, tmp_path, staff_token=STRONG, staff_login_attempts_per_minute=3)
    for _ in range(2):
        client.post("/staff/login", data={"password": "wrong-guess-123456", "csrf": login_form(client)})
    assert client.post("/staff/login", data={"password": STRONG, "csrf": login_form(client)},
                       follow_redirects=False).status_code == 303
    client.post("/staff/logout", data={"csrf": "x"})
    for _ in range(2):  # two more wrong ones are still answered 401, not 429
        assert client.post("/staff/login", data={"password": "wrong", "csrf": login_form(client)}).status_code == 401


WEAK = [
    "aaaaaaaaaaaa",  # the 12 characters of one letter
    "aaaaaaaaaaaaaaaaaaaaaaaa",
    "abcabcabcabcabcabcabc",
    "Kx9Kx9Kx9Kx9Kx9Kx9",
    "abcdefghijklmnopqrstuvwxyz",
    "12345678901234567890",
    "9876543210zyxwvuts",
    "qwertyuiopasdfghjkl",
    "zxcvbnm,./asdfghjkl;",
    "Password1234Password",
    "p@ssw0rd-admin-2024!",
    "govfaq-staff-token-1",
]


@pytest.mark.parametrize("token", WEAK)
def test_a_weak_staff_token_is_refused_without_being_echoed(token):
    from pydantic import ValidationError

    assert token_weakness(token)
    with pytest.raises(ValidationError) as caught:
        Settings(staff_token=token)
    text = str(caught.value)
    assert "GOVFAQ_STAFF_TOKEN" in text and token not in text


@pytest.mark.parametrize("token", [STRONG, "correct-horse-battery", "X6l5LYpS0JWfeUb6", "東京都の窓口は月曜から金曜まで開いています"])
def test_a_strong_token_is_taken(token):
    assert token_weakness(token) is None
    assert Settings(staff_token=token).staff_token.get_secret_value() == token


def cookie_headers(response) -> list[str]:
    return response.headers.get_list("set-cookie")


@pytest.mark.parametrize("how", ["public-url", "proxy-header"])
def test_cookies_are_secure_and_host_prefixed_over_https(bot, tmp_path, how):
    if how == "public-url":
        client = app_client(bot, tmp_path, base_url="https://testserver", staff_token=STRONG, public_url="https://faq.example.lg.jp")
        headers = {}
    else:
        client = app_client(bot, tmp_path, base_url="https://testserver", staff_token=STRONG, forwarded_allow_ips="testclient")
        headers = {"X-Forwarded-Proto": "https"}
    page = client.get("/staff/login", headers=headers)
    assert any(c.startswith("__Host-govfaq_login_csrf=") and "Secure" in c for c in cookie_headers(page))
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post("/staff/login", data={"password": STRONG, "csrf": csrf}, headers=headers, follow_redirects=False)
    assert response.status_code == 303
    (staff,) = [c for c in cookie_headers(response) if c.startswith("__Host-govfaq_staff=")]
    assert "Secure" in staff and "Path=/" in staff and "Domain" not in staff and "HttpOnly" in staff
    assert client.get("/staff", headers=headers, follow_redirects=False).status_code == 200  # the cookie works
    asked = client.get("/", params={"q": "協力隊の任期"}, headers=headers)
    assert all("Secure" in c for c in cookie_headers(asked) if c.startswith("govfaq_session="))


def test_a_forged_proto_header_from_an_untrusted_client_changes_nothing(bot, tmp_path):
    client = app_client(bot, tmp_path, staff_token=STRONG)
    page = client.get("/staff/login", headers={"X-Forwarded-Proto": "https"})
    (csrf_cookie,) = cookie_headers(page)
    assert csrf_cookie.startswith("govfaq_login_csrf=") and "Secure" not in csrf_cookie


# --------------------------------------------------------------------------- #
# templates
# --------------------------------------------------------------------------- #
ESCAPES = [
    "{{ cycler.__init__.__globals__.os.popen('echo PWNED').read() }}",
    "{{ lipsum.__globals__['os'].popen('echo PWNED').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ request.app.state.runtime.__dict__ }}",
    "{% set x = namespace() %}{{ x.__class__.__init__.__globals__ }}",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_a_template_override_cannot_reach_python(bot, tmp_path, escape, caplog):
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "chat.html").write_text(f"<p>override</p>{escape}", encoding="utf-8")
    client = app_client(bot, tmp_path, templates_dir=overrides, staff_token=STRONG)
    response = client.get("/")
    assert "PWNED" not in response.text and STRONG not in response.text
    assert "__globals__" not in response.text and "subprocess" not in response.text.lower()
    assert response.status_code == 500 or "override" in response.text
    assert client.get("/healthz").status_code == 200


def test_an_override_renders_and_the_shipped_templates_still_do(bot, tmp_path):
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "faq.html").write_text("{% extends 'base.html' %}{% block main %}<p>町の窓口: {{ faq.question }}</p>{% endblock %}",
                                        encoding="utf-8")
    client = app_client(bot, tmp_path, templates_dir=overrides, staff_token=STRONG)
    faq_id = bot.kb.faqs[0].id
    assert "町の窓口" in client.get(f"/faqs/{faq_id}").text
    for path in ("/", "/?q=協力隊の任期", "/counter", "/staff/login"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:300])


def test_a_template_in_the_data_folder_is_ignored(bot, tmp_path):
    data = tmp_path / "var"
    (data / "templates").mkdir(parents=True)
    (data / "templates" / "chat.html").write_text("DROPPED-IN", encoding="utf-8")
    client = app_client(bot, tmp_path, data_dir=data)
    assert "DROPPED-IN" not in client.get("/").text
    with pytest.raises(ValueError, match="GOVFAQ_TEMPLATES_DIR"):
        Settings(data_dir=data, templates_dir=data / "templates")


# --------------------------------------------------------------------------- #
# errors and leftovers
# --------------------------------------------------------------------------- #
def test_readyz_gives_a_short_reason_and_no_path(tmp_path, monkeypatch, caplog):
    from index.engine import IndexUnavailable

    secret_path = tmp_path / "secret-folder" / "index"

    def load_bot(settings, **_):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(secret_path))
        except OSError as exc:
            raise IndexUnavailable(f"no usable index ({secret_path}) and rebuilding it failed: {exc}") from exc

    monkeypatch.setattr("bot.runtime.load_bot", load_bot)
    with caplog.at_level(logging.ERROR, logger="govfaq.web"):
        client = TestClient(create_app(Settings(data_dir=tmp_path / "var", index_poll_seconds=0)))
        for _ in range(200):
            response = client.get("/readyz")
            if "準備中" not in response.json()["detail"]:
                break
            time.sleep(0.01)
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "ディスクの空き容量" in detail
    assert "/" not in detail and "secret-folder" not in detail and "Error" not in detail and "No space" not in detail
    assert str(secret_path) in caplog.text  # the details are in the log


def test_a_dead_builds_leftovers_are_removed_before_a_rebuild_on_a_full_disk(shipped, tmp_path, monkeypatch):
    from faq.loader import KnowledgeBase
    from index.engine import SearchConfig, SearchEngine
    from index.tokenize import JapaneseTokenizer
    from tests.fakes import HashingEmbedder

    kb = KnowledgeBase(shipped.kb.faqs[:20], shipped.kb.contacts, shipped.kb.tree, shipped.kb.synonyms,
                       shipped.kb.sources, shipped.kb.catalogue, shipped.kb.content_dir)
    tokenizer = JapaneseTokenizer([(g.canonical, g.variants) for g in kb.synonyms])
    data = tmp_path / "var"
    builds = data / "index" / "builds"
    builds.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftovers = [builds / f".tmp-{dead.pid}-k1ll3d", builds / "20260101T000000.000000-abc-1-x", builds / ".tmp-oldstyle"]
    for leftover in leftovers:
        leftover.mkdir()
        (leftover / "faiss.index").write_bytes(b"\0" * 1024)  # as if it filled the disk
    then = time.time() - 2 * 3600
    os.utime(leftovers[2], (then, then))  # no process id: only its age tells it is dead
    (data / "index").joinpath(f".current-{dead.pid}").symlink_to(Path("builds") / leftovers[1].name)
    live = builds / f".tmp-{os.getpid()}-live"  # a build of a live process: left alone
    live.mkdir()

    real_save = SearchEngine.save

    def save_on_a_full_disk(self, data_dir):
        if any(p.exists() for p in leftovers):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, data_dir)

    monkeypatch.setattr(SearchEngine, "save", save_on_a_full_disk)
    engine = SearchEngine(kb, HashingEmbedder(), tokenizer, SearchConfig()).load_or_build(data)
    assert engine.build_dir is not None and (engine.build_dir / "manifest.json").exists()
    assert not any(p.exists() for p in leftovers) and not list((data / "index").glob(".current-*"))
    assert live.is_dir()


# --------------------------------------------------------------------------- #
# no lost rows
# --------------------------------------------------------------------------- #
def test_concurrent_writers_lose_no_row_and_wait_for_no_lock(tmp_path):
    store = RecordStore(tmp_path / "govfaq.sqlite3")
    # another process's writes
    other = sqlite3.connect(tmp_path / "govfaq.sqlite3", isolation_level=None, check_same_thread=False)
    store.log_query("初期化", "fallback", None, [], 0.0)
    assert store.flush()
    ids: list[str] = []
    feedback: list[str] = []
    slowest = []
    lock = threading.Lock()

    def resident(n: int) -> None:
        worst = 0.0
        for i in range(60):
            started = time.perf_counter()
            qid = store.log_query(f"質問 {n}-{i}", "answer", "faq-x", ["faq-x"], 0.9)
            fid = store.add_feedback("faq-x", i % 2 == 0, f"コメント {n}-{i}", qid)
            worst = max(worst, time.perf_counter() - started)
            with lock:
                ids.append(qid)
                feedback.append(fid)
        slowest.append(worst)

    def other_process() -> None:
        for _ in range(10):  # holds the file's write lock now and then, as another worker would
            other.execute("BEGIN IMMEDIATE")
            time.sleep(0.05)
            other.execute("COMMIT")

    threads = [threading.Thread(target=resident, args=(n,)) for n in range(32)] + [threading.Thread(target=other_process)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert None not in ids and None not in feedback
    assert store.flush(timeout=30)
    rows = store.rows("query_log")
    assert {r["id"] for r in rows} >= set(ids) and len(rows) == len(ids) + 1
    stored = store.rows("feedback")
    assert {r["id"] for r in stored} == set(feedback)
    assert {r["query_id"] for r in stored} == set(ids)  # each linked to its query
    assert store.status()["overflow"] == {"query_log": 0, "feedback": 0}
    other.close()
    store.close()


def test_feedback_keeps_a_query_id_another_worker_writes_later(tmp_path):
    from bot.records import new_record_id

    path = tmp_path / "govfaq.sqlite3"
    this, other = RecordStore(path), RecordStore(path)  # two workers on one file
    early = new_record_id()  # the other worker's answer; its row is not in the file yet
    assert this.add_feedback("faq-x", False, "違う", early)
    assert this.flush()
    assert this.rows("feedback")[0]["query_id"] == early
    answered = other.log_query("別の質問", "answer", "faq-x", [], 0.9)
    this.add_feedback("faq-x", False, "わかりにくい", answered)
    assert this.flush() and other.flush()
    assert [u["query"] for u in this.insights()["unhelpful"]] == ["別の質問", None]
    this.close()
    other.close()


def test_an_overflow_is_counted_and_shown_on_the_staff_page(fast_engine, tmp_path):
    store = RecordStore(tmp_path / "govfaq.sqlite3", queue_rows=3, writer_busy_ms=50)
    other = sqlite3.connect(tmp_path / "govfaq.sqlite3", isolation_level=None)
    store.log_query("初期化", "fallback", None, [], 0.0)
    assert store.flush()
    other.execute("BEGIN EXCLUSIVE")  # the writer cannot write: the queue fills
    results = [store.log_query(f"q{i}", "answer", None, [], 0.5) for i in range(10)]
    assert results.count(None) >= 6 and store.overflow["query_log"] == results.count(None)
    client = app_client(Bot(fast_engine, records=store), tmp_path, staff_token=STRONG)
    csrf = login_form(client)
    client.post("/staff/login", data={"password": STRONG, "csrf": csrf})
    page = client.get("/staff").text
    assert f"質問 {results.count(None)}件" in page
    other.execute("COMMIT")
    assert store.flush(timeout=10)
    assert len(store.rows("query_log")) == 1 + 10 - results.count(None)  # what was queued is all there
    other.close()
    store.close()


def test_rows_queued_at_shutdown_are_written(tmp_path):
    path = tmp_path / "govfaq.sqlite3"
    script = textwrap.dedent(f"""
        from bot.records import RecordStore
        store = RecordStore({str(path)!r})
        ids = [store.log_query("q%d" % i, "answer", None, [], 0.5) for i in range(2000)]
        print(len([i for i in ids if i]), flush=True)
    """)  # no close(): the exit (atexit) flushes
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM query_log").fetchone()[0] == int(out.stdout) == 2000


def test_an_old_log_with_integer_ids_is_moved_to_the_new_ids(tmp_path):
    path = tmp_path / "govfaq.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE query_log (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, query TEXT NOT NULL,
                band TEXT NOT NULL, faq_id TEXT, candidates TEXT NOT NULL, confidence REAL);
            CREATE INDEX query_log_ts ON query_log (ts);
            CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, faq_id TEXT NOT NULL,
                helpful INTEGER NOT NULL, comment TEXT, query_id INTEGER REFERENCES query_log (id) ON DELETE SET NULL);
            CREATE INDEX feedback_ts ON feedback (ts);
            INSERT INTO query_log VALUES (7, '2026-11-01T00:00:00+00:00', '古い質問', 'fallback', NULL, '[]', 0.1);
            INSERT INTO feedback VALUES (3, '2026-11-01T00:00:01+00:00', 'faq-x', 0, '古い意見', 7);
        """)
    store = RecordStore(path)
    new = store.log_query("新しい質問", "answer", "faq-x", [], 0.9)
    store.add_feedback("faq-x", False, "新しい意見", new)
    assert [r["id"] for r in store.rows("query_log")] == ["7", new]
    assert [r["query_id"] for r in store.rows("feedback")] == ["7", new]
    assert store.insights(days=3650)["unhelpful"][-1]["query"] == "古い質問"
    store.close()


# --------------------------------------------------------------------------- #
# over a real socket (slow)
# --------------------------------------------------------------------------- #
class live:
    """An app on uvicorn in a thread, on a free port."""

    def __init__(self, app, **options):
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        options.setdefault("log_level", "warning")
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.port

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


SERVER = textwrap.dedent("""
    import sys
    import uvicorn
    from bot.dialogue import Bot
    from bot.records import RecordStore
    from bot.session import SessionStore
    from bot.settings import Settings
    from tests.fakes import shipped_engine
    from web.app import create_app

    data, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    settings = Settings(data_dir=data, ask_rate_per_minute=0, feedback_rate_per_minute=0, index_poll_seconds=0,
                        staff_token=token or None)
    bot = Bot(shipped_engine(), records=RecordStore(settings.data_dir / "govfaq.sqlite3"), sessions=SessionStore())
    uvicorn.run(create_app(settings, bot=bot), host="127.0.0.1", port=port, workers=1, log_level="warning",
                access_log=False, proxy_headers=False)
""")


class Service:
    """The app with the hashing embedder in its own process (uvicorn, 1 worker), to be stopped or killed."""

    def __init__(self, data: Path, token: str = ""):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.db = data / "govfaq.sqlite3"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(data), str(self.port), token], cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1"), stderr=subprocess.PIPE, text=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the service did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)  # uvicorn's graceful shutdown: the lifespan closes the records
        self.proc.wait(60)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(60)

    def __del__(self):
        if self.proc.poll() is None:
            self.proc.kill()


QUERIES = ["地域おこし協力隊の任期は何年ですか", "住民票の写しを取りたい", "パスポートの更新", "協力隊の給料",
           "子育ての相談窓口はどこ", "マイナンバーカードの更新", "こんにちは", "年金の手続き"]


async def send(http, path: str, body: dict, retried: list):
    """POST, once more on a connection the server closed as it was reused (keep-alive race): that
    request never reached the app."""
    import httpx

    for attempt in range(3):
        try:
            return await http.post(path, json=body)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
            if attempt == 2:
                raise
            retried.append(path)


async def resident(http, n: int, until: float, asked: list, stored: list, problems: list, retried: list) -> None:
    from tests.fakes import shipped_content

    faq_ids = [f.id for f in shipped_content().kb.faqs]
    i = 0
    while time.monotonic() < until:
        query = QUERIES[(n + i) % len(QUERIES)]
        i += 1
        try:
            response = await send(http, "/api/ask", {"query": query}, retried)
            body = response.json()
        except Exception as exc:  # noqa: BLE001 - counted: the server was killed
            problems.append(f"ask: {type(exc).__name__}")
            return
        if response.status_code != 200 or not body.get("query_id"):
            problems.append(f"ask {response.status_code}: no query_id")
            continue
        asked.append((body["query_id"], time.time()))
        faq_id = body.get("faq_id") or faq_ids[(n * 31 + i) % len(faq_ids)]
        if i % 2 == 0:
            try:
                feedback = await send(http, "/api/feedback", {"faq_id": faq_id, "helpful": i % 4 == 0,
                                                              "comment": f"意見 {n}-{i}", "query_id": body["query_id"]},
                                      retried)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"feedback: {type(exc).__name__}")
                return
            if feedback.status_code == 200 and feedback.json()["stored"]:
                stored.append((f"意見 {n}-{i}", body["query_id"], time.time()))
            else:
                problems.append(f"feedback {feedback.status_code}: not stored")


async def crowd(url: str, clients: int, seconds: float, asked: list, stored: list, problems: list, retried: list) -> None:
    import httpx

    until = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(resident(http, n, until, asked, stored, problems, retried) for n in range(clients)))


def report(name: str, **figures) -> None:
    line = json.dumps({"test": name, **figures}, ensure_ascii=False)
    print(line)
    if SLOW_FIGURES:
        with open(SLOW_FIGURES, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def stored_rows(db: Path) -> tuple[set[str], set[tuple[str, str]]]:
    with sqlite3.connect(db) as conn:
        queries = {r[0] for r in conn.execute("SELECT id FROM query_log")}
        feedback = {(r[0], r[1]) for r in conn.execute("SELECT comment, query_id FROM feedback")}
    return queries, feedback


@pytest.mark.slow
def test_32_clients_for_30_s_lose_no_row(tmp_path):
    service = Service(tmp_path / "var")
    asked, stored, problems, retried = [], [], [], []
    started = time.monotonic()
    asyncio.run(crowd(service.url, 32, float(os.environ.get("GOVFAQ_ATTACK_SECONDS", "30")), asked, stored, problems, retried))
    elapsed = time.monotonic() - started
    service.stop()
    queries, feedback = stored_rows(service.db)
    lost_queries = {qid for qid, _ in asked} - queries
    lost_feedback = {(comment, qid) for comment, qid, _ in stored} - feedback
    report("32 clients", seconds=round(elapsed, 1), asks=len(asked), feedback=len(stored),
           lost_queries=len(lost_queries), lost_feedback=len(lost_feedback), problems=len(problems),
           resent_after_keep_alive_close=len(retried))
    assert not problems, problems[:10]
    assert asked and stored
    assert not lost_queries and not lost_feedback


@pytest.mark.slow
def test_kill_9_loses_at_most_the_last_second(tmp_path):
    service = Service(tmp_path / "var")
    asked, stored, problems, retried = [], [], [], []

    async def run_then_kill() -> float:
        task = asyncio.create_task(crowd(service.url, 32, 60, asked, stored, problems, retried))
        await asyncio.sleep(float(os.environ.get("GOVFAQ_ATTACK_KILL_AFTER", "10")))
        killed = time.time()
        service.proc.send_signal(signal.SIGKILL)
        await task
        return killed

    killed = asyncio.run(run_then_kill())
    service.proc.wait(30)
    queries, feedback = stored_rows(service.db)
    missing = [(qid, t) for qid, t in asked if qid not in queries]
    missing_feedback = [(c, q, t) for c, q, t in stored if (c, q) not in feedback]
    older = [m for m in missing if m[1] < killed - 1.0] + [m for m in missing_feedback if m[2] < killed - 1.0]
    report("kill -9", asks=len(asked), feedback=len(stored), lost_queries=len(missing), lost_feedback=len(missing_feedback),
           lost_older_than_1s=len(older),
           oldest_lost_s_before_kill=round(max([killed - t for *_, t in missing + missing_feedback], default=0.0), 3))
    assert asked
    assert not older, older[:5]


async def timed(http, path: str, until: float, latencies: list, codes: list, **kwargs) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        method = "POST" if "json" in kwargs else "GET"
        response = await http.request(method, path, **kwargs)
        latencies.append(time.perf_counter() - started)
        codes.append(response.status_code)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


@pytest.mark.slow
def test_a_login_flood_does_not_slow_other_requests(tmp_path):
    """Measured, not asserted (the machine is shared): p95 of /healthz and /api/ask from 8 clients with
    no flood, with 100 connections sending wrong logins as fast as they are answered (from another
    process, on bare sockets), and, for comparison, with the same flood of /healthz (a closed-loop
    flood shares the worker's CPU whatever it asks). Asserted: every guess is answered 401 or 429
    with Retry-After, and /healthz and /api/ask keep answering 200 throughout."""
    import httpx
    import psutil

    service = Service(tmp_path / "var", token=STRONG)
    server = psutil.Process(service.proc.pid)
    seconds = float(os.environ.get("GOVFAQ_ATTACK_FLOOD_SECONDS", "10"))
    flooders = int(os.environ.get("GOVFAQ_ATTACK_FLOODERS", "100"))

    def phase(flood_path: str | None) -> dict:
        flooder = None
        if flood_path:
            code = f"import json; from tests.test_attacks import raw_flood; print(json.dumps(raw_flood({service.port}, {flooders}, {seconds + 2}, {flood_path!r})))"
            flooder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
            time.sleep(1.0)  # the flood is under way before the measuring starts
        latencies, codes = [], []

        async def others() -> None:
            until = time.monotonic() + seconds
            async with httpx.AsyncClient(base_url=service.url, timeout=60) as http:
                await asyncio.gather(*[timed(http, "/healthz", until, latencies, codes) for _ in range(4)],
                                     *[timed(http, "/api/ask", until, latencies, codes, json={"query": q}) for q in QUERIES[:4]])

        cpu, started = server.cpu_times(), time.monotonic()
        asyncio.run(others())
        now = server.cpu_times()
        used = (now.user + now.system - cpu.user - cpu.system) / (time.monotonic() - started)
        flood = json.loads(flooder.communicate(timeout=120)[0]) if flooder else {"statuses": {}, "missing_retry_after": 0}
        return {"p95": p95(latencies), "n": len(latencies), "codes": set(codes), "server_cores": round(used, 2), **flood}

    quiet = phase(None)
    login = phase("/staff/login")
    healthz = phase("/healthz")
    service.stop()
    report("login flood", flooders=flooders, seconds=seconds,
           unflooded_p95_ms=round(quiet["p95"] * 1000, 1), login_flood_p95_ms=round(login["p95"] * 1000, 1),
           ratio=round(login["p95"] / quiet["p95"], 2), healthz_flood_p95_ms=round(healthz["p95"] * 1000, 1),
           other_requests=[quiet["n"], login["n"], healthz["n"]], guesses=login["statuses"],
           healthz_flood=healthz["statuses"], server_cores=[quiet["server_cores"], login["server_cores"], healthz["server_cores"]])
    assert quiet["codes"] == login["codes"] == {200}
    assert set(login["statuses"]) <= {"401", "429"} and login["statuses"].get("429", 0) > 0
    assert login["missing_retry_after"] == 0


def raw_flood(port: int, connections: int, seconds: float, path: str) -> dict:
    """Many keep-alive connections sending `path` as fast as answered, on bare asyncio streams (a flooder
    much cheaper than an HTTP client library, run in its own process). Counts statuses and Retry-After."""
    body = b"password=wrong-guess-123456&csrf=x"
    if path == "/staff/login":
        request = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    else:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    statuses: dict[str, int] = {}
    missing_retry_after = 0

    async def one(until: float) -> None:
        nonlocal missing_retry_after
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < until:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin1").split("\r\n")
                status = lines[0].split(" ")[1]
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                await reader.readexactly(int(headers.get("content-length", "0")))
                statuses[status] = statuses.get(status, 0) + 1
                if status == "429" and not headers.get("retry-after", "").isdigit():
                    missing_retry_after += 1
        finally:
            writer.close()

    async def run() -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(*(one(until) for _ in range(connections)), return_exceptions=True)

    asyncio.run(run())
    return {"statuses": statuses, "missing_retry_after": missing_retry_after}
