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
    assert "作成者: alice、記録者: bob" in history
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
    from faq.history import change_in, changes_of
    from faq.publish import publish

    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    entry = raw_entry(shipped.kb.get(FAQ_ID))
    changed = entry | {"answer": "新しい回答です。\n2行目です。", "updated": "2026-12-01"}
    commit = publish(content, shipped.kb, changed, "alice", "bob", "編集")
    kb = load_knowledge_base(content, compare_with_commit=True)
    assert kb.ok and not kb.warnings and kb.kb.get(FAQ_ID).answer == "新しい回答です。\n2行目です。"
    changes = changes_of(content, FAQ_ID)
    # The publish, then the first commit of the folder as it was (where the FAQ was created).
    assert [(c.commit_id, c.author, c.committer, c.kind) for c in changes][0] == (commit, "alice", "bob", "changed")
    assert [c.kind for c in changes[1:]] == ["created"]
    assert change_in(content, commit, FAQ_ID).before["answer"].strip() == entry["answer"]
    assert change_in(content, commit, "some-other-faq") is None and change_in(content, "f" * 40, FAQ_ID) is None
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


# ------------------------------------------------------------------ the form covers every field
def test_the_form_has_every_field_and_they_reach_the_draft(site):
    """Question, paraphrases, answer, easy_answer, category (from the tree), program, tags,
    deadlines, contacts and the source section: the form shows each, and each lands in the draft."""
    client = person(site, "alice")
    page = client.get(f"/staff/faqs/{FAQ_ID}").text
    for name in ("question", "alt_questions", "answer", "easy_answer", "category", "program", "tags",
                 "deadlines", "contacts_list", "source_document", "source_section", "source_line", "updated"):
        assert f'name="{name}"' in page, name
    assert re.search(r'<select id="f-category" name="category">\s*<option', page)  # picked from the tree
    new_page = client.get("/staff/faqs/new").text
    assert 'name="easy_answer"' in new_page and 'name="tags"' in new_page and 'name="program"' in new_page
    entry = published_entry(site[3])
    r = client.post(f"/staff/faqs/{FAQ_ID}", follow_redirects=False, data=edit_data(
        csrf_of(page), entry, easy_answer="きょうりょくたいは 1ねんから 3ねん はたらきます。",
        tags="任期, 期間\n協力隊", program="地域おこし協力隊"))
    assert r.status_code == 303, r.text
    draft_id = int(r.headers["location"].rsplit("/", 1)[1])
    from faq.drafts import Drafts

    draft = Drafts(site[1].db.path).get(draft_id).entry
    assert draft["easy_answer"] == "きょうりょくたいは 1ねんから 3ねん はたらきます。"
    assert draft["tags"] == ["任期", "期間", "協力隊"] and draft["program"] == "地域おこし協力隊"
    assert list(draft).index("easy_answer") == list(draft).index("answer") + 1  # written next to the answer
    # Emptied fields go away instead of being written as blanks.
    r = client.post(f"/staff/faqs/{FAQ_ID}", follow_redirects=False,
                    data=edit_data(csrf_of(page), entry, easy_answer="  ", tags="", program=""))
    draft = Drafts(site[1].db.path).get(int(r.headers["location"].rsplit("/", 1)[1])).entry
    assert "easy_answer" not in draft and "tags" not in draft and "program" not in draft

    # The same checker, in Japanese.
    csrf = csrf_of(page)
    r = client.post(f"/staff/faqs/{FAQ_ID}", data=edit_data(csrf, entry, easy_answer="あ" * 2001))
    assert r.status_code == 422 and "easy_answer:" in r.text
    problem = re.search(r"<code>easy_answer: ([^<]+)</code>", r.text).group(1)
    assert re.search(r"[ぁ-んァ-ン一-龥]", problem), problem  # Japanese, not pydantic's English
    # What was typed stays in the form, so nothing is lost.
    assert "あ" * 2001 in r.text

    # URL-encoding makes each Japanese character 9 bytes: the longest answer and easy_answer the
    # schema allows must still get through the body limit of the staff forms.
    r = client.post(f"/staff/faqs/{FAQ_ID}", follow_redirects=False,
                    data=edit_data(csrf, entry, answer="任期" * 2000, easy_answer="にんき" * 666))
    assert r.status_code == 303, r.text[:300]
    # Residents' routes keep the small limit.
    assert client.post("/api/ask", json={"query": "あ" * 20_000}).status_code == 413


# ------------------------------------------------------------------ history from git, however it was committed
def git(content, *args, who="Hanako Yamada"):
    env = {"GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": "hanako@example.jp", "GIT_COMMITTER_NAME": who,
           "GIT_COMMITTER_EMAIL": "hanako@example.jp", "HOME": str(content), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(content), *args], check=True, capture_output=True, text=True, env=env).stdout


def hand_edited(content):
    """The content as a repository committed with the git command: the shipped files, then the
    answer of FAQ_ID changed by hand in a second commit."""
    git(content, "init", "-q")
    git(content, "add", "-A")
    git(content, "commit", "-qm", "最初の内容")
    path, _ = __import__("faq.publish", fromlist=["locate"]).locate(content, FAQ_ID)
    old = published_entry(content)["answer"]
    text = path.read_text(encoding="utf-8")
    first = old.splitlines()[0]
    assert first in text
    path.write_text(text.replace(first, "手で書き換えた回答です。", 1), encoding="utf-8")
    git(content, "commit", "-qam", "回答を手で直した", who="Taro Suzuki")
    return path, old


def test_history_lists_every_commit_touching_the_faq_made_by_hand(tmp_path):
    from faq.history import changes_of

    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    path, old = hand_edited(content)
    # A commit touching another FAQ only, and one that only moves lines around, do not count.
    other = load_knowledge_base(content).kb.faqs[-1]
    text = path.read_text(encoding="utf-8")
    (content / "notes.txt").write_text("メモ\n", encoding="utf-8")
    git(content, "add", "notes.txt")
    git(content, "commit", "-qm", "関係のない変更")
    changes = changes_of(content, FAQ_ID)
    assert [(c.kind, c.author, c.message) for c in changes] == [
        ("changed", "Taro Suzuki", "回答を手で直した"), ("created", "Hanako Yamada", "最初の内容")]
    assert "\n+    手で書き換えた回答です。\n" in changes[0].diff and "\n-    " + old.splitlines()[0] + "\n" in changes[0].diff
    assert changes[0].before["answer"].startswith(old.splitlines()[0]) and changes[1].before is None
    assert changes[0].commit_id == git(content, "rev-parse", "HEAD~1").strip()
    assert [c.kind for c in changes_of(content, other.id)] == ["created"]
    assert changes_of(content, "no-such-faq") == []
    assert text == path.read_text(encoding="utf-8")


def test_history_page_shows_hand_commits_with_diff_and_revert_even_of_the_creation(site):
    app, accounts, _, content = site
    path, _ = hand_edited(content)
    editor, approver = person(site, "alice"), person(site, "bob")
    page = editor.get(f"/staff/faqs/{FAQ_ID}").text
    assert "回答を手で直した" in page and "Taro Suzuki" in page and "最初の内容" in page
    assert "手で書き換えた回答です。" in page  # the diff of that commit
    commits = re.findall(r'name="commit" value="([0-9a-f]{40})"', page)
    assert len(commits) == 2
    # Reverting the hand edit is a reviewed draft that restores the answer before it.
    r = editor.post(f"/staff/faqs/{FAQ_ID}/revert", data={"csrf": csrf_of(page), "commit": commits[0]},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    draft = approver.get(r.headers["location"]).text
    assert "変更の取り消し" in draft and "\n-    手で書き換えた回答です。\n" in draft

    # Reverting the commit that created the FAQ is a reviewed removal.
    created = re.findall(r'name="commit" value="([0-9a-f]{40})"', page)[-1]
    r = editor.post(f"/staff/faqs/{FAQ_ID}/revert", data={"csrf": csrf_of(page), "commit": created},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    draft_url = r.headers["location"]
    draft = editor.get(draft_url).text
    assert "FAQ の削除" in draft and f"-- id: {FAQ_ID}" in draft and "+- id:" not in draft
    assert editor.post(f"{draft_url}/publish", data={"csrf": csrf_of(draft)}).status_code == 403
    before = {p.name: p.read_text(encoding="utf-8") for p in (content / "faqs").glob("*.yaml")}
    page = approver.get(draft_url).text
    r = approver.post(f"{draft_url}/publish", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    wait_reload(app)
    kb = load_knowledge_base(content).kb
    assert kb.get(FAQ_ID) is None and len(kb.faqs) == len(load_knowledge_base(CONTENT_DIR).kb.faqs) - 1
    after = {p.name: p.read_text(encoding="utf-8") for p in (content / "faqs").glob("*.yaml")}
    assert [n for n in before if before[n] != after[n]] == [path.name]
    assert f"id: {FAQ_ID}\n" not in after[path.name]
    log = git(content, "log", "-1", "--format=%an|%cn|%s%n%b")
    assert log.startswith("alice|bob|FAQ kyoryokutai-ninki を削除") and f"faq: {FAQ_ID}" in log
    assert git(content, "status", "--porcelain").strip() == ""
    assert "published" in approver.get("/staff/audit").text


def test_publish_then_remove_a_new_faq(tmp_path, shipped):
    from faq.history import changes_of
    from faq.publish import PublishError, publish, remove

    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    new = raw_entry(shipped.kb.get(FAQ_ID)) | {"id": "kyoryokutai-new-one", "question": "新しい質問ですか"}
    untouched = {p.name: p.read_bytes() for p in (content / "faqs").glob("*.yaml")}
    publish(content, shipped.kb, new, "alice", "bob", "新規")
    [created] = changes_of(content, "kyoryokutai-new-one")
    assert created.kind == "created" and created.before is None and created.author == "alice"
    remove(content, "kyoryokutai-new-one", "alice", "bob", "変更の取り消し")
    assert load_knowledge_base(content).kb.get("kyoryokutai-new-one") is None
    assert {p.name: p.read_bytes() for p in (content / "faqs").glob("*.yaml")} == untouched
    assert [c.kind for c in changes_of(content, "kyoryokutai-new-one")] == ["deleted", "created"]
    with pytest.raises(PublishError, match="見つかりません"):
        remove(content, "kyoryokutai-new-one", "alice", "bob", "")


def test_cut_entry_takes_only_its_lines():
    from faq.publish import cut_entry

    text = "# head\n- id: a\n  question: A\n\n# about b\n- id: b\n  question: B\n\n- id: c\n  question: C\n"
    assert cut_entry(text, 6) == "# head\n- id: a\n  question: A\n\n- id: c\n  question: C\n"
    assert cut_entry(text, 9) == "# head\n- id: a\n  question: A\n\n# about b\n- id: b\n  question: B\n"
    assert cut_entry("- id: a\n  q: A\n", 1) == ""


def test_dashboard_warns_of_stale_updated_lists_scheduled_and_exports_the_log(site):
    """Warnings of `govfaq faq check` (an answer changed by hand while `updated` did not, with
    today's date offered) and the scheduled FAQs are on the staff page; the dialogue log exports."""
    from faq.schedule import tokyo_today

    app, accounts, _, content = site
    path, _ = hand_edited(content)  # the answer changed in the file, `updated` as it was
    text = path.read_text(encoding="utf-8")
    updated = f"\n  updated: {published_entry(content)['updated']}\n"
    head, _, tail = text.partition(f"- id: {FAQ_ID}\n")
    path.write_text(head + f"- id: {FAQ_ID}\n" + tail.replace(updated, updated + "  publish_from: 2099-04-01\n", 1),
                    encoding="utf-8")
    git(content, "add", "-A")
    git(content, "commit", "-qm", "公開日を決めた")
    path.write_text(path.read_text(encoding="utf-8").replace("手で書き換えた回答です。", "もう一度書き換えました。"),
                    encoding="utf-8")
    viewer = person(site, "carol")
    page = viewer.get("/staff").text
    assert "回答が変わりましたが updated が" in page and f"今日の日付 {tokyo_today().isoformat()}" in page
    assert "2099-04-01" in page and "公開前" in page and FAQ_ID in page
    viewer.post("/api/ask", json={"query": "協力隊の任期は何年ですか 電話は090-1234-5678です"})
    viewer.post("/api/ask", json={"query": "=cmd| 協力隊の任期"})
    r = viewer.get("/staff/logs.csv")
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf") and "attachment" in r.headers["content-disposition"]
    body = r.content.decode("utf-8-sig")
    assert body.splitlines()[0].startswith("種類,日時") and "協力隊の任期は何年ですか" in body
    assert "090-1234-5678" not in body and "'=cmd|" in body and "\n=" not in body and ",=" not in body
    assert TestClient(app).get("/staff/logs.csv", follow_redirects=False).status_code in (303, 401)
