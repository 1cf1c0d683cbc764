"""The query log and feedback on both back-ends (bot/storage.py), and what only PostgreSQL has:
the versioned migrations, the settings that choose it, a server that is down.

Two RecordStores on one database stand for two instances: feedback given on one shows in the
other's insights."""

import datetime as dt

import pytest

from bot.records import RecordStore
from bot.settings import Settings
from bot.storage import PostgresDatabase, SqliteDatabase, database_for, migrations


def test_records_round_trip_insights_and_purge(backend):
    this, other = RecordStore(backend.store("govfaq.sqlite3")), RecordStore(backend.store("govfaq.sqlite3"))
    try:
        asked = this.log_query("電話は090-1234-5678、協力隊の任期は？", "fallback", None, ["a", "b"], 0.12)
        answered = this.log_query("任期は何年", "answer", "kyoryokutai-ninki", ["kyoryokutai-ninki"], 0.9)
        assert other.add_feedback("kyoryokutai-ninki", False, "メール taro@example.jp に返事がない", asked)
        assert this.flush() and other.flush(), (this.status(), other.status())  # each instance writes its own
        rows = other.rows("query_log")
        assert [r["id"] for r in rows] == [asked, answered]  # in the order written, read by the other one
        assert "1234-5678" not in rows[0]["query"] and rows[0]["candidates"] == '["a", "b"]'
        assert rows[1]["confidence"] == pytest.approx(0.9)
        insights = this.insights()
        assert "error" not in insights
        assert [u["query"] for u in insights["unhelpful"]] == [rows[0]["query"]]  # joined across instances
        assert "taro@example.jp" not in (insights["unhelpful"][0]["comment"] or "")
        assert insights["top"] == [{"faq_id": "kyoryokutai-ninki", "n": 1}]
        assert [(d["asked"], d["answered"]) for d in insights["by_day"]] == [(2, 1)]
        assert this.purge(now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=this.retention_days + 1)) == 2
        assert other.rows("query_log") == [] and other.rows("feedback") == []
    finally:
        this.close()
        other.close()


def test_a_batch_written_twice_keeps_one_row(backend):
    """A retry after a commit whose answer was lost must not duplicate (ON CONFLICT DO NOTHING)."""
    from bot.records import _write_batch

    store = RecordStore(backend.store("govfaq.sqlite3"))
    row = ("0190-x", "2026-01-01T00:00:00+00:00", "q", "answer", "f", "[]", 0.5)
    for _ in range(2):
        with store.db.transaction() as tx:
            _write_batch(tx, [("query_log", row)])
    assert [r["id"] for r in store.rows("query_log")] == ["0190-x"]


# ------------------------------------------------------------------ PostgreSQL only
def test_migrations_are_applied_once_and_recorded(pg_url):
    first, second = PostgresDatabase(pg_url), PostgresDatabase(pg_url)
    try:
        assert first.migrate() == [v for v, _ in migrations()]
        assert second.migrate() == []  # another instance starting later finds them done
        with first.transaction(write=False) as tx:
            rows = tx.execute("SELECT version, name FROM schema_version ORDER BY version").fetchall()
        assert [(r["version"], r["name"]) for r in rows] == [(v, p.name) for v, p in migrations()]
    finally:
        first.close()
        second.close()


def test_the_database_url_puts_every_module_in_postgresql(pg_url, tmp_path):
    from bot.accounts import Accounts, accounts_store
    from bot.runtime import record_store, session_store

    settings = Settings(data_dir=tmp_path, database_url=pg_url)
    records, sessions, accounts = record_store(settings), session_store(settings), Accounts(accounts_store(settings))
    assert records.db is sessions.db.db is accounts.db  # one pool per process
    assert isinstance(records.db, PostgresDatabase)
    session = sessions.get(None)
    sessions.record(session, "函館", "contacts")
    accounts.add("alice", "viewer")
    records.log_query("任期", "answer", "f", ["f"], 0.8)
    assert records.flush()
    assert list(tmp_path.glob("*.sqlite3*")) == []  # nothing went to the SQLite default
    assert isinstance(database_for(Settings(data_dir=tmp_path), "x.sqlite3"), SqliteDatabase)


def test_a_url_that_is_not_libpq_is_refused_at_start_up():
    with pytest.raises(ValueError, match="GOVFAQ_DATABASE_URL must be a libpq URL") as err:
        Settings(database_url="mysql://user:secret@db/govfaq")
    assert "secret" not in str(err.value)


def test_a_server_that_is_down_loses_no_row_and_no_answer(tmp_path, caplog):
    """Nothing listens on the socket: conversations carry on in memory, the writer keeps its rows."""
    from bot.session import SharedSessionStore

    db = PostgresDatabase(f"postgresql://govfaq@/govfaq?host={tmp_path}&connect_timeout=1")
    try:
        sessions = SharedSessionStore(db)
        session = sessions.get(None)
        session.prefecture = "北海道"
        sessions.record(session, "函館", "contacts")
        assert sessions.get(session.id).prefecture == "北海道"
        store = RecordStore(db, writer_busy_ms=200)
        assert store.log_query("任期", "answer", "f", ["f"], 0.8) is not None
        assert not store.flush(timeout=1.0) and not store.healthy and store.status()["queued"] == 1
        store.close(timeout=0.2)
        assert store.lost_at_close == 1  # counted and logged, never silent
    finally:
        db.close()
    assert "unavailable" in caplog.text


def test_a_clients_rate_limit_counts_across_instances(pg_url, tmp_path):
    """Two instances' limits on one database: the budget is the client's, not each process's."""
    from web.guards import Limits

    settings = Settings(data_dir=tmp_path, database_url=pg_url, ask_rate_per_minute=3)
    this, other = Limits(settings), Limits(settings)
    assert this.shared and this.limiter.storage.check()
    assert [this.bot.check("10.0.0.1"), other.bot.check("10.0.0.1"), this.bot.check("10.0.0.1")] == [0, 0, 0]
    wait = other.bot.check("10.0.0.1")
    assert 1 <= wait <= 60  # the fourth within the minute, on the other instance, is refused
    assert this.bot.check("10.0.0.2") == 0  # another client has its own budget
    other.bot.clear("10.0.0.1")
    assert this.bot.check("10.0.0.1") == 0


# ------------------------------------------------------------------ two instances, one database
def test_two_instances_share_conversations_logins_feedback_and_limits(fast_engine, postgres_server, tmp_path):
    """Two apps with data folders of their own and one PostgreSQL database, no stickiness: what the
    nginx end-to-end test of issue 16 checks, in process (the processes' pools are separate for the
    log and the conversations; logins and limits share this process's pool, as workers of one host do)."""
    import re

    from fastapi.testclient import TestClient

    from bot.dialogue import Bot
    from bot.session import SharedSessionStore
    from web.app import create_app

    url, token = postgres_server.new_database(), "a-long-staff-token-for-tests-9"
    pools, clients, bots = [], [], []
    for name in ("a", "b"):
        records, sessions = PostgresDatabase(url), PostgresDatabase(url)
        pools += [records, sessions]
        bot = Bot(fast_engine, records=RecordStore(records), sessions=SharedSessionStore(sessions))
        settings = Settings(data_dir=tmp_path / name, database_url=url, staff_token=token, ask_rate_per_minute=4)
        clients.append(TestClient(create_app(settings, bot=bot)))
        bots.append(bot)
    a, b = clients
    try:
        first = a.post("/api/ask", json={"query": "函館に住んでいます"}).json()
        second = b.post("/api/ask", json={"query": "ｊｋｌｓｄｆ", "session_id": first["session_id"]}).json()
        assert second["session_id"] == first["session_id"]
        assert second["kind"] == "fallback" and "きくみみ函館" in second["answer"]  # the place named on A, on B

        page = a.get("/staff/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert a.post("/staff/login", data={"password": token, "csrf": csrf}, follow_redirects=False).status_code == 303
        b.cookies.update(a.cookies)
        assert b.get("/staff", follow_redirects=False).status_code == 200  # logged in on A, honoured by B

        faq_id = fast_engine.kb.faqs[0].id
        assert a.post("/api/feedback", json={"faq_id": faq_id, "helpful": False, "comment": "分かりにくい説明でした",
                                             "query_id": first.get("query_id")}).json()["stored"]
        assert bots[0].records.flush()  # A's writer has written it (within about a second anyway)
        assert "分かりにくい説明でした" in b.get("/staff").text  # given on A, in B's insights

        # 2 questions so far (one on each); 2 more on B reach the budget of 4, the 5th on A is refused.
        assert [b.post("/api/ask", json={"query": "任期は"}).status_code for _ in range(2)] == [200, 200]
        assert a.post("/api/ask", json={"query": "任期は"}).status_code == 429
    finally:
        for bot in bots:
            bot.records.close()
        for db in pools:
            db.close()
