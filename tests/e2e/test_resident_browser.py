"""Issue 14 in a real browser (Debian's chromium, Playwright), desktop and phone width: tappable
contacts, scrolling to the reply, もしかして as buttons once, feedback with and without JavaScript,
the counter's copy fallback, the 窓口持参メモ and print styles, ふりがな, やさしい日本語, the widget on
another origin, and WCAG 2.2 target sizes and 4.5:1 contrast measured in the page. axe-core runs on
every state (no serious or critical violations)."""

import functools
import http.server
import threading
import time

import pytest

from tests.e2e.test_browser import ARGS, CHROMIUM, axe, browser, free_port, shot  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    """Two municipality pages on other loopback origins: one allowed to frame /embed, one not."""
    ports = {"allowed": free_port(), "other": free_port()}
    return ports


@pytest.fixture(scope="module")
def server(tmp_path_factory, hosts):
    import uvicorn

    from bot.records import RecordStore
    from bot.runtime import load_bot
    from bot.settings import Settings
    from web.app import create_app

    settings = Settings(embed_origins=f"http://127.0.0.1:{hosts['allowed']}")
    bot = load_bot(settings, records=False)
    bot.records = RecordStore(tmp_path_factory.mktemp("e2e14") / "e2e.sqlite3")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, bot=bot), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.1)
    base = f"http://127.0.0.1:{port}"
    site = tmp_path_factory.mktemp("municipality")
    (site / "index.html").write_text(
        '<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>ある市のページ</title></head>'
        f'<body><main><h1>ある市のお知らせ</h1><p>市のページです。</p></main><script src="{base}/widget.js" defer></script></body></html>',
        encoding="utf-8",
    )
    servers = []
    for port_ in hosts.values():
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port_), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
    yield base
    for httpd in servers:
        httpd.shutdown()
    server.should_exit = True


def new_page(browser, viewport=DESKTOP, js=True, init=None):
    context = browser.new_context(locale="ja-JP", bypass_csp=True, viewport=viewport, java_script_enabled=js)
    if init:
        context.add_init_script(init)
    return context.new_page()


def ask(page, text):
    page.fill("#q", text)
    page.press("#q", "Enter")


SIZES_AND_CONTRAST = """() => {
  function rgb(s) { const m = s.match(/[\\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; }
  function lum(c) { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= .03928 ? v / 12.92 : Math.pow((v + .055) / 1.055, 2.4); });
    return .2126 * r + .7152 * g + .0722 * b; }
  function bg(el) { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor);
    if ((c[3] === undefined || c[3] > 0) && c.length >= 3 && !(c.length === 4 && c[3] === 0)) return c; } return [255, 255, 255]; }
  const small = [], low = [];
  const visible = el => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && !el.closest(".visually-hidden, .skip"); };
  for (const el of document.querySelectorAll("a, button, input, select, textarea, summary")) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    const primary = el.matches("button, input, select, .button, textarea");
    const need = primary ? 44 : 24;
    if (r.height < need - 0.5 || r.width < 24 - 0.5) small.push(`${el.tagName}.${el.className} "${(el.textContent || el.value || "").trim().slice(0, 20)}" ${r.width.toFixed(0)}x${r.height.toFixed(0)} < ${need}`);
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || seen.has(el) || !visible(el)) continue;
    seen.add(el);
    const fg = rgb(getComputedStyle(el).color), back = bg(el);
    const [a, b] = [lum(fg), lum(back)].sort((x, y) => y - x);
    const ratio = (a + .05) / (b + .05);
    if (ratio < 4.5) low.push(`${el.tagName}.${el.className} "${n.textContent.trim().slice(0, 20)}" ${ratio.toFixed(2)}`);
  }
  return { small, low };
}"""


def check_sizes_and_contrast(page):
    result = page.evaluate(SIZES_AND_CONTRAST)
    assert not result["small"], result["small"][:10]
    assert not result["low"], result["low"][:10]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_answer_links_scrolls_into_view_and_reads_like_the_no_js_page(server, browser, viewport):
    page = new_page(browser, viewport)
    page.goto(server + "/")
    assert page.locator("#main").inner_text().count("トップ") == 0  # no stray トップ under the heading
    assert "マイナンバー" in page.locator("#privacy").inner_text()
    assert page.locator("#q").get_attribute("aria-describedby") == "privacy"
    check_sizes_and_contrast(page)
    ask(page, "きくみみ沖縄の電話番号")
    card = page.locator("#transcript article.bot").last
    card.wait_for()
    assert card.locator('a[href="tel:0988671100"]').count() >= 1
    assert card.locator("h2.visually-hidden", has_text="回答").count() == 1
    assert page.locator("#transcript p.user .visually-hidden", has_text="あなた:").count() == 1
    assert page.evaluate("document.getElementById('fields').open") is False  # the field buttons fold away
    page.wait_for_timeout(800)  # smooth scroll
    top = card.evaluate("e => e.getBoundingClientRect().top")
    assert 0 <= top < viewport["height"] * 0.6, top
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    check_sizes_and_contrast(page)
    name = "answer_" + ("phone" if viewport is PHONE else "desktop")
    shot(page, name)
    axe(page, name)
    page.context.close()


def test_did_you_mean_lists_each_candidate_once_and_offers_none(server, browser):
    page = new_page(browser)
    page.goto(server + "/")
    ask(page, "補助")
    card = page.locator("#transcript article.reply-candidates").last
    card.wait_for()
    check_sizes_and_contrast(page)
    buttons = card.locator("ul.choices button")
    labels = [b.inner_text() for b in buttons.all()]
    assert labels[-1] == "どれにも当てはまらない" and len(labels) == len(set(labels)) >= 3
    answer = card.locator(".answer").inner_text()
    assert all(label not in answer for label in labels)  # once: as a button, not as text too
    axe(page, "candidates")
    buttons.last.click()
    page.locator("#transcript article.reply-fallback").wait_for()
    assert "tel:" in page.locator("#transcript article.reply-fallback").inner_html()
    axe(page, "none_of_these")
    page.goto(server + "/none?none=1")  # the same without JavaScript
    assert page.locator("article.reply-fallback a[href^='tel:']").count() >= 1
    check_sizes_and_contrast(page)
    axe(page, "none_page")
    page.goto(server + "/")
    ask(page, "補助")
    page.locator("#transcript article.reply-candidates ul.choices button").first.click()
    page.locator("#transcript article.reply-answer").wait_for()
    page.context.close()


def test_feedback_with_a_comment_with_and_without_javascript(server, browser):
    page = new_page(browser, js=False)
    page.goto(server + "/?q=" + "地域おこし協力隊の任期")
    form = page.locator("form.feedback").first
    form.locator("summary").click()
    form.locator("textarea").fill("任期の延長について知りたかった")
    form.get_by_role("button", name="送信する").click()
    page.wait_for_url("**/faqs/**thanks=1**")
    assert "ご意見ありがとうございました" in page.inner_text("main")
    thanks = page.url
    page.context.close()
    page = new_page(browser)  # axe needs JavaScript: the same page, checked with it on
    page.goto(thanks)
    axe(page, "feedback_thanks")
    page.context.close()

    page = new_page(browser)
    page.goto(server + "/")
    ask(page, "地域おこし協力隊の任期")
    fb = page.locator("#transcript form.feedback").last
    fb.get_by_role("button", name="役に立たなかった").click()
    assert fb.locator("details").evaluate("d => d.open")  # the comment box opens first
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    fb.locator("textarea").fill("もっと詳しく")
    fb.get_by_role("button", name="送信する").click()
    page.locator("#transcript [role=status]", has_text="ありがとう").wait_for()
    page.context.close()


def test_dates_by_kind_on_the_faq_page_with_breadcrumbs_and_back(server, browser):
    page = new_page(browser)
    page.goto(server + "/faqs/kaso-zeisei-kigen")
    text = page.inner_text("main")
    assert "まで有効" in text and "受付中" not in text
    crumbs = page.locator("nav[aria-label='現在位置'] a")
    assert crumbs.count() >= 3  # トップ and every level of the category
    page.get_by_role("link", name="← 戻る").click()
    assert "node=" in page.url
    check_sizes_and_contrast(page)
    page.goto(server + "/faqs/kaso-zeisei-kigen")
    check_sizes_and_contrast(page)
    axe(page, "faq_page")
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_counter_shows_dates_and_contacts_and_copies_without_the_clipboard_api(server, browser, viewport):
    page = new_page(browser, viewport, init="Object.defineProperty(navigator, 'clipboard', {value: undefined});")
    page.goto(server + "/counter")
    page.fill("#cq", "きくみみ 電話")
    page.locator("#results li.result").first.wait_for()
    with_contacts = page.locator("#results li.result", has=page.locator("ul.contacts")).first
    assert with_contacts.locator("a[href^='tel:']").count() >= 1
    with_contacts.get_by_role("button", name="回答をコピー").click()
    copied = with_contacts.locator("textarea.copy").input_value()
    assert all(part in copied for part in ("【問合せ先】", "出典", "URL: http"))
    assert with_contacts.get_by_role("button").first.inner_text() in ("コピーしました", "選択しました。Ctrl+C でコピーしてください")
    page.fill("#cq", "過疎 税制 特例 適用期限")
    page.locator("#results ul.dates").first.wait_for()
    assert "まで有効" in page.locator("#results").inner_text()
    check_sizes_and_contrast(page)
    axe(page, "counter_results")
    page.context.close()


def test_memo_print_view(server, browser):
    page = new_page(browser)
    page.goto(server + "/faqs/kaso-zeisei-kigen")
    page.get_by_role("link", name="窓口持参メモを印刷").first.click()
    page.wait_for_url("**/memo")
    page.fill("#place", "那覇市")
    page.press("#place", "Enter")
    page.wait_for_url("**place=**")
    memo = page.locator("section.memo")
    text = memo.inner_text()
    assert all(p in text for p in ("日程", "まで有効", "出典", "/faqs/kaso-zeisei-kigen", "きくみみ沖縄"))
    assert memo.locator("svg[role=img]").count() == 1
    assert page.get_by_role("button", name="印刷する").is_visible()
    check_sizes_and_contrast(page)
    axe(page, "memo")
    page.emulate_media(media="print")
    assert not page.locator("form.ask").is_visible() and not page.locator("header.site").is_visible()
    assert memo.locator("svg").is_visible()
    shot(page, "memo_print")
    axe(page, "memo_print")
    page.goto(server + "/faqs/kaso-zeisei-kigen")
    assert not page.locator("form.feedback").first.is_visible() and not page.locator("nav").first.is_visible()
    page.context.close()


def test_furigana_and_easy_japanese_toggles_are_remembered(server, browser):
    page = new_page(browser)
    page.goto(server + "/?ruby=1")
    assert page.locator("main ruby rt").count() > 5
    axe(page, "ruby")
    page.goto(server + "/counter")
    assert page.locator("main ruby").count() > 0  # remembered
    page.get_by_role("link", name="ふりがなを消す").click()
    assert page.locator("main ruby").count() == 0
    page.goto(server + "/")
    assert page.locator("main ruby").count() == 0
    page.goto(server + "/faqs/saigai-risai-shomeisho")
    page.get_by_role("link", name="やさしい日本語").click()
    assert page.locator(".easy-note").count() == 1
    ask_page = page
    ask_page.goto(server + "/?ruby=1")
    ask(ask_page, "地域おこし協力隊の任期")
    card = ask_page.locator("#transcript article.reply-answer").last
    card.wait_for()
    assert card.locator("rt").count() > 0  # replies added by JavaScript get ふりがな too
    check_sizes_and_contrast(ask_page)
    axe(ask_page, "ruby_easy_answer")
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_widget_on_a_municipality_page(server, browser, hosts, viewport):
    page = new_page(browser, viewport)
    page.goto(f"http://127.0.0.1:{hosts['allowed']}/index.html")
    launcher = page.get_by_role("button", name="よくある質問チャットで質問する")
    launcher.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="よくある質問チャット")
    dialog.wait_for()
    assert launcher.get_attribute("aria-expanded") == "true"
    assert page.evaluate("document.activeElement.className") == "govfaq-close"  # focus moved into the dialog
    frame = page.frame_locator("iframe[title='よくある質問チャット']")
    frame.locator("#q").fill("地域おこし協力隊の任期")
    frame.locator("#q").press("Enter")
    frame.locator("#transcript article.reply-answer").wait_for()
    embed = next(f for f in page.frames if f.url.endswith("/embed"))
    axe(embed, "embed_answer")
    axe(page, "widget_open")
    frame.locator("#q").press("Escape")  # Esc inside the chat (another origin) closes it
    page.wait_for_function("document.activeElement && document.activeElement.className === 'govfaq-launcher'")
    assert not dialog.is_visible() and launcher.get_attribute("aria-expanded") == "false"
    page.keyboard.press("Enter")
    dialog.wait_for()
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    shot(page, "widget")
    page.context.close()


def test_embed_refuses_a_page_not_allowed(server, browser, hosts):
    page = new_page(browser)
    page.goto(f"http://127.0.0.1:{hosts['other']}/index.html")
    page.get_by_role("button", name="よくある質問チャットで質問する").click()
    page.get_by_role("dialog").wait_for()
    page.wait_for_timeout(1500)
    frame = next(f for f in page.frames if f != page.main_frame)
    assert frame.locator("#ask-form").count() == 0  # blocked by frame-ancestors
    page.context.close()
    # Every other page refuses framing, even from the allowed origin.
    page = new_page(browser)
    page.goto(f"http://127.0.0.1:{hosts['allowed']}/index.html")
    page.evaluate(f"() => {{ const f = document.createElement('iframe'); f.src = '{server}/'; f.title = 'x'; document.body.appendChild(f); }}")
    page.wait_for_timeout(1500)
    frame = next(f for f in page.frames if f != page.main_frame)
    assert frame.locator("#ask-form").count() == 0
    page.context.close()
