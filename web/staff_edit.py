"""Staff pages for editing FAQs in the browser (issue 15, parts 1, 2 and 4).

- /staff/faqs/{id}: the FAQ, its form (editors), its history (git) with a revert per change
- /staff/drafts/{n}: a draft's diff against what is published; approvers publish or discard
- /staff/audit: who did what and when; /staff/password: the first password of an account
- /staff/insights.csv: the insights as CSV (cells that would start a formula are defused)

Roles (bot/accounts.py): a viewer reads; an editor also saves drafts (edit, new FAQ, revert,
paraphrase); an approver also publishes, discards and reloads. A route refuses with 403 before
it reads or changes anything. Every form carries the login's CSRF token (web/staff.py).
Publishing writes the YAML file and commits it (faq/publish.py), then starts the same
background reload as the reload button, which keeps the old index serving if anything fails.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.accounts import BOOTSTRAP, AccountError, Accounts
from faq.drafts import KINDS, Drafts, check_entry, deadlines_text, diff, entry_from_form, raw_entry
from faq.govbot_csv import _defuse
from faq.history import change_in, changes_of
from faq.publish import PublishError, entry_in_file, publish, remove

MAX_FORM_FIELD = 20_000
# A form field is URL-encoded, 9 bytes for each Japanese character: the longest answer (4000) and
# easy_answer (2000) with paraphrases and the rest take ~60 KB. Only these forms get the wider limit;
# residents' routes keep web/app.py's 16 KB.
FORM_BODY_LIMITS = {"/staff/faqs": 256 * 1024}


@dataclass(frozen=True)
class Staff:
    name: str
    role: str
    csrf: str
    sid: str
    must_change: bool = False

    def can(self, role: str) -> bool:
        from bot.accounts import ROLES

        return ROLES.index(self.role) >= ROLES.index(role)


def register_staff_edit(app: FastAPI, settings, state, templates, require, accounts: Accounts, start_reload):
    from bot.accounts import accounts_path

    # Drafts stay in this host's staff.sqlite3 even with GOVFAQ_DATABASE_URL (faq/drafts.py is SQLite only):
    # route /staff to one host, as the README says.
    drafts = Drafts(accounts_path(settings))

    def who_is(request: Request, role: str = "viewer", csrf: str | None = None, password_page: bool = False) -> Staff:
        """The person logged in, if their role reaches `role` (403 otherwise). An account still on
        its one-time password is sent to the password form, whatever it asked for."""
        sid, token = require(request, csrf)
        name = accounts.owner(sid)
        if name == BOOTSTRAP and not accounts.any():
            staff = Staff(BOOTSTRAP, "approver", token, sid)
        else:
            account = accounts.get(name) if name else None
            if account is None or account.disabled:
                raise HTTPException(status_code=401, detail="ログインしてください。")
            staff = Staff(account.name, account.role, token, sid, account.must_change)
        if staff.must_change and not password_page:
            if request.method == "GET":
                raise HTTPException(status_code=303, headers={"Location": "/staff/password"})
            raise HTTPException(status_code=403, detail="まずパスワードを変更してください。")
        if not staff.can(role):
            raise HTTPException(status_code=403, detail="この操作の権限がありません。")
        return staff

    def kb():
        if state.bot is not None:
            return state.bot.kb
        from faq.loader import load_knowledge_base

        return load_knowledge_base(settings.content_dir, settings.sources_dir).kb

    def suggest_for(insights: dict) -> dict[str, list[tuple[str, str]]]:
        """Top 3 FAQs the engine finds for each group of unanswered questions (example -> (id, question))."""
        out = {}
        bot = state.bot
        if bot is None:
            return out
        for group in insights.get("unanswered", [])[:30]:
            try:
                hits = bot.engine.search(group["example"], k=3).hits
            except Exception:  # noqa: BLE001 - a suggestion is optional
                hits = []
            out[group["example"]] = [(h.faq_id, bot.kb.get(h.faq_id).question) for h in hits[:3] if bot.kb.get(h.faq_id)]
        return out

    async def form_of(request: Request) -> dict:
        form = await request.form()
        data = {k: str(v)[:MAX_FORM_FIELD] for k, v in form.items() if k != "contacts_list"}
        data["contacts_list"] = [str(v) for v in form.getlist("contacts_list")]
        return data

    def categories(base):
        from faq.loader import iter_tree

        return [" > ".join(path) for path, _ in iter_tree(base.tree) if len(path) >= 2]

    def edit_page(request, staff: Staff, entry: dict, new: bool, problems=(), status_code=200, draft_id=None):
        base = kb()
        return templates.TemplateResponse(request, "staff_faq.html", {
            "csrf": staff.csrf, "staff": staff, "entry": entry, "new": new, "problems": list(problems),
            "categories": categories(base), "contacts": sorted(base.contacts.values(), key=lambda c: c.id),
            "documents": sorted(base.sources), "deadlines": deadlines_text(entry.get("deadlines", [])),
            "history": [] if new else changes_of(settings.content_dir, entry.get("id", "")),
            "when": lambda t: dt.datetime.fromtimestamp(t, dt.timezone(dt.timedelta(hours=9))).strftime("%Y-%m-%d %H:%M"),
            "drafts": [d for d in drafts.open() if d.faq_id == entry.get("id")], "saved": draft_id,
        }, status_code=status_code)

    def today() -> str:
        from faq.schedule import tokyo_today

        return tokyo_today().isoformat()

    @app.get("/staff/faqs", response_class=HTMLResponse, include_in_schema=False)
    def faq_list(request: Request) -> Response:
        staff = who_is(request)
        return templates.TemplateResponse(request, "staff_faqs.html", {
            "csrf": staff.csrf, "staff": staff, "faqs": kb().faqs, "drafts": drafts.open(), "kinds": KINDS})

    @app.get("/staff/faqs/new", response_class=HTMLResponse, include_in_schema=False)
    def new_form(request: Request, q: str = "") -> Response:
        staff = who_is(request, "editor")
        return edit_page(request, staff, {"question": q[:300], "updated": today()}, new=True)

    @app.post("/staff/faqs/new", response_class=HTMLResponse, include_in_schema=False)
    async def new_save(request: Request) -> Response:
        form = await form_of(request)
        staff = who_is(request, "editor", form.get("csrf", ""))
        entry = entry_from_form(form, None)
        return save(request, staff, entry, new=True, kind="new")

    @app.get("/staff/faqs/{faq_id}", response_class=HTMLResponse, include_in_schema=False)
    def faq_page(request: Request, faq_id: str) -> Response:
        staff = who_is(request)
        faq = kb().get(faq_id)
        if faq is None:
            raise HTTPException(status_code=404, detail="見つかりません。")
        entry = raw_entry(faq) | {"updated": today()}
        return edit_page(request, staff, entry, new=False, draft_id=request.query_params.get("saved"))

    @app.post("/staff/faqs/{faq_id}", response_class=HTMLResponse, include_in_schema=False)
    async def faq_save(request: Request, faq_id: str) -> Response:
        form = await form_of(request)
        staff = who_is(request, "editor", form.get("csrf", ""))
        faq = kb().get(faq_id)
        if faq is None:
            raise HTTPException(status_code=404, detail="見つかりません。")
        entry = entry_from_form(form | {"id": faq_id}, raw_entry(faq))
        return save(request, staff, entry, new=False, kind="edit")

    def save(request, staff: Staff, entry: dict, new: bool, kind: str, note: str | None = None) -> Response:
        problems = check_entry(entry, kb(), new=new)
        if problems:
            return edit_page(request, staff, entry, new, problems, status_code=422)
        draft_id = drafts.save(entry, kind, staff.name, note)
        accounts.audit(staff.name, "draft saved", entry["id"], f"#{draft_id} {kind}")
        return RedirectResponse(f"/staff/drafts/{draft_id}", status_code=303)

    @app.post("/staff/faqs/{faq_id}/revert", include_in_schema=False)
    async def revert(request: Request, faq_id: str) -> Response:
        form = await form_of(request)
        staff = who_is(request, "editor", form.get("csrf", ""))
        commit_id = form.get("commit", "")[:64]
        current = kb().get(faq_id)
        change = change_in(settings.content_dir, commit_id, faq_id)
        if current is None or change is None:
            raise HTTPException(status_code=404, detail="この FAQ を変えた変更が見つかりません。")
        note = f"revert {commit_id[:12]}"
        if change.before is None:
            # The commit created the FAQ: undoing it takes the FAQ out, reviewed like any change.
            draft_id = drafts.save(raw_entry(current), "delete", staff.name, note)
            accounts.audit(staff.name, "draft saved", faq_id, f"#{draft_id} delete")
            return RedirectResponse(f"/staff/drafts/{draft_id}", status_code=303)
        from pydantic import ValidationError

        from faq.schema import FAQ

        try:
            entry = raw_entry(FAQ.model_validate(change.before)) | {"updated": today()}
        except ValidationError:
            entry = dict(change.before) | {"updated": today()}  # the checker in save() says what is wrong
        return save(request, staff, entry, new=False, kind="revert", note=note)

    @app.post("/staff/drafts/paraphrase", include_in_schema=False)
    async def paraphrase(request: Request) -> Response:
        form = await form_of(request)
        staff = who_is(request, "editor", form.get("csrf", ""))
        faq = kb().get(form.get("faq_id", ""))
        text = form.get("text", "").strip()[:300]
        if faq is None or not text:
            raise HTTPException(status_code=404, detail="見つかりません。")
        entry = raw_entry(faq)
        entry["alt_questions"] = list(entry.get("alt_questions", [])) + [text]
        from faq.drafts import ordered

        return save(request, staff, ordered(entry | {"updated": today()}), new=False, kind="paraphrase")

    @app.get("/staff/drafts/{draft_id}", response_class=HTMLResponse, include_in_schema=False)
    def draft_page(request: Request, draft_id: int) -> Response:
        staff = who_is(request)
        draft = drafts.get(draft_id)
        if draft is None:
            raise HTTPException(status_code=404, detail="見つかりません。")
        current = entry_in_file(settings.content_dir, draft.faq_id)
        if current is None and kb().get(draft.faq_id) is not None:
            current = raw_entry(kb().get(draft.faq_id))
        after = None if draft.kind == "delete" else draft.entry
        return templates.TemplateResponse(request, "staff_draft.html", {
            "csrf": staff.csrf, "staff": staff, "draft": draft, "kinds": KINDS,
            "diff": diff(current, after, draft.faq_id),
        })

    @app.post("/staff/drafts/{draft_id}/publish", include_in_schema=False)
    async def publish_draft(request: Request, draft_id: int) -> Response:
        form = await form_of(request)
        staff = who_is(request, "approver", form.get("csrf", ""))
        draft = drafts.get(draft_id)
        if draft is None or draft.state != "open":
            raise HTTPException(status_code=409, detail="この下書きはすでに処理されています。")
        base = kb()
        problems = [] if draft.kind == "delete" else check_entry(draft.entry, base, new=base.get(draft.faq_id) is None)
        if problems:
            raise HTTPException(status_code=422, detail="下書きが検証を通りません: " + " / ".join(problems))
        if draft.kind == "delete" and base.get(draft.faq_id) is None:
            raise HTTPException(status_code=409, detail=f"FAQ {draft.faq_id} はすでにありません。")
        try:
            if draft.kind == "delete":
                commit_id = remove(settings.content_dir, draft.faq_id, draft.author, staff.name, KINDS["revert"])
            else:
                commit_id = publish(settings.content_dir, base, draft.entry, draft.author, staff.name,
                                    KINDS[draft.kind])
        except PublishError as exc:
            raise HTTPException(status_code=500, detail=str(exc)) from exc
        drafts.decide(draft_id, "published", staff.name, commit_id)
        accounts.audit(staff.name, "published", draft.faq_id, f"#{draft_id} {commit_id[:12]}")
        start_reload()
        return RedirectResponse("/staff", status_code=303)

    @app.post("/staff/drafts/{draft_id}/discard", include_in_schema=False)
    async def discard_draft(request: Request, draft_id: int) -> Response:
        form = await form_of(request)
        staff = who_is(request, "editor", form.get("csrf", ""))
        draft = drafts.get(draft_id)
        if draft is None:
            raise HTTPException(status_code=404, detail="見つかりません。")
        if not (staff.can("approver") or draft.author == staff.name):
            raise HTTPException(status_code=403, detail="この操作の権限がありません。")
        if drafts.decide(draft_id, "discarded", staff.name):
            accounts.audit(staff.name, "discarded", draft.faq_id, f"#{draft_id}")
        return RedirectResponse("/staff/faqs", status_code=303)

    @app.get("/staff/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(request: Request) -> Response:
        staff = who_is(request)
        return templates.TemplateResponse(request, "staff_audit.html", {
            "csrf": staff.csrf, "staff": staff, "rows": accounts.audit_rows(), "accounts": accounts.list()})

    @app.get("/staff/password", response_class=HTMLResponse, include_in_schema=False)
    def password_form(request: Request) -> Response:
        staff = who_is(request, password_page=True)
        return templates.TemplateResponse(request, "staff_password.html", {"csrf": staff.csrf, "staff": staff, "error": None})

    @app.post("/staff/password", response_class=HTMLResponse, include_in_schema=False)
    async def password_set(request: Request) -> Response:
        form = await form_of(request)
        staff = who_is(request, csrf=form.get("csrf", ""), password_page=True)
        if staff.name == BOOTSTRAP:
            raise HTTPException(status_code=403, detail="共有トークンにはパスワードを設定できません（govfaq staff add を使ってください）。")
        error = None
        if form.get("password", "") != form.get("again", ""):
            error = "2つのパスワードが一致しません。"
        elif staff.must_change is False and accounts.verify(staff.name, form.get("current", "")) is None:
            error = "今のパスワードが違います。"
        else:
            try:
                accounts.set_password(staff.name, form.get("password", ""))
            except AccountError as exc:
                error = str(exc)
        if error:
            return templates.TemplateResponse(request, "staff_password.html",
                                              {"csrf": staff.csrf, "staff": staff, "error": error}, status_code=422)
        return RedirectResponse("/staff", status_code=303)

    @app.get("/staff/insights.csv", include_in_schema=False)
    def insights_csv(request: Request) -> Response:
        who_is(request)
        records = state.bot.records if state.bot else None
        insights = records.insights() if records else {"unanswered": [], "unhelpful": []}
        base = kb()
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["種類", "件数", "質問（個人情報を伏せたもの）", "FAQ", "FAQ の質問", "コメント"])
        for g in insights["unanswered"]:
            writer.writerow([_defuse(c) for c in ("答えられなかった質問", str(g["count"]), g["example"], "", "", "")])
        for u in insights["unhelpful"]:
            faq = base.get(u["faq_id"])
            writer.writerow([_defuse(c or "") for c in ("役に立たなかった", "1", u.get("query"), u["faq_id"],
                                                          faq.question if faq else "", u.get("comment"))])
        return Response(out.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="govfaq_insights.csv"'})

    @app.get("/staff/logs.csv", include_in_schema=False)
    def logs_csv(request: Request) -> Response:
        """The dialogue log as it is stored (queries masked before they were written), with the
        feedback: what a ministry asks for to see how residents use the service."""
        who_is(request)
        records = state.bot.records if state.bot else None
        queries = records.rows("query_log") if records else []
        feedback = records.rows("feedback") if records else []
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["種類", "日時（UTC）", "記録の id", "質問・コメント（個人情報を伏せたもの）", "応答の種類",
                         "FAQ", "候補・役に立ったか", "確信度・質問の id"])
        for q in queries:
            writer.writerow([_defuse(str(c if c is not None else "")) for c in (
                "質問", q["ts"], q["id"], q["query"], q["band"], q["faq_id"], q["candidates"], q["confidence"])])
        for f in feedback:
            writer.writerow([_defuse(str(c if c is not None else "")) for c in (
                "ご意見", f["ts"], f["id"], f["comment"], "", f["faq_id"], "役に立った" if f["helpful"] else "役に立たなかった",
                f["query_id"])])
        return Response(out.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="govfaq_logs.csv"'})

    return who_is, suggest_for
