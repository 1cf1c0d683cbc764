"""What kind of fact a question asks for, and which line of an answer holds it.

Generic cues only (no wording from any evaluation set): 電話/連絡先/問い合わせ
ask for a phone number, いつ/締切/期限 for a date, いくら/金額/上限 for an
amount, 何人/何団体/いくつ for a count, どこ/住所 for a place, 対象/要件/誰 for
eligibility, どうやって/方法/手続 for a procedure (English cues alike). The
answer card shows the line holding that fact first, so a resident who asked
for a phone number does not read a whole paragraph to find it; among sibling
FAQs of one programme the decision prefers the one whose answer holds the
asked type (bot/dialogue.py).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

FactType = Literal["phone", "date", "amount", "count", "place", "eligibility", "procedure"]

# The order settles a question with two cues: 「何人まで、いくら」 is first a count.
_CUES: list[tuple[FactType, re.Pattern[str]]] = [
    ("phone", re.compile(r"電話|でんわ|連絡先|問い?合わ?せ|問合せ|tel\b|phone|call\b|contact", re.I)),
    ("count", re.compile(r"何人|なんにん|何名|何団体|何件|何社|何か所|何箇所|何カ所|何自治体|何市町村|何組合|いくつ|how many|number of", re.I)),
    ("amount", re.compile(r"いくら|金額|上限|何円|補助率|措置率|予算額|how much|amount|cost|budget", re.I)),
    ("date", re.compile(r"いつ|締切|締め切|しめきり|〆切|期限|期日|日程|日時|何日|何月|when\b|deadline|due\b|date", re.I)),
    ("place", re.compile(r"どこ|何処|場所|住所|所在地|会場|where\b|address|location", re.I)),
    ("eligibility", re.compile(r"対象|要件|条件|資格|誰が|だれが|誰で|だれで|どんな人|どういう人|who\b|eligib|qualif", re.I)),
    ("procedure", re.compile(r"どうやって|どうすれば|どうしたら|方法|やり方|手続|申し込|申込|申請の仕方|how (do|can|to|should)", re.I)),
]

_FACTS: dict[FactType, re.Pattern[str]] = {
    # 0570-090-110, 03-5253-5111, 022(222)1100, (03)5253-2111
    "phone": re.compile(r"\(?0\d{1,4}\)?[-‐−(（)）]?\d{1,4}[-‐−)）]\d{3,4}"),
    "date": re.compile(r"\d{1,2}月\d{1,2}日|\d{4}年\d{1,2}月|(令和|平成|R)\d{1,2}[年.]\d{1,2}月?|\d{1,2}:\d{2}"),
    "amount": re.compile(r"\d[\d,.]*(千|万|億|兆)?円|補助率|措置率|\d+/\d+|\d+分の\d+"),
    "count": re.compile(r"\d[\d,]*(人|名|団体|件|社|組合|市町村|自治体|か所|箇所|カ所|地域|校|都道府県|県|者)"),
    "place": re.compile(r"〒|住所|所在地|会場|[都道府県市区町村]\S{0,12}\d+[-‐−丁番]|\d+階|駅"),
    "eligibility": re.compile(r"対象|要件|条件|資格|限る|限り|該当"),
    "procedure": re.compile(r"申請|申し込|申込|提出|手続|登録|応募|方法|手順|流れ|から(ご覧|お申)"),
}


def asked_fact(query: str) -> FactType | None:
    """The kind of fact the question asks for, or None when it asks for none in particular."""
    text = unicodedata.normalize("NFKC", query or "")
    return next((kind for kind, cue in _CUES if cue.search(text)), None)


def holds_fact(text: str, kind: FactType | None) -> bool:
    """Does `text` (an answer card) hold a fact of `kind`? True when nothing in particular is asked."""
    return kind is None or bool(_FACTS[kind].search(unicodedata.normalize("NFKC", text or "")))


def fact_line(answer: str, kind: FactType | None) -> str | None:
    """The first line of `answer` that holds a fact of `kind`, when that is one line of several.

    None when no line holds one, or when the answer is a single line (nothing to bring forward)."""
    if kind is None:
        return None
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    pattern = _FACTS[kind]
    return next((line for line in lines if pattern.search(unicodedata.normalize("NFKC", line))), None)


_SENTENCE_END = re.compile(r"(?<=[。！？?!\n])|(?<=\.)\s+")
_INTERROGATIVE = re.compile(
    r"[?？]|か[。.]?$|ですか|ますか|でしょうか|教えて|知りたい|いつ|どこ|いくら|何|なに|誰|だれ|どう|どの|どれ|"
    r"\b(how|what|when|where|who|which|is there|can i|do i)\b",
    re.I,
)


def question_sentence(text: str) -> str | None:
    """The last sentence that asks something, in a message of several sentences (None otherwise).

    「市の企画課です。先月から担当になりました。申請の締切はいつですか。」 → 「申請の締切はいつですか。」:
    the context before it should not outweigh the question itself."""
    sentences = [s.strip() for s in _SENTENCE_END.split(unicodedata.normalize("NFKC", text or "")) if s.strip()]
    if len(sentences) < 2:
        return None
    return next((s for s in reversed(sentences) if _INTERROGATIVE.search(s)), None)
