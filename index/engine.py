"""Hybrid search over the knowledge base: build, persist, load, search.

    query ─ normalise ─┬─ Sudachi tokens ─ BM25 ───────┐
                       └─ embed (query prompt) ─ FAISS ┴─ fusion ─ confidence ─ band

The built index is a directory with a manifest. Builds go to a fresh
directory and a `current` symlink is swapped atomically, so a crash never
leaves a half-built index in use. Embeddings are cached by content address
(model fingerprint + prompt + text): editing one FAQ re-embeds only it.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .dense import ALT, ANSWER, QUESTION, DenseIndex
from .lexical import LexicalIndex
from .normalize import normalize
from .tokenize import TOKENIZER_VERSION, JapaneseTokenizer

log = logging.getLogger("govfaq.index")
FORMAT_VERSION = 4


class IndexMismatch(RuntimeError):
    """The index on disk was built for other content, another model or another version."""


@dataclass(frozen=True)
class SearchConfig:
    mode: str = "hybrid"  # hybrid | lexical | dense
    dense_weight: float = 1.0
    lexical_weight: float = 0.2
    lexical_saturation: float = 32.0  # BM25 score at which lexical evidence counts 0.5 (squashes raw BM25)
    index_kind: str = "flat"
    alt_weight: float = 0.9  # a paraphrase's match counts this much of the question's
    latin_lexical_factor: float = 0.0  # share of the lexical weight kept for a query written in Latin letters
    answer_threshold: float = 0.60
    candidate_threshold: float = 0.35
    # Queries written in Latin letters (English) have only meaning to go on, not shared
    # words, so their confidence runs on another scale and gets its own threshold.
    latin_answer_threshold: float = 0.60


@dataclass(frozen=True)
class SearchHit:
    faq_id: str
    score: float
    dense: float
    lexical: float
    rank: int


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: list[SearchHit]
    confidence: float
    band: str  # answer | candidates | fallback
    features: dict = field(default_factory=dict)


def faq_texts(faq) -> tuple[str, list[str], str]:
    """Lexical document, question-like texts, answer passage of one FAQ."""
    questions = [faq.question, *faq.alt_questions]
    lexical = "\n".join(
        [faq.question, faq.question, *faq.alt_questions, " ".join(faq.tags), faq.program or "", faq.category[-1], faq.answer]
    )
    return lexical, questions, faq.answer


class EmbeddingCache:
    """Vectors by content address, stored as keys.json + vectors.npy."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.vectors: dict[str, np.ndarray] = {}
        keys_file, vec_file = directory / "keys.json", directory / "vectors.npy"
        if keys_file.exists() and vec_file.exists():
            try:
                keys = json.loads(keys_file.read_text())
                vecs = np.load(vec_file)
                if len(keys) == len(vecs):
                    self.vectors = dict(zip(keys, vecs))
            except (ValueError, OSError) as exc:  # a damaged cache is only a slower build
                log.warning("embedding cache unreadable, rebuilding it: %s", exc)

    def save(self, keep: set[str], limit: int = 200_000) -> None:
        """Write the cache. Vectors in `keep` always stay; others stay while the cache is under `limit`
        (the knowledge base and a benchmark corpus share one cache and must not evict each other)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        if len(keys) > limit:
            keys = [k for k in keys if k in keep] + [k for k in keys if k not in keep][: max(0, limit - len(keep))]
        tmp = Path(tempfile.mkdtemp(dir=self.directory, prefix=".tmp-"))
        try:
            np.save(tmp / "vectors.npy", np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 1), np.float32))
            (tmp / "keys.json").write_text(json.dumps(keys))
            os.replace(tmp / "vectors.npy", self.directory / "vectors.npy")
            os.replace(tmp / "keys.json", self.directory / "keys.json")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _package_version() -> str:
    try:
        return importlib.metadata.version("govfaq")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class SearchEngine:
    def __init__(self, kb, embedder, tokenizer: JapaneseTokenizer, config: SearchConfig = SearchConfig()):
        self.kb = kb
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.query_tokenizer = tokenizer.for_queries() if hasattr(tokenizer, "for_queries") else tokenizer
        self.config = config
        self.faq_ids = [faq.id for faq in kb.faqs]
        self.lexical: LexicalIndex | None = None
        self.dense: DenseIndex | None = None
        self.manifest: dict = {}
        self.stats: dict = {}
        self.calibration = load_calibration()

    # ---------------------------------------------------------------- build
    def expected_manifest(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "package_version": _package_version(),
            "model_id": self.embedder.model_id,
            "model_fingerprint": self.embedder.fingerprint,
            "dimension": self.embedder.dimension,
            "sudachi_dictionary": self.tokenizer.dictionary_version(),
            "split_mode": self.tokenizer.mode,
            "tokenizer_version": TOKENIZER_VERSION,
            "content_hash": self.kb.content_hash(),
            "index_kind": self.config.index_kind,
            "n_faqs": len(self.faq_ids),
        }

    def build(self, cache_dir: Path | None = None, progress: bool = False) -> "SearchEngine":
        from tqdm import tqdm

        started = time.perf_counter()
        docs, texts, owners, roles, kinds = [], [], [], [], []
        for number, faq in enumerate(self.kb.faqs):
            lexical, questions, answer = faq_texts(faq)
            docs.append(lexical)
            for i, q in enumerate(dict.fromkeys(questions)):
                texts.append(q), owners.append(number), roles.append(QUESTION if i == 0 else ALT), kinds.append("query")
            texts.append(answer), owners.append(number), roles.append(ANSWER), kinds.append("passage")
        bar = tqdm(total=3, desc="index build", disable=not progress, unit="step")
        bar.set_postfix_str("lexical")
        self.lexical = LexicalIndex(self.tokenizer, query_tokenizer=self.query_tokenizer).build(docs)
        bar.update()

        cache = EmbeddingCache(cache_dir) if cache_dir else None
        keys = [self.embedder.cache_key(t, k) for t, k in zip(texts, kinds)]
        missing = [i for i, key in enumerate(keys) if cache is None or key not in cache.vectors]
        bar.set_postfix_str(f"embedding {len(missing)} of {len(texts)} texts")
        new_vectors = self._embed_many([texts[i] for i in missing], [kinds[i] for i in missing], progress)
        store = cache.vectors if cache else {}
        for i, vector in zip(missing, new_vectors):
            store[keys[i]] = vector
        vectors = np.stack([store[k] for k in keys]) if keys else np.zeros((0, self.embedder.dimension), np.float32)
        if cache:
            cache.save(set(keys))
        bar.update()
        bar.set_postfix_str(f"faiss {self.config.index_kind}")
        self.dense = DenseIndex.build(vectors, np.array(owners), np.array(roles), len(docs), self.config.index_kind, self.config.alt_weight)
        bar.update()
        bar.close()
        self.manifest = self.expected_manifest()
        self.stats = {"embedded": len(missing), "vectors": len(texts), "build_s": time.perf_counter() - started}
        return self

    def _embed_many(self, texts: list[str], kinds: list[str], progress: bool) -> list[np.ndarray]:
        from tqdm import tqdm

        out: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
        batch = 64
        order = {kind: [i for i, k in enumerate(kinds) if k == kind] for kind in ("query", "passage")}
        bar = tqdm(total=len(texts), desc="embedding", disable=not progress or not texts, unit="text")
        for kind, idx in order.items():
            embed = self.embedder.embed_queries if kind == "query" else self.embedder.embed_documents
            for start in range(0, len(idx), batch):
                part = idx[start : start + batch]
                vecs = embed([texts[i] for i in part])
                for i, v in zip(part, vecs):
                    out[i] = v
                bar.update(len(part))
        bar.close()
        return out

    # ---------------------------------------------------------- persistence
    def save(self, data_dir: Path) -> Path:
        """Write the index into a fresh build directory, then swap `current` to it atomically."""
        builds = data_dir / "index" / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=builds, prefix=".tmp-"))
        try:
            self.lexical.save(tmp / "lexical")
            self.dense.save(tmp / "dense")
            (tmp / "faq_ids.json").write_text(json.dumps(self.faq_ids, ensure_ascii=False))
            # The manifest is written last: a directory without one is never loaded.
            (tmp / "manifest.json").write_text(json.dumps(self.manifest, ensure_ascii=False, indent=1))
            final = builds / f"{time.strftime('%Y%m%dT%H%M%S')}-{self.manifest['content_hash'][:12]}-{os.getpid()}"
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        link = data_dir / "index" / "current"
        tmp_link = data_dir / "index" / f".current-{os.getpid()}"
        if tmp_link.is_symlink() or tmp_link.exists():
            tmp_link.unlink()
        os.symlink(Path("builds") / final.name, tmp_link)
        os.replace(tmp_link, link)
        self._prune(builds, keep=final)
        return final

    @staticmethod
    def _prune(builds: Path, keep: Path, keep_last: int = 2) -> None:
        done = sorted((p for p in builds.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
        for old in done[:-keep_last]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)
        for stale in builds.glob(".tmp-*"):  # left by a build that crashed
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)

    def load(self, data_dir: Path) -> "SearchEngine":
        directory = (data_dir / "index" / "current").resolve()
        manifest_file = directory / "manifest.json"
        if not manifest_file.exists():
            raise FileNotFoundError(f"no built index in {data_dir / 'index'}: run `govfaq index build`")
        manifest = json.loads(manifest_file.read_text())
        expected = self.expected_manifest()
        differences = [
            f"{key}: index has {manifest.get(key)!r}, service needs {expected[key]!r}"
            for key in expected
            if manifest.get(key) != expected[key]
        ]
        if differences:
            raise IndexMismatch(
                f"the index in {directory} does not match this service ({'; '.join(differences)}). "
                "Rebuild it with `govfaq index build`."
            )
        faq_ids = json.loads((directory / "faq_ids.json").read_text())
        if faq_ids != self.faq_ids:
            raise IndexMismatch(f"the index in {directory} lists other FAQs. Rebuild it with `govfaq index build`.")
        self.lexical = LexicalIndex.load(directory / "lexical", self.tokenizer, self.query_tokenizer)
        self.dense = DenseIndex.load(directory / "dense", len(self.faq_ids), manifest["index_kind"], self.config.alt_weight)
        self.manifest = manifest
        return self

    def load_or_build(self, data_dir: Path, progress: bool = False) -> "SearchEngine":
        try:
            return self.load(data_dir)
        except (FileNotFoundError, IndexMismatch, ValueError, KeyError, OSError) as exc:
            log.info("building the index: %s", exc)
            self.build(cache_dir=data_dir / "cache" / "embeddings", progress=progress)
            self.save(data_dir)
            return self

    # ---------------------------------------------------------------- search
    def embed_query(self, query: str) -> np.ndarray:
        return self.embedder.embed_queries([query])[0]

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str | None = None,
        prefer: set[str] | None = None,
        prefer_bonus: float = 0.03,
        only: set[str] | None = None,
    ) -> SearchResult:
        """Rank FAQs for `query`. `prefer`: FAQ ids that get `prefer_bonus` added (disaster
        support for disaster wording); `only`: search within these FAQs (follow-ups)."""
        mode = mode or self.config.mode
        text = normalize(query)
        n = len(self.faq_ids)
        if not text or n == 0:
            return SearchResult(query, [], 0.0, "fallback")
        lex = self.lexical.scores(text) if mode in ("hybrid", "lexical") else np.zeros(n, np.float32)
        den = self.dense.scores(self.embed_query(text)) if mode in ("hybrid", "dense") else np.zeros(n, np.float32)
        lex_norm = lex / (lex + self.config.lexical_saturation)
        if mode == "hybrid":
            # Words count as far as the query is Japanese: an English query's words only
            # meet the English paraphrases, whose shared everyday words mislead.
            share = self.lexical.japanese_share(text)
            lex_norm = lex_norm * (self.config.latin_lexical_factor + (1 - self.config.latin_lexical_factor) * share)
        if mode == "lexical":
            fused = lex_norm
        elif mode == "dense":
            fused = den
        else:
            fused = self.config.dense_weight * den + self.config.lexical_weight * lex_norm
        if prefer:
            fused = fused + prefer_bonus * self._mask(prefer)
        allowed = self._mask(only) if only is not None else None
        if allowed is not None:
            fused = np.where(allowed > 0, fused, -np.inf)
        order = [
            i for i in np.argsort(-fused, kind="stable")[:k] if np.isfinite(fused[i]) and (mode != "lexical" or lex[i] > 0)
        ]
        hits = [
            SearchHit(self.faq_ids[i], float(fused[i]), float(den[i]), float(lex[i]), rank + 1)
            for rank, i in enumerate(order)
        ]
        features = self._features(text, hits, order, lex_norm, den, allowed)
        confidence = self._confidence(features, mode)
        latin = features.get("japanese_share", 1.0) == 0.0
        answer_threshold = self.config.latin_answer_threshold if latin else self.config.answer_threshold
        band = (
            "answer"
            if confidence >= answer_threshold
            else "candidates"
            if confidence >= self.config.candidate_threshold
            else "fallback"
        )
        return SearchResult(query, hits, confidence, band, features)

    def _mask(self, ids: set[str]) -> np.ndarray:
        return np.fromiter((faq_id in ids for faq_id in self.faq_ids), dtype=np.float32, count=len(self.faq_ids))

    def _features(
        self, text: str, hits: list[SearchHit], order, lex_norm: np.ndarray, den: np.ndarray, allowed: np.ndarray | None = None
    ) -> dict:
        """Evidence that the top hit answers the query, for the confidence model."""
        if not hits:
            return {}
        top = int(order[0])
        dense_sorted = np.sort(den if allowed is None else den[allowed > 0])[::-1]
        return {
            "top_dense": float(den[top]),
            "dense_margin": float(dense_sorted[0] - dense_sorted[1]) if len(dense_sorted) > 1 else 0.0,
            "top_lexical_norm": float(lex_norm[top]),
            "coverage": self.lexical.coverage(text, top) if self.lexical else 0.0,
            "latin_coverage": self.lexical.coverage(text, top, latin=True) if self.lexical else 0.0,
            "japanese_share": self.lexical.japanese_share(text) if self.lexical else 0.0,
            "agree": float(int(np.argmax(den)) == int(np.argmax(lex_norm))) if lex_norm.max() > 0 else 0.0,
            "fused_margin": float(hits[0].score - hits[1].score) if len(hits) > 1 else float(hits[0].score),
        }

    def _confidence(self, f: dict, mode: str) -> float:
        """Probability that the top hit answers the query (logistic, see index/calibrate.py)."""
        if not f:
            return 0.0
        model = self.calibration
        z = model["bias"] + sum(model["weights"][name] * f[name] for name in model["weights"])
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration" / "model.json"
# Used until `govfaq calibrate` has written model.json: a hand-set guess.
DEFAULT_CALIBRATION = {
    "bias": -40.0,
    "weights": {"top_dense": 45.0, "dense_margin": 20.0, "top_lexical_norm": 3.0, "coverage": 0.0, "latin_coverage": 0.0, "japanese_share": 0.0, "agree": 1.0, "fused_margin": 0.0},
    "answer_threshold": 0.6,
    "candidate_threshold": 0.35,
}


def load_calibration(path: Path = CALIBRATION_FILE) -> dict:
    try:
        data = json.loads(path.read_text())
        return {
            "bias": float(data["bias"]),
            "weights": {k: float(v) for k, v in data["weights"].items()},
            "answer_threshold": float(data["answer_threshold"]),
            "candidate_threshold": float(data["candidate_threshold"]),
            "latin_answer_threshold": float(data.get("latin_answer_threshold", data["answer_threshold"])),
        }
    except (OSError, ValueError, KeyError):
        return DEFAULT_CALIBRATION


def engine_from_settings(kb, settings, progress: bool = False, embedder=None) -> SearchEngine:
    from .embed import Embedder

    embedder = embedder or Embedder(settings.embedding_model, progress=progress, runtime=settings.embedding_runtime)
    calibration = load_calibration()
    tokenizer = JapaneseTokenizer([(g.canonical, g.variants) for g in kb.synonyms])
    config = SearchConfig(
        mode=settings.search_mode,
        dense_weight=settings.dense_weight,
        lexical_weight=settings.lexical_weight,
        lexical_saturation=settings.lexical_saturation,
        index_kind=settings.index_kind,
        answer_threshold=settings.answer_threshold if settings.answer_threshold is not None else calibration["answer_threshold"],
        candidate_threshold=(
            settings.candidate_threshold if settings.candidate_threshold is not None else calibration["candidate_threshold"]
        ),
        latin_answer_threshold=(
            settings.latin_answer_threshold
            if settings.latin_answer_threshold is not None
            else calibration.get("latin_answer_threshold", calibration["answer_threshold"])
        ),
    )
    return SearchEngine(kb, embedder, tokenizer, config)


def as_dict(result: SearchResult) -> dict:
    return {**asdict(result), "hits": [asdict(h) for h in result.hits]}


