"""The single decision path: what the bot says to a query.

The web service, `govfaq ask` and `govfaq eval` all call `Bot.reply`, so the
figures `govfaq eval` reports are the figures residents get.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import asdict, dataclass, field, replace

from faq.loader import KnowledgeBase
from faq.schema import FAQ, Contact
from index.engine import SearchEngine, SearchResult

from .deadlines import Clock, DeadlineStatus, deadline_status, format_date, tokyo_now
from .places import PlaceIndex
from .question_type import asked_fact, fact_line, holds_fact, question_sentence
from .records import RecordStore
from .session import Session, SessionStore

MAX_QUERY_CHARS = 500
FALLBACK_CONTACTS = ("soudan-110ban", "soudan-internet-form")

_GREETING = re.compile(r"^(こんにちは|こんばんは|おはよう(ございます)?|はじめまして|hello|hi|hey|やあ|どうも)[!！。.~〜ー]*$", re.I)
_THANKS = re.compile(r"^(ありがとう(ございます|ございました)?|thanks?( you)?|thank you|助かりました|どうも(ありがとう)?)[!！。.~〜]*$", re.I)
_DISASTER = re.compile(
    r"被災|罹災|り災|りさい|災害|地震|大雨|豪雨|台風|火事|火災|大火|洪水|浸水|土砂|津波|噴火|"
    r"家が(壊|こわ|流|つぶ|潰)|家屋|避難|半壊|全壊|倒壊|がれき|earthquake|flood|typhoon|disaster|fire|evacuat|"
    # the same in kana, as a resident who cannot write the kanji types it
    r"ひさい|さいがい|じしん|おおあめ|ごうう|たいふう|こうずい|しんすい|どしゃ|つなみ|ひなん|はんかい|ぜんかい|"
    r"いえが\s*(こわ|なが|つぶ)",
    re.I,
)
DISASTER_FIELD = "災害・生活再建の支援"
_FOLLOW_UP = {
    "deadline": re.compile(r"締切|締め切|しめきり|期限|いつまで|いつから|日程|日時|いつ"),
    "contact": re.compile(r"電話|連絡先|問い?合わ?せ|窓口|番号|メール|担当"),
    "target": re.compile(r"対象|条件|要件|誰が|だれが|資格|どんな人"),
    "amount": re.compile(r"いくら|金額|上限|補助率|予算|費用|何円|万円|額"),
}
_CONTACT_WORDS = re.compile(r"きくみみ|キクミミ|kikumimi|行政相談|行政評価|苦情|consultation|counsell?ing", re.I)
_FILLER_WORDS = (
    "の で に と や にある 近く 近い 最寄り 相談窓口 窓口 相談先 相談 連絡先 連絡 電話番号 電話 番号 住所 場所 どこ "
    "したい とき 時 する できる 聞きたい 行きたい 問い合わせ先 問合せ先 問い合わせ 問合せ 教えてください 教えて 知りたい "
    "は を が って ですか ますか ください 住んでいます 住んでます 在住 です 市 県 府 都 "
    "the of phone number address where is what's whats in please "
    "i live living am from near nearest which what who should can could do does for call to my an a "
    "office consultation counseling counselling center centre administrative contact details"
).split()
# Longest first, so that とき is not taken as と + き.
_CONTACT_FILLER = re.compile(
    "|".join(re.escape(w) for w in sorted(_FILLER_WORDS, key=len, reverse=True)) + r"|[?？!！。、.,\s]", re.I
)
# A deadline, not any date: 締切/期限/までに with a date in the same answer.
_DEADLINE_WORDS = re.compile(r"締切|締め切|期限|までに|まで受け付|受付期間|募集期間")
_AMOUNT_WORDS = re.compile(r"円|補助率|上限|措置率|予算")
_TARGET_WORDS = re.compile(r"対象|要件|条件|資格")
_FITS = {
    "deadline": lambda f: bool(f.deadlines) or (bool(_DEADLINE_WORDS.search(f.answer)) and holds_fact(f.answer, "date")),
    "contact": lambda f: bool(f.contacts),
    "target": lambda f: bool(_TARGET_WORDS.search(f.question + f.answer)),
    "amount": lambda f: bool(_AMOUNT_WORDS.search(f.answer)),
}
_KIND_LABEL = {"deadline": "締切・日程", "contact": "問合せ先", "target": "対象・条件", "amount": "金額"}
# A follow-up prefers the FAQ whose own question is about the asked point (対象は？ → the eligibility FAQ).
_ASKS_ABOUT = {
    "deadline": re.compile(r"締切|締め切|期限|いつまで|日程|スケジュール"),
    "contact": re.compile(r"問い?合わ?せ|連絡先|窓口|電話"),
    "target": re.compile(r"対象|要件|条件|資格|誰|だれ"),
    "amount": re.compile(r"いくら|金額|上限|補助率|予算|措置"),
}
NONE_OF_THESE = "どれにも当てはまらない"
NONE_CHOICE = {"label": NONE_OF_THESE, "query": NONE_OF_THESE}
CLARIFY_GAP = 0.02  # top hits of different programmes closer than this → ask which one
SIBLING_GAP = 0.03  # a sibling this close to the top hit that holds the asked fact is preferred
_HELP = re.compile(r"^(何ができるの|何ができますか|なにができるの|使い方(を教えて)?|ヘルプ|help|how to use|what can you do)[?？!！。]*$", re.I)


@dataclass(frozen=True)
class Candidate:
    faq_id: str
    question: str
    answer: str
    score: float


@dataclass(frozen=True)
class Reply:
    kind: str  # answer | contacts | clarify | candidates | fallback | smalltalk | refused
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
    choices: list[dict] = field(default_factory=list)  # clarifying buttons: {"label", "query"}
    highlight: str | None = None  # the line of the answer holding the fact asked for (phone, date, amount, count)
    ranking: list[dict] = field(default_factory=list)  # the search behind the decision: top hits {"faq_id", "score"}
    session_id: str | None = None
    query_id: str | None = None  # the query-log row (made before it is written), for feedback

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
    def __init__(
        self,
        engine: SearchEngine,
        clock: Clock = tokyo_now,
        records: RecordStore | None = None,
        sessions: SessionStore | None = None,
    ):
        self.engine = engine
        self.kb = engine.kb
        self.clock = clock
        self.records = records
        self.sessions = sessions if sessions is not None else SessionStore()  # an empty store is falsy (len 0)
        self.places = PlaceIndex(self.kb)
        self.disaster_ids = {f.id for f in self.kb.faqs if f.category[0] == DISASTER_FIELD}

    # ------------------------------------------------------------- pieces
    def today(self) -> dt.date:
        return self.clock().date()

    def served(self) -> KnowledgeBase:
        """The FAQs in force today (publish_from / valid_until): what residents may be shown."""
        return self.kb.in_force(self.today())

    def deadline_statuses(self, faq: FAQ) -> list[DeadlineStatus]:
        today = self.today()
        return [deadline_status(d, today) for d in faq.deadlines]

    def source_of(self, faq: FAQ) -> dict:
        return self.kb_source(faq.source.document, faq.source.section, faq.source.line) | {
            "updated": faq.updated.isoformat(), "updated_label": format_date(faq.updated, wareki=False)}

    def kb_source(self, document: str, section: str, line: int | None) -> dict:
        """A citation with its label ("document title › section", the section only when it is not the
        title itself) and the page that shows the passage (/sources/{document}#L{line})."""
        title = self.kb.document_title(document)
        same = unicodedata.normalize("NFKC", section).strip() == unicodedata.normalize("NFKC", title).strip()
        return {
            "document": document,
            "title": title,
            "section": section,
            "line": line,
            "label": title if same or not section else f"{title} › {section}",
            "url": f"/sources/{document}" + (f"#L{line}" if line else ""),
            "updated": None,
        }

    def card_lines(self, faq: FAQ) -> list[str]:
        """The answer card's text without its source line: answer, dates, contacts."""
        lines = [faq.answer.strip()]
        statuses = self.deadline_statuses(faq)
        if statuses:
            lines += ["", "【日程】", *("・" + s.text for s in statuses)]
        contacts = [self.kb.contacts[c] for c in faq.contacts if c in self.kb.contacts]
        if contacts:
            lines += ["", "【問合せ先】", *(contact_line(c) for c in contacts)]
        return lines

    def answer_text(self, faq: FAQ) -> str:
        """The answer card as plain text: answer, dates, contacts, source."""
        src = self.source_of(faq)
        source = f"出典: {src['label']} (更新 {src['updated_label']})"
        return "\n".join([*self.card_lines(faq), "", source])

    def highlight(self, text: str, faq: FAQ) -> str | None:
        """The card's line holding the fact the question asks for, when it is one line of several."""
        return fact_line("\n".join(self.card_lines(faq)), asked_fact(text))

    def consultation_contacts(self, session: Session | None = None) -> list[Contact]:
        """行政苦情110番, the internet form, and the person's きくみみ office when a place was named."""
        contacts = [self.kb.contacts[c] for c in FALLBACK_CONTACTS if c in self.kb.contacts]
        if session and session.office_id and session.office_id in self.kb.contacts:
            contacts.append(self.kb.contacts[session.office_id])
        return contacts

    def fallback_text(self, reason: str = "", session: Session | None = None) -> str:
        lines = [
            reason or "申し訳ありません。お尋ねの内容にお答えできるFAQが見つかりませんでした。",
            "行政への相談は、次の窓口で受け付けています。",
        ]
        lines += [contact_line(c) for c in self.consultation_contacts(session)]
        return "\n".join(lines)

    def related(self, faq: FAQ, result: SearchResult | None, n: int = 3) -> list[dict]:
        """Other FAQs on the same programme first, then what search ranked next."""
        ids = []
        if faq.program:
            ids += [f.id for f in self.served().faqs if f.program == faq.program and f.id != faq.id][:n]
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
    def reply(self, text: str, session: Session | None = None) -> Reply:
        """The bot's reply; with a session, follow-ups and named places carry over."""
        session = session or self.sessions.get(None)
        text = _clean(text or "")
        reply = self._decide(text, session)
        reply = _with(reply, session_id=session.id)
        if reply.kind == "answer" and reply.faq_id:
            reply = _with(reply, highlight=self.highlight(text, self.kb.get(reply.faq_id)))
        self.sessions.record(session, text, reply.faq_id or reply.kind)
        if self.records is not None and text and reply.kind != "refused":
            query_id = self.records.log_query(
                text, reply.kind, reply.faq_id, [c.faq_id for c in reply.candidates], reply.confidence
            )
            reply = _with(reply, query_id=query_id)
        return reply

    def _decide(self, text: str, session: Session) -> Reply:
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
        if compact == NONE_OF_THESE:
            session.program = session.faq_id = None
            return Reply(
                kind="fallback", answered=False, faq_id=None, band="fallback", confidence=0.0,
                answer=self.fallback_text("お役に立てず申し訳ありません。", session),
                contacts=[c.model_dump(exclude_none=True) for c in self.consultation_contacts(session)],
            )

        place = self.places.find(text)
        if place:
            session.prefecture, session.office_id = place.prefecture, place.office_id
        if place and self._is_contacts_lookup(text):
            return self._office_reply(place)

        disaster = bool(_DISASTER.search(text))
        follow_up = self._follow_up_kind(text) if session.program else None
        if follow_up:
            reply = self._follow_up(text, session, follow_up)
            if reply is not None:
                return reply
        # Not a follow-up: a new topic resets the context.
        session.program = session.faq_id = None

        focus = question_sentence(text)
        result = self.engine.search(
            text, k=10, prefer=self.disaster_ids if disaster else None, today=self.today(), focus=focus
        )
        result = self._prefer_asked(focus or text, result)
        clarify = self._clarify(text, result, gap=CLARIFY_GAP / 2) if result.band == "answer" else None
        if clarify is not None:
            reply = clarify
        elif result.band == "answer" and result.hits:
            faq = self.kb.get(result.hits[0].faq_id)
            session.program, session.faq_id = faq.program, faq.id
            reply = self.answer_reply(faq, result, result.confidence, "answer")
        elif result.band == "candidates" and result.hits:
            reply = self._clarify(text, result) or self._did_you_mean(result)
        else:
            reply = Reply(
                kind="fallback",
                answered=False,
                faq_id=None,
                answer=self.fallback_text(session=session),
                band="fallback",
                confidence=result.confidence,
                contacts=[c.model_dump(exclude_none=True) for c in self.consultation_contacts(session)],
            )
        if disaster:
            reply = self._with_consultation(reply, session)
        return _with(reply, ranking=ranking_of(result))

    # ------------------------------------------------------------ helpers
    def _is_contacts_lookup(self, text: str) -> bool:
        """「鹿児島の相談窓口」「きくみみ 沖縄」: a place plus contact words and nothing else."""
        if _CONTACT_WORDS.search(text):
            rest = _CONTACT_WORDS.sub("", text)
        else:
            rest = text
        place = self.places.find(rest)
        while place:
            rest = rest.replace(place.name, "")
            place = self.places.find(rest)
        return not _CONTACT_FILLER.sub("", rest).strip() and (bool(_CONTACT_WORDS.search(text)) or "窓口" in text or "相談" in text)

    def _office_reply(self, place) -> Reply:
        office = self.places.office(place)
        if office is None:
            return Reply(kind="fallback", answered=False, faq_id=None, band="fallback", confidence=0.0, answer=self.fallback_text())
        lines = [
            f"{place.prefecture}の行政相談の窓口は「{office.name}」です。",
            contact_line(office),
            "",
            "全国共通の次の窓口でも受け付けています。",
            *(contact_line(c) for c in self.consultation_contacts() if c.id != office.id),
        ]
        return Reply(
            kind="contacts",
            answered=True,
            faq_id=None,
            answer="\n".join(lines),
            band="answer",
            confidence=1.0,
            message=office.name,
            contacts=[office.model_dump(exclude_none=True)],
            sources=[self.kb_source(office.source.document, office.source.section, office.source.line)],
        )

    @staticmethod
    def _follow_up_kind(text: str) -> str | None:
        short = re.sub(r"[\s?？!！。、]", "", unicodedata.normalize("NFKC", text))
        if len(short) > 14:
            return None
        return next((kind for kind, pattern in _FOLLOW_UP.items() if pattern.search(short)), None)

    def _follow_up(self, text: str, session: Session, kind: str) -> Reply | None:
        same = [f for f in self.served().faqs if f.program == session.program]
        if not same:
            return None
        fitting = {f.id for f in same if _FITS[kind](f)}
        if not fitting:
            # Say so rather than answer with something else about the programme.
            contacts = list(dict.fromkeys(c for f in same for c in f.contacts if c in self.kb.contacts))
            lines = [f"「{session.program}」の{_KIND_LABEL[kind]}について、FAQには記載がありません。"]
            if contacts:
                lines += ["詳しくは次の窓口にお問い合わせください。", *(contact_line(self.kb.contacts[c]) for c in contacts[:3])]
            else:
                lines += [self.fallback_text("", session).split("\n", 1)[1]]
            return Reply(
                kind="fallback", answered=False, faq_id=None, answer="\n".join(lines), band="fallback", confidence=0.0,
                contacts=[self.kb.contacts[c].model_dump(exclude_none=True) for c in contacts[:3]],
            )
        about = {f.id for f in same if f.id in fitting and _ASKS_ABOUT[kind].search(f.question)}
        result = self.engine.search(f"{session.program} {text}", k=5, only=about or fitting, today=self.today())
        if not result.hits:
            return None
        faq = self.kb.get(result.hits[0].faq_id)
        session.faq_id = faq.id
        reply = self.answer_reply(faq, result, result.confidence, "answer")
        return _with(reply, message=f"{session.program}について: {faq.question}", ranking=ranking_of(result))

    def _clarify(self, text: str, result: SearchResult, gap: float = CLARIFY_GAP) -> Reply | None:
        """Top candidates from different programmes with close scores: ask which one.

        A question that names its programme is not ambiguous, however close the scores."""
        top = result.hits[:5]
        if len(top) < 2 or top[0].score - top[1].score >= gap:
            return None
        lead, runner = self.kb.get(top[0].faq_id), self.kb.get(top[1].faq_id)
        if not lead.program or same_programme(lead, runner) or _names(text, lead.program):
            return None
        shown: list[FAQ] = []
        for hit in top:
            faq = self.kb.get(hit.faq_id)
            if faq.program and top[0].score - hit.score < 2 * CLARIFY_GAP and not any(same_programme(faq, s) for s in shown):
                shown.append(faq)
        programs = [f.program for f in shown]
        if len(programs) < 2:
            return None
        choices = [{"label": p, "query": f"{p} {text}"} for p in programs[:4]] + [NONE_CHOICE]
        return Reply(
            kind="clarify",
            answered=False,
            faq_id=None,
            answer="どの制度についてですか？\n" + "\n".join(f"・{c['label']}" for c in choices),
            band="candidates",
            confidence=result.confidence,
            candidates=self._candidates(result, n=5),
            choices=choices,
        )

    def _prefer_asked(self, text: str, result: SearchResult) -> SearchResult:
        """Among siblings, the FAQ whose answer holds what is asked: when the top hit's card holds no
        fact of the asked type (a date, an amount, a place …) and a sibling of the same programme
        within SIBLING_GAP holds one, that sibling leads (an overview FAQ yields to the detail)."""
        kind = asked_fact(text)
        if kind is None or len(result.hits) < 2:
            return result
        top = self.kb.get(result.hits[0].faq_id)
        if holds_fact("\n".join(self.card_lines(top)), kind):
            return result
        for i, hit in enumerate(result.hits[1:4], start=1):
            if result.hits[0].score - hit.score > SIBLING_GAP:
                break
            faq = self.kb.get(hit.faq_id)
            if same_programme(top, faq) and holds_fact("\n".join(self.card_lines(faq)), kind):
                hits = [hit, *result.hits[:i], *result.hits[i + 1 :]]
                return replace(result, hits=[replace(h, rank=r + 1) for r, h in enumerate(hits)])
        return result

    def _did_you_mean(self, result: SearchResult) -> Reply:
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
            choices=[NONE_CHOICE],
        )

    def _with_consultation(self, reply: Reply, session: Session) -> Reply:
        """Disaster wording: always say how to reach a consultation window."""
        contacts = self.consultation_contacts(session)
        known = {c.get("id") for c in reply.contacts}
        extra = [c for c in contacts if c.id not in known]
        if reply.kind == "fallback" or not extra:
            return reply
        text = reply.answer + "\n\n【被災に関するご相談】\n" + "\n".join(contact_line(c) for c in extra)
        return _with(reply, answer=text, contacts=reply.contacts + [c.model_dump(exclude_none=True) for c in extra])

    def help_text(self) -> str:
        fields = "、".join(node.title for node in self.kb.tree)
        return (
            "このチャットボットは、国や自治体の制度・手続・締切・相談窓口についてのよくある質問にお答えします。"
            f"分野（{fields}）から選ぶか、知りたいことを文章や単語で入力してください。"
        )

    def _smalltalk(self, message: str) -> Reply:
        return Reply(kind="smalltalk", answered=False, faq_id=None, answer=message, band="fallback", confidence=0.0, message=message)


def ranking_of(result: SearchResult, n: int = 10) -> list[dict]:
    return [{"faq_id": h.faq_id, "score": round(h.score, 4)} for h in result.hits[:n]]


def _fold_name(name: str) -> str:
    return re.sub(r"[\s・･]", "", unicodedata.normalize("NFKC", name or "")).casefold()


def same_programme(a: FAQ, b: FAQ) -> bool:
    """Two FAQs about one programme: the same `program`, one programme name inside the other
    (「自治体DXアクセラレータ」 and 「自治体DXアクセラレータ500プロジェクト」), or, when one of them names
    no programme, the same source section. Two named programmes are not one because a document lists
    them in one section (the budget items of 地方創生2.0 are one section and many programmes)."""
    if a.program and b.program:
        x, y = _fold_name(a.program), _fold_name(b.program)
        return x == y or (min(len(x), len(y)) >= 4 and (x in y or y in x))
    return bool(a.source.section) and (a.source.document, a.source.section) == (b.source.document, b.source.section)


def _names(text: str, program: str) -> bool:
    """Does the question name the programme (or the part of its name before any bracket)?"""
    folded = unicodedata.normalize("NFKC", text)
    head = re.split(r"[(（「『]", unicodedata.normalize("NFKC", program))[0].strip()
    return bool(head) and head in folded


def _with(reply: Reply, **changes) -> Reply:
    return replace(reply, **changes)
