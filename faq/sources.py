"""The source documents the answers cite, and their sections.

Markdown documents (003, 004) are split by their headings; the others have
their titled parts listed in `faq/content/sources.yaml`. A copy of the seed
documents ships in `faq/sources/` so that a fresh clone can check every
answer against them.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .schema import SourcesFile

SOURCES_DIR = Path(__file__).resolve().parent / "sources"
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")


def default_sources_dir() -> Path:
    return Path(os.environ.get("GOVFAQ_SOURCES_DIR", SOURCES_DIR))


def section_key(title: str) -> str:
    """Compare headings loosely: NFKC, no markdown emphasis or escapes, single spaces."""
    text = unicodedata.normalize("NFKC", title)
    text = text.replace("**", "").replace("\\", "")
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Section:
    document: str
    title: str
    line: int  # 1-based start line
    level: int  # 1 = top level; coverage counts at level 1


@dataclass
class SourceDoc:
    name: str
    text: str
    title: str
    sections: list[Section] = field(default_factory=list)  # every heading or titled part, in order

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    @cached_property
    def top_sections(self) -> list[Section]:
        return [s for s in self.sections if s.level == 1]

    @cached_property
    def passages(self) -> list[tuple[int, int]]:
        """(first, last) line of each run between one heading or titled part and the next: the
        passage a citation's line falls in is what the sources page marks."""
        starts = sorted({1, *(s.line for s in self.sections if 1 <= s.line <= len(self.lines))})
        ends = [line - 1 for line in starts[1:]] + [len(self.lines)]
        return [(a, b) for a, b in zip(starts, ends) if a <= b]

    def has_section(self, title: str) -> bool:
        key = section_key(title)
        return any(section_key(s.title) == key for s in self.sections)

    def top_section_for(self, title: str, line: int | None) -> Section | None:
        """The top-level section a citation falls in: by line where given, else by heading."""
        tops = self.top_sections
        if not tops:
            return None
        if line is None:
            key = section_key(title)
            match = next((s for s in self.sections if section_key(s.title) == key), None)
            if match is None:
                return None
            line = match.line
        current = None
        for section in tops:
            if section.line <= line:
                current = section
            else:
                break
        return current or tops[0]


def markdown_sections(name: str, text: str) -> list[Section]:
    sections = []
    for number, raw in enumerate(text.splitlines(), start=1):
        match = _HEADING.match(raw)
        if match and match.group(2).strip("*# "):
            sections.append(Section(name, match.group(2).strip(), number, len(match.group(1))))
    return sections


def load_sources(sources_dir: Path, catalogue: SourcesFile | None) -> dict[str, SourceDoc]:
    """Read every seed document; sections come from headings or the catalogue."""
    docs: dict[str, SourceDoc] = {}
    listed = catalogue.documents if catalogue else {}
    for path in sorted(sources_dir.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        entry = listed.get(path.name)
        if entry and entry.sections:
            sections = [Section(path.name, s.title, s.line, 1) for s in entry.sections]
        else:
            sections = markdown_sections(path.name, text)
        title = entry.title if entry else (sections[0].title if sections else path.stem)
        docs[path.name] = SourceDoc(path.name, text, title, sections)
    return docs
