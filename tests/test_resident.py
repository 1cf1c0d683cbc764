"""Issue 14 in-process: tappable contacts, ふりがな, やさしい日本語, feedback without JavaScript,
「どれにも当てはまらない」, the 窓口持参メモ, the widget and who may frame /embed."""

import re
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from bot.dialogue import Bot, Candidate, Reply
from bot.records import RecordStore
from bot.settings import Settings
from faq.easy import measure
from faq.loader import load_knowledge_base
from web.app import create_app
from web.textfmt import Furigana, rich_text

ORIGIN = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def bot(fast_engine, tmp_path_factory):
    return Bot(fast_engine, records=RecordStore(tmp_path_factory.mktemp("records") / "r.sqlite3"))


def make_client(bot, tmp_path_factory, **settings):
    return TestClient(create_app(Settings(data_dir=tmp_path_factory.mktemp("var"), **settings), bot=bot))


@pytest.fixture(scope="module")
def client(bot, tmp_path_factory):
    return make_client(bot, tmp_path_factory, embed_origins=ORIGIN, feedback_rate_per_minute=5)


def test_phone_numbers_urls_and_mail_become_links_and_nothing_else_is_markup():
    html = rich_text("電話 0570-090-110、098(867)1100 https://www.soumu.go.jp/a.html(QR) a@b.go.jp <b>x</b>")
    assert '<a href="tel:0570090110">0570-090-110</a>' in html
    assert '<a href="tel:0988671100">098(867)1100</a>' in html
    assert '<a href="https://www.soumu.go.jp/a.html">https://www.soumu.go.jp/a.html</a>(QR)' in html
    assert '<a href="mailto:a@b.go.jp">' in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>" not in html
    assert "href" not in rich_text('"><script>alert(1)</script> 2026年')


def test_furigana_over_kanji_only_with_staff_corrections_first():
    f = Furigana({"佐賀関": "さがのせき"})
    html = str(f.html("申し込みは佐賀関で"))
    assert "<ruby>申<rt>もう</rt></ruby>し<ruby>込<rt>こ</rt></ruby>み" in html
    assert "<ruby>佐賀関<rt>さがのせき</rt></ruby>" in html
    assert str(f.html("ひらがなとカタカナ")) == "ひらがなとカタカナ"
    assert f.segments("申し込み") is f.segments("申し込み")  # cached per text
    assert "&lt;" in str(f.html("<税>"))


def test_answers_link_their_contacts(client):
    html = client.get("/", params={"q": "きくみみ沖縄の電話番号"}).text
    assert 'href="tel:0988671100"' in html


def test_ruby_by_query_and_remembered_by_cookie(client):
    page = client.get("/", params={"ruby": "1"})
    assert "<rt>" in page.text and "govfaq_ruby=1" in page.headers["set-cookie"]
    assert "<rt>" in client.get("/counter").text or "<rt>" in client.get("/").text  # the cookie is kept
    assert "<rt>" not in client.get("/", params={"ruby": "0"}).text
    client.cookies.clear()


def test_easy_answer_when_chosen(client, shipped):
    faq = next(f for f in shipped.kb.faqs if f.easy_answer)
    plain = client.get(f"/faqs/{faq.id}").text
    easy = client.get(f"/faqs/{faq.id}", params={"easy": "1"}).text
    first = faq.easy_answer.split("\n")[0][:15]
    assert first not in plain.replace("\n", "") or first in faq.answer
    assert first in easy and "やさしい日本語で書いています" in easy
    client.cookies.clear()


def test_candidates_once_as_buttons_with_none_of_these(client, bot, shipped, monkeypatch):
    faqs = shipped.kb.faqs[:3]
    candidates = [Candidate(f.id, f.question, f.answer, 0.5) for f in faqs]
    text = "もしかして、次のご質問ですか。\n" + "\n".join(f"・{f.question}" for f in faqs)
    reply = Reply(kind="candidates", answered=False, faq_id=None, answer=text, band="candidates", confidence=0.5,
                  candidates=candidates)
    monkeypatch.setattr(bot, "reply", lambda query, session: reply)
    html = client.get("/", params={"q": "x"}).text
    card = html[html.index('<article class="bot'):]
    for f in faqs:
        assert card.count(f">{f.question}<") == 1, f.question  # once: the button, not the text too
    assert card.count("どれにも当てはまらない") == 1
    # A reply that already offers the choice (bot/dialogue.py may add it) does not get a second one.
    with_none = replace(reply, choices=[{"label": "どれにも当てはまらない", "query": "どれにも当てはまらない"}])
    monkeypatch.setattr(bot, "reply", lambda query, session: with_none)
    card = client.get("/", params={"q": "x"}).text
    assert card.count("どれにも当てはまらない<") == 1 and all(card.count(f">{f.question}<") == 1 for f in faqs)
    monkeypatch.undo()
    fallback = client.get("/none", params={"none": "1"}).text
    assert "当てはまるご質問がなかった" in fallback and "tel:" in fallback


def test_feedback_without_javascript_redirects_back_and_is_rate_limited(client, bot, shipped):
    faq = shipped.kb.faqs[0]
    r = client.post("/feedback", data={"faq_id": faq.id, "helpful": "0", "comment": "電話 090-1234-5678 に連絡を"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/faqs/{faq.id}?thanks=1")
    assert "ご意見ありがとうございました" in client.get(r.headers["location"]).text
    stored = bot.records.insights(days=30)["unhelpful"]
    assert any(u["faq_id"] == faq.id and u["comment"] for u in stored)
    assert all("090-1234-5678" not in (u["comment"] or "") for u in stored)  # masked before storing
    codes = [client.post("/feedback", data={"faq_id": faq.id, "helpful": "1"}, follow_redirects=False).status_code
             for _ in range(6)]
    assert 429 in codes


def test_memo_has_dates_contacts_source_url_and_an_inline_qr(client, shipped):
    faq = next(f for f in shipped.kb.faqs if f.deadlines and f.contacts)
    html = client.get(f"/faqs/{faq.id}/memo", params={"place": "那覇市"}).text
    assert "窓口持参メモ" in html and "日程" in html and "問合せ先" in html and "出典" in html
    assert f"/faqs/{faq.id}" in html and "<svg" in html and 'role="img"' in html
    assert "きくみみ沖縄" in html
    assert "<img" not in html and "style=" not in html  # CSP-clean: no inline style, no external image


def test_expiry_is_not_a_countdown(client, shipped):
    faq = next(f for f in shipped.kb.faqs if any(d.kind == "expiry" for d in f.deadlines))
    html = client.get(f"/faqs/{faq.id}").text
    assert "まで有効" in html and "受付中" not in html


def test_search_hits_carry_dates_contacts_and_the_whole_card(client):
    body = client.get("/api/search", params={"q": "罹災証明書"}).json()
    hit = body["hits"][0]
    assert "出典" in hit["card_text"] and isinstance(hit["deadlines"], list) and isinstance(hit["contacts"], list)
    assert any(h["contacts"] for h in body["hits"])


def test_embed_framable_only_by_the_allowed_origins(client, bot, tmp_path_factory):
    embed = client.get("/embed")
    assert f"frame-ancestors {ORIGIN}" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers
    for path in ("/", "/counter", "/widget.js"):
        r = client.get(path)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
    closed = make_client(bot, tmp_path_factory).get("/embed")
    assert "frame-ancestors 'none'" in closed.headers["content-security-policy"] and closed.headers["x-frame-options"] == "DENY"


def test_embed_origins_must_be_origins():
    with pytest.raises(ValueError):
        Settings(embed_origins="https://ok.example.jp 'unsafe-inline'; script-src *")
    assert Settings(embed_origins=" https://a.example.jp  http://127.0.0.1:8080 ").embed_origins == "https://a.example.jp http://127.0.0.1:8080"


def test_widget_script(client):
    r = client.get("/widget.js")
    assert r.headers["content-type"].startswith("text/javascript")
    assert "/embed" in r.text and "aria-label" in r.text and "Escape" in r.text


def test_the_fragment_is_the_page_card(client, shipped):
    r = client.post("/fragments/reply", json={"query": shipped.kb.faqs[5].question})
    assert r.status_code == 200 and r.headers["x-govfaq-session"]
    assert '<h2 class="visually-hidden">回答</h2>' in r.text and 'action="/feedback"' in r.text


def test_easy_japanese_measures():
    r = measure("これは やさしい 日本語です。しなければなりません。ご覧ください。")
    assert 0 < r.kanji_share < 0.3 and r.double_negatives and r.honorifics and r.warnings
    assert not measure("あした 役所に 行きます。").warnings


def test_readings_file_is_checked(tmp_path, shipped):
    import shutil

    content = tmp_path / "content"
    shutil.copytree(shipped.kb.content_dir, content)
    (content / "readings.yaml").write_text(
        "- {surface: 佐賀関, reading: さがのせき}\n- {surface: 佐賀関, reading: さがせき}\n"
        "- {surface: ひらがな, reading: ひらがな}\n- {surface: 大船渡, reading: オオフナト}\n", encoding="utf-8")
    result = load_knowledge_base(content)
    found = [str(p) for p in result.problems if "readings.yaml" in str(p)]
    assert len(found) == 3, found
    assert all(re.search(r"readings\.yaml:\d+", p) for p in found)
    assert result.kb.readings == {"佐賀関": "さがのせき"}


def test_faq_check_reports_each_easy_answer_as_a_warning_never_an_error(capsys, shipped):
    from bot.cli import main

    assert main(["faq", "check"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "easy_answer (" in line and "漢字 " in line]
    assert len(lines) == sum(1 for f in shipped.kb.faqs if f.easy_answer) >= 71
    assert re.search(r"faqs/[^:]+\.yaml:\d+: easy_answer \([a-z0-9-]+\): 漢字 \d+%・一文 最長 \d+字", lines[0])
