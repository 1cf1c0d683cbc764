"""Answer text to safe HTML: phone numbers and URLs become links, kanji get ふりがな.

Everything from content is escaped; the only markup is what this module writes
(<a>, <ruby>, <rt>), so an answer can never inject HTML. Readings come from
Sudachi (reading form, in hiragana) for words that contain kanji; staff
correct a wrong one in faq/content/readings.yaml (surface → reading), which
wins over the dictionary.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from markupsafe import Markup, escape

# URLs are ASCII: a full-width bracket or Japanese text ends one; trailing punctuation is not part of it.
_URL = r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'*+,;=%]+"
# 0570-090-110, 03-5253-5394, 098(867)1100, 0120-123-456 (Japanese numbers start with 0).
_PHONE = r"(?<![0-9])0[0-9]{1,4}(?:-[0-9]{1,4}-|\([0-9]{1,4}\)|（[0-9]{1,4}）)[0-9]{3,4}(?![0-9])"
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
_LINK = re.compile(f"(?P<url>{_URL})|(?P<email>{_EMAIL})|(?P<phone>{_PHONE})")
_KANJI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff々〆ヶ]")


def tel_href(phone: str) -> str:
    return "tel:" + re.sub(r"[^0-9+]", "", phone)


def links(text: str) -> list[tuple[str, str | None]]:
    """Split text into (piece, href) pairs; href is None for plain text."""
    out: list[tuple[str, str | None]] = []
    at = 0
    for match in _LINK.finditer(text):
        piece = match.group(0)
        if match.lastgroup == "url":
            piece = piece.rstrip(".,;:!?'")
            href = piece
        elif match.lastgroup == "email":
            href = "mailto:" + piece
        else:
            href = tel_href(piece)
        if match.start() > at:
            out.append((text[at : match.start()], None))
        out.append((piece, href))
        at = match.start() + len(piece)
    if at < len(text):
        out.append((text[at:], None))
    return out


def _hiragana(katakana: str) -> str:
    return "".join(chr(ord(ch) - 0x60) if "ァ" <= ch <= "ヶ" else ch for ch in katakana)


def _align(surface: str, reading: str) -> list[tuple[str, str | None]]:
    """申し込み + もうしこみ → 申(もう) し 込(こ) み: readings over the kanji runs only."""
    parts = re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff々〆ヶ]+|[^\u3400-\u4dbf\u4e00-\u9fff々〆ヶ]+", surface)
    pattern = "".join("(.+?)" if _KANJI.match(p) else f"({re.escape(_hiragana(p))})" for p in parts)
    match = re.fullmatch(pattern, reading)
    if not match:
        return [(surface, reading)]
    return [(p, r if _KANJI.match(p) else None) for p, r in zip(parts, match.groups())]


class Furigana:
    """Readings for a text, cached per text (answers repeat; Sudachi is the slow part)."""

    def __init__(self, corrections: dict[str, str] | None = None):
        self.corrections = dict(corrections or {})
        self._lock = threading.Lock()
        self._tokenizer = None
        self.segments = lru_cache(maxsize=4096)(self._segments)
        pattern = "|".join(re.escape(s) for s in sorted(self.corrections, key=len, reverse=True))
        self._fixed = re.compile(pattern) if pattern else None

    def _sudachi(self, text: str) -> list[tuple[str, str | None]]:
        from sudachipy import Dictionary, SplitMode

        with self._lock:  # a Sudachi tokenizer is not thread-safe
            if self._tokenizer is None:
                self._tokenizer = Dictionary(dict="core").tokenizer(mode=SplitMode.C)
            morphemes = [(m.surface(), m.reading_form()) for m in self._tokenizer.tokenize(text)]
        out: list[tuple[str, str | None]] = []
        for surface, reading in morphemes:
            if _KANJI.search(surface) and reading and reading != surface:
                out += _align(surface, _hiragana(reading))
            else:
                out.append((surface, None))
        return out

    def _segments(self, text: str) -> tuple[tuple[str, str | None], ...]:
        """(base, reading) pairs covering `text`; reading None where there is no kanji."""
        if not _KANJI.search(text):
            return ((text, None),)
        out: list[tuple[str, str | None]] = []
        at = 0
        for match in self._fixed.finditer(text) if self._fixed else ():
            if match.start() > at:
                out += self._sudachi(text[at : match.start()])
            out.append((match.group(0), self.corrections[match.group(0)]))
            at = match.end()
        if at < len(text):
            out += self._sudachi(text[at:])
        return tuple(out)

    def html(self, text: str) -> Markup:
        parts = []
        for base, reading in self.segments(text):
            if reading:
                parts.append(Markup("<ruby>{}<rt>{}</rt></ruby>").format(base, reading))
            else:
                parts.append(escape(base))
        return Markup("").join(parts)


def rich_text(text: str | None, furigana: Furigana | None = None) -> Markup:
    """Escaped text with tappable phone numbers, e-mail addresses and URLs, and ふりがな when given."""
    if not text:
        return Markup("")
    plain = furigana.html if furigana else escape
    parts = []
    for piece, href in links(str(text)):
        if href is None:
            parts.append(plain(piece))
        else:
            parts.append(Markup('<a href="{}">{}</a>').format(href, piece))
    return Markup("").join(parts)
