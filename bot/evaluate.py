"""`govfaq eval`: score the bot on questions with the facts a right answer holds.

Format (shared/eval/README.md): one JSON object per line with `id`, `query`,
`expect` (a list of facts, each a list of accepted variants), `kind`.
Compared after NFKC with all whitespace removed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from pathlib import Path

from index.retrieval_bench import read_jsonl

from .dialogue import Bot, Reply


def _fold(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def holds_facts(answer: str, expect: list[list[str]]) -> bool:
    folded = _fold(answer)
    return all(any(_fold(variant) in folded for variant in fact) for fact in expect)


def read_items(path: Path) -> list[dict]:
    """Evaluation questions; a broken line is reported as `path:line: field: message`."""
    return read_jsonl(path, ("id", "query", "expect", "kind"))


def item_record(item: dict, reply: Reply) -> dict:
    """One line of `govfaq eval --json`: a stable contract other tools read."""
    candidates = [{"faq_id": c.faq_id, "answer": c.answer} for c in reply.candidates]
    return {
        "id": item["id"],
        "kind": item["kind"],
        "query": item["query"],
        "answered": reply.answered,
        "faq_id": reply.faq_id,
        "answer": reply.answer,
        "candidates": candidates,
        "band": reply.band,
        "confidence": round(reply.confidence, 4),
    }


def score(item: dict, record: dict) -> tuple[bool, bool]:
    """(correct, correct within the first three answers)."""
    if item["kind"] == "out_of_scope" or not item["expect"]:
        ok = not record["answered"]
        return ok, ok
    first = record["answer"] if record["answered"] else None
    correct = bool(first) and holds_facts(first, item["expect"])
    top3 = ([first] if first else []) + [c["answer"] for c in record["candidates"]]
    return correct, any(holds_facts(a, item["expect"]) for a in top3[:3])


def evaluate(bot: Bot, items: list[dict]) -> dict:
    records = []
    by_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for item in items:
        record = item_record(item, bot.reply(item["query"]))
        correct, top3 = score(item, record)
        record["correct"], record["correct_top3"] = correct, top3
        records.append(record)
        by_kind[item["kind"]].append((correct, top3))

    def rate(pairs, index):
        return round(sum(p[index] for p in pairs) / len(pairs), 4) if pairs else None

    in_scope = [p for kind, pairs in by_kind.items() if kind != "out_of_scope" for p in pairs]
    oos = by_kind.get("out_of_scope", [])
    oos_answered = [r["id"] for r in records if r["kind"] == "out_of_scope" and r["answered"]]
    summary = {
        "n": len(records),
        "accuracy": rate([p for pairs in by_kind.values() for p in pairs], 0),
        "in_scope_accuracy@1": rate(in_scope, 0),
        "in_scope_accuracy@3": rate(in_scope, 1),
        "out_of_scope_correct": rate(oos, 0),
        "out_of_scope_answered": oos_answered,
        "by_kind": {kind: {"n": len(pairs), "accuracy@1": rate(pairs, 0), "accuracy@3": rate(pairs, 1)} for kind, pairs in sorted(by_kind.items())},
    }
    return {"items": records, "summary": summary}


def format_report(result: dict) -> str:
    s = result["summary"]
    lines = [
        f"items: {s['n']}",
        f"in-scope accuracy@1: {s['in_scope_accuracy@1']}   accuracy@3: {s['in_scope_accuracy@3']}",
        f"out-of-scope handled correctly: {s['out_of_scope_correct']}   answered anyway: {s['out_of_scope_answered'] or 'none'}",
        f"overall accuracy: {s['accuracy']}",
        "by kind:",
    ]
    for kind, k in s["by_kind"].items():
        lines.append(f"  {kind:<13} n={k['n']:<3} @1={k['accuracy@1']}  @3={k['accuracy@3']}")
    misses = [r for r in result["items"] if not r["correct"]]
    if misses:
        lines.append("misses:")
        for r in misses:
            got = r["faq_id"] or f"(not answered: {r['band']})"
            lines.append(f"  {r['id']} [{r['kind']}] {r['query']} → {got}")
    return "\n".join(lines)
