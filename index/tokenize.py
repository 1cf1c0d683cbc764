"""Japanese tokenisation for the lexical index: SudachiPy plus synonyms and bigrams.

`JapaneseTokenizer(...)` is a callable `str -> list[str]`; the lexical index
takes it as an injected dependency (the bm25s way), so tests can swap it.

- Sudachi split mode C keeps compounds (地域おこし協力隊) and each compound
  also yields its mode-A units (協力, 隊), so a hiragana query
  (きょうりょくたい → 協力, 隊) still meets the kanji text.
- Tokens are Sudachi's normalised forms (ホリディ → ホリデー, 為る → する).
- Function words and a short stop list are dropped.
- Unknown words and katakana words also give character bigrams, because
  the dictionary splits new words and loanword spellings badly. Latin words
  stay as written (Sudachi would transliterate them) and get no bigrams.
- Synonym groups from the FAQ files: a text containing a variant also gets
  the canonical term's tokens (協力隊 → 地域おこし協力隊), at index and query
  time alike, so both sides meet.
- 和暦 years also yield their 西暦 form and back.
- Readings: document words also yield their reading (読:キギョウ), and query
  words typed in kana do too, so a resident who cannot write 罹災 or 起業人
  still meets the FAQ.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import cached_property

from .normalize import era_aliases, normalize

# Bump when the tokens a text yields change: built indexes record it and are rebuilt.
TOKENIZER_VERSION = 5  # 4: normalisation repeats to a fixed point; 5: no rules from evaluation questions
_SKIP_POS = {"助詞", "助動詞", "補助記号", "空白", "記号", "感動詞", "接続詞"}
_STOP = {
    "する", "居る", "いる", "ある", "有る", "成る", "なる", "為る", "できる", "出来る", "れる", "られる",
    "事", "こと", "物", "もの", "方", "ほう", "何", "なに", "どう", "どの", "どこ", "いつ", "誰",
    "此れ", "其れ", "これ", "それ", "あれ", "よう", "様", "ください", "下さる", "教える", "知る", "思う",
    "ね", "よ", "か", "です", "ます", "さん", "ちゃん", "くらい", "ぐらい", "について", "って",
    "the", "a", "an", "of", "to", "is", "are", "for", "in", "on", "and", "or", "do", "does", "what",
    "how", "when", "where", "which", "who", "i", "my", "me", "can", "it", "this", "that", "be", "with",
    "please", "you", "your", "we", "there", "about", "from", "at", "by", "as", "if",
}
_KATAKANA_WORD = re.compile(r"^[\u30a1-\u30fa\u30fc]{3,}$")
_BIGRAM_PREFIX = "##"
_READING_PREFIX = "読:"
_KANA_WORD = re.compile(r"^[\u3041-\u3096\u30a1-\u30fa\u30fc]+$")


class JapaneseTokenizer:
    """Callable text → tokens. Thread-safe: one Sudachi tokenizer per thread."""

    def __init__(
        self,
        synonyms: Iterable[tuple[str, list[str]]] = (),
        mode: str = "C",
        bigrams: bool = True,
        readings: str = "all",
    ):
        self.mode = mode
        self.bigrams = bigrams
        # "all": every word also yields its reading (for documents); "kana": only
        # words typed in kana do (for queries: きぎょうじん meets 起業人 by sound,
        # while a kanji query is not blurred by homophones); "none": no readings.
        self.readings = readings
        self._local = threading.local()
        # Longest variants first so 地域おこし協力隊 wins over 協力隊.
        pairs = []
        for canonical, variants in synonyms:
            for variant in variants:
                pairs.append((normalize(variant).casefold(), normalize(canonical)))
        self._synonyms = sorted(set(pairs), key=lambda p: -len(p[0]))
        ascii_variants = [re.escape(v) for v, _ in self._synonyms if v.isascii()]
        self._ascii_re = re.compile(r"(?<![a-z0-9])(" + "|".join(ascii_variants) + r")(?![a-z0-9])") if ascii_variants else None

    def for_queries(self) -> "JapaneseTokenizer":
        """The same tokenizer, emitting readings only for words typed in kana."""
        twin = JapaneseTokenizer.__new__(JapaneseTokenizer)
        twin.__dict__.update(self.__dict__)
        twin.readings = "kana"
        twin._local = threading.local()
        return twin

    @cached_property
    def _dictionary(self):
        from sudachipy import Dictionary

        return Dictionary(dict="core")

    @property
    def _tokenizer(self):
        tok = getattr(self._local, "tok", None)
        if tok is None:
            from sudachipy import SplitMode

            tok = self._dictionary.tokenizer(mode=getattr(SplitMode, self.mode))
            self._local.tok = tok
        return tok

    def dictionary_version(self) -> str:
        import importlib.metadata as md

        return f"sudachidict-core {md.version('sudachidict-core')}, sudachipy {md.version('sudachipy')}"

    def expand(self, text: str) -> str:
        """Normalised text plus the canonical terms of the synonyms it contains, and other-era years."""
        text = normalize(text)
        folded = text.casefold()
        extra = []
        for variant, canonical in self._synonyms:
            if variant.isascii():
                continue
            if variant in folded and canonical.casefold() not in folded:
                extra.append(canonical)
        if self._ascii_re is not None:
            lookup = dict(self._synonyms)
            for match in self._ascii_re.finditer(folded):
                canonical = lookup.get(match.group(1))
                if canonical and canonical.casefold() not in folded:
                    extra.append(canonical)
        extra += era_aliases(text)
        return " ".join([text, *dict.fromkeys(extra)])

    def __call__(self, text: str) -> list[str]:
        from sudachipy import SplitMode

        text = self.expand(text)
        if not text:
            return []
        # Sudachi refuses inputs over ~49 KB; queries are short, FAQ texts are not long.
        tokens: list[str] = []
        run: list[str] = []  # readings of consecutive content words, for reading trigrams
        for chunk in _chunks(text, 8000):
            for morpheme in self._tokenizer.tokenize(chunk):
                pos = morpheme.part_of_speech()[0]
                if pos in _SKIP_POS:
                    if run:
                        tokens += _reading_grams("".join(run))
                        run = []
                    continue
                surface = morpheme.surface().casefold()
                # Sudachi transliterates English words (number → ナンバー); keep Latin as written.
                form = surface if surface.isascii() else morpheme.normalized_form().casefold()
                if form in _STOP or surface in _STOP or not form.strip():
                    continue
                tokens.append(form)
                units = morpheme.split(SplitMode.A)
                if len(units) > 1:
                    for unit in units:
                        unit_form = unit.normalized_form().casefold()
                        if unit_form not in _STOP and unit.part_of_speech()[0] not in _SKIP_POS:
                            tokens.append(unit_form)
                if not surface.isascii() and (
                    self.readings == "all" or (self.readings == "kana" and _KANA_WORD.match(surface))
                ):
                    run.append(morpheme.reading_form() if self.readings == "all" else _to_katakana(surface))
                elif run:
                    tokens += _reading_grams("".join(run))
                    run = []
                if self.bigrams and len(surface) > 2 and (
                    (morpheme.is_oov() and not surface.isascii()) or _KATAKANA_WORD.match(surface)
                ):
                    tokens += [_BIGRAM_PREFIX + surface[i : i + 2] for i in range(len(surface) - 1)]
        if run:
            tokens += _reading_grams("".join(run))
        return tokens


def _to_katakana(text: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in text)


def _reading_grams(reading: str, n: int = 3) -> list[str]:
    """Trigrams of a katakana reading: りさいしょうめいしょ meets 罹災証明書 by sound."""
    reading = "".join(c for c in reading if "\u30a1" <= c <= "\u30fc")
    if len(reading) < n + 1:
        return []
    return [_READING_PREFIX + reading[i : i + n] for i in range(len(reading) - n + 1)]


def _chunks(text: str, size: int) -> Iterable[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]
