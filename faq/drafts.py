"""FAQ drafts: what staff type in the browser form, checked as `govfaq faq check` would, and
kept until an approver publishes or discards them (issue 15, parts 2 and 4).

A draft is one whole FAQ entry (the mapping as it will be written to YAML), never a patch:
the approver reviews exactly the text that will be published, and a draft made from an
old commit (a revert) or from the insights page (a paraphrase, a new FAQ) is the same kind
of thing, reviewed the same way. Drafts live in GOVFAQ_DATA_DIR/staff.sqlite3 next to
the accounts and the audit log; the YAML files stay the only published content.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .schema import FAQ

# The order fields are written in, as the shipped files write them.
FIELD_ORDER = ("id", "govbot_id", "question", "alt_questions", "answer", "easy_answer", "category", "program", "tags",
               "deadlines", "contacts", "source", "updated", "publish_from", "valid_until")
DEADLINE_KEYS = ("time", "end_time", "kind", "opens")
FORM = "フォーム"
KINDS = {"edit": "編集", "new": "新規", "revert": "変更の取り消し", "paraphrase": "言い換えの追加",
         "delete": "FAQ の削除（作成の取り消し）"}


# ---------------------------------------------------------------- form <-> entry
def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def deadlines_text(deadlines: list[dict]) -> str:
    """Deadlines as the form shows them: one per line, `日付 ラベル` then optional key=value."""
    out = []
    for d in deadlines:
        extra = " ".join(f"{k}={d[k]}" for k in DEADLINE_KEYS if d.get(k) not in (None, "deadline"))
        out.append(f"{d['date']} {d['label']}" + (f" {extra}" if extra else ""))
    return "\n".join(out)


def parse_deadlines(text: str) -> list[dict]:
    out = []
    for line in _lines(text):
        date, _, rest = line.partition(" ")
        extra = {}
        words = rest.split()
        while words and re.fullmatch(r"(time|end_time|kind|opens)=\S+", words[-1]):
            key, _, value = words.pop().partition("=")
            extra[key] = value
        entry = {"label": " ".join(words), "date": date}
        entry.update({k: extra[k] for k in DEADLINE_KEYS if k in extra})
        out.append(entry)
    return out


def _tags(text: str) -> list[str]:
    """Tags as typed: separated by commas (、 or ,) or new lines, blanks and repeats dropped."""
    out: list[str] = []
    for tag in re.split(r"[,、，\n]", text or ""):
        if tag.strip() and tag.strip() not in out:
            out.append(tag.strip())
    return out


def entry_from_form(form: dict[str, str], base: dict[str, Any] | None) -> dict[str, Any]:
    """The entry the form describes. Fields the form does not show (govbot_id, schedule dates)
    are kept from `base`, the entry being edited; so are easy_answer, program and tags when a
    caller's form leaves them out (a field sent empty removes them)."""
    entry = dict(base or {})
    entry["id"] = (form.get("id") or entry.get("id") or "").strip()
    entry["question"] = form.get("question", "").strip()
    entry["alt_questions"] = _lines(form.get("alt_questions", ""))
    entry["answer"] = form.get("answer", "").replace("\r\n", "\n").strip()
    if "easy_answer" in form:
        entry["easy_answer"] = form["easy_answer"].replace("\r\n", "\n").strip()
    if "program" in form:
        entry["program"] = form["program"].strip()
    if "tags" in form:
        entry["tags"] = _tags(form["tags"])
    entry["category"] = [part.strip() for part in form.get("category", "").split(" > ") if part.strip()]
    entry["deadlines"] = parse_deadlines(form.get("deadlines", ""))
    entry["contacts"] = [c for c in form.get("contacts_list", []) if c]
    source = {"document": form.get("source_document", "").strip(), "section": form.get("source_section", "").strip()}
    line = form.get("source_line", "").strip()
    if line:
        source["line"] = int(line) if line.isdigit() else line
    entry["source"] = source
    entry["updated"] = form.get("updated", "").strip()
    for empty in ("alt_questions", "deadlines", "contacts", "easy_answer", "program", "tags"):
        if empty in entry and not entry[empty]:
            entry.pop(empty)
    return ordered(entry)


def ordered(entry: dict[str, Any]) -> dict[str, Any]:
    known = {k: entry[k] for k in FIELD_ORDER if k in entry}
    return known | {k: v for k, v in entry.items() if k not in known}


def raw_entry(faq: FAQ) -> dict[str, Any]:
    """An FAQ as the mapping its YAML holds (dates as text, defaults left out)."""
    data = faq.model_dump(mode="json", exclude_defaults=True)
    data["source"] = faq.source.model_dump(mode="json", exclude_none=True)
    if faq.deadlines:
        data["deadlines"] = [d.model_dump(mode="json", exclude_defaults=True) | {"label": d.label, "date": d.date.isoformat()}
                             for d in faq.deadlines]
    return ordered(data)


# ---------------------------------------------------------------- YAML text of one entry
class _Dumper(yaml.SafeDumper):
    """Writes entries the way the shipped files are written: list items indented under their
    key, short lists of words in brackets, long text as a `|` block, dates unquoted."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


# Dates stay plain (2026-02-02): the loader reads them as text either way. Times stay quoted:
# other YAML readers take 15:00 for a number.
_Dumper.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
}


def _str(dumper: yaml.SafeDumper, value: str):
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value.rstrip("\n") + "\n", style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


def _list(dumper: yaml.SafeDumper, items: list):
    short = all(isinstance(i, str) and re.fullmatch(r"[^\s,:\[\]{}#&*!|>'\"%@`?-][^,:\[\]{}#]*", i) for i in items)
    flow = bool(items) and short and sum(len(i) + 2 for i in items) <= 60
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)


def entry_yaml(entry: dict[str, Any]) -> str:
    """The entry as one item of a faqs/*.yaml list ("- id: …"), ending with a newline."""
    text = yaml.dump([entry], Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000, indent=2)
    # The one top-level list is written flow-free and unindented ("- id: …"), as the files are.
    return text


def as_written(entry: dict[str, Any]) -> dict[str, Any]:
    """A mapping read from a file as the form would write it (fields in order, text stripped), so a
    diff shows what changed and not how it was typed; as it is when it is not a valid FAQ."""
    from pydantic import ValidationError

    try:
        return raw_entry(FAQ.model_validate(entry))
    except ValidationError:
        return ordered(entry)


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None, name: str,
         labels: tuple[str, str] = ("公開中", "下書き")) -> str:
    """The unified diff of two entries as YAML (None: the entry does not exist on that side)."""
    old = entry_yaml(as_written(before)).splitlines(keepends=True) if before else []
    new = entry_yaml(as_written(after)).splitlines(keepends=True) if after else []
    return "".join(difflib.unified_diff(old, new, f"{name}（{labels[0]}）", f"{name}（{labels[1]}）"))


# ---------------------------------------------------------------- the checker
def check_entry(entry: dict[str, Any], kb, new: bool) -> list[str]:
    """Problems of one entry, as `govfaq faq check` reports them (the loader's pydantic models
    and cross-checks, Japanese messages), each `field: message`. Empty when it can be saved."""
    from .loader import _source_problems, _validate_items
    from .yamlio import parse_yaml

    problems = []
    doc, syntax = parse_yaml(entry_yaml(entry), FORM)
    if doc is None:
        return [f"{p.field}: {p.message}" for p in syntax]
    valid = _validate_items(FAQ, doc, FORM, problems)
    out = [f"{p.field}: {p.message}" for p in problems]
    if not valid:
        return out
    faq = valid[0][0]
    if new and kb.get(faq.id) is not None:
        out.append(f"id: id {faq.id!r} はすでにあります（別の id にしてください）")
    for i, contact in enumerate(faq.contacts):
        if contact not in kb.contacts:
            out.append(f"contacts[{i}]: 問合せ先 {contact!r} が contacts.yaml にありません")
    if kb.tree and tuple(faq.category) not in kb.category_titles():
        out.append(f"category: シナリオの木（scenarios.yaml）にない分類です: {' > '.join(faq.category)}")
    out += [f"{p.field}: {p.message}" for p in _source_problems(faq.source, kb.sources, FORM, lambda *w: 1)]
    return out


# ---------------------------------------------------------------- storage
DRAFT_SCHEMA = """
CREATE TABLE IF NOT EXISTS faq_drafts (
    id INTEGER PRIMARY KEY,
    faq_id TEXT NOT NULL,
    kind TEXT NOT NULL,             -- edit | new | revert | paraphrase | delete
    entry TEXT NOT NULL,            -- the whole entry, JSON (delete: the entry that will go)
    author TEXT NOT NULL,
    created TEXT NOT NULL,
    note TEXT,
    state TEXT NOT NULL DEFAULT 'open',   -- open | published | discarded
    decided_by TEXT,
    decided_at TEXT,
    commit_id TEXT
);
"""


@dataclass(frozen=True)
class Draft:
    id: int
    faq_id: str
    kind: str
    entry: dict[str, Any]
    author: str
    created: str
    note: str | None
    state: str
    decided_by: str | None
    commit_id: str | None


class Drafts:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _run(self, fn):
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            conn.row_factory = sqlite3.Row
            try:
                conn.executescript(DRAFT_SCHEMA)
                return fn(conn)
            finally:
                conn.close()

    def save(self, entry: dict[str, Any], kind: str, author: str, note: str | None = None) -> int:
        return self._run(lambda c: c.execute(
            "INSERT INTO faq_drafts (faq_id, kind, entry, author, created, note) VALUES (?, ?, ?, ?, ?, ?)",
            (entry["id"], kind, json.dumps(entry, ensure_ascii=False), author, _now(), note)).lastrowid)

    def get(self, draft_id: int) -> Draft | None:
        row = self._run(lambda c: c.execute("SELECT * FROM faq_drafts WHERE id = ?", (draft_id,)).fetchone())
        return _draft(row) if row else None

    def open(self) -> list[Draft]:
        rows = self._run(lambda c: c.execute("SELECT * FROM faq_drafts WHERE state = 'open' ORDER BY id DESC").fetchall())
        return [_draft(r) for r in rows]

    def decide(self, draft_id: int, state: str, who: str, commit_id: str | None = None) -> bool:
        """Close an open draft; False if it was already closed (two approvers at once: one wins)."""
        return bool(self._run(lambda c: c.execute(
            "UPDATE faq_drafts SET state = ?, decided_by = ?, decided_at = ?, commit_id = ? WHERE id = ? AND state = 'open'",
            (state, who, _now(), commit_id, draft_id)).rowcount))


def _draft(row) -> Draft:
    return Draft(row["id"], row["faq_id"], row["kind"], json.loads(row["entry"]), row["author"], row["created"],
                 row["note"], row["state"], row["decided_by"], row["commit_id"])


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
