"""The service benchmark's load test: predict and listing traffic while a training job runs,
with `/health` probed throughout (issue 11: its p99 stays under 50 ms).

Bounded and loopback only: a fixed number of client threads, each looping until a deadline
(the training job's end or `Plan.load_seconds`, whichever comes first); every request has a
timeout. The predict and listing clients are threads of this process, so their own waits
count in their figures (what a client sees); the /health probe is a process of its own, so
its figures are not delayed by theirs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from service_support import (
    Plan,
    Results,
    log,
    percentiles_ms,
    wait_for_job,
)

TARGET_HEALTH_P99_MS = 50.0
HEALTH_INTERVAL_S = 0.02
"""The prober's pause between two /health calls."""
PREDICT_CLIENTS = 2
LIST_CLIENTS = 1


@dataclass
class Stream:
    """Latencies and failures of one kind of request under load."""

    name: str
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, elapsed: float, failure: str | None) -> None:
        with self.lock:
            self.seconds.append(elapsed)
            if failure is not None:
                self.failures.append(failure)


def _loop(
    base_url: str,
    stream: Stream,
    call: Callable[[httpx.Client], httpx.Response],
    stop: threading.Event,
    pause: float = 0.0,
) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = call(client)
                failure = None if response.status_code < 400 else f"{response.status_code}"
            except httpx.HTTPError as exc:
                failure = type(exc).__name__
            stream.record(time.perf_counter() - started, failure)
            if pause:
                stop.wait(pause)


PROBE = """
import json, sys, time, httpx
seconds, failures = [], []
with httpx.Client(base_url=sys.argv[1], timeout=10) as client:
    while not sys.stdin.closed:
        started = time.perf_counter()
        try:
            status = client.get("/health").status_code
            if status >= 400:
                failures.append(str(status))
        except httpx.HTTPError as exc:
            failures.append(type(exc).__name__)
        seconds.append(time.perf_counter() - started)
        import select
        if select.select([sys.stdin], [], [], float(sys.argv[2]))[0]:
            break
print(json.dumps({"seconds": seconds, "failures": failures}))
"""
"""The /health probe, a process of its own: threads of this process would make it wait for
their turn (the GIL), which is no delay of the server's."""


def start_probe(base_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, base_url, str(HEALTH_INTERVAL_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_probe(probe: subprocess.Popen[str], health: Stream) -> None:
    """Stop the probe (a line on its stdin) and add what it measured to `health`."""
    out, _ = probe.communicate("stop\n", timeout=60)
    found = json.loads(out.strip().splitlines()[-1])
    for elapsed in found["seconds"]:
        health.record(elapsed, None)
    health.failures.extend(found["failures"])


def measure_load(
    client: httpx.Client,
    dataset_id: str,
    target: str,
    model_id: str,
    row: dict[str, Any],
    plan: Plan,
    results: Results,
) -> None:
    """Queue a training job, and while it runs send single-row predictions
    (`PREDICT_CLIENTS` clients back to back), job and dataset listings (`LIST_CLIENTS`) and a
    `/health` probe every `HEALTH_INTERVAL_S`; report each kind's p50/p99 and failures."""
    created = client.post(
        "/api/jobs",
        json={
            "dataset_id": dataset_id,
            "target": target,
            "time_budget": plan.load_budget,
            "estimators": ["lgbm"],
        },
    )
    created.raise_for_status()
    job_id = created.json()["id"]
    deadline = time.monotonic() + 120
    while client.get(f"/api/jobs/{job_id}").json()["status"] == "queued":
        if time.monotonic() > deadline:
            raise SystemExit("the load test's training job did not start within 120 s")
        time.sleep(0.1)
    log(
        f"load: training job {job_id} ({plan.load_budget:g} s budget) with {PREDICT_CLIENTS} "
        f"predict clients, {LIST_CLIENTS} listing client(s) and a /health probe "
        f"(at most {plan.load_seconds:g} s)"
    )
    body = {"rows": [row]}
    health, predict, listing = Stream("health"), Stream("predict"), Stream("listing")
    pages = ("/api/jobs", "/api/datasets", "/api/models")
    turn = iter(range(1 << 62))
    stop = threading.Event()
    base = str(client.base_url)
    workers = [
        threading.Thread(
            target=_loop,
            args=(base, predict, lambda c: c.post(f"/api/models/{model_id}/predict", json=body)),
            kwargs={"stop": stop},
        )
        for _ in range(PREDICT_CLIENTS)
    ]
    workers += [
        threading.Thread(
            target=_loop,
            args=(
                base,
                listing,
                lambda c: c.get(pages[next(turn) % len(pages)], params={"limit": 50}),
                stop,
            ),
        )
        for _ in range(LIST_CLIENTS)
    ]
    started = time.monotonic()
    probe = start_probe(base)
    for worker in workers:
        worker.start()
    try:
        end = started + plan.load_seconds
        while time.monotonic() < end:
            if client.get(f"/api/jobs/{job_id}").json()["status"] not in ("queued", "running"):
                break
            time.sleep(0.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        read_probe(probe, health)
    seconds = time.monotonic() - started
    job = wait_for_job(client, job_id, timeout=plan.load_budget * 3 + 120)
    report_load(results, job, seconds, health, predict, listing)


def report_load(
    results: Results,
    job: dict[str, Any],
    seconds: float,
    health: Stream,
    predict: Stream,
    listing: Stream,
) -> None:
    figures: dict[str, Any] = {"seconds": seconds, "job_status": job["status"]}
    for stream in (health, predict, listing):
        if not stream.seconds:
            raise SystemExit(f"load test: no {stream.name} request completed")
        figures[stream.name] = {
            **percentiles_ms(stream.seconds),
            "failures": len(stream.failures),
            "failure_kinds": sorted(set(stream.failures)),
            "per_s": len(stream.seconds) / seconds,
        }
    results.figures["load"] = figures
    h, p, ls = figures["health"], figures["predict"], figures["listing"]
    during = f"{seconds:.0f} s of training (job {job['status']})"
    results.add(
        "GET /health p99 under load",
        f"{h['p99']:.1f} ms (p50 {h['p50']:.1f}, max {h['max']:.0f}, n {h['n']})",
        during,
        f"<= {TARGET_HEALTH_P99_MS:g} ms",
        h["p99"] <= TARGET_HEALTH_P99_MS,
    )
    results.add(
        "predict 1 row under load",
        f"p50 {p['p50']:.1f} / p99 {p['p99']:.1f} ms",
        f"{p['per_s']:,.0f} req/s, {PREDICT_CLIENTS} clients",
        "–",
        None,
    )
    results.add(
        "listings under load (jobs, datasets, models)",
        f"p50 {ls['p50']:.1f} / p99 {ls['p99']:.1f} ms",
        f"{ls['per_s']:,.0f} req/s",
        "–",
        None,
    )
    failed = h["failures"] + p["failures"] + ls["failures"]
    results.add(
        "failed requests under load",
        str(failed),
        ", ".join(h["failure_kinds"] + p["failure_kinds"] + ls["failure_kinds"]) or "–",
        "0, and the job succeeds",
        failed == 0 and job["status"] == "succeeded",
    )
