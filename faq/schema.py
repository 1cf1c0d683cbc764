"""The shape of the knowledge base: FAQ entries, contacts, the scenario tree.

Strict at the boundary: every model forbids unknown fields, so a typo in a
YAML key is reported instead of silently ignored. Messages raised here are
for staff, in Japanese; a model-level check names its field first
(`"opens: …"`), and the loader reports it against that field's line.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,79}$"
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
TIMEZONE = "Asia/Tokyo"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _non_blank(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("空にはできません")
    return value


class Source(Strict):
    """Where an answer comes from: a seed document and a section of it."""

    document: str = Field(min_length=1, description="file name of the source document")
    section: str = Field(min_length=1, description="heading or titled part of the document")
    line: int | None = Field(default=None, ge=1, description="line of the main fact")


class Deadline(Strict):
    """A date that matters to a resident.

    `deadline`: the end of an application window (受付中 — あとN日); `expiry`: the date a
    measure stops applying (適用期限: 「…まで有効」); `event`: the day something is held
    (開催日); `start`: the day something begins; `decision`: the day something was decided."""

    label: str = Field(min_length=1)
    date: dt.date
    time: str | None = Field(default=None, pattern=TIME_PATTERN)
    end_time: str | None = Field(default=None, pattern=TIME_PATTERN)
    timezone: Literal["Asia/Tokyo"] = TIMEZONE
    kind: Literal["deadline", "expiry", "event", "start", "decision"] = "deadline"
    opens: dt.date | None = None

    @model_validator(mode="after")
    def _order(self) -> "Deadline":
        if self.opens and self.opens > self.date:
            raise ValueError("opens: 受付開始日（opens）が date より後になっています")
        if self.end_time and not self.time:
            raise ValueError("end_time: 終了時刻だけでは書けません。time（開始時刻）も書いてください")
        if self.end_time and self.time and self.end_time < self.time:
            raise ValueError("end_time: 終了時刻が開始時刻（time）より前になっています")
        return self


class FAQ(Strict):
    id: str = Field(pattern=ID_PATTERN)
    # The ID as a ministry's Govbot CSV wrote it (1, 10, FAQ-01 …): re-imports update by it,
    # and the CSV export writes it back.
    govbot_id: str | None = Field(default=None, min_length=1, max_length=200)
    question: str = Field(min_length=1, max_length=300)
    alt_questions: list[str] = Field(default_factory=list)
    answer: str = Field(min_length=1, max_length=4000)
    # The same answer in やさしい日本語, written by staff: shown when a resident asks for it.
    easy_answer: str | None = Field(default=None, min_length=1, max_length=2000)
    category: list[str] = Field(min_length=2, max_length=4)
    program: str | None = None
    tags: list[str] = Field(default_factory=list)
    deadlines: list[Deadline] = Field(default_factory=list)
    contacts: list[str] = Field(default_factory=list)
    source: Source
    updated: dt.date
    # Scheduled content (issue 15): served from `publish_from` and through `valid_until`
    # (both inclusive, Asia/Tokyo). The index holds the FAQ either way; search and the
    # pages leave it out on the days it is not in force (faq/schedule.py).
    publish_from: dt.date | None = None
    valid_until: dt.date | None = None

    _non_blank_question = field_validator("question")(_non_blank)
    _non_blank_answer = field_validator("answer")(_non_blank)

    @field_validator("alt_questions", "tags", "category")
    @classmethod
    def _items_non_blank(cls, items: list[str]) -> list[str]:
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise ValueError("空の項目があります。どの項目にも文字を書いてください")
        return [item.strip() for item in items]

    @model_validator(mode="after")
    def _schedule_order(self) -> "FAQ":
        if self.publish_from and self.valid_until and self.publish_from > self.valid_until:
            raise ValueError(
                f"valid_until: 掲載終了日（{self.valid_until}）が掲載開始日 publish_from（{self.publish_from}）より前になっています"
            )
        return self


class Contact(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    kind: Literal["kikumimi", "office", "hotline", "email", "web"] = "office"
    organization: str | None = None
    prefecture: str | None = None
    address: str | None = None
    phone: str | None = None
    extension: str | None = None
    email: str | None = None
    url: str | None = None
    hours: str | None = None
    note: str | None = None
    source: Source

    @field_validator("phone", "extension", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        # YAML reads 30754 as an int; a phone or extension is text as written.
        return str(value) if isinstance(value, int) else value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("メールアドレスの形になっていません（例: name@example.go.jp）")
        return value


class Reading(Strict):
    """A staff correction for ふりがな: how `surface` is read (in hiragana)."""

    surface: str = Field(min_length=1, max_length=40)
    reading: str = Field(min_length=1, max_length=80, pattern=r"^[ぁ-ゖー]+$")


class ScenarioNode(Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1)
    description: str | None = None
    children: list["ScenarioNode"] = Field(default_factory=list)


class SynonymGroup(Strict):
    """Words people type (`variants`) and the term the documents use (`canonical`)."""

    canonical: str = Field(min_length=1)
    variants: list[str] = Field(min_length=1)


class SourceSection(Strict):
    title: str = Field(min_length=1)
    line: int = Field(ge=1)


class SourceDocument(Strict):
    title: str = Field(min_length=1)
    # Empty for markdown documents: their headings are the sections.
    sections: list[SourceSection] = Field(default_factory=list)


class SkippedSection(Strict):
    document: str
    section: str
    reason: str = Field(min_length=1)


class SourcesFile(Strict):
    documents: dict[str, SourceDocument] = Field(default_factory=dict)
    skipped: list[SkippedSection] = Field(default_factory=list)
