"""The question sets in tests/eval are sound evidence: facts from the documents, ids unique,
every style and every document present, enough of them. Checks structure only (no search)."""

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "tests" / "eval"
SOURCES = ROOT / "faq" / "sources"
STYLES = {"plain", "casual", "kana", "typo", "long", "english", "shorthand", "near_miss", "oos"}


def _fold(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


@pytest.fixture(scope="module")
def items() -> list[tuple[str, dict]]:
    rows = []
    for path in sorted(EVAL.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append((path.name, json.loads(line)))
    return rows


def test_there_are_tuning_and_held_out_halves_of_enough_questions(items):
    files = {name for name, _ in items}
    assert any(n.endswith(".tune.jsonl") for n in files) and any(n.endswith(".heldout.jsonl") for n in files)
    assert len(items) >= 340
    in_scope = [i for _, i in items if i["kind"] != "out_of_scope"]
    assert len(in_scope) >= 300 and len(items) - len(in_scope) >= 40


def test_every_item_has_the_fields_and_ids_are_unique_across_files(items):
    for name, item in items:
        assert {"id", "query", "expect", "kind", "style", "source"} <= set(item), (name, item.get("id"))
    ids = Counter(item["id"] for _, item in items)
    assert not [i for i, n in ids.items() if n > 1]


def test_every_style_and_every_document_is_present(items):
    assert {item["style"] for _, item in items} == STYLES
    cited = {str(item["source"]).split(":")[0] for _, item in items if item.get("source")}
    assert {p.name for p in SOURCES.glob("*.txt")} <= cited


def test_every_fact_is_a_literal_substring_of_its_cited_document(items):
    documents = {p.name: _fold(p.read_text(encoding="utf-8")) for p in SOURCES.glob("*.txt")}
    bad = []
    for name, item in items:
        if not item["expect"]:
            continue
        document = documents.get(str(item["source"]).split(":")[0])
        assert document is not None, (name, item["id"], item["source"])
        bad += [(item["id"], v) for fact in item["expect"] for v in fact if _fold(v) not in document]
    assert not bad
