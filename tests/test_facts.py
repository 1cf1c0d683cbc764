"""`govfaq faq coverage --facts`: the documents' facts and the FAQs that hold them (small fixture)."""

import json
from pathlib import Path

from bot.cli import main
from faq.facts import extract, fact_coverage, summary
from faq.loader import load_knowledge_base
from tests.test_check import make_content

FAQS = """\
- id: bus-1
  question: バスの補助はいくらですか。
  alt_questions: [バス 補助]
  answer: 補助の上限は500万円です。2月20日(金)までに申し込みます。
  category: [地域の暮らし, バス]
  contacts: [office-a]
  source: {document: doc.txt, section: 第1部, line: 2}
  updated: 2026-11-22
"""
DOC = """第1部
「地域バス支援事業」の上限は500万円、令和8年2月20日(金)締切。電話 03-1234-5678
第2部
参加は24県・135組合。詳しくは https://www.example.go.jp/bus/ または bus@example.go.jp へ。
交通空白解消緊急対策事業を実施する。本事業は新しい。
"""


def test_extract_finds_each_kind_once():
    facts = extract(DOC.splitlines()[1] + DOC.splitlines()[3] + DOC.splitlines()[4])
    assert ("programme", "地域バス支援事業") in facts
    assert ("amount", "500万円") in facts and ("date", "2月20日") in facts and ("phone", "03-1234-5678") in facts
    assert ("figure", "24県") in facts and ("figure", "135組合") in facts
    assert ("url", "https://www.example.go.jp/bus/") in facts and ("email", "bus@example.go.jp") in facts
    assert ("programme", "交通空白解消緊急対策事業") in facts
    assert not any(value.startswith("本事業") for _, value in facts)  # a bare 本事業 is not a name
    assert not any(kind == "figure" and value.startswith(("03", "1234", "5678")) for kind, value in facts)


def test_extract_reads_full_width_and_other_forms():
    assert ("phone", "022(222)1100") in extract("電話 ０２２（２２２）１１００")
    assert ("date", "令和7年12月") in extract("令和7年12月時点")
    assert ("amount", "1,639億円") in extract("総額1,639億円")


def _kb(tmp_path: Path):
    content, sources = make_content(tmp_path, FAQS)
    (sources / "doc.txt").write_text(DOC, encoding="utf-8")
    return load_knowledge_base(content, sources).kb, content, sources


def test_facts_held_by_no_faq_come_first(tmp_path):
    kb, _, _ = _kb(tmp_path)
    facts = fact_coverage(kb)
    held = {f.value: f.faqs for f in facts}
    assert held["500万円"] == ["bus-1"] and held["2月20日"] == ["bus-1"]
    assert held["03-1234-5678"] == ["bus-1"]  # through the FAQ's contact, which its card shows
    assert held["24県"] == [] and held["地域バス支援事業"] == []
    first_held = next(i for i, f in enumerate(facts) if f.faqs)
    assert all(not f.faqs for f in facts[:first_held]) and all(f.faqs for f in facts[first_held:])
    assert facts[0].places[0] == ("doc.txt", 2)
    s = summary(facts)
    assert s["facts"] == len(facts) and s["held_by_no_faq"] == first_held


def test_command_prints_text_and_json(tmp_path, capsys):
    _, content, sources = _kb(tmp_path)
    assert main(["faq", "coverage", "--facts", "--dir", str(content), "--sources", str(sources)]) == 0
    out = capsys.readouterr().out
    assert out.index("# held by no FAQ") < out.index("# held by an FAQ")
    assert "amount    500万円  doc.txt:2  → bus-1" in out and "held by no FAQ:" in out.splitlines()[-1]
    assert main(["faq", "coverage", "--facts", "--json", "--zero", "--dir", str(content), "--sources", str(sources)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["summary"]["held_by_no_faq"] == len(body["facts"]) > 0
    assert all(not f["faqs"] for f in body["facts"])
    assert {"kind", "value", "places", "faqs"} <= set(body["facts"][0])


def test_every_phone_email_and_date_of_the_documents_is_held_by_an_faq(shipped):
    """Residents ask for these one at a time; each must be in some answer or contact."""
    facts = fact_coverage(shipped.kb)
    missing = [f"{f.kind} {f.value} {f.places[0]}" for f in facts if f.kind in ("phone", "email", "date", "amount") and not f.faqs]
    assert not missing, missing
