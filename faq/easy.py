"""How easy an `easy_answer` reads, after 在留支援のためのやさしい日本語ガイドライン
(出入国在留管理庁・文化庁, 2020): short sentences, few kanji (about 30 % or less of the
letters), no double negatives, no honorific or humble forms.

These are measurements for staff, reported by `govfaq faq check` as warnings:
a name or a programme's title may need its kanji, and staff decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_KANJI_SHARE = 0.30
MAX_SENTENCE_CHARS = 40

_KANJI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff々]")
_KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30ff]")
# Figures, phone numbers and addresses are kept exactly: they do not count towards a sentence's length.
_NOT_WORDS = re.compile(r"https?://\S+|[\w.+-]+@[\w.-]+|[0-9０-９()（）\-‐−,、.]{4,}")
_SENTENCE_END = re.compile(r"[。！？!?\n]+")
# A reading written after a word, 総務省（そうむしょう）, is a note, not text: it counts neither as kana nor towards length.
_READING_NOTE = re.compile(r"[（(][ぁ-ゖー\s]+[）)]")
DOUBLE_NEGATIVES = ("ないわけではな", "ないわけでもな", "なくはな", "ないことはな", "ないことも", "ないとは限ら",
                    "なければな", "なければいけ", "なくてはな", "なくてはいけ", "ないではいられ")
HONORIFICS = ("いたします", "いただ", "ございま", "おります", "申し上げ", "伺い", "ご覧", "なさいま", "くださいませ",
              "参ります", "存じ", "おっしゃ", "召し上が")


@dataclass(frozen=True)
class EasyReport:
    kanji_share: float
    longest_sentence: int
    mean_sentence: float
    double_negatives: list[str] = field(default_factory=list)
    honorifics: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.kanji_share > MAX_KANJI_SHARE:
            out.append(f"漢字が {self.kanji_share:.0%}（目安は {MAX_KANJI_SHARE:.0%} 以下）")
        if self.longest_sentence > MAX_SENTENCE_CHARS:
            out.append(f"長い文があります（{self.longest_sentence}字。目安は {MAX_SENTENCE_CHARS}字 以下）")
        out += [f"二重否定「{w}」" for w in self.double_negatives]
        out += [f"敬語・謙譲語「{w}」" for w in self.honorifics]
        return out

    def summary(self) -> str:
        return f"漢字 {self.kanji_share:.0%}・一文 最長 {self.longest_sentence}字（平均 {self.mean_sentence:.0f}字）"


def measure(text: str) -> EasyReport:
    original = text
    text = _READING_NOTE.sub("", text)
    kanji = len(_KANJI.findall(text))
    letters = kanji + len(_KANA.findall(text))
    # Spaces between words (分かち書き) help reading and do not count.
    sentences = [len(re.sub(r"\s", "", _NOT_WORDS.sub("", s))) for s in _SENTENCE_END.split(text)]
    sentences = [n for n in sentences if n]
    return EasyReport(
        kanji_share=kanji / letters if letters else 0.0,
        longest_sentence=max(sentences, default=0),
        mean_sentence=sum(sentences) / len(sentences) if sentences else 0.0,
        double_negatives=[w for w in DOUBLE_NEGATIVES if w in original.replace(" ", "")],
        honorifics=[w for w in HONORIFICS if w in original.replace(" ", "")],
    )


def easy_report_lines(kb) -> list[str]:
    """One line per easy_answer (path:line: easy_answer: measurements), warnings after it."""
    lines = []
    for faq in kb.faqs:
        if not faq.easy_answer:
            continue
        path, line = kb.faq_locations.get(faq.id, ("?", 0))
        report = measure(faq.easy_answer)
        lines.append(f"{path}:{line}: easy_answer ({faq.id}): {report.summary()}")
        lines += [f"{path}:{line}: easy_answer ({faq.id}): 注意: {w}" for w in report.warnings]
    return lines
