"""No evaluation question stands in the content or the code (issue 11).

The development set (../shared/eval/dev.jsonl beside the clone) and every
tests/eval/*.jsonl set are read here, by the test: a person writing content
never reads them. Failures name question ids and places only.
"""

from pathlib import Path

import pytest

from tests.leakage import ROOT, code_lines, faq_phrases, near, read_queries, verbatim

# CI keeps shared/ beside the clone; a git worktree sits deeper, so look up the parents too.
DEV = next((p / "shared" / "eval" / "dev.jsonl" for p in ROOT.parents if (p / "shared" / "eval" / "dev.jsonl").exists()),
           ROOT.parent / "shared" / "eval" / "dev.jsonl")
SETS = [DEV] + sorted((ROOT / "tests" / "eval").glob("*.jsonl"))
NEAR = 0.8


@pytest.fixture(scope="module")
def lines():
    return list(code_lines())


@pytest.fixture(scope="module")
def phrases(shipped):
    return faq_phrases(shipped.kb)


def _set(path: Path):
    if not path.exists():
        pytest.skip(f"{path} is absent (CI keeps shared/ beside the clone)")
    return read_queries(path)


@pytest.mark.parametrize("path", SETS, ids=lambda p: p.name)
def test_no_question_stands_in_content_or_code(path, lines):
    hits = verbatim(_set(path), lines)
    assert not hits, f"{len(hits)} questions of {path.name} stand in content or code: " + ", ".join(
        f"{qid} ({where})" for qid, where in hits)


@pytest.mark.parametrize("path", SETS, ids=lambda p: p.name)
def test_no_question_is_near_a_paraphrase_or_question(path, phrases):
    alts, questions = phrases
    hits = near(_set(path), alts + questions, NEAR)
    assert not hits, f"{len(hits)} questions of {path.name} are near an FAQ: " + ", ".join(
        f"{qid} ({where})" for qid, where in hits)


def test_the_checks_catch_a_leak():
    from tests.leakage import Query, norm

    q = [Query("x1", norm("地域おこし協力隊の任期は何年ですか？")), Query("x2", norm("全く別の話題について"))]
    assert verbatim(q, [("a.yaml:3", norm("- 地域おこし協力隊の任期は何年ですか"))]) == [("x1", "a.yaml:3")]
    assert verbatim(q, [("b.py:9", norm('"Q: 地域おこし協力隊の任期は何年ですか。教えて"'))]) == [("x1", "b.py:9")]
    assert near(q, [("f alt", norm("地域おこし協力隊の任期は何年"))], NEAR) == [("x1", "f alt")]
    assert near(q, [("f alt", norm("協力隊 任期"))], NEAR) == []
