"""Hybrid search over the knowledge base: build, persist, load, search.

    query ─ normalise ─┬─ Sudachi tokens ─ BM25 ───────┐
                       └─ embed (query prompt) ─ FAISS ┴─ fusion ─ confidence ─ band

The built index is a directory with a manifest. Builds go to a fresh
directory and a `current` symlink is swapped atomically, so a crash never
leaves a half-built index in use. The manifest, written last, lists a sha256
of every data file; loading verifies them and checks that the parts agree,
so a damaged index is refused (IndexCorrupt) and rebuilt, never served.
Embeddings are cached by content address (model fingerprint + prompt +
text): editing one FAQ re-embeds only it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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

from faq.schedule import tokyo_today

from .builtin_model import sha256_file
from .dense import ALT, ANSWER, QUESTION, DenseIndex
from .confidence import MODEL_FILE, Band, ConfidenceModel, Features, load_model
from .lexical import LexicalIndex
from .normalize import normalize
from .tokenize import TOKENIZER_VERSION, JapaneseTokenizer

log = logging.getLogger("govfaq.index")
# 5: the manifest lists a sha256 of every data file (verified at load).
FORMAT_VERSION = 5
MANIFEST = "manifest.json"
STALE_TMP_SECONDS = 3600  # a `.tmp-*` build directory this old belongs to a build that died
STALE_LINK_SECONDS = 60  # a `.current-*` link lives for microseconds; this old, its process died
REBUILD_HINT = "Rebuild it with `govfaq index build`."


class IndexMismatch(RuntimeError):
    """The index on disk was built for other content, another model or another version."""


class IndexCorrupt(IndexMismatch):
    """The index on disk is damaged or incomplete: a file missing, unreadable, truncated,
    changed since the build (checksum), or parts that disagree. Never served; rebuilt."""


class IndexUnavailable(RuntimeError):
    """No usable index on disk, and building one failed."""


def _data_files(directory: Path) -> list[str]:
    """Every file of a build directory but the manifest, as sorted relative POSIX paths."""
    files = (p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    return sorted(f for f in files if f != MANIFEST)


@dataclass(frozen=True)
class SearchConfig:
    mode: str = "hybrid"  # hybrid | lexical | dense
    dense_weight: float = 1.0
    lexical_weight: float = 0.2
    lexical_saturation: float = 32.0  # BM25 score at which lexical evidence counts 0.5 (squashes raw BM25)
    index_kind: str = "flat"
    alt_weight: float = 0.9  # a paraphrase's match counts this much of the question's
    latin_lexical_factor: float = 0.0  # share of the lexical weight kept for a query written in Latin letters
    # Overrides of the calibrated thresholds (index/confidence.py); None: the calibrated value.
    answer_threshold: float | None = None
    candidate_threshold: float | None = None
    latin_answer_threshold: float | None = None


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
    band: Band
    features: Features | None = None


def faq_texts(faq) -> tuple[str, list[str], str]:
    """Lexical document, question-like texts, answer passage of one FAQ."""
    questions = [faq.question, *faq.alt_questions]
    lexical = "\n".join(
        [faq.question, faq.question, *faq.alt_questions, " ".join(faq.tags), faq.program or "", faq.category[-1], faq.answer]
    )
    return lexical, questions, faq.answer


class EmbeddingCache:
    """Vectors by content address, stored as one file (embeddings.npz: keys and vectors).

    One file, replaced atomically: a build killed while saving leaves the old cache
    or the new one, never keys of one with vectors of the other. A damaged cache is
    only a slower build (everything is embedded again)."""

    FILE = "embeddings.npz"
    LEGACY = ("keys.json", "vectors.npy")  # the two-file format of earlier versions, still read

    def __init__(self, directory: Path):
        self.directory = directory
        self.vectors: dict[str, np.ndarray] = {}
        try:
            keys, vecs = self._read()
            if len(keys) == len(vecs):
                self.vectors = dict(zip(keys, vecs))
            else:
                log.warning("embedding cache in %s inconsistent (%d keys, %d vectors), rebuilding it", directory, len(keys), len(vecs))
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with it, the cache is only a speed-up
            log.warning("embedding cache in %s unreadable, rebuilding it: %s: %s", directory, type(exc).__name__, exc)

    def _read(self) -> tuple[list[str], np.ndarray]:
        file = self.directory / self.FILE
        if file.exists():
            with np.load(file, allow_pickle=False) as data:
                return [k.decode("utf-8") for k in data["keys"].tolist()], data["vectors"]
        keys_file, vec_file = (self.directory / name for name in self.LEGACY)
        if keys_file.exists() and vec_file.exists():
            return json.loads(keys_file.read_text()), np.load(vec_file, allow_pickle=False)
        return [], np.zeros((0, 1), np.float32)

    def save(self, keep: set[str], limit: int = 200_000) -> None:
        """Write the cache. Vectors in `keep` always stay; others stay while the cache is under `limit`
        (the knowledge base and a benchmark corpus share one cache and must not evict each other)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        if len(keys) > limit:
            keys = [k for k in keys if k in keep] + [k for k in keys if k not in keep][: max(0, limit - len(keep))]
        _remove_stale(self.directory.glob(".tmp-*"), STALE_TMP_SECONDS)  # left by a save that was killed
        tmp = Path(tempfile.mkdtemp(dir=self.directory, prefix=_tmp_prefix()))
        try:
            vectors = np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 1), np.float32)
            np.savez(tmp / self.FILE, keys=np.array([k.encode("utf-8") for k in keys], dtype="S"), vectors=vectors)
            os.replace(tmp / self.FILE, self.directory / self.FILE)
            for name in self.LEGACY:
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _tmp_prefix() -> str:
    """Temporary directories carry their process id, so that a later start can tell a dead build's."""
    return f".tmp-{os.getpid()}-"


def _owner_is_dead(path: Path) -> bool:
    """True when `path` (.tmp-<pid>-… or .current-<pid>) names a process that no longer runs."""
    parts = path.name.lstrip(".").split("-")
    if len(parts) < 2 or not parts[1].isdigit():
        return False  # no process id (made before they carried one): only age tells
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False  # alive, another user's
    return False


def remove_leftovers(data_dir: Path) -> list[Path]:
    """At start-up, before any build: delete what builds of dead processes left, so a disk they filled
    does not keep the service from building again. A temporary directory or link goes when its process
    is gone (or, without a process id, after STALE_TMP_SECONDS); a build directory without a readable
    manifest goes unless `current` points to it (a manifest is written last, so it is an incomplete
    build). Live processes' work is never touched. Returns what was removed."""
    index_dir, removed = data_dir / "index", []
    builds = index_dir / "builds"
    try:
        current = (index_dir / "current").resolve()
    except OSError:
        current = None
    candidates = [*builds.glob(".tmp-*"), *index_dir.glob(".current-*"), *(data_dir / "cache" / "embeddings").glob(".tmp-*")]
    for path in candidates:
        try:
            age = time.time() - path.lstat().st_mtime
        except OSError:
            continue
        stale = STALE_LINK_SECONDS if path.name.startswith(".current-") else STALE_TMP_SECONDS
        if _owner_is_dead(path) or age > stale:
            removed.append(path)
    if builds.is_dir():
        for path in builds.iterdir():
            if path.name.startswith(".") or not path.is_dir() or path.resolve() == current:
                continue
            try:
                json.loads((path / MANIFEST).read_text(encoding="utf-8"))["files"]
            except (OSError, ValueError, KeyError, TypeError):
                removed.append(path)
    for path in removed:
        try:
            if path.is_symlink() or not path.is_dir():
                path.unlink()
            else:
                shutil.rmtree(path)
        except OSError as exc:
            log.warning("could not remove %s left by an earlier build: %s", path, exc)
    if removed:
        log.info("removed %d leftovers of builds that did not finish: %s", len(removed), ", ".join(p.name for p in removed))
    return removed


def _remove_stale(paths, max_age_s: float) -> None:
    """Delete leftovers (temporary directories or links) older than `max_age_s`; younger ones may be live."""
    now = time.time()
    for path in paths:
        try:
            if now - path.lstat().st_mtime <= max_age_s:
                continue
            if path.is_symlink() or not path.is_dir():
                path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:  # gone meanwhile, or not ours to delete: not worth failing for
            pass


def _inconsistency(lexical: LexicalIndex, dense: DenseIndex, n_faqs: int, dimension: int) -> str | None:
    """What is wrong with a loaded index whose files are intact, if anything (a bug or a
    library that reads old files differently): parts of other sizes, rows pointing nowhere."""
    if lexical.n_docs != n_faqs or len(lexical.doc_terms) != n_faqs:
        return f"lexical index has {lexical.n_docs} documents, expected {n_faqs}"
    for name, bm25 in lexical._bm25.items():
        scores = bm25.scores
        if int(scores["num_docs"]) != n_faqs:
            return f"lexical field {name} has {scores['num_docs']} documents, expected {n_faqs}"
        indptr, indices = scores["indptr"], scores["indices"]
        if len(indptr) < 1 or int(indptr[-1]) != len(indices) or len(indices) != len(scores["data"]) or (np.diff(indptr) < 0).any():
            return f"lexical field {name}: postings do not fit together"
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n_faqs):
            return f"lexical field {name}: postings point past the documents"
    rows = int(dense.index.ntotal)
    if dense.index.d != dimension:
        return f"dense index has dimension {dense.index.d}, expected {dimension}"
    if len(dense.owners) != rows or len(dense.roles) != rows:
        return f"dense index has {rows} vectors but {len(dense.owners)} owners and {len(dense.roles)} roles"
    if rows and (int(dense.owners.min()) < 0 or int(dense.owners.max()) >= n_faqs):
        return "dense index: vectors belong to documents that do not exist"
    if n_faqs and not np.isin(dense.roles, (QUESTION, ALT, ANSWER)).all():
        return "dense index: unknown vector roles"
    if n_faqs and len(np.unique(dense.owners[dense.roles == ANSWER])) != n_faqs:
        return "dense index: not every FAQ has its answer vector"
    return None


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
        self.build_dir: Path | None = None  # the build directory loaded or saved
        self.manifest: dict = {}
        self.stats: dict = {}
        self.confidence_model: ConfidenceModel = load_model().with_thresholds(
            config.answer_threshold, config.candidate_threshold, config.latin_answer_threshold
        )

    # ---------------------------------------------------------------- build
    def expected_manifest(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "package_version": _package_version(),
            "model_id": self.embedder.model_id,
            "model_fingerprint": self.embedder.fingerprint,  # weights, runtime and precision
            "embedding_precision": getattr(self.embedder, "precision", "fp32"),
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
        # Each distinct text once (the same answer or paraphrase under two FAQs has one key),
        # and only those the cache lacks: an edit embeds the edited FAQ's texts alone.
        first = {key: i for i, key in reversed(list(enumerate(keys)))}
        missing = [i for key, i in first.items() if cache is None or key not in cache.vectors]
        missing.sort()
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
        # Sorted by length, in large chunks: the encoder batches similar lengths together and pads
        # each batch only to its longest text (a question padded to a 380-token answer costs 17x).
        batch = 512
        order = {kind: sorted((i for i, k in enumerate(kinds) if k == kind), key=lambda i: len(texts[i])) for kind in ("query", "passage")}
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
        index_dir = data_dir / "index"
        builds = index_dir / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=builds, prefix=_tmp_prefix()))
        try:
            self.lexical.save(tmp / "lexical")
            self.dense.save(tmp / "dense")
            (tmp / "faq_ids.json").write_text(json.dumps(self.faq_ids, ensure_ascii=False))
            manifest = {**self.manifest, "files": {name: sha256_file(tmp / name) for name in _data_files(tmp)}}
            # The manifest is written last: a directory without one is never loaded.
            (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the service may run as another user
            # Unique even for two builds in one second by one process (tmp's random part): the
            # stamp first, so that names sort by time for _prune.
            now = time.time()
            stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.localtime(now))}.{int(now * 1e6) % 1_000_000:06d}"
            final = builds / f"{stamp}-{self.manifest['content_hash'][:12]}-{os.getpid()}-{tmp.name.rsplit('-', 1)[-1]}"
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.manifest = manifest
        self.build_dir = final
        link = index_dir / "current"
        tmp_link = index_dir / f".current-{os.getpid()}"
        if tmp_link.is_symlink() or tmp_link.exists():
            tmp_link.unlink()
        os.symlink(Path("builds") / final.name, tmp_link)
        if link.is_dir() and not link.is_symlink():
            # `current` as a real directory (a copy made with links followed): move it out of the way.
            aside = Path(tempfile.mkdtemp(dir=builds, prefix=".tmp-old-current-"))
            os.rename(link, aside / "current")
            os.replace(tmp_link, link)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp_link, link)
        self._prune(builds, keep=final)
        return final

    @staticmethod
    def _prune(builds: Path, keep: Path, keep_last: int = 2) -> None:
        """Remove all but the last `keep_last` builds, and what killed builds left behind.
        Never fails a save: the new index is already in place."""
        try:
            current = (builds.parent / "current").resolve()
            done = sorted((p for p in builds.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
            for old in done[:-keep_last]:
                if old not in (keep, current):
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            log.warning("could not remove old index builds: %s", exc)
        _remove_stale(builds.glob(".tmp-*"), STALE_TMP_SECONDS)  # build directories of killed builds
        _remove_stale(builds.parent.glob(".current-*"), STALE_LINK_SECONDS)  # links of builds killed before the swap

    def load(self, data_dir: Path) -> "SearchEngine":
        """Load the current index. FileNotFoundError: none built yet. IndexMismatch: built for other
        content, model or version. IndexCorrupt: damaged or incomplete. Nothing is half-loaded:
        the engine changes only when every check has passed."""
        link = data_dir / "index" / "current"
        if not link.is_symlink() and not link.exists():
            raise FileNotFoundError(f"no built index in {data_dir / 'index'}: run `govfaq index build`")
        directory = link.resolve()
        if not directory.is_dir():
            target = os.readlink(link) if link.is_symlink() else link
            raise IndexCorrupt(f"{link} points to {target}, which is not a build directory (deleted?). {REBUILD_HINT}")

        def corrupt(what: str, exc: BaseException | None = None) -> IndexCorrupt:
            detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
            return IndexCorrupt(f"the index in {directory} is damaged: {what}{detail}. {REBUILD_HINT}")

        @contextlib.contextmanager
        def reading(what: str):
            try:
                yield
            except IndexMismatch:
                raise
            except Exception as exc:  # noqa: BLE001 - faiss, numpy, bm25s and json fail in their own ways
                raise corrupt(f"{what} unreadable", exc) from exc

        manifest_file = directory / MANIFEST
        if not manifest_file.exists():
            raise corrupt(f"no {MANIFEST} (an incomplete build)")
        with reading(MANIFEST):
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise corrupt(f"{MANIFEST} is not an object")
        expected = self.expected_manifest()
        differences = [
            f"{key}: index has {manifest.get(key)!r}, service needs {expected[key]!r}"
            for key in expected
            if manifest.get(key) != expected[key]
        ]
        if differences:
            raise IndexMismatch(
                f"the index in {directory} does not match this service ({'; '.join(differences)}). {REBUILD_HINT}"
            )
        self._verify_files(directory, manifest, corrupt)
        with reading("faq_ids.json"):
            faq_ids = json.loads((directory / "faq_ids.json").read_text(encoding="utf-8"))
        if faq_ids != self.faq_ids:
            raise IndexMismatch(f"the index in {directory} lists other FAQs. {REBUILD_HINT}")
        with reading("lexical/"):
            lexical = LexicalIndex.load(directory / "lexical", self.tokenizer, self.query_tokenizer)
        with reading("dense/"):
            dense = DenseIndex.load(directory / "dense", len(self.faq_ids), manifest["index_kind"], self.config.alt_weight)
        with reading("consistency check"):
            problem = _inconsistency(lexical, dense, len(self.faq_ids), int(manifest["dimension"]))
        if problem:
            raise corrupt(problem)
        self.lexical, self.dense, self.manifest = lexical, dense, manifest
        self.build_dir = directory
        return self

    @staticmethod
    def _verify_files(directory: Path, manifest: dict, corrupt) -> None:
        """Every data file is listed in the manifest and has the sha256 recorded at the build."""
        listed = manifest.get("files")
        if not isinstance(listed, dict) or not listed:
            raise corrupt(f"{MANIFEST} lists no data files")
        try:
            present = _data_files(directory)
        except OSError as exc:
            raise corrupt("build directory unreadable", exc) from exc
        missing, extra = sorted(set(listed) - set(present)), sorted(set(present) - set(listed))
        if missing:
            raise corrupt(f"{', '.join(missing)} missing")
        if extra:
            raise corrupt(f"{', '.join(extra)} not part of the build")
        for name in present:
            try:
                digest = sha256_file(directory / name)
            except OSError as exc:
                raise corrupt(f"{name} unreadable", exc) from exc
            if digest != listed[name]:
                raise corrupt(f"{name} differs from the build (checksum mismatch: truncated, overwritten or replaced)")

    def load_or_build(self, data_dir: Path, progress: bool = False) -> "SearchEngine":
        """Load the index; if there is none, or it is stale or damaged, build and save a new one.
        Raises IndexUnavailable (with both reasons) when the rebuild fails too. What dead builds left
        is removed first, so that their files cannot fill the disk this build needs."""
        remove_leftovers(data_dir)
        try:
            return self.load(data_dir)
        except FileNotFoundError as exc:
            reason = str(exc)
            log.info("no index yet, building it: %s", exc)
        except IndexCorrupt as exc:
            reason = str(exc)
            log.warning("index damaged, rebuilding it: %s", exc)
        except (IndexMismatch, ValueError, KeyError, OSError) as exc:
            reason = str(exc)
            log.info("building the index: %s", exc)
        try:
            self.build(cache_dir=data_dir / "cache" / "embeddings", progress=progress)
            self.save(data_dir)
        except Exception as exc:
            raise IndexUnavailable(
                f"no usable index ({reason}) and rebuilding it failed: {type(exc).__name__}: {exc}"
            ) from exc
        return self

    # ---------------------------------------------------------------- search
    def embed_query(self, query: str) -> np.ndarray:
        """`query` (normalised by the caller) as a vector; through the embedder's in-memory LRU
        when it has one (residents ask the same questions: a hit costs no model call)."""
        cached = getattr(self.embedder, "embed_query", None)
        return cached(query) if cached is not None else self.embedder.embed_queries([query])[0]

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str | None = None,
        prefer: set[str] | None = None,
        prefer_bonus: float = 0.03,
        only: set[str] | None = None,
        today: dt.date | None = None,
        focus: str | None = None,
    ) -> SearchResult:
        """Rank FAQs for `query`. `prefer`: FAQ ids that get `prefer_bonus` added (disaster
        support for disaster wording); `only`: search within these FAQs (follow-ups).
        Only FAQs in force on `today` (default: today in Asia/Tokyo) are ranked: the index
        holds every FAQ, so an FAQ appears or retires on its date without a rebuild.
        `focus`: the question sentence of a longer message; its words count once more in BM25
        (words only: no second model call), so the context around it does not drown it."""
        in_force = self.kb.in_force_ids(today or tokyo_today())
        if in_force is not None:
            only = in_force if only is None else only & in_force
        mode = mode or self.config.mode
        text = normalize(query)
        n = len(self.faq_ids)
        if not text or n == 0:
            return SearchResult(query, [], 0.0, "fallback")
        lex = self.lexical.scores(text) if mode in ("hybrid", "lexical") else np.zeros(n, np.float32)
        if focus and mode in ("hybrid", "lexical") and normalize(focus):
            lex = lex + self.lexical.scores(normalize(focus))
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
        confidence = self.confidence_model.probability(features)
        band = self.confidence_model.band(confidence, latin=features.latin) if features else "fallback"
        return SearchResult(query, hits, confidence, band, features)

    def _mask(self, ids: set[str]) -> np.ndarray:
        return np.fromiter((faq_id in ids for faq_id in self.faq_ids), dtype=np.float32, count=len(self.faq_ids))

    def _features(
        self, text: str, hits: list[SearchHit], order, lex_norm: np.ndarray, den: np.ndarray, allowed: np.ndarray | None = None
    ) -> Features | None:
        """Evidence that the top hit answers the query, for the confidence model."""
        if not hits:
            return None
        top = int(order[0])
        dense_sorted = np.sort(den if allowed is None else den[allowed > 0])[::-1]
        return Features(
            top_dense=float(den[top]),
            dense_margin=float(dense_sorted[0] - dense_sorted[1]) if len(dense_sorted) > 1 else 0.0,
            top_lexical_norm=float(lex_norm[top]),
            coverage=self.lexical.coverage(text, top) if self.lexical else 0.0,
            latin_coverage=self.lexical.coverage(text, top, latin=True) if self.lexical else 0.0,
            japanese_share=self.lexical.japanese_share(text) if self.lexical else 0.0,
            agree=float(int(np.argmax(den)) == int(np.argmax(lex_norm))) if lex_norm.max() > 0 else 0.0,
            fused_margin=float(hits[0].score - hits[1].score) if len(hits) > 1 else float(hits[0].score),
        )


CALIBRATION_FILE = MODEL_FILE  # calibrate.py writes the model here


def embedder_from_settings(settings, progress: bool = False, cache_dir: Path | None = None):
    from .embed import Embedder

    return Embedder(
        settings.embedding_model, cache_dir=cache_dir, threads=settings.embedding_threads or None, progress=progress,
        runtime=settings.embedding_runtime, precision=settings.embedding_precision, query_cache_size=settings.query_cache_size,
    )


def engine_from_settings(kb, settings, progress: bool = False, embedder=None) -> SearchEngine:
    embedder = embedder or embedder_from_settings(settings, progress=progress)
    tokenizer = JapaneseTokenizer([(g.canonical, g.variants) for g in kb.synonyms])
    config = SearchConfig(
        mode=settings.search_mode,
        dense_weight=settings.dense_weight,
        lexical_weight=settings.lexical_weight,
        lexical_saturation=settings.lexical_saturation,
        index_kind=settings.index_kind,
        answer_threshold=settings.answer_threshold,
        candidate_threshold=settings.candidate_threshold,
        latin_answer_threshold=settings.latin_answer_threshold,
    )
    return SearchEngine(kb, embedder, tokenizer, config)


def as_dict(result: SearchResult) -> dict:
    return {**asdict(result), "hits": [asdict(h) for h in result.hits]}


