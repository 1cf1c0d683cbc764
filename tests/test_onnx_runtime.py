"""The ONNX Runtime path gives the same token ids and the same vectors as
sentence-transformers on the converted built-in model."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TEXTS = [
    "地域おこし協力隊の任期は何年ですか",
    "ちいきおこしきょうりょくたい　って今なんにんくらいいるの？",
    "ｶﾀｶﾅ と ＡＢＣ１２３ と ①②③",
    "What is the phone number of Kikumimi Osaka?",
    "  spaces   and\ttabs\u3000全角スペース ",
    "絵文字 😀👍🏽 と記号 ※★",
    "Ⅻ ㍻ ㈱ ﬁ ﾊﾟﾋﾟﾌﾟ é café",
    "令和8年2月20日(金)までに zenshajimukyoku.y2z@cas.go.jp 宛",
    "長い文章。" * 300,
]


@pytest.fixture(scope="module")
def model_dir():
    from index.builtin_model import ensure_builtin_model, weights_fingerprint
    from index.onnx_runtime import export_onnx

    path = ensure_builtin_model(progress=False)
    export_onnx(path, weights_fingerprint(path))  # a fresh machine has not exported it yet
    return path


def test_fast_normaliser_gives_the_same_token_ids(model_dir):
    from tokenizers import Tokenizer

    from index.onnx_runtime import OnnxEncoder, character_table

    assert character_table(json.loads((model_dir / "tokenizer.json").read_text())) is not None
    encoder = OnnxEncoder(model_dir)
    reference = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    reference.enable_truncation(max_length=512)
    for text in TEXTS:
        for prefix in ("query: ", "passage: "):
            assert encoder.token_ids(prefix + text) == reference.encode(prefix + text).ids, text


def test_onnx_vectors_equal_sentence_transformers(model_dir):
    from index.embed import Embedder

    onnx = Embedder("builtin", runtime="onnx", progress=False)
    torch_ = Embedder("builtin", runtime="torch", progress=False)
    for embed in ("embed_queries", "embed_documents"):
        a = getattr(onnx, embed)(TEXTS)
        b = getattr(torch_, embed)(TEXTS)
        cos = (a * b).sum(axis=1)
        assert np.median(cos) >= 0.9999 and cos.min() >= 0.999, cos
