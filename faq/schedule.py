"""Scheduled content: an FAQ with `publish_from` / `valid_until` appears and retires on its own.

Both dates are inclusive and read in Asia/Tokyo: `valid_until: 2027-03-31`
is still served all of 31 March in Japan. Whether an FAQ is in force is
decided when it is asked for, against an injectable clock, so the day
changing needs no rebuild: the index holds every FAQ and search leaves out
the ones not in force (index/engine.py), as do the scenario views and pages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from .schema import FAQ

TOKYO = ZoneInfo("Asia/Tokyo")
Clock = Callable[[], dt.datetime]
State = Literal["公開前", "掲載中", "掲載終了"]


def tokyo_now() -> dt.datetime:
    return dt.datetime.now(TOKYO)


def tokyo_today() -> dt.date:
    return tokyo_now().date()


def state(faq: FAQ, today: dt.date) -> State:
    if faq.publish_from and today < faq.publish_from:
        return "公開前"
    if faq.valid_until and today > faq.valid_until:
        return "掲載終了"
    return "掲載中"


def in_force(faq: FAQ, today: dt.date) -> bool:
    return state(faq, today) == "掲載中"


@dataclass(frozen=True)
class Scheduled:
    """One FAQ with a publishing period, as `govfaq faq scheduled` lists it."""

    faq_id: str
    question: str
    publish_from: dt.date | None
    valid_until: dt.date | None
    state: State
    where: str  # path:line of the entry

    def __str__(self) -> str:
        period = f"{self.publish_from or ''}〜{self.valid_until or ''}"
        return f"{self.where}: {self.state} {period} {self.faq_id}: {self.question}"


def scheduled(kb, today: dt.date) -> list[Scheduled]:
    """Every FAQ with a publishing period: what appears next first, then what is served, then what retired."""
    order = {"公開前": 0, "掲載中": 1, "掲載終了": 2}
    rows = []
    for faq in kb.faqs:
        if faq.publish_from is None and faq.valid_until is None:
            continue
        path, line = kb.faq_locations.get(faq.id, ("?", 0))
        rows.append(Scheduled(faq.id, faq.question, faq.publish_from, faq.valid_until, state(faq, today), f"{path}:{line}"))
    return sorted(rows, key=lambda r: (order[r.state], _next_change(r), r.faq_id))


def _next_change(row: Scheduled) -> dt.date:
    return (row.publish_from if row.state == "公開前" else row.valid_until) or dt.date.max
