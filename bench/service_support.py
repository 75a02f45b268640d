"""Shared parts of the service benchmark (`bench/service.py`): the plan and targets, synthetic
data, server processes, timing helpers and the results table."""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

TARGET_P50_MS = 5.0
TARGET_P99_MS = 20.0
# Issue 11: with every limit in force, single-row predict stays close to a trivial route.
TARGET_P50_RATIO = 1.5
TARGET_P99_RATIO = 2.0
TARGET_BATCH_RATIO = 0.80
TARGET_LIST_P99_MS = 50.0
TARGET_RSS_GROWTH_MB = 100.0
TARGET_START_DELAY_S = 2.0


@dataclass(frozen=True)
class Plan:
    train_rows: int
    train_budget: float
    latency_requests: int
    warmup_requests: int
    batch_rows: int
    batch_repeats: int
    jobs: int
    list_requests: int
    upload_bytes: int
    delay_jobs: int
    reference_trees: int
    load_budget: float
    load_seconds: float


FULL = Plan(
    train_rows=50_000,
    train_budget=20,
    latency_requests=1000,
    warmup_requests=100,
    batch_rows=200_000,
    batch_repeats=3,
    jobs=10_000,
    list_requests=200,
    upload_bytes=1_000_000_000,
    delay_jobs=3,
    reference_trees=300,
    load_budget=20,
    load_seconds=30,
)
QUICK = Plan(
    train_rows=5_000,
    train_budget=6,
    latency_requests=200,
    warmup_requests=20,
    batch_rows=20_000,
    batch_repeats=1,
    jobs=1_000,
    list_requests=50,
    upload_bytes=50_000_000,
    delay_jobs=1,
    reference_trees=100,
    load_budget=8,
    load_seconds=15,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- data ----------------------------------------------------------------------------------------


def synthetic_frame(n: int, *, seed: int) -> pd.DataFrame:
    """A binary problem with numeric, categorical and boolean columns and some missing values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": np.round(rng.lognormal(10, 0.6, n), 2),
            "balance": np.round(rng.normal(1000, 800, n), 2),
            "tenure": rng.integers(0, 240, n),
            "visits": rng.poisson(3, n),
            "score_a": np.round(rng.normal(size=n), 4),
            "score_b": np.round(rng.uniform(0, 1, n), 4),
            "score_c": np.round(rng.normal(size=n), 4),
            "plan": rng.choice(["free", "basic", "plus", "pro", "team", "enterprise"], n),
            "region": rng.choice([f"region_{i:02d}" for i in range(30)], n),
            "channel": rng.choice(["web", "app", "store", "phone"], n),
            "promo": rng.choice([True, False], n),
        }
    )
    frame.loc[rng.choice(n, n // 20, replace=False), "income"] = np.nan
    logit = (
        0.03 * (frame["age"] - 50)
        + 0.8 * frame["score_a"]
        - 0.6 * frame["score_c"] ** 2
        + 1.5 * (frame["score_b"] > 0.7)
        + np.where(frame["plan"].isin(["pro", "team", "enterprise"]), 0.9, -0.3)
        + 0.4 * frame["promo"]
        + 0.002 * (frame["balance"] - 1000) / 8
        + np.log1p(frame["visits"]) * 0.5
        - 1.0
    )
    frame["churned"] = np.where(logit + rng.logistic(size=n) > 0, "yes", "no")
    return frame


def csv_bytes(frame: pd.DataFrame, *, header: bool = True) -> bytes:
    return frame.to_csv(index=False, header=header).encode()


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def wait_ready(self, path: str, *, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited early; see {self.log_path}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + path, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not answer {path} in {timeout:.0f} s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_process(
    name: str, args: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path, base_url: str
) -> Process:
    log_path = log_dir / f"{name}.log"
    out = open(log_path, "wb")  # noqa: SIM115 - inherited by the child, closed at exit
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    return Process(name=name, proc=proc, base_url=base_url, log_path=log_path)


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_kb(self.pid)
            if value is not None:
                self.samples.append((time.monotonic(), value))
            self._stop.wait(self.interval)

    def peak_mb(self, start: float, end: float) -> float | None:
        values = [kb for t, kb in self.samples if start <= t <= end]
        return max(values) / 1024 if values else None

    def before_mb(self, start: float) -> float | None:
        values = [kb for t, kb in self.samples if t < start]
        return float(np.median(values[-10:])) / 1024 if values else None


# -- measurements --------------------------------------------------------------------------------


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    return {
        "p50": float(np.percentile(values, 50)),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
        "max": float(values.max()),
        "n": len(values),
    }


def time_posts(client: httpx.Client, url: str, body: bytes, *, n: int, warmup: int) -> list[float]:
    headers = {"content-type": "application/json"}
    for _ in range(warmup):
        client.post(url, content=body, headers=headers).raise_for_status()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.post(url, content=body, headers=headers)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        times.append(elapsed)
    return times


def time_gets(client: httpx.Client, url: str, params: dict[str, Any], *, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url, params=params)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        times.append(elapsed)
    return times


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def wait_for_job(client: httpx.Client, job_id: str, *, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.25)
    raise SystemExit(f"job {job_id} did not finish within {timeout:.0f} s")


def upload_dataset(client: httpx.Client, name: str, data: bytes) -> dict[str, Any]:
    response = client.post("/api/datasets", files={"file": (name, data, "text/csv")}, timeout=300)
    if response.status_code >= 300:
        raise SystemExit(f"upload failed: {response.status_code} {response.text[:500]}")
    return response.json()


def start_delay(job: dict[str, Any]) -> float | None:
    created, started = parse_time(job.get("created_at")), parse_time(job.get("started_at"))
    if created is None or started is None:
        return None
    return (started - created).total_seconds()


def insert_jobs(data_dir: Path, n: int) -> float:
    """Insert `n` finished jobs of the local user directly into the server's SQLite store."""
    from tabpilot.metadata import build_metadata_store
    from tabpilot.records import DatasetRecord, JobRecord, JobStatus
    from tabpilot.services.auth import local_owner

    owner = local_owner()
    started = time.perf_counter()
    store = build_metadata_store(f"sqlite:///{data_dir / 'tabpilot.db'}")
    try:
        dataset = store.create_dataset(
            DatasetRecord(
                owner=owner,
                name="history.csv",
                filename="history.csv",
                sha256="0" * 64,
                n_bytes=1000,
                n_rows=100,
                n_columns=5,
            )
        )
        rng = np.random.default_rng(0)
        statuses = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED]
        base = datetime.now(UTC) - timedelta(days=30)
        for i in range(n):
            created = base + timedelta(seconds=i * 60)
            status = statuses[int(rng.integers(0, 3))]
            store.create_job(
                JobRecord(
                    owner=owner,
                    dataset_id=dataset.id,
                    spec={
                        "target": "churned",
                        "problem_type": "binary",
                        "metric": "roc_auc",
                        "time_budget": 60.0,
                        "dataset_name": "history.csv",
                        "seed": 0,
                    },
                    status=status,
                    progress={"phase": "done", "elapsed": 58.0, "budget": 60.0},
                    error="worker lost" if status == JobStatus.FAILED else None,
                    tags=[f"batch{i % 20}"] + (["nightly"] if i % 7 == 0 else []),
                    notes=f"historical run {i}",
                    created_at=created,
                    started_at=created + timedelta(seconds=1),
                    finished_at=created + timedelta(seconds=59),
                    attempts=1,
                )
            )
    finally:
        store.close()
    return time.perf_counter() - started


class MultipartCsv:
    """A multipart body holding a CSV of about `size` bytes, generated while it is sent."""

    def __init__(self, header: bytes, block: bytes, size: int) -> None:
        self.boundary = "tabpilot-bench-" + secrets.token_hex(8)
        self.head = (
            f"--{self.boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode() + header
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.block = block
        self.blocks = max(1, (size - len(header)) // len(block))
        self.csv_bytes = len(header) + self.blocks * len(block)
        self.content_length = len(self.head) + self.blocks * len(block) + len(self.tail)
        self.finished_at: float | None = None

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        for _ in range(self.blocks):
            yield self.block
        yield self.tail
        self.finished_at = time.monotonic()


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    value: str
    floor: str
    target: str
    verdict: str


@dataclass
class Results:
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)

    def add(self, measure: str, value: str, floor: str, target: str, ok: bool | None) -> None:
        verdict = "–" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append(Row(measure, value, floor, target, verdict))
