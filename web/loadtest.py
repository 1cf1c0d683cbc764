"""`govfaq loadtest`: many residents at once against the web service, over loopback only.

The tool starts `govfaq serve` on a free loopback port (or targets a server
already running on loopback), waits for `/readyz`, warms up, then loads it
for a bounded time and stops the server again. The load itself comes from
locust, driven headless from Python in a process of its own
(`web/loadgen.py`; importing locust patches the standard library for gevent,
which must not happen here). What the residents do is in `web/loadmix.py`.
Every figure is measured; nothing here asserts a wall-clock time. The exit
status reflects unexpected errors, memory growth over the limit and a rate
limit that never answered 429.

Three ways to load it:

- `--rate R`: an open loop — R requests a second arrive (Poisson by
  default), whatever the replies; the latency is what a resident would wait
  at that rate;
- `--curve`: open-loop steps at rising rates (20, 40 … requests/s, 20 s
  each), stopping after the first step that misses p95 < 100 ms with no
  errors; the report gives every step and the highest rate that passed;
- neither: `--clients N` residents back to back without think time (a
  closed loop): the throughput at saturation, where the latency is mostly
  queueing for the CPU.

Addresses: the tool plays the reverse proxy in front of the service. Every
conversation carries its own `X-Forwarded-For` address from 198.18.0.0/15
(the range set aside for benchmarks, RFC 2544), so the per-client rate limit
applies per simulated resident, as it would behind a load balancer; the
server the tool starts trusts that header from its loopback proxy only
(`--forwarded-allow-ips 127.0.0.1`, named explicitly). One deliberately
abusive client asks faster than the limit from a single address, on a fixed
schedule whatever the replies; its 429 replies (each must carry
`Retry-After`) are counted apart as "deliberate". A 429 to a resident is an
error.

Memory: the resident set size of the server's whole process tree (the
uvicorn supervisor and its workers, read with psutil) after the warm-up and
after the run; PSS too where readable (shared pages counted once).

The server the tool starts gets a throw-away data folder that links the
built index, so the load's queries and feedback never reach the real query
log in `var/govfaq.sqlite3`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from web.loadmix import Criterion, Workload, load_workload

MAX_CLIENTS = 500
MAX_DURATION_S = 900.0
MAX_RATE = 1000.0  # requests per second, open loop
MAX_STEPS = 20
CURVE_RATES = (20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 140.0, 160.0, 180.0, 200.0)
CURVE_DRAIN_S = 10.0  # seconds a step's requests under way at its end may take before they count as unfinished
RSS_GROWTH_LIMIT_PCT = 10.0
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ processes
def process_tree(pid: int) -> list[int]:
    """`pid` and all its living descendants."""
    try:
        proc = psutil.Process(pid)
        return sorted([pid] + [child.pid for child in proc.children(recursive=True)])
    except psutil.Error:
        return []


def rss_bytes(pid: int) -> int | None:
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None


def tree_memory(pid: int) -> dict:
    """RSS (and PSS where readable: shared pages counted once) of a process and its descendants."""
    processes = []
    for member in process_tree(pid):
        try:
            proc = psutil.Process(member)
            with proc.oneshot():
                rss, name = proc.memory_info().rss, proc.name()
            try:
                pss = proc.memory_full_info().pss
            except (psutil.AccessDenied, AttributeError):
                pss = None
        except psutil.Error:
            continue
        processes.append({"pid": member, "name": name, "rss_bytes": rss, "pss_bytes": pss})
    pss_all = [p["pss_bytes"] for p in processes]
    return {
        "rss_bytes": sum(p["rss_bytes"] for p in processes),
        "pss_bytes": sum(pss_all) if processes and None not in pss_all else None,
        "processes": processes,
    }


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its living descendants."""
    total = 0.0
    for member in process_tree(pid):
        try:
            times = psutil.Process(member).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs spent busy since boot, to see what else ran during the load."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_loopback(url: str) -> str:
    """The URL without a trailing slash; ValueError unless it is http(s) to a loopback address."""
    import ipaddress

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url}: not an http:// URL")
    host = parts.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(f"{url}: the load test only targets loopback (127.0.0.0/8, ::1, localhost)")
    return url.rstrip("/")


def wait_ready(base_url: str, timeout: float, needed: int = 3, proc: subprocess.Popen | None = None) -> float:
    """Seconds until /readyz answered 200 `needed` times in a row, each on a fresh connection
    (with several workers, each worker must have loaded the index)."""
    started = time.monotonic()
    streak = 0
    while streak < needed:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it was ready")
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the server was not ready after {timeout:.0f} s")
        try:
            # trust_env=False: no proxy from the environment between the tool and the loopback server.
            with httpx.Client(base_url=base_url, timeout=5.0, trust_env=False) as client:
                resp = client.get("/readyz", headers={"Connection": "close"})
            streak = streak + 1 if resp.status_code == 200 else 0
        except httpx.HTTPError:
            streak = 0
        time.sleep(0.02 if streak else 0.25)
    return time.monotonic() - started


def wait_idle(pid: int, timeout: float, cores: float = 0.1, window: float = 1.0) -> float:
    """Seconds until the process tree used under `cores` CPUs over `window` seconds.

    /readyz on fresh connections can be answered by the same worker again and again while another one is
    still loading the model; a loading worker burns CPU, so an idle tree is one where every worker is done.
    """
    started = time.monotonic()
    before = tree_cpu_seconds(pid)
    while time.monotonic() - started < timeout:
        time.sleep(window)
        after = tree_cpu_seconds(pid)
        if after - before < cores * window:
            break
        before = after
    return time.monotonic() - started


class Server:
    """`govfaq serve` on a free loopback port, with a throw-away data folder linking the built index."""

    def __init__(self, workers: int, data_dir: Path, ask_rate: int, feedback_rate: int, content_dir: Path | None = None):
        self.workers = workers
        self.content_dir = content_dir
        self.data_dir = Path(data_dir).resolve()
        self.ask_rate = ask_rate
        self.feedback_rate = feedback_rate
        self.proc: subprocess.Popen | None = None
        self.work: Path | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("govfaq")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
        return base + ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                       "--forwarded-allow-ips", "127.0.0.1"]

    def start(self) -> None:
        if not (self.data_dir / "index" / "current").exists():
            raise RuntimeError(f"no built index in {self.data_dir / 'index'}: run `govfaq index build` first")
        self.work = Path(tempfile.mkdtemp(prefix="govfaq-loadtest-"))
        data = self.work / "var"
        data.mkdir()
        for name in ("index", "cache", "templates"):
            if (self.data_dir / name).exists():
                (data / name).symlink_to(self.data_dir / name)
        env = dict(os.environ)
        env.update({
            "GOVFAQ_DATA_DIR": str(data),
            "GOVFAQ_ASK_RATE_PER_MINUTE": str(self.ask_rate),
            "GOVFAQ_FEEDBACK_RATE_PER_MINUTE": str(self.feedback_rate),
            # The tool is the loopback proxy in front of the server: its X-Forwarded-For must be trusted whatever
            # the operator's environment says (the command line names it too).
            "FORWARDED_ALLOW_IPS": "127.0.0.1",
        })
        if self.content_dir is not None:
            env["GOVFAQ_CONTENT_DIR"] = str(Path(self.content_dir).resolve())
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.port = free_port()
        self.log = open(self.work / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        # A session of its own: a Ctrl-C at the terminal reaches the tool, which then stops the server.
        self.proc = subprocess.Popen(self.command(), env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.work / "serve.log").read_text(errors="replace").splitlines()[-lines:])
        except (OSError, TypeError):
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Process objects taken now: psutil refuses to signal a later process that reused one of these ids.
            members = []
            for pid in process_tree(self.proc.pid):
                try:
                    members.append(psutil.Process(pid))
                except psutil.Error:
                    pass
            self.proc.send_signal(signal.SIGTERM)  # uvicorn shuts its workers down gracefully
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            for member in members:  # only the processes of the server started here
                try:
                    member.kill()
                except psutil.Error:
                    pass
            if self.proc.poll() is None:
                self.proc.wait(timeout=10)
        if getattr(self, "log", None) is not None:
            self.log.close()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)  # links are removed, never followed


# ------------------------------------------------------------------ the tool
@dataclass
class Options:
    clients: int = 50
    duration: float = 60.0
    workers: int = 1
    url: str | None = None
    pid: int | None = None
    seed: int = 7
    timeout: float = 30.0
    warmup: float = 5.0
    abuse_rate: float = 5.0
    max_rss_growth_pct: float = RSS_GROWTH_LIMIT_PCT
    ready_timeout: float = 300.0
    settle: float = 1.0  # seconds between the end of a phase and reading the memory
    data_dir: Path | None = None
    content_dir: Path | None = None
    rate: float | None = None  # open loop: requests per second
    curve: bool = False  # open-loop steps at `curve_rates`, `step` seconds each
    curve_rates: tuple[float, ...] = CURVE_RATES
    step: float = 20.0
    arrivals: str = "poisson"
    ask_limit: int | None = None  # questions per client per minute of the server started here (None: the default)

    @property
    def mode(self) -> str:
        return "curve" if self.curve else "rate" if self.rate is not None else "closed"

    def check(self) -> None:
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise ValueError(f"--clients must be between 1 and {MAX_CLIENTS}")
        if not 0 < self.duration <= MAX_DURATION_S:
            raise ValueError(f"--duration must be over 0 and at most {MAX_DURATION_S:.0f} s")
        if not 0 <= self.warmup <= 120:
            raise ValueError("--warmup must be between 0 and 120 s")
        if not 0 <= self.abuse_rate <= 100:
            raise ValueError("--abuse-rate must be between 0 and 100 per second")
        if not 1 <= self.workers <= 16:
            raise ValueError("--workers must be between 1 and 16")
        if self.timeout <= 0:
            raise ValueError("--timeout must be positive")
        if self.rate is not None and not 0 < self.rate <= MAX_RATE:
            raise ValueError(f"--rate must be over 0 and at most {MAX_RATE:g} requests per second")
        if self.curve:
            if self.rate is not None:
                raise ValueError("--rate and --curve exclude each other (the curve sets its own rates)")
            if not 0 < self.step <= 120:
                raise ValueError("--step must be over 0 and at most 120 s")
            if not 1 <= len(self.curve_rates) <= MAX_STEPS or not all(0 < r <= MAX_RATE for r in self.curve_rates):
                raise ValueError(f"--curve-rates: 1 to {MAX_STEPS} rates, each over 0 and at most {MAX_RATE:g}")
            if list(self.curve_rates) != sorted(set(self.curve_rates)):
                raise ValueError("--curve-rates must rise")
            if self.step * len(self.curve_rates) > MAX_DURATION_S:
                raise ValueError(f"--curve: steps × --step must stay within {MAX_DURATION_S:.0f} s")
        if self.arrivals not in ("poisson", "uniform"):
            raise ValueError("--arrivals is poisson or uniform")
        if self.ask_limit is not None and not 1 <= self.ask_limit <= 100_000:
            raise ValueError("--ask-limit must be between 1 and 100000 questions a minute")
        if self.url is not None:
            if self.ask_limit is not None:
                raise ValueError("--ask-limit only goes with the server the tool starts (not --url)")
            self.url = check_loopback(self.url)
        elif self.pid is not None:
            raise ValueError("--pid only goes with --url (the tool measures the server it starts itself)")

    def phases(self) -> list[dict]:
        """The load generator's phases: a warm-up (not counted), then the load or the steps of the curve."""
        first = self.curve_rates[0] if self.curve else self.rate
        phases = []
        if self.warmup > 0:
            phases.append({"name": "warm-up", "duration": self.warmup, "rate": first, "clients": self.clients,
                           "abuse": False, "measured": False})
        if self.curve:
            # A step that needs more than 10 s to answer what it was sent has failed already: that bounds a curve.
            drain = min(self.timeout, CURVE_DRAIN_S)
            phases += [{"name": f"step-{rate:g}", "duration": self.step, "rate": rate, "drain": drain}
                       for rate in self.curve_rates]
        else:
            phases.append({"name": "load", "duration": self.duration, "rate": self.rate, "clients": self.clients})
        return phases


def _current_index(data_dir: Path) -> str | None:
    try:
        return os.readlink(data_dir / "index" / "current")
    except OSError:
        return None


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def generate_load(options: Options, base_url: str, pid: int | None, workload: Workload, say) -> dict:
    """Run `web.loadgen` (locust) in a process of its own; its figures."""
    phases = options.phases()
    spec = {
        "base_url": base_url, "pid": pid, "seed": options.seed, "timeout": options.timeout,
        "abuse_rate": options.abuse_rate, "arrivals": options.arrivals, "settle": options.settle,
        "curve": options.curve, "criterion": asdict(Criterion()), "phases": phases,
        "workload": {"paraphrases": workload.paraphrases, "out_of_scope": workload.out_of_scope,
                     "follow_ups": workload.follow_ups},
    }
    env = dict(os.environ)
    # The load generator imports this checkout's modules, whatever the installed package points at.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["GOVFAQ_LOADGEN_QUIET"] = "0" if say is not None else "1"
    bound = sum(p["duration"] + options.timeout + 35 for p in phases) + 2 * options.settle + 60
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "web.loadgen"], input=json.dumps(spec, ensure_ascii=False), text=True,
            stdout=subprocess.PIPE, stderr=None if say is not None else subprocess.PIPE, env=env, timeout=bound,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed it
        raise RuntimeError(f"the load generator did not finish within {bound:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed (exit {proc.returncode})\n{(proc.stderr or '')[-2000:]}")
    return json.loads(proc.stdout)


def run_loadtest(options: Options, workload: Workload | None = None, progress=None) -> dict:
    """Start (or reach) the server, warm up, load, measure; the report as one dict."""
    options.check()
    say = progress or (lambda message: None)
    if workload is None:
        workload = load_workload(options.content_dir)
    from bot.settings import Settings

    defaults = Settings.model_fields
    # The limit of the server started here; for --url the shipped default is assumed.
    ask_limit = options.ask_limit or defaults["ask_rate_per_minute"].default
    server = None
    report: dict = {
        "target": options.url,
        "started_server": options.url is None,
        "workers": options.workers if options.url is None else None,
        "mode": options.mode,
        "clients": options.clients if options.mode == "closed" else None,
        "rate_per_s": options.rate,
        "arrivals": options.arrivals if options.mode != "closed" else None,
        "duration_s": options.duration,
        "warmup_s": options.warmup,
        "seed": options.seed,
        "timeout_s": options.timeout,
        "cpu_count": os.cpu_count(),
        "index_rebuilt": None,
    }
    # A plain `kill` of the tool must not leave the server it started running.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if options.url is None:
            data_dir = options.data_dir or Settings().data_dir
            server = Server(options.workers, data_dir, ask_limit,
                            defaults["feedback_rate_per_minute"].default, options.content_dir)
            index_before = _current_index(server.data_dir)
            server.start()
            base_url, pid = server.base_url, server.proc.pid
            report["target"] = base_url
            report["server_command"] = " ".join(server.command()[-9:])
            say(f"started {' '.join(server.command()[-9:])} (pid {pid}); waiting for /readyz")
            try:
                ready = wait_ready(base_url, options.ready_timeout, needed=5 * options.workers, proc=server.proc)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{server.log_tail()}") from None
            if options.workers > 1:
                ready += wait_idle(pid, options.ready_timeout)
            # A stale index is rebuilt by the server at start-up (into the real data folder, as `govfaq serve`
            # would): its memory then includes the build, so the report says so.
            report["index_rebuilt"] = _current_index(server.data_dir) != index_before
        else:
            base_url, pid = options.url, options.pid
            ready = wait_ready(base_url, options.ready_timeout)
        report["ready_s"] = round(ready, 2)
        say(f"ready after {ready:.1f} s")
        load = generate_load(options, base_url, pid, workload, progress)
    finally:
        if server is not None:
            say("stopping the server")
            server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    report["generator"] = f"locust {load['locust']['version']} (web/loadgen.py)"
    report["warmup_requests"] = load["warmup_requests"]
    if options.mode == "curve":
        report["duration_s"] = load["measured_s"]  # the steps the figures below count (those that passed)
    report["elapsed_s"] = load["elapsed_s"]
    report.update(load["figures"])
    if options.mode == "rate":
        report["open_loop"] = load["steps"][0]
    if load["curve"] is not None:
        report["curve"] = load["curve"] | {"step_s": options.step, "rates_per_s": list(options.curve_rates)}
    report["deliberate"] = None
    if options.abuse_rate > 0:
        abuse = load["abuse"]
        report["deliberate"] = abuse | {
            "limit_per_minute": ask_limit,
            "expect_429": abuse["requests"] > ask_limit
            and options.abuse_rate * min(load["abuse_duration_s"], 60.0) > ask_limit,
        }
    report["memory"] = _memory_report(load["memory_before"], load["memory_after"], options.max_rss_growth_pct)
    report["cpu"] = load["cpu"]
    report["locust"] = load["locust"]["phases"]
    flags = []
    if report["errors_total"]:
        flags.append("errors")
    if report["memory"] and report["memory"]["growth_pct"] is not None and report["memory"]["growth_pct"] > options.max_rss_growth_pct:
        flags.append("rss_growth")
    abuse = report["deliberate"]
    if abuse is not None and ((abuse["expect_429"] and abuse["rate_limited"] == 0) or abuse["errors"]):
        flags.append("rate_limit")
    report["flags"] = flags
    report["ok"] = not flags
    return report


def _memory_report(before: dict | None, after: dict | None, limit: float) -> dict | None:
    if not before or not after or not before["rss_bytes"]:
        return None
    growth = (after["rss_bytes"] - before["rss_bytes"]) / before["rss_bytes"] * 100
    pss_growth = None
    if before["pss_bytes"] and after["pss_bytes"] is not None:
        pss_growth = round((after["pss_bytes"] - before["pss_bytes"]) / before["pss_bytes"] * 100, 2)
    return {
        "rss_before_bytes": before["rss_bytes"],
        "rss_after_bytes": after["rss_bytes"],
        "growth_pct": round(growth, 2),
        "limit_pct": limit,
        "pss_before_bytes": before["pss_bytes"],
        "pss_after_bytes": after["pss_bytes"],
        "pss_growth_pct": pss_growth,
        "processes_before": [{k: p[k] for k in ("pid", "name", "rss_bytes")} for p in before["processes"]],
        "processes_after": [{k: p[k] for k in ("pid", "name", "rss_bytes")} for p in after["processes"]],
    }


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def format_report(r: dict) -> str:
    mib = 2**20
    lines = []
    who = f"govfaq serve --workers {r['workers']}, started by the tool" if r["started_server"] else "a running server"
    lines.append(f"{'target':<12} {r['target']} ({who}; ready after {r['ready_s']} s)")
    if r.get("index_rebuilt"):
        lines.append(f"{'':<12} the index was stale and the server rebuilt it at start-up: its memory includes the build")
    if r["mode"] == "closed":
        load = f"{r['clients']} clients back to back (closed loop) for {r['duration_s']:g} s"
    elif r["mode"] == "rate":
        load = f"{r['rate_per_s']:g} requests/s arriving ({r['arrivals']}, open loop) for {r['duration_s']:g} s"
    else:
        load = f"open-loop steps of {r['curve']['step_s']:g} s ({r['arrivals']}); the figures below: the steps that passed"
    lines.append(f"{'load':<12} {load}, seed {r['seed']}, "
                 f"after a {r['warmup_s']:g} s warm-up ({r['warmup_requests']} requests); {r.get('generator', '')}")
    lines.append(f"{'requests':<12} {r['requests']} in {r['elapsed_s']} s = {r['throughput_rps']} req/s, "
                 f"{r['questions_per_s']} questions/s ({r['conversations']} conversations)")
    if r.get("open_loop"):
        o = r["open_loop"]
        lines.append(f"{'open loop':<12} offered {o['offered_rps']} req/s, achieved {o['achieved_rps']}; "
                     f"sent late by p99 {_ms(o['late_ms']['p99'])}")
    if r.get("curve"):
        c = r["curve"]
        lines.append(f"{'curve':<12} {'rate':>6} {'offered':>8} {'achieved':>8} {'quest./s':>8} {'p50':>9} {'p95':>9} "
                     f"{'p99':>9} {'errors':>6} {'late p99':>9}  server")
        for st in c["steps"]:
            cores = st["cpu"]["server_cores"]
            lines.append(f"{'':<12} {st['rate_per_s']:>6g} {st['offered_rps']:>8} {st['achieved_rps']:>8} "
                         f"{st['questions_per_s']:>8} {_ms(st['p50_ms']):>9} {_ms(st['p95_ms']):>9} "
                         f"{_ms(st['p99_ms']):>9} {st['errors_total']:>6} {_ms(st['late_ms']['p99']):>9}  "
                         + (f"{cores} cores" if cores is not None else "-")
                         + (f", +{st['deliberate']['answered_per_s']} over-limit asks/s answered"
                            if st["deliberate"]["answered"] else "")
                         + ("" if st["ok"] else "  ✗ " + "; ".join(st["failed_because"])))
        crit = c["criterion"]
        if c["highest_ok_rate_per_s"] is None:
            lines.append(f"{'':<12} no step met p95 < {crit['p95_ms_below']:g} ms with no errors")
        else:
            lines.append(f"{'':<12} highest rate with p95 < {crit['p95_ms_below']:g} ms and no errors: "
                         f"{c['highest_ok_rps']} req/s = {c['highest_ok_questions_per_s']} questions/s"
                         + ("" if c["limit_found"] else " (every step passed: a lower bound)"))
    lat = r["latency_ms"]
    lines.append(f"{'latency':<12} p50 {_ms(lat['p50'])}, p95 {_ms(lat['p95'])}, p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}")
    for kind, k in r["by_kind"].items():
        lines.append(f"  {kind:<17} {k['requests']:>6}  p50 {_ms(k['p50_ms']):>9}  p95 {_ms(k['p95_ms']):>9}  "
                     f"p99 {_ms(k['p99_ms']):>9}" + (f"  errors {k['errors']}" if k["errors"] else ""))
    errors = ", ".join(f"{name} {count}" for name, count in r["errors"].items()) or "none"
    lines.append(f"{'errors':<12} {errors}")
    lines.extend(f"  {sample}" for sample in r.get("error_samples", []))
    d = r["deliberate"]
    if d is not None:
        retry = f" with Retry-After {d['retry_after_s']['min']}–{d['retry_after_s']['max']} s" if d["retry_after_s"] else ""
        extra = "; errors " + ", ".join(f"{k} {v}" for k, v in d["errors"].items()) if d["errors"] else ""
        lines.append(f"{'deliberate':<12} 1 client at {d['rate_per_s']:g}/s from {d['address']}: {d['requests']} requests, "
                     f"{d['answered']} answered, {d['rate_limited']} × 429{retry}{extra}"
                     + ("" if d["expect_429"] else f" (too few to pass {d['limit_per_minute']} a minute)"))
    s = r["sessions"]
    if s["continued_asks"]:
        lines.append(f"{'sessions':<12} {s['same_session']} of {s['continued_asks']} second questions kept their "
                     f"conversation ({s['continuity'] * 100:.1f}%)")
    m = r["memory"]
    if m is None:
        lines.append(f"{'memory':<12} not measured (give --pid with --url)")
    else:
        pss = ""
        if m["pss_growth_pct"] is not None:
            pss = f"; PSS {m['pss_before_bytes'] / mib:.0f} → {m['pss_after_bytes'] / mib:.0f} MiB ({m['pss_growth_pct']:+.1f}%)"
        lines.append(f"{'memory':<12} RSS {m['rss_before_bytes'] / mib:.0f} → {m['rss_after_bytes'] / mib:.0f} MiB "
                     f"({m['growth_pct']:+.1f}%, limit {m['limit_pct']:g}%) over {len(m['processes_after'])} process(es){pss}")
    c = r["cpu"]
    server_cpu = f"server {c['server_cores']} cores, " if c["server_cores"] is not None else ""
    others = f", everything else {c['other_cores']} cores" if c.get("other_cores") is not None else ""
    per = f"; the server spent {c['server_ms_per_request']} ms CPU per request" if c.get("server_ms_per_request") else ""
    lines.append(f"{'cpu':<12} {server_cpu}load test {c['loadtest_cores']} cores{others}, of {r['cpu_count']} CPUs shared{per}")
    lines.append(f"{'result':<12} " + ("ok" if r["ok"] else "flagged: " + ", ".join(r["flags"])))
    return "\n".join(lines)


def report_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False)
