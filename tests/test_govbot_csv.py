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
        ["Bad ID", "子育て", "手当", "", "質問", "回答"],  # row 6
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
    assert rows == [] and str(problems[0]).startswith("in.csv:1: (header): expected ID,大分類")


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
    path.write_bytes(csv_bytes(ROWS + [["x y", "a", "b", "", "q", "a"]], "cp932"))
    assert main(["faq", "import", str(path), "--out", str(tmp_path / "o.yaml")]) == 1
    assert f"{path}:5: ID: invalid id" in capsys.readouterr().out
