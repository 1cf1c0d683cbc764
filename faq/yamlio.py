"""YAML reading that remembers where every value came from.

Staff edit the FAQ files by hand, so every problem must point at a file and
a line. PyYAML's composer keeps the position of each node; we walk the node
tree once and record the line of every key and list item by its path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when available: ~5x faster


class ContentLoader(_Base):
    """SafeLoader without YAML 1.1 surprises.

    - Dates stay strings so pydantic reports a bad date against its field
      (PyYAML would raise on 2026-02-30 before we can say where it is).
    - No sexagesimal numbers: `time: 15:00` must not become 900.
    """


ContentLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
ContentLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0|[-+]?[1-9][0-9_]*)$"),
    list("-+0123456789"),
)
ContentLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.inf|\.nan)$"),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the content, printed as `path:line: field: message`."""

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


@dataclass
class YamlDocument:
    path: Path
    data: Any
    lines: dict[Path_, int]  # path inside the document -> 1-based line

    def line_of(self, where: Path_) -> int:
        """Line of the deepest recorded prefix of `where`."""
        for end in range(len(where), -1, -1):
            line = self.lines.get(tuple(where[:end]))
            if line is not None:
                return line
        return 1


def _record(node: yaml.Node, here: Path_, lines: dict[Path_, int], dupes: list[tuple[Path_, int]]) -> None:
    lines.setdefault(here, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            child = here + (name,)
            if name in seen:
                dupes.append((child, key.start_mark.line + 1))
            seen.add(name)
            lines[child] = key.start_mark.line + 1
            _record(value, child, lines, dupes)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, here + (index,), lines, dupes)


def read_yaml(path: Path, display: str | None = None) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one YAML file. Returns the document, or None and the syntax problem."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(shown, 1, "(file)", f"not UTF-8: {exc.reason} at byte {exc.start}")]
    except OSError as exc:
        return None, [Problem(shown, 1, "(file)", f"cannot read: {exc.strerror}")]
    loader = ContentLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return None, [Problem(shown, line, "(yaml)", f"YAML syntax error: {message}")]
    except yaml.YAMLError as exc:
        return None, [Problem(shown, 1, "(yaml)", f"YAML error: {exc}")]
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    dupes: list[tuple[Path_, int]] = []
    if node is not None:
        _record(node, (), lines, dupes)
    problems = [
        Problem(shown, line, format_field(where[1:] if isinstance(where[0], int) else where), "duplicate key")
        for where, line in dupes
    ]
    return YamlDocument(path, data, lines), problems


def format_field(where: Path_) -> str:
    """('deadlines', 0, 'date') -> 'deadlines[0].date'."""
    out = ""
    for part in where:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(entry)"
