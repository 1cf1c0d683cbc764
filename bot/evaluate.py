"""`govfaq eval`: score the bot on questions with the facts a right answer holds.

Format (shared/eval/README.md): one JSON object per line with `id`, `query`,
`expect` (a list of facts, each a list of accepted variants), `kind`, and
optionally `style` (plain, casual, kana, typo, long, english, shorthand,
near_miss, oos: how the question is written). Compared after NFKC with all
whitespace removed.

A *wrong answer* is an in-scope item the bot answered with an answer that
lacks an expected fact: worse than a fallback, because it is asserted.
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
        "style": item.get("style"),
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


def _out_of_scope(item: dict) -> bool:
    return item["kind"] == "out_of_scope" or not item["expect"]


def evaluate(bot: Bot, items: list[dict]) -> dict:
    """Every item through `bot.reply`, each in a fresh conversation."""
    records = []
    by_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    by_style: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    wrong: dict[str, list[bool]] = defaultdict(list)  # per style (and "*"): in-scope item answered wrongly
    for item in items:
        record = item_record(item, bot.reply(item["query"]))
        correct, top3 = score(item, record)
        record["correct"], record["correct_top3"] = correct, top3
        record["wrong_answer"] = not _out_of_scope(item) and record["answered"] and not correct
        records.append(record)
        by_kind[item["kind"]].append((correct, top3))
        if item.get("style"):
            by_style[item["style"]].append((correct, top3))
        if not _out_of_scope(item):
            wrong["*"].append(record["wrong_answer"])
            wrong[item.get("style") or ""].append(record["wrong_answer"])

    def rate(pairs, index):
        return round(sum(p[index] for p in pairs) / len(pairs), 4) if pairs else None

    def share(flags):
        return round(sum(flags) / len(flags), 4) if flags else None

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
        "wrong_answers": sum(wrong["*"]),
        "wrong_answer_share": share(wrong["*"]),  # of in-scope items
        "by_style": {
            style: {"n": len(pairs), "accuracy@1": rate(pairs, 0), "accuracy@3": rate(pairs, 1), "wrong_answer_share": share(wrong.get(style, []))}
            for style, pairs in sorted(by_style.items())
        },
    }
    return {"items": records, "summary": summary}


def format_report(result: dict, misses: bool = True) -> str:
    """The summary; with `misses`, one line per missed item (leave it off for held-out sets)."""
    s = result["summary"]
    lines = [
        f"items: {s['n']}",
        f"in-scope accuracy@1: {s['in_scope_accuracy@1']}   accuracy@3: {s['in_scope_accuracy@3']}",
        f"wrong answers (answered without every expected fact): {s['wrong_answers']} = {s['wrong_answer_share']} of in-scope",
        f"out-of-scope handled correctly: {s['out_of_scope_correct']}   "
        f"answered anyway: {(s['out_of_scope_answered'] if misses else len(s['out_of_scope_answered'])) or 'none'}",
        f"overall accuracy: {s['accuracy']}",
        "by kind:",
    ]
    for kind, k in s["by_kind"].items():
        lines.append(f"  {kind:<13} n={k['n']:<3} @1={k['accuracy@1']}  @3={k['accuracy@3']}")
    if s["by_style"]:
        lines.append("by style:")
        for style, k in s["by_style"].items():
            lines.append(f"  {style:<13} n={k['n']:<3} @1={k['accuracy@1']}  @3={k['accuracy@3']}  wrong={k['wrong_answer_share']}")
    missed = [r for r in result["items"] if not r["correct"]] if misses else []
    if missed:
        lines.append("misses:")
        for r in missed:
            got = r["faq_id"] or f"(not answered: {r['band']})"
            lines.append(f"  {r['id']} [{r['kind']}] {r['query']} → {got}")
    return "\n".join(lines)


def rank(bot: Bot, rows: list[dict], k: int = 10) -> list[dict]:
    """`govfaq rank`: one line per query (a contract): the decision `govfaq ask` makes, in a
    fresh conversation per line, and the top `k` FAQs of the search behind it."""
    out = []
    for row in rows:
        reply = bot.reply(row["query"])
        out.append(
            {
                "id": row["id"],
                "kind": reply.kind,
                "band": reply.band,
                "confidence": round(reply.confidence, 4),
                "hits": reply.ranking[:k],
            }
        )
    return out
