"""The decision path with a frozen clock and the hashing embedder (no model)."""

import datetime as dt

import pytest

from bot.deadlines import TOKYO, deadline_status, format_date
from bot.dialogue import MAX_QUERY_CHARS, Bot
from faq.schema import Deadline

FROZEN = dt.datetime(2026, 2, 10, 9, 0, tzinfo=TOKYO)


@pytest.fixture(scope="module")
def bot(fast_engine):
    return Bot(fast_engine, clock=lambda: FROZEN)


def test_date_format_has_wareki_and_weekday():
    assert format_date(dt.date(2026, 2, 20)) == "2026年(令和8年)2月20日(金)"


@pytest.mark.parametrize(
    "deadline, status, fragment",
    [
        (Deadline(label="提出期限", date="2026-02-20"), "受付中", "受付中 — あと10日 (締切 2026年(令和8年)2月20日(金))"),
        (Deadline(label="提出期限", date="2026-02-10"), "受付中", "本日締切"),
        (Deadline(label="提出期限", date="2026-02-02"), "締切済み", "締切済み"),
        (Deadline(label="提出期限", date="2026-03-31", opens="2026-03-01"), "開始前", "開始前"),
        (Deadline(label="説明会", date="2026-02-02", time="15:00", end_time="16:00", kind="event"), "終了", "15:00～16:00"),
        (Deadline(label="施行日", date="2021-04-01", kind="start"), "実施済み", "2021年(令和3年)4月1日(木)から"),
        # A measure's 適用期限 is not an application window: no countdown, 「…まで有効」.
        (Deadline(label="適用期限", date="2027-03-31", kind="expiry"), "有効", "2027年(令和9年)3月31日(水)まで有効"),
        (Deadline(label="適用期限", date="2026-01-31", kind="expiry"), "期限切れ", "期限が過ぎました"),
        (Deadline(label="説明会", date="2026-02-20", kind="event"), "開催予定", "開催日 2026年(令和8年)2月20日(金) — あと10日"),
    ],
)
def test_deadline_status(deadline, status, fragment):
    result = deadline_status(deadline, FROZEN.date())
    assert result.status == status
    assert fragment in result.text


def test_answer_card_carries_source_contacts_and_dates(bot, shipped):
    faq = next(f for f in shipped.kb.faqs if f.deadlines and f.contacts)
    reply = bot.answer_reply(faq, None, 0.9, "answer")
    assert reply.answered and reply.faq_id == faq.id
    assert faq.answer.strip() in reply.answer
    assert "【日程】" in reply.answer and "【問合せ先】" in reply.answer and "出典:" in reply.answer
    assert reply.sources[0]["section"] == faq.source.section
    assert 1 <= len(reply.related) <= 3


@pytest.mark.parametrize("text", ["", "   ", "こんにちは！", "ありがとうございました", "何ができるの？"])
def test_small_talk_and_empty_input_get_polite_replies_not_faqs(bot, text):
    reply = bot.reply(text)
    assert reply.kind == "smalltalk" and not reply.answered and reply.answer


def test_over_long_query_is_refused_politely(bot):
    reply = bot.reply("あ" * (MAX_QUERY_CHARS + 1))
    assert reply.kind == "refused" and "文字以内" in reply.answer


def test_fallback_names_the_consultation_channels(bot):
    text = bot.fallback_text()
    assert "0570-090-110" in text and "行政苦情110番" in text and "https://" in text
