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

# Hyphens as residents type them: ASCII, the Unicode dashes, and the IME's ー / －.
_DASH = r"\-‐‑‒–—―−ー－"
_SEP_CHARS = rf"\s{_DASH}.()（）"
_SEP = rf"[{_SEP_CHARS}]*"
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
# Three groups of four, not part of a longer run of digit groups: in 090-1234-5678 0120-123-456
# "1234-5678 0120" is no マイナンバー (taking it would leave 090 and 123-456 for the later patterns).
_NOT_AFTER_DIGITS = "".join(rf"(?<!\d[{_SEP_CHARS}]{{{n}}})" for n in (1, 2, 3))  # lookbehinds have a fixed width
MY_NUMBER = re.compile(
    rf"(?<!\d){_NOT_AFTER_DIGITS}\d{{4}}" + _SEP + r"\d{4}" + _SEP + rf"\d{{4}}(?![{_SEP_CHARS}]*\d)"
)
# A phone number starts at +81, or at a 0 after a non-digit. First only at a 0 that does not follow a dash after
# digits: in 1234-0567 090-1234-5678 the number is 090-…, not 0567 090-1234 (1234-0567 has no area code).
# Then at any such 0, for numbers joined by a dash: 03-1234-5678‐090(1234)5678.
_PHONE_REST = r"\d{1,4}" + _SEP + r"\d{1,4}" + _SEP + r"\d{3,4}(?!\d)"
_INTERNATIONAL = r"\+81" + _SEP + r"\(?0?\)?"
PHONE = re.compile(rf"(?:{_INTERNATIONAL}|(?<!\d)(?<!\d[{_DASH}])0)" + _PHONE_REST)
PHONE_AFTER_DASH = re.compile(rf"(?:{_INTERNATIONAL}|(?<!\d)0)" + _PHONE_REST)
POSTAL = re.compile(r"(?:〒\s*)?(?<!\d)\d{3}" + rf"[{_DASH}]" + r"\d{4}(?!\d)|〒\s*\d{7}(?!\d)")
# Any dash, not only ASCII: 1234ー5678 (a number without its area code) is as personal as 1234-5678.
LONG_DIGITS = re.compile(rf"\d(?:[\s{_DASH}]?\d){{5,}}")

MASKS = [
    (EMAIL, "[メール]"),
    (MY_NUMBER, "[番号]"),
    (PHONE, "[電話]"),
    (PHONE_AFTER_DASH, "[電話]"),
    (POSTAL, "[郵便番号]"),
    (LONG_DIGITS, "[番号]"),
]


def mask_personal_data(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "")
    for pattern, label in MASKS:
        text = pattern.sub(label, text)
    return text
