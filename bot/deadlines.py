"""Deadline status against today's date in Asia/Tokyo (the clock is injectable)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from faq.schedule import TOKYO, Clock, tokyo_now  # noqa: F401 - one clock for deadlines and scheduled FAQs
from faq.schema import Deadline

WEEKDAYS = "月火水木金土日"


def wareki_year(year: int) -> str:
    if year >= 2019:
        return "令和元年" if year == 2019 else f"令和{year - 2018}年"
    if year >= 1989:
        return "平成元年" if year == 1989 else f"平成{year - 1988}年"
    return f"{year}年"


def format_date(day: dt.date, wareki: bool = True) -> str:
    """2026年(令和8年)2月20日(金)."""
    era = f"({wareki_year(day.year)})" if wareki and day.year >= 1989 else ""
    return f"{day.year}年{era}{day.month}月{day.day}日({WEEKDAYS[day.weekday()]})"


@dataclass(frozen=True)
class DeadlineStatus:
    label: str
    kind: str
    date: dt.date
    status: str  # 受付中 | 締切済み | 開始前 | 有効 | 期限切れ | 開催予定 | 終了 | 実施済み | 予定
    days_left: int | None
    text: str


def deadline_status(deadline: Deadline, today: dt.date) -> DeadlineStatus:
    when = format_date(deadline.date)
    if deadline.time:
        when += f" {deadline.time}" + (f"～{deadline.end_time}" if deadline.end_time else "")
    days = (deadline.date - today).days
    if deadline.kind == "deadline":
        if deadline.opens and today < deadline.opens:
            status, text = "開始前", f"{deadline.label}: 開始前 (受付開始 {format_date(deadline.opens)}、締切 {when})"
        elif days >= 0:
            left = "本日締切" if days == 0 else f"あと{days}日"
            status, text = "受付中", f"{deadline.label}: 受付中 — {left} (締切 {when})"
        else:
            status, text = "締切済み", f"{deadline.label}: 締切済み (締切は {when} でした)"
    elif deadline.kind == "expiry":  # a measure applies until this day: no countdown, nothing to apply for
        if days >= 0:
            status, text = "有効", f"{deadline.label}: {when}まで有効"
        else:
            status, text = "期限切れ", f"{deadline.label}: {when}で期限が過ぎました"
    elif deadline.kind == "event":
        if days >= 0:
            left = "本日" if days == 0 else f"あと{days}日"
            status, text = "開催予定", f"{deadline.label}: 開催日 {when} — {left}"
        else:
            status, text = "終了", f"{deadline.label}: 開催日 {when}（終了しました）"
    elif deadline.kind == "start":
        status = "予定" if days > 0 else "実施済み"
        text = f"{deadline.label}: {when}から" + ("(予定)" if days > 0 else "")
    else:  # decision: a fact with a date
        status = "予定" if days > 0 else "実施済み"
        text = f"{deadline.label}: {when}" + ("(予定)" if days > 0 else "")
    return DeadlineStatus(deadline.label, deadline.kind, deadline.date, status, days if days >= 0 else None, text)
