"""An answer changed while `updated` did not is a warning, against the last git commit
(issue 15, part 3). Warnings never change the exit code of `govfaq faq check`."""

import datetime as dt

from dulwich import porcelain

from bot.cli import main
from faq.loader import load_knowledge_base
from tests.test_check import GOOD_FAQ, make_content

TODAY = dt.date(2026, 12, 1)
SECOND = GOOD_FAQ.replace("bus-1", "bus-2")


def committed_content(tmp_path, faqs=GOOD_FAQ + SECOND):
    content, sources = make_content(tmp_path, faqs)
    porcelain.init(str(tmp_path))
    porcelain.add(str(tmp_path), paths=[str(p) for p in content.rglob("*.yaml")])
    porcelain.commit(str(tmp_path), message=b"content", author=b"Staff <staff@example.jp>", committer=b"Staff <staff@example.jp>")
    return content, sources


def warnings_of(content, sources):
    result = load_knowledge_base(content, sources, compare_with_commit=True, today=TODAY)
    return [str(w).replace(str(content) + "/", "") for w in result.warnings], result


def write(content, text):
    (content / "faqs" / "a.yaml").write_text(text, encoding="utf-8")


def test_changed_answer_with_the_same_updated_is_a_warning_at_updated(tmp_path):
    content, sources = committed_content(tmp_path)
    write(content, GOOD_FAQ + SECOND.replace("answer: あります。", "answer: 平日はあります。"))
    found, result = warnings_of(content, sources)
    assert found == ["faqs/a.yaml:18: updated: 回答が変わりましたが updated が 2026-11-22 のままです（今日の日付 2026-12-01 にしてください）"]
    assert result.problems == []


def test_no_warning_when_updated_moved_on_or_nothing_changed(tmp_path):
    content, sources = committed_content(tmp_path)
    assert warnings_of(content, sources)[0] == []
    edited = SECOND.replace("answer: あります。", "answer: 平日はあります。").replace("2026-11-22", "2026-12-01")
    write(content, GOOD_FAQ + edited)
    assert warnings_of(content, sources)[0] == []
    # Re-wrapping is not a new answer; a question edit is not an answer edit.
    write(content, GOOD_FAQ + SECOND.replace("answer: あります。", "answer: |\n    あります。\n").replace("バスはありますか。", "バスは走っていますか。", 1))
    assert warnings_of(content, sources)[0] == []


def test_new_and_moved_faqs_are_not_changes(tmp_path):
    content, sources = committed_content(tmp_path)
    write(content, GOOD_FAQ)
    (content / "faqs" / "b.yaml").write_text(SECOND + GOOD_FAQ.replace("bus-1", "bus-3").replace("あります。", "新しい回答です。"), encoding="utf-8")
    assert warnings_of(content, sources)[0] == []


def test_outside_a_repository_there_is_nothing_to_compare(tmp_path):
    content, sources = make_content(tmp_path, GOOD_FAQ)
    assert warnings_of(content, sources)[0] == []


def test_cli_prints_warnings_apart_and_exits_0(tmp_path, capsys):
    content, sources = committed_content(tmp_path)
    write(content, GOOD_FAQ + SECOND.replace("answer: あります。", "answer: 平日はあります。"))
    assert main(["faq", "check", str(content), "--sources", str(sources), "--today", "2026-12-01"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # standard output holds errors only
    err = captured.err.splitlines()
    assert err[0] == "警告 1 件（終了コードには影響しません）:"
    assert err[1].endswith("faqs/a.yaml:18: updated: 回答が変わりましたが updated が 2026-11-22 のままです（今日の日付 2026-12-01 にしてください）")
    assert "0 problem(s), 1 warning(s)" in err[-1]
    # An error as well: exit 1 because of the error, the warning still apart.
    write(content, GOOD_FAQ.replace("あります。", "''") + SECOND.replace("answer: あります。", "answer: 平日はあります。"))
    assert main(["faq", "check", str(content), "--sources", str(sources), "--today", "2026-12-01"]) == 1
    captured = capsys.readouterr()
    assert captured.out.strip().endswith("faqs/a.yaml:4: answer: 空にはできません") and "回答が変わりました" not in captured.out
    assert "回答が変わりました" in captured.err
