"""A scripted conversation with the real engine (built-in model, offline):
scenario walk, clarifying question, follow-up deadline, prefecture fallback,
disaster query, and masking in the stored log. The questions are written for
this test, not taken from the development set."""

import datetime as dt

import pytest

from bot.deadlines import TOKYO
from bot.dialogue import Bot
from bot.records import RecordStore
from bot.scenario import scenario_view

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine():
    from bot.runtime import load_engine
    from bot.settings import Settings

    return load_engine(Settings())


@pytest.fixture()
def bot(engine, tmp_path):
    return Bot(engine, clock=lambda: dt.datetime(2026, 2, 10, 10, 0, tzinfo=TOKYO), records=RecordStore(tmp_path / "log.sqlite3"))


def test_scenario_walk_to_an_answer(bot):
    kb = bot.kb
    top = scenario_view(kb)
    field = next(c for c in top.children if c["title"] == "地域づくりの人材")
    topic = next(c for c in scenario_view(kb, field["id"]).children if c["title"] == "地域おこし協力隊")
    view = scenario_view(kb, topic["id"])
    assert [b["title"] for b in view.breadcrumbs] == ["トップ", "地域づくりの人材", "地域おこし協力隊"]
    faq = kb.get(view.faqs[0]["faq_id"])
    card = bot.answer_reply(faq, None, 1.0, "answer")
    assert card.sources[0]["document"] and card.related


def test_follow_up_deadline_resolves_against_the_programme(bot):
    session = bot.sessions.get(None)
    first = bot.reply("地域働き方・職場改革ネットワークの追加募集について知りたい", session)
    assert first.answered and session.program
    follow = bot.reply("締切は？", session)
    assert follow.answered
    assert bot.kb.get(follow.faq_id).program == session.program
    assert "2月" in follow.answer and "20日" in follow.answer
    assert "受付中" in follow.answer or "締切済み" in follow.answer or "2026年(令和8年)2月20日" in follow.answer
    phone = bot.reply("電話番号は？", session)
    assert "5253-2111" in phone.answer
    new_topic = bot.reply("ガボットはいつから使えますか", session)
    assert session.program == bot.kb.get(new_topic.faq_id).program != first.faq_id


def test_clarifying_question_offers_one_button_per_programme(bot):
    reply = bot.reply("予算はいくらですか")  # says no programme; many programmes have a budget
    assert reply.kind == "clarify" and not reply.answered
    assert reply.answer.startswith("どの制度についてですか")
    labels = [c["label"] for c in reply.choices]
    assert labels[-1] == "どれにも当てはまらない"  # issue 12: the way out, leading to the fallback
    labels = labels[:-1]
    assert 2 <= len(labels) <= 4 and len(set(labels)) == len(labels)
    chosen = bot.reply(reply.choices[0]["query"])
    assert chosen.answered and bot.kb.get(chosen.faq_id).program == labels[0]


def test_a_question_naming_its_programme_is_not_asked_back(bot):
    assert bot.reply("地域おこし協力隊の予算はいくらですか").kind == "answer"


def test_prefecture_fallback_names_the_local_office(bot):
    session = bot.sessions.get(None)
    reply = bot.reply("札幌に住んでいます。犬の登録はどうすればいいですか", session)
    assert not reply.answered
    assert "きくみみ北海道" in reply.answer and "011(709)1100" in reply.answer and "0570-090-110" in reply.answer


def test_disaster_query_prefers_disaster_support_and_gives_a_window(bot):
    reply = bot.reply("台風で家が壊れてしまった。どこに相談すればいい？")
    texts = reply.answer + " ".join(c.answer for c in reply.candidates)
    assert "0570-090-110" in texts
    top = reply.faq_id or (reply.candidates[0].faq_id if reply.candidates else None)
    assert top and bot.kb.get(top).category[0] == "災害・生活再建の支援"


def test_the_stored_log_is_masked(bot):
    bot.reply("私の電話は080-9876-5432、メールは hanako@example.jp です。罹災証明書はどこでもらえますか")
    stored = bot.records.rows("query_log")[-1]["query"]
    assert "080-9876-5432" not in stored and "hanako@example.jp" not in stored and "罹災証明書" in stored
