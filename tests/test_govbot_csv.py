"""Govbot CSV import and export: encodings, round trip, bad rows."""

import datetime as dt

import yaml

from bot.cli import main
from faq.govbot_csv import HEADER, export_csv, read_rows, rows_to_yaml, write_rows
from faq.schema import FAQ

ROWS = [
    ["kosodate-001", "子育て", "手当", "", "児童手当はいつ振り込まれますか。", "原則として2月、4月、6月、8月、10月、12月です。"],
    ["bousai-002", "防災", "避難", "避難所", "避難所はどこですか。", "市のホームページで確認できます。\n「防災マップ」をご覧ください。"],
    ["formula-003", "その他", "注意", "", "=1+1 と書くと？", "-5 のような値も文字として扱います。"],
]


def csv_bytes(rows, encoding="utf-8", header=HEADER) -> bytes:
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join('"' + cell.replace('"', '""') + '"' for cell in row))
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def test_reads_utf8_bom_and_cp932_alike():
    results = [read_rows(csv_bytes(ROWS, enc))[0] for enc in ("utf-8", "utf-8-sig", "cp932")]
    assert results[0] == results[1] == results[2]
    assert results[2][1].answer.startswith("市のホームページ")
    assert results[2][1].minor == "避難所"


def test_export_is_utf8_with_bom_and_defuses_formulas():
    rows, problems = read_rows(csv_bytes(ROWS))
    assert problems == []
    data = write_rows(rows)
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert text.splitlines()[0] == "ID,大分類,中分類,小分類,問い,回答"
    assert "'=1+1" in text and "'-5" in text
    # …and reading it back restores the original cells.
    again, problems = read_rows(data)
    assert problems == [] and again == rows


def test_round_trip_through_yaml_and_back():
    rows, _ = read_rows(csv_bytes(ROWS, "cp932"))
    entries = yaml.safe_load(rows_to_yaml(rows, "in.csv", dt.date(2026, 11, 22)))
    faqs = [FAQ.model_validate(e) for e in entries]
    assert [f.id for f in faqs] == ["kosodate-001", "bousai-002", "formula-003"]
    assert faqs[1].category == ["防災", "避難", "避難所"]
    assert faqs[1].answer == ROWS[1][5]
    assert read_rows(export_csv(faqs))[0] == rows


def test_bad_rows_are_reported_with_their_row_numbers():
    bad = ROWS + [
        ["kosodate-001", "子育て", "手当", "", "重複", "重複です。"],  # row 5: duplicate
        ["Kosodate_001", "子育て", "手当", "", "質問", "回答"],  # row 6: maps to kosodate-001 too
        ["ok-7", "子育て", "", "", "質問", ""],  # row 7: two empty cells
        ["ok-8", "子育て"],  # row 8: short
    ]
    rows, problems = read_rows(csv_bytes(bad), "in.csv")
    assert [r.id for r in rows] == ["kosodate-001", "bousai-002", "formula-003"]
    assert [str(p).split(": ")[0] + ": " + p.field for p in problems] == [
        "in.csv:5: ID",
        "in.csv:6: ID",
        "in.csv:7: 中分類",
        "in.csv:7: 回答",
        "in.csv:8: (row)",
    ]


def test_row_numbers_are_spreadsheet_rows_not_physical_lines():
    rows, problems = read_rows(csv_bytes(ROWS + [["", "a", "b", "", "q", "a"]]), "in.csv")
    # ROWS[1] spans two physical lines but is one row in Excel: the bad record is row 5.
    assert [str(p).split(":")[1] for p in problems] == ["5"]


def test_wrong_header_is_refused():
    rows, problems = read_rows(csv_bytes(ROWS, header=["id", "q", "a"]), "in.csv")
    assert rows == [] and str(problems[0]).startswith("in.csv:1: (header): 見出し行は ID,大分類")


def test_cli_export_then_import_round_trips_the_shipped_content(tmp_path, shipped):
    out = tmp_path / "faqs.csv"
    assert main(["faq", "export", "--out", str(out)]) == 0
    rows, problems = read_rows(out.read_bytes())
    assert problems == [] and len(rows) == len(shipped.kb.faqs)
    yaml_out = tmp_path / "imported.yaml"
    assert main(["faq", "import", str(out), "--out", str(yaml_out)]) == 0
    faqs = [FAQ.model_validate(e) for e in yaml.safe_load(yaml_out.read_text(encoding="utf-8"))]
    assert export_csv(faqs) == out.read_bytes()


def test_cli_import_reports_bad_rows_and_exits_nonzero(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_bytes(ROWS + [["x y", "a", "b", "", "q", ""]], "cp932"))
    assert main(["faq", "import", str(path), "--out", str(tmp_path / "o.yaml")]) == 1
    assert f"{path}:5: 回答: 空欄にはできません" in capsys.readouterr().out


# --- Govbot CSV as ministries publish it: IDs as written, the scenario tree, --into ---------------

import re  # noqa: E402

from faq.govbot_csv import faq_id  # noqa: E402
from faq.schema import ID_PATTERN  # noqa: E402
from faq.govbot_import import import_into, node_id  # noqa: E402
from faq.loader import load_knowledge_base  # noqa: E402

MINISTRY = [
    ["1", "子育て", "手当", "", "児童手当はいつ振り込まれますか。", "原則として2月、4月、6月、8月、10月、12月です。"],
    ["10", "防災", "避難", "避難所", "避難所はどこですか。", "市のホームページで確認できます。"],
    ["FAQ_Ab-3", "子育て", "保育", "", "保育園の申込みは？", "市役所2階の窓口で受け付けます。"],
    ["子育て四", "子育て", "保育", "", "一時預かりはありますか。", "あります。"],
]


def test_ids_as_ministries_write_them_map_to_valid_stable_ids():
    ids = [faq_id(raw) for raw in ("1", "10", "FAQ_Ab-3", "Ｑ１２", "子育て四", "子育て五", "a")]
    assert ids[:4] == ["govbot-1", "govbot-10", "faq-ab-3", "q12"]
    assert ids[4] != ids[5] and all(i.startswith("govbot-") for i in ids[4:])
    assert all(re.fullmatch(ID_PATTERN, i) for i in ids)
    assert faq_id("子育て四") == ids[4]  # the same ID always maps to the same FAQ


def test_import_into_an_empty_folder_makes_a_content_folder_that_passes_the_check(tmp_path):
    csv_path = tmp_path / "city.csv"
    csv_path.write_bytes(csv_bytes(MINISTRY, "cp932"))
    content = tmp_path / "content"
    report = import_into(csv_path, content, dt.date(2026, 12, 1))
    assert report.problems == [] and len(report.added) == 4
    result = load_knowledge_base(content)
    assert result.problems == []
    faqs = {f.govbot_id: f for f in result.kb.faqs}
    assert set(faqs) == {"1", "10", "FAQ_Ab-3", "子育て四"}
    assert faqs["10"].category == ["防災", "避難", "避難所"] and faqs["10"].id == "govbot-10"
    # The scenario tree is Govbot's 大分類 › 中分類 › 小分類.
    titles = {node.title: node for node in result.kb.tree}
    assert set(titles) == {"子育て", "防災"}
    assert [c.title for c in titles["子育て"].children] == ["手当", "保育"]
    assert titles["防災"].children[0].children[0].id == node_id(("防災", "避難", "避難所"))
    # The export writes the ministry's IDs back.
    rows, _ = read_rows(export_csv(result.kb.faqs))
    assert [r.id for r in rows] == ["1", "10", "FAQ_Ab-3", "子育て四"]


def test_reimport_updates_by_govbot_id_and_keeps_what_staff_added(tmp_path, capsys):
    csv_path = tmp_path / "city.csv"
    csv_path.write_bytes(csv_bytes(MINISTRY))
    content = tmp_path / "content"
    assert import_into(csv_path, content, dt.date(2026, 12, 1)).problems == []
    faq_file = content / "faqs" / "city.yaml"
    # Staff add a paraphrase by hand, then the ministry publishes a new CSV:
    # one answer changed, one row gone, one row new, one in a new 中分類.
    entries = yaml.safe_load(faq_file.read_text(encoding="utf-8"))
    entries[0]["alt_questions"] = ["児童手当の振込日"]
    faq_file.write_text(yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8")
    newer = [MINISTRY[0][:5] + ["原則として偶数月です。"], MINISTRY[1], MINISTRY[2],
             ["11", "防災", "備蓄", "", "備蓄は何日分？", "3日分以上が目安です。"]]
    csv_path.write_bytes(csv_bytes(newer))
    capsys.readouterr()
    report = import_into(csv_path, content, dt.date(2026, 12, 2))
    assert report.added == ["govbot-11"] and report.updated == ["govbot-1"]
    assert sorted(report.unchanged) == ["faq-ab-3", "govbot-10"]
    assert report.missing == [faq_id("子育て四")]  # kept, and reported
    result = load_knowledge_base(content)
    assert result.problems == []
    faqs = {f.govbot_id: f for f in result.kb.faqs}
    assert len(result.kb.faqs) == 5  # nothing duplicated, nothing deleted
    assert faqs["1"].answer == "原則として偶数月です。" and faqs["1"].alt_questions == ["児童手当の振込日"]
    assert faqs["1"].updated == dt.date(2026, 12, 2) and faqs["10"].updated != dt.date(2026, 12, 2)
    assert "備蓄" in [c.title for n in result.kb.tree if n.title == "防災" for c in n.children]


def test_import_never_overwrites_a_content_file_it_cannot_read(tmp_path, capsys):
    csv_path = tmp_path / "city.csv"
    csv_path.write_bytes(csv_bytes(MINISTRY))
    content = tmp_path / "content"
    (content / "faqs").mkdir(parents=True)
    broken = content / "faqs" / "city.yaml"
    broken.write_text("- id: x\n  question: [unclosed\n", encoding="utf-8")
    assert main(["faq", "import", str(csv_path), "--into", str(content)]) == 2
    assert broken.read_text(encoding="utf-8") == "- id: x\n  question: [unclosed\n"
    assert "読めないため取り込みを中止しました" in capsys.readouterr().err


def test_a_csv_with_a_wrong_header_changes_nothing(tmp_path):
    csv_path = tmp_path / "city.csv"
    csv_path.write_bytes(csv_bytes(MINISTRY, header=["id", "q", "a"]))
    report = import_into(csv_path, tmp_path / "content")
    assert report.problems and not (tmp_path / "content").exists()
