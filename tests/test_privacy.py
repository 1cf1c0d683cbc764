"""Masking that holds: a corpus of personal data written the way residents type it, masked by
`mask_personal_data` and never stored or logged through the service's real paths.

tests/data/pii_corpus.jsonl: one string per line with the placeholder kinds it must produce and the
secrets (digit runs, addresses, names) that must not survive. tests/data/ordinary_questions.txt
(test_properties.py) holds the questions that must come through untouched.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.privacy import PLACEHOLDERS, _shadow, clean, mask_personal_data

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "data" / "pii_corpus.jsonl").read_text(encoding="utf-8").splitlines()]
PLACEHOLDER = re.compile("|".join(map(re.escape, PLACEHOLDERS.values())))


def _seen(text: str) -> str:
    return _shadow(clean(PLACEHOLDER.sub(" ", text)))


def pieces(secret: str, strong: bool = False, kept: str = "") -> list[str]:
    """What of a secret must not survive: the whole of it, every 4 digits in a row (kanji numerals as
    digits), every ASCII word of 3 letters or more, and every pair of Japanese characters (山田, 田太, 太郎).

    `strong`, for a page, a log or a file full of other text: only what masking takes out of every corpus
    string (not 鹿児島, which stays as a town), as a whole secret of 6 characters or more, 6 digits in a
    row, or an ASCII or Japanese word."""
    text = _shadow(clean(secret))
    out = [text] if not strong or len(text) >= 6 else []
    for token in re.findall(r"[0-9]+|[A-Za-z]+|[^\W\d_A-Za-z]+", text):
        if token.isdigit():
            width = 6 if strong else 4
            if len(token) >= (width if strong else 2):
                out += [token[i : i + width] for i in range(max(1, len(token) - width + 1))]
        elif token.isascii():
            if len(token) >= (4 if strong else 3):
                out.append(token)
        elif len(token) >= 2:
            out += [token] if strong else [token[i : i + 2] for i in range(len(token) - 1)]
    return [piece for piece in out if piece not in KEPT and piece not in kept] if strong else out


def leaks(entry: dict, stored: str, strong: bool = False, kept: str = "") -> list[str]:
    """The pieces of an entry's secrets found in `stored` (placeholders taken out first: ［電話番号］ is no leak).
    `kept`: text the service writes of its own (FAQ and office ids: kikumimi-kagoshima), no resident's."""
    seen = _seen(stored)
    return [piece for secret in entry["secrets"] for piece in pieces(secret, strong, kept) if piece in seen]


KEPT = "\n".join(_seen(mask_personal_data(entry["text"])) for entry in CORPUS)  # what masking leaves of the corpus


def test_the_corpus_is_large_and_covers_every_kind():
    assert len(CORPUS) >= 200
    kinds = {kind for entry in CORPUS for kind in entry["kinds"]}
    assert kinds == {p[1:-1] for p in PLACEHOLDERS.values()}


@pytest.mark.parametrize("entry", CORPUS, ids=[str(i) for i in range(len(CORPUS))])
def test_every_corpus_string_is_masked_with_its_kinds(entry):
    masked = mask_personal_data(entry["text"])
    assert leaks(entry, masked) == [], masked
    for kind in entry["kinds"]:
        assert f"［{kind}］" in masked, masked
    assert mask_personal_data(masked) == masked


def test_the_leak_check_would_see_a_leak():
    """The check itself: an unmasked copy of each entry is seen as a leak, row by row; in a page, a log
    or a file, where only what masking removes from every corpus string counts, for at least 200."""
    assert all(leaks(entry, entry["text"]) for entry in CORPUS)
    assert sum(1 for entry in CORPUS if leaks(entry, entry["text"], strong=True)) >= 200
