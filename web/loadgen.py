"""The load test's load: locust users driven headless from Python, in a process of their own.

Run by `web/loadtest.py` as `python -m web.loadgen` with a JSON `Spec` on
standard input; prints one JSON object (the figures) on standard output.
It is a process apart because importing locust monkey-patches the standard
library for gevent: that must not happen inside `govfaq` or pytest.

Two ways to load the service:

- open loop (`rate_per_s`): one `Arrivals` user sends requests at a fixed
  arrival rate, Poisson (exponential gaps, the default) or evenly spaced,
  each in a greenlet of its own, whether or not earlier replies have come
  back. A slot goes to the next request of a conversation whose previous
  reply has arrived (a follow-up, the next シナリオ検索 node…), otherwise to a
  new conversation. So the rate is of requests, the mix stays the mix, and a
  slow server does not slow the load down: latency is queueing, as it would
  be for residents;
- closed loop (`clients`): that many `ClosedResident` users, each running
  conversations back to back without think time (the tool's old mode: the
  throughput at saturation).

One `Abuser` user asks at `abuse_rate` per second from one address on a
fixed schedule, without waiting for replies, to see 429 + Retry-After.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from web.loadmix import (
    ABUSER_ADDRESS, AbuseTally, Body, Call, Criterion, Tally, Workload, conversation, failure_of, judge_curve,
    resident_address, step_figures,
)

os.environ.setdefault("LOCUST_SKIP_URLLIB3_PATCH", "1")  # we never use urllib3; read by locust on import

import gevent  # noqa: E402  (locust patches the standard library for gevent on import)
import gevent.pool  # noqa: E402
import locust  # noqa: E402
from locust import FastHttpUser, task  # noqa: E402
from locust.contrib.fasthttp import FastHttpSession  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.exception import StopUser  # noqa: E402


MAX_IN_FLIGHT = 2000  # requests under way at once; an arrival past this is counted as an error, not queued
ABUSER_CONNECTIONS = 8  # requests of the abusive client under way at once, at most


@dataclass
class PhaseSpec:
    name: str  # "warm-up", "load", "step-40" …
    duration: float
    rate: float | None = None  # open loop: requests per second; None: closed loop
    clients: int = 0  # closed loop
    abuse: bool = True
    measured: bool = True
    drain: float | None = None  # seconds the requests under way at the end may take (None: the request timeout)


@dataclass
class Spec:
    base_url: str
    workload: Workload
    phases: list[PhaseSpec]
    pid: int | None = None  # the server's, to read its memory and CPU
    seed: int = 7
    timeout: float = 30.0
    abuse_rate: float = 5.0
    arrivals: str = "poisson"  # or "uniform"
    settle: float = 1.0
    curve: bool = False  # the measured phases are steps: stop after the first that fails
    criterion: Criterion = field(default_factory=Criterion)

    @classmethod
    def from_json(cls, data: dict) -> Spec:
        data = dict(data)
        w = data.pop("workload")
        workload = Workload(tuple(tuple(p) for p in w["paraphrases"]), tuple(w["out_of_scope"]), tuple(w["follow_ups"]))
        phases = [PhaseSpec(**p) for p in data.pop("phases")]
        criterion = Criterion(**data.pop("criterion", {}))
        return cls(workload=workload, phases=phases, criterion=criterion, **data)


@dataclass
class Phase:
    """What the users of one phase share: its clock, its choices and its tallies."""

    spec: PhaseSpec
    run: Spec
    started: float = 0.0
    finished: float = 0.0
    tally: Tally = field(default_factory=Tally)
    abuse: AbuseTally = field(default_factory=AbuseTally)
    scheduled: int = 0
    late: list[float] = field(default_factory=list)
    users: int = 0
    locust: dict = field(default_factory=dict)

    @property
    def deadline(self) -> float:
        return self.started + self.spec.duration

    def next_address(self) -> str:
        return resident_address(next(_ADDRESSES))


_ADDRESSES = itertools.count(1)  # one resident, one address, across the phases of a run


class Resident(FastHttpUser):
    """Sends a conversation's calls. Keep-alive pool for first messages (a proxy's pool); later messages of a
    conversation go over a new connection, so with several workers they may reach another one."""

    abstract = True
    concurrency = MAX_IN_FLIGHT
    max_retries = 0

    def on_start(self) -> None:
        self.fresh = FastHttpSession(
            base_url=self.host, request_event=self.environment.events.request, user=self,
            network_timeout=self.network_timeout, connection_timeout=self.connection_timeout,
            max_retries=0, concurrency=self.concurrency,
        )

    @property
    def phase(self) -> Phase:
        return self.environment.phase

    def send(self, call: Call, address: str) -> Body:
        client = self.fresh if call.fresh else self.client
        headers = {"X-Forwarded-For": address}
        if call.fresh:
            headers["Connection"] = "close"
        started = time.perf_counter()
        resp = client.request(call.method, call.path, name=call.kind, json=call.json, headers=headers)
        seconds = time.perf_counter() - started
        status = resp.status_code or 0
        if status == 0:
            return self.phase.tally.reply(call, 0, seconds, None, failure_of(resp.error),
                                          f"{type(resp.error).__name__}: {resp.error}")
        body: Body = None
        failure = None
        if 200 <= status < 300:
            if (resp.headers.get("content-type") or "").startswith("application/json"):
                try:
                    body = resp.json()
                except ValueError:
                    failure = "bad_json"
            else:
                body = resp.text
        return self.phase.tally.reply(call, status, seconds, body, failure, (resp.text or "")[:120])


class ClosedResident(Resident):
    """Conversations back to back, no think time, until the phase ends."""

    @task
    def converse(self) -> None:
        phase = self.phase
        phase.users += 1
        rng = random.Random(f"{phase.run.seed}:{phase.spec.name}:{phase.users}")
        while time.monotonic() < phase.deadline:
            phase.tally.conversations += 1
            address = phase.next_address()
            talk = conversation(phase.run.workload, rng)
            call = next(talk)
            while True:
                body = self.send(call, address)
                if time.monotonic() >= phase.deadline:  # a second request only inside the phase
                    break
                try:
                    call = talk.send(body)
                except StopIteration:
                    break
        raise StopUser


class Arrivals(Resident):
    """The open loop: requests at a fixed arrival rate, each sent in its own greenlet."""

    @task
    def arrive(self) -> None:
        phase, run = self.phase, self.phase.run
        rate = phase.spec.rate
        choices = random.Random(f"{run.seed}:{phase.spec.name}")
        gaps = random.Random(f"{run.seed}:{phase.spec.name}:arrivals")
        waiting: deque = deque()  # (conversation, its next call, address) whose previous reply has arrived
        in_flight = gevent.pool.Group()
        sending: dict[gevent.Greenlet, Call] = {}
        due = phase.started
        while True:
            due += gaps.expovariate(rate) if run.arrivals == "poisson" else 1.0 / rate
            if due >= phase.deadline:
                break
            gevent.sleep(max(0.0, due - time.monotonic()))
            phase.late.append(max(0.0, time.monotonic() - due))
            phase.scheduled += 1
            if waiting:
                item = waiting.popleft()
            else:
                phase.tally.conversations += 1
                talk = conversation(run.workload, choices)
                item = (talk, next(talk), phase.next_address())
            if len(in_flight) >= MAX_IN_FLIGHT:
                phase.tally.error(item[1].kind, "generator_overloaded")
                continue
            sending[in_flight.spawn(self._step, item, waiting, sending)] = item[1]
        in_flight.join(timeout=phase.spec.drain if phase.spec.drain is not None else run.timeout + 5)
        for call in list(sending.values()):  # still unanswered: the step is over, and so is their chance
            phase.tally.error(call.kind, "unfinished")
        in_flight.kill(block=True)
        raise StopUser

    def _step(self, item: tuple, waiting: deque, sending: dict) -> None:
        talk, call, address = item
        body = self.send(call, address)
        sending.pop(gevent.getcurrent(), None)
        try:
            waiting.append((talk, talk.send(body), address))
        except StopIteration:
            pass


class Abuser(FastHttpUser):
    """One address, asking at a fixed rate whatever the replies."""

    fixed_count = 1
    concurrency = ABUSER_CONNECTIONS
    max_retries = 0

    @task
    def abuse(self) -> None:
        phase = self.environment.phase
        rate = phase.run.abuse_rate
        if rate > 0 and phase.spec.abuse:
            rng = random.Random(f"{phase.run.seed}:abuse:{phase.spec.name}")
            sent = gevent.pool.Group()
            due = phase.started
            while due < phase.deadline:
                gevent.sleep(max(0.0, due - time.monotonic()))
                due += 1.0 / rate
                sent.spawn(self._one, rng.choice(phase.run.workload.paraphrases)[1])
            sent.join(timeout=phase.spec.drain if phase.spec.drain is not None else phase.run.timeout + 5)
            phase.abuse.unfinished += len(sent)  # an overloaded step's: neither answered nor refused
            sent.kill(block=True)
        raise StopUser

    def _one(self, query: str) -> None:
        resp = self.client.request("POST", "/api/ask", name="deliberate", json={"query": query},
                                   headers={"X-Forwarded-For": ABUSER_ADDRESS})
        status = resp.status_code or 0
        failure = failure_of(resp.error) if status == 0 else None
        self.environment.phase.abuse.reply(status, (resp.headers or {}).get("retry-after"), failure)


def run_phase(run: Spec, spec: PhaseSpec) -> Phase:
    """One phase under a fresh locust environment; returns when every request has been answered or timed out."""
    phase = Phase(spec, run)
    residents = ClosedResident if spec.rate is None else Arrivals
    for user in (residents, Abuser):
        user.network_timeout = user.connection_timeout = run.timeout
    env = Environment(user_classes=[residents, Abuser], host=run.base_url)
    env.phase = phase
    runner = env.create_local_runner()
    count = (spec.clients if spec.rate is None else 1) + 1
    phase.started = time.monotonic()
    runner.start(count, spawn_rate=count)  # all at once: the dispatcher spawns a second's worth in one go
    runner.spawning_greenlet.join(timeout=10)
    runner.user_greenlets.join(timeout=spec.duration + run.timeout + 30)
    phase.finished = time.monotonic()
    phase.locust = _locust_totals(env)
    runner.quit()
    return phase


def _locust_totals(env: Environment) -> dict:
    """Locust's own count of the phase (its response times are rounded to 2 digits over 100 ms): a cross-check."""
    total = env.stats.total
    return {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "p50_ms": total.get_response_time_percentile(0.5) if total.num_requests else None,
        "p95_ms": total.get_response_time_percentile(0.95) if total.num_requests else None,
    }


class Meter:
    """CPU of the server's process tree, of this process and of the whole machine, between two readings."""

    def __init__(self, pid: int | None):
        from web.loadtest import machine_busy_seconds, own_cpu_seconds, tree_cpu_seconds

        self._read = lambda: (tree_cpu_seconds(pid) if pid else None, own_cpu_seconds(), machine_busy_seconds())
        self._start = self._read()

    def cores(self, elapsed: float, requests: int = 0) -> dict:
        (server0, own0, busy0), (server1, own1, busy1) = self._start, self._read()
        server = None if server0 is None else server1 - server0
        own = own1 - own0
        other = None if server is None or busy0 is None else max(0.0, (busy1 - busy0) - server - own)
        return {
            "server_s": None if server is None else round(server, 2),
            "server_cores": None if server is None else round(server / elapsed, 2),
            "loadtest_s": round(own, 2),
            "loadtest_cores": round(own / elapsed, 2),
            # Everything else on the machine meanwhile (other programs, the kernel): the figures are only
            # comparable between runs where this stays near 0.
            "other_cores": None if other is None else round(other / elapsed, 2),
            # CPU time, unlike latency, hardly depends on what else the machine runs: the cost of the mix.
            "server_ms_per_request": None if server is None or not requests else round(server * 1000 / requests, 2),
        }


def run_load(run: Spec, say=lambda message: None) -> dict:
    """Every phase in order; the figures of the measured ones."""
    from web.loadtest import tree_memory

    warm_requests = 0
    measured: list[Phase] = []
    steps: list[dict] = []
    memory_before = None
    cpu: dict = {}
    meter = None
    for spec in run.phases:
        if spec.measured and meter is None:
            if run.pid:
                time.sleep(run.settle)  # requests finished; let the worker threads settle before reading memory
                memory_before = tree_memory(run.pid)
            meter = Meter(run.pid)
        what = f"{spec.rate:g} requests/s" if spec.rate is not None else f"{spec.clients} clients"
        say(f"{spec.name}: {what} for {spec.duration:g} s")
        step_meter = Meter(run.pid)
        phase = run_phase(run, spec)
        elapsed = phase.finished - phase.started
        if not spec.measured:
            warm_requests += sum(phase.tally.requests.values())
            continue
        measured.append(phase)
        if spec.rate is not None:
            step = step_figures(spec.rate, phase.tally, phase.scheduled, spec.duration, elapsed, phase.late)
            step["cpu"] = step_meter.cores(elapsed, sum(phase.tally.requests.values()) + phase.abuse.requests)
            step["locust"] = phase.locust
            # The over-limit client's answered questions load the server on top of the offered rate (its first
            # `limit` a minute): at a low rate that is not negligible, so each step says so.
            step["deliberate"] = {"answered": phase.abuse.answered, "rate_limited": phase.abuse.rate_limited,
                                  "answered_per_s": round(phase.abuse.answered / elapsed, 2) if elapsed > 0 else None}
            steps.append(step)
            if run.curve:
                judge_curve(steps, run.criterion)
                say(f"  achieved {step['achieved_rps']} req/s, p95 {step['p95_ms']} ms, {step['errors_total']} errors"
                    + ("" if step["ok"] else " — " + "; ".join(step["failed_because"])))
                if not step["ok"]:
                    break
    elapsed = sum(p.finished - p.started for p in measured)
    if meter is not None:
        cpu = meter.cores(elapsed, sum(sum(p.tally.requests.values()) + p.abuse.requests for p in measured))
    memory_after = None
    if run.pid:
        time.sleep(run.settle)
        memory_after = tree_memory(run.pid)

    curve = judge_curve(steps, run.criterion) if run.curve else None
    # The figures at the top describe the steps that passed (all of them outside a curve); the curve holds every step.
    counted = measured
    if curve is not None:
        passed = sum(1 for step in steps if step["ok"]) if curve["highest_ok_rate_per_s"] is not None else 0
        counted = measured[: max(1, passed)]
    tally, abuse = Tally(), AbuseTally()
    for phase in measured:
        abuse.merge(phase.abuse)
    for phase in counted:
        tally.merge(phase.tally)
    counted_s = sum(p.finished - p.started for p in counted)
    return {
        "warmup_requests": warm_requests,
        "elapsed_s": round(counted_s, 2),
        "measured_s": round(sum(p.spec.duration for p in counted), 2),
        "figures": tally.summary(counted_s),
        "abuse": abuse.summary(run.abuse_rate),
        "abuse_duration_s": round(sum(p.spec.duration for p in measured), 2),
        "steps": steps,
        "curve": curve,
        "memory_before": memory_before,
        "memory_after": memory_after,
        "cpu": cpu,
        "locust": {"version": locust.__version__, "phases": [p.locust for p in measured]},
    }


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # locust's info lines would drown the progress
    run = Spec.from_json(json.load(sys.stdin))
    quiet = os.environ.get("GOVFAQ_LOADGEN_QUIET") == "1"
    say = (lambda message: None) if quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    result = run_load(run, say)
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
