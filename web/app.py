"""The FastAPI application. `create_app(settings)` builds an isolated app."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from bot.settings import Settings, get_settings
from faq.loader import iter_tree, load_knowledge_base
from faq.schema import FAQ, Contact

log = logging.getLogger("govfaq.web")
TEMPLATES = Path(__file__).resolve().parent / "templates"


class FaqPublic(BaseModel):
    faq: FAQ
    contacts: list[Contact]
    document_title: str


def create_app(settings: Settings) -> FastAPI:
    result = load_knowledge_base(settings.content_dir, settings.sources_dir)
    for problem in result.problems:
        # A broken file is reported, never fatal: the valid entries still serve.
        log.warning("content problem: %s", problem)
    kb = result.kb
    app = FastAPI(title="govfaq", description="国・地方共通相談チャットボット型 FAQ サービス")
    app.state.kb = kb
    templates = Jinja2Templates(directory=str(TEMPLATES))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/faq/{faq_id}", response_model=FaqPublic)
    def get_faq(faq_id: str) -> FaqPublic:
        faq = kb.get(faq_id)
        if faq is None:
            raise HTTPException(status_code=404, detail=f"FAQ「{faq_id}」は見つかりません。")
        return FaqPublic(
            faq=faq,
            contacts=[kb.contacts[c] for c in faq.contacts if c in kb.contacts],
            document_title=kb.document_title(faq.source.document),
        )

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        groups = []
        for titles, _node in iter_tree(kb.tree):
            faqs = [f for f in kb.faqs if tuple(f.category) == titles]
            if faqs:
                groups.append((" > ".join(titles), faqs))
        return templates.TemplateResponse(request, "faq_list.html", {"groups": groups, "count": len(kb.faqs)})

    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory`: settings from the environment."""
    return create_app(get_settings())
