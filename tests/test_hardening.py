"""Bad input at the HTTP edge: sizes, encodings, nesting, content types.

Every case ends in a polite answer or a 4xx with a Japanese message, never
a 500, and the service keeps answering afterwards. The 10 MB case runs over
a real socket against uvicorn to show the body is refused before it is read.
"""

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from bot.dialogue import MAX_QUERY_CHARS, Bot
from bot.settings import Settings
from index.engine import SearchConfig, SearchEngine
from index.tokenize import JapaneseTokenizer
from tests.fakes import HashingEmbedder
from web.app import MAX_BODY_BYTES, BodyLimit, create_app


@pytest.fixture(scope="module")
def bot(fast_engine):
    return Bot(fast_engine)


@pytest.fixture(scope="module")
def app(bot, tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("var"), ask_rate_per_minute=0, feedback_rate_per_minute=0)
    return create_app(settings, bot=bot)


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app, raise_server_exceptions=False)


def still_answers(client):
    response = client.post("/api/ask", json={"query": "地域おこし協力隊の任期は"})
    assert response.status_code == 200 and response.json()["answer"]


@pytest.mark.parametrize("query", ["", " ", "\u3000\u3000", "\n\t\n"])
def test_empty_and_blank_queries_are_refused_politely(client, query):
    response = client.post("/api/ask", json={"query": query})
    if response.status_code == 200:  # blank: the bot asks for a question
        body = response.json()
        assert not body["answered"] and "入力してください" in body["answer"]
    else:  # empty: the schema refuses it
        assert response.status_code == 422 and "入力が正しくありません" in response.json()["detail"]
    still_answers(client)


def test_an_over_long_query_is_refused_politely(client):
    response = client.post("/api/ask", json={"query": "あ" * (MAX_QUERY_CHARS + 1)})
    assert response.status_code == 422 and "query" in response.json()["detail"]
    page = client.get("/", params={"q": "あ" * 3000})  # the page form goes through the bot's own limit
    assert page.status_code == 200 and "長すぎます" in page.text


def test_control_characters_are_dropped_not_fatal(client):
    query = "地域おこし協力隊\x00の\x07任期\x1b[31mは\u200b\u202e\ufeff"
    response = client.post("/api/ask", json={"query": query})
    assert response.status_code == 200
    body = response.json()
    assert body["answer"] and not any(ch in body["answer"] for ch in "\x00\x07\x1b\u202e")
    assert client.get("/api/search", params={"q": "協力隊\x00任期"}).status_code == 200
    assert client.get("/", params={"q": "\x00\x01\x02"}).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b'{"query": "\xff\xfe\x80"}',  # not UTF-8
        b'{"query": "\xe5\x9c"}',  # a multi-byte character cut in half
        '{"query": "任期"}'.encode("cp932"),  # Shift_JIS from an old system
    ],
)
def test_invalid_utf8_is_a_clear_4xx(client, raw):
    response = client.post("/api/ask", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.json()["detail"].isascii() is False  # Japanese, not a stack trace
    still_answers(client)


def test_a_utf8_byte_order_mark_is_accepted(client):
    raw = '\ufeff{"query": "地域おこし協力隊の任期は"}'.encode()
    response = client.post("/api/ask", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200 and response.json()["answer"]


@pytest.mark.parametrize("depth", [50, 5_000])
def test_deeply_nested_json_is_a_clear_4xx(client, depth):
    raw = '{"query": ' + "[" * depth + "]" * depth + "}"
    response = client.post("/api/ask", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert "入力" in response.json()["detail"] or "読み取れません" in response.json()["detail"]
    still_answers(client)


def test_nesting_beyond_the_size_limit_is_a_413(client):
    raw = '{"query": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert client.post("/api/ask", content=raw, headers={"content-type": "application/json"}).status_code == 413


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("text/plain", '{"query": "任期"}'),
        ("application/x-www-form-urlencoded", "query=%E4%BB%BB%E6%9C%9F"),
        ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n任期\r\n--x--\r\n'),
        ("application/xml", "<query>任期</query>"),
        ("application/json", "null"),
        ("application/json", '"任期"'),
        ("application/json", '{"query": 1}'),
        ("application/json", '{"query": "任期", "admin": true}'),
    ],
)
def test_wrong_content_types_and_shapes_are_422(client, content_type, body):
    response = client.post("/api/ask", content=body.encode(), headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("入力が正しくありません")


def test_a_chunked_body_over_the_limit_is_a_413(client):
    sent = []

    def chunks():
        for _ in range(64):  # 64 × 8 KiB = 512 KiB, far over the limit, with no Content-Length
            sent.append(1)
            yield b" " * 8192

    response = client.post("/api/ask", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["detail"] == "送信された内容が大きすぎます。"
    still_answers(client)


def test_a_declared_oversize_body_is_refused_unread():
    """The middleware answers from the header alone: it never asks for the body."""
    reads, sent = [], []

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the app was called")

    scope = {"type": "http", "method": "POST", "path": "/api/ask", "headers": [(b"content-length", str(10 * 2**20).encode())]}
    asyncio.run(BodyLimit(app, MAX_BODY_BYTES)(scope, receive, send))
    assert not reads and sent[0]["status"] == 413
    headers = dict(sent[0]["headers"])
    assert headers[b"x-content-type-options"] == b"nosniff"


def test_a_garbled_content_length_is_a_400(app):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/ask", "headers": [(b"content-length", b"12abc")]}
    asyncio.run(BodyLimit(app, MAX_BODY_BYTES)(scope, receive, send))
    assert sent[0]["status"] == 400


@pytest.fixture(scope="module")
def live_server(app):
    """The app on a real socket (uvicorn in a thread), for what TestClient cannot show."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def test_a_10_mb_body_is_refused_before_it_is_sent(live_server):
    """Send only the headers of a 10 MB request: the 413 comes back without the body."""
    with socket.create_connection(("127.0.0.1", live_server), timeout=10) as conn:
        conn.sendall(
            b"POST /api/ask HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10485760\r\n\r\n" + b'{"query": "' + b"a" * 1000
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    status_line = reply.split(b"\r\n", 1)[0]
    assert b" 413 " in status_line, reply[:200]


def test_the_live_server_survives_a_burst_of_bad_requests(live_server):
    bad = [
        b"POST /api/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n\xff\xff\xff\xff\xff",
        b"GET /api/search?q=%00%ff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]",
        b"GARBAGE\r\n\r\n",
    ]
    for raw in bad:
        with socket.create_connection(("127.0.0.1", live_server), timeout=10) as conn:
            conn.sendall(raw)
            head = conn.recv(65536).split(b"\r\n", 1)[0]
            assert not head.startswith(b"HTTP/1.1 5"), head
    with socket.create_connection(("127.0.0.1", live_server), timeout=10) as conn:
        body = json.dumps({"query": "協力隊の任期"}).encode()
        conn.sendall(
            b"POST /api/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")


# ------------------------------------------------------------- configuration
def test_a_bad_setting_is_one_clear_line_and_a_secret_is_never_echoed(monkeypatch, capsys):
    from bot.cli import main
    from bot.settings import get_settings

    monkeypatch.setenv("GOVFAQ_PORT", "eighty")
    monkeypatch.setenv("GOVFAQ_STAFF_TOKEN", "tooshort")
    get_settings.cache_clear()
    try:
        assert main(["serve"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "GOVFAQ_PORT='eighty'" in err and "GOVFAQ_STAFF_TOKEN=(hidden)" in err
    assert "tooshort" not in err and "Traceback" not in err


def test_every_setting_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`GOVFAQ_{name.upper()}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"


# ------------------------------------------------------------------ markup
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def test_markup_in_faq_content_queries_and_comments_is_text_everywhere(shipped, tmp_path):
    """An FAQ, a query and a feedback comment carrying markup: every page escapes it, the CSV keeps it as
    inert text, and a cell that starts like a formula is defused."""
    import csv
    import dataclasses
    import io
    import re

    from bot.records import RecordStore

    base = shipped.kb.faqs[0]
    evil = base.model_copy(update={
        "id": "markup-test", "question": f"{MARKUP}協力隊の任期は？", "answer": f"=HYPERLINK(\"http://x\"){MARKUP}任期は3年です。",
        "alt_questions": [f"{MARKUP}任期"],
    })
    kb = dataclasses.replace(shipped.kb, faqs=[evil, *shipped.kb.faqs])
    tokenizer = JapaneseTokenizer([(g.canonical, g.variants) for g in kb.synonyms])
    bot = Bot(SearchEngine(kb, HashingEmbedder(), tokenizer, SearchConfig()).build(), records=RecordStore(tmp_path / "g.sqlite3"))
    token = "correct-horse-battery"
    client = TestClient(create_app(Settings(data_dir=tmp_path, staff_token=token), bot=bot))

    bot.reply(f"{MARKUP}宇宙旅行の補助金")  # an unanswered query, shown on the staff page
    bot.records.add_feedback("markup-test", False, MARKUP, None)
    login = client.get("/staff/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
    assert client.post("/staff/login", data={"password": token, "csrf": csrf}, follow_redirects=False).status_code == 303

    pages = [
        client.get("/faqs/markup-test"),
        client.get("/", params={"q": f"{MARKUP}協力隊の任期は？"}),
        client.post("/", data={"q": MARKUP}),
        client.get("/staff"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, page.url
    assert "&lt;script&gt;" in pages[0].text and "&lt;img" in pages[3].text
    assert MARKUP in client.get("/api/faqs/markup-test").json()["question"]  # JSON carries text, not HTML

    exported = client.get("/staff/export.csv")
    rows = {row[0]: row for row in csv.reader(io.StringIO(exported.text.lstrip("\ufeff")))}
    assert rows["markup-test"][-1].startswith("'=HYPERLINK")  # a spreadsheet shows it, never runs it
    assert MARKUP in rows["markup-test"][-2]
