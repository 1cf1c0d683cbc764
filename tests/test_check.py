"""`govfaq faq check`: every problem, with its file and line, all at once."""

import textwrap
from pathlib import Path

import pytest

from bot.cli import main
from faq.loader import load_knowledge_base

TREE = """\
- id: living
  title: 地域の暮らし
  children:
    - {id: living-bus, title: バス}
"""
CONTACTS = """\
- id: office-a
  name: 窓口A
  phone: 03-1234-5678
  source: {document: doc.txt, section: 第1部}
"""
SOURCES = """\
documents:
  doc.txt:
    title: テスト文書
    sections:
      - {title: 第1部, line: 1}
      - {title: 第2部, line: 3}
"""
GOOD_FAQ = """\
- id: bus-1
  question: バスはありますか。
  alt_questions: [バスある？, バス, ばす, "Is there a bus?"]
  answer: あります。
  category: [地域の暮らし, バス]
  contacts: [office-a]
  deadlines: [{label: 申込期限, date: 2026-02-20, time: "15:00"}]
  source: {document: doc.txt, section: 第1部, line: 1}
  updated: 2026-11-22
"""


def make_content(tmp_path: Path, faqs: str) -> tuple[Path, Path]:
    content = tmp_path / "content"
    (content / "faqs").mkdir(parents=True)
    (content / "scenarios.yaml").write_text(TREE, encoding="utf-8")
    (content / "contacts.yaml").write_text(CONTACTS, encoding="utf-8")
    (content / "sources.yaml").write_text(SOURCES, encoding="utf-8")
    (content / "faqs" / "a.yaml").write_text(textwrap.dedent(faqs), encoding="utf-8")
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "doc.txt").write_text("第1部\n本文\n第2部\n本文\n", encoding="utf-8")
    return content, sources


def problems_of(tmp_path: Path, faqs: str) -> list[str]:
    content, sources = make_content(tmp_path, faqs)
    return [str(p).replace(str(content) + "/", "") for p in load_knowledge_base(content, sources).problems]


def test_good_content_has_no_problem(tmp_path):
    content, sources = make_content(tmp_path, GOOD_FAQ)
    result = load_knowledge_base(content, sources)
    assert result.problems == []
    faq = result.kb.get("bus-1")
    assert faq.deadlines[0].time == "15:00"  # not YAML 1.1's sexagesimal 900
    assert str(faq.deadlines[0].date) == "2026-02-20"


@pytest.mark.parametrize(
    "edit, expected",
    [
        (("answer: あります。", 'answer: "  "'), "a.yaml:4: answer: 空にはできません"),
        (("  updated: 2026-11-22\n", ""), "a.yaml:1: updated: 必須の項目がありません"),
        (("updated: 2026-11-22", "updated: 2026-11-22\n  colour: red"), "a.yaml:10: colour: 「colour」という項目はありません"),
        (("contacts: [office-a]", "contacts: [office-b]"), "a.yaml:6: contacts[0]: 問合せ先 'office-b' が contacts.yaml にありません"),
        (("category: [地域の暮らし, バス]", "category: [地域の暮らし, 電車]"), "a.yaml:5: category: シナリオの木（scenarios.yaml）にない分類です: 地域の暮らし > 電車"),
        (("date: 2026-02-20", "date: 2026-02-30"), "a.yaml:7: deadlines[0].date: 2026-02-30 という日付はありません（例: 2026-02-20）"),
        (("updated: 2026-11-22", "updated: 22/11/2026"), "a.yaml:9: updated: 日付の形が正しくありません（例: 2026-02-20）"),
        (("id: bus-1", "id: Bus 1"), "a.yaml:1: id: 半角の英小文字・数字・「-」で"),
        (("section: 第1部", "section: 第9部"), "a.yaml:8: source.section: doc.txt に「第9部」という節がありません"),
        (("document: doc.txt", "document: nope.txt"), "a.yaml:8: source.document: 出典の文書 'nope.txt' が見つかりません"),
        (("answer: あります。", "answer: [あります"), "a.yaml:4: (yaml): 「[」が閉じられていません"),
    ],
)
def test_each_problem_names_file_line_and_field(tmp_path, edit, expected):
    old, new = edit
    assert old in GOOD_FAQ
    found = problems_of(tmp_path, GOOD_FAQ.replace(old, new))
    assert any(p.startswith("faqs/" + expected) for p in found), found


def test_duplicate_id_points_at_both(tmp_path):
    found = problems_of(tmp_path, GOOD_FAQ + GOOD_FAQ)
    assert found == ["faqs/a.yaml:10: id: id 'bus-1' が重複しています（最初は faqs/a.yaml:1）"], found


def test_all_problems_are_reported_at_once(tmp_path):
    second = GOOD_FAQ.replace("bus-1", "bus-2").replace("answer: あります。", 'answer: ""')
    third = GOOD_FAQ.replace("bus-1", "bus-3").replace("contacts: [office-a]", "contacts: [nobody]")
    fourth = GOOD_FAQ.replace("bus-1", "bus-4").replace("updated", "updatd")
    found = problems_of(tmp_path, GOOD_FAQ + second + third + fourth)
    assert [p.split(": ")[0] + ": " + p.split(": ")[1] for p in found] == [
        "faqs/a.yaml:13: answer",
        "faqs/a.yaml:24: contacts[0]",
        "faqs/a.yaml:28: updated",
        "faqs/a.yaml:36: updatd",
    ], found


def test_cli_check_exit_codes_and_format(tmp_path, capsys):
    content, sources = make_content(tmp_path, GOOD_FAQ)
    assert main(["faq", "check", str(content), "--sources", str(sources)]) == 0
    (content / "faqs" / "b.yaml").write_text(GOOD_FAQ.replace("bus-1", "bus-9").replace("あります。", "''"), encoding="utf-8")
    assert main(["faq", "check", str(content), "--sources", str(sources)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].endswith("b.yaml:4: answer: 空にはできません"), out


def test_broken_contacts_and_tree_are_reported(tmp_path):
    content, sources = make_content(tmp_path, GOOD_FAQ)
    (content / "contacts.yaml").write_text(CONTACTS + CONTACTS.replace("phone", "fax"), encoding="utf-8")
    found = [str(p) for p in load_knowledge_base(content, sources).problems]
    assert any("contacts.yaml:7: fax: 「fax」という項目はありません" in p for p in found), found


def test_a_duplicate_scenario_node_is_reported_at_its_line(tmp_path):
    content, sources = make_content(tmp_path, GOOD_FAQ)
    (content / "scenarios.yaml").write_text(TREE + "    - {id: living-bus, title: 電車}\n", encoding="utf-8")
    found = [str(p).replace(str(content) + "/", "") for p in load_knowledge_base(content, sources).problems]
    assert found == ["scenarios.yaml:5: id: シナリオの id 'living-bus' が重複しています（地域の暮らし > バス と 地域の暮らし > 電車）"], found
