"""Scheduled content (issue 15, part 6): an FAQ with publish_from / valid_until appears and
retires on its own, with a frozen clock and without rebuilding the index."""

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient

from bot.cli import main
from bot.deadlines import TOKYO
from bot.dialogue import Bot
from bot.scenario import scenario_view
from bot.settings import Settings
from faq.loader import KnowledgeBase, load_knowledge_base
from faq.schedule import in_force, scheduled, state
from faq.schema import FAQ
from index.engine import SearchConfig, SearchEngine
from index.tokenize import JapaneseTokenizer
from tests.fakes import HashingEmbedder
from tests.test_check import GOOD_FAQ, make_content
from web.app import create_app

OPENS, CLOSES = dt.date(2026, 4, 1), dt.date(2027, 3, 31)


def test_dates_are_inclusive_in_tokyo():
    faq = FAQ.model_validate(
        {"id": "x-1", "question": "q", "answer": "a", "category": ["a", "b"], "source": {"document": "d", "section": "s"},
         "updated": "2026-01-01", "publish_from": "2026-04-01", "valid_until": "2027-03-31"}
    )
    assert [state(faq, d) for d in (OPENS - dt.timedelta(1), OPENS, CLOSES, CLOSES + dt.timedelta(1))] == [
        "公開前", "掲載中", "掲載中", "掲載終了"
    ]
    assert in_force(faq, OPENS) and not in_force(faq, CLOSES + dt.timedelta(1))


def test_publish_from_after_valid_until_is_reported_at_valid_until(tmp_path):
    faq = GOOD_FAQ.replace("  updated: 2026-11-22\n", "  updated: 2026-11-22\n  publish_from: 2027-04-01\n  valid_until: 2027-03-31\n")
    content, sources = make_content(tmp_path, faq)
    found = [str(p).replace(str(content) + "/", "") for p in load_knowledge_base(content, sources).problems]
    assert found == [
        "faqs/a.yaml:11: valid_until: 掲載終了日（2027-03-31）が掲載開始日 publish_from（2027-04-01）より前になっています"
    ], found


def test_a_bad_schedule_date_is_a_japanese_date_error(tmp_path):
    content, sources = make_content(tmp_path, GOOD_FAQ + "  publish_from: 4月1日\n")
    found = [str(p).replace(str(content) + "/", "") for p in load_knowledge_base(content, sources).problems]
    assert found == ["faqs/a.yaml:10: publish_from: 日付の形が正しくありません（例: 2026-02-20）"], found


# --------------------------------------------------------------------------- #
# serving: one index, a clock that moves
# --------------------------------------------------------------------------- #
N = 40


@pytest.fixture(scope="module")
def scheduled_kb(shipped):
    """40 shipped FAQs; the first appears on OPENS, the second retires after CLOSES."""
    faqs = list(shipped.kb.faqs[:N])
    faqs[0] = faqs[0].model_copy(update={"publish_from": OPENS})
    faqs[1] = faqs[1].model_copy(update={"valid_until": CLOSES})
    kb = shipped.kb
    return KnowledgeBase(faqs, kb.contacts, kb.tree, kb.synonyms, kb.sources, kb.catalogue, kb.content_dir, kb.faq_locations)


@pytest.fixture(scope="module")
def engine(scheduled_kb):
    tokenizer = JapaneseTokenizer([(g.canonical, g.variants) for g in scheduled_kb.synonyms])
    return SearchEngine(scheduled_kb, HashingEmbedder(), tokenizer, SearchConfig()).build()


@pytest.fixture
def clock():
    """A clock the test moves: [day]."""
    return [OPENS - dt.timedelta(days=1)]


@pytest.fixture
def bot(engine, clock):
    return Bot(engine, clock=lambda: dt.datetime.combine(clock[0], dt.time(23, 59), TOKYO))


def hit_ids(engine, query, day, **kwargs):
    return [h.faq_id for h in engine.search(query, k=N, today=day, **kwargs).hits]


def test_search_serves_only_faqs_in_force_that_day(engine, scheduled_kb):
    first, second = scheduled_kb.faqs[0], scheduled_kb.faqs[1]
    assert first.id not in hit_ids(engine, first.question, OPENS - dt.timedelta(1))
    assert hit_ids(engine, first.question, OPENS)[0] == first.id
    assert second.id in hit_ids(engine, second.question, CLOSES)
    assert second.id not in hit_ids(engine, second.question, CLOSES + dt.timedelta(1))
    # `only` (follow-ups, the counter's field filter) is narrowed, never widened.
    assert hit_ids(engine, first.question, OPENS - dt.timedelta(1), only={first.id}) == []


def test_a_day_with_everything_in_force_ranks_exactly_as_without_a_schedule(engine, scheduled_kb):
    day = OPENS  # both scheduled FAQs are in force
    assert scheduled_kb.in_force_ids(day) is None
    for faq in scheduled_kb.faqs[:5]:
        with_day = engine.search(faq.question, today=day)
        everything = engine.search(faq.question, only=set(engine.faq_ids), today=day)
        assert [(h.faq_id, h.score) for h in with_day.hits] == [(h.faq_id, h.score) for h in everything.hits]
        assert with_day.confidence == everything.confidence


def test_the_bot_follows_its_clock_without_a_rebuild(bot, clock, engine, scheduled_kb):
    first = scheduled_kb.faqs[0]
    built = (engine.lexical, engine.dense)

    def mentioned(reply):
        return first.id == reply.faq_id or first.id in {c.faq_id for c in reply.candidates} | {r["faq_id"] for r in reply.related}

    assert not mentioned(bot.reply(first.question))
    clock[0] = OPENS
    assert mentioned(bot.reply(first.question))
    assert (engine.lexical, engine.dense) == built  # the same index served both days


def test_pages_and_scenarios_leave_out_what_is_not_in_force(bot, clock, scheduled_kb, tmp_path):
    first, second = scheduled_kb.faqs[0], scheduled_kb.faqs[1]
    client = TestClient(create_app(Settings(data_dir=tmp_path), bot=bot))
    node = _node_id(scheduled_kb, first.category)

    def listed():
        return {f["faq_id"] for f in scenario_view(bot.served(), node).faqs}

    assert client.get(f"/api/faqs/{first.id}").status_code == 404 and first.id not in listed()
    assert client.get(f"/faqs/{first.id}").status_code == 404
    clock[0] = OPENS
    assert client.get(f"/api/faqs/{first.id}").status_code == 200 and first.id in listed()
    body = client.get(f"/api/scenarios/{node}").json()
    assert first.id in {f["faq_id"] for f in body["faqs"]}
    clock[0] = CLOSES + dt.timedelta(days=1)
    assert client.get(f"/api/faqs/{second.id}").status_code == 404
    assert second.id not in {h["faq_id"] for h in client.get("/api/search", params={"q": second.question}).json()["hits"]}


def _node_id(kb, category):
    for node_id in _all_node_ids(kb.tree):
        chain = kb.node_path(node_id)
        if tuple(n.title for n in chain) == tuple(category):
            return node_id
    raise AssertionError(category)


def _all_node_ids(nodes):
    for node in nodes:
        yield node.id
        yield from _all_node_ids(node.children)


def test_unscheduled_faqs_keep_the_index_fingerprint(shipped):
    kb = shipped.kb
    same = KnowledgeBase(list(kb.faqs), kb.contacts, kb.tree, kb.synonyms, kb.sources, kb.catalogue, kb.content_dir)
    assert same.content_hash() == kb.content_hash()
    dated = [kb.faqs[0].model_copy(update={"valid_until": CLOSES}), *kb.faqs[1:]]
    changed = KnowledgeBase(dated, kb.contacts, kb.tree, kb.synonyms, kb.sources, kb.catalogue, kb.content_dir)
    assert changed.content_hash() != kb.content_hash()  # a reload builds, and every worker follows it


# --------------------------------------------------------------------------- #
# the command line
# --------------------------------------------------------------------------- #
def scheduled_content(tmp_path):
    faqs = (
        GOOD_FAQ
        + GOOD_FAQ.replace("bus-1", "bus-2") + "  publish_from: 2026-04-01\n"
        + GOOD_FAQ.replace("bus-1", "bus-3") + "  valid_until: 2026-03-31\n"
        + GOOD_FAQ.replace("bus-1", "bus-4") + "  publish_from: 2026-01-01\n  valid_until: 2026-12-31\n"
    )
    return make_content(tmp_path, faqs)


def test_faq_scheduled_lists_what_appears_and_retires(tmp_path, capsys):
    content, sources = scheduled_content(tmp_path)
    assert main(["faq", "scheduled", str(content), "--sources", str(sources), "--today", "2026-03-01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "掲載期間のある FAQ 3 件（2026-03-01 現在）:"
    assert [line.split(": ", 1)[1] for line in out[1:]] == [
        "公開前 2026-04-01〜 bus-2: バスはありますか。",
        "掲載中 〜2026-03-31 bus-3: バスはありますか。",
        "掲載中 2026-01-01〜2026-12-31 bus-4: バスはありますか。",
    ]
    assert out[1].lstrip().startswith(str(content / "faqs" / "a.yaml") + ":10")
    assert main(["faq", "scheduled", str(content), "--sources", str(sources), "--today", "2026-04-01", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # In force: the one that retires first comes first.
    assert [(r["faq_id"], r["state"]) for r in rows] == [("bus-4", "掲載中"), ("bus-2", "掲載中"), ("bus-3", "掲載終了")]


def test_faq_check_lists_the_schedule_on_stderr_and_passes(tmp_path, capsys):
    content, sources = scheduled_content(tmp_path)
    assert main(["faq", "check", str(content), "--sources", str(sources), "--today", "2026-03-01"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "掲載期間のある FAQ 3 件（2026-03-01 現在）:" in captured.err and "公開前 2026-04-01〜 bus-2" in captured.err


def test_scheduled_is_sorted_by_the_next_change(scheduled_kb):
    rows = scheduled(scheduled_kb, OPENS - dt.timedelta(1))
    assert [(r.faq_id, r.state) for r in rows] == [(scheduled_kb.faqs[0].id, "公開前"), (scheduled_kb.faqs[1].id, "掲載中")]
