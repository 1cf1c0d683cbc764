"""Test doubles that keep the fast tests free of the embedding model."""

import functools
import hashlib

import numpy as np

from index.embed import Embedder


class HashingEmbedder:
    """Deterministic bag-of-character-bigrams vectors: similar texts, similar vectors."""

    model_id = "test/hashing"
    fingerprint = "hashing-v1"
    dimension = 64
    query_prompt = "query"
    document_prompt = "passage"
    cache_key = Embedder.cache_key

    def __init__(self):
        self.calls = 0
        self.embedded = 0

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, dtype=np.float32)
        for i in range(max(1, len(text) - 1)):
            h = int.from_bytes(hashlib.blake2b(text[i : i + 2].encode(), digest_size=4).digest(), "little")
            v[h % self.dimension] += 1.0
        return v / (np.linalg.norm(v) or 1.0)

    def embed_queries(self, texts):
        self.calls += 1
        self.embedded += len(texts)
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    embed_documents = embed_queries


@functools.cache
def shipped_content():
    """The shipped content, loaded once per test session (a LoadResult: kb and problems)."""
    from faq.loader import load_knowledge_base

    return load_knowledge_base()


@functools.cache
def shipped_engine():
    """The shipped knowledge base indexed with the HashingEmbedder, built once per test session.
    Shared read-only: tests wrap it in their own Bot (records, sessions, clock)."""
    from index.engine import SearchConfig, SearchEngine
    from index.tokenize import JapaneseTokenizer

    kb = shipped_content().kb
    tokenizer = JapaneseTokenizer([(g.canonical, g.variants) for g in kb.synonyms])
    # The hashing vectors have their own scale: the calibrated thresholds of the real model
    # would send most queries to the fallback, so the fast tests keep the hand-set ones.
    config = SearchConfig(answer_threshold=0.6, candidate_threshold=0.35, latin_answer_threshold=0.6)
    return SearchEngine(kb, HashingEmbedder(), tokenizer, config).build()
