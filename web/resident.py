"""What residents and the counter see beyond the chat: ふりがな and やさしい日本語, feedback
without JavaScript, 「どれにも当てはまらない」, the 窓口持参メモ (print view with a QR code),
and the embeddable widget (/widget.js frames /embed).

`register_resident(app, ...)` adds the routes, the template filters and one ASGI
middleware; create_app calls it once. Everything a template shows from content goes
through `rich` (escaped; phone numbers and URLs as links; ruby when asked for).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import pass_context
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from markupsafe import Markup
from pydantic import BaseModel, Field

from bot.dialogue import NONE_OF_THESE
from bot.settings import Settings
from faq.loader import iter_tree_nodes

from .textfmt import Furigana, rich_text

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "govfaq_session"
PREFS = {"ruby": "govfaq_ruby", "easy": "govfaq_easy"}  # query parameter → cookie remembering it
PREF_SECONDS = 365 * 24 * 3600
BUSY = "短い時間に多くの送信がありました。しばらくしてからもう一度お試しください。"


def pref_on(request: Request, name: str) -> bool:
    """?ruby=1 / ?easy=1 on this request, else the remembered choice."""
    value = request.query_params.get(name)
    if value in ("0", "1"):
        return value == "1"
    return request.cookies.get(PREFS[name]) == "1"


def toggle_url(request: Request, name: str) -> str:
    """This page with the preference flipped (a link: works without JavaScript)."""
    params = dict(request.query_params)
    params[name] = "0" if pref_on(request, name) else "1"
    return request.url.path + "?" + urlencode(params)


def frame_ancestors(settings: Settings) -> str:
    return settings.embed_origins or "'none'"


class PrefsAndFraming:
    """ASGI middleware: remember ?ruby= / ?easy= in a cookie; let /embed be framed by the allowed origins only.

    Every other response keeps the app's X-Frame-Options DENY and frame-ancestors 'none'."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.ancestors = frame_ancestors(settings).encode()
        self.framable = bool(settings.embed_origins)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        cookies = [
            f"{cookie}={m.group(1)}; Max-Age={PREF_SECONDS}; Path=/; SameSite=Lax".encode()
            for name, cookie in PREFS.items()
            if (m := re.search(rf"(?:^|&){name}=([01])(?:&|$)", query))
        ]
        embed = scope["path"] == "/embed"

        async def patched(message):
            if message["type"] == "http.response.start":
                headers = []
                for key, value in message.get("headers", []):
                    if embed and key.lower() == b"x-frame-options" and self.framable:
                        continue  # frame-ancestors below decides; DENY would refuse the allowed origins too
                    if embed and key.lower() == b"content-security-policy":
                        value = re.sub(rb"frame-ancestors [^;]*", b"frame-ancestors " + self.ancestors, value)
                    headers.append((key, value))
                headers += [(b"set-cookie", c) for c in cookies]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, patched)


class FragmentRequest(BaseModel):
    query: str = Field("", max_length=2000)
    session_id: str | None = Field(None, max_length=100)
    none: bool = False  # 「どれにも当てはまらない」: the consultation windows


def qr_svg(url: str) -> Markup:
    """The URL as a QR code, inline SVG (no image request; no inline style, so the CSP holds)."""
    import segno

    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", xmldecl=False, svgns=True, scale=4, border=2, svgclass="qr", lineclass=None)
    svg = out.getvalue().decode()
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="このページのURLを示すQRコード" ', 1))


def register_resident(app: FastAPI, settings: Settings, state, templates, kb_now) -> None:
    furigana: dict[int, Furigana] = {}

    def furigana_for(kb) -> Furigana:
        # One cache per knowledge base: a staff reload with new readings starts a new one.
        if id(kb) not in furigana:
            furigana.clear()
            furigana[id(kb)] = Furigana(getattr(kb, "readings", {}))
        return furigana[id(kb)]

    @pass_context
    def rich(ctx, text) -> Markup:
        request = ctx.get("request")
        ruby = request is not None and pref_on(request, "ruby")
        return rich_text(text, furigana_for(kb_now()) if ruby else None)

    @pass_context
    def card_text(ctx, reply: dict) -> str:
        """The text of a reply card: the bot's text, with the easy_answer in place of the answer when asked
        for; for choices, only the question (the choices are the buttons, listed once)."""
        text = reply.get("answer") or ""
        if reply.get("kind") in ("candidates", "clarify") and (reply.get("candidates") or reply.get("choices")):
            return "\n".join(line for line in text.split("\n") if not line.startswith("・")).strip()
        request = ctx.get("request")
        faq = kb_now().get(reply.get("faq_id") or "")
        if faq and faq.easy_answer and request is not None and pref_on(request, "easy") and faq.answer.strip() in text:
            return text.replace(faq.answer.strip(), faq.easy_answer.strip(), 1)
        return text

    def reply_choices(reply: dict) -> list[dict]:
        """Buttons under a reply, each once: the bot's choices, else its candidates; then 「どれにも当てはまらない」."""
        out: list[dict] = []
        if reply.get("kind") in ("candidates", "clarify"):
            # The bot's own 「どれにも当てはまらない」 choice is the last button (offers_none), not the first.
            out += [{"label": c["label"], "query": c["query"]} for c in reply.get("choices") or [] if c["query"] != NONE_OF_THESE]
            if reply.get("kind") == "candidates":
                out += [{"label": c["question"], "query": c["question"]} for c in reply.get("candidates") or []]
        elif reply.get("choices"):
            out += [{"label": c["label"], "query": c["query"]} for c in reply["choices"]]
        seen, unique = set(), []
        for c in out:
            if c["label"] not in seen:
                seen.add(c["label"])
                unique.append(c)
        return unique

    def offers_none(reply: dict) -> bool:
        return reply.get("kind") in ("candidates", "clarify")

    def crumbs_for(faq) -> list[tuple[str, str]]:
        """(title, node id) from the top field down to the FAQ's category."""
        want = tuple(faq.category)
        best: list[tuple[str, str]] = []
        for titles, nodes in iter_tree_nodes(kb_now().tree):
            if want[: len(titles)] == titles and len(titles) > len(best):
                best = [(n.title, n.id) for n in nodes]
        return best

    env = templates.env
    env.filters["rich"] = rich
    env.globals.update(
        card_text=card_text, reply_choices=reply_choices, offers_none=offers_none, crumbs_for=crumbs_for,
        pref_on=pref_on, toggle_url=toggle_url, none_label=NONE_OF_THESE,
    )

    storage = MemoryStorage()
    window = MovingWindowRateLimiter(storage)
    ask_limit = parse(f"{settings.ask_rate_per_minute}/minute") if settings.ask_rate_per_minute else None
    feedback_limit = parse(f"{settings.feedback_rate_per_minute}/minute") if settings.feedback_rate_per_minute else None

    def allowed(limit, request: Request, what: str) -> bool:
        return limit is None or window.hit(limit, what, request.client.host if request.client else "unknown")

    def ready_bot():
        if state.bot is None:
            raise HTTPException(status_code=503, detail="ただいま準備中です。しばらくしてからもう一度お試しください。")
        return state.bot

    def fallback_reply(bot, session) -> dict:
        contacts = [c.model_dump(exclude_none=True) for c in bot.consultation_contacts(session)]
        return {"kind": "fallback", "answer": bot.fallback_text("当てはまるご質問がなかったときは、窓口にご相談ください。", session),
                "contacts": contacts, "faq_id": None}

    def reply_for(request: Request, query: str | None, session_id: str | None, none: bool = False):
        bot = state.bot
        if bot is None:
            return {"kind": "fallback", "answer": "ただいま準備中です。しばらくしてからもう一度お試しください。"}, session_id
        session = bot.sessions.get(session_id)
        if none:
            return fallback_reply(bot, session), session.id
        return bot.reply((query or "")[:2000], session).to_dict(), session.id

    def with_session(response: Response, session_id: str | None) -> Response:
        if session_id:
            response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax", max_age=settings.session_ttl_seconds)
        return response

    @app.post("/fragments/reply", response_class=HTMLResponse, include_in_schema=False)
    def fragment(request: Request, body: FragmentRequest) -> Response:
        """A reply card as HTML, rendered by the same template as the page without JavaScript."""
        if not allowed(ask_limit, request, "ask"):
            return HTMLResponse(f'<article class="bot"><p>{BUSY}</p></article>', status_code=429, headers={"Retry-After": "60"})
        session_id = body.session_id or request.cookies.get(SESSION_COOKIE)
        reply, session_id = reply_for(request, body.query, session_id, none=body.none)
        response = templates.TemplateResponse(request, "_reply.html", {"reply": reply, "embedded": request.query_params.get("embed") == "1"})
        response.headers["X-Govfaq-Session"] = session_id or ""
        return with_session(response, session_id)

    @app.get("/none", response_class=HTMLResponse, include_in_schema=False)
    def none_of_these(request: Request) -> Response:
        """「どれにも当てはまらない」 without JavaScript: the consultation windows."""
        from bot.scenario import scenario_view

        reply, session_id = reply_for(request, None, request.cookies.get(SESSION_COOKIE), none=True)
        view = scenario_view(kb_now())
        response = templates.TemplateResponse(
            request, "chat.html", {"view": view, "q": NONE_OF_THESE, "reply": reply, "faq_count": len(kb_now().faqs)}
        )
        return with_session(response, session_id)

    @app.post("/feedback", include_in_schema=False)
    def feedback_form(
        request: Request,
        faq_id: str = Form(max_length=80),
        helpful: str = Form("0", max_length=1),
        comment: str = Form("", max_length=1000),
        query_id: str = Form("", max_length=36),  # the UUID the query log made for the answer
    ) -> Response:
        """Feedback as a plain form post (no JavaScript): stored, then back to the FAQ's page with a thank-you."""
        if not allowed(feedback_limit, request, "feedback"):
            return HTMLResponse(f"<!doctype html><html lang=ja><title>お待ちください</title><p>{BUSY}</p>"
                                f'<p><a href="/faqs/{faq_id if kb_now().get(faq_id) else ""}">戻る</a></p>',
                                status_code=429, headers={"Retry-After": "60"})
        bot = ready_bot()
        if kb_now().get(faq_id) is None:
            raise HTTPException(status_code=404, detail=f"FAQ「{faq_id}」は見つかりません。")
        good = helpful == "1"
        stored = None
        if bot.records:
            stored = bot.records.add_feedback(faq_id, good, None if good else (comment.strip() or None),
                                              query_id if re.fullmatch(r"[0-9a-f-]{1,36}", query_id) else None)
        return RedirectResponse(f"/faqs/{faq_id}?thanks={'1' if stored else '0'}#feedback-{faq_id}", status_code=303)

    @app.get("/faqs/{faq_id}/memo", response_class=HTMLResponse, include_in_schema=False)
    def memo(request: Request, faq_id: str, place: str = "") -> Response:
        """窓口持参メモ: what a visitor brings to the counter, printed on one sheet."""
        current = kb_now()
        faq = current.get(faq_id)
        if faq is None:
            raise HTTPException(status_code=404, detail=f"FAQ「{faq_id}」は見つかりません。")
        bot = state.bot
        office = None
        if bot is not None:
            found = bot.places.find(place[:80]) if place else None
            if found is None and request.cookies.get(SESSION_COOKIE):
                session = bot.sessions.get(request.cookies.get(SESSION_COOKIE))
                office = current.contacts.get(session.office_id) if session.office_id else None
            else:
                office = bot.places.office(found)
        statuses = bot.deadline_statuses(faq) if bot is not None else []
        url = str(request.url_for("faq_page", faq_id=faq.id))
        context = {
            "faq": faq, "statuses": statuses, "url": url, "qr": qr_svg(url), "office": office, "place": place,
            "contacts": [current.contacts[c] for c in faq.contacts if c in current.contacts],
            "document_title": current.document_title(faq.source.document),
        }
        return templates.TemplateResponse(request, "memo.html", context)

    def render_embed(request: Request, q: str | None) -> Response:
        reply, session_id = (None, request.cookies.get(SESSION_COOKIE))
        if q is not None:
            reply, session_id = reply_for(request, q, session_id)
        response = templates.TemplateResponse(request, "embed.html", {"q": q, "reply": reply, "embedded": True})
        return with_session(response, session_id)

    @app.get("/embed", response_class=HTMLResponse, include_in_schema=False)
    def embed(request: Request, q: str | None = None) -> Response:
        """The compact chat a municipality's page shows in the widget's frame."""
        return render_embed(request, q[:2000] if q is not None else None)

    @app.post("/embed", response_class=HTMLResponse, include_in_schema=False)
    def embed_post(request: Request, q: str = Form("", max_length=2000)) -> Response:
        return render_embed(request, q)

    widget = (HERE / "static" / "widget.js").read_text(encoding="utf-8")

    @app.get("/widget.js", include_in_schema=False)
    def widget_js() -> Response:
        """The script a municipality adds to its pages: <script src="https://…/widget.js" defer></script>."""
        return Response(widget, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})

    app.add_middleware(PrefsAndFraming, settings=settings)
