"""Fact coverage: every checkable fact in the documents, and the FAQs that hold it.

`govfaq faq coverage --facts` lists them, facts held by no FAQ first, so that
staff see what a resident could ask and get no answer to.

What counts as a fact (one regular expression each, on NFKC text):

- ``url``: ``http(s)://…`` up to a space, bracket or Japanese punctuation;
- ``email``: ``name@domain.tld``;
- ``phone``: ``0570-090-110``, ``03-5253-5111``, ``022(222)1100``, ``(03)5253-2111``;
- ``date``: a month and a day (``2月20日``), or a year and a month
  (``令和7年12月``, ``R7.12月``). A year alone (``令和7年度``) is not a fact of
  its own: it stands on almost every line;
- ``amount``: a number with 円 (``500万円``, ``1,639億円``);
- ``figure``: a number with a counter (``7,910人``, ``135組合``, ``24県``, ``43万件``, ``50%``);
- ``programme``: a name in 「…」 (4–40 characters, no sentence inside), and a
  run of kanji, katakana, ASCII and ・ ending in 事業, 制度, 交付金, 補助金 or
  支援金 whose part before the ending has 3+ characters (so that a bare
  「支援事業」 or 「本事業」 is not a name).

An FAQ holds a fact when its answer, or a contact it lists (what its card
shows), contains the fact after the faithfulness normalisation (NFKC, no
spaces, no digit-group commas). A date is held by its month and day or year
and month, whatever weekday or year is written beside it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .faithfulness import normalise
from .loader import KnowledgeBase

KINDS = ("phone", "email", "url", "date", "amount", "figure", "programme")
_NAME_CHARS = r"[\u4e00-\u9fff\u3005\u30a0-\u30ffA-Za-z0-9・]"
_PATTERNS: dict[str, re.Pattern[str]] = {
    "url": re.compile(r"https?://[^\s<>\"'()（）「」『』、。]+"),
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    "phone": re.compile(r"(?<![\d-])(?:\(0\d{1,4}\)\d{1,4}-\d{3,4}|0\d{1,4}(?:-\d{1,4}-|\(\d{1,4}\))\d{3,4})(?![\d-])"),
    "date": re.compile(r"(?<!\d)\d{1,2}月\d{1,2}日|(?:(?:令和|平成)(?:\d{1,2}|元)年|(?<![A-Za-z])R\d{1,2}\.|(?<!\d)20\d\d年)\d{1,2}月(?!\d{1,2}日)"),
    "amount": re.compile(r"(?<![\d.])\d+(?:,\d{3})*(?:\.\d+)?(?:兆|億|千万|百万|万|千)?円"),
    "figure": re.compile(r"(?<![\d.])\d+(?:,\d{3})*(?:\.\d+)?(?:万|千)?(?:人|名|団体|件|社|組合|市町村|自治体|か所|箇所|カ所|地域|校|都道府県|県|市|町村|世帯|施設|%|％)"),
    "programme": re.compile(r"「([^「」。\n]{4,40})」|(" + _NAME_CHARS + r"{3,}?(?:事業|制度|交付金|補助金|支援金))"),
}
# A name's run stops here; "を活用した〇〇事業" keeps only the name.
_GENERIC_HEADS = ("本", "同", "当該", "各", "新規", "既存", "関連", "対象")


@dataclass
class Fact:
    kind: str
    value: str  # as first written in the documents
    key: str  # normalised, what an answer must contain
    places: list[tuple[str, int]] = field(default_factory=list)  # (document, line)
    faqs: list[str] = field(default_factory=list)


def _key(kind: str, value: str) -> str:
    key = normalise(value)
    if kind == "date":
        key = re.sub(r"^(令和|平成)元年", r"\g<1>1年", key)
    return key


def extract(text: str) -> list[tuple[str, str]]:
    """(kind, value) of every fact in one line of text, in order of kind."""
    line = unicodedata.normalize("NFKC", text)
    out: list[tuple[str, str]] = []
    taken: list[tuple[int, int]] = []  # a phone number's digits are not also a figure
    for kind in KINDS:
        for match in _PATTERNS[kind].finditer(line):
            start, end = match.span()
            if kind in ("date", "amount", "figure") and any(a <= start < b for a, b in taken):
                continue
            value = next((g for g in match.groups() if g), None) if kind == "programme" else match.group(0)
            if not value:
                continue
            value = value.replace("**", "").strip().strip("・").rstrip(".")
            if kind == "programme" and (value.startswith(_GENERIC_HEADS) or not re.search(r"[\u4e00-\u9fff\u30a0-\u30ff]", value)):
                continue
            out.append((kind, value))
            if kind in ("phone", "email", "url"):
                taken.append((start, end))
    return out


def card_text(kb: KnowledgeBase, faq) -> str:
    """What an FAQ's card shows that can hold a fact: its answer and its contacts."""
    parts = [faq.answer]
    for contact_id in faq.contacts:
        contact = kb.contacts.get(contact_id)
        if contact:
            parts += [contact.name, contact.phone or "", contact.email or "", contact.url or "", contact.address or ""]
    return normalise("\n".join(parts))


def fact_coverage(kb: KnowledgeBase) -> list[Fact]:
    """Every fact of every document with the FAQs holding it; facts held by no FAQ first."""
    facts: dict[tuple[str, str], Fact] = {}
    for name, doc in sorted(kb.sources.items()):
        for number, line in enumerate(doc.lines, 1):
            for kind, value in extract(line):
                key = _key(kind, value)
                fact = facts.setdefault((kind, key), Fact(kind, value, key))
                fact.places.append((name, number))
    cards = [(faq.id, card_text(kb, faq)) for faq in kb.faqs]
    for fact in facts.values():
        fact.faqs = [faq_id for faq_id, text in cards if fact.key in text]
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(facts.values(), key=lambda f: (bool(f.faqs), f.places[0], order[f.kind]))


def summary(facts: list[Fact]) -> dict:
    by_kind = {k: {"facts": 0, "held_by_no_faq": 0} for k in KINDS}
    for fact in facts:
        by_kind[fact.kind]["facts"] += 1
        by_kind[fact.kind]["held_by_no_faq"] += not fact.faqs
    return {"facts": len(facts), "held_by_no_faq": sum(not f.faqs for f in facts), "by_kind": by_kind}


def faqs_by_fact_count(kb: KnowledgeBase, facts: list[Fact]) -> list[tuple[str, int]]:
    """FAQs by how many distinct document facts (other than programme names) their cards hold:
    an overview FAQ that bundles many facts residents ask about one at a time is near the top."""
    counts: dict[str, int] = {}
    for fact in facts:
        if fact.kind != "programme":
            for faq_id in fact.faqs:
                counts[faq_id] = counts.get(faq_id, 0) + 1
    return sorted(counts.items(), key=lambda item: -item[1])


def format_facts(facts: list[Fact], kb: KnowledgeBase | None = None, limit_faqs: int = 6) -> str:
    out = []
    held = None
    for fact in facts:
        if bool(fact.faqs) != held:
            held = bool(fact.faqs)
            out.append("\n# held by an FAQ" if held else "# held by no FAQ")
        doc, line = fact.places[0]
        more = f" (+{len(fact.places) - 1} places)" if len(fact.places) > 1 else ""
        faqs = ", ".join(fact.faqs[:limit_faqs]) + (f", … {len(fact.faqs)} FAQs" if len(fact.faqs) > limit_faqs else "")
        out.append(f"{fact.kind:<9} {fact.value}  {doc}:{line}{more}" + (f"  → {faqs}" if faqs else ""))
    s = summary(facts)
    kinds = ", ".join(f"{k} {v['facts']} ({v['held_by_no_faq']} unheld)" for k, v in s["by_kind"].items())
    out.append(f"\n{s['facts']} facts in the documents, {s['held_by_no_faq']} held by no FAQ: {kinds}.")
    return "\n".join(out).lstrip("\n")
