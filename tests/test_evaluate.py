"""`govfaq eval` (by style, wrong answers, several files) and `govfaq rank` (a contract)."""

import json

import pytest

from bot import cli
from bot.dialogue import Bot, Reply
from bot.evaluate import evaluate, format_report, rank


class ScriptedBot:
    """Replies by query from a table: the scoring is under test, not the search."""

    def __init__(self, replies: dict[str, Reply]):
        self.replies = replies

    def reply(self, text, session=None):
        return self.replies[text]


def _answer(text: str) -> Reply:
    return Reply(kind="answer", answered=True, faq_id="f", answer=text, band="answer", confidence=0.9)


FALLBACK = Reply(kind="fallback", answered=False, faq_id=None, answer="窓口へ", band="fallback", confidence=0.1)

ITEMS = [
    {"id": "1", "query": "q1", "expect": [["3年"]], "kind": "program", "style": "plain"},
    {"id": "2", "query": "q2", "expect": [["3年"]], "kind": "program", "style": "casual"},  # wrong answer
    {"id": "3", "query": "q3", "expect": [["2月20日"]], "kind": "deadline", "style": "casual"},  # withheld
    {"id": "4", "query": "q4", "expect": [], "kind": "out_of_scope", "style": "oos"},
]
BOT = ScriptedBot({"q1": _answer("任期は3年です"), "q2": _answer("予算は5億円"), "q3": FALLBACK, "q4": FALLBACK})


def test_wrong_answers_are_counted_as_a_share_of_in_scope_items():
    summary = evaluate(BOT, ITEMS)["summary"]
    assert summary["wrong_answers"] == 1
    assert summary["wrong_answer_share"] == round(1 / 3, 4)
    assert summary["in_scope_accuracy@1"] == round(1 / 3, 4)
    assert summary["out_of_scope_correct"] == 1.0


def test_figures_by_style():
    by_style = evaluate(BOT, ITEMS)["summary"]["by_style"]
    assert set(by_style) == {"plain", "casual", "oos"}
    assert by_style["casual"] == {"n": 2, "accuracy@1": 0.0, "accuracy@3": 0.0, "wrong_answer_share": 0.5}
    assert by_style["plain"]["accuracy@1"] == 1.0


def test_items_without_style_keep_the_old_summary():
    result = evaluate(BOT, [{k: v for k, v in item.items() if k != "style"} for item in ITEMS])
    assert result["summary"]["by_style"] == {}
    for key in ("n", "accuracy", "in_scope_accuracy@1", "in_scope_accuracy@3", "out_of_scope_correct", "by_kind"):
        assert key in result["summary"]  # the --json contract: keys are only added


def test_report_without_misses_names_no_item():
    result = evaluate(BOT, ITEMS)
    assert "misses:" in format_report(result)
    quiet = format_report(result, misses=False)
    assert "misses:" not in quiet and "q2" not in quiet and "by style:" in quiet


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_scores_several_files_together(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("bot.runtime.load_bot", lambda settings, records=None: BOT)
    a = _write(tmp_path / "a.jsonl", ITEMS[:2])
    b = _write(tmp_path / "b.heldout.jsonl", ITEMS[2:])
    assert cli.main(["eval", str(a), str(b), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["n"] == 4
    assert cli.main(["eval", str(a), str(b)]) == 0
    assert "misses:" not in capsys.readouterr().out  # a held-out file among them: figures only


@pytest.fixture(scope="module")
def bot(fast_engine):
    return Bot(fast_engine)


def test_rank_gives_the_decision_and_the_top_ten(bot, fast_engine):
    rows = [{"id": "x1", "query": "地域おこし協力隊の任期"}, {"id": "x2", "query": "協力隊 締切は？"}]
    lines = rank(bot, rows)
    assert [line["id"] for line in lines] == ["x1", "x2"]
    for line, row in zip(lines, rows):
        assert set(line) == {"id", "kind", "band", "confidence", "hits"}
        assert 1 <= len(line["hits"]) <= 10 and set(line["hits"][0]) == {"faq_id", "score"}
        assert line["kind"] == bot.reply(row["query"]).kind  # the same decision as `govfaq ask`
        search = fast_engine.search(row["query"], k=10)
        assert [h["faq_id"] for h in line["hits"]] == [h.faq_id for h in search.hits]


def test_rank_uses_a_fresh_conversation_per_line(bot):
    # 「締切は？」 alone is a follow-up only inside a conversation about a programme.
    alone = rank(bot, [{"id": "b", "query": "締切は？"}])[0]
    after = rank(bot, [{"id": "a", "query": "地域おこし協力隊の任期"}, {"id": "b", "query": "締切は？"}])[1]
    assert after == alone


def test_rank_command_reports_a_bad_line(tmp_path, capsys):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "1", "query": "任期"}\n{"id": "2"}\n', encoding="utf-8")
    assert cli.main(["rank", str(bad)]) == 2
    assert f"{bad}:2: query: field required" in capsys.readouterr().err
