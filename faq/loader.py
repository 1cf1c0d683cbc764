"""Turn a folder of YAML files into a KnowledgeBase, reporting every problem.

Layout of a content folder:

    faqs/*.yaml        FAQ entries (a list per file)
    contacts.yaml      contacts (contacts/*.yaml may hold more)
    scenarios.yaml     the scenario tree
    synonyms.yaml      synonym groups
    sources.yaml       titled parts of documents without headings; skipped sections
    readings.yaml      staff corrections for ふりがな (surface → reading in hiragana)

Nothing here raises on bad content: every problem becomes one `Problem`
line, and every entry that is valid on its own is still loaded, so one typo
never hides the rest of the report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .govbot_csv import IMPORT_SCHEME
from .history import committed_entries, stale_updated
from .schedule import in_force, tokyo_today
from .schema import FAQ, Contact, Reading, ScenarioNode, SourcesFile, SynonymGroup
from .sources import SourceDoc, default_sources_dir, load_sources
from .messages import field_message
from .yamlio import Problem, YamlDocument, format_field, read_yaml

CONTENT_DIR = Path(__file__).resolve().parent / "content"

M = TypeVar("M", bound=BaseModel)


@dataclass
class KnowledgeBase:
    faqs: list[FAQ]
    contacts: dict[str, Contact]
    tree: list[ScenarioNode]
    synonyms: list[SynonymGroup]
    sources: dict[str, SourceDoc]
    catalogue: SourcesFile
    content_dir: Path
    faq_locations: dict[str, tuple[str, int]] = field(default_factory=dict)
    readings: dict[str, str] = field(default_factory=dict)  # ふりがな corrections: surface → hiragana

    def __post_init__(self) -> None:
        self.by_id = {faq.id: faq for faq in self.faqs}
        self.has_schedule = any(faq.publish_from or faq.valid_until for faq in self.faqs)
        # The view of the last day asked for, and its ids: search asks on every query.
        self._served: tuple[dt.date, KnowledgeBase, set[str] | None] | None = None

    def get(self, faq_id: str) -> FAQ | None:
        return self.by_id.get(faq_id)

    def category_titles(self) -> set[tuple[str, ...]]:
        return {path for path, _ in iter_tree(self.tree)}

    def node_path(self, node_id: str) -> list[ScenarioNode] | None:
        """Nodes from the top field down to `node_id`."""
        for path, nodes in iter_tree_nodes(self.tree):
            if nodes[-1].id == node_id:
                return nodes
        return None

    def in_force(self, today: dt.date) -> "KnowledgeBase":
        """The knowledge base as residents see it on `today`: without the FAQs not yet
        published or retired (faq/schedule.py). Itself when nothing is scheduled."""
        return self._view(today)[0]

    def in_force_ids(self, today: dt.date) -> set[str] | None:
        """Ids of the FAQs in force on `today`; None when every FAQ is (nothing to leave out)."""
        return self._view(today)[1]

    def _view(self, today: dt.date) -> tuple["KnowledgeBase", set[str] | None]:
        if not self.has_schedule:
            return self, None
        if self._served is None or self._served[0] != today:
            view = dataclasses.replace(self, faqs=[faq for faq in self.faqs if in_force(faq, today)])
            self._served = (today, view, None if len(view.faqs) == len(self.faqs) else set(view.by_id))
        return self._served[1], self._served[2]

    def faqs_under(self, titles: tuple[str, ...]) -> list[FAQ]:
        return [faq for faq in self.faqs if tuple(faq.category[: len(titles)]) == titles]

    def content_hash(self) -> str:
        """Fingerprint of everything the index depends on (FAQ text and synonyms)."""
        digest = hashlib.sha256()
        for faq in sorted(self.faqs, key=lambda f: f.id):
            # Unset schedule dates leave the fingerprint as it was before they existed (no
            # rebuild for them); set ones change it, so a reload builds and every worker follows.
            # easy_answer is shown, never searched: writing one does not need a new index.
            unset = {name for name in ("publish_from", "valid_until") if getattr(faq, name) is None}
            digest.update(faq.model_dump_json(exclude=unset | {"easy_answer"}).encode())
        for group in self.synonyms:
            digest.update(group.model_dump_json().encode())
        return digest.hexdigest()

    def document_title(self, name: str) -> str:
        doc = self.sources.get(name)
        return doc.title if doc else name


@dataclass
class LoadResult:
    kb: KnowledgeBase
    problems: list[Problem]
    # Worth a look, never a reason to refuse the content (`govfaq faq check` exits 0 on them).
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def iter_tree_nodes(
    nodes: Iterable[ScenarioNode], prefix: tuple[ScenarioNode, ...] = ()
) -> Iterator[tuple[tuple[str, ...], tuple[ScenarioNode, ...]]]:
    for node in nodes:
        here = prefix + (node,)
        yield tuple(n.title for n in here), here
        yield from iter_tree_nodes(node.children, here)


def iter_tree(nodes: Iterable[ScenarioNode]) -> Iterator[tuple[tuple[str, ...], ScenarioNode]]:
    for titles, chain in iter_tree_nodes(nodes):
        yield titles, chain[-1]


def _walk_nodes(
    node: ScenarioNode, titles: tuple[str, ...], where: tuple
) -> Iterator[tuple[tuple[str, ...], tuple, ScenarioNode]]:
    """Every node under `node` with its titles and its place in the YAML document."""
    yield titles, where, node
    for i, child in enumerate(node.children):
        yield from _walk_nodes(child, titles + (child.title,), where + ("children", i))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _validate_items(
    model: type[M], doc: YamlDocument, shown: str, problems: list[Problem]
) -> list[tuple[M, int]]:
    """Validate a YAML list of entries; return (entry, index in the list) for the valid ones."""
    if doc.data is None:
        return []
    if not isinstance(doc.data, list):
        problems.append(Problem(shown, 1, "(file)", "項目の並びにしてください（どの項目も行頭の「- 」で始めます）"))
        return []
    valid = []
    for index, item in enumerate(doc.data):
        line = doc.line_of((index,))
        if not isinstance(item, dict):
            problems.append(Problem(shown, line, f"[{index}]", "「キー: 値」の組で書いてください（「- 」の後に id: などの項目を並べます）"))
            continue
        try:
            valid.append((model.model_validate(item), index))
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc, doc, shown, (index,), item))
    return valid


def _pydantic_problems(
    exc: ValidationError, doc: YamlDocument, shown: str, base: tuple, item: Any
) -> list[Problem]:
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = field_message(error)
        named = re.match(r"([a-z_]+): (.+)", message, re.S) if error["type"] == "value_error" else None
        if named:
            # A check across fields names the field it is about (schema.py): report it there.
            loc, message = loc + (named.group(1),), named.group(2)
        where = base + loc
        line = doc.line_of(base if error["type"] == "missing" else where)
        label = format_field(loc) if loc else "(entry)"
        out.append(Problem(shown, line, label, message))
    return out


def _read_list(path: Path, model: type[M], problems: list[Problem]) -> list[tuple[M, int, str, YamlDocument]]:
    """Valid entries of one YAML list file as (entry, index, shown path, document)."""
    shown = _display(path)
    doc, syntax = read_yaml(path, shown, entries=True)
    problems.extend(syntax)
    if doc is None:
        return []
    return [(entry, index, shown, doc) for entry, index in _validate_items(model, doc, shown, problems)]


def load_knowledge_base(
    content_dir: Path | str = CONTENT_DIR,
    sources_dir: Path | None = None,
    compare_with_commit: bool = False,
    today: dt.date | None = None,
) -> LoadResult:
    """`compare_with_commit`: warn about answers changed since the last git commit while
    their `updated` date was not (faq/history.py); `today` is the date offered instead."""
    content_dir = Path(content_dir)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    committed = committed_entries(content_dir) if compare_with_commit and content_dir.is_dir() else None
    today = today or tokyo_today()
    if not content_dir.is_dir():
        problems.append(Problem(str(content_dir), 1, "(folder)", "内容のフォルダが見つかりません"))

    # Scenario tree
    tree: list[ScenarioNode] = []
    tree_path = content_dir / "scenarios.yaml"
    if tree_path.exists():
        entries = _read_list(tree_path, ScenarioNode, problems)
        tree = [node for node, *_ in entries]
        seen_nodes: dict[str, str] = {}
        for top, index, shown, doc in entries:
            for titles, where, node in _walk_nodes(top, (top.title,), (index,)):
                if node.id in seen_nodes:
                    problems.append(Problem(
                        shown, doc.line_of(where + ("id",)), "id",
                        f"シナリオの id {node.id!r} が重複しています（{seen_nodes[node.id]} と {' > '.join(titles)}）",
                    ))
                seen_nodes[node.id] = " > ".join(titles)
    else:
        problems.append(Problem(str(tree_path), 1, "(file)", "シナリオの木のファイル（scenarios.yaml）がありません"))

    # Contacts
    contacts: dict[str, Contact] = {}
    contact_files = [content_dir / "contacts.yaml"] if (content_dir / "contacts.yaml").exists() else []
    contact_files += sorted((content_dir / "contacts").glob("*.yaml")) if (content_dir / "contacts").is_dir() else []
    contact_where: dict[str, str] = {}
    for path in contact_files:
        for contact, index, shown, doc in _read_list(path, Contact, problems):
            line = doc.line_of((index,))
            if contact.id in contacts:
                problems.append(
                    Problem(shown, line, "id", f"問合せ先の id {contact.id!r} が重複しています（最初は {contact_where[contact.id]}）")
                )
                continue
            contacts[contact.id] = contact
            contact_where[contact.id] = f"{shown}:{line}"

    # Synonyms
    synonyms: list[SynonymGroup] = []
    syn_path = content_dir / "synonyms.yaml"
    if syn_path.exists():
        synonyms = [group for group, *_ in _read_list(syn_path, SynonymGroup, problems)]

    # Source catalogue and documents
    catalogue = SourcesFile()
    cat_path = content_dir / "sources.yaml"
    if cat_path.exists():
        shown = _display(cat_path)
        doc, syntax = read_yaml(cat_path, shown)
        problems.extend(syntax)
        if doc is not None and doc.data is not None:
            try:
                catalogue = SourcesFile.model_validate(doc.data)
            except ValidationError as exc:
                problems.extend(_pydantic_problems(exc, doc, shown, (), doc.data))
    sources_dir = Path(sources_dir) if sources_dir else default_sources_dir()
    sources = load_sources(sources_dir, catalogue) if sources_dir.is_dir() else {}

    # FAQs
    faqs: list[FAQ] = []
    locations: dict[str, tuple[str, int]] = {}
    categories = {path for path, _ in iter_tree(tree)}
    faq_dir = content_dir / "faqs"
    faq_files = sorted(faq_dir.glob("*.yaml")) if faq_dir.is_dir() else []
    if content_dir.is_dir() and not faq_files:
        problems.append(Problem(str(faq_dir), 1, "(folder)", "FAQ のファイル（faqs/*.yaml）が1つもありません"))
    for path in faq_files:
        for faq, index, shown, doc in _read_list(path, FAQ, problems):
            line = doc.line_of((index,))
            at = lambda *where: doc.line_of((index, *where))  # noqa: E731
            if faq.id in locations:
                first = "{}:{}".format(*locations[faq.id])
                problems.append(Problem(shown, at("id"), "id", f"id {faq.id!r} が重複しています（最初は {first}）"))
                continue
            entry_problems = []
            for i, contact_id in enumerate(faq.contacts):
                if contact_id not in contacts:
                    entry_problems.append(Problem(shown, at("contacts", i), f"contacts[{i}]", f"問合せ先 {contact_id!r} が contacts.yaml にありません"))
            if tree and tuple(faq.category) not in categories:
                entry_problems.append(
                    Problem(shown, at("category"), "category", f"シナリオの木（scenarios.yaml）にない分類です: {' > '.join(faq.category)}")
                )
            entry_problems += _source_problems(faq.source, sources, shown, lambda *w: at("source", *w))
            problems.extend(entry_problems)
            stale = stale_updated(faq, committed.get(faq.id), today) if committed else None
            if stale:
                warnings.append(Problem(shown, at("updated"), "updated", stale))
            faqs.append(faq)
            locations[faq.id] = (shown, line)

    for contact_id, contact in contacts.items():
        shown, _, line = contact_where[contact_id].rpartition(":")
        problems.extend(_source_problems(contact.source, sources, shown, lambda *w, line=int(line): line))

    for skipped in catalogue.skipped:
        doc = sources.get(skipped.document)
        if sources and (doc is None or not doc.has_section(skipped.section)):
            problems.append(
                Problem(_display(cat_path), 1, "skipped", f"{skipped.document} に「{skipped.section}」という節がありません")
            )

    readings = _read_readings(content_dir / "readings.yaml", problems)
    kb = KnowledgeBase(faqs, contacts, tree, synonyms, sources, catalogue, content_dir, locations, readings)
    problems.sort(key=lambda p: (p.path, p.line))  # read like a compiler's report, file by file
    warnings.sort(key=lambda p: (p.path, p.line))
    return LoadResult(kb, problems, warnings)


def _read_readings(path: Path, problems: list[Problem]) -> dict[str, str]:
    """ふりがな corrections; a surface given twice, or one without kanji, is a problem."""
    readings: dict[str, str] = {}
    if not path.exists():
        return readings
    for entry, index, shown, doc in _read_list(path, Reading, problems):
        line = doc.line_of((index,))
        if not any("\u3400" <= ch <= "\u9fff" or ch == "々" for ch in entry.surface):
            problems.append(Problem(shown, line, "surface", f"{entry.surface!r} has no kanji: nothing to read"))
        elif entry.surface in readings:
            problems.append(Problem(shown, line, "surface", f"duplicate reading for {entry.surface!r}"))
        else:
            readings[entry.surface] = entry.reading
    return readings


def _source_problems(source, sources: dict[str, SourceDoc], shown: str, at, prefix: str = "source") -> list[Problem]:
    if not sources or source.document.startswith(IMPORT_SCHEME):
        # No documents to check against, or an FAQ imported from a ministry's CSV.
        return []
    doc = sources.get(source.document)
    if doc is None:
        return [Problem(shown, at("document"), f"{prefix}.document", f"出典の文書 {source.document!r} が見つかりません")]
    out = []
    if not doc.has_section(source.section):
        out.append(Problem(shown, at("section"), f"{prefix}.section", f"{source.document} に「{source.section}」という節がありません"))
    if source.line is not None and source.line > len(doc.lines):
        out.append(Problem(shown, at("line"), f"{prefix}.line", f"{source.line} 行目は {source.document} の最後（{len(doc.lines)} 行）より後です"))
    return out
