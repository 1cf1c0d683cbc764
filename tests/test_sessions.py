"""Conversations and staff logins shared by every worker: through SQLite, and (the tests taking
`backend`) through PostgreSQL too, for every instance.

Two store objects on one file (or database) stand for two worker processes: each has its
own connection, as separate processes do."""

import logging
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from bot.dialogue import Bot
from bot.session import SharedSessionStore, SqliteSessionStore
from bot.settings import Settings
from index.engine import SearchConfig, SearchEngine
from index.tokenize import JapaneseTokenizer
from tests.fakes import HashingEmbedder
from web.app import create_app
from web.staff import StaffSessions

TOKEN = "correct-horse-battery"


@pytest.fixture(scope="module")
def engine(fast_engine):
    return fast_engine


def test_a_follow_up_on_another_worker_keeps_the_conversation(engine, backend):
    worker_a = Bot(engine, sessions=SharedSessionStore(backend.store("sessions.sqlite3")))
    worker_b = Bot(engine, sessions=SharedSessionStore(backend.store("sessions.sqlite3")))
    first = worker_a.reply("函館に住んでいます", worker_a.sessions.get(None))
    session = worker_b.sessions.get(first.session_id)
    assert session.id == first.session_id and session.prefecture == "北海道"
    assert "きくみみ函館" in worker_b.fallback_text(session=session)
    session.program, session.faq_id = "地域おこし協力隊", "kyoryokutai-ninki"
    worker_b.sessions.record(session, "任期は？", "kyoryokutai-ninki")
    back = worker_a.sessions.get(first.session_id)
    assert (back.program, back.faq_id, len(back.turns)) == ("地域おこし協力隊", "kyoryokutai-ninki", 2)


def test_shared_sessions_expire_and_are_capped(backend):
    now = [1000.0]
    store = SharedSessionStore(backend.store("s.sqlite3"), ttl_seconds=60, max_sessions=3, clock=lambda: now[0])
    sessions = []
    for i in range(5):
        session = store.get(None)
        store.record(session, f"質問{i}", "fallback")
        sessions.append(session)
        now[0] += 1
    assert store.get(sessions[-1].id).id == sessions[-1].id
    store._writes = 0  # the next write tidies up
    store.record(store.get(sessions[-1].id), "もう一つ", "fallback")
    assert len(store) == 3 and store.get(sessions[0].id).id != sessions[0].id  # the oldest went
    now[0] += 61
    assert store.get(sessions[-1].id).id != sessions[-1].id  # expired: a new conversation


def test_what_a_resident_typed_is_masked_on_disk(tmp_path):
    path = tmp_path / "s.sqlite3"
    store = SqliteSessionStore(path)
    session = store.get(None)
    store.record(session, "電話は090-1234-5678、メールは taro@example.jp です", "fallback")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"1234-5678" not in raw and b"taro@example.jp" not in raw
    assert "［電話番号］" in SqliteSessionStore(path).get(session.id).turns[0][0]


def test_an_unavailable_file_keeps_conversations_in_memory(tmp_path, caplog):
    path = tmp_path / "is-a-directory"
    path.mkdir()  # SQLite cannot open a directory, whoever runs the test
    store = SqliteSessionStore(path)
    with caplog.at_level(logging.WARNING, logger="govfaq.sessions"):
        session = store.get(None)
        session.prefecture = "北海道"
        store.record(session, "函館", "contacts")
        assert store.get(session.id).prefecture == "北海道"
    assert "unavailable" in caplog.text


def test_a_locked_file_does_not_hold_an_answer_up(engine, tmp_path, caplog):
    path = tmp_path / "s.sqlite3"
    bot = Bot(engine, sessions=SqliteSessionStore(path))
    bot.reply("こんにちは")  # creates the file
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="govfaq.sessions"):
            reply = bot.reply("函館に住んでいます")
        assert reply.session_id and "busy" in caplog.text
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_concurrent_writers_lose_nothing(backend):
    stores = [SharedSessionStore(backend.store("s.sqlite3")) for _ in range(4)]

    def converse(i):
        store = stores[i % 4]
        session = store.get(None)
        for turn in range(5):
            store.record(session, f"質問{turn}", "fallback")
        return session.id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(converse, range(40)))
    assert all(len(stores[0].get(i).turns) == 5 for i in ids)


def test_a_write_that_meets_a_held_lock_waits_and_reaches_the_file(tmp_path):
    """A lock held for half a second (another worker's write, a checkpoint) must not
    send the turn into this process's memory, where other workers cannot see it."""
    path = tmp_path / "s.sqlite3"
    writer, reader = SqliteSessionStore(path), SqliteSessionStore(path)
    session = writer.get(None)
    writer.record(session, "最初の質問", "fallback")  # creates the file and the row
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, lambda: blocker.execute("COMMIT"))
    release.start()
    try:
        writer.record(session, "二つ目の質問", "fallback")
    finally:
        release.join()
        blocker.close()
    assert [q for q, _ in reader.get(session.id).turns] == ["最初の質問", "二つ目の質問"]
    assert writer.db.available  # a busy file is not a broken one


def test_a_newer_memory_copy_wins_over_an_older_file_row(backend):
    store = SharedSessionStore(backend.store("s.sqlite3"))
    session = store.get(None)
    store.record(session, "一つ目", "fallback")
    broken = store.db.run  # the file fails for one write only
    store.db.run = lambda fn: None
    store.record(session, "二つ目", "fallback")
    store.db.run = broken
    assert [q for q, _ in store.get(session.id).turns] == ["一つ目", "二つ目"]


def test_staff_logins_are_honoured_by_every_worker_and_expire(backend):
    now = [1000.0]
    worker_a = StaffSessions(3600, backend.store("sessions.sqlite3"), clock=lambda: now[0])
    worker_b = StaffSessions(3600, backend.store("sessions.sqlite3"), clock=lambda: now[0])
    sid, csrf = worker_a.create()
    assert worker_b.csrf_for(sid) == csrf
    stored = worker_a.db.run(lambda c: [r["id_hash"] for r in c.execute("SELECT id_hash FROM staff_sessions")])
    assert stored and sid not in stored  # only its hash is stored
    now[0] += 3601
    assert worker_a.csrf_for(sid) is None and worker_b.csrf_for(sid) is None
    sid, _ = worker_a.create()
    worker_b.drop(sid)  # a logout on one worker is a logout everywhere
    assert worker_a.csrf_for(sid) is None


def test_a_staff_login_expires_in_the_browser_too(engine, tmp_path):
    settings = Settings(data_dir=tmp_path, staff_token=TOKEN, staff_session_seconds=60)
    app = create_app(settings, bot=Bot(engine))
    client = TestClient(app)
    page = client.get("/staff/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.post("/staff/login", data={"password": TOKEN, "csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/staff", follow_redirects=False).status_code == 200
    sessions = app.state.staff_sessions
    sessions.clock = lambda: __import__("time").time() + 61  # a minute later
    assert client.get("/staff", follow_redirects=False).headers["location"] == "/staff/login"
    assert client.get("/staff/export.csv").status_code == 401


# ------------------------------------------------------- one index for all workers
def test_an_index_built_by_another_process_reaches_every_worker(shipped, tmp_path, caplog):
    """Worker A reloads (or an operator runs `govfaq index build`); worker B switches within one poll."""
    import shutil

    from faq.loader import CONTENT_DIR, load_knowledge_base
    from web.app import pick_up_new_index

    content, data = tmp_path / "content", tmp_path / "var"
    shutil.copytree(CONTENT_DIR, content)
    settings = Settings(data_dir=data, content_dir=content, session_store="memory")
    embedder = HashingEmbedder()

    def build_and_save() -> SearchEngine:
        kb = load_knowledge_base(content).kb
        engine = SearchEngine(kb, embedder, JapaneseTokenizer([(g.canonical, g.variants) for g in kb.synonyms]), SearchConfig())
        engine.build().save(data)
        return engine

    first = build_and_save()
    app_b = create_app(settings, bot=Bot(first))
    client_b = TestClient(app_b)
    assert pick_up_new_index(app_b.state.runtime, settings) is False  # nothing new yet

    faq_file = sorted((content / "faqs").glob("*.yaml"))[0]
    text = faq_file.read_text(encoding="utf-8")
    faq_id = text.split("- id: ", 1)[1].split("\n", 1)[0].strip()
    question = first.kb.get(faq_id).question
    assert f"question: {question}\n" in text
    faq_file.write_text(text.replace(f"question: {question}\n", f"question: {question}（改訂）\n", 1), encoding="utf-8")
    build_and_save()  # what worker A's reload does
    assert pick_up_new_index(app_b.state.runtime, settings) is True
    assert client_b.get(f"/api/faqs/{faq_id}").json()["question"].endswith("（改訂）")
    assert pick_up_new_index(app_b.state.runtime, settings) is False  # already serving it

    # An index that does not match the content on disk is never taken, and not tried again.
    build_and_save()
    faq_file.write_text(faq_file.read_text(encoding="utf-8").replace("（改訂）", "（再改訂）", 1), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="govfaq.web"):
        assert pick_up_new_index(app_b.state.runtime, settings) is False
    assert "not switching" in caplog.text
    assert client_b.get(f"/api/faqs/{faq_id}").json()["question"].endswith("（改訂）")
    assert pick_up_new_index(app_b.state.runtime, settings) is False


def test_a_long_turn_is_masked_before_it_is_cut(tmp_path):
    """A phone number across the cut at MAX_TURN_CHARS leaves none of its digits."""
    from bot.session import MAX_TURN_CHARS

    store = SqliteSessionStore(tmp_path / "s.sqlite3")
    session = store.get(None)
    store.record(session, "あ" * (MAX_TURN_CHARS - 6) + "090-1234-5678", "fallback")
    assert not any(c.isdigit() for c in session.turns[0][0])
