"""Per-person staff accounts, drafts, review, publishing to YAML + git, history and revert,
and insights turned into drafts (issue 15, parts 1, 2 and 4), through the TestClient."""

import re
import shutil
import subprocess
import time

import pytest
from fastapi.testclient import TestClient

from bot.accounts import AccountError, Accounts
from bot.dialogue import Bot
from bot.records import RecordStore
from bot.settings import Settings
from faq.drafts import entry_from_form, entry_yaml, raw_entry
from faq.loader import CONTENT_DIR, load_knowledge_base
from faq.publish import replace_entry
from web.app import create_app

TOKEN = "correct-horse-battery"
FAQ_ID = "kyoryokutai-ninki"


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


@pytest.fixture()
def site(fast_engine, tmp_path):
    """A service on a copy of the shipped content, with an editor, an approver and a viewer."""
    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    bot = Bot(fast_engine, records=RecordStore(tmp_path / "records.sqlite3"))
    settings = Settings(data_dir=tmp_path / "data", content_dir=content, staff_token=TOKEN,
                        staff_login_attempts_per_minute=1000, staff_login_global_per_minute=1000)
    accounts = Accounts(tmp_path / "data" / "staff.sqlite3")
    passwords = {name: accounts.add(name, role) for name, role in
                 (("alice", "editor"), ("bob", "approver"), ("carol", "viewer"))}
    app = create_app(settings, bot=bot)
    return app, accounts, passwords, content


def login(app, name, password, new_password=None):
    client = TestClient(app)
    page = client.get("/staff/login")
    r = client.post("/staff/login", data={"name": name, "password": password, "csrf": csrf_of(page.text)},
                    follow_redirects=False)
    if r.status_code != 303:
        return client, r
    if new_password:
        form = client.get("/staff/password")
        r = client.post("/staff/password", data={"csrf": csrf_of(form.text), "password": new_password,
                                                  "again": new_password}, follow_redirects=False)
    return client, r


def person(site, name):
    app, accounts, passwords, _ = site
    client, r = login(app, name, passwords[name], f"{name}-Kq7#vXw2-pLm9")
    assert r.status_code == 303, r.text
    return client


def edit_data(csrf, entry, **changes):
    from faq.drafts import deadlines_text

    data = {"csrf": csrf, "question": entry["question"], "alt_questions": "\n".join(entry.get("alt_questions", [])),
            "answer": entry["answer"], "category": " > ".join(entry["category"]),
            "deadlines": deadlines_text(entry.get("deadlines", [])), "contacts_list": entry.get("contacts", []),
            "source_document": entry["source"]["document"], "source_section": entry["source"]["section"],
            "source_line": str(entry["source"].get("line", "")), "updated": "2026-12-01"}
    data.update(changes)
    return data


def published_entry(content, faq_id=FAQ_ID):
    return raw_entry(load_knowledge_base(content).kb.get(faq_id))


def wait_reload(app):
    status = app.state.staff_status
    for _ in range(600):
        if status.state not in ("running",):
            return status
        time.sleep(0.1)
    return status


# ------------------------------------------------------------------ accounts
def test_accounts_one_time_password_argon2_and_disable(backend):
    accounts = Accounts(backend.store("staff.sqlite3"))
    password = accounts.add("alice", "editor")
    assert len(password) >= 20 and accounts.verify("alice", password).must_change
    assert Accounts(backend.store("staff.sqlite3")).verify("alice", password) is not None  # another worker
    stored = accounts._run(lambda c: c.execute("SELECT password_hash FROM staff_accounts").fetchone()["password_hash"])
    assert stored.startswith("$argon2id$") and password not in stored
    assert accounts.verify("alice", "wrong") is None and accounts.verify("nobody", password) is None
    with pytest.raises(AccountError, match="12文字以上"):
        accounts.set_password("alice", "short")
    accounts.set_password("alice", "a-new-Passw0rd-for-alice")
    assert accounts.verify("alice", password) is None  # the one-time password is gone
    assert not accounts.verify("alice", "a-new-Passw0rd-for-alice").must_change
    with pytest.raises(AccountError, match="すでに"):
        accounts.add("alice", "viewer")
    with pytest.raises(AccountError, match="役割"):
        accounts.add("dave", "admin")
    accounts.disable("alice")
    assert accounts.verify("alice", "a-new-Passw0rd-for-alice") is None
    actions = [r["action"] for r in accounts.audit_rows()]
    assert actions[:3] == ["account disabled", "password set", "account added"]


def test_cli_staff_add_list_disable(tmp_path, capsys):
    from bot.cli import main

    assert main(["staff", "add", "alice", "--role", "editor", "--data-dir", str(tmp_path)]) == 0
    password = capsys.readouterr().out.strip()
    assert Accounts(tmp_path / "staff.sqlite3").verify("alice", password) is not None
    assert main(["staff", "list", "--data-dir", str(tmp_path)]) == 0
    assert "alice\teditor\tone-time password" in capsys.readouterr().out
    assert main(["staff", "disable", "alice", "--data-dir", str(tmp_path)]) == 0
    assert main(["staff", "disable", "nobody", "--data-dir", str(tmp_path)]) == 1


def test_the_token_logs_in_only_while_there_is_no_account(fast_engine, tmp_path):
    bot = Bot(fast_engine)
    app = create_app(Settings(data_dir=tmp_path, staff_token=TOKEN), bot=bot)
    client, r = login(app, "", TOKEN)
    assert r.status_code == 303 and "共有トークンでログインしています" in client.get("/staff").text
    Accounts(tmp_path / "staff.sqlite3").add("bob", "approver")
    assert login(app, "", TOKEN)[1].status_code == 401
    assert client.get("/staff", follow_redirects=False).status_code == 401  # the bootstrap session ends too


def test_accounts_alone_turn_the_staff_pages_on(fast_engine, tmp_path):
    app = create_app(Settings(data_dir=tmp_path), bot=Bot(fast_engine))
    assert TestClient(app).get("/staff/login").status_code == 404
    password = Accounts(tmp_path / "staff.sqlite3").add("bob", "approver")
    client, r = login(app, "bob", password)
    assert r.status_code == 303


def test_the_one_time_password_must_be_replaced_first(site):
    app, accounts, passwords, _ = site
    client, r = login(app, "alice", passwords["alice"])
    assert r.status_code == 303
    assert client.get("/staff", follow_redirects=False).headers["location"] == "/staff/password"
    csrf = csrf_of(client.get("/staff/password").text)
    assert client.post("/staff/drafts/paraphrase", data={"csrf": csrf, "faq_id": FAQ_ID, "text": "x"}).status_code == 403
    r = client.post("/staff/password", data={"csrf": csrf, "password": "too-short", "again": "too-short"})
    assert r.status_code == 422 and "12文字以上" in r.text
    r = client.post("/staff/password", data={"csrf": csrf, "password": "alice-Kq7#vXw2-pLm9",
                                             "again": "alice-Kq7#vXw2-pLm9"}, follow_redirects=False)
    assert r.status_code == 303 and client.get("/staff").status_code == 200
    assert login(app, "alice", passwords["alice"])[1].status_code == 401  # single use
    assert [r["action"] for r in accounts.audit_rows()][:3] == ["failed login", "password set", "login"]


def test_a_disabled_account_loses_its_open_login(site):
    app, accounts, *_ = site
    client = person(site, "alice")
    accounts.disable("alice")
    assert client.get("/staff", follow_redirects=False).status_code == 401


# ------------------------------------------------------------------ roles and CSRF
def test_a_viewer_cannot_edit(site):
    client = person(site, "carol")
    page = client.get(f"/staff/faqs/{FAQ_ID}")
    assert page.status_code == 200 and "閲覧の権限では編集できません" in page.text and "下書きとして保存" not in page.text
    csrf = csrf_of(page.text)
    entry = published_entry(site[3])
    assert client.post(f"/staff/faqs/{FAQ_ID}", data=edit_data(csrf, entry)).status_code == 403
    assert client.get("/staff/faqs/new").status_code == 403
    assert client.post("/staff/drafts/paraphrase", data={"csrf": csrf, "faq_id": FAQ_ID, "text": "任期"}).status_code == 403
    assert client.post("/staff/reload", data={"csrf": csrf}).status_code == 403


def test_every_form_needs_the_csrf_token(site):
    editor, approver = person(site, "alice"), person(site, "bob")
    entry = published_entry(site[3])
    posts = [("/staff/faqs/" + FAQ_ID, edit_data("forged", entry)), ("/staff/faqs/new", edit_data("forged", entry)),
             (f"/staff/faqs/{FAQ_ID}/revert", {"csrf": "forged", "commit": "0" * 40}),
             ("/staff/drafts/paraphrase", {"csrf": "forged", "faq_id": FAQ_ID, "text": "任期"}),
             ("/staff/drafts/1/publish", {"csrf": "forged"}), ("/staff/drafts/1/discard", {"csrf": "forged"}),
             ("/staff/password", {"csrf": "forged", "password": "x" * 20, "again": "x" * 20}),
             ("/staff/reload", {"csrf": "forged"}), ("/staff/logout", {"csrf": "forged"})]
    for path, data in posts:
        for client in (editor, approver):
            assert client.post(path, data=data).status_code == 403, path


def test_the_checker_refuses_a_bad_draft_in_japanese(site):
    client = person(site, "alice")
    csrf = csrf_of(client.get(f"/staff/faqs/{FAQ_ID}").text)
    entry = published_entry(site[3])
    r = client.post(f"/staff/faqs/{FAQ_ID}", data=edit_data(csrf, entry, answer="", updated="2026-02-30"))
    assert r.status_code == 422 and "answer: 空にはできません" in r.text and "updated:" in r.text
    # As in `govfaq faq check`, the cross-checks run on an entry whose fields are valid.
    r = client.post(f"/staff/faqs/{FAQ_ID}", data=edit_data(csrf, entry, contacts_list=["no-such-office"],
                                                             category="存在しない > 分類"))
    assert r.status_code == 422 and "no-such-office" in r.text and "contacts.yaml にありません" in r.text
    assert "シナリオの木（scenarios.yaml）にない分類です" in r.text
    r = client.post("/staff/faqs/new", data=edit_data(csrf, entry, id=FAQ_ID))
    assert r.status_code == 422 and "すでにあります" in r.text


# ------------------------------------------------------------------ the whole flow
@pytest.mark.slow  # two reloads, each building the index of the edited content
def test_editor_drafts_approver_publishes_served_history_and_revert(site):
    app, accounts, _, content = site
    editor, approver = person(site, "alice"), person(site, "bob")
    before_files = {p.name: p.read_bytes() for p in (content / "faqs").glob("*.yaml")}
    original = published_entry(content)
    csrf = csrf_of(editor.get(f"/staff/faqs/{FAQ_ID}").text)
    new_answer = "協力隊の任期は<b>おおむね1年以上3年以下</b>です（テスト用の新しい回答）。"
    r = editor.post(f"/staff/faqs/{FAQ_ID}", data=edit_data(csrf, original, answer=new_answer), follow_redirects=False)
    assert r.status_code == 303
    draft_url = r.headers["location"]
    draft_page = editor.get(draft_url).text
    assert "承認して公開する" not in draft_page and "&lt;b&gt;" in draft_page and "<b>おおむね" not in draft_page
    draft_id = draft_url.rsplit("/", 1)[1]
    assert editor.post(f"{draft_url}/publish", data={"csrf": csrf}).status_code == 403  # an editor cannot publish

    page = approver.get(draft_url)
    assert "承認して公開する" in page.text and "+  answer: 協力隊の任期は&lt;b&gt;おおむね" in page.text
    r = approver.post(f"{draft_url}/publish", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert approver.post(f"{draft_url}/publish", data={"csrf": csrf_of(page.text)}).status_code == 409

    after_files = {p.name: p.read_bytes() for p in (content / "faqs").glob("*.yaml")}
    changed = [name for name in before_files if before_files[name] != after_files[name]]
    assert len(changed) == 1
    old_text, new_text = before_files[changed[0]].decode(), after_files[changed[0]].decode()
    # Only this entry's lines changed: every other entry is byte-identical.
    import difflib
    touched = [line for line in difflib.unified_diff(old_text.splitlines(), new_text.splitlines(), n=0)
               if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    assert any(new_answer in line for line in touched)
    kb = load_knowledge_base(content).kb
    assert kb.get(FAQ_ID).answer == new_answer and len(kb.faqs) == len(load_knowledge_base(CONTENT_DIR).kb.faqs)
    others = {f.id: f for f in kb.faqs if f.id != FAQ_ID}
    assert others == {f.id: f for f in load_knowledge_base(CONTENT_DIR).kb.faqs if f.id != FAQ_ID}

    log = subprocess.run(["git", "-C", str(content), "log", "--format=%an <%ae>|%cn|%s%n%b"], capture_output=True,
                         text=True).stdout
    assert "alice <alice@staff.govfaq>|bob|FAQ kyoryokutai-ninki を公開" in log and f"faq: {FAQ_ID}" in log

    status = wait_reload(app)
    assert status.state == "done", (status.step, status.errors)
    served = approver.post("/api/ask", json={"query": original["question"]}).json()
    assert new_answer in str(served)

    history = approver.get(f"/staff/faqs/{FAQ_ID}").text
    assert "作成: alice、承認: bob" in history
    commit = re.search(r'name="commit" value="([0-9a-f]{40})"', history).group(1)
    r = editor.post(f"/staff/faqs/{FAQ_ID}/revert", data={"csrf": csrf, "commit": commit}, follow_redirects=False)
    assert r.status_code == 303
    revert_url = r.headers["location"]
    assert revert_url != draft_url
    page = approver.get(revert_url)
    assert "変更の取り消し" in page.text and "-  answer: 協力隊の任期は&lt;b&gt;" in page.text
    r = approver.post(f"{revert_url}/publish", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    restored = published_entry(content)
    assert restored["answer"] == original["answer"]
    assert wait_reload(app).state == "done"
    assert new_answer not in str(approver.post("/api/ask", json={"query": original["question"]}).json())

    audit = approver.get("/staff/audit").text
    for action in ("draft saved", "published", "login"):
        assert action in audit
    assert FAQ_ID in audit
    assert draft_id


# ------------------------------------------------------------------ insights to content
def test_insights_offer_paraphrase_and_new_draft_and_export_csv(site):
    editor = person(site, "alice")
    # Ask something the content cannot answer, and leave unhelpful feedback with a formula.
    editor.post("/api/ask", json={"query": "=HYPERLINK(\"http://x\") 協力隊の任期を延長するには"})
    r = editor.post("/api/ask", json={"query": "地域おこし協力隊の任期は何年ですか"}).json()
    editor.post("/api/feedback", json={"faq_id": FAQ_ID, "helpful": False, "comment": "=1+1",
                                       "query_id": r.get("query_id")})
    page = editor.get("/staff").text
    assert "言い換えに加える" in page and "この質問から新しい FAQ の下書きを作る" in page
    assert "地域おこし協力隊の任期は何年ですか" in page  # the masked query that led to the FAQ
    faq_id = re.search(r'name="faq_id" value="([^"]+)"', page).group(1)
    text = re.search(r'name="text" value="([^"]+)"', page).group(1)
    import html
    r = editor.post("/staff/drafts/paraphrase", data={"csrf": csrf_of(page), "faq_id": faq_id, "text": html.unescape(text)},
                    follow_redirects=False)
    assert r.status_code == 303
    draft = editor.get(r.headers["location"]).text
    assert "言い換えの追加" in draft and "+    - " + html.unescape(text) in html.unescape(draft)
    link = re.search(r'href="(/staff/faqs/new\?q=[^"]+)"', page).group(1)
    new = editor.get(html.unescape(link)).text
    assert "協力隊" in new and 'name="id"' in new
    csv = editor.get("/staff/insights.csv")
    assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf")
    body = csv.content.decode("utf-8-sig")
    assert "'=1+1" in body and "\n=" not in body and ",=" not in body


# ------------------------------------------------------------------ pure pieces
def test_publish_writes_one_entry_and_commits_with_the_author(tmp_path, shipped):
    from faq.publish import entry_before, history, publish

    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    entry = raw_entry(shipped.kb.get(FAQ_ID))
    changed = entry | {"answer": "新しい回答です。\n2行目です。", "updated": "2026-12-01"}
    commit = publish(content, shipped.kb, changed, "alice", "bob", "編集")
    kb = load_knowledge_base(content, compare_with_commit=True)
    assert kb.ok and not kb.warnings and kb.kb.get(FAQ_ID).answer == "新しい回答です。\n2行目です。"
    changes = history(content, FAQ_ID)
    assert [(c.commit_id, c.author, c.committer) for c in changes] == [(commit, "alice", "bob")]
    assert entry_before(content, commit, FAQ_ID)["answer"].strip() == entry["answer"]
    assert history(content, "some-other-faq") == []
    # A new FAQ goes into the file of its field.
    new = changed | {"id": "kyoryokutai-new-one", "question": "新しい質問ですか"}
    publish(content, shipped.kb, new, "alice", "bob", "新規")
    assert load_knowledge_base(content).kb.get("kyoryokutai-new-one") is not None


def test_replace_entry_keeps_the_neighbours_byte_for_byte():
    text = "# head\n- id: a\n  question: A\n\n# about b\n- id: b\n  question: B\n- id: c\n  question: C\n"
    out = replace_entry(text, 6, "- id: b\n  question: BB\n")
    assert out == "# head\n- id: a\n  question: A\n\n# about b\n- id: b\n  question: BB\n- id: c\n  question: C\n"
    out = replace_entry(text, 2, "- id: a\n  question: AA\n")
    assert out.endswith("\n\n# about b\n- id: b\n  question: B\n- id: c\n  question: C\n")


def test_every_shipped_faq_survives_the_form_round_trip(shipped):
    from faq.drafts import check_entry, deadlines_text

    for faq in shipped.kb.faqs[:200]:
        entry = raw_entry(faq)
        form = {"question": entry["question"], "alt_questions": "\n".join(entry.get("alt_questions", [])),
                "answer": entry["answer"], "category": " > ".join(entry["category"]),
                "deadlines": deadlines_text(entry.get("deadlines", [])), "contacts_list": entry.get("contacts", []),
                "source_document": entry["source"]["document"], "source_section": entry["source"]["section"],
                "source_line": str(entry["source"].get("line", "")), "updated": entry["updated"]}
        again = entry_from_form(form, entry)
        from faq.schema import FAQ

        assert FAQ.model_validate(again) == faq, faq.id
        assert check_entry(again, shipped.kb, new=False) == [], faq.id
        assert entry_yaml(again).startswith(f"- id: {faq.id}\n")
