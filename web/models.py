"""Wire models of the JSON API: role-split, strict, with limits on the fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bot.dialogue import MAX_QUERY_CHARS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskRequest(Strict):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What the resident typed")
    session_id: str | None = Field(None, max_length=64, description="From the previous reply, for follow-ups")


class CandidatePublic(BaseModel):
    faq_id: str
    question: str
    answer: str
    score: float


class AskResponse(BaseModel):
    kind: str = Field(description="answer | contacts | clarify | candidates | fallback | smalltalk | refused")
    answered: bool
    faq_id: str | None
    answer: str = Field(description="The full text a resident sees")
    band: str
    confidence: float
    message: str = ""
    candidates: list[CandidatePublic] = []
    contacts: list[dict] = []
    deadlines: list[dict] = []
    sources: list[dict] = []
    related: list[dict] = []
    choices: list[dict] = []
    highlight: str | None = Field(None, description="The line of the answer that holds the fact asked for "
                                  "(a phone number, a date, an amount, a count), shown first on the card")
    session_id: str | None = None
    query_id: str | None = Field(None, description="Id of the query-log row, to send back with feedback")


class FeedbackRequest(Strict):
    faq_id: str = Field(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9-]*$")
    helpful: bool = Field(description="役に立った (true) / 役に立たなかった (false)")
    comment: str | None = Field(None, max_length=1000)
    # A time-ordered UUID (or, from a log written before those, a number): anything else is refused.
    query_id: str | None = Field(None, min_length=1, max_length=36, pattern=r"^[0-9a-f-]+$")


class FeedbackResponse(BaseModel):
    stored: bool
    message: str


class ScenarioChild(BaseModel):
    id: str
    title: str
    description: str | None = None
    faqs: int


class ScenarioPublic(BaseModel):
    node_id: str
    title: str
    breadcrumbs: list[dict]
    parent_id: str | None
    children: list[ScenarioChild]
    faqs: list[dict]


class Health(BaseModel):
    status: str


class ErrorResponse(BaseModel):
    detail: str


class SearchHitPublic(BaseModel):
    faq_id: str
    question: str
    answer: str
    category: list[str]
    program: str | None
    score: float
    matched_terms: list[str] = Field(description="Query words found in this FAQ, for highlighting")
    document_title: str
    section: str
    source_label: str = Field("", description="「document title › section」, as the answer card shows it")
    source_url: str = Field("", description="/sources/{document}#L{line}: the cited passage in the document")
    updated: str
    deadlines: list[str] = Field(default_factory=list, description="Each date with its status (受付中 — あとN日, …まで有効 …)")
    contacts: list[str] = Field(default_factory=list, description="Each contact on one line (name, phone, URL, hours)")
    card_text: str = Field("", description="The answer card as plain text: answer, 日程, 問合せ先, 出典 (what the counter copies)")


class SearchResponse(BaseModel):
    query: str
    confidence: float
    band: str
    hits: list[SearchHitPublic]


class ContactsResponse(BaseModel):
    place: str | None
    prefecture: str | None
    offices: list[dict]
