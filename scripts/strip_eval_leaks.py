"""Remove the paraphrases that came from an evaluation set, without showing them.

Usage, from the project root:
    python scripts/strip_eval_leaks.py [--dry-run] EVAL.jsonl [MORE.jsonl ...]

An `alt_questions` item is removed when, after NFKC and without spaces and
punctuation, its character-bigram Jaccard with a query is >= 0.6, or it
contains a query, or a query contains it (6+ characters each). The YAML is
edited line by line, so comments and layout stay. It prints FAQ ids and
file:line only, never the text, and lists the FAQs left without paraphrases
and the questions and other lines near a query, for a person to rewrite from
the FAQ and its source document.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.leakage import ROOT, bigrams, code_lines, jaccard, norm, read_queries  # noqa: E402

THRESHOLD = 0.6
MIN_LEN = 6


def leaks(text: str, queries: list[tuple[str, frozenset[str]]], both_ways: bool = True) -> bool:
    """Near a query, or holding one; `both_ways` also when a query holds it (a paraphrase
    inside a longer question came from it; an office name inside one did not)."""
    t = norm(text)
    bt = bigrams(t)
    for q, bq in queries:
        if jaccard(bt, bq) >= THRESHOLD:
            return True
        if min(len(q), len(t)) >= MIN_LEN and (q in t or (both_ways and t in q)):
            return True
    return False


def strip_file(path: Path, queries, dry_run: bool) -> tuple[list[str], list[str], list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    keep, removed, emptied, questions = [], [], [], []
    faq_id, in_alts, alts_total, alts_kept = None, False, 0, 0

    def close():
        if faq_id and alts_total and not alts_kept:
            emptied.append(faq_id)

    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if line.startswith("- id:"):
            close()
            faq_id, in_alts, alts_total, alts_kept = stripped[5:].strip(), False, 0, 0
        elif stripped.startswith("alt_questions:"):
            in_alts = True
        elif in_alts and stripped.startswith("- "):
            alts_total += 1
            value = yaml.safe_load(stripped[2:])
            if leaks(str(value), queries):
                removed.append(f"{path.relative_to(ROOT)}:{number} {faq_id}")
                continue
            alts_kept += 1
        elif in_alts and not line.startswith("      "):
            in_alts = False
        if stripped.startswith("question:") and leaks(str(yaml.safe_load(stripped[9:]) or ""), queries, False):
            questions.append(f"{path.relative_to(ROOT)}:{number} {faq_id}")
        keep.append(line)
    close()
    if removed and not dry_run:
        path.write_text("".join(keep), encoding="utf-8")
    return removed, emptied, questions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    queries = [(q.text, bigrams(q.text)) for s in args.sets for q in read_queries(s) if len(q.text) >= MIN_LEN]
    removed, emptied, questions = [], [], []
    for path in sorted((ROOT / "faq" / "content" / "faqs").glob("*.yaml")):
        r, e, q = strip_file(path, queries, args.dry_run)
        removed += r; emptied += e; questions += q
    print(f"removed {len(removed)} paraphrases" + (" (dry run)" if args.dry_run else ""))
    for row in removed:
        print("  " + row)
    print(f"FAQs left without paraphrases: {len(emptied)}")
    for row in emptied:
        print("  " + row)
    print(f"questions near a query (rewrite them): {len(questions)}")
    for row in questions:
        print("  " + row)
    others = [where for where, text in code_lines()
              if not where.startswith("faq/content/faqs/") and len(text) >= MIN_LEN and leaks(text, queries, both_ways=False)]
    print(f"other lines of content or code near a query: {len(others)}")
    for row in others:
        print("  " + row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
