"""Scenario search (Govbot's シナリオ検索): fields → topics → FAQs → answer."""

from __future__ import annotations

from dataclasses import dataclass, field

from faq.loader import KnowledgeBase

TOP = "top"


@dataclass(frozen=True)
class ScenarioView:
    node_id: str  # "top" for the start screen
    title: str
    breadcrumbs: list[dict]  # from the top down to this node, each {"id", "title"}
    parent_id: str | None  # where "back" goes; None at the top
    children: list[dict] = field(default_factory=list)  # {"id", "title", "description", "faqs"}
    faqs: list[dict] = field(default_factory=list)  # {"faq_id", "question"} directly under this node


def scenario_view(kb: KnowledgeBase, node_id: str | None = None) -> ScenarioView | None:
    """The start screen (node_id None or "top"), or one node; None for an unknown node."""
    if node_id in (None, TOP):
        children = [_child(kb, (n.title,), n) for n in kb.tree]
        return ScenarioView(TOP, "分野を選んでください", [{"id": TOP, "title": "トップ"}], None, children)
    chain = kb.node_path(node_id)
    if chain is None:
        return None
    titles = tuple(n.title for n in chain)
    node = chain[-1]
    crumbs = [{"id": TOP, "title": "トップ"}] + [{"id": n.id, "title": n.title} for n in chain]
    parent = chain[-2].id if len(chain) > 1 else TOP
    children = [_child(kb, titles + (c.title,), c) for c in node.children]
    faqs = [{"faq_id": f.id, "question": f.question} for f in kb.faqs if tuple(f.category) == titles]
    return ScenarioView(node.id, node.title, crumbs, parent, children, faqs)


def _child(kb: KnowledgeBase, titles: tuple[str, ...], node) -> dict:
    return {"id": node.id, "title": node.title, "description": node.description, "faqs": len(kb.faqs_under(titles))}
