"""The single decision path: what the bot says to a query.

The web service, `govfaq ask` and `govfaq eval` all call `Bot.reply`, so the
figures `govfaq eval` reports are the figures residents get.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import asdict, dataclass, field

from faq.schema import FAQ, Contact
from index.engine import SearchEngine, SearchResult

from .deadlines import Clock, DeadlineStatus, deadline_status, format_date, tokyo_now

MAX_QUERY_CHARS = 500
FALLBACK_CONTACTS = ("soudan-110ban", "soudan-internet-form")

_GREETING = re.compile(r"^(こんにちは|こんばんは|おはよう(ございます)?|はじめまして|hello|hi|hey|やあ|どうも)[!！。.~〜ー]*$", re.I)
_THANKS = re.compile(r"^(ありがとう(ございます|ございました)?|thanks?( you)?|thank you|助かりました|どうも(ありがとう)?)[!！。.~〜]*$", re.I)
_HELP = re.compile(r"^(何ができるの|何ができますか|なにができるの|使い方(を教えて)?|ヘルプ|help|how to use|what can you do)[?？!！。]*$", re.I)


@dataclass(frozen=True)
class Candidate:
    faq_id: str
    question: str
    answer: str
    score: float


@dataclass(frozen=True)
class Reply:
    kind: str  # answer | candidates | fallback | smalltalk | refused
    answered: bool
    faq_id: str | None
    answer: str  # the full text a resident sees
    band: str
    confidence: float
    message: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    contacts: list[dict] = field(default_factory=list)
    deadlines: list[dict] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    related: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def contact_line(contact: Contact) -> str:
    parts = [contact.name]
    if contact.address:
        parts.append(contact.address)
    if contact.phone:
        phone = f"電話 {contact.phone}"
        if contact.extension:
            phone += f" 内線 {contact.extension}"
        parts.append(phone)
    if contact.email:
        parts.append(f"メール {contact.email}")
    if contact.url:
        parts.append(contact.url)
    if contact.hours:
        parts.append(f"受付 {contact.hours}")
    return "・" + " / ".join(parts)


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()


class Bot:
    def __init__(self, engine: SearchEngine, clock: Clock = tokyo_now):
        self.engine = engine
        self.kb = engine.kb
        self.clock = clock

    # ------------------------------------------------------------- pieces
    def today(self) -> dt.date:
        return self.clock().date()

    def deadline_statuses(self, faq: FAQ) -> list[DeadlineStatus]:
        today = self.today()
        return [deadline_status(d, today) for d in faq.deadlines]

    def source_of(self, faq: FAQ) -> dict:
        return {
            "document": faq.source.document,
            "title": self.kb.document_title(faq.source.document),
            "section": faq.source.section,
            "line": faq.source.line,
            "updated": faq.updated.isoformat(),
        }

    def answer_text(self, faq: FAQ) -> str:
        """The answer card as plain text: answer, dates, contacts, source."""
        lines = [faq.answer.strip()]
        statuses = self.deadline_statuses(faq)
        if statuses:
            lines += ["", "【日程】", *("・" + s.text for s in statuses)]
        contacts = [self.kb.contacts[c] for c in faq.contacts if c in self.kb.contacts]
        if contacts:
            lines += ["", "【問合せ先】", *(contact_line(c) for c in contacts)]
        src = self.source_of(faq)
        lines += ["", f"出典: {src['title']}「{src['section']}」 (更新 {format_date(faq.updated, wareki=False)})"]
        return "\n".join(lines)

    def fallback_text(self, reason: str = "") -> str:
        lines = [
            reason or "申し訳ありません。お尋ねの内容にお答えできるFAQが見つかりませんでした。",
            "行政への相談は、次の窓口で受け付けています。",
        ]
        lines += [contact_line(self.kb.contacts[c]) for c in FALLBACK_CONTACTS if c in self.kb.contacts]
        return "\n".join(lines)

    def related(self, faq: FAQ, result: SearchResult | None, n: int = 3) -> list[dict]:
        """Other FAQs on the same programme first, then what search ranked next."""
        ids = []
        if faq.program:
            ids += [f.id for f in self.kb.faqs if f.program == faq.program and f.id != faq.id][:n]
        if result:
            ids += [h.faq_id for h in result.hits if h.faq_id != faq.id]
        out = []
        for faq_id in dict.fromkeys(ids):
            other = self.kb.get(faq_id)
            if other:
                out.append({"faq_id": other.id, "question": other.question})
            if len(out) == n:
                break
        return out

    def answer_reply(self, faq: FAQ, result: SearchResult | None, confidence: float, band: str) -> Reply:
        contacts = [self.kb.contacts[c] for c in faq.contacts if c in self.kb.contacts]
        return Reply(
            kind="answer",
            answered=True,
            faq_id=faq.id,
            answer=self.answer_text(faq),
            band=band,
            confidence=confidence,
            message=faq.question,
            candidates=self._candidates(result, exclude=faq.id) if result else [],
            contacts=[c.model_dump(exclude_none=True) for c in contacts],
            deadlines=[asdict(s) | {"date": s.date.isoformat()} for s in self.deadline_statuses(faq)],
            sources=[self.source_of(faq)],
            related=self.related(faq, result),
        )

    def _candidates(self, result: SearchResult, exclude: str | None = None, n: int = 5) -> list[Candidate]:
        out = []
        for hit in result.hits:
            if hit.faq_id == exclude:
                continue
            faq = self.kb.get(hit.faq_id)
            out.append(Candidate(faq.id, faq.question, self.answer_text(faq), round(hit.score, 4)))
            if len(out) == n:
                break
        return out

    # -------------------------------------------------------------- reply
    def reply(self, text: str) -> Reply:
        text = _clean(text or "")
        if not text:
            return self._smalltalk("ご質問を入力してください。制度・手続・締切・相談窓口などについてお答えします。")
        if len(text) > MAX_QUERY_CHARS:
            return Reply(
                kind="refused", answered=False, faq_id=None, band="fallback", confidence=0.0,
                answer=f"ご質問が長すぎます。{MAX_QUERY_CHARS}文字以内で、知りたいことを短く入力してください。",
            )
        compact = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
        if _GREETING.match(compact):
            return self._smalltalk("こんにちは。地域の制度や手続、締切、相談窓口についてお答えします。知りたいことを入力してください。")
        if _THANKS.match(compact):
            return self._smalltalk("どういたしまして。ほかにも知りたいことがあれば入力してください。")
        if _HELP.match(compact):
            return self._smalltalk(self.help_text())

        result = self.engine.search(text, k=10)
        if result.band == "answer" and result.hits:
            faq = self.kb.get(result.hits[0].faq_id)
            return self.answer_reply(faq, result, result.confidence, "answer")
        if result.band == "candidates" and result.hits:
            candidates = self._candidates(result, n=5)
            return Reply(
                kind="candidates",
                answered=False,
                faq_id=None,
                answer="もしかして、次のご質問ですか。当てはまるものを選んでください。\n"
                + "\n".join(f"・{c.question}" for c in candidates),
                band="candidates",
                confidence=result.confidence,
                candidates=candidates,
            )
        return Reply(
            kind="fallback",
            answered=False,
            faq_id=None,
            answer=self.fallback_text(),
            band="fallback",
            confidence=result.confidence,
            contacts=[self.kb.contacts[c].model_dump(exclude_none=True) for c in FALLBACK_CONTACTS if c in self.kb.contacts],
        )

    def help_text(self) -> str:
        fields = "、".join(node.title for node in self.kb.tree)
        return (
            "このチャットボットは、国や自治体の制度・手続・締切・相談窓口についてのよくある質問にお答えします。"
            f"分野（{fields}）から選ぶか、知りたいことを文章や単語で入力してください。"
        )

    def _smalltalk(self, message: str) -> Reply:
        return Reply(kind="smalltalk", answered=False, faq_id=None, answer=message, band="fallback", confidence=0.0, message=message)
