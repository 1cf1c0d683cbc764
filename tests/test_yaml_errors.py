"""YAML mistakes staff make, reported in Japanese at the line of the mistake, and
a broken entry hides only itself (issue 15, part 3)."""

import shutil
from pathlib import Path

import pytest

from faq.loader import CONTENT_DIR, load_knowledge_base
from faq.yamlio import parse_yaml, parse_yaml_list

from tests.test_check import GOOD_FAQ, make_content

TWO = """\
- id: bus-1
  question: バスはありますか。
  alt_questions: [バスある？, バス]
  answer: あります。
  category: [地域の暮らし, バス]
  updated: 2026-11-22
- id: bus-2
  question: 電車はありますか。
  answer: |
    あります。
    駅は一つです。
  updated: 2026-11-22
"""

# (name, (old, new), line of the mistake, words the message must contain)
MISTAKES = [
    ("missing colon", ("  answer: あります。", "  answer あります。"), 4, "「:」が見つかりません"),
    ("missing colon in the last entry", ("  question: 電車はありますか。", "  question 電車はありますか。"), 8, "「:」が見つかりません"),
    ("no space after the colon", ("  answer: あります。", "  answer:あります。"), 4, "「:」の後に半角スペースがありません"),
    ("indented too deep", ("  answer: あります。", "    answer: あります。"), 4, "字下げ"),
    ("indented too shallow", ("  answer: あります。", " answer: あります。"), 4, "字下げ"),
    ("tab character", ("  answer: あります。", "\tanswer: あります。"), 4, "タブ文字は使えません"),
    ("unclosed double quote", ("answer: あります。", 'answer: "あります。'), 4, "引用符（\"）が閉じられていません"),
    ("unclosed single quote", ("answer: あります。", "answer: 'あります。"), 4, "引用符（'）が閉じられていません"),
    ("unclosed bracket", ("alt_questions: [バスある？, バス]", "alt_questions: [バスある？, バス"), 3, "「[」が閉じられていません"),
    ("unclosed brace", ("alt_questions: [バスある？, バス]", "alt_questions: {a: バス"), 3, "「{」が閉じられていません"),
    ("list item at the wrong level", ("  category: [地域の暮らし, バス]", "  category:\n    - 地域の暮らし\n  - バス"), 7, "字下げ"),
    ("colon inside a value", ("answer: あります。", "answer: 受付: 9時から"), 4, "値の中に「: 」があります"),
    ("block text dedented", ("    駅は一つです。", "   駅は一つです。"), 11, "字下げ"),
    ("dash without a space", ("- id: bus-2", "-id: bus-2"), 7, "字下げ"),
    ("value starting with @", ("answer: あります。", "answer: @窓口"), 4, "「@」で始まる値"),
    ("value starting with *", ("answer: あります。", "answer: *重要"), 4, "「*」や「&」で始まる値"),
]


@pytest.mark.parametrize("name, edit, line, words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_syntax_mistake_is_reported_in_japanese_at_its_line(name, edit, line, words):
    old, new = edit
    assert TWO.count(old) == 1
    doc, problems = parse_yaml(TWO.replace(old, new), "x.yaml")
    assert doc is None and len(problems) == 1, problems
    problem = problems[0]
    assert (problem.line, problem.field) == (line, "(yaml)"), str(problem)
    assert words in problem.message, str(problem)
    assert "expected" not in problem.message and "while" not in problem.message, str(problem)


def test_duplicate_key_is_reported_at_the_second_key():
    doc, problems = parse_yaml(TWO.replace("  updated: 2026-11-22\n- id: bus-2", "  updated: 2026-11-22\n  answer: 二度目\n- id: bus-2"), "x.yaml")
    assert [str(p) for p in problems] == ["x.yaml:7: answer: 同じ項目が2回書かれています（1つにまとめてください）"]


def test_a_list_written_as_one_line_under_the_wrong_indent_is_a_field_error(tmp_path):
    # `- バス` indented one space more than `- 地域の暮らし` continues its text: YAML reads it
    # fine, so the checker reports the category (one title, not two), at its line.
    faq = GOOD_FAQ.replace("  category: [地域の暮らし, バス]", "  category:\n  - 地域の暮らし\n   - バス")
    content, sources = make_content(tmp_path, faq)
    found = [str(p).replace(str(content) + "/", "") for p in load_knowledge_base(content, sources).problems]
    assert found == ["faqs/a.yaml:5: category: 少なくとも 2 個書いてください（今は 1 個）"], found


FIVE = "".join(GOOD_FAQ.replace("bus-1", f"bus-{n}") for n in range(1, 6))


def test_entries_around_a_broken_one_still_load(tmp_path):
    lines = FIVE.splitlines(keepends=True)
    third_answer = 2 * 9 + 4  # 9 lines an entry; the 3rd entry's answer is line 22
    assert lines[third_answer - 1] == "  answer: あります。\n"
    lines[third_answer - 1] = "  answer あります。\n"
    content, sources = make_content(tmp_path, "".join(lines))
    result = load_knowledge_base(content, sources)
    assert sorted(f.id for f in result.kb.faqs) == ["bus-1", "bus-2", "bus-4", "bus-5"]
    found = [str(p).replace(str(content) + "/", "") for p in result.problems]
    assert len(found) == 1 and found[0].startswith("faqs/a.yaml:22: (yaml): 「:」が見つかりません"), found
    # The entries after the broken one keep their own lines.
    assert result.kb.faq_locations["bus-4"] == (result.kb.faq_locations["bus-4"][0], 28)


def test_an_unclosed_quote_swallows_nothing_after_its_entry():
    text = FIVE.replace("answer: あります。", 'answer: "あります。', 1)  # entry 1; the quote would run to the end
    doc, problems = parse_yaml_list(text, "x.yaml")
    assert [p.line for p in problems] == [4] and [item["id"] for item in doc.data] == ["bus-2", "bus-3", "bus-4", "bus-5"]
    assert doc.line_of((0, "id")) == 10 and doc.line_of((3, "updated")) == 45


def test_validation_errors_in_entries_after_a_broken_one_keep_their_lines(tmp_path):
    text = FIVE.replace("answer: あります。", "answer: [あります", 1).replace("updated: 2026-11-22", "updated: 2026-13-01", 3)
    content, sources = make_content(tmp_path, text)
    found = [str(p).replace(str(content) + "/", "") for p in load_knowledge_base(content, sources).problems]
    assert [p.split(": ")[0] for p in found] == ["faqs/a.yaml:4", "faqs/a.yaml:18", "faqs/a.yaml:27"], found


def test_a_missing_colon_in_a_shipped_file_is_reported_at_its_line_and_hides_one_faq(tmp_path):
    # The issue's own case: a colon removed on line 114 of a shipped file was reported at
    # 115 in English, and every FAQ of that file was lost.
    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    path = content / "faqs" / "000_hatarakikata.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    line = next(n for n in range(100, 140) if lines[n - 1].startswith("  answer: "))
    before = len(load_knowledge_base(content).kb.faqs)
    lines[line - 1] = lines[line - 1].replace("answer:", "answer", 1)
    path.write_text("".join(lines), encoding="utf-8")
    result = load_knowledge_base(content)
    assert [(Path(p.path).name, p.line, p.field) for p in result.problems] == [("000_hatarakikata.yaml", line, "(yaml)")]
    assert "「:」が見つかりません" in result.problems[0].message
    assert len(result.kb.faqs) == before - 1
