"""The shipped knowledge base: loads cleanly, is complete, and is reachable."""

import re
import unicodedata

from faq.coverage import coverage
from faq.faithfulness import normalise

KIKUMIMI_ROW = re.compile(r"^(きくみみ\S+)\t(.+?)\t(\d[\d()-]+)$")
PHONE = re.compile(r"(?<![\d-])0\d{0,4}[-(]\d{1,4}[-)]\d{3,4}(?![\d-])")
EMAIL = re.compile(r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def test_shipped_content_loads_without_a_single_problem(shipped):
    assert [str(p) for p in shipped.problems] == []


def test_size_of_the_knowledge_base(shipped):
    kb = shipped.kb
    assert len(kb.faqs) >= 300
    assert len(kb.contacts) >= 50
    top = {node.title for node in kb.tree}
    assert top == {faq.category[0] for faq in kb.faqs}, "every field has FAQs"
    titles = {faq.category[0]: 0 for faq in kb.faqs}
    documents = {faq.source.document for faq in kb.faqs}
    assert documents == set(kb.sources), "every document is cited"
    assert len(titles) == len(top)


def test_every_faq_has_paraphrases_people_type(shipped):
    thin = [f.id for f in shipped.kb.faqs if len(set(f.alt_questions) - {f.question}) < 3]
    assert not thin, f"fewer than 3 alt_questions: {thin}"
    english = [f for f in shipped.kb.faqs if any(re.search(r"[A-Za-z]{3,}\s+[A-Za-z]{2,}", a) for a in f.alt_questions)]
    assert len(english) >= 0.5 * len(shipped.kb.faqs), f"only {len(english)} FAQs have an English paraphrase"


def test_every_kikumimi_office_in_the_documents_is_a_contact(shipped):
    kb = shipped.kb
    offices = []
    for doc in kb.sources.values():
        for line in doc.lines:
            match = KIKUMIMI_ROW.match(line.strip())
            if match:
                offices.append(match.groups())
    assert len(offices) == 50
    by_name = {c.name: c for c in kb.contacts.values() if c.kind == "kikumimi"}
    for name, address, phone in offices:
        assert name in by_name, name
        contact = by_name[name]
        assert (contact.address, contact.phone) == (address, phone), name
        assert contact.prefecture, name


def test_every_phone_number_and_email_in_the_documents_is_a_contact(shipped):
    kb = shipped.kb
    known = " ".join(
        normalise(v) for c in kb.contacts.values() for v in (c.phone, c.email, c.note, c.extension) if v
    )
    missing = set()
    for doc in kb.sources.values():
        text = unicodedata.normalize("NFKC", doc.text)
        for pattern in (PHONE, EMAIL):
            for match in pattern.finditer(text):
                if normalise(match.group(0)) not in known:
                    missing.add(match.group(0))
    assert not missing, sorted(missing)


def test_every_section_has_faqs_or_a_reason(shipped):
    silent = [f"{r.document}:{r.line} {r.section}" for r in coverage(shipped.kb) if r.faqs == 0 and not r.reason]
    assert not silent, silent


def test_every_faq_is_reachable_from_the_scenario_tree(shipped):
    kb = shipped.kb
    reachable = set()
    for titles in kb.category_titles():
        reachable |= {f.id for f in kb.faqs if tuple(f.category) == titles}
    assert reachable == set(kb.by_id)
