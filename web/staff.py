"""Staff pages (/staff): for the people who maintain the FAQ files.

Off unless a staff account exists (bot/accounts.py) or GOVFAQ_STAFF_TOKEN is set: every staff
route then answers 404. The token logs in only while no account exists (the bootstrap).
The token is compared in constant time; a login lasts staff_session_seconds;
every form carries a CSRF token tied to the login (and the login form a
double-submit cookie). Wrong guesses are answered at once, never slept on:
past GOVFAQ_STAFF_LOGIN_ATTEMPTS_PER_MINUTE from one client, or
GOVFAQ_STAFF_LOGIN_GLOBAL_PER_MINUTE from everyone, a login gets 429 with
Retry-After (web/guards.py). Over https (GOVFAQ_PUBLIC_URL, or
X-Forwarded-Proto from a trusted proxy) the cookies are Secure and named
`__Host-…`, so neither a plain-http page nor another subdomain can set
them. Logins live in the shared database beside the conversations (a SQLite
file, or PostgreSQL with GOVFAQ_DATABASE_URL), so every worker and instance honours them. A reload rebuilds in the background and swaps the bot
only when the new content has no problem and the index built: a failed
reload keeps the old index serving and shows why.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from bot.privacy import mask_personal_data
from bot.session import shared_state

from .guards import client_of

log = logging.getLogger("govfaq.staff")
COOKIE = "govfaq_staff"
LOGIN_CSRF_COOKIE = "govfaq_login_csrf"


@dataclass
class ReloadStatus:
    state: str = "idle"  # idle | running | done | failed
    step: str = ""
    errors: list[str] = field(default_factory=list)
    finished: float | None = None


STAFF_SCHEMA = """
CREATE TABLE IF NOT EXISTS staff_sessions (
    id_hash TEXT PRIMARY KEY,       -- sha256 of the cookie: the file never holds a usable login
    expires REAL NOT NULL,          -- seconds since the epoch
    csrf TEXT NOT NULL
);
"""


class StaffSessions:
    """Staff logins: in the shared database when given one (a SQLite file's path or a bot.storage
    Database: every worker honours a login and a logout), otherwise, or while it is unavailable, in
    this process's memory."""

    def __init__(self, ttl: float, store=None, clock=time.time):
        self.ttl = ttl
        self.clock = clock
        self.db = shared_state(store, STAFF_SCHEMA) if store is not None else None
        self._memory: dict[str, tuple[float, str]] = {}  # id hash -> (expires, csrf)
        self._lock = threading.Lock()

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(sid.encode()).hexdigest()

    def create(self) -> tuple[str, str]:
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        key, expires = self._key(sid), self.clock() + self.ttl

        def store(conn):
            conn.execute("DELETE FROM staff_sessions WHERE expires < ?", (self.clock(),))
            conn.execute("INSERT INTO staff_sessions (id_hash, expires, csrf) VALUES (?, ?, ?)", (key, expires, csrf))
            return True

        if not (self.db and self.db.run(store)):
            with self._lock:
                self._memory[key] = (expires, csrf)
        return sid, csrf

    def csrf_for(self, sid: str | None) -> str | None:
        """The CSRF token of a live login, or None (unknown, logged out or expired)."""
        if not sid:
            return None
        key, now = self._key(sid), self.clock()
        with self._lock:
            entry = self._memory.get(key)
            if entry is not None and entry[0] < now:
                del self._memory[key]
                entry = None
        if entry is None and self.db is not None:
            row = self.db.run(
                lambda c: c.execute("SELECT expires, csrf FROM staff_sessions WHERE id_hash = ?", (key,)).fetchone(),
                write=False,
            )
            entry = None if row is None else (row["expires"], row["csrf"])
        if entry is None or entry[0] < now:
            return None
        return entry[1]

    def drop(self, sid: str | None) -> None:
        if not sid:
            return
        key = self._key(sid)
        with self._lock:
            self._memory.pop(key, None)
        if self.db is not None:
            self.db.run(lambda c: c.execute("DELETE FROM staff_sessions WHERE id_hash = ?", (key,)))


def masked_insights(insights: dict) -> dict:
    """The insights with every resident's text masked again on its way to the page. Text is masked before
    it is stored; this also covers rows stored by an older version with weaker masking (masking twice
    changes nothing)."""
    for group in insights.get("unanswered", []):
        group["example"] = mask_personal_data(group["example"])
        group["queries"] = [mask_personal_data(q) for q in group["queries"]]
    for row in insights.get("unhelpful", []):
        row["comment"] = mask_personal_data(row["comment"]) if row.get("comment") else row.get("comment")
        row["query"] = mask_personal_data(row["query"]) if row.get("query") else row.get("query")
    return insights


def svg_answer_rate(by_day: list[dict], width: int = 640, height: int = 160) -> str:
    """Answer rate by day as an inline SVG bar chart: no script, no external service."""
    if not by_day:
        return ""
    bar = max(4, min(40, (width - 40) // len(by_day)))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height + 30}" '
             f'aria-label="日別の回答率">']
    parts.append(f'<line x1="30" y1="{height}" x2="{width}" y2="{height}" stroke="#4a4a4a"/>')
    for i, row in enumerate(by_day):
        rate = (row["answered"] or 0) / row["asked"] if row["asked"] else 0.0
        h = int(rate * (height - 10))
        x = 32 + i * bar
        label = f'{row["day"]}: {rate:.0%}（{row["answered"]}/{row["asked"]}）'
        parts.append(f'<rect x="{x}" y="{height - h}" width="{bar - 2}" height="{h}" fill="#0b57a4"><title>{label}</title></rect>')
    parts.append(f'<text x="30" y="{height + 20}" font-size="12">{by_day[0]["day"]}</text>')
    parts.append(f'<text x="{width - 80}" y="{height + 20}" font-size="12">{by_day[-1]["day"]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def staff_login_store(settings):
    """Where staff logins live: beside the conversations (None: in each process's memory)."""
    if settings.session_store == "memory":
        return None
    from bot.runtime import sessions_path
    from bot.storage import database_for

    return database_for(settings, sessions_path(settings).name, STAFF_SCHEMA)


def register_staff(app: FastAPI, settings, state, templates) -> None:
    token = settings.staff_token.get_secret_value() if settings.staff_token else None
    sessions = StaffSessions(settings.staff_session_seconds, staff_login_store(settings))
    app.state.staff_sessions = sessions
    status = ReloadStatus()
    app.state.staff_status = status

    limits = app.state.limits
    from bot.accounts import BOOTSTRAP, Accounts, accounts_store

    accounts = Accounts(accounts_store(settings))
    app.state.staff_accounts = accounts

    def identify(name: str, password: str) -> str | None:
        """Who these credentials are: a person's account, or (only while no account exists) the
        shared token as the bootstrap approver. bot/accounts.py says why."""
        if accounts.any():
            account = accounts.verify(name.strip(), password)
            return account.name if account else None
        if token is not None and hmac.compare_digest(password.encode(), token.encode()):
            return BOOTSTRAP
        return None

    def over_https(request: Request) -> bool:
        return settings.https or request.url.scheme == "https"

    def cookie_name(request: Request, base: str) -> str:
        # __Host-: the browser takes it only over https, for this host and path /, with no Domain.
        return f"__Host-{base}" if over_https(request) else base

    def set_cookie(response: Response, request: Request, base: str, value: str, **extra) -> None:
        response.set_cookie(cookie_name(request, base), value, httponly=True, samesite="strict", path="/",
                            secure=over_https(request), **extra)

    def delete_cookie(response: Response, request: Request, base: str) -> None:
        response.delete_cookie(cookie_name(request, base), path="/", secure=over_https(request), httponly=True,
                               samesite="strict")

    def login_page(request: Request, error: str | None, status_code: int = 200) -> Response:
        csrf = secrets.token_urlsafe(32)
        response = templates.TemplateResponse(request, "staff_login.html", {"csrf": csrf, "error": error}, status_code=status_code)
        set_cookie(response, request, LOGIN_CSRF_COOKIE, csrf)
        return response

    def enabled() -> None:
        if token is None and not accounts.any():
            raise HTTPException(status_code=404, detail="見つかりません。")

    def logged_in(request: Request) -> tuple[str, str] | None:
        sid = request.cookies.get(cookie_name(request, COOKIE))
        csrf = sessions.csrf_for(sid)
        return (sid, csrf) if csrf else None

    def require(request: Request, csrf: str | None = None) -> tuple[str, str]:
        enabled()
        login = logged_in(request)
        if login is None:
            raise HTTPException(status_code=401, detail="ログインしてください。")
        # Prevent cross-site form posts: the form must echo this login's token.
        if csrf is not None and not hmac.compare_digest(csrf.encode(), login[1].encode()):
            raise HTTPException(status_code=403, detail="フォームの有効期限が切れました。ページを開き直してください。")
        return login

    @app.get("/staff/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> Response:
        enabled()
        return login_page(request, None)

    # Counted, and refused past the limits, in web/app.py's guard before this runs. async, and nothing
    # in it waits: a guess takes no worker thread and no time from anyone else's request.
    @app.post("/staff/login", response_class=HTMLResponse, include_in_schema=False)
    async def login(request: Request, password: str = Form(""), csrf: str = Form(""), name: str = Form("")) -> Response:
        enabled()
        client = client_of(request)
        cookie = request.cookies.get(cookie_name(request, LOGIN_CSRF_COOKIE), "")
        csrf_ok = bool(cookie) and hmac.compare_digest(cookie.encode(), csrf.encode())
        # Prevent timing attacks: the token in constant time, passwords through argon2 (off the event loop).
        who = await run_in_threadpool(identify, name, password) if csrf_ok else None
        if who:
            limits.staff_login.clear(client)
            sid, _ = await run_in_threadpool(sessions.create)  # SQLite: off the event loop
            await run_in_threadpool(accounts.own, sid, who)
            await run_in_threadpool(accounts.audit, who, "login")
            response = RedirectResponse("/staff", status_code=303)
            set_cookie(response, request, COOKIE, sid, max_age=settings.staff_session_seconds)
            delete_cookie(response, request, LOGIN_CSRF_COOKIE)
            return response
        await run_in_threadpool(accounts.audit, name.strip()[:40] or "(名前なし)", "failed login")
        return login_page(request, "パスワードが違います。", 401)

    @app.post("/staff/logout", include_in_schema=False)
    def logout(request: Request, csrf: str = Form("")) -> Response:
        sid, _ = require(request, csrf)
        accounts.audit(accounts.owner(sid) or "?", "logout")
        sessions.drop(sid)
        accounts.disown(sid)
        response = RedirectResponse("/staff/login", status_code=303)
        delete_cookie(response, request, COOKIE)
        return response

    @app.get("/staff", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(request: Request) -> Response:
        enabled()
        login = logged_in(request)
        if login is None:
            return RedirectResponse("/staff/login", status_code=303)
        staff = who_is(request)
        from faq.loader import load_knowledge_base

        from faq.schedule import scheduled, tokyo_today

        # As `govfaq faq check` does: an answer changed since the last commit while `updated` was not.
        check = load_knowledge_base(settings.content_dir, settings.sources_dir, compare_with_commit=True)
        kb = state.bot.kb if state.bot else check.kb
        by_field = [(node.title, len(kb.faqs_under((node.title,))), node.id) for node in kb.tree]
        records = state.bot.records if state.bot else None
        insights = masked_insights(records.insights()) if records else {"unanswered": [], "unhelpful": [], "top": [], "by_day": []}
        top = [(row["faq_id"], kb.get(row["faq_id"]).question if kb.get(row["faq_id"]) else row["faq_id"], row["n"]) for row in insights["top"]]
        return templates.TemplateResponse(
            request,
            "staff.html",
            {
                "csrf": login[1], "problems": [str(p) for p in check.problems], "by_field": by_field,
                "warnings": [str(p) for p in check.warnings], "scheduled": scheduled(check.kb, tokyo_today()),
                "faq_count": len(kb.faqs), "insights": insights, "top": top,
                "plot": svg_answer_rate(insights["by_day"]), "status": status,
                "staff": staff, "suggest": suggest_for(insights), "kb": kb,
            },
        )

    @app.post("/staff/reload", include_in_schema=False)
    def reload(request: Request, csrf: str = Form("")) -> Response:
        staff = who_is(request, "approver", csrf)
        accounts.audit(staff.name, "reload")
        start_reload()
        return RedirectResponse("/staff", status_code=303)

    def start_reload() -> None:
        if status.state != "running":
            status.state, status.step, status.errors, status.finished = "running", "内容を検証しています", [], None
            threading.Thread(target=_reload, name="govfaq-reload", daemon=True).start()

    def _reload() -> None:
        from bot.dialogue import Bot
        from bot.runtime import load_engine
        from faq.loader import load_knowledge_base

        try:
            check = load_knowledge_base(settings.content_dir, settings.sources_dir)
            if check.problems:
                status.state, status.errors = "failed", [str(p) for p in check.problems]
                status.step = "内容に問題があるため再読み込みを中止しました（現在の索引で回答を続けています）"
                return
            status.step = "索引を作成しています"
            old = state.bot
            # The content just validated, not read again; the model already loaded, not a second copy.
            engine = load_engine(settings, kb=check.kb, embedder=old.engine.embedder if old else None)
            state.bot = Bot(engine, records=old.records if old else None, sessions=old.sessions if old else None)
            status.state, status.step = "done", f"再読み込みしました（{len(engine.kb.faqs)}件）"
        except Exception as exc:  # noqa: BLE001 - a failed rebuild keeps the old index serving
            log.exception("reload failed")
            status.state, status.errors = "failed", [f"{type(exc).__name__}: {exc}"]
            status.step = "索引の作成に失敗しました（現在の索引で回答を続けています）"
        finally:
            status.finished = time.time()

    from .staff_edit import register_staff_edit

    who_is, suggest_for = register_staff_edit(app, settings, state, templates, require, accounts, start_reload)

    @app.get("/staff/export.csv", include_in_schema=False)
    def export(request: Request) -> Response:
        require(request)
        from faq.govbot_csv import export_csv
        from faq.loader import load_knowledge_base

        kb = state.bot.kb if state.bot else load_knowledge_base(settings.content_dir, settings.sources_dir).kb
        return Response(
            export_csv(kb.faqs),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="govbot_faq.csv"'},
        )
