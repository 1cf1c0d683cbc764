"""Two real instances behind a real nginx, sharing state in a real PostgreSQL (issue 16).

Each instance is its own `govfaq serve` process with its own data folder (a copy of the built
index, its own SQLite files that must stay unused for shared state), both on one
GOVFAQ_DATABASE_URL. nginx balances round-robin with no stickiness. What must hold:
a follow-up keeps its context on the other instance, a staff login works on both, feedback
given on one shows in the other's insights, a client's rate limit counts across instances,
and killing one instance under load loses no answer and no record."""

import re
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.multi import Instance, nginx_in_front, wait_ready

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "two-instances-heron-83"
RATE = 12  # questions per client per minute, counted across instances


def data_dir_with_index(folder: Path) -> Path:
    """A data folder holding a copy of the built index in var/ (built once by the suite's set-up)."""
    index = ROOT / "var" / "index"
    if not (index / "current").exists():
        pytest.skip("no built index in var/: `make test` builds it (govfaq index build)")
    folder.mkdir(parents=True)
    shutil.copytree(index, folder / "index", symlinks=True)
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres_server):
    root = tmp_path_factory.mktemp("two")
    url = postgres_server.new_database()
    env = {"GOVFAQ_DATABASE_URL": url, "GOVFAQ_STAFF_TOKEN": TOKEN, "GOVFAQ_ASK_RATE_PER_MINUTE": str(RATE),
           "GOVFAQ_INDEX_POLL_SECONDS": "0"}
    instances = [Instance({**env, "GOVFAQ_DATA_DIR": str(data_dir_with_index(root / f"data{i}"))},
                          root / f"instance{i}.log").start() for i in (0, 1)]
    try:
        for inst in instances:
            wait_ready(inst.url, proc=inst.proc)
        with nginx_in_front([i.port for i in instances], root / "nginx") as front:
            yield {"front": front, "instances": instances, "root": root, "db": url}
    finally:
        for inst in instances:
            inst.stop()


def ask(base: str, query: str, session_id: str | None = None, client: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": client} if client else {}
    return httpx.post(f"{base}/api/ask", json={"query": query, "session_id": session_id}, headers=headers, timeout=30)


def staff_login(base: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=30)
    page = c.get("/staff/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = c.post("/staff/login", data={"password": TOKEN, "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return c


def test_a_follow_up_keeps_its_context_on_the_other_instance(cluster):
    a, b = (i.url for i in cluster["instances"])
    first = ask(a, "地域おこし協力隊の任期は何年ですか", client="198.51.100.1").json()
    assert first["session_id"]
    # Asked of the other instance directly, and then through nginx (which alternates).
    follow = ask(b, "財政措置は？", first["session_id"], client="198.51.100.1").json()
    assert follow["kind"] != "fallback"
    assert "協力隊" in (follow["answer"] + follow["message"]), follow
    via = ask(cluster["front"], "財政措置は？", first["session_id"], client="198.51.100.1").json()
    assert "協力隊" in (via["answer"] + via["message"]), via


def test_a_staff_login_works_on_both(cluster):
    a, b = (i.url for i in cluster["instances"])
    c = staff_login(a)
    cookies = dict(c.cookies)
    for base in (a, b):
        r = httpx.get(f"{base}/staff", cookies=cookies, follow_redirects=False, timeout=30)
        assert r.status_code == 200, (base, r.status_code)


def test_feedback_given_on_one_shows_in_the_others_insights(cluster):
    a, b = (i.url for i in cluster["instances"])
    reply = ask(a, "地域おこし協力隊の任期は何年ですか", client="198.51.100.2").json()
    faq_id = reply["faq_id"] or reply["candidates"][0]["faq_id"]
    marker = "二台目でも見える意見です"
    r = httpx.post(f"{a}/api/feedback", json={"faq_id": faq_id, "helpful": False, "comment": marker,
                                             "query_id": reply["query_id"]}, timeout=30)
    assert r.json()["stored"]
    c = staff_login(b)
    for _ in range(40):  # the writer thread commits its queue within a moment
        if marker in c.get("/staff").text:
            break
        time.sleep(0.25)
    assert marker in c.get("/staff").text


def test_a_clients_rate_limit_counts_across_instances(cluster):
    codes = [ask(cluster["front"], f"ふるさと住民登録について{i}", client="203.0.113.7").status_code
             for i in range(RATE + 2)]
    assert codes[:RATE] == [200] * RATE
    assert codes[RATE:] == [429, 429], codes
    # Another client is not affected.
    assert ask(cluster["front"], "ふるさと住民登録とは", client="203.0.113.8").status_code == 200


def test_killing_one_instance_under_load_loses_no_answer_and_no_record(cluster):
    """Runs last in this module: it kills instance 0 (SIGKILL) while questions flow through nginx."""
    import psycopg

    front = cluster["front"]
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = ask(front, "行政相談の窓口はどこですか", client=f"192.0.2.{n}")
                results.append((r.status_code, r.json().get("query_id") if r.status_code == 200 else None))
            except httpx.HTTPError as exc:
                results.append((0, type(exc).__name__))
            if i >= RATE - 1:  # stay under each client's limit
                n += 10
                i = 0
            time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(k,)) for k in (1, 2, 3)]
    for t in threads:
        t.start()
    time.sleep(3)
    cluster["instances"][0].kill()
    time.sleep(5)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert results, "no request was made"
    failed = [r for r in results if r[0] != 200]
    assert not failed, f"{len(failed)} of {len(results)} failed: {failed[:5]}"
    ids = [qid for code, qid in results if qid]
    time.sleep(2)  # the surviving writer's last batch
    with psycopg.connect(cluster["db"]) as conn:
        stored = {str(row[0]) for row in conn.execute("SELECT id FROM query_log").fetchall()}
    missing = [qid for qid in ids if qid not in stored]
    assert not missing, f"{len(missing)} of {len(ids)} answered queries have no log row"
