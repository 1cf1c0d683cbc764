"""The web service in-process: JSON API, pages without JavaScript, errors.

The bot is injected (hashing embedder), so these tests need no model."""

import pytest
from fastapi.testclient import TestClient

from bot.dialogue import Bot
from bot.records import RecordStore
from bot.settings import Settings
from web.app import create_app


@pytest.fixture(scope="module")
def bot(fast_engine, tmp_path_factory):
    return Bot(fast_engine, records=RecordStore(tmp_path_factory.mktemp("records") / "g.sqlite3"))


@pytest.fixture(scope="module")
def client(bot, tmp_path_factory):
    return TestClient(create_app(Settings(data_dir=tmp_path_factory.mktemp("var")), bot=bot))


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_ask_returns_the_structured_reply(client):
    body = client.post("/api/ask", json={"query": "鹿児島の相談窓口"}).json()
    assert body["kind"] == "contacts" and body["answered"] and "099(223)1100" in body["answer"]
    assert body["session_id"]


def test_session_carries_the_place_into_the_fallback(client):
    first = client.post("/api/ask", json={"query": "函館に住んでいます"}).json()
    second = client.post("/api/ask", json={"query": "ｊｋｌｓｄｆ", "session_id": first["session_id"]}).json()
    assert second["session_id"] == first["session_id"]
    if second["kind"] == "fallback":
        assert "きくみみ函館" in second["answer"]


def test_invalid_input_is_a_422_in_japanese(client):
    for body in ({"query": ""}, {"query": "あ" * 501}, {"q": "x"}, {"query": "x", "extra": 1}):
        response = client.post("/api/ask", json=body)
        assert response.status_code == 422 and "入力が正しくありません" in response.json()["detail"]


def test_an_over_long_body_is_a_413(client):
    response = client.post("/api/ask", content=b"{" + b" " * 20000 + b"}", headers={"content-type": "application/json"})
    assert response.status_code == 413 and "大きすぎます" in response.json()["detail"]


def test_faqs_and_scenarios(client, shipped):
    faq = next(f for f in shipped.kb.faqs if f.contacts)
    body = client.get(f"/api/faqs/{faq.id}").json()
    assert body["id"] == faq.id and body["answer"] == faq.answer and body["document_title"]
    assert [c["id"] for c in body["contact_details"]] == faq.contacts
    assert client.get("/api/faqs/no-such-faq").status_code == 404
    top = client.get("/api/scenarios").json()
    assert [c["title"] for c in top["children"]] == [n.title for n in shipped.kb.tree]
    node = client.get(f"/api/scenarios/{top['children'][0]['id']}").json()
    assert node["breadcrumbs"][-1]["id"] == top["children"][0]["id"]
    response = client.get("/api/scenarios/nope")
    assert response.status_code == 404 and "見つかりません" in response.json()["detail"]


def test_feedback_is_stored_masked(client, bot):
    reply = client.post("/api/ask", json={"query": "地域おこし協力隊の任期"}).json()
    # Feedback is about storing and masking, not ranking: any FAQ the reply names, else the first one.
    faq_id = reply["faq_id"] or next((c["faq_id"] for c in reply["candidates"]), bot.kb.faqs[0].id)
    response = client.post("/api/feedback", json={"faq_id": faq_id, "helpful": False, "comment": "電話 03-1234-5678 につながらない", "query_id": reply["query_id"]})
    assert response.json()["stored"] is True
    assert "03-1234-5678" not in bot.records.rows("feedback")[-1]["comment"]
    assert client.post("/api/feedback", json={"faq_id": "no-such-faq", "helpful": True}).status_code == 404


def test_the_page_works_without_javascript(client, shipped):
    page = client.get("/")
    assert page.status_code == 200 and 'lang="ja"' in page.text and 'aria-live="polite"' in page.text
    for node in shipped.kb.tree:
        assert node.title in page.text
    answered = client.get("/", params={"q": "きくみみ 沖縄"})
    assert "098(867)1100" in answered.text
    posted = client.post("/", data={"q": "きくみみ 沖縄"})
    assert "098(867)1100" in posted.text
    drilled = client.get("/", params={"node": "people-kyoryokutai"})
    assert "地域おこし協力隊" in drilled.text and "戻る" in drilled.text


def test_markup_in_a_query_is_shown_as_text(client):
    page = client.get("/", params={"q": "<script>alert(1)</script>"})
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text


def test_openapi_documents_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/ask", "/api/scenarios", "/api/scenarios/{node}", "/api/faqs/{faq_id}", "/api/feedback", "/healthz", "/readyz"):
        assert path in paths


def test_broken_content_does_not_take_the_service_down(tmp_path, bot):
    import shutil

    from faq.loader import CONTENT_DIR

    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    (content / "faqs" / "zz_broken.yaml").write_text("- id: [broken\n", encoding="utf-8")
    client = TestClient(create_app(Settings(content_dir=content, data_dir=tmp_path), bot=bot))
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200


def test_counter_search_gives_ten_ranked_faqs_with_matches(client, shipped):
    body = client.get("/api/search", params={"q": "協力隊 任期"}).json()
    assert 1 <= len(body["hits"]) <= 10 and 0 <= body["confidence"] <= 1
    assert any("任期" in h["matched_terms"] for h in body["hits"])
    first = body["hits"][0]
    assert first["document_title"] and first["section"] and first["updated"]
    field = shipped.kb.tree[4].title
    filtered = client.get("/api/search", params={"q": "相談", "field": field}).json()
    assert filtered["hits"] and all(h["category"][0] == field for h in filtered["hits"])
    assert client.get("/api/search", params={"q": ""}).status_code == 422


def test_counter_contacts_by_prefecture_or_city(client):
    body = client.get("/api/contacts", params={"place": "旭川市"}).json()
    assert body["prefecture"] == "北海道" and body["offices"][0]["name"] == "きくみみ旭川"
    assert len(client.get("/api/contacts").json()["offices"]) == 50
    assert client.get("/api/contacts", params={"place": "アトランティス"}).json()["offices"] == []


def test_counter_page_is_keyboard_first(client):
    page = client.get("/counter").text
    assert 'role="search"' in page and "/static/counter.js" in page and "↑↓" in page


def test_security_headers_on_pages_and_api(client):
    for path in ("/", "/counter", "/healthz", "/api/scenarios"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "same-origin"


def test_no_page_loads_assets_from_elsewhere(client):
    assert client.get("/docs").status_code == 404  # FastAPI's docs page would load a CDN
    for path in ("/", "/counter", "/faqs/kyoryokutai-ninki"):
        page = client.get(path).text
        assert "http://" not in page.replace("http://127.0.0.1", "") and "//cdn" not in page
        assert "<script>" not in page  # only external scripts from /static


def test_rate_limit_answers_429_with_retry_after(bot, tmp_path):
    limited = TestClient(create_app(Settings(data_dir=tmp_path, ask_rate_per_minute=3), bot=bot))
    codes = [limited.post("/api/ask", json={"query": "きくみみ 沖縄"}).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    response = limited.post("/api/ask", json={"query": "きくみみ 沖縄"})
    assert int(response.headers["retry-after"]) >= 1 and "しばらくしてから" in response.json()["detail"]
