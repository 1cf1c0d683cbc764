"""End-to-end tests in a real browser: Debian's chromium driven by Playwright,
against the service on a loopback port, with the real engine (offline).

Screenshots go to tests/artifacts/. axe-core (npm) runs on every page and
fails the test on serious or critical violations."""

import contextlib
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
AXE = Path(os.environ.get("GOVFAQ_AXE_JS", ROOT / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"))
CHROMIUM = os.environ.get("GOVFAQ_CHROMIUM", "/usr/bin/chromium")
TOKEN = "e2e-kiwi-lantern-57"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from bot.records import RecordStore
    from bot.runtime import load_bot
    from bot.settings import Settings
    from web.app import create_app

    settings = Settings(staff_token=TOKEN)  # shares the built index in var/
    bot = load_bot(settings, records=False)
    bot.records = RecordStore(tmp_path_factory.mktemp("e2e") / "e2e.sqlite3")
    with running(create_app(settings, bot=bot)) as url:
        yield url


@contextlib.contextmanager
def running(app):
    """`app` served by uvicorn on a free loopback port, in a thread; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: make test installs Debian's chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    # bypass_csp: axe-core is injected as an inline script, which the service's CSP forbids.
    context = browser.new_context(locale="ja-JP", bypass_csp=True)
    page = context.new_page()
    yield page
    context.close()


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def axe(page, name):
    """Run axe-core on the page; fail on serious or critical violations."""
    assert AXE.exists(), f"{AXE} missing: make test installs axe-core from npm"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], len(v["nodes"])) for v in result["violations"] if v["impact"] in ("serious", "critical")]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.axe.txt").write_text(
        "\n".join(f"{v['id']} {v['impact']} {len(v['nodes'])}" for v in result["violations"]) or "no violations"
    )
    assert not bad, bad


def ask(page, text):
    page.fill("#q", text)
    page.press("#q", "Enter")


def test_ask_a_question_and_see_the_answer_card(server, page):
    page.goto(server + "/")
    axe(page, "start")
    shot(page, "start")
    ask(page, "地域おこし協力隊の任期は何年ですか")
    card = page.locator("#transcript article.bot").last
    card.wait_for()
    assert "3年" in card.inner_text() and "出典" in card.inner_text()
    assert card.locator("ul.related a").count() >= 2  # related FAQs
    assert card.locator(".feedback p button").count() == 2  # 役に立った, 役に立たなかった (送信する is in the comment box)
    shot(page, "answer")
    axe(page, "answer")


def test_walk_a_scenario_to_an_answer(server, page):
    page.goto(server + "/")
    page.get_by_role("link", name=re.compile("地域づくりの人材")).click()
    page.get_by_role("link", name=re.compile("地域おこし協力隊")).first.click()
    assert "地域おこし協力隊" in page.locator("nav[aria-label='現在位置']").inner_text()
    page.locator("ul.faqs a").first.click()
    assert "/faqs/" in page.url and "出典" in page.inner_text("main")
    shot(page, "scenario_answer")
    axe(page, "scenario_answer")


def test_feedback_reaches_the_staff_page(server, page):
    page.goto(server + "/")
    ask(page, "きくみみ沖縄の電話番号")
    page.goto(server + "/")
    ask(page, "地域おこし協力隊の任期は何年ですか")
    page.locator("#transcript .feedback button", has_text="役に立たなかった").first.click()
    page.locator("#transcript .feedback button", has_text="送信する").first.click()  # the comment box is optional
    page.locator("#transcript .feedback", has_text="ありがとう").wait_for()
    page.goto(server + "/staff/login")
    page.fill("#password", TOKEN)
    page.press("#password", "Enter")
    page.wait_for_url(server + "/staff")
    # The feedback list names the FAQ by its question, with the masked query that led to it (issue 15).
    assert "地域おこし協力隊の任期（活動期間）は何年ですか。（質問: 地域おこし協力隊の任期は何年ですか）" in page.inner_text("main")
    shot(page, "staff")
    axe(page, "staff")


def test_a_clarifying_question(server, page):
    page.goto(server + "/")
    ask(page, "予算はいくらですか")
    card = page.locator("#transcript article.bot").last
    card.wait_for()
    assert "どの制度についてですか" in card.inner_text()
    buttons = card.locator("ul.choices button:not(.none)")
    assert 2 <= buttons.count() <= 4
    assert card.locator("ul.choices button.none").inner_text() == "どれにも当てはまらない"
    shot(page, "clarify")
    buttons.first.click()
    page.locator("#transcript article.reply-answer").wait_for()


def test_counter_search_with_the_keyboard(server, page):
    page.goto(server + "/counter")
    axe(page, "counter")
    page.keyboard.press("/")
    page.keyboard.type("罹災証明書")
    page.locator("#results li").first.wait_for()
    assert page.locator("#results mark").count() > 0
    shot(page, "counter")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/faqs/.*"))


def test_staff_login_and_reload(server, page):
    page.goto(server + "/staff/login")
    page.fill("#password", TOKEN)
    page.press("#password", "Enter")
    page.wait_for_url(server + "/staff")
    page.get_by_role("button", name="FAQ を再読み込みする").click()
    for _ in range(120):
        text = page.inner_text("main")
        if "完了" in text or "失敗" in text:
            break
        time.sleep(1)
        page.reload()
    assert "完了" in page.inner_text("main"), page.inner_text("main")[:500]


def test_the_page_works_with_javascript_off(server, browser):
    context = browser.new_context(java_script_enabled=False, locale="ja-JP")
    page = context.new_page()
    page.goto(server + "/")
    ask(page, "きくみみ沖縄の電話番号")
    page.wait_for_load_state()
    assert "098(867)1100" in page.inner_text("main")
    shot(page, "no_javascript")
    context.close()


def test_phone_width(server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP")
    page = context.new_page()
    page.goto(server + "/?q=" + "地域おこし協力隊の任期")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "phone")
    context.close()


def test_the_source_link_opens_the_marked_passage(server, page):
    page.goto(server + "/")
    ask(page, "自治体DXアクセラレータは何人いる")
    card = page.locator("#transcript article.reply-answer").last
    card.wait_for()
    # The line with the count comes first and is marked in the text.
    assert card.locator(".highlight mark").count() == 1 and card.locator(".answer mark").count() == 1
    link = card.locator("p.source a")
    href = link.get_attribute("href")
    assert re.fullmatch(r"/sources/[0-9a-z_]+\.txt#L\d+", href), href
    assert card.inner_text().count("出典") == 1 and "「「" not in card.inner_text()
    link.click()
    page.wait_for_url(re.compile(r".*/sources/.*#L\d+$"))
    target = page.locator("p.line:target")
    assert target.count() == 1 and target.get_attribute("id") == href.split("#")[1]
    marked = page.evaluate("getComputedStyle(document.querySelector('p.line:target').parentElement).backgroundColor")
    assert marked not in ("rgba(0, 0, 0, 0)", "transparent"), marked
    assert page.evaluate("document.querySelectorAll('.passage').length > 1")
    unmarked = page.evaluate("getComputedStyle(document.querySelector('.passage:not(:has(:target))')).backgroundColor")
    assert unmarked == "rgba(0, 0, 0, 0)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "source_passage.png"))  # the viewport: the document is thousands of lines
    axe(page, "source_passage")


def test_the_server_rendered_card_links_its_source(server, browser):
    context = browser.new_context(java_script_enabled=False, locale="ja-JP")
    page = context.new_page()
    page.goto(server + "/?q=" + "自治体DXアクセラレータは何人いる")
    card = page.locator("article.reply-answer")
    assert card.locator(".highlight mark").count() == 1
    card.locator("p.source a").click()
    page.wait_for_url(re.compile(r".*/sources/.*#L\d+$"))
    assert page.locator("p.line:target").count() == 1
    context.close()
