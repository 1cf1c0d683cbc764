"""The minimal service: health, one FAQ as JSON, the list of FAQs by field."""

import pytest
from fastapi.testclient import TestClient

from bot.settings import Settings
from web.app import create_app


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(Settings()))


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_faq_by_id_with_contacts_and_source(client, shipped):
    faq = next(f for f in shipped.kb.faqs if f.contacts)
    body = client.get(f"/api/faq/{faq.id}").json()
    assert body["faq"]["id"] == faq.id
    assert body["faq"]["answer"] == faq.answer
    assert [c["id"] for c in body["contacts"]] == faq.contacts
    assert body["document_title"]


def test_unknown_faq_is_a_404_in_japanese(client):
    response = client.get("/api/faq/no-such-faq")
    assert response.status_code == 404
    assert "見つかりません" in response.json()["detail"]


def test_list_page_groups_faqs_by_field(client, shipped):
    page = client.get("/")
    assert page.status_code == 200 and 'lang="ja"' in page.text
    for node in shipped.kb.tree:
        assert node.title in page.text
    assert page.text.count("<li>") == len(shipped.kb.faqs)


def test_broken_content_does_not_take_the_service_down(tmp_path):
    import shutil

    from faq.loader import CONTENT_DIR

    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    (content / "faqs" / "zz_broken.yaml").write_text("- id: [broken\n", encoding="utf-8")
    client = TestClient(create_app(Settings(content_dir=content)))
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200
