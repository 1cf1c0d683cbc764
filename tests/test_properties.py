"""Property tests (Hypothesis): normalisation, tokenisation, search and masking
hold for any text a resident can type, not only for the examples elsewhere.

Every test is derandomised and keeps no example database, so a run in CI
tests the same examples each time. The search engine (the shipped content
with the hashing embedder, as in test_web.py) and the tokenizer are built once
per module by cached helpers: Hypothesis refuses function-scoped fixtures.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.privacy import mask_personal_data
from index.normalize import _VARIANTS, normalize
from index.tokenize import JapaneseTokenizer
from tests.fakes import shipped_content, shipped_engine


def examples(n: int, **more) -> settings:
    """n examples, the same ones every run (CI), no example database, no per-example deadline (a loaded CI box)."""
    return settings(max_examples=n, derandomize=True, database=None, deadline=None, **more)


# ------------------------------------------------------------------ text
HIRAGANA = st.characters(min_codepoint=0x3041, max_codepoint=0x309F)
KATAKANA = st.characters(min_codepoint=0x30A0, max_codepoint=0x30FF)
KANJI = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
FULL_AND_HALF_WIDTH = st.characters(min_codepoint=0xFF01, max_codepoint=0xFFEF)
CJK_PUNCTUATION = st.characters(min_codepoint=0x3000, max_codepoint=0x303F)
CONTROL = st.characters(categories=["Cc", "Cf"])
COMBINING = st.characters(categories=["Mn", "Mc", "Me"])
EMOJI = st.one_of(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), st.characters(min_codepoint=0x2600, max_codepoint=0x27BF))
ANY_CHAR = st.characters(exclude_categories=["Cs"])  # every code point a str can hold in UTF-8
CHARS = st.one_of(HIRAGANA, KATAKANA, KANJI, FULL_AND_HALF_WIDTH, CJK_PUNCTUATION, CONTROL, COMBINING, EMOJI, ANY_CHAR)
# What the normaliser rewrites, so the rules meet each other and their own output.
FRAGMENTS = st.sampled_from(
    [a for a, _ in _VARIANTS] + [b for _, b in _VARIANTS]
    + ["ゝ", "ゞ", "ヽ", "ヾ", "ー", "－", "-", "~", "〜", "～", "ｰ", "ｶﾞ", "元年", "令和元年", "R8.", "2026年", "①", "㈱", "㍻",
       "ﷺ", " ", "\u3000", "\t", "\n", "\u200b", "\ufeff", "ホリデ", "ワーキングホリデ", "いすゞ", "協力隊", "ＡＢＣ１２３",
       "👨\u200d👩\u200d👧", "🇯🇵", "❤\ufe0f", "👍🏽"]
)
TEXT = st.lists(st.one_of(FRAGMENTS, st.text(CHARS, max_size=4)), max_size=40).map("".join)


# ------------------------------------------------------------------ normalize
@examples(200)
@given(TEXT)
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


@examples(150)
@given(TEXT)
def test_normalized_text_is_trimmed_and_clean(text):
    once = normalize(text)
    assert once == once.strip() and "  " not in once and "ーー" not in once
    assert not any(unicodedata.category(ch)[0] == "C" for ch in once)  # no control, format or private-use characters


@pytest.mark.parametrize("text", ["アクセラレーターﾞ", "タ\u200b\u3099", "か\x07\u3099", "e\u200b\u0301"])
def test_normalize_composes_what_its_rewrites_bring_together(text):
    once = normalize(text)
    assert normalize(once) == once


@pytest.mark.parametrize("text", ["申し込みみみみみ", "受け付けけけけけ", "締め切りりりりり", "申し込みゝゝゝゝ"])
def test_normalize_applies_variant_rules_to_a_fixed_point(text):
    once = normalize(text)
    assert normalize(once) == once


# ------------------------------------------------------------------ tokenize
@functools.cache
def _kb():
    return shipped_content().kb


@functools.cache
def _tokenizer() -> JapaneseTokenizer:
    return JapaneseTokenizer([(g.canonical, g.variants) for g in _kb().synonyms])


def _check_tokens(tokens):
    assert isinstance(tokens, list) and all(isinstance(t, str) and t.strip() for t in tokens)


@examples(100)
@given(TEXT)
def test_tokenizing_any_text_never_fails(text):
    tokenizer = _tokenizer()
    for tok in (tokenizer, tokenizer.for_queries()):
        tokens = tok(text)
        _check_tokens(tokens)
        assert tok(text) == tokens
    assert tokenizer.expand(text).startswith(normalize(text))


@examples(25, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(CHARS, min_size=1, max_size=12), st.integers(min_value=500, max_value=3000))
def test_tokenizing_very_long_text_never_fails(unit, repeat):
    """Sudachi refuses inputs over ~49 KB: the tokenizer must chunk whatever it gets (up to ~36 000 characters here)."""
    text = unit * repeat
    _check_tokens(_tokenizer()(text))
    _check_tokens(_tokenizer().for_queries()(text))


def test_tokenizing_text_that_grows_under_nfkc_never_fails():
    # ﷽ becomes 18 characters under NFKC; a 4-byte emoji fills a chunk's byte budget fastest.
    for text in ("﷽" * 3000, "😀" * 20000, "ｶﾞ" * 10000, "\u3099" * 9000):
        _check_tokens(_tokenizer()(text))


# ------------------------------------------------------------------ search
@functools.cache
def _engine():
    return shipped_engine()


@functools.cache
def _questions() -> tuple[str, ...]:
    return tuple(faq.question for faq in _kb().faqs)


@st.composite
def queries(draw):
    """Anything typed, or the shipped questions, whole, cut or garbled: those meet real FAQs."""
    kind = draw(st.sampled_from(["text", "question", "cut", "mixed"]))
    if kind == "text":
        return draw(TEXT)[:500]
    question = draw(st.sampled_from(_questions()))
    if kind == "question":
        return question
    if kind == "cut":
        start = draw(st.integers(0, len(question) - 1))
        return question[start : start + draw(st.integers(1, 12))]
    return (draw(st.text(CHARS, max_size=5)) + question + draw(TEXT))[:500]


def _check_result(result, k: int, query: str, mode: str | None, within: set[str] | None = None):
    engine = _engine()
    ids = [hit.faq_id for hit in result.hits]
    assert len(ids) == len(set(ids)), "an FAQ is listed twice"
    assert set(ids) <= (within if within is not None else set(engine.faq_ids))
    assert len(ids) <= k
    assert [hit.rank for hit in result.hits] == list(range(1, len(ids) + 1))
    scores = [hit.score for hit in result.hits]
    assert all(math.isfinite(s) for s in scores) and scores == sorted(scores, reverse=True)
    assert 0.0 <= result.confidence <= 1.0 and result.band in {"answer", "candidates", "fallback"}
    if normalize(query) and (mode or "hybrid") != "lexical":
        # Hybrid and dense rank every (allowed) FAQ: the list is cut only by k.
        assert len(ids) == min(k, len(within if within is not None else engine.faq_ids))


def _key(result):
    return [(h.faq_id, h.score, h.dense, h.lexical) for h in result.hits], result.confidence, result.band


# too_slow: the first example loads the knowledge base the queries are drawn from.
@examples(60, suppress_health_check=[HealthCheck.too_slow])
@given(queries(), st.integers(min_value=1, max_value=30), st.sampled_from([None, "hybrid", "lexical", "dense"]), queries())
def test_search_lists_each_faq_once_and_is_deterministic(query, k, mode, other):
    engine = _engine()
    first = engine.search(query, k=k, mode=mode)
    _check_result(first, k, query, mode)
    engine.search(other, k=k, mode=mode)  # nothing carries over from one query to the next
    assert _key(engine.search(query, k=k, mode=mode)) == _key(first)


@examples(50, suppress_health_check=[HealthCheck.too_slow])
@given(queries(), st.integers(min_value=1, max_value=30), st.data())
def test_search_within_a_subset_stays_within_it(query, k, data):
    engine = _engine()
    only = data.draw(st.sets(st.sampled_from(engine.faq_ids), max_size=25), label="only")
    first = engine.search(query, k=k, only=only)
    _check_result(first, k, query, None, within=only)
    assert _key(engine.search(query, k=k, only=only)) == _key(first)


# ------------------------------------------------------------------ masking
DIGITS = "0123456789"
FULL_WIDTH = str.maketrans("0123456789()+-", "０１２３４５６７８９（）＋－")
HYPHENS = ["-", "‐", "‑", "‒", "–", "—", "―", "−", "ー", "－", "ｰ", "﹣"]
SEPARATORS = st.sampled_from(HYPHENS + ["", " ", "　", ".", " - ", "  "])


def digits(n: int):
    return st.text(st.sampled_from(DIGITS), min_size=n, max_size=n)


@st.composite
def phone_numbers(draw):
    """A Japanese phone number as residents write it: 10-digit landlines with 1-4 digit area codes after the 0,
    070/080/090 mobiles, 050 IP phones, 0120/0570/0800 numbers, +81 forms, numbers without their area code;
    hyphens of every kind, spaces, dots, parentheses or nothing between the groups; half- or full-width."""
    kind = draw(st.sampled_from(["landline", "mobile", "ip", "free", "local"]))
    if kind == "landline":
        area_digits = draw(st.integers(1, 4))
        area = "0" + draw(st.sampled_from("123456789")) + draw(digits(area_digits - 1))
        groups = [area, draw(digits(9 - area_digits - 4)), draw(digits(4))]
    elif kind == "mobile":
        groups = [draw(st.sampled_from(["070", "080", "090"])), draw(digits(4)), draw(digits(4))]
    elif kind == "ip":
        groups = ["050", draw(digits(4)), draw(digits(4))]
    elif kind == "free":
        prefix = draw(st.sampled_from(["0120", "0570", "0800"]))
        groups = [prefix, draw(digits(3)), draw(digits(4 if prefix == "0800" else 3))]
    else:
        groups = [draw(st.sampled_from("123456789")) + draw(digits(3)), draw(digits(4))]
    style = draw(st.sampled_from(["separated", "+81", "area in parentheses", "local in parentheses", "plain"]))
    first_sep, second_sep = draw(SEPARATORS), draw(SEPARATORS)
    if kind == "local":
        number = groups[0] + draw(st.sampled_from(HYPHENS + [" "])) + groups[1]
    elif style == "+81":
        lead = draw(st.sampled_from(["+81", "+81 ", "+81-", "+81(0)", "+81 (0)", "+81-(0)"]))
        number = lead + groups[0][1:] + (first_sep or "-") + groups[1] + second_sep + groups[2]
    elif style == "area in parentheses":
        number = "(" + groups[0] + ")" + draw(st.sampled_from(["", " "])) + groups[1] + second_sep + groups[2]
    elif style == "local in parentheses":
        number = groups[0] + "(" + groups[1] + ")" + groups[2]
    elif style == "plain":
        number = "".join(groups)
    else:
        number = groups[0] + first_sep + groups[1] + second_sep + groups[2]
    return number.translate(FULL_WIDTH) if draw(st.booleans()) else number


ATOM = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-%"), min_size=1, max_size=10)
LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
TLDS = st.sampled_from(["jp", "com", "net", "org", "co.jp", "go.jp", "lg.jp", "ne.jp", "or.jp", "ac.jp", "info"])


@st.composite
def email_addresses(draw):
    local = ".".join(draw(st.lists(ATOM, min_size=1, max_size=3)))
    domain = ".".join([*draw(st.lists(LABEL, min_size=1, max_size=3)), draw(TLDS)])
    address = local + draw(st.sampled_from(["@", "＠"])) + domain
    if draw(st.booleans()):  # typed in full width
        address = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in address)
    return address


# Japanese around the personal data: no digits, no Latin letters, nothing that could belong to the number or address.
JAPANESE = st.text(
    st.one_of(HIRAGANA.filter(lambda c: c not in "\u3099\u309a"), st.characters(min_codepoint=0x30A1, max_codepoint=0x30FA),
              KANJI, st.sampled_from("、。：！？「」（） 　ー")),
    max_size=15,
)


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _no_leftover_digits(masked: str, number: str):
    assert not re.search(r"\d", masked), f"{number!r} left digits in {masked!r}"


@examples(150)
@given(JAPANESE, phone_numbers(), JAPANESE)
def test_masking_removes_every_phone_number(before, number, after):
    masked = mask_personal_data(before + number + after)
    _no_leftover_digits(masked, number)
    # Only the number goes: the words around it stay.
    assert masked.startswith(_nfkc(before)) and masked.endswith(_nfkc(after))
    assert re.search(r"\[(電話|番号|郵便番号)\]", masked)


@examples(100)
@given(JAPANESE, email_addresses(), JAPANESE)
def test_masking_removes_every_email_address(before, address, after):
    masked = mask_personal_data(before + address + after)
    plain = _nfkc(address)
    local, domain = plain.split("@")
    assert plain not in masked and "@" not in masked and domain not in masked
    assert masked.startswith(_nfkc(before)) and masked.endswith(_nfkc(after)) and "[メール]" in masked


# Something between two numbers, if only a space: 090-1234-5678 0120-123-456. Not only a dash: 1234-5678ー090-…
# is one run of digit groups to anyone reading it.
BETWEEN = st.one_of(
    st.sampled_from([" ", "　", "\n", "、", "（", " / "]),
    JAPANESE.filter(lambda words: words.strip(" 　ー（）") != ""),
)


@examples(60)
@given(st.lists(st.tuples(BETWEEN, st.one_of(phone_numbers(), email_addresses())), min_size=1, max_size=5), JAPANESE)
def test_masking_removes_all_personal_data_in_a_long_message(parts, tail):
    text = "".join(words + data for words, data in parts) + tail
    masked = mask_personal_data(text)
    assert not re.search(r"\d", masked) and "@" not in masked
    for words, _ in parts:
        if words.strip():  # blank between two runs of digits may go with them: 1234-5678 1234-5678 → [番号]
            assert _nfkc(words) in masked


PERSONAL_LOOKING = st.sampled_from(["0", "03", "090", "+81", "(", ")", "-", "ー", "‐", " ", "〒", "@", ".", "a", "jp", "1234", "５６７８"])


@examples(120)
@given(st.lists(st.one_of(TEXT, PERSONAL_LOOKING, phone_numbers(), email_addresses()), max_size=12).map("".join))
def test_masking_never_fails_and_is_idempotent(text):
    masked = mask_personal_data(text)
    assert isinstance(masked, str)
    assert mask_personal_data(masked) == masked


@examples(150)
@given(TEXT)
def test_masking_leaves_text_without_digits_or_at_signs_alone(text):
    plain = _nfkc(text)
    assume(not re.search(r"[\d@]", plain))
    assert mask_personal_data(text) == plain
