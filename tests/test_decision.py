"""Decision rules of issue 12 on a made-up knowledge base (no evaluation wording, no model)."""

from pathlib import Path

import pytest

from bot.dialogue import NONE_OF_THESE, SIBLING_GAP, Bot, same_programme
from bot.question_type import asked_fact, holds_fact
from faq.loader import KnowledgeBase
from faq.schema import FAQ, SourcesFile
from index.engine import SearchConfig, SearchEngine, SearchHit, SearchResult
from index.tokenize import JapaneseTokenizer
from tests.fakes import HashingEmbedder


def faq(id_, question, answer, program, section="第1節", **extra):
    return FAQ.model_validate(
        {"id": id_, "question": question, "answer": answer, "category": ["暮らし", "星空"], "program": program,
         "source": {"document": "doc.md", "section": section}, "updated": "2026-01-01", **extra}
    )


FAQS = [
    faq("hoshi-gaiyo", "星空観察補助とは", "夜空の観察会を開く町内会を支える制度です。", "星空観察補助"),
    faq("hoshi-gaku", "星空観察補助の上限", "1団体あたり上限30万円を補助します。", "星空観察補助事業", section="第2節"),
    faq("hoshi-taisho", "星空観察補助の対象となる団体", "対象は町内会と自治会です。", "星空観察補助", section="第3節"),
    faq("kawa-gaiyo", "川辺清掃支援とは", "川辺の清掃に道具を貸し出します。", "川辺清掃支援", section="第4節"),
]


@pytest.fixture(scope="module")
def bot():
    kb = KnowledgeBase(FAQS, {}, [], [], {}, SourcesFile(), Path("."))
    return Bot(SearchEngine(kb, HashingEmbedder(), JapaneseTokenizer(), SearchConfig()).build())


def result(*scored):
    hits = [SearchHit(i, s, s, 0.0, r + 1) for r, (i, s) in enumerate(scored)]
    return SearchResult("q", hits, 0.5, "candidates")


def test_two_names_of_one_programme_are_one_programme():
    assert same_programme(FAQS[0], FAQS[1])  # 星空観察補助 inside 星空観察補助事業
    assert not same_programme(FAQS[0], FAQS[3])
    unnamed = faq("betsu-1", "別の問い", "別の答え", None, section="第1節")
    assert same_programme(FAQS[0], unnamed)  # no programme named: one source section, one programme
    other = faq("betsu-2", "別の制度", "別の答え", "川辺清掃", section="第1節")
    assert not same_programme(FAQS[0], other)  # two named programmes listed in one section stay two


@pytest.mark.parametrize(
    "query, kind",
    [("上限はいくら", "amount"), ("締め切りはいつ", "date"), ("何人まで", "count"), ("連絡先を教えて", "phone"),
     ("会場はどこ", "place"), ("誰が申し込めるの", "eligibility"), ("どうやって申し込むの", "procedure"),
     ("Who can apply?", "eligibility"), ("Where is the office?", "place"), ("こんにちは", None)],
)
def test_question_types_in_japanese_and_english(query, kind):
    assert asked_fact(query) == kind


def test_an_answer_holds_the_type_it_states():
    assert holds_fact("上限30万円です", "amount") and not holds_fact("観察会を開きます", "amount")
    assert holds_fact("どれでも", None)


def test_a_sibling_holding_the_asked_amount_leads_over_the_overview(bot):
    ranked = bot._prefer_asked("星空観察補助はいくらまで？", result(("hoshi-gaiyo", 0.90), ("hoshi-gaku", 0.90 - SIBLING_GAP / 2)))
    assert [h.faq_id for h in ranked.hits] == ["hoshi-gaku", "hoshi-gaiyo"]
    assert [h.rank for h in ranked.hits] == [1, 2]


def test_another_programme_or_a_distant_sibling_does_not_lead(bot):
    far = result(("hoshi-gaiyo", 0.90), ("hoshi-gaku", 0.90 - 2 * SIBLING_GAP))
    assert bot._prefer_asked("いくらまで？", far).hits[0].faq_id == "hoshi-gaiyo"
    nothing_asked = result(("hoshi-gaiyo", 0.90), ("hoshi-gaku", 0.899))
    assert bot._prefer_asked("星空観察補助について", nothing_asked).hits[0].faq_id == "hoshi-gaiyo"


def test_no_which_programme_question_between_two_names_of_one(bot):
    close = result(("hoshi-gaiyo", 0.90), ("hoshi-gaku", 0.899), ("kawa-gaiyo", 0.70))
    assert bot._clarify("夜空の会", close) is None
    mixed = result(("hoshi-gaiyo", 0.90), ("kawa-gaiyo", 0.899))
    reply = bot._clarify("夜空の会", mixed)
    assert reply.kind == "clarify" and reply.choices[-1]["query"] == NONE_OF_THESE


def test_none_of_these_leads_to_the_fallback(bot):
    reply = bot.reply(NONE_OF_THESE)
    assert reply.kind == "fallback" and not reply.answered
    assert bot._did_you_mean(result(("hoshi-gaiyo", 0.5))).choices[-1]["label"] == NONE_OF_THESE


def test_a_deadline_follow_up_for_a_programme_without_one_says_so(bot):
    session = bot.sessions.get(None)
    session.program = "星空観察補助"
    reply = bot.reply("締切は？", session)
    assert reply.kind == "fallback" and "記載がありません" in reply.answer


def test_a_target_follow_up_picks_the_faq_about_eligibility(bot):
    session = bot.sessions.get(None)
    session.program = "星空観察補助"
    reply = bot.reply("対象は？", session)
    assert reply.faq_id == "hoshi-taisho"


# --------------------------------------------------------------- long input, kana, places
from bot.dialogue import _DISASTER  # noqa: E402
from bot.question_type import question_sentence  # noqa: E402


def test_the_question_sentence_of_a_longer_message():
    text = "町の観光係です。春から夜空の催しを考えています。補助の上限はいくらですか。よろしくお願いします。"
    assert question_sentence(text) == "補助の上限はいくらですか。"
    assert question_sentence("補助の上限はいくら？") is None  # one sentence: nothing to pick out
    assert question_sentence("We run a town club. How do I apply?") == "How do I apply?"


def test_focus_counts_the_question_words_again_without_another_model_call(bot):
    engine = bot.engine
    plain = engine.search("夜空の会を開きたい町内会です。上限はいくら", k=4)
    calls = engine.embedder.calls
    focused = engine.search("夜空の会を開きたい町内会です。上限はいくら", k=4, focus="上限はいくら")
    assert engine.embedder.calls - calls == 1  # one query vector, as without a focus
    score = {h.faq_id: h.lexical for h in focused.hits}
    assert score["hoshi-gaku"] > {h.faq_id: h.lexical for h in plain.hits}["hoshi-gaku"]


@pytest.mark.parametrize("text", ["さいがいで いえが こわれた", "ひなんじょ どこ", "おおあめで しんすい", "台風で屋根が飛んだ", "罹災証明がほしい"])
def test_plain_disaster_sentences_in_kanji_or_kana_reach_disaster_support(text):
    assert _DISASTER.search(text)


def test_english_city_names_reach_the_office_lookup(shipped):
    from bot.places import PlaceIndex

    places = PlaceIndex(shipped.kb)
    assert places.find("I live in Sapporo").prefecture == "北海道"
    assert places.find("we are in Sendai").prefecture == "宮城県"


def test_an_english_office_question_with_a_city_is_a_contacts_lookup(fast_engine):
    reply = Bot(fast_engine).reply("I live in Sendai. Where is the nearest consultation office?")
    assert reply.kind == "contacts" and "宮城" in reply.answer
