"""`govfaq eval-retrieval`: question → answer retrieval on an external FAQ set.

The JMTEB jagovfaqs set-up: index the answers (gold answers plus distractor
answers), query with the questions (never indexed), and report Hit@1, MRR@10,
nDCG@10 and Recall@10 for lexical only, dense only and hybrid in one run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .dense import ANSWER, DenseIndex
from .engine import EmbeddingCache, SearchConfig
from .lexical import LexicalIndex
from .normalize import normalize


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from None
        missing = [k for k in required if row.get(k) in (None, "")]
        if missing:
            raise ValueError(f"{path}:{number}: {missing[0]}: field required")
        rows.append(row)
    return rows


def metrics(ranked: list[list[int]], gold: list[int], k: int = 10) -> dict:
    hit1 = mrr = ndcg = recall = 0.0
    for ranking, g in zip(ranked, gold):
        top = ranking[:k]
        if top and top[0] == g:
            hit1 += 1
        if g in top:
            rank = top.index(g) + 1
            mrr += 1 / rank
            ndcg += 1 / math.log2(rank + 1)  # one relevant document: ideal DCG is 1
            recall += 1
    n = len(gold) or 1
    return {"hit@1": round(hit1 / n, 4), "mrr@10": round(mrr / n, 4), "ndcg@10": round(ndcg / n, 4), "recall@10": round(recall / n, 4)}


def evaluate_retrieval(
    pairs: list[dict], distractors: list[dict], embedder, tokenizer, config: SearchConfig, cache_dir: Path | None = None
) -> dict:
    docs = [p["answer"] for p in pairs] + [d["answer"] for d in distractors]
    gold = list(range(len(pairs)))
    query_tokenizer = tokenizer.for_queries() if hasattr(tokenizer, "for_queries") else tokenizer
    lexical = LexicalIndex(tokenizer, query_tokenizer=query_tokenizer).build([normalize(d) for d in docs])

    cache = EmbeddingCache(cache_dir) if cache_dir else None
    texts = [normalize(d) for d in docs]
    keys = [embedder.cache_key(t, "passage") for t in texts]
    store = cache.vectors if cache else {}
    missing = [i for i, key in enumerate(keys) if key not in store]
    for start in range(0, len(missing), 32):
        part = missing[start : start + 32]
        for i, vector in zip(part, embedder.embed_documents([texts[i] for i in part])):
            store[keys[i]] = vector
    if cache:
        cache.save(set(cache.vectors))
    vectors = np.stack([store[k] for k in keys])
    dense = DenseIndex.build(vectors, np.arange(len(docs)), np.full(len(docs), ANSWER), len(docs), config.index_kind)

    queries = [normalize(p["question"]) for p in pairs]
    query_vectors = embedder.embed_queries(queries)
    ranked = {"lexical": [], "dense": [], "hybrid": []}
    for query, qv in zip(queries, query_vectors):
        lex = lexical.scores(query)
        den = dense.scores(qv)
        lex_norm = lex / (lex + config.lexical_saturation)
        share = lexical.japanese_share(query)
        lex_norm = lex_norm * (config.latin_lexical_factor + (1 - config.latin_lexical_factor) * share)
        fused = config.dense_weight * den + config.lexical_weight * lex_norm
        for name, scores in (("lexical", lex), ("dense", den), ("hybrid", fused)):
            ranked[name].append([int(i) for i in np.argsort(-scores, kind="stable")[:10]])
    out = {name: metrics(r, gold) for name, r in ranked.items()}
    out["n_queries"] = len(pairs)
    out["n_docs"] = len(docs)
    return out
