"""The FastAPI application. `create_app(settings)` builds an isolated app.

The index and model load in a background thread at start-up: `/healthz`
answers at once, `/readyz` once the bot is ready. Pages and the JSON API
call the same `Bot.reply` as the command line.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from jinja2 import ChoiceLoader, FileSystemLoader
from jinja2.sandbox import SandboxedEnvironment
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bot.dialogue import Bot, contact_line
from bot.privacy import install_log_masking, mask_personal_data
from bot.scenario import scenario_view
from bot.settings import Settings, get_settings
from faq.loader import load_knowledge_base
from faq.schedule import tokyo_today
from faq.schema import FAQ, Contact

from .guards import Limits, SessionQuota, client_of
from .models import (
    AskRequest,
    AskResponse,
    ErrorResponse,
    FeedbackRequest,
    ContactsResponse,
    FeedbackResponse,
    Health,
    ScenarioPublic,
    SearchHitPublic,
    SearchResponse,
)

log = logging.getLogger("govfaq.web")
access_log = logging.getLogger("govfaq.access")
HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 16 * 1024
SESSION_COOKIE = "govfaq_session"
TOO_LARGE = "送信された内容が大きすぎます。"
TOO_MANY_LOGINS = (
    '<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>職員ログイン</title></head><body>'
    '<p role="alert">ログインの試行が多すぎます。{wait}秒後に<a href="/staff/login">もう一度</a>お試しください。</p>'
    "</body></html>"
)


class FaqPublic(FAQ):
    """One FAQ with what a page needs beside it."""

    contact_details: list[Contact] = []
    document_title: str = ""


SECURITY_HEADERS = {
    # Scripts and styles only from this service; no inline script, no framing.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413, detail=TOO_LARGE)


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, before they are read.

    A declared Content-Length over the limit is refused without reading a
    byte. A body without one (chunked) is counted as it arrives and refused
    as soon as it passes the limit, so nothing larger is ever held in memory.
    """

    def __init__(self, app, max_bytes: int, wider: dict[str, int] | None = None):
        self.app = app
        self.default_bytes = max_bytes
        self.wider = wider or {}  # path prefix -> its own limit (the staff edit form, web/staff_edit.py)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        max_bytes = next((n for prefix, n in self.wider.items() if path.startswith(prefix)), self.default_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            status = 413 if declared.isdigit() else 400
            detail = TOO_LARGE if status == 413 else "Content-Length が正しくありません。"
            await JSONResponse(status_code=status, content={"detail": detail}, headers=SECURITY_HEADERS)(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise BodyTooLarge()  # FastAPI lets an HTTPException from the body read through
            return message

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:  # read outside a route (nothing does today); still answer 413
            if started:
                raise
            await JSONResponse(status_code=413, content={"detail": TOO_LARGE}, headers=SECURITY_HEADERS)(scope, receive, send)


class AccessLog:
    """One line per request: method, path, status, milliseconds. Never the query string (`/?q=` and
    `/api/search?q=` carry residents' questions), nor the client's address; the path itself is masked
    (`/faqs/090-1234-5678` is logged as `/faqs/［電話番号］`). `govfaq serve` turns uvicorn's own access log,
    which prints the whole request line, off."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def tracked_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            # Control characters would let a crafted path forge log lines.
            path = "".join(c if c.isprintable() else "?" for c in mask_personal_data(scope.get("path", ""))[:300])
            access_log.info("%s %s %d %.1f ms", scope.get("method", "?"), path, status, (time.perf_counter() - started) * 1000)


class _State:
    def __init__(self) -> None:
        self.bot: Bot | None = None
        self.error: str | None = None  # why the index is not loaded, in public words (the details are in the log)
        self.skipped: set[Path] = set()  # builds this process found unusable; not tried again


def pick_up_new_index(state: _State, settings: Settings) -> bool:
    """Serve the index `current` points to, if another process built it (a staff reload in another
    worker, or `govfaq index build`): other workers then answer from the same content. Only an index
    built for exactly the content on disk is taken (its manifest is checked); True if swapped."""
    from index.engine import engine_from_settings

    old = state.bot
    if old is None:
        return False
    try:
        target = (settings.data_dir / "index" / "current").resolve(strict=True)
    except OSError:
        return False
    if target == old.engine.build_dir or target in state.skipped:
        return False
    try:
        kb = load_knowledge_base(settings.content_dir, settings.sources_dir).kb
        engine = engine_from_settings(kb, settings, embedder=old.engine.embedder).load(settings.data_dir)
    except Exception as exc:  # noqa: BLE001 - keep serving what we have
        state.skipped.add(target)
        log.warning("not switching to the index in %s: %s", target, exc)
        return False
    state.bot = Bot(engine, records=old.records, sessions=old.sessions)
    log.info("switched to the index in %s (%d FAQs)", target, len(kb.faqs))
    return True


def public_reason(exc: BaseException) -> str:
    """Why the service is not ready, for anyone who asks /readyz: a kind of failure, never a path or an
    exception's text (those go to the log)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, MemoryError):
            return "メモリが足りません"
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return "ディスクの空き容量が足りません"
        if isinstance(seen, OSError) and seen.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return "ファイルを読み書きできません"
        seen = seen.__cause__ or seen.__context__
    return "索引を読み込めませんでした"


def create_app(settings: Settings, bot: Bot | None = None) -> FastAPI:
    install_log_masking()  # every log record of this process, ours and uvicorn's, is masked from here on
    result = load_knowledge_base(settings.content_dir, settings.sources_dir)
    for problem in result.problems:
        # A broken file is reported, never fatal: the valid entries still serve.
        log.warning("content problem: %s", problem)
    kb = bot.kb if bot is not None else result.kb
    state = _State()
    state.bot = bot

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        # Write what the query log and feedback still hold in memory before the process goes.
        records = state.bot.records if state.bot is not None else None
        if records is not None:
            records.close()

    # No /docs or /redoc: FastAPI serves them from a CDN, and this service loads nothing from elsewhere.
    app = FastAPI(
        title="govfaq",
        description="国・地方共通相談チャットボット型 FAQ サービスの API",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = state

    def kb_now():
        """The knowledge base being served (a staff reload swaps it with the bot), as
        residents see it today: FAQs not yet published or retired are left out."""
        if state.bot is not None:
            return state.bot.served()
        return kb.in_force(tokyo_today())

    # Operators override a template with one of the same name in GOVFAQ_TEMPLATES_DIR, never in the data
    # folder the service writes. Every template renders in Jinja's sandbox: no attribute starting with _,
    # no unsafe callables, so an override can shape the page but cannot reach Python's internals (globals,
    # os, closures such as the staff token). It still sees the objects in its context: keep the folder
    # writable by the operator only.
    folders = [settings.templates_dir] if settings.templates_dir is not None else []
    loader = ChoiceLoader([FileSystemLoader(str(folder)) for folder in [*folders, HERE / "templates"]])
    templates = Jinja2Templates(env=SandboxedEnvironment(loader=loader, autoescape=True))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    if bot is None:

        def load() -> None:
            try:
                from bot.runtime import load_bot

                state.bot = load_bot(settings, kb=kb)  # the content read (and reported) above
                log.info("index loaded: %d FAQs", len(state.bot.kb.faqs))
            except Exception as exc:  # noqa: BLE001 - reported on /readyz, the process stays up
                log.exception("could not load the index")
                state.error = public_reason(exc)

        threading.Thread(target=load, name="govfaq-load", daemon=True).start()

    if bot is None and settings.index_poll_seconds > 0:

        def follow() -> None:
            while True:
                time.sleep(settings.index_poll_seconds)
                pick_up_new_index(state, settings)

        threading.Thread(target=follow, name="govfaq-follow-index", daemon=True).start()

    def ready_bot() -> Bot:
        if state.bot is None:
            raise HTTPException(status_code=503, detail="ただいま準備中です。しばらくしてからもう一度お試しください。")
        return state.bot

    limits = Limits(settings)  # staff accounts may appear at any time (govfaq staff add)
    app.state.limits = limits
    quota = SessionQuota(settings.max_sessions_per_client)

    def conversation(bot: Bot, request: Request, session_id: str | None):
        """The caller's conversation; a new one counts against the caller's cap (its oldest goes)."""
        session = bot.sessions.get(session_id)
        if session.id != session_id:
            for old in quota.admit(client_of(request), session.id):
                bot.sessions.drop(old)
        return session

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Per-client rate limits (one budget for every route that runs the bot, one for feedback), and
        the security headers on every response."""
        budget = limits.for_request(request.method, request.url.path, request.url.query)
        if budget is not None:
            # Counted in PostgreSQL, a hit is a round trip: not on the event loop.
            wait = await run_in_threadpool(budget.check, client_of(request)) if limits.shared else budget.check(client_of(request))
            if wait and budget is limits.staff_login:
                # Refused before the form is read or a template rendered: a flood of guesses costs
                # little more than as many /healthz requests.
                return HTMLResponse(TOO_MANY_LOGINS.format(wait=wait), status_code=429,
                                    headers={"Retry-After": str(wait), **SECURITY_HEADERS})
            if wait:
                return JSONResponse(
                    status_code=429,
                    content={"detail": "短い時間に多くの送信がありました。しばらくしてからもう一度お試しください。"},
                    headers={"Retry-After": str(wait), **SECURITY_HEADERS},
                )
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    # Outermost, so an over-long body is refused before anything else reads it.
    from web.staff_edit import FORM_BODY_LIMITS

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, wider=FORM_BODY_LIMITS)
    if settings.forwarded_allow_ips.strip():
        # Before the limits look at the address: X-Forwarded-For / -Proto count only from these proxies
        # (the rightmost address they did not add). `govfaq serve` turns uvicorn's own copy of this off.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    app.add_middleware(AccessLog)  # outside even that, so that a 413 is logged too

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            cause = exc.__cause__
            if isinstance(cause, BaseExceptionGroup) and cause.split(BodyTooLarge)[0] is not None:
                # The size limit tripped while reading a chunked body (wrapped by the middleware's task group).
                return JSONResponse(status_code=413, content={"detail": TOO_LARGE})
            # FastAPI's message for a body that is not UTF-8, nested too deeply, or otherwise unreadable.
            detail = "送信された内容を読み取れませんでした。UTF-8 の JSON で送ってください。"
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return JSONResponse(status_code=exc.status_code, content={"detail": detail}, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(status_code=422, content={"detail": f"入力が正しくありません（{where}: {first.get('msg', '')}）。"})

    def documented(*codes: int, page: bool = False) -> dict:
        """`responses=` for these status codes. Every error here, 422 included, is JSON {"detail": "…"} (the
        handlers above), never FastAPI's default validation body, so each is documented as ErrorResponse;
        on a page route (`page`) spelled out, since `model` would be documented as the route's text/html."""
        body: dict = {"model": ErrorResponse}
        if page:
            body = {"content": {"application/json": {"schema": ErrorResponse.model_json_schema()}}}
        extra = {429: {"headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}}}
        return {code: {**body, **extra.get(code, {})} for code in codes}

    # 400: a body that is not UTF-8 JSON (or a bad Content-Length); 413: BodyLimit; 429: the rate limits.
    errors = documented(400, 404, 413, 422, 503)
    rate_limited = documented(400, 413, 422, 429, 503)
    page_errors = documented(400, 413, 422, 429, page=True)

    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses={503: {"model": ErrorResponse}})
    def readyz() -> JSONResponse | Health:
        if state.bot is not None:
            return Health(status="ready")
        # Public: ready or not and a short reason, never a path or an exception (those are in the log).
        detail = "準備中です。" if state.error is None else f"準備できていません: {state.error}（詳細はサーバーのログにあります）"
        return JSONResponse(status_code=503, content={"detail": detail})

    @app.post("/api/ask", response_model=AskResponse, responses=rate_limited)
    def ask(body: AskRequest, request: Request) -> AskResponse:
        bot = ready_bot()
        session = conversation(bot, request, body.session_id)
        return AskResponse.model_validate(bot.reply(body.query, session).to_dict())

    @app.get("/api/scenarios", response_model=ScenarioPublic)
    def scenarios() -> ScenarioPublic:
        return ScenarioPublic.model_validate(scenario_view(kb_now()).__dict__)

    @app.get("/api/scenarios/{node}", response_model=ScenarioPublic, responses=errors)
    def scenario(node: str) -> ScenarioPublic:
        view = scenario_view(kb_now(), node)
        if view is None:
            raise HTTPException(status_code=404, detail=f"分野「{node}」は見つかりません。")
        return ScenarioPublic.model_validate(view.__dict__)

    def faq_public(faq_id: str) -> FaqPublic:
        current = kb_now()
        faq = current.get(faq_id)
        if faq is None:
            raise HTTPException(status_code=404, detail=f"FAQ「{faq_id}」は見つかりません。")
        return FaqPublic(
            **faq.model_dump(),
            contact_details=[current.contacts[c] for c in faq.contacts if c in current.contacts],
            document_title=current.document_title(faq.source.document),
        )

    @app.get("/api/faqs/{faq_id}", response_model=FaqPublic, responses=errors)
    def get_faq(faq_id: str) -> FaqPublic:
        return faq_public(faq_id)

    @app.get("/api/faq/{faq_id}", response_model=FaqPublic, responses=errors, include_in_schema=False)
    def get_faq_legacy(faq_id: str) -> FaqPublic:
        return faq_public(faq_id)

    @app.post("/api/feedback", response_model=FeedbackResponse, responses={**rate_limited, **documented(404)})
    def feedback(body: FeedbackRequest) -> FeedbackResponse:
        bot = ready_bot()
        if kb_now().get(body.faq_id) is None:
            raise HTTPException(status_code=404, detail=f"FAQ「{body.faq_id}」は見つかりません。")
        stored = bot.records.add_feedback(body.faq_id, body.helpful, body.comment, body.query_id) if bot.records else None
        if stored:
            return FeedbackResponse(stored=True, message="ご意見ありがとうございました。")
        return FeedbackResponse(stored=False, message="ご意見を記録できませんでした。")

    def render_chat(request: Request, q: str | None, node: str | None) -> HTMLResponse:
        view = scenario_view(kb_now(), node) or scenario_view(kb_now())
        reply = None
        session_id = request.cookies.get(SESSION_COOKIE)
        if q is not None:
            bot = state.bot
            if bot is None:
                reply = {"kind": "fallback", "answer": "ただいま準備中です。しばらくしてからもう一度お試しください。"}
            else:
                session = conversation(bot, request, session_id)
                session_id = session.id
                reply = bot.reply(q[:2000], session).to_dict()
        response = templates.TemplateResponse(
            request, "chat.html", {"view": view, "q": q, "reply": reply, "faq_count": len(kb_now().faqs)}
        )
        if session_id:
            response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax", max_age=settings.session_ttl_seconds,
                                secure=settings.https or request.url.scheme == "https")
        return response

    @app.get("/", response_class=HTMLResponse, responses=page_errors)
    def index(request: Request, q: str | None = None, node: str | None = None) -> HTMLResponse:
        return render_chat(request, q, node)

    @app.post("/", response_class=HTMLResponse, responses=page_errors)
    def index_post(request: Request, q: str = Form("")) -> HTMLResponse:
        return render_chat(request, q, None)

    @app.get("/api/search", response_model=SearchResponse, responses=rate_limited)
    def search(q: str = Query(min_length=1, max_length=500), field: str | None = Query(None, max_length=80)) -> SearchResponse:
        """The counter's lookup: the top 10 FAQs with their confidence and the words that matched."""
        bot = ready_bot()
        current = kb_now()
        only = {f.id for f in current.faqs if f.category[0] == field} if field else None
        result = bot.engine.search(q, k=10, only=only, today=bot.today())
        terms = [t for t in bot.engine.lexical.query_tokens(q) if not t.startswith(("##", "読:"))]
        hits = []
        for hit in result.hits:
            faq = current.get(hit.faq_id)
            text = (faq.question + faq.answer).casefold()
            source = bot.source_of(faq)
            hits.append(
                SearchHitPublic(
                    faq_id=faq.id, question=faq.question, answer=faq.answer, category=faq.category, program=faq.program,
                    score=round(hit.score, 4), matched_terms=[t for t in dict.fromkeys(terms) if t in text],
                    document_title=current.document_title(faq.source.document), section=faq.source.section,
                    source_label=source["label"], source_url=source["url"], updated=faq.updated.isoformat(),
                    deadlines=[s.text for s in bot.deadline_statuses(faq)],
                    contacts=[contact_line(current.contacts[c]).lstrip("・") for c in faq.contacts if c in current.contacts],
                    card_text=bot.answer_text(faq),
                )
            )
        return SearchResponse(query=q, confidence=round(result.confidence, 4), band=result.band, hits=hits)

    @app.get("/api/contacts", response_model=ContactsResponse, responses=documented(400, 413, 422, 503))
    def contacts(place: str = Query("", max_length=80)) -> ContactsResponse:
        """The きくみみ office for a prefecture or city; every office when no place is given."""
        places = ready_bot().places
        found = places.find(place) if place else None
        if found:
            offices = [places.office(found)] if places.office(found) else []
        else:
            offices = [] if place else list(places.offices.values())
        return ContactsResponse(
            place=found.name if found else None,
            prefecture=found.prefecture if found else None,
            offices=[o.model_dump(exclude_none=True) for o in offices],
        )

    @app.get("/counter", response_class=HTMLResponse)
    def counter(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "counter.html", {"fields": [n.title for n in kb_now().tree]})

    @app.get("/faqs/{faq_id}", response_class=HTMLResponse, responses={**page_errors, **documented(404, page=True)})
    def faq_page(request: Request, faq_id: str) -> HTMLResponse:
        faq = faq_public(faq_id)
        card = state.bot.answer_reply(kb_now().get(faq_id), None, 1.0, "answer").to_dict() if state.bot else None
        return templates.TemplateResponse(request, "faq.html", {"faq": faq, "card": card})

    @app.get("/sources", response_class=HTMLResponse)
    def sources_index(request: Request) -> HTMLResponse:
        """The shipped documents every answer cites."""
        docs = sorted(kb_now().sources.values(), key=lambda d: d.name)
        return templates.TemplateResponse(request, "sources.html", {"docs": docs, "doc": None})

    @app.get("/sources/{document}", response_class=HTMLResponse, responses={**page_errors, **documented(404, page=True)})
    def source_page(request: Request, document: str) -> HTMLResponse:
        """One document with a line anchor on every line (#L12). The passage holding the linked line
        is marked by the stylesheet (:target), so the page needs no script and no query string."""
        doc = kb_now().sources.get(document)
        if doc is None:
            raise HTTPException(status_code=404, detail=f"資料「{document}」は見つかりません。")
        lines = doc.lines
        parts = [[(n, lines[n - 1]) for n in range(first, last + 1)] for first, last in doc.passages]
        return templates.TemplateResponse(request, "sources.html", {"doc": doc, "parts": parts, "docs": None})

    from .resident import register_resident
    from .staff import register_staff

    register_resident(app, settings, state, templates, kb_now)  # ふりがな, やさしい日本語, feedback form, memo, widget

    register_staff(app, settings, state, templates)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory`: settings from the environment."""
    return create_app(get_settings())
