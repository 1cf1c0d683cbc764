"""Govbot's published FAQ CSV: `ID,大分類,中分類,小分類,問い,回答`.

Staff and ministries keep FAQs in spreadsheets, so this is how content moves
in and out. We read UTF-8, UTF-8 with BOM and CP932 (Excel's Japanese
default), and write UTF-8 with BOM so that Excel opens the file correctly.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .schema import FAQ, ID_PATTERN

HEADER = ["ID", "大分類", "中分類", "小分類", "問い", "回答"]
_FORMULA_START = "=+-@\t\r"
IMPORT_SCHEME = "csv:"  # source.document of an imported FAQ: csv:<file name>


@dataclass(frozen=True)
class CsvRow:
    id: str
    major: str
    middle: str
    minor: str
    question: str
    answer: str


@dataclass(frozen=True)
class RowProblem:
    path: str
    row: int  # spreadsheet row: the header is row 1
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.row}: {self.field}: {self.message}"


def decode(data: bytes) -> tuple[str, str]:
    """Return (text, encoding name). BOM → UTF-8; valid UTF-8; else CP932."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp932"), "cp932"


def read_rows(data: bytes, path: str = "<csv>") -> tuple[list[CsvRow], list[RowProblem]]:
    try:
        text, _ = decode(data)
    except UnicodeDecodeError as exc:
        return [], [RowProblem(path, 1, "(file)", f"neither UTF-8 nor CP932: byte {exc.start}")]
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[RowProblem] = []
    try:
        header = next(reader)
    except StopIteration:
        return [], [RowProblem(path, 1, "(header)", "empty file")]
    header = [h.strip() for h in header]
    if header != HEADER:
        return [], [RowProblem(path, 1, "(header)", f"expected {','.join(HEADER)}, got {','.join(header)}")]
    rows: list[CsvRow] = []
    seen: dict[str, int] = {}
    # Row numbers are spreadsheet rows (the header is row 1), which is what staff
    # see in Excel: a cell with a line break is still one row.
    row_number = 1
    while True:
        row_number += 1
        start = row_number
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(RowProblem(path, start, "(row)", f"CSV error: {exc}"))
            break
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(HEADER):
            problems.append(RowProblem(path, start, "(row)", f"expected {len(HEADER)} columns, got {len(record)}"))
            continue
        row = CsvRow(*(_restore(cell.strip()) for cell in record))
        bad = False
        if not re.fullmatch(ID_PATTERN, row.id):
            problems.append(RowProblem(path, start, "ID", f"invalid id {row.id!r}: use lowercase ASCII letters, digits and '-'"))
            bad = True
        elif row.id in seen:
            problems.append(RowProblem(path, start, "ID", f"duplicate id {row.id!r} (first at row {seen[row.id]})"))
            bad = True
        for label, value in (("大分類", row.major), ("中分類", row.middle), ("問い", row.question), ("回答", row.answer)):
            if not value:
                problems.append(RowProblem(path, start, label, "must not be empty"))
                bad = True
        if not bad:
            seen[row.id] = start
            rows.append(row)
    return rows, problems


def _restore(cell: str) -> str:
    """Undo `_defuse` so that export → import is lossless."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in _FORMULA_START:
        return cell[1:]
    return cell


def faq_to_row(faq: FAQ) -> CsvRow:
    category = list(faq.category) + ["", "", ""]
    return CsvRow(faq.id, category[0], category[1], category[2], faq.question, faq.answer.strip())


def write_rows(rows: list[CsvRow]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow([_defuse(cell) for cell in (row.id, row.major, row.middle, row.minor, row.question, row.answer)])
    return out.getvalue().encode("utf-8-sig")


def _defuse(cell: str) -> str:
    """Keep a spreadsheet from running a cell as a formula (CSV injection)."""
    if cell and cell[0] in _FORMULA_START:
        return "'" + cell
    return cell


def export_csv(faqs: list[FAQ]) -> bytes:
    return write_rows([faq_to_row(faq) for faq in faqs])


def rows_to_yaml(rows: list[CsvRow], source_name: str, today: dt.date | None = None) -> str:
    """YAML FAQ entries for imported rows; staff add paraphrases and tags later."""
    today = today or dt.date.today()
    entries = []
    for row in rows:
        entries.append(
            {
                "id": row.id,
                "question": row.question,
                "alt_questions": [],
                "answer": row.answer,
                "category": [c for c in (row.major, row.middle, row.minor) if c],
                "source": {"document": IMPORT_SCHEME + source_name, "section": row.major},
                "updated": today.isoformat(),
            }
        )
    return yaml.dump(entries, Dumper=_LiteralDumper, allow_unicode=True, sort_keys=False, width=1000)


class _LiteralDumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str_presenter)


def import_csv(path: Path, today: dt.date | None = None) -> tuple[str, list[RowProblem], int]:
    """Read a Govbot CSV file; return (YAML text, problems, number of rows imported)."""
    rows, problems = read_rows(path.read_bytes(), str(path))
    return rows_to_yaml(rows, path.name, today), problems, len(rows)
