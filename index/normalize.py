"""Text normalisation: one pure function, idempotent, used for FAQs and queries alike.

- NFKC: full-width ASCII and digits to half-width, half-width katakana to
  full-width, compatibility characters (①, ㈱, ㍻) to plain text.
- Long-vowel marks: a hyphen or tilde-like character after katakana is ー,
  and runs of ー collapse (ホリデ－, ホリデーー → ホリデー).
- Iteration marks ゝゞヽヾ are written out (いすゞ → いすず).
- 和暦: 令和元年 → 令和1年; `era_aliases` adds the 西暦 form of a 和暦 year
  and the other way round, for search only.
- Common variant spellings of administrative words (問い合わせ → 問合せ …).
"""

from __future__ import annotations

import re
import unicodedata

_KATAKANA = "\u30a1-\u30fa\u30fc"
_LONG_VOWEL_LIKE = re.compile(rf"(?<=[{_KATAKANA}])[\-‐‑‒–—―−－~〜～ｰ]+")
_LONG_VOWEL_RUN = re.compile(r"ー{2,}")
_SPACES = re.compile(r"\s+")
_ERA_START = {"令和": 2019, "平成": 1989, "昭和": 1926}
_WAREKI = re.compile(r"(令和|平成|昭和)(\d{1,2})(年)")
_R_SHORT = re.compile(r"(?<![A-Za-z0-9])R(\d{1,2})(?=[.年度])")
_SEIREKI = re.compile(r"(?<!\d)(19[2-9]\d|20\d\d)年")

# Okurigana and wording variants → the form government documents use.
_VARIANTS = [
    ("問い合わせ", "問合せ"), ("問合わせ", "問合せ"), ("お問い合せ", "お問合せ"),
    ("申し込み", "申込"), ("申込み", "申込"), ("申し込", "申込"),
    ("受け付け", "受付"), ("受付け", "受付"),
    ("取り組み", "取組"), ("取組み", "取組"),
    ("締め切り", "締切"), ("締切り", "締切"), ("〆切", "締切"), ("しめきり", "締切"),
    ("振り込み", "振込"), ("振込み", "振込"),
    ("引っ越し", "引越し"),
    ("手続き", "手続"),
    ("割り合い", "割合"),
    ("アクセラレーター", "アクセラレータ"),
    ("Eメール", "メール"), ("eメール", "メール"), ("電子メール", "メール"),
    ("ＴＥＬ", "電話"),
]
_VARIANT_RE = re.compile("|".join(re.escape(a) for a, _ in sorted(_VARIANTS, key=lambda v: -len(v[0]))))
_VARIANT_MAP = dict(_VARIANTS)


def _iteration_marks(text: str) -> str:
    out: list[str] = []
    for char in text:
        if char in "ゝヽ" and out:
            out.append(out[-1])
        elif char in "ゞヾ" and out:
            voiced = unicodedata.normalize("NFC", out[-1] + "\u3099")
            out.append(voiced if len(voiced) == 1 else out[-1])
        else:
            out.append(char)
    return "".join(out)


def normalize(text: str) -> str:
    """Canonical form of `text`. normalize(normalize(t)) == normalize(t).

    One pass can leave work for another (a removed control character brings a
    sound mark next to its base, a rewrite makes a new variant spelling), so the
    pass repeats until nothing changes. Real text settles after one or two; the
    bound only guarantees an end (申し込みみみ… loses one み per pass)."""
    for _ in range(len(text) + 2):
        again = _normalize_once(text)
        if again == text:
            break
        text = again
    return text


def _normalize_once(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch)[0] != "C")
    text = _iteration_marks(text)
    text = _LONG_VOWEL_LIKE.sub("ー", text)
    text = _LONG_VOWEL_RUN.sub("ー", text)
    text = text.replace("元年", "1年")
    text = _VARIANT_RE.sub(lambda m: _VARIANT_MAP[m.group(0)], text)
    text = _LONG_VOWEL_RUN.sub("ー", text)  # a replacement may have met a following ー
    return _SPACES.sub(" ", text).strip()


def era_aliases(text: str) -> list[str]:
    """The other calendar's spelling of every year in `text` (令和8年 ⇄ 2026年, R8 → 令和8年)."""
    aliases = []
    for era, number, _ in _WAREKI.findall(text):
        aliases.append(f"{_ERA_START[era] + int(number) - 1}年")
    for number in _R_SHORT.findall(text):
        aliases += [f"令和{int(number)}年", f"{2018 + int(number)}年"]
    for year in _SEIREKI.findall(text):
        y = int(year)
        for era, start in sorted(_ERA_START.items(), key=lambda e: -e[1]):
            if y >= start:
                aliases.append(f"{era}{y - start + 1}年")
                break
    return aliases
