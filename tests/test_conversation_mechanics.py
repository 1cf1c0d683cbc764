"""Conversation mechanics that do not depend on ranking quality: scenario walk,
places and offices, sessions, masking, the SQLite records."""

import datetime as dt
import sqlite3

import pytest

from bot.dialogue import Bot
from bot.places import PlaceIndex
from bot.privacy import mask_personal_data
from bot.records import RecordStore
from bot.scenario import TOP, scenario_view
from bot.session import SessionStore


@pytest.fixture(scope="module")
def engine(fast_engine):
    return fast_engine


# ---------------------------------------------------------------- scenario
def test_walking_the_whole_tree_reaches_every_faq(shipped):
    kb = shipped.kb
    seen, stack, visited = set(), [TOP], 0
    while stack:
        view = scenario_view(kb, stack.pop())
        visited += 1
        assert view.breadcrumbs[0] == {"id": TOP, "title": "トップ"}
        if view.node_id != TOP:
            assert view.breadcrumbs[-1]["id"] == view.node_id
            assert scenario_view(kb, view.parent_id) is not None  # "back" works
        seen |= {f["faq_id"] for f in view.faqs}
        stack += [c["id"] for c in view.children]
        assert all(c["faqs"] > 0 for c in view.children), view.node_id
    assert seen == set(kb.by_id)
    assert visited == 1 + len(kb.category_titles())


def test_unknown_scenario_node_is_none(shipped):
    assert scenario_view(shipped.kb, "no-such-node") is None


# ------------------------------------------------------------------ places
@pytest.mark.parametrize(
    "text, office",
    [
        ("札幌に住んでいます", "きくみみ北海道"),
        ("函館の窓口", "きくみみ函館"),
        ("旭川市です", "きくみみ旭川"),
        ("仙台から", "きくみみ宮城"),
        ("横浜市在住", "きくみみ神奈川"),
        ("Kikumimi Osaka", "きくみみ大阪"),
        ("那覇", "きくみみ沖縄"),
        ("東京都新宿区", "きくみみ東京"),
    ],
)
def test_place_names_map_to_the_kikumimi_office(shipped, text, office):
    places = PlaceIndex(shipped.kb)
    assert places.office(places.find(text)).name == office


@pytest.mark.parametrize("text", ["鹿児島の相談窓口", "きくみみ 沖縄", "きくみみ宮城の住所と電話番号", "新潟で行政相談したいときの連絡先"])
def test_contacts_lookup_returns_the_office_as_written(engine, shipped, text):
    reply = Bot(engine).reply(text)
    assert reply.kind == "contacts" and reply.answered
    office = reply.contacts[0]
    assert office["address"] in reply.answer and office["phone"] in reply.answer


def test_a_programme_question_with_a_place_is_not_a_contacts_lookup(engine):
    assert Bot(engine).reply("移住の相談ができる東京の窓口ってどこ？").kind != "contacts"


def test_fallback_gives_the_office_of_the_place_named_earlier(engine):
    bot = Bot(engine)
    session = bot.sessions.get(None)
    bot.reply("函館に住んでいます", session)
    text = bot.fallback_text(session=session)
    assert "きくみみ函館" in text and "0138(27)1100" in text and "0570-090-110" in text


# ---------------------------------------------------------------- sessions
def test_sessions_expire_and_are_capped():
    now = [0.0]
    store = SessionStore(ttl_seconds=60, max_sessions=3, max_turns=2, clock=lambda: now[0])
    first = store.get(None)
    assert store.get(first.id) is first
    for _ in range(5):
        store.get(None)
    assert len(store) == 3 and store.get(first.id) is not first  # the oldest was dropped
    session = store.get(None)
    for i in range(5):
        store.record(session, "質問" * 1000, str(i))
    assert len(session.turns) == 2 and len(session.turns[0][0]) == 500
    now[0] = 120
    assert store.get(session.id).id != session.id  # expired: a new session


# ----------------------------------------------------------------- masking
@pytest.mark.parametrize(
    "text, gone",
    [
        ("電話は090-1234-5678です", "090-1234-5678"),
        ("自宅 03(1234)5678 に", "03(1234)5678"),
        ("ＴＥＬ：０３－１２３４－５６７８", "1234"),
        ("携帯 +81 90-1234-5678", "1234-5678"),
        ("連絡は taro.yamada+test@example.co.jp まで", "example.co.jp"),
        ("マイナンバーは1234 5678 9012です", "9012"),
        ("番号123456789012", "123456789012"),
        ("〒100-8926 千代田区", "100-8926"),
        ("保険証番号 12345678", "12345678"),
    ],
)
def test_masking_removes_personal_data(text, gone):
    assert gone not in mask_personal_data(text)


def test_masking_keeps_ordinary_figures():
    text = "協力隊の任期は3年、上限は550万円、令和8年2月20日まで"
    assert mask_personal_data(text) == text


# ----------------------------------------------------------------- records
def test_query_log_is_masked_in_wal_mode_and_purged(tmp_path, engine):
    store = RecordStore(tmp_path / "g.sqlite3", retention_days=30)
    bot = Bot(engine, records=store)
    reply = bot.reply("090-1234-5678 に電話したい。協力隊の任期は？ mail: a@b.jp")
    rows = store.rows("query_log")
    assert len(rows) == 1 and "090-1234-5678" not in rows[0]["query"] and "a@b.jp" not in rows[0]["query"]
    assert rows[0]["band"] == reply.kind and reply.query_id == rows[0]["id"]
    assert store.add_feedback("kyoryokutai-ninki", False, "電話 03-1234-5678 が違う", reply.query_id)
    assert "03-1234-5678" not in store.rows("feedback")[0]["comment"]
    with sqlite3.connect(tmp_path / "g.sqlite3") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.purge(now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31)) == 1
    assert store.rows("query_log") == [] and store.rows("feedback") == []


def test_a_logging_failure_never_breaks_an_answer(tmp_path, engine, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = RecordStore(blocker / "g.sqlite3")
    bot = Bot(engine, records=store)
    reply = bot.reply("地域おこし協力隊の任期は？")
    assert reply.answer  # at once: the row waits in memory for a file that takes it
    assert not store.flush(timeout=1.0) and not store.healthy
    assert any("query log unavailable" in r.message for r in caplog.records)
    store.close(timeout=0.1)
