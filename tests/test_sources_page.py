"""The asked fact first, and its source one click away (issue 11).

Question typing and fact lines on small texts; the card's highlight and 出典
link in the JSON reply and the server-rendered card; the /sources pages."""

import dataclasses
import re
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from bot.dialogue import Bot
from bot.question_type import asked_fact, fact_line
from bot.settings import Settings
from faq.sources import SourceDoc, markdown_sections
from web.app import create_app

LONG = "制度の概要です。\n補助の上限は500万円です。\n問合せは電話 03-5253-5111 まで。\n令和8年2月20日(金)締切。\n対象は24県・44市町村です。"


@pytest.mark.parametrize(("query", "kind"), [
    ("協力隊の担当の電話番号", "phone"), ("問い合わせ先を教えて", "phone"), ("What is the phone number?", "phone"),
    ("締切はいつ？", "date"), ("応募の期限", "date"), ("When is the deadline?", "date"),
    ("上限はいくら", "amount"), ("補助の金額", "amount"), ("how much is it", "amount"),
    ("何団体が参加していますか", "count"), ("いくつありますか", "count"), ("How many towns?", "count"),
    ("協力隊とは", None), ("", None),
])
def test_the_asked_fact_is_typed_by_generic_cues(query, kind):
    assert asked_fact(query) == kind


def test_the_line_holding_the_fact_is_found():
    assert fact_line(LONG, "phone") == "問合せは電話 03-5253-5111 まで。"
    assert fact_line(LONG, "amount") == "補助の上限は500万円です。"
    assert fact_line(LONG, "date") == "令和8年2月20日(金)締切。"
    assert fact_line(LONG, "count") == "対象は24県・44市町村です。"
    assert fact_line(LONG, None) is None
    assert fact_line("電話 03-5253-5111 です。", "phone") is None  # one line: nothing to bring forward
    assert fact_line("概要です。\n詳しくは資料で。", "phone") is None
    assert fact_line("きくみみ宮城\n022(222)1100", "phone") == "022(222)1100"


@pytest.fixture(scope="module")
def bot(fast_engine):
    return Bot(fast_engine)


@pytest.fixture(scope="module")
def client(bot, tmp_path_factory):
    return TestClient(create_app(Settings(data_dir=tmp_path_factory.mktemp("var")), bot=bot))


def _faq_with_phone_in_a_long_card(bot):
    for faq in bot.kb.faqs:
        lines = [line for line in bot.card_lines(faq) if line.strip()]
        if faq.contacts and len(lines) >= 4 and faq.source.line:
            return faq
    raise AssertionError("no FAQ with contacts and a long card")


def test_the_source_is_labelled_once_and_in_full(bot):
    for faq in bot.kb.faqs:
        src = bot.source_of(faq)
        title = bot.kb.document_title(faq.source.document)
        assert src["label"].startswith(title)
        assert "「「" not in bot.answer_text(faq).splitlines()[-1]
        assert src["url"] == f"/sources/{faq.source.document}" + (f"#L{faq.source.line}" if faq.source.line else "")
    work = next(f for f in bot.kb.faqs if f.source.document.startswith("000_") and f.source.section == bot.kb.document_title(f.source.document))
    assert bot.source_of(work)["label"] == bot.kb.document_title(work.source.document)  # not "title › title"
    sub = next(f for f in bot.kb.faqs if f.source.document.startswith("003_"))
    assert bot.source_of(sub)["label"] == f"{bot.kb.document_title(sub.source.document)} › {sub.source.section}"


def test_reply_highlights_the_asked_line(bot):
    faq = _faq_with_phone_in_a_long_card(bot)
    reply = bot.reply(f"{faq.question} 電話番号は")
    if reply.kind != "answer":
        pytest.skip("the hashing embedder did not answer this one")
    card = "\n".join(bot.card_lines(bot.kb.get(reply.faq_id)))
    assert reply.highlight and reply.highlight in card and re.search(r"\d{2,4}[-(（)）]\d", reply.highlight)
    assert bot.reply(reply.message).highlight is None or asked_fact(reply.message)


def test_json_and_page_show_the_highlight_and_link_the_source(client, bot):
    faq = _faq_with_phone_in_a_long_card(bot)
    query = f"{faq.question} 電話番号は"
    body = client.post("/api/ask", json={"query": query}).json()
    if body["kind"] != "answer":
        pytest.skip("the hashing embedder did not answer this one")
    assert body["highlight"] and body["sources"][0]["url"].startswith("/sources/")
    page = client.get("/", params={"q": query}).text
    assert f'<p class="highlight"><strong>お尋ねの点:</strong> <mark>' in page
    src = body["sources"][0]
    assert f'<a href="{src["url"]}">' in page
    assert "出典: " not in page.split('<div class="answer">', 1)[1].split("</div>", 1)[0]  # the text line became the link


def test_faq_page_links_its_source(client, bot):
    faq = _faq_with_phone_in_a_long_card(bot)
    page = client.get(f"/faqs/{faq.id}").text
    assert f'href="/sources/{faq.source.document}#L{faq.source.line}"' in page


def test_sources_page_has_a_line_anchor_in_a_passage_for_every_cited_line(client, bot):
    for name, doc in bot.kb.sources.items():
        page = client.get(f"/sources/{name}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<script" not in page.text.split("</main>")[0].split('<div class="document">', 1)[1]
        ids = re.findall(r'id="L(\d+)"', page.text)
        assert ids == [str(n) for n in range(1, len(doc.lines) + 1)]
        cited = {f.source.line for f in bot.kb.faqs if f.source.document == name and f.source.line}
        assert all(1 <= line <= len(doc.lines) for line in cited)
    listing = client.get("/sources").text
    assert all(f'href="/sources/{name}"' in listing for name in bot.kb.sources)


def test_sources_page_escapes_the_document(bot, tmp_path):
    text = "# 見出し <b>太字</b>\n本文 <script>alert(1)</script> & 記号\n"
    doc = SourceDoc("x.txt", text, "テスト資料", markdown_sections("x.txt", text))
    kb = dataclasses.replace(bot.kb, sources={"x.txt": doc})
    app = create_app(Settings(data_dir=tmp_path), bot=Bot(SimpleNamespace(kb=kb)))
    page = TestClient(app).get("/sources/x.txt").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; 記号" in page and "<b>" not in page
    assert doc.passages == [(1, 2)]


def test_unknown_document_is_a_404_in_japanese(client):
    for name in ("no-such.txt", "000_7c05969b9e7baf7e", "..pyproject.toml"):
        response = client.get(f"/sources/{name}")
        assert response.status_code == 404 and "見つかりません" in response.json()["detail"]
    assert client.get("/sources/..%2F..%2Fpyproject.toml").status_code == 404  # no file outside the documents


def test_passages_split_at_every_heading():
    text = "前書き\n# A\n本文1\n## B\n本文2\n本文3\n# C\n"
    doc = SourceDoc("y.txt", text, "y", markdown_sections("y.txt", text))
    assert doc.passages == [(1, 1), (2, 3), (4, 6), (7, 7)]
