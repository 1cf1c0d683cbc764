"""What `govfaq faq check` tells staff about a field, in plain Japanese.

pydantic's messages ("String should have at least 1 character") are for
programmers. Each error type it raises on our models gets one sentence that
says what is wrong and how to write it instead; an error type not listed here
keeps pydantic's wording in brackets, so nothing is ever hidden.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from .schema import ID_PATTERN, TIME_PATTERN, Contact, Deadline, FAQ, ScenarioNode, Source, SourcesFile, SynonymGroup

DATE_EXAMPLE = "2026-02-20"
_FIELDS = sorted({name for model in (FAQ, Deadline, Source, Contact, ScenarioNode, SynonymGroup, SourcesFile) for name in model.model_fields})


def _quoted_choices(expected: str) -> str:
    """"'deadline', 'event' or 'start'" -> "deadline・event・start"."""
    return "・".join(re.findall(r"'([^']*)'", expected)) or expected


def unknown_field(name: str) -> str:
    close = difflib.get_close_matches(name, _FIELDS, n=1, cutoff=0.75)
    hint = f"（{close[0]} の書き間違いではありませんか）" if close else "（綴りを確認してください）"
    return f"「{name}」という項目はありません{hint}"


def field_message(error: dict[str, Any]) -> str:
    """One pydantic error (from `ValidationError.errors()`) as a sentence for staff."""
    kind, ctx, loc = error["type"], error.get("ctx") or {}, tuple(error["loc"])
    name = next((part for part in reversed(loc) if isinstance(part, str)), "")
    value = error.get("input")
    if kind == "missing":
        return "必須の項目がありません"
    if kind == "extra_forbidden":
        return unknown_field(name)
    if kind == "string_too_short":
        return "空にはできません"
    if kind == "too_short":
        return "空にはできません" if ctx.get("min_length", 1) <= 1 else f"少なくとも {ctx['min_length']} 個書いてください（今は {ctx.get('actual_length', 0)} 個）"
    if kind == "string_too_long":
        return f"{ctx['max_length']} 文字以内にしてください（今は {len(value) if isinstance(value, str) else '?'} 文字）"
    if kind == "too_long":
        return f"{ctx['max_length']} 個までにしてください（今は {ctx.get('actual_length', '?')} 個）"
    if kind.startswith("date_"):
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return f"{value.strip()} という日付はありません（例: {DATE_EXAMPLE}）"
        return f"日付の形が正しくありません（例: {DATE_EXAMPLE}）"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == ID_PATTERN:
            return "半角の英小文字・数字・「-」で2〜80文字にしてください（先頭は英小文字か数字。例: kyoryokutai-ninki）"
        if ctx.get("pattern") == TIME_PATTERN:
            return "時刻は 24 時間制の「時:分」にしてください（例: \"15:00\"）"
        return f"書き方が正しくありません（{ctx.get('pattern')} の形にしてください）"
    if kind == "literal_error":
        return f"{_quoted_choices(str(ctx.get('expected', '')))} のどれかにしてください"
    if kind == "string_type":
        return "文字で書いてください（数字や日付だけなら \" で囲んでください）"
    if kind == "list_type":
        return "並びにしてください（[a, b] か、1行ずつ「- 」で始めて書きます）"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "「キー: 値」の組で書いてください"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "整数で書いてください"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{ctx.get('ge', ctx.get('gt'))} 以上にしてください"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"])).removeprefix("Value error, ")
    return f"値が正しくありません（{error['msg']}）"
