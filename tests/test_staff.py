"""Staff pages: off without a token, login with CSRF, insights, reload, CSV."""

import re

import pytest
from fastapi.testclient import TestClient

from bot.dialogue import Bot
from bot.records import RecordStore
from bot.settings import Settings
from web.app import create_app

TOKEN = "correct-horse-battery"


@pytest.fixture(scope="module")
def bot(fast_engine, tmp_path_factory):
    return Bot(fast_engine, records=RecordStore(tmp_path_factory.mktemp("records") / "g.sqlite3"))


def staff_client(bot, tmp_path, token=TOKEN, **settings):
    return TestClient(create_app(Settings(data_dir=tmp_path, staff_token=token, **settings), bot=bot))


def login(client, password=TOKEN):
    page = client.get("/staff/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/staff/login", data={"password": password, "csrf": csrf}, follow_redirects=False)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_staff_pages_are_off_without_a_token(bot, tmp_path):
    client = TestClient(create_app(Settings(data_dir=tmp_path), bot=bot))
    for path in ("/staff", "/staff/login", "/staff/export.csv"):
        assert client.get(path).status_code == 404
    assert client.post("/staff/reload", data={"csrf": "x"}).status_code == 404


def test_a_short_token_is_refused_at_start_up():
    with pytest.raises(ValueError, match="16 characters"):
        Settings(staff_token="short")


def test_wrong_password_and_missing_csrf_are_refused(bot, tmp_path):
    client = staff_client(bot, tmp_path)
    assert login(client, "wrong-password-123").status_code == 401
    assert client.post("/staff/login", data={"password": TOKEN, "csrf": "forged"}).status_code == 401
    assert client.get("/staff", follow_redirects=False).status_code == 303


def test_login_dashboard_insights_and_csv(bot, tmp_path):
    bot.reply("パスポートの更新はどこでできますか")
    bot.reply("パスポート更新の窓口")
    reply = bot.reply("鹿児島の相談窓口")
    bot.records.add_feedback("kyoryokutai-ninki", False, "<b>わかりにくい</b>", None)
    client = staff_client(bot, tmp_path)
    assert login(client).status_code == 303
    page = client.get("/staff")
    assert page.status_code == 200 and "検証結果" in page.text and "問題はありません" in page.text
    assert "パスポート" in page.text and "<svg" in page.text
    assert "<b>わかりにくい</b>" not in page.text and "&lt;b&gt;" in page.text  # comments shown as text
    csv = client.get("/staff/export.csv")
    assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf") and len(csv.content.splitlines()) > 600
    assert reply.kind == "contacts"


def test_reload_needs_the_form_token(bot, tmp_path):
    client = staff_client(bot, tmp_path)
    login(client)
    assert client.post("/staff/reload", data={"csrf": "forged"}).status_code == 403


def test_a_broken_file_refuses_the_reload_and_keeps_serving(bot, tmp_path):
    import shutil
    import time

    from faq.loader import CONTENT_DIR

    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    client = staff_client(bot, tmp_path, content_dir=content)
    login(client)
    (content / "faqs" / "zz_broken.yaml").write_text("- id: [broken\n", encoding="utf-8")
    token = csrf_of(client.get("/staff").text)
    assert client.post("/staff/reload", data={"csrf": token}, follow_redirects=False).status_code == 303
    status = client.app.state.staff_status
    for _ in range(50):
        if status.state != "running":
            break
        time.sleep(0.1)
    assert status.state == "failed" and any("zz_broken.yaml" in e for e in status.errors)
    assert client.post("/api/ask", json={"query": "きくみみ 沖縄"}).json()["answered"]  # old index still serves
    assert "zz_broken.yaml" in client.get("/staff").text
