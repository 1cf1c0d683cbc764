"""Residents' text is personal data: mask it before anything is stored or logged.

Masks, in this order: e-mail addresses, マイナンバー-like 12-digit numbers
(with or without separators), phone numbers (landline, mobile, 0120/0570,
+81), postal codes (〒123-4567, 123-4567), and any other run of 6 or more
digits (card, account, insurance numbers). Work on the NFKC form so that
full-width digits are caught too.
"""

from __future__ import annotations

import re
import unicodedata

_SEP = r"[\s\-‐‑‒–—―−ー－.()（）]*"
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
MY_NUMBER = re.compile(r"(?<!\d)\d{4}" + _SEP + r"\d{4}" + _SEP + r"\d{4}(?!\d)")
PHONE = re.compile(
    r"(?<![\d])(?:\+81" + _SEP + r"\(?0?\)?|0)\d{1,4}" + _SEP + r"\d{1,4}" + _SEP + r"\d{3,4}(?!\d)"
)
POSTAL = re.compile(r"(?:〒\s*)?(?<!\d)\d{3}" + r"[\-‐－ー]" + r"\d{4}(?!\d)|〒\s*\d{7}(?!\d)")
LONG_DIGITS = re.compile(r"\d(?:[\s\-]?\d){5,}")

MASKS = [
    (EMAIL, "[メール]"),
    (MY_NUMBER, "[番号]"),
    (PHONE, "[電話]"),
    (POSTAL, "[郵便番号]"),
    (LONG_DIGITS, "[番号]"),
]


def mask_personal_data(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "")
    for pattern, label in MASKS:
        text = pattern.sub(label, text)
    return text
