"""`govfaq faq import FILE.csv --into CONTENT_DIR`: a ministry's Govbot CSV into a content folder.

Govbot's シナリオ検索 is the 大分類 › 中分類 › 小分類 tree of its CSV, so the import builds
(or extends) `scenarios.yaml` from those columns, writes the rows to `faqs/<csv name>.yaml`,
and leaves a folder that `govfaq faq check` passes — also when the folder was empty.

Re-importing a newer CSV updates entries by `govbot_id` (the ID as the ministry wrote it)
instead of adding them again: the question, answer and category follow the CSV, and
whatever staff added (paraphrases, tags, programme, contacts, dates) stays. Nothing is
deleted: an entry whose row is gone from the CSV is kept and reported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .govbot_csv import RowProblem, dump_entries, faq_id, read_rows, row_category, row_entry
from .yamlio import read_yaml

HEADER_COMMENT = (
    "# Scenario tree (Govbot's シナリオ検索): fields, then topics. Nodes made by `govfaq faq import`\n"
    "# from 大分類/中分類/小分類 have ids g-<hash of their path>; titles may be edited in the FAQs too.\n"
)


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Entries from an earlier import of this CSV whose rows are no longer in it (kept, not deleted).
    missing: list[str] = field(default_factory=list)
    new_nodes: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"追加 {len(self.added)} 件、更新 {len(self.updated)} 件、変更なし {len(self.unchanged)} 件、"
            f"CSV になくなった {len(self.missing)} 件（削除していません）、シナリオ分類の追加 {len(self.new_nodes)} 件、"
            f"読めなかった行 {len(self.problems)} 件"
        )


def node_id(path: tuple[str, ...]) -> str:
    """A stable ASCII id for a category path: the same titles always give the same node."""
    return "g-" + hashlib.sha1("\u241f".join(path).encode("utf-8")).hexdigest()[:10]


def extend_tree(tree: list[dict], path: list[str], created: list[str]) -> None:
    """Add the nodes of `path` (a list of titles) that `tree` lacks, in the raw YAML form."""
    level = tree
    for depth in range(len(path)):
        title = path[depth]
        node = next((n for n in level if n.get("title") == title), None)
        if node is None:
            node = {"id": node_id(tuple(path[: depth + 1])), "title": title}
            level.append(node)
            created.append(" > ".join(path[: depth + 1]))
        if depth + 1 < len(path):
            level = node.setdefault("children", [])


def _read_list(path: Path) -> list[dict]:
    if not path.exists():
        return []
    doc, problems = read_yaml(path)
    if problems or doc is None:
        raise ValueError(f"{path}: 読めないため取り込みを中止しました: " + "; ".join(str(p) for p in problems))
    return list(doc.data or [])


def import_into(csv_path: Path, content_dir: Path, today: dt.date | None = None) -> ImportReport:
    """Merge the CSV at `csv_path` into `content_dir` (created if needed); see the module doc."""
    today = today or dt.date.today()
    report = ImportReport()
    rows, report.problems = read_rows(csv_path.read_bytes(), str(csv_path))
    if not rows:
        return report  # an unreadable file or header changes nothing
    content_dir.mkdir(parents=True, exist_ok=True)
    faq_dir = content_dir / "faqs"
    faq_dir.mkdir(exist_ok=True)
    target = faq_dir / f"{_file_stem(csv_path)}.yaml"

    # Every FAQ file: an entry of an earlier import is found by its govbot_id wherever staff moved it.
    files = {p: _read_list(p) for p in sorted(faq_dir.glob("*.yaml"))}
    files.setdefault(target, [])
    by_govbot: dict[str, tuple[Path, dict]] = {}
    by_id: dict[str, tuple[Path, dict]] = {}
    for path, entries in files.items():
        for entry in entries:
            if isinstance(entry, dict):
                if entry.get("govbot_id"):
                    by_govbot[str(entry["govbot_id"])] = (path, entry)
                if entry.get("id"):
                    by_id[str(entry["id"])] = (path, entry)

    tree_path = content_dir / "scenarios.yaml"
    tree = _read_list(tree_path)
    changed: set[Path] = set()
    seen: set[str] = set()
    for row in rows:
        seen.add(row.id)
        extend_tree(tree, row_category(row), report.new_nodes)
        found = by_govbot.get(row.id) or by_id.get(faq_id(row.id))
        if found is None:
            files[target].append(row_entry(row, csv_path.name, today))
            report.added.append(faq_id(row.id))
            changed.add(target)
            continue
        path, entry = found
        fresh = {"question": row.question, "answer": row.answer, "category": row_category(row)}
        if all(_same(entry.get(k), v) for k, v in fresh.items()) and entry.get("govbot_id") == row.id:
            report.unchanged.append(str(entry["id"]))
            continue
        if not all(_same(entry.get(k), v) for k, v in fresh.items()):
            entry.update(fresh)
            entry["updated"] = today.isoformat()  # residents see the date of the text they read
        entry["govbot_id"] = row.id
        report.updated.append(str(entry["id"]))
        changed.add(path)

    source = "csv:" + csv_path.name
    for path, entries in files.items():
        for entry in entries:
            if isinstance(entry, dict) and (entry.get("source") or {}).get("document") == source and entry.get("govbot_id") not in seen:
                report.missing.append(str(entry.get("id")))

    for path in sorted(changed):
        path.write_text(dump_entries(files[path]), encoding="utf-8")
        report.written.append(path)
    if report.new_nodes or not tree_path.exists():
        tree_path.write_text(HEADER_COMMENT + dump_entries(tree), encoding="utf-8")
        report.written.append(tree_path)
    return report


def _same(old: object, new: object) -> bool:
    if isinstance(new, str):
        return isinstance(old, str) and old.strip() == new.strip()
    return old == new


def _file_stem(csv_path: Path) -> str:
    """faqs/<stem>.yaml for a CSV: its name made safe for a file name, the same on every import."""
    return faq_id(csv_path.stem)
