"""How well the FAQs cover each section of each source document."""

from __future__ import annotations

from dataclasses import dataclass

from .loader import KnowledgeBase
from .sources import section_key


@dataclass(frozen=True)
class CoverageRow:
    document: str
    line: int
    section: str
    faqs: int
    reason: str | None  # why a section has no FAQ, from sources.yaml


def coverage(kb: KnowledgeBase) -> list[CoverageRow]:
    counts: dict[tuple[str, int], int] = {}
    for faq in kb.faqs:
        doc = kb.sources.get(faq.source.document)
        if doc is None:
            continue
        top = doc.top_section_for(faq.source.section, faq.source.line)
        if top is not None:
            counts[(doc.name, top.line)] = counts.get((doc.name, top.line), 0) + 1
    reasons = {(s.document, section_key(s.section)): s.reason for s in kb.catalogue.skipped}
    rows = []
    for name, doc in sorted(kb.sources.items()):
        for section in doc.top_sections:
            count = counts.get((name, section.line), 0)
            reason = reasons.get((name, section_key(section.title))) if count == 0 else None
            rows.append(CoverageRow(name, section.line, section.title, count, reason))
    return rows


def format_table(rows: list[CoverageRow], only_zero: bool = False) -> str:
    out = []
    current = None
    for row in rows:
        if only_zero and row.faqs:
            continue
        if row.document != current:
            current = row.document
            out.append(f"\n{row.document}")
        title = row.section if len(row.section) <= 60 else row.section[:59] + "…"
        note = f"  ({row.reason})" if row.reason else ("  (no FAQ, no reason given)" if row.faqs == 0 else "")
        out.append(f"  {row.line:>5}  {row.faqs:>3}  {title}{note}")
    covered = sum(1 for r in rows if r.faqs)
    out.append(f"\n{covered}/{len(rows)} sections cited by at least one FAQ; "
               f"{sum(1 for r in rows if not r.faqs and r.reason)} without FAQ have a reason, "
               f"{sum(1 for r in rows if not r.faqs and not r.reason)} have none.")
    return "\n".join(out).lstrip("\n")
