"""Every figure in every shipped answer is found in the source documents."""

import re

from faq.faithfulness import SourceIndex, derived_years, normalise


def test_normalise_folds_width_spaces_and_digit_groups():
    assert normalise("２月 20 日") == "2月20日"
    assert normalise("1,639億円") == "1639億円"
    assert normalise("令和元年") == "令和1年"


def test_derived_years_from_wareki():
    assert {"2026", "2019", "2025"} <= derived_years("令和8年 令和1年 R7.4")


def test_index_catches_changed_figures():
    index = SourceIndex(["上限は500万円です。電話 0570-090-110。令和8年2月20日。" + "\n" * 20 + "隊員は550人。"])
    assert index.check("上限500万円、0570-090-110、2026年2月20日") == []
    assert [p.figure for p in index.check("上限550万円")] == ["550万円"]
    assert [p.figure for p in index.check("上限は5000万円")] == ["5000"]
    assert [p.figure for p in index.check("電話 0570-090-111")] == ["0570-090-111"]
    assert [p.figure for p in index.check("2027年")] == ["2027"]


def test_every_number_in_every_answer_occurs_in_the_sources(shipped):
    kb = shipped.kb
    index = SourceIndex(doc.text for doc in kb.sources.values())
    bad = []
    for faq in kb.faqs:
        for problem in index.check(faq.answer):
            bad.append(f"{faq.id}: {problem.figure!r} in …{problem.context}…")
    assert not bad, f"{len(bad)} figures not in the documents:\n" + "\n".join(bad)


def test_every_number_in_every_easy_answer_occurs_in_its_answer_or_the_sources(shipped):
    """やさしい日本語 says the same: each figure, date and phone number as in the documents, and each
    phone number and URL exactly as in the answer it rewrites."""
    kb = shipped.kb
    index = SourceIndex(doc.text for doc in kb.sources.values())
    bad = []
    link = re.compile(r"https?://[!-~]+|0[0-9]{1,4}[-(][0-9]{1,4}[-)]?[0-9]{3,4}")
    for faq in kb.faqs:
        if not faq.easy_answer:
            continue
        for problem in index.check(faq.easy_answer):
            bad.append(f"{faq.id}: {problem.figure!r} in …{problem.context}…")
        answer = normalise(faq.answer)
        for value in link.findall(faq.easy_answer):
            if normalise(value.rstrip("）)")) not in answer:
                bad.append(f"{faq.id}: {value!r} is not in the answer")
    assert not bad, f"{len(bad)} figures not as in the documents:\n" + "\n".join(bad)


def test_contact_phones_and_emails_are_written_as_in_the_sources(shipped):
    kb = shipped.kb
    text = "\n".join(normalise(doc.text) for doc in kb.sources.values())
    bad = [
        f"{c.id}: {value}"
        for c in kb.contacts.values()
        for value in (c.phone, c.email)
        if value and normalise(value) not in text
    ]
    assert not bad, bad
