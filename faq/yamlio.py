"""YAML reading that remembers where every value came from.

Staff edit the FAQ files by hand, so every problem must point at a file and
a line. PyYAML's composer keeps the position of each node; we walk the node
tree once and record the line of every key and list item by its path.

A syntax error is reported in Japanese at the line of the mistake, which is
not always where the parser noticed it (`explain_syntax_error`), and in a
file of entries it hides only the entry it is in (`parse_yaml_list`).
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


def parse_yaml(text: str, shown: str, first_line: int = 1) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse YAML text whose first line is line `first_line` of the file `shown`.
    Returns the document, or None and the syntax problem."""
    # Blank lines in front keep every mark (line and column) true to the file.
    loader = ContentLoader("\n" * (first_line - 1) + text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        line, message = explain_syntax_error(exc, text, first_line)
        return None, [Problem(shown, line, "(yaml)", message)]
    except yaml.YAMLError as exc:
        return None, [Problem(shown, first_line, "(yaml)", f"YAML として読めません（{exc}）")]
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    dupes: list[tuple[Path_, int]] = []
    if node is not None:
        _record(node, (), lines, dupes)
    problems = [
        Problem(shown, line, format_field(where[1:] if isinstance(where[0], int) else where),
                "同じ項目が2回書かれています（1つにまとめてください）")
        for where, line in dupes
    ]
    return YamlDocument(Path(shown), data, lines), problems


def _read_text(path: Path, shown: str) -> tuple[str | None, list[Problem]]:
    try:
        return path.read_text(encoding="utf-8"), []
    except UnicodeDecodeError as exc:
        return None, [Problem(shown, 1, "(file)", f"UTF-8 で保存されていません（{exc.start + 1} バイト目）。文字コードを UTF-8 にして保存してください")]
    except OSError as exc:
        return None, [Problem(shown, 1, "(file)", f"ファイルを読めません（{exc.strerror}）")]


def read_yaml(path: Path, display: str | None = None, entries: bool = False) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one YAML file. Returns the document, or None and the syntax problem.
    `entries`: the file is a list of entries; recover those around a broken one (`parse_yaml_list`)."""
    shown = display or str(path)
    text, problems = _read_text(path, shown)
    if text is None:
        return None, problems
    doc, problems = (parse_yaml_list if entries else parse_yaml)(text, shown)
    if doc is not None:
        doc.path = path
    return doc, problems


# A top-level list item starts at column 0 with "- " (or a lone "-" before a nested block).
_TOP_ITEM = re.compile(r"^-(?: |$)", re.MULTILINE)


def parse_yaml_list(text: str, shown: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse a file that is a list of entries. On a syntax error, parse each top-level
    item on its own, so that one broken entry hides only itself: the items that parse
    are returned (in order), and each broken one is reported at its own line."""
    doc, problems = parse_yaml(text, shown)
    if doc is not None:
        return doc, problems
    starts = [match.start() for match in _TOP_ITEM.finditer(text)]
    if len(starts) < 2:
        return None, problems  # nothing to split: the whole file is the one entry
    chunks = [(0, starts[0])] if text[: starts[0]].strip() else []
    chunks += list(zip(starts, starts[1:] + [len(text)]))
    items: list[Any] = []
    lines: dict[Path_, int] = {}
    broken: list[Problem] = []
    for begin, end in chunks:
        part, part_problems = parse_yaml(text[begin:end], shown, text.count("\n", 0, begin) + 1)
        broken += part_problems
        if part is None or part.data is None:
            continue
        if not isinstance(part.data, list):
            broken.append(Problem(shown, part.line_of(()), "(yaml)", "「- 」で始まる項目の外に書かれています（字下げを確認してください）"))
            continue
        for number, item in enumerate(part.data):
            index = len(items)
            items.append(item)
            for where, line in part.lines.items():
                if where and where[0] == number:
                    lines[(index,) + where[1:]] = line
    if not any(p.field == "(yaml)" for p in broken):
        return None, problems  # every item parses alone: the mistake is between them; report it as found
    lines.setdefault((), 1)
    return YamlDocument(Path(shown), items, lines), broken


# ------------------------------------------------------------ syntax errors in Japanese
#
# PyYAML (and libyaml, whose wording differs) reports where it *noticed* a mistake,
# which is often the line after it: a key without its colon is only found out on the
# next line. Each rule says which mark points at the mistake and what to tell staff.

def _line_text(text: str, mark, first_line: int) -> str:
    lines = text.split("\n")
    index = mark.line - (first_line - 1)
    return lines[index] if 0 <= index < len(lines) else ""


def _runaway_quote(text: str) -> yaml.ScalarEvent | None:
    """The quoted value the parser read last before failing, if it spans lines."""
    last = None
    try:
        for event in yaml.parse(text, Loader=ContentLoader):
            last = event
    except yaml.YAMLError:
        pass
    if isinstance(last, yaml.ScalarEvent) and last.style in ('"', "'") and last.end_mark.line > last.start_mark.line:
        return last
    return None


def explain_syntax_error(exc: yaml.MarkedYAMLError, text: str, first_line: int = 1) -> tuple[int, str]:
    """(1-based line of the mistake, a message in plain Japanese) for a YAML syntax error."""
    context, problem = exc.context or "", exc.problem or ""
    context_mark, problem_mark = exc.context_mark, exc.problem_mark
    mark = problem_mark or context_mark
    original = " ".join(part for part in (context, problem) if part)

    def at(chosen) -> int:
        return (chosen or mark).line + 1 if (chosen or mark) else first_line

    if "could not find expected ':'" in problem:
        # The key began on the context mark's line; the parser only gave up on the next one.
        line_text = _line_text(text, context_mark, first_line) if context_mark else ""
        if re.search(r":[^\s]", line_text) and not re.search(r": ", line_text):
            return at(context_mark), "「:」の後に半角スペースがありません。「キー: 値」の形にしてください"
        return at(context_mark), "「:」が見つかりません。「キー: 値」の形にしてください（「- 」で始まる項目なら、「-」の後に半角スペースが要ります）"
    if "quoted scalar" in context and "end of stream" in problem:
        quote = _line_text(text, context_mark, first_line)[context_mark.column : context_mark.column + 1] or "\""
        return at(context_mark), f"引用符（{quote}）が閉じられていません。同じ行の終わりに {quote} を書いてください"
    runaway = _runaway_quote("\n" * (first_line - 1) + text)
    if runaway is not None and (mark is None or runaway.start_mark.line < mark.line):
        # A quote left open runs on to the next quote of a later line and breaks there.
        quote = runaway.style
        return runaway.start_mark.line + 1, f"引用符（{quote}）が閉じられていません。同じ行の終わりに {quote} を書いてください"
    if "unknown escape character" in problem:
        return at(problem_mark), "「\\」の後の文字が使えません。「\\」を書くなら ' で囲むか「\\\\」と書いてください"
    if "flow sequence" in context or "flow mapping" in context:
        opening, closing = ("[", "]") if "sequence" in context else ("{", "}")
        opened = _line_text(text, context_mark, first_line)[context_mark.column + 1 :] if context_mark else ""
        if opened.split("#")[0].strip():
            # Items follow the bracket on its own line: it was meant to close there.
            return at(context_mark), f"「{opening}」が閉じられていません。行の終わりに「{closing}」を書き、項目は「,」で区切ってください"
        return at(problem_mark), f"「{opening} … {closing}」の中の書き方が正しくありません（項目は「,」で区切り、最後を「{closing}」で閉じてください）"
    if "tab" in problem:
        return at(problem_mark), "タブ文字は使えません。字下げは半角スペースにしてください"
    if "cannot start any token" in problem:
        char = _line_text(text, problem_mark, first_line)[problem_mark.column : problem_mark.column + 1] if problem_mark else ""
        if char == "\t":
            return at(problem_mark), "タブ文字は使えません。字下げは半角スペースにしてください"
        return at(problem_mark), f"「{char}」で始まる値はそのままでは書けません。値全体を \" で囲んでください"
    if "alias" in context or "anchor" in context:
        return at(context_mark), "「*」や「&」で始まる値はそのままでは書けません。値全体を \" で囲んでください"
    if "mapping values are not allowed" in problem:
        return at(problem_mark), "値の中に「: 」があります。値全体を \" で囲んでください（例: \"受付: 9時から\"）"
    if "block sequence entries are not allowed" in problem:
        return at(problem_mark), "ここに「- 」の項目は置けません。字下げ（行頭の半角スペースの数）を確認してください"
    if "block scalar" in context:
        return at(problem_mark), "「|」の後の文章の字下げが揃っていません。どの行も同じ数の半角スペースで始めてください"
    if "block mapping" in context or "block collection" in context or "expected <block end>" in problem:
        return at(problem_mark), "字下げ（行頭の半角スペースの数）が前後の行と合っていません"
    if "single document" in context:
        return at(problem_mark), "「---」で区切られた2つ目の文書があります。1つのファイルには1つの並びだけを書いてください"
    return at(mark), f"YAML の書き方に誤りがあります（{original}）"


def format_field(where: Path_) -> str:
    """('deadlines', 0, 'date') -> 'deadlines[0].date'."""
    out = ""
    for part in where:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(entry)"
