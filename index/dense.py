"""FAISS vector index: several vectors per FAQ, an FAQ scores by its best vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_faiss_index(vectors: np.ndarray, kind: str = "flat", hnsw_m: int = 32, ef_search: int = 128):
    """`flat`: exact inner product on normalised vectors (cosine). `hnsw`: approximate, for large corpora."""
    import faiss

    dim = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = max(ef_search, 64)
        index.hnsw.efSearch = ef_search
    else:
        raise ValueError(f"unknown index kind {kind!r}: use 'flat' or 'hnsw'")
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


QUESTION, ALT, ANSWER = 0, 1, 2


class DenseIndex:
    """Vectors of each FAQ's question, paraphrases and answer.

    An FAQ scores ½·(best of its question and its paraphrases, the latter
    discounted by `alt_weight`) + ½·(its answer). Held-out measurements (see
    docs/ARCHITECTURE.md) showed that the plain best-vector score lets the
    *style* of a query win: an English or keyword-only query lands on another
    FAQ's English or keyword-only paraphrase. The answer half anchors the
    score in content.
    """

    def __init__(self, index, owners: np.ndarray, roles: np.ndarray, n_docs: int, kind: str = "flat", alt_weight: float = 0.9):
        self.index = index
        self.owners = owners.astype(np.int64)  # vector row -> document number
        self.roles = roles.astype(np.int8)  # QUESTION, ALT or ANSWER
        self.n_docs = n_docs
        self.kind = kind
        self.alt_weight = alt_weight
        self._factor = np.where(self.roles == ALT, alt_weight, 1.0).astype(np.float32)
        self._is_answer = self.roles == ANSWER
        # A document indexed by its passage alone (retrieval benchmarks) scores by it alone.
        self._has_question = np.zeros(n_docs, dtype=bool)
        self._has_question[self.owners[~self._is_answer]] = True
        # Enough neighbours that every document gets its best vectors in the exact case.
        self.k_vectors = int(index.ntotal) if kind == "flat" else min(int(index.ntotal), 512)

    @classmethod
    def build(cls, vectors: np.ndarray, owners: np.ndarray, roles: np.ndarray, n_docs: int, kind: str = "flat", alt_weight: float = 0.9) -> "DenseIndex":
        return cls(make_faiss_index(vectors, kind), owners, roles, n_docs, kind, alt_weight)

    def scores(self, query_vector: np.ndarray) -> np.ndarray:
        if self.index.ntotal == 0:
            return np.full(self.n_docs, -1.0, dtype=np.float32)
        sims, rows = self.index.search(query_vector.reshape(1, -1).astype(np.float32), self.k_vectors)
        keep = rows[0] >= 0
        rows, sims = rows[0][keep], sims[0][keep]
        # Documents with no vector among the neighbours (approximate search) get the lowest seen similarity.
        floor = float(sims.min()) if len(sims) else -1.0
        question = np.full(self.n_docs, floor, dtype=np.float32)
        answer = np.full(self.n_docs, floor, dtype=np.float32)
        is_answer = self._is_answer[rows]
        np.maximum.at(question, self.owners[rows[~is_answer]], sims[~is_answer] * self._factor[rows[~is_answer]])
        np.maximum.at(answer, self.owners[rows[is_answer]], sims[is_answer])
        return np.where(self._has_question, (question + answer) / 2, answer)

    def save(self, directory: Path) -> None:
        import faiss

        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(directory / "faiss.index"))
        np.save(directory / "owners.npy", self.owners)
        np.save(directory / "roles.npy", self.roles)

    @classmethod
    def load(cls, directory: Path, n_docs: int, kind: str, alt_weight: float = 0.9) -> "DenseIndex":
        import faiss

        index = faiss.read_index(str(directory / "faiss.index"))
        return cls(index, np.load(directory / "owners.npy"), np.load(directory / "roles.npy"), n_docs, kind, alt_weight)
