"""Is every number in an answer found in the source documents?

An answer that says 550万円 where the document says 500万円 is worse than no
answer. We compare after NFKC with whitespace and digit-group commas removed,
and accept a 西暦 year only where it is derived from a 和暦 year the
documents use (令和8年 → 2026年).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# Phone numbers first so that 0570-090-110 is checked as one fact.
_PHONE = re.compile(r"\d{2,5}(?:[-()]\d{1,5}){2,}|\d{2,5}\(\d{2,5}\)\d{3,5}")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_AMOUNT_UNITS = ("億円", "万円", "千円", "百万円", "円", "人", "団体", "%", "件", "か所", "名", "社")
_TABLE_REACH = 8  # lines between a table's unit header and its figures
_ERA = {"令和": 2018, "平成": 1988, "昭和": 1925}


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"</?[a-z]+>|\*\*|\\", "", text)  # markdown emphasis, <b> tags, escapes
    text = re.sub(r"(?<=\d)\s+(?=\d)", "|", text)  # table cells "201 429" stay two numbers
    text = re.sub(r"\s+", "", text)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,639 and 1639 are the same figure
    return text.replace("元年", "1年")


def derived_years(source_text: str) -> set[str]:
    """西暦 years that a 和暦 year in the documents stands for."""
    years = set()
    for era, offset in _ERA.items():
        for match in re.finditer(era + r"(\d{1,2})年", source_text):
            years.add(str(offset + int(match.group(1))))
    for match in re.finditer(r"(?<![A-Za-z])R(\d{1,2})(?!\d)", source_text):
        years.add(str(2018 + int(match.group(1))))
    return years


@dataclass(frozen=True)
class Unfaithful:
    figure: str
    context: str


class SourceIndex:
    def __init__(self, texts: Iterable[str]):
        self.lines = [normalise(line) for t in texts for line in t.splitlines()]
        self.text = "\n".join(self.lines)
        self.years = derived_years(self.text)
        self._numbers = set(_NUMBER.findall(self.text))

    def has_number(self, number: str) -> bool:
        return number in self._numbers

    def _number_with_unit(self, number: str, unit: str) -> bool:
        """`550万円` in the text, or 550 in a table whose header a few lines up gives (万円)."""
        if number + unit in self.text:
            return True
        pattern = re.compile(r"(?<![\d.])" + re.escape(number) + r"(?![\d.])")
        for i, line in enumerate(self.lines):
            if pattern.search(line) and any(unit in above for above in self.lines[max(0, i - _TABLE_REACH) : i + 1]):
                return True
        return False

    def check(self, answer: str) -> list[Unfaithful]:
        text = normalise(answer)
        problems = []
        for match in _PHONE.finditer(text):
            if match.group(0) not in self.text:
                problems.append(Unfaithful(match.group(0), text[max(0, match.start() - 10) : match.end() + 10]))
        masked = _PHONE.sub(" ", text)
        for match in _NUMBER.finditer(masked):
            number = match.group(0)
            context = masked[max(0, match.start() - 10) : match.end() + 10]
            following = masked[match.end() : match.end() + 4]
            if following.startswith("年") and number in self.years:
                continue
            if not self.has_number(number):
                problems.append(Unfaithful(number, context))
                continue
            unit = next((u for u in _AMOUNT_UNITS if following.startswith(u)), None)
            if unit and not self._number_with_unit(number, unit):
                problems.append(Unfaithful(number + unit, context))
        return problems
