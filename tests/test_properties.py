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
from pathlib import Path

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
KANJI_NUMERALS = str.maketrans(DIGITS, "〇一二三四五六七八九")
FULL_WIDTH = str.maketrans("0123456789()+-", "０１２３４５６７８９（）＋－")
HYPHENS = ["-", "‐", "‑", "‒", "–", "—", "―", "−", "ー", "－", "ｰ", "﹣"]
# Every separator residents put between digit groups: hyphens and dashes, spaces, dot, slash, comma, underscore, の.
SEPARATORS = st.sampled_from(HYPHENS + ["", " ", "　", ".", " - ", "  ", "/", ",", "_", "の", "・", "／", "，", "．"])
INVISIBLE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069", "\u00ad"])
PLACEHOLDER = re.compile("［(電話番号|メール|個人番号|カード番号|口座番号|番号|郵便番号|住所|生年月日|氏名)］")


def digits(n: int):
    return st.text(st.sampled_from(DIGITS), min_size=n, max_size=n)


@st.composite
def phone_numbers(draw):
    """A Japanese phone number as residents write it: 10-digit landlines with 1-4 digit area codes after the 0,
    070/080/090 mobiles, 050 IP phones, 0120/0570/0800 numbers, +81 forms, numbers without their area code;
    any separator or none between the groups; half- or full-width, or in kanji numerals (〇九〇-一二三四-…)."""
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
    style = draw(st.sampled_from(["separated", "+81", "area in parentheses", "local in parentheses", "plain", "kanji"]))
    first_sep, second_sep = draw(SEPARATORS), draw(SEPARATORS)
    if kind == "local":
        number = groups[0] + draw(st.sampled_from(HYPHENS + [" ", "の", "/", "_", "."])) + groups[1]
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
    if style == "kanji" and kind != "local":
        return number.translate(KANJI_NUMERALS)
    return number.translate(FULL_WIDTH) if draw(st.booleans()) else number


ATOM = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-%"), min_size=1, max_size=10)
LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
TLDS = st.sampled_from(["jp", "com", "net", "org", "co.jp", "go.jp", "lg.jp", "ne.jp", "or.jp", "ac.jp", "info", "日本", "みんな", "コム"])
# Japanese local parts and domain labels: kanji and katakana, and hiragana other than the particles
# (は が を に へ と で も の), which end a word.
JA_WORD = st.text(
    st.one_of(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), st.characters(min_codepoint=0x30A1, max_codepoint=0x30FA),
              st.sampled_from("あいうえおかきくけこさしすせそたちつなぬねまみむめやゆよらりるれろわ")),
    min_size=1, max_size=6,
).filter(lambda w: not set(w) & set("〇一二三四五六七八九"))
SPELLED_AT = st.sampled_from(["(at)", " (at) ", "[at]", " [at] ", "{at}", "<at>", "（at）", "【at】", " アット ", "アット", " あっと ",
                              "アットマーク", " at ", " AT "])


@st.composite
def email_addresses(draw):
    """Returns (address as typed, the parts that must not survive)."""
    local_kind = draw(st.sampled_from(["ascii", "ascii", "japanese"]))
    local = ".".join(draw(st.lists(ATOM, min_size=1, max_size=3))) if local_kind == "ascii" else draw(JA_WORD)
    labels = draw(st.lists(st.one_of(LABEL, LABEL, JA_WORD), min_size=1, max_size=3))
    tld = draw(st.one_of(TLDS, st.just(None)))  # no TLD at all: taro@localhost
    domain = ".".join(labels + ([tld] if tld else []))
    at = draw(st.sampled_from(["@", "＠", " @ ", " ＠ ", "@ "]))
    if local_kind == "ascii" and draw(st.booleans()):
        at = draw(SPELLED_AT)
        if at.strip() in ("at", "AT"):  # "taro at example.jp" is an address only with a dotted ASCII domain
            domain = ".".join(draw(st.lists(LABEL, min_size=1, max_size=2)) + [draw(st.sampled_from(["jp", "com", "co.jp"]))])
    address = local + at + domain
    if draw(st.booleans()):  # typed in full width
        address = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in address)
    return address, [local, *[label for label in domain.split(".") if len(label) > 2]]


# Japanese around the personal data: no digits (kanji numerals included), no Latin letters, nothing that
# could belong to the number or address.
JAPANESE = st.text(
    st.one_of(HIRAGANA.filter(lambda c: c not in "\u3099\u309a"), st.characters(min_codepoint=0x30A1, max_codepoint=0x30FA),
              KANJI.filter(lambda c: c not in "〇一二三四五六七八九十百"), st.sampled_from("、。：！？「」（） 　ー")),
    max_size=15,
)


def _clean(text: str) -> str:
    return mask_personal_data.__globals__["clean"](text)


def _middle(masked: str, before: str, after: str) -> str:
    """What the personal data became: the words around it stay exactly as they were (cleaned)."""
    before, after = _clean(before), _clean(after)
    assert masked.startswith(before) and masked.endswith(after), (before, masked, after)
    return masked[len(before) : len(masked) - len(after)]


def _no_digits(text: str) -> bool:
    return not re.search(r"[0-9〇一二三四五六七八九]", PLACEHOLDER.sub("", text))


@examples(200)
@given(JAPANESE, phone_numbers(), JAPANESE)
def test_masking_removes_every_phone_number(before, number, after):
    masked = mask_personal_data(before + number + after)
    middle = _middle(masked, before, after)
    assert _no_digits(middle), f"{number!r} left digits in {masked!r}"
    assert PLACEHOLDER.search(middle)


@examples(150)
@given(JAPANESE, email_addresses(), JAPANESE)
def test_masking_removes_every_email_address(before, address_parts, after):
    address, parts = address_parts
    # A space on either side: a Japanese local part or domain would otherwise run on into the words around it.
    masked = mask_personal_data(f"{before} {address} {after}")
    middle = _middle(masked, before + " ", " " + after)
    assert "@" not in masked and "＠" not in masked and "［メール］" in middle
    for part in parts:
        assert _clean(part) not in PLACEHOLDER.sub("", middle), (address, masked)


def _luhn_complete(body: str) -> str:
    for check in DIGITS:
        number = body + check
        total = sum(int(d) if i % 2 == 0 else (int(d) * 2 - 9 if int(d) > 4 else int(d) * 2) for i, d in enumerate(reversed(number)))
        if total % 10 == 0:
            return number
    raise AssertionError(body)


@st.composite
def card_numbers(draw):
    """Luhn-valid: 16 digits in fours, 15 as 4-6-5 (Amex), 14 as 4-6-4 (Diners), 19 in fours; any separator."""
    length = draw(st.sampled_from([14, 15, 16, 16, 19]))
    number = _luhn_complete(draw(st.sampled_from("3456")) + draw(digits(length - 2)))
    sizes = {14: [4, 6, 4], 15: [4, 6, 5], 16: [4, 4, 4, 4], 19: [4, 4, 4, 4, 3]}[length]
    sep = draw(SEPARATORS)
    groups, at = [], 0
    for size in sizes:
        groups.append(number[at : at + size])
        at += size
    text = sep.join(groups)
    return text.translate(FULL_WIDTH) if draw(st.booleans()) else text


@st.composite
def my_numbers(draw):
    number = draw(st.sampled_from("123456789")) + draw(digits(11))
    sep = draw(SEPARATORS)
    text = sep.join([number[:4], number[4:8], number[8:]])
    if draw(st.booleans()):
        text = text.translate(KANJI_NUMERALS) if draw(st.booleans()) else text.translate(FULL_WIDTH)
    return draw(st.sampled_from(["", "マイナンバー", "マイナンバーは", "個人番号：", "番号 "])) + text


@examples(150)
@given(JAPANESE, st.one_of(card_numbers(), my_numbers()), JAPANESE)
def test_masking_removes_card_and_individual_numbers(before, number, after):
    masked = mask_personal_data(before + number + after)
    middle = _middle(masked, before, after)
    assert _no_digits(middle), (number, masked)
    assert re.search("［(カード番号|個人番号|番号)］", middle)


@st.composite
def labelled_numbers(draw):
    """A bank account, pension, passport, insurance or other number after its label."""
    label, value = draw(st.sampled_from([
        ("口座番号", "{7}"), ("口座番号は", "{7}"), ("普通 ", "{7}"), ("当座", "{7}"), ("支店番号", "{3}"),
        ("基礎年金番号", "{4}-{6}"), ("年金番号 ", "{4}{6}"), ("パスポート番号 ", "TK{7}"), ("旅券番号", "MZ{7}"),
        ("記号 ", "{2}"), ("記号：", "{4}"), ("番号 ", "{3}"), ("保険者番号", "{8}"), ("被保険者番号 ", "{8}"),
        ("受給者証番号", "{7}"), ("会員番号 ", "A{6}"), ("ID:", "{6}"), ("電話 ", "{4}"), ("TEL:", "{4}-{4}"),
    ]))
    sep = draw(SEPARATORS.filter(lambda s: s not in ("", ".", ",", "．", "，")))
    text = re.sub(r"\{(\d)\}", lambda m: draw(digits(int(m.group(1)))), value).replace("-", sep if "-" in value else "-")
    return label + (text.translate(FULL_WIDTH) if draw(st.booleans()) else text), label


@examples(150)
@given(JAPANESE, labelled_numbers(), JAPANESE)
def test_masking_removes_the_number_after_a_label(before, labelled, after):
    text, label = labelled
    masked = mask_personal_data(before + text + "。" + after)
    middle = _middle(masked, before, "。" + after)
    assert middle.startswith(_clean(label).rstrip()) and _no_digits(middle) and PLACEHOLDER.search(middle), (text, masked)


TOWNS = st.sampled_from(["鹿児島市山下町", "霧島市国分中央", "千代田区霞が関", "西新宿", "奄美市名瀬幸町", "那覇市泉崎", "屋久島町宮之浦", "大手前"])
ERAS = st.sampled_from(["昭和", "平成", "令和"])


@st.composite
def addresses(draw):
    n = lambda: str(draw(st.integers(1, 40)))  # noqa: E731
    form = draw(st.sampled_from(["{a}丁目{b}番地{c}号", "{a}丁目{b}番{c}号", "{a}丁目{b}-{c}", "{a}-{b}-{c}", "{a}番地{b}", "{a}番{b}号",
                                 "{a}番地の{b}", "{a}丁目", "{a}-{b}-{c}-{d}", "{a}丁目{b}番地{c}号 {d}号室"]))
    text = form.format(a=n(), b=n(), c=n(), d=str(draw(st.integers(101, 999))))
    if draw(st.booleans()) and "-" not in text:
        text = text.translate(KANJI_NUMERALS) if draw(st.booleans()) else text.translate(FULL_WIDTH)
    return draw(TOWNS), text


@examples(100)
@given(JAPANESE, addresses(), JAPANESE)
def test_masking_removes_street_numbers_and_keeps_the_town(before, address, after):
    town, number = address
    masked = mask_personal_data(before + "住所は" + town + number + "です" + after)
    middle = _middle(masked, before + "住所は" + town, "です" + after)  # the town alone is no address: it stays
    assert middle == "［住所］", (number, masked)


@st.composite
def birth_dates(draw):
    y, mo, d = draw(st.integers(1, 63)), draw(st.integers(1, 12)), draw(st.integers(1, 28))
    western = draw(st.integers(1930, 2025))
    date = draw(st.sampled_from([
        f"{draw(ERAS)}{y}年{mo}月{d}日", f"{western}年{mo}月{d}日", f"{western}/{mo:02d}/{d:02d}", f"{western}-{mo:02d}-{d:02d}",
        f"{western}.{mo}.{d}", f"{draw(st.sampled_from('SHR'))}{y}.{mo}.{d}",
    ]))
    if draw(st.booleans()):
        date = date.translate(FULL_WIDTH)
    return draw(st.sampled_from(["生年月日は{}です", "生年月日：{}", "{}生まれです", "{}生", "{} 生まれ", "誕生日は{}"])).format(date)


@examples(100)
@given(JAPANESE, birth_dates(), JAPANESE)
def test_masking_removes_birth_dates(before, text, after):
    masked = mask_personal_data(before + text + "。" + after)
    middle = _middle(masked, before, "。" + after)
    assert "［生年月日］" in middle and _no_digits(middle), (text, masked)


SURNAMES = st.sampled_from(["山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "中村", "小林", "加藤", "吉田", "木村", "林", "斎藤", "松本"])
GIVEN_NAMES = st.sampled_from(["太郎", "花子", "一郎", "健", "さくら", "翔太", "陽菜", "三四郎", "ともこ", "大輔", "美咲"])
KATAKANA_NAMES = st.sampled_from(["ジョン・スミス", "マリア", "グエン", "アンナ", "マイケル ブラウン", "リー"])


@st.composite
def self_introductions(draw):
    """Returns (the introduction, the same with ［氏名］ in place of the name)."""
    name = draw(st.one_of(SURNAMES, st.tuples(SURNAMES, st.sampled_from(["", " "]), GIVEN_NAMES).map("".join), KATAKANA_NAMES))
    form = draw(st.sampled_from(["私は{}です", "わたしは{}です", "{}と申します", "{}といいます", "{}と言います", "名前は{}です", "氏名：{}",
                                 "私の名前は{}です", "僕は{}です", "{}ともうします"]))
    return form.format(name), _clean(form).format("［氏名］")


@examples(150)
@given(st.sampled_from(["", "はじめまして、", "お世話になります。", "協力隊OBの", "市役所の"]), self_introductions(),
       st.sampled_from(["", "。よろしくお願いします", "。任期について聞きたいです", "、移住の相談です"]))
def test_masking_removes_self_introduced_names(before, introduction, after):
    text, expected = introduction
    assert mask_personal_data(before + text + after) == _clean(before) + expected + _clean(after)


def _personal_data():
    return st.one_of(phone_numbers(), email_addresses().map(lambda a: a[0]), card_numbers(), my_numbers(),
                     labelled_numbers().map(lambda t: t[0]), birth_dates(), self_introductions().map(lambda t: t[0]))


@examples(100)
@given(_personal_data(), st.lists(INVISIBLE, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_invisible_characters_hide_nothing(text, invisible, rng):
    """Zero-width and bidi characters anywhere in personal data: masked exactly as without them."""
    chars = list(text)
    for mark in invisible:
        chars.insert(rng.randint(0, len(chars)), mark)
    assert mask_personal_data("".join(chars)) == mask_personal_data(text)


# Something between two numbers, if only a space: 090-1234-5678 0120-123-456. Not only a dash: 1234-5678ー090-…
# is one run of digit groups to anyone reading it.
BETWEEN = st.one_of(
    st.sampled_from([" ", "　", "\n", "、", "（", " / "]),
    JAPANESE.filter(lambda words: words.strip(" 　ー（）") != ""),
)


@examples(60)
@given(st.lists(st.tuples(BETWEEN, st.one_of(phone_numbers(), email_addresses().map(lambda a: a[0]))), min_size=1, max_size=5),
       JAPANESE)
def test_masking_removes_all_personal_data_in_a_long_message(parts, tail):
    text = "".join(f"{words} {data} " for words, data in parts) + tail
    masked = mask_personal_data(text)
    assert _no_digits(masked) and "@" not in masked
    for words, _ in parts:
        if words.strip(" 　（）"):  # a bracket between two numbers may go with them: 03 (1234) 5678
            assert _clean(words).strip() in masked


PERSONAL_LOOKING = st.sampled_from(["0", "03", "090", "+81", "(", ")", "-", "ー", "‐", " ", "〒", "@", ".", "a", "jp", "1234", "５６７８",
                                    "の", "/", "〇", "九", "丁目", "番地", "号", "私は", "です", "と申します", "(at)", "アット", "生まれ",
                                    "年", "月", "日", "昭和", "名前は", "［電話番号］", "[氏名]", "\u200b", "\u202e"])


@examples(200)
@given(st.lists(st.one_of(TEXT, PERSONAL_LOOKING, phone_numbers(), email_addresses().map(lambda a: a[0]), birth_dates(),
                          self_introductions().map(lambda t: t[0])), max_size=12).map("".join))
def test_masking_never_fails_and_is_idempotent(text):
    masked = mask_personal_data(text)
    assert isinstance(masked, str)
    assert mask_personal_data(masked) == masked


# What could start personal data: digits (kanji numerals too), an @ or a spelled-out one, the words of a
# self-introduction, a birth date, an address or a label. Text with none of them is only cleaned.
TRIGGERS = re.compile(
    r"[0-9@〇零一二三四五六七八九十百○◯]|(?i:at|dot|name|call me|dob|birth)|アット|あっと|ドット|どっと|私|わたし|わたくし|僕|ぼく|俺|自分|"
    r"名前|氏名|なまえ|フルネーム|申|もうし|とい|と言|ってい|って言|と呼|生年月日|誕生日|生まれ|出生|住所|番号|記号|ナンバー|"
    r"電話|携帯|TEL|Tel|tel|FAX|Fax|口座|普通|当座|支店|店番|旅券|保険証|年金|免許証|ID|No|№|〒|\[|［"
)


@examples(150)
@given(TEXT)
def test_masking_leaves_text_without_personal_looking_parts_alone(text):
    plain = _clean(text)
    assume(not TRIGGERS.search(plain))
    assert mask_personal_data(text) == plain


def _ordinary_questions() -> list[str]:
    path = Path(__file__).parent / "data" / "ordinary_questions.txt"
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]


def test_ordinary_questions_are_not_damaged():
    """Figures, dates, places and statements about oneself are what staff need to read: no placeholder."""
    questions = _ordinary_questions() + [q for f in _kb().faqs for q in [f.question, *f.alt_questions]]
    assert len(_ordinary_questions()) >= 50
    damaged = [(q, mask_personal_data(q)) for q in questions if PLACEHOLDER.search(mask_personal_data(q))]
    assert damaged == []
    for question in questions:
        assert mask_personal_data(question) == _clean(question)
