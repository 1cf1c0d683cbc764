"""The JSON API and pages against their own OpenAPI document, with Schemathesis.

For every documented operation Schemathesis generates valid and invalid
requests; each response must not be a 5xx, must have a documented status
code and content type, and its body (and documented headers) must match the
documented schema. Invalid input must be refused with a 4xx.

The bot is injected (hashing embedder, as in test_web.py) and the rate limits
are off, so no request is refused for arriving too fast. The app is built at
import time, once: `schema.parametrize()` needs the schema when pytest collects
the module (the lazy `schemathesis.pytest.from_fixture` loader does not work
with pytest 9, which dropped `Node._nodeid`).
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from bot.dialogue import Bot
from bot.records import RecordStore
from bot.settings import Settings
from tests.fakes import shipped_engine
from web.app import MAX_BODY_BYTES, create_app

_TMP = tempfile.TemporaryDirectory(prefix="govfaq-schema-")  # removed when the interpreter exits

# No 5xx; status code, content type, body and headers as documented.
CONFORMANCE = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]
# And for generated requests: invalid ones are refused with a 4xx, valid ones are not (404 allowed).
CHECKS = [*CONFORMANCE, schemathesis.checks.negative_data_rejection, schemathesis.checks.positive_data_acceptance]


@functools.cache
def _bot() -> Bot:
    return Bot(shipped_engine(), records=RecordStore(Path(_TMP.name) / "records.sqlite3"))


def _app(**limits):
    data_dir = Path(tempfile.mkdtemp(dir=_TMP.name))
    return create_app(Settings(data_dir=data_dir, **{"ask_rate_per_minute": 0, "feedback_rate_per_minute": 0, **limits}), bot=_bot())


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_every_operation_answers_as_documented(case):
    case.call_and_validate(checks=CHECKS)


def test_every_operation_is_tested():
    labels = {op.ok().label for op in schema.get_all_operations()}
    assert labels >= {
        "GET /healthz", "GET /readyz", "POST /api/ask", "GET /api/scenarios", "GET /api/scenarios/{node}",
        "GET /api/faqs/{faq_id}", "POST /api/feedback", "GET /api/search", "GET /api/contacts",
        "GET /", "POST /", "GET /counter", "GET /faqs/{faq_id}",
    }


def test_errors_are_documented_as_the_detail_the_service_sends():
    """The handlers answer every 4xx with {"detail": "…"}: FastAPI's default 422 body must not be documented."""
    document = schema.raw_schema
    assert "HTTPValidationError" not in json.dumps(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4") or status.startswith("5"):
                    (media_type, content), = response["content"].items()
                    assert media_type == "application/json", (method, path, status)
                    assert content["schema"].get("$ref", "").endswith("/ErrorResponse") or content["schema"]["required"] == [
                        "detail"
                    ], (method, path, status)


def test_a_rate_limited_reply_is_documented():
    limited = schemathesis.openapi.from_asgi("/openapi.json", _app(ask_rate_per_minute=1, feedback_rate_per_minute=1))
    ask = limited["/api/ask"]["POST"].Case(body={"query": "協力隊の任期"}, media_type="application/json")
    assert ask.call().status_code == 200
    refused = ask.call()
    assert refused.status_code == 429 and int(refused.headers["retry-after"][0]) >= 1
    ask.validate_response(refused, checks=CONFORMANCE)
    faq_id = _bot().kb.faqs[0].id
    feedback = limited["/api/feedback"]["POST"].Case(body={"faq_id": faq_id, "helpful": True}, media_type="application/json")
    assert feedback.call().status_code == 200
    refused = feedback.call()
    assert refused.status_code == 429
    feedback.validate_response(refused, checks=CONFORMANCE)


def test_an_over_long_body_is_a_documented_413():
    operation = schema["/api/ask"]["POST"]
    case = operation.Case(body={"query": "あ" * 10, "session_id": None}, media_type="application/json")
    padding = b" " * (MAX_BODY_BYTES + 1)
    response = case.call(data=b'{"query": "x"' + padding + b"}", headers={"content-type": "application/json"})
    assert response.status_code == 413 and "大きすぎます" in response.json()["detail"]
    case.validate_response(response, checks=CONFORMANCE)


def test_a_body_that_is_not_utf8_is_a_documented_400():
    operation = schema["/api/feedback"]["POST"]
    case = operation.Case(body={"faq_id": "x", "helpful": True}, media_type="application/json")
    response = case.call(data=b'{"faq_id": "\xff\xfe", "helpful": true}', headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["detail"]
    case.validate_response(response, checks=CONFORMANCE)
