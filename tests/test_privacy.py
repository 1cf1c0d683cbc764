"""Masking that holds: a corpus of personal data written the way residents type it, masked by
`mask_personal_data` and never stored or logged through the service's real paths.

tests/data/pii_corpus.jsonl: one string per line with the placeholder kinds it must produce and the
secrets (digit runs, addresses, names) that must not survive. tests/data/ordinary_questions.txt
(test_properties.py) holds the questions that must come through untouched.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.dialogue import Bot
from bot.privacy import PLACEHOLDERS, _shadow, clean, install_log_masking, mask_personal_data
from bot.records import RecordStore
from bot.session import SqliteSessionStore
from bot.settings import Settings
from web.app import create_app

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "data" / "pii_corpus.jsonl").read_text(encoding="utf-8").splitlines()]
PLACEHOLDER = re.compile("|".join(map(re.escape, PLACEHOLDERS.values())))


def _seen(text: str) -> str:
    return _shadow(clean(PLACEHOLDER.sub(" ", text)))


def pieces(secret: str, strong: bool = False, kept: str = "") -> list[str]:
    """What of a secret must not survive: the whole of it, every 4 digits in a row (kanji numerals as
    digits), every ASCII word of 3 letters or more, and every pair of Japanese characters (山田, 田太, 太郎).

    `strong`, for a page, a log or a file full of other text: only what masking takes out of every corpus
    string (not 鹿児島, which stays as a town), as a whole secret of 6 characters or more, 6 digits in a
    row, or an ASCII or Japanese word."""
    text = _shadow(clean(secret))
    out = [text] if not strong or len(text) >= 6 else []
    for token in re.findall(r"[0-9]+|[A-Za-z]+|[^\W\d_A-Za-z]+", text):
        if token.isdigit():
            width = 6 if strong else 4
            if len(token) >= (width if strong else 2):
                out += [token[i : i + width] for i in range(max(1, len(token) - width + 1))]
        elif token.isascii():
            if len(token) >= (4 if strong else 3):
                out.append(token)
        elif len(token) >= 2:
            out += [token] if strong else [token[i : i + 2] for i in range(len(token) - 1)]
    return [piece for piece in out if piece not in KEPT and piece not in kept] if strong else out


def leaks(entry: dict, stored: str, strong: bool = False, kept: str = "") -> list[str]:
    """The pieces of an entry's secrets found in `stored` (placeholders taken out first: ［電話番号］ is no leak).
    `kept`: text the service writes of its own (FAQ and office ids: kikumimi-kagoshima), no resident's."""
    seen = _seen(stored)
    return [piece for secret in entry["secrets"] for piece in pieces(secret, strong, kept) if piece in seen]


KEPT = "\n".join(_seen(mask_personal_data(entry["text"])) for entry in CORPUS)  # what masking leaves of the corpus


def test_the_corpus_is_large_and_covers_every_kind():
    assert len(CORPUS) >= 200
    kinds = {kind for entry in CORPUS for kind in entry["kinds"]}
    assert kinds == {p[1:-1] for p in PLACEHOLDERS.values()}


@pytest.mark.parametrize("entry", CORPUS, ids=[str(i) for i in range(len(CORPUS))])
def test_every_corpus_string_is_masked_with_its_kinds(entry):
    masked = mask_personal_data(entry["text"])
    assert leaks(entry, masked) == [], masked
    for kind in entry["kinds"]:
        assert f"［{kind}］" in masked, masked
    assert mask_personal_data(masked) == masked


def test_the_leak_check_would_see_a_leak():
    """The check itself: an unmasked copy of each entry is seen as a leak, row by row; in a page, a log
    or a file, where only what masking removes from every corpus string counts, for at least 200."""
    assert all(leaks(entry, entry["text"]) for entry in CORPUS)
    assert sum(1 for entry in CORPUS if leaks(entry, entry["text"], strong=True)) >= 200


# ------------------------------------------------------------------ logs
def test_log_records_are_masked_whatever_the_logger(caplog):
    install_log_masking()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("govfaq.web").warning("could not answer %r", "電話は090-1234-5678です")
    logging.getLogger("some.library").error("bad value: taro@example.jp, pid %d", 1234567)
    logging.getLogger("uvicorn.error").info("私は山田太郎です %s", {"card": "4111 1111 1111 1111"})
    try:
        raise ValueError("マイナンバー 1234-5678-9012 is invalid")
    except ValueError:
        logging.getLogger("govfaq").exception("failed for 〒892-8577")
    text = caplog.text
    for secret in ("090-1234-5678", "taro@example.jp", "山田太郎", "4111 1111", "1234-5678-9012", "892-8577"):
        assert secret not in text
    assert "1234567" in text  # a number the code logs (a process id) is no resident's data
    assert "［電話番号］" in text and "［メール］" in text and "［個人番号］" in text and "Traceback" in text


def test_uvicorn_access_records_lose_their_query_string(caplog):
    install_log_masking()
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/api/search?q=090-1234-5678", "1.1", 200
    )
    record = caplog.records[-1]
    assert record.args[2] == "/api/search" and "?" not in record.getMessage() and "1234" not in record.getMessage()


# ------------------------------------------------------------------ the real paths
@pytest.fixture()
def served(fast_engine, tmp_path):
    data = tmp_path / "var"
    records = RecordStore(data / "govfaq.sqlite3")
    sessions = SqliteSessionStore(data / "sessions.sqlite3")
    bot = Bot(fast_engine, records=records, sessions=sessions)
    settings = Settings(data_dir=data, ask_rate_per_minute=0, feedback_rate_per_minute=0,
                        # One test client opens every session: the per-client cap is not under test here.
                        max_sessions_per_client=10_000, staff_token="a-long-staff-token-for-tests-9")
    return TestClient(create_app(settings, bot=bot)), data, records


def _flush(records) -> None:
    """Rows a store still holds in memory (a store with a writer queue) go to disk before the files are read."""
    flush = getattr(records, "flush", None)
    if callable(flush):
        flush()


def _raw_files(data: Path) -> str:
    """Every byte of every SQLite file (and WAL) the service wrote, as text: what a copied disk shows."""
    return "\n".join(p.read_bytes().decode("utf-8", errors="ignore") for p in sorted(data.rglob("*.sqlite3*")) if p.is_file())


def _rows(path: Path, sql: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] or "" for row in conn.execute(sql)]


def _pairs(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql))


def _staff_page(client) -> str:
    login = client.get("/staff/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
    client.post("/staff/login", data={"password": "a-long-staff-token-for-tests-9", "csrf": csrf})
    return client.get("/staff").text


def test_no_corpus_string_is_stored_or_logged_through_the_service(served, caplog, fast_engine):
    """Every corpus string through one of POST /api/ask (then its feedback comment), GET /?q=, POST /,
    GET /api/search and a follow-up in a session; every fourth one also as a path. Then the query log,
    feedback and sessions row by row, the raw SQLite files, every log record of the service (its access
    log included) and the staff page hold none of it."""
    client, data, records = served
    caplog.set_level(logging.DEBUG)
    faq_id = fast_engine.kb.faqs[0].id
    asked, commented, in_session = [], [], []
    for i, entry in enumerate(CORPUS):
        text, way = entry["text"], i % 5
        if way == 0:
            body = client.post("/api/ask", json={"query": text}).json()
            assert client.post("/api/feedback", json={"faq_id": faq_id, "helpful": False, "comment": text,
                                                      "query_id": body.get("query_id")}).json()["stored"]
            commented.append(entry)
        elif way == 1:
            assert client.get("/", params={"q": text}).status_code == 200
        elif way == 2:
            assert client.post("/", data={"q": text}).status_code == 200
        elif way == 3:
            assert client.get("/api/search", params={"q": text}).status_code == 200
        else:
            session = client.post("/api/ask", json={"query": "地域おこし協力隊の任期は？"}).json()["session_id"]
            client.post("/api/ask", json={"query": text, "session_id": session})
            asked.append(None)  # the first question of the session
            in_session.append((entry, session))
        if way != 3:
            asked.append(entry)
        if i % 4 == 0:
            client.get(f"/faqs/{text}")  # a path typed with personal data in it: a 404, and a line in the access log
    _flush(records)
    staff_page = _staff_page(client)

    queries = _rows(data / "govfaq.sqlite3", "SELECT query FROM query_log ORDER BY id")
    comments = _rows(data / "govfaq.sqlite3", "SELECT comment FROM feedback ORDER BY id")
    sessions = dict(_pairs(data / "sessions.sqlite3", "SELECT id, state FROM sessions"))
    turns = {sid: [turn[0] for turn in json.loads(state)["turns"]] for sid, state in sessions.items()}
    assert len(queries) == len(asked) and len(comments) == len(commented)
    assert [(e["text"], q) for e, q in zip(asked, queries) if e is not None and leaks(e, q)] == []
    assert [(e["text"], c) for e, c in zip(commented, comments) if leaks(e, c)] == []
    assert all(len(turns[sid]) == 2 for _, sid in in_session)
    assert [(e["text"], turns[sid]) for e, sid in in_session if leaks(e, turns[sid][1])] == []
    assert "［電話番号］" in "".join(queries) and "［氏名］" in "".join(comments)

    # The test client's own records (httpx) are not the service's: they show the URL it sent.
    service = [r for r in caplog.records if not r.name.startswith("httpx")]
    access = [r.getMessage() for r in service if r.name == "govfaq.access"]
    assert len(access) >= len(CORPUS) and all("?" not in line.split(" ")[1] for line in access)
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in service)
    raw = _raw_files(data)
    kb = fast_engine.kb
    own = " ".join([*(f.id for f in kb.faqs), *(f.question for f in kb.faqs), *kb.contacts])
    found = {}
    for where, text in (("raw files", raw), ("logged", logged), ("staff page", staff_page)):
        seen = _seen(text)
        found[where] = [(e["text"], piece) for e in CORPUS for secret in e["secrets"]
                        for piece in pieces(secret, True, own) if piece in seen]
    assert found == {"raw files": [], "logged": [], "staff page": []}


def test_the_staff_page_masks_rows_an_older_version_stored(served):
    """A row written before this masking (unmasked) is shown masked."""
    client, data, records = served
    client.post("/api/ask", json={"query": "ｘｙｚ"})
    _flush(records)
    with sqlite3.connect(data / "govfaq.sqlite3") as conn:
        conn.execute("INSERT INTO query_log (ts, query, band, faq_id, candidates, confidence) VALUES "
                     "(strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), '私は山田太郎です。090ー1234ー5678', 'fallback', NULL, '[]', 0.1)")
    page = _staff_page(client)
    assert "山田太郎" not in page and "1234" not in page and "［氏名］" in page


# ------------------------------------------------------------------ a real server
@pytest.mark.slow
def test_the_access_log_of_govfaq_serve_has_no_query_string_nor_personal_data(monkeypatch):
    """`govfaq serve --workers 2` on a real socket: questions sent as ?q=, as form and JSON bodies and as
    paths; its whole output (access log, uvicorn's messages, both workers') holds no query string and no
    personal data."""
    import signal

    import httpx

    from web.loadtest import Server, wait_ready

    data = Path(__file__).resolve().parent.parent / "var"
    if not (data / "index" / "current").exists():
        pytest.skip("no built index in var/: run `govfaq index build`")
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    server = Server(2, data, ask_rate=0, feedback_rate=0)
    sent = CORPUS[::6]
    try:
        server.start()
        wait_ready(server.base_url, timeout=300, proc=server.proc)
        with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as client:
            for entry in sent:
                text = entry["text"]
                assert client.get("/", params={"q": text}).status_code == 200
                assert client.get("/api/search", params={"q": text[:500]}).status_code == 200
                assert client.post("/api/ask", json={"query": text[:500]}).status_code == 200
                assert client.post("/", data={"q": text}).status_code == 200
                client.get(f"/faqs/{text}")
        server.proc.send_signal(signal.SIGTERM)  # the workers flush their output as they stop
        server.proc.wait(timeout=60)
        output = (server.work / "serve.log").read_text(encoding="utf-8", errors="replace")
    finally:
        server.stop()
    access = [line for line in output.splitlines() if re.search(r"\b(GET|POST) /", line)]
    assert len(access) >= 5 * len(sent), output[-2000:]
    assert not [line for line in access if "?" in line or "HTTP/1.1" in line]  # ours, not uvicorn's request line
    assert "q=" not in output and "%E" not in output
    seen = _seen(output)
    assert [(e["text"], p) for e in sent for s in e["secrets"] for p in pieces(s, strong=True) if p in seen] == []
