"""BM25 over Sudachi tokens (bm25s), with the tokenizer injected as a callable.

Two fields: the words (and bigrams) of a text, and the reading trigrams
(読:…) that let a kana query meet kanji text. They are scored apart, so the
readings cannot blur an ordinary kanji query: a query without kana words
has no reading terms and scores on words alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

Tokenizer = Callable[[str], list[str]]
READING_PREFIX = "読:"
FIELDS = ("words", "readings")


def _is_reading(token: str) -> bool:
    return token.startswith(READING_PREFIX)


class LexicalIndex:
    """BM25 scores of every document for a query."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        k1: float = 1.2,
        b: float = 0.75,
        query_tokenizer: Tokenizer | None = None,
        reading_weight: float = 1.0,
    ):
        self.tokenizer = tokenizer
        self.query_tokenizer = query_tokenizer or tokenizer
        self.k1 = k1
        self.b = b
        self.reading_weight = reading_weight
        self._bm25: dict[str, object] = {}
        self._vocab: dict[str, set[str]] = {f: set() for f in FIELDS}
        self.n_docs = 0
        self.idf: dict[str, float] = {}
        self.doc_terms: list[frozenset[str]] = []
        # One query is tokenised for scores, coverage and language share: do it once.
        self._query_terms = lru_cache(maxsize=512)(lambda q: tuple(self.query_tokenizer(q)))

    def build(self, documents: Sequence[str] | None = None, tokens: Sequence[list[str]] | None = None) -> "LexicalIndex":
        import bm25s

        if tokens is None:
            tokens = [self.tokenizer(doc) for doc in documents or []]
        self.n_docs = len(tokens)
        split = {
            "words": [[t for t in doc if not _is_reading(t)] for doc in tokens],
            "readings": [[t for t in doc if _is_reading(t)] for doc in tokens],
        }
        for field, docs in split.items():
            # An empty document still needs a token so that bm25s keeps its row.
            docs = [d if d else ["\u0000"] for d in docs]
            bm25 = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
            bm25.index(docs, show_progress=False)
            self._bm25[field] = bm25
            self._vocab[field] = set(bm25.vocab_dict)
        self.doc_terms = [frozenset(doc) for doc in split["words"]]
        df: dict[str, int] = {}
        for terms in self.doc_terms:
            for term in terms:
                df[term] = df.get(term, 0) + 1
        self.idf = {term: math.log(1 + (self.n_docs - n + 0.5) / (n + 0.5)) for term, n in df.items()}
        return self

    def japanese_share(self, query: str) -> float:
        """Share of the query's words (synonym expansions included) written in Japanese."""
        terms = [t for t in self._query_terms(query) if not t.startswith("##") and not _is_reading(t)]
        return sum(not t.isascii() for t in terms) / len(terms) if terms else 0.0

    def coverage(self, query: str, doc: int, latin: bool = False) -> float:
        """IDF-weighted share of the query's words that occur in document `doc`.

        A word the corpus never uses weighs as much as the rarest word: a
        question about パスポート is not answered by an FAQ that only shares 更新.
        Japanese words only unless `latin`: English words are weak evidence
        (everyday words like "number" occur in many English paraphrases).
        """
        terms = {t for t in self._query_terms(query) if not t.startswith("##") and not _is_reading(t) and (latin or not t.isascii())}
        if not terms or not self.doc_terms:
            return 0.0
        unseen = math.log(1 + (self.n_docs + 0.5) / 0.5)
        weights = {t: self.idf.get(t, unseen) for t in terms}
        total = sum(weights.values())
        found = sum(w for t, w in weights.items() if t in self.doc_terms[doc])
        return found / total if total else 0.0

    def query_tokens(self, query: str, field: str = "words") -> list[str]:
        return [t for t in self._query_terms(query) if t in self._vocab[field]]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document (zeros when no query word is known)."""
        total = np.zeros(self.n_docs, dtype=np.float32)
        for field, weight in (("words", 1.0), ("readings", self.reading_weight)):
            tokens = self.query_tokens(query, field)
            if tokens and field in self._bm25:
                total += weight * np.asarray(self._bm25[field].get_scores(tokens), dtype=np.float32)
        return total

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        scores = self.scores(query)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in order if scores[i] > 0]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for field, bm25 in self._bm25.items():
            bm25.save(str(directory / field), show_progress=False)
        meta = {
            "k1": self.k1,
            "b": self.b,
            "reading_weight": self.reading_weight,
            "n_docs": self.n_docs,
            "idf": self.idf,
            "doc_terms": [sorted(t) for t in self.doc_terms],
        }
        (directory / "govfaq_lexical.json").write_text(json.dumps(meta, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path, tokenizer: Tokenizer, query_tokenizer: Tokenizer | None = None) -> "LexicalIndex":
        import bm25s

        meta = json.loads((directory / "govfaq_lexical.json").read_text())
        index = cls(tokenizer, meta["k1"], meta["b"], query_tokenizer, meta["reading_weight"])
        for field in FIELDS:
            bm25 = bm25s.BM25.load(str(directory / field), show_progress=False, mmap=False)
            index._bm25[field] = bm25
            index._vocab[field] = set(bm25.vocab_dict)
        index.n_docs = meta["n_docs"]
        index.idf = meta["idf"]
        index.doc_terms = [frozenset(t) for t in meta["doc_terms"]]
        return index
