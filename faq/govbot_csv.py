"""Govbot's published FAQ CSV: `ID,大分類,中分類,小分類,問い,回答`.

Staff and ministries keep FAQs in spreadsheets, so this is how content moves
in and out. We read UTF-8, UTF-8 with BOM and CP932 (Excel's Japanese
default), and write UTF-8 with BOM so that Excel opens the file correctly.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import unicodedata
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
        return [], [RowProblem(path, 1, "(file)", f"UTF-8 でも CP932（Shift_JIS）でも読めません（{exc.start} バイト目）")]
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[RowProblem] = []
    try:
        header = next(reader)
    except StopIteration:
        return [], [RowProblem(path, 1, "(header)", "ファイルが空です")]
    header = [h.strip() for h in header]
    if header != HEADER:
        return [], [RowProblem(path, 1, "(header)", f"見出し行は {','.join(HEADER)} にしてください（この行: {','.join(header)}）")]
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
            problems.append(RowProblem(path, start, "(row)", f"CSV として読めません: {exc}"))
            break
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(HEADER):
            problems.append(RowProblem(path, start, "(row)", f"列が {len(record)} 個あります（{len(HEADER)} 個にしてください）"))
            continue
        row = CsvRow(*(_restore(cell.strip()) for cell in record))
        bad = False
        # IDs are kept as the ministry wrote them (1, 10, FAQ-01 …); `faq_id` maps them to ours.
        # Two rows that differ only in case or punctuation would map to one FAQ, so they count as twins.
        key = faq_id(row.id) if row.id else ""
        if key and key in seen:
            problems.append(RowProblem(path, start, "ID", f"ID {row.id!r} が重複しています（最初は {seen[key]} 行目）"))
            bad = True
        for label, value in (("ID", row.id), ("大分類", row.major), ("中分類", row.middle), ("問い", row.question), ("回答", row.answer)):
            if not value:
                problems.append(RowProblem(path, start, label, "空欄にはできません"))
                bad = True
        if not bad:
            seen[key] = start
            rows.append(row)
    return rows, problems


def _id_key(raw: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKC", raw).lower()).strip("-")


def faq_id(govbot_id: str) -> str:
    """Our FAQ id for an ID as a ministry writes it: `FAQ_01` → `faq-01`, `1` → `govbot-1`.

    Lowercase ASCII letters, digits and '-' as ID_PATTERN asks; an ID that would be too short,
    or has no ASCII at all (e.g. 「子育て一」), gets a `govbot-` prefix (and a short hash), so
    the same CSV always maps to the same ids and re-imports find their entries again."""
    key = _id_key(govbot_id)
    hashed = not re.search(r"[a-z0-9]", key)
    if hashed:
        key = hashlib.sha1(govbot_id.encode("utf-8")).hexdigest()[:10]
    candidate = key if re.fullmatch(ID_PATTERN, key) and not key.isdigit() and not hashed else f"govbot-{key}"
    return candidate[:80].rstrip("-")


def _restore(cell: str) -> str:
    """Undo `_defuse` so that export → import is lossless."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in _FORMULA_START:
        return cell[1:]
    return cell


def faq_to_row(faq: FAQ) -> CsvRow:
    category = list(faq.category) + ["", "", ""]
    return CsvRow(faq.govbot_id or faq.id, category[0], category[1], category[2], faq.question, faq.answer.strip())


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
        entries.append(row_entry(row, source_name, today))
    return dump_entries(entries)


def row_category(row: CsvRow) -> list[str]:
    return [c for c in (row.major, row.middle, row.minor) if c]


def row_entry(row: CsvRow, source_name: str, today: dt.date) -> dict:
    """A new FAQ entry for an imported row; staff add paraphrases and tags later."""
    return {
        "id": faq_id(row.id),
        "govbot_id": row.id,
        "question": row.question,
        "alt_questions": [],
        "answer": row.answer,
        "category": row_category(row),
        "source": {"document": IMPORT_SCHEME + source_name, "section": row.major},
        "updated": today.isoformat(),
    }


def dump_entries(entries: list[dict]) -> str:
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
