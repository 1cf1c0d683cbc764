"""The real engine with the built-in model, offline: answers, fallbacks, English.

Slow: the first run builds the index into var/ (embeds every FAQ); later runs
load it. The queries here are written for these tests, not taken from the
development set.
"""

import os

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bot():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    from bot.runtime import load_bot
    from bot.settings import Settings

    return load_bot(Settings())


@pytest.mark.parametrize(
    "query, fact",
    [
        ("地域おこし協力隊は何年くらい活動するの", "3年"),
        ("行政相談の電話番号を知りたい", "0570-090-110"),
        ("きくみみ沖縄の電話", "098(867)1100"),
        ("災害専用ダイヤルはお金かかりますか", "無料"),
        ("ふるさと住民登録 マイナンバーカード いる？", "マイナンバーカード"),
    ],
)
def test_answers_hold_the_fact(bot, query, fact):
    reply = bot.reply(query)
    texts = [reply.answer] + [c.answer for c in reply.candidates[:2]]
    assert any(fact in t for t in texts), (reply.band, reply.faq_id)


@pytest.mark.parametrize(
    "query",
    ["来週の大阪の天気を教えて", "運転免許の更新はどこでできる？", "おいしいラーメン屋を教えて", "Where can I buy a train ticket?"],
)
def test_out_of_scope_is_not_answered_with_an_faq(bot, query):
    reply = bot.reply(query)
    assert not reply.answered, (reply.faq_id, reply.confidence)


def test_english_question_finds_the_japanese_faq(bot):
    reply = bot.reply("What is the phone number of the administrative counseling center in Okinawa?")
    texts = [reply.answer] + [c.answer for c in reply.candidates[:2]]
    assert any("098(867)1100" in t for t in texts)


def test_confidence_bands_are_ordered(bot):
    thresholds = bot.engine.confidence_model
    assert 0 < thresholds.candidate_threshold < thresholds.answer_threshold < 1
    assert 0 < thresholds.candidate_threshold < thresholds.latin_answer_threshold < 1
