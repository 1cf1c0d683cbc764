"""Evaluation questions written into the product: the checks behind tests/test_leakage.py.

A question set measures the product only while none of its questions stands in
the content or the code. Two ways a question leaks:

- *verbatim*: the query, after NFKC and without spaces and punctuation, equals
  a line of content or code, or stands inside one (queries of 10+ characters);
- *near*: its character-bigram Jaccard with a paraphrase (`alt_questions`) or
  an FAQ question is at least the threshold (0.8 in the test).

Reports name the question's id and the place (FAQ id or file:line), never the
text, so that whoever reads a report does not learn the question.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Content and code a question must not stand in.
SCANNED = [
    ("faq/content", ("**/*.yaml", "**/*.yml")),
    ("index", ("**/*.py", "**/*.json", "**/*.txt", "**/*.yaml")),
    ("bot", ("**/*.py", "**/*.json", "**/*.txt", "**/*.yaml")),
    ("web", ("**/*.py", "**/*.json", "**/*.txt", "**/*.yaml", "**/*.html")),
]
_DROPPED = re.compile(r"[\s\W_]+")  # spaces and punctuation (any non-word character)
_KEY_OR_DASH = re.compile(r"^\s*(?:-\s*)?(?:[\w]+:\s*)?")


def norm(text: str) -> str:
    return _DROPPED.sub("", unicodedata.normalize("NFKC", text or "")).lower()


def bigrams(text: str) -> frozenset[str]:
    return frozenset(text[i:i + 2] for i in range(len(text) - 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


@dataclass(frozen=True)
class Query:
    id: str
    text: str  # normalised


def read_queries(path: Path) -> list[Query]:
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            item = json.loads(raw)
            out.append(Query(str(item["id"]), norm(item.get("query", ""))))
    return out


def code_lines(root: Path = ROOT) -> Iterator[tuple[str, str]]:
    """(file:line, normalised text) for every line of content and code, keys and list dashes removed."""
    for folder, patterns in SCANNED:
        seen: set[Path] = set()
        for pattern in patterns:
            for path in sorted((root / folder).glob(pattern)):
                if path in seen or not path.is_file():
                    continue
                seen.add(path)
                rel = path.relative_to(root)
                for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                    text = norm(_KEY_OR_DASH.sub("", line, count=1))
                    if text:
                        yield f"{rel}:{number}", text


def verbatim(queries: Iterable[Query], lines: list[tuple[str, str]], min_len: int = 6,
             inside_len: int = 10) -> list[tuple[str, str]]:
    """(query id, file:line) where a query equals a line, or (10+ characters) stands inside one."""
    hits = []
    for q in queries:
        if len(q.text) < min_len:
            continue
        for where, text in lines:
            if q.text == text or (len(q.text) >= inside_len and q.text in text):
                hits.append((q.id, where))
                break
    return hits


def near(queries: Iterable[Query], phrases: list[tuple[str, str]], threshold: float,
         min_len: int = 6) -> list[tuple[str, str]]:
    """(query id, place) where a query's bigram Jaccard with a phrase is >= threshold."""
    grams = [(where, bigrams(text)) for where, text in phrases if text]
    hits = []
    for q in queries:
        if len(q.text) < min_len:
            continue
        bq = bigrams(q.text)
        for where, bp in grams:
            if jaccard(bq, bp) >= threshold:
                hits.append((q.id, where))
                break
    return hits


def faq_phrases(kb) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(place, normalised text) of every paraphrase, and of every question."""
    alts = [(f"{f.id} alt_questions[{i}]", norm(a)) for f in kb.faqs for i, a in enumerate(f.alt_questions)]
    questions = [(f"{f.id} question", norm(f.question)) for f in kb.faqs]
    return alts, questions
