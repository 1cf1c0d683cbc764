"""The search engine's mechanics, with a hashing embedder (no model): build,
persist, refuse a mismatched index, reuse cached embeddings, FAISS vs numpy."""

import json
import os

import numpy as np
import pytest

from faq.loader import KnowledgeBase
from index.dense import make_faiss_index
from index.engine import IndexMismatch, SearchConfig, SearchEngine
from index.tokenize import JapaneseTokenizer
from tests.fakes import HashingEmbedder


@pytest.fixture(scope="module")
def tokenizer(shipped):
    return JapaneseTokenizer([(g.canonical, g.variants) for g in shipped.kb.synonyms])


def engine_for(kb, tokenizer, embedder=None, **config):
    return SearchEngine(kb, embedder or HashingEmbedder(), tokenizer, SearchConfig(**config))


def small_kb(kb, n=40):
    return KnowledgeBase(kb.faqs[:n], kb.contacts, kb.tree, kb.synonyms, kb.sources, kb.catalogue, kb.content_dir)


def test_build_search_save_load_round_trip(tmp_path, shipped, tokenizer):
    kb = small_kb(shipped.kb)
    engine = engine_for(kb, tokenizer).build(cache_dir=tmp_path / "cache")
    faq = kb.faqs[3]
    result = engine.search(faq.question)
    assert result.hits[0].faq_id == faq.id
    assert len({h.faq_id for h in result.hits}) == len(result.hits)  # each FAQ at most once
    assert 0.0 <= result.confidence <= 1.0 and result.band in {"answer", "candidates", "fallback"}

    engine.save(tmp_path / "var")
    current = tmp_path / "var" / "index" / "current"
    assert current.is_symlink()
    manifest = json.loads((current / "manifest.json").read_text())
    for key in ("model_id", "model_fingerprint", "dimension", "sudachi_dictionary", "split_mode", "content_hash", "package_version"):
        assert key in manifest
    loaded = engine_for(kb, tokenizer).load(tmp_path / "var")
    again = loaded.search(faq.question)
    assert [h.faq_id for h in again.hits] == [h.faq_id for h in result.hits]
    assert again.confidence == pytest.approx(result.confidence)


def test_search_is_deterministic(shipped, tokenizer):
    engine = engine_for(small_kb(shipped.kb), tokenizer).build()
    runs = {tuple((h.faq_id, round(h.score, 6)) for h in engine.search("協力隊の任期").hits) for _ in range(3)}
    assert len(runs) == 1


def test_a_mismatched_index_is_refused_with_a_clear_message(tmp_path, shipped, tokenizer):
    kb = small_kb(shipped.kb)
    engine_for(kb, tokenizer).build().save(tmp_path)
    other_model = HashingEmbedder()
    other_model.fingerprint = "another-model"
    with pytest.raises(IndexMismatch, match="model_fingerprint.*govfaq index build"):
        engine_for(kb, tokenizer, other_model).load(tmp_path)
    with pytest.raises(IndexMismatch, match="content_hash"):
        engine_for(small_kb(shipped.kb, 41), tokenizer).load(tmp_path)


def test_editing_one_faq_reembeds_only_that_faq(tmp_path, shipped, tokenizer):
    kb = small_kb(shipped.kb)
    first = HashingEmbedder()
    engine_for(kb, tokenizer, first).build(cache_dir=tmp_path)
    edited = kb.faqs[5].model_copy(update={"answer": kb.faqs[5].answer + "（追記）"})
    kb2 = KnowledgeBase([*kb.faqs[:5], edited, *kb.faqs[6:]], kb.contacts, kb.tree, kb.synonyms, kb.sources, kb.catalogue, kb.content_dir)
    second = HashingEmbedder()
    engine = engine_for(kb2, tokenizer, second).build(cache_dir=tmp_path)
    assert second.embedded == 1 and engine.stats["embedded"] == 1


def test_a_crashed_build_leaves_the_current_index_alone(tmp_path, shipped, tokenizer, monkeypatch):
    kb = small_kb(shipped.kb)
    engine_for(kb, tokenizer).build().save(tmp_path)
    before = os.readlink(tmp_path / "index" / "current")
    broken = engine_for(kb, tokenizer).build()
    monkeypatch.setattr(broken.dense, "save", lambda d: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        broken.save(tmp_path)
    assert os.readlink(tmp_path / "index" / "current") == before
    assert not [p for p in (tmp_path / "index" / "builds").iterdir() if p.name.startswith(".tmp")]
    engine_for(kb, tokenizer).load(tmp_path)  # still loads


def test_flat_faiss_equals_brute_force_numpy():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:20] + 0.1 * rng.normal(size=(20, 32)).astype(np.float32)
    index = make_faiss_index(vectors, "flat")
    sims, rows = index.search(queries, 10)
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert (rows == expected).all()


def test_hnsw_matches_exact_search():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(5000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(5000, 100, replace=False)] + 0.05 * rng.normal(size=(100, 32)).astype(np.float32)
    _, exact = make_faiss_index(vectors, "flat").search(queries, 10)
    _, approx = make_faiss_index(vectors, "hnsw").search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.95, recall
    assert (approx[:, 0] == exact[:, 0]).mean() >= 0.98


def test_empty_and_unknown_queries_fall_back(shipped, tokenizer):
    engine = engine_for(small_kb(shipped.kb), tokenizer).build()
    assert engine.search("").band == "fallback"
    assert engine.search("   ").hits == []


class CachingHashingEmbedder(HashingEmbedder):
    """The hashing embedder with the real embedder's query LRU in front of it."""

    def __init__(self, size=8):
        from index.embed import QueryVectorCache

        super().__init__()
        self.query_cache = QueryVectorCache(size)

    def embed_query(self, text):
        return self.query_cache.get(text, lambda t: self.embed_queries([t])[0])


def test_query_vectors_come_from_the_lru_keyed_on_the_normalised_text(shipped, tokenizer):
    embedder = CachingHashingEmbedder()
    engine = engine_for(small_kb(shipped.kb), tokenizer, embedder).build()
    first = engine.search("ﾏｲﾅﾝﾊﾞｰｶｰﾄﾞの更新")  # half-width: normalised before embedding
    calls = embedder.calls
    again = engine.search("マイナンバーカードの更新")
    assert embedder.calls == calls and embedder.query_cache.hits == 1  # no model call
    assert [h.faq_id for h in again.hits] == [h.faq_id for h in first.hits]
    vector = embedder.embed_query("マイナンバーカードの更新")
    assert not vector.flags.writeable  # a caller cannot change what the next query gets


def test_query_lru_evicts_the_least_recently_used_and_can_be_off():
    from index.embed import QueryVectorCache

    computed = []

    def compute(text):
        computed.append(text)
        return np.full(4, len(computed), np.float32)

    cache = QueryVectorCache(2)
    cache.get("a", compute), cache.get("b", compute), cache.get("a", compute), cache.get("c", compute)
    assert computed == ["a", "b", "c"] and len(cache) == 2
    cache.get("a", compute)  # kept: used after b
    cache.get("b", compute)  # evicted by c
    assert computed == ["a", "b", "c", "b"]
    assert cache.hits == 2 and cache.misses == 4 and cache.hit_rate == pytest.approx(2 / 6)
    off = QueryVectorCache(0)
    off.get("a", compute), off.get("a", compute)
    assert computed[-2:] == ["a", "a"] and len(off) == 0


def test_query_lru_is_safe_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    from index.embed import QueryVectorCache

    cache = QueryVectorCache(16)
    texts = [f"q{i % 40}" for i in range(2000)]
    with ThreadPoolExecutor(8) as pool:
        vectors = list(pool.map(lambda t: cache.get(t, lambda s: np.full(3, int(s[1:]), np.float32)), texts))
    assert all(int(v[0]) == int(t[1:]) for v, t in zip(vectors, texts))  # never another query's vector
    assert len(cache) <= 16 and cache.hits + cache.misses == len(texts)


def test_another_precision_never_reuses_an_index_or_a_cached_vector(tmp_path, shipped, tokenizer):
    """The same weights at another precision (or runtime) have another fingerprint: the index is
    refused and every text is embedded again, none served from the other's cache entries."""
    kb = small_kb(shipped.kb)
    fp32 = HashingEmbedder()
    fp32.fingerprint, fp32.precision = "fp32-onnx:abc", "fp32"
    engine_for(kb, tokenizer, fp32).build(cache_dir=tmp_path / "cache").save(tmp_path / "var")
    q4 = HashingEmbedder()
    q4.fingerprint, q4.precision = "q4-onnx:abc", "q4"
    with pytest.raises(IndexMismatch, match="model_fingerprint.*embedding_precision"):
        engine_for(kb, tokenizer, q4).load(tmp_path / "var")
    engine = engine_for(kb, tokenizer, q4).build(cache_dir=tmp_path / "cache")
    assert engine.stats["embedded"] == engine.stats["vectors"] == q4.embedded


def test_a_text_two_faqs_share_is_embedded_once(tmp_path, shipped, tokenizer):
    """The same answer under two FAQs has one cache key: it is embedded once, and both FAQs get
    its vector."""
    kb = small_kb(shipped.kb)
    twin = kb.faqs[1].model_copy(update={"answer": kb.faqs[0].answer})
    kb2 = KnowledgeBase([kb.faqs[0], twin, *kb.faqs[2:]], kb.contacts, kb.tree, kb.synonyms, kb.sources, kb.catalogue, kb.content_dir)
    embedder = HashingEmbedder()
    engine = engine_for(kb2, tokenizer, embedder).build(cache_dir=tmp_path)
    assert embedder.embedded == engine.stats["embedded"] == engine.stats["vectors"] - 1
    answers = [i for i, (o, r) in enumerate(zip(engine.dense.owners, engine.dense.roles)) if r == 2 and o in (0, 1)]
    assert len(answers) == 2
    assert np.array_equal(engine.dense.index.reconstruct(answers[0]), engine.dense.index.reconstruct(answers[1]))


def test_another_runtime_version_never_reuses_a_cached_vector(tmp_path, shipped, tokenizer):
    """An upgraded ONNX Runtime (same weights, same precision) may round differently: the cache
    keys change, so every text is embedded again."""
    kb = small_kb(shipped.kb)
    old = HashingEmbedder()
    old.runtime_version = "onnxruntime 1.22.0"
    engine_for(kb, tokenizer, old).build(cache_dir=tmp_path)
    new = HashingEmbedder()
    new.runtime_version = "onnxruntime 1.23.0"
    engine = engine_for(kb, tokenizer, new).build(cache_dir=tmp_path)
    assert engine.stats["embedded"] == engine.stats["vectors"] == new.embedded
    again = HashingEmbedder()
    again.runtime_version = "onnxruntime 1.23.0"
    assert engine_for(kb, tokenizer, again).build(cache_dir=tmp_path).stats["embedded"] == 0
