"""Service benchmark: the running server on loopback, each figure beside its floor.

Starts a real `tabpilot serve` (local auth, one local worker) on a free loopback port with a
temporary data directory, trains a model through the API on a synthetic table, adds a 300-tree
LightGBM refitted on that model's preprocessing (issue 3's throughput reference), then
measures, for both models where it applies:

- single-row predict latency p50/p99 over HTTP (httpx, sequential, after a warm-up), beside a
  trivial FastAPI JSON route served by a separate uvicorn process to the same client;
- batch prediction rows/s through predict.csv, beside onnxruntime's own throughput on the same
  model and rows in this process;
- job listing latency with 10,000 jobs (inserted into the SQLite store before the server
  starts): the first page, a walk through every page, and a filtered text search;
- upload throughput and the server's resident memory (VmRSS sampled every 100 ms) while a
  1 GB CSV, generated on the fly, is uploaded;
- the delay from job creation to training start (`started_at - created_at`).

    python bench/service.py            # the full run (about 2 minutes on 2 cores)
    python bench/service.py --quick    # a smoke run (about 40 s): smaller data, fewer requests

Everything runs on 127.0.0.1 and every loop is bounded. Targets are those of issue 3; see
bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
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
)

FLOOR_APP = textwrap.dedent(
    """
    from typing import Any

    from fastapi import FastAPI

    app = FastAPI()


    @app.post("/floor")
    async def floor(body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "keys": len(body)}
    """
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


def run(plan: Plan, *, keep: bool) -> Results:
    results = Results()
    figures = results.figures
    figures["plan"] = plan.__dict__
    figures["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    work = Path(tempfile.mkdtemp(prefix="tabpilot-bench-service-"))
    data_dir = work / "data"
    data_dir.mkdir()
    log(f"work folder {work}")
    processes: list[Process] = []
    try:
        log(f"inserting {plan.jobs:,} finished jobs into the store")
        figures["insert_jobs_s"] = insert_jobs(data_dir, plan.jobs)

        env = {k: v for k, v in os.environ.items() if not k.startswith("TABPILOT_")}
        env.update(
            TABPILOT_DATA_DIR=str(data_dir),
            TABPILOT_RUNNER_URI="local://?workers=1",
            TABPILOT_AUTH="local",
        )
        port = free_port()
        server = start_process(
            "server",
            [
                sys.executable,
                "-m",
                "tabpilot.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            cwd=work,
            log_dir=work,
            base_url=f"http://127.0.0.1:{port}",
        )
        processes.append(server)
        (work / "floor_app.py").write_text(FLOOR_APP)
        floor_port = free_port()
        floor = start_process(
            "floor",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "floor_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(floor_port),
            ],
            env=env,
            cwd=work,
            log_dir=work,
            base_url=f"http://127.0.0.1:{floor_port}",
        )
        processes.append(floor)
        server.wait_ready("/health")
        floor.wait_ready("/docs")
        log(f"server pid {server.proc.pid} on {server.base_url}; floor on {floor.base_url}")

        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            model_id, delays = train_model(client, plan, figures)
            row = {k: v for k, v in synthetic_frame(1, seed=11).iloc[0].items() if k != "churned"}
            row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            trained = f"trained model ({describe_model(figures['model'])})"
            log(f"fitting a {plan.reference_trees}-tree LightGBM reference on the same pipeline")
            reference = install_reference_model(
                data_dir,
                model_id,
                synthetic_frame(plan.train_rows, seed=1),
                trees=plan.reference_trees,
            )
            figures["reference_model"] = reference
            other = f"{plan.reference_trees}-tree LightGBM"
            measure_latency(client, floor, model_id, row, plan, results, label=trained)
            measure_latency(client, floor, reference["id"], row, plan, results, label=other)
            measure_batch(client, model_id, plan, results, label=trained)
            measure_batch(client, reference["id"], plan, results, label=other)
            measure_listing(client, plan, results)
            delays += measure_delays(client, plan)
            report_delays(delays, results)
            measure_upload(client, server, plan, results)
    finally:
        for process in processes:
            process.stop()
        if keep:
            log(f"kept {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return results


def train_model(client: httpx.Client, plan: Plan, figures: dict[str, Any]) -> tuple[str, list]:
    log(f"uploading a {plan.train_rows:,}-row training table")
    dataset = upload_dataset(
        client, "churn.csv", csv_bytes(synthetic_frame(plan.train_rows, seed=1))
    )
    body = {
        "dataset_id": dataset["id"],
        "target": "churned",
        "time_budget": plan.train_budget,
        "estimators": ["lgbm"],
    }
    created = client.post("/api/jobs", json=body)
    if created.status_code != 202:
        raise SystemExit(f"job not created: {created.status_code} {created.text[:500]}")
    log(f"training (budget {plan.train_budget:.0f} s, LightGBM)")
    job = wait_for_job(client, created.json()["id"], timeout=plan.train_budget * 3 + 120)
    if job["status"] != "succeeded":
        raise SystemExit(f"training failed: {job.get('error')}")
    model = client.get(f"/api/models/{job['model_id']}").json()
    params = model["card"]["estimator"]["params"]
    figures["model"] = {
        "id": model["id"],
        "chosen": model["chosen"],
        "n_estimators": params.get("n_estimators"),
        "num_leaves": params.get("num_leaves"),
        "score": model["score"],
        "metric": model["metric"],
    }
    log(f"model {model['id']}: {describe_model(figures['model'])}")
    return model["id"], [start_delay(job)]


def install_reference_model(
    data_dir: Path, model_id: str, train: pd.DataFrame, *, trees: int
) -> dict[str, Any]:
    """A `trees`-tree LightGBM on the trained model's preprocessing, served beside it.

    The search picks whatever model wins in its budget (often a small one); issue 3's
    throughput reference is a 300-tree LightGBM, so this refits the API model's pipeline with
    such an estimator (in this process, which may import LightGBM; the server never does),
    exports it with the engine's exporter, and records it in the server's stores next to the
    original, as a finished job would.
    """
    import hashlib
    import pickle

    from lightgbm import LGBMClassifier

    from tabpilot.engine.training.export import build_onnx
    from tabpilot.engine.training.model import TabpilotModel
    from tabpilot.metadata import build_metadata_store
    from tabpilot.records import ModelRecord, new_id
    from tabpilot.storage import build_artifact_store, keys

    store = build_metadata_store(f"sqlite:///{data_dir / 'tabpilot.db'}")
    artifacts = build_artifact_store(str(data_dir / "artifacts"))
    try:
        record = store.get_model(model_id, owner=None)
        # Our own file, written by our own worker: trusted.
        trained = pickle.loads(
            artifacts.get_bytes(keys.in_prefix(record.artifact_prefix, "model.pkl"))
        )
        pipeline = trained.pipeline
        pipeline.set_params(
            model=LGBMClassifier(
                n_estimators=trees,
                num_leaves=31,
                learning_rate=0.05,
                random_state=0,
                n_jobs=2,
                verbose=-1,
            )
        )
        from tabpilot.engine.data.inputs import prepare_frame

        classes = list(trained.classes)
        target = train[trained.target].map({c: i for i, c in enumerate(classes)})
        pipeline.fit(prepare_frame(train, trained.features), target.to_numpy())
        reference = TabpilotModel(
            pipeline=pipeline,
            features=trained.features,
            problem_type=trained.problem_type,
            classes=classes,
            target=trained.target,
        )
        onnx, inputs = build_onnx(reference)
        card = json.loads(json.dumps(record.card))
        card["inputs"] = inputs
        card["chosen"] = {"name": f"lgbm_{trees}", "description": f"{trees}-tree LightGBM"}
        card["estimator"]["params"] = {"n_estimators": trees, "num_leaves": 31}
        card["files"] = {
            "model.onnx": {"sha256": hashlib.sha256(onnx).hexdigest(), "bytes": len(onnx)}
        }
        reference_id = new_id("mdl")
        prefix = keys.model_prefix(reference_id)
        artifacts.put_bytes(keys.model_file(reference_id, "model.onnx"), onnx)
        artifacts.put_bytes(keys.model_file(reference_id, "model.json"), json.dumps(card).encode())
        store.create_model(
            ModelRecord(
                id=reference_id,
                owner=record.owner,
                job_id=record.job_id,
                card=card,
                artifact_prefix=prefix,
            )
        )
    finally:
        store.close()
    return {"id": reference_id, "trees": trees}


def measure_latency(
    client: httpx.Client,
    floor: Process,
    model_id: str,
    row: dict,
    plan: Plan,
    results: Results,
    *,
    label: str,
) -> None:
    log(f"single-row latency, {label}: {plan.latency_requests} sequential requests each")
    body = json.dumps({"rows": [row]}).encode()
    url = f"/api/models/{model_id}/predict"
    times: list[float] = []
    floor_times: list[float] = []
    # Alternate blocks of requests, so that any other load on the machine falls on both alike.
    blocks = 10
    size = max(1, plan.latency_requests // blocks)
    with httpx.Client(base_url=floor.base_url, timeout=30) as floor_client:
        time_posts(floor_client, "/floor", body, n=0, warmup=plan.warmup_requests)
        time_posts(client, url, body, n=0, warmup=plan.warmup_requests)
        for _ in range(blocks):
            floor_times += time_posts(floor_client, "/floor", body, n=size, warmup=0)
            times += time_posts(client, url, body, n=size, warmup=0)
    ours, base = percentiles_ms(times), percentiles_ms(floor_times)
    results.figures.setdefault("predict_latency_ms", {})[label] = {"predict": ours, "floor": base}
    results.add(
        f"predict 1 row p50, {label}",
        f"{ours['p50']:.2f} ms",
        f"{base['p50']:.2f} ms",
        f"<= {TARGET_P50_MS:g} ms",
        ours["p50"] <= TARGET_P50_MS,
    )
    results.add(
        f"predict 1 row p99, {label}",
        f"{ours['p99']:.2f} ms",
        f"{base['p99']:.2f} ms",
        f"<= {TARGET_P99_MS:g} ms",
        ours["p99"] <= TARGET_P99_MS,
    )
    for pct, target in (("p50", TARGET_P50_RATIO), ("p99", TARGET_P99_RATIO)):
        ratio = ours[pct] / base[pct] if base[pct] else float("inf")
        results.add(
            f"predict 1 row {pct} / floor {pct}, {label}",
            f"{ratio:.2f}x",
            f"{ours[pct]:.2f} / {base[pct]:.2f} ms",
            f"<= {target:g}x",
            ratio <= target,
        )


def describe_model(model: dict[str, Any]) -> str:
    """The trained model in a few words: its tree count, or what was chosen (a blend)."""
    trees = model.get("n_estimators")
    return f"{trees} trees" if trees else str(model.get("chosen"))


def measure_batch(
    client: httpx.Client, model_id: str, plan: Plan, results: Results, *, label: str
) -> None:
    import onnxruntime as ort

    from tabpilot.engine.data.inputs import FeatureSpec, prepare_frame
    from tabpilot.engine.data.io import read_csv_bytes

    frame = synthetic_frame(plan.batch_rows, seed=5).drop(columns=["churned"])
    data = csv_bytes(frame)
    log(
        f"batch: {plan.batch_rows:,} rows ({len(data) / 1e6:.1f} MB) through predict.csv and "
        f"through onnxruntime in this process (same model, same rows), alternately: {label}"
    )
    # onnxruntime's own run: the server's model.onnx, session options as the server's, inputs
    # prepared beforehand so that only `session.run` is timed.
    card = client.get(f"/api/models/{model_id}").json()["card"]
    onnx = client.get(f"/api/models/{model_id}/files/model.onnx").content
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx, sess_options=options, providers=["CPUExecutionProvider"])
    features = [
        FeatureSpec(f["name"], f["kind"], bool(f.get("has_time", False))) for f in card["features"]
    ]
    prepared = prepare_frame(read_csv_bytes(data).frame, features, strict=True)
    feed = {}
    for spec in card["inputs"]:
        values = prepared[spec["column"]]
        dtype = np.float32 if spec["type"] == "float32" else object
        feed[spec["name"]] = values.to_numpy(dtype=dtype).reshape(-1, 1)
    session.run(None, {k: v[:100] for k, v in feed.items()})  # warm-up

    server_times = []
    ort_times = []
    for _ in range(plan.batch_repeats):
        started = time.perf_counter()
        lines = 0
        with client.stream(
            "POST",
            f"/api/models/{model_id}/predict.csv",
            content=data,
            headers={"content-type": "text/csv"},
            timeout=600,
        ) as response:
            if response.status_code != 200:
                response.read()
                raise SystemExit(f"predict.csv failed: {response.status_code} {response.text}")
            for chunk in response.iter_bytes():
                lines += chunk.count(b"\n")
        server_times.append(time.perf_counter() - started)
        if lines != plan.batch_rows + 1:
            raise SystemExit(f"predict.csv returned {lines - 1} rows, not {plan.batch_rows}")
        started = time.perf_counter()
        session.run(None, feed)
        ort_times.append(time.perf_counter() - started)
    ours = plan.batch_rows / min(server_times)
    theirs = plan.batch_rows / min(ort_times)
    results.figures.setdefault("batch", {})[label] = {
        "rows": plan.batch_rows,
        "csv_bytes": len(data),
        "server_seconds": server_times,
        "onnxruntime_seconds": ort_times,
        "server_rows_per_s": ours,
        "onnxruntime_rows_per_s": theirs,
    }
    results.add(
        f"predict.csv, {plan.batch_rows:,} rows, {label}",
        f"{ours:,.0f} rows/s ({ours / theirs:.0%})",
        f"{theirs:,.0f} rows/s (onnxruntime)",
        f">= {TARGET_BATCH_RATIO:.0%} of onnxruntime",
        ours >= TARGET_BATCH_RATIO * theirs,
    )


def measure_listing(client: httpx.Client, plan: Plan, results: Results) -> None:
    log(f"job listing with {plan.jobs:,} jobs")
    first = time_gets(client, "/api/jobs", {"limit": 50}, n=plan.list_requests)
    walk: list[float] = []
    cursor = None
    for _ in range(plan.jobs // 50 + 10):
        params: dict[str, Any] = {"limit": 50}
        if cursor:
            params["cursor"] = cursor
        started = time.perf_counter()
        response = client.get("/api/jobs", params=params)
        walk.append(time.perf_counter() - started)
        response.raise_for_status()
        cursor = response.json()["next_cursor"]
        if not cursor:
            break
    search = time_gets(
        client,
        "/api/jobs",
        {"limit": 50, "status": "succeeded", "q": "nightly"},
        n=max(10, plan.list_requests // 4),
    )
    every = first + walk + search
    stats = {
        "first_page": percentiles_ms(first),
        "all_pages": percentiles_ms(walk),
        "status_and_text": percentiles_ms(search),
        "all": percentiles_ms(every),
    }
    results.figures["job_listing_ms"] = stats
    detail = (
        f"first page {stats['first_page']['p99']:.1f}, walk {stats['all_pages']['p99']:.1f}, "
        f"search {stats['status_and_text']['p99']:.1f} ms"
    )
    results.add(
        f"GET /api/jobs p99, {plan.jobs:,} jobs",
        f"{stats['all']['p99']:.1f} ms (p50 {stats['all']['p50']:.1f})",
        detail,
        f"<= {TARGET_LIST_P99_MS:g} ms",
        stats["all"]["p99"] <= TARGET_LIST_P99_MS,
    )


def measure_delays(client: httpx.Client, plan: Plan) -> list[float | None]:
    dataset = upload_dataset(client, "small.csv", csv_bytes(synthetic_frame(2000, seed=3)))
    delays = []
    for i in range(plan.delay_jobs):
        log(f"start delay: job {i + 1} of {plan.delay_jobs}")
        created = client.post(
            "/api/jobs",
            json={
                "dataset_id": dataset["id"],
                "target": "churned",
                "time_budget": 5,
                "estimators": ["lgbm"],
            },
        )
        created.raise_for_status()
        job = wait_for_job(client, created.json()["id"], timeout=120)
        delays.append(start_delay(job))
    return delays


def report_delays(delays: list[float | None], results: Results) -> None:
    known = [d for d in delays if d is not None]
    results.figures["start_delay_s"] = delays
    if not known:
        results.add("job start delay", "unknown", "–", f"<= {TARGET_START_DELAY_S:g} s", None)
        return
    results.add(
        f"job start delay, {len(known)} jobs",
        f"max {max(known):.2f} s",
        f"median {float(np.median(known)):.2f} s",
        f"<= {TARGET_START_DELAY_S:g} s",
        max(known) <= TARGET_START_DELAY_S,
    )


def measure_upload(client: httpx.Client, server: Process, plan: Plan, results: Results) -> None:
    frame = synthetic_frame(20_000, seed=9)
    body = MultipartCsv(csv_bytes(frame.head(0)), csv_bytes(frame, header=False), plan.upload_bytes)
    log(f"upload: {body.csv_bytes / 1e9:.2f} GB CSV generated on the fly")
    with RssSampler(server.proc.pid) as sampler:
        time.sleep(1.0)
        started = time.monotonic()
        try:
            response = client.post(
                "/api/datasets",
                content=iter(body),
                headers={
                    "content-type": body.content_type,
                    "content-length": str(body.content_length),
                },
                timeout=900,
            )
            status = response.status_code
            message = "" if status < 300 else response.text[:300]
        except httpx.HTTPError as exc:
            status, message = None, f"{type(exc).__name__}: {exc}"
        answered = time.monotonic()
        time.sleep(0.5)
    sent = body.finished_at or answered
    baseline = sampler.before_mb(started)
    upload_peak = sampler.peak_mb(started, sent)
    total_peak = sampler.peak_mb(started, answered)
    figures = {
        "csv_bytes": body.csv_bytes,
        "status": status,
        "message": message,
        "send_seconds": sent - started,
        "reply_seconds": answered - started,
        "rss_before_mb": baseline,
        "rss_peak_while_sending_mb": upload_peak,
        "rss_peak_until_reply_mb": total_peak,
    }
    results.figures["upload"] = figures
    if status is None or status >= 300:
        results.add("upload 1 GB", f"failed: {status} {message[:80]}", "–", "–", False)
    throughput = body.csv_bytes / 1e6 / max(sent - started, 1e-9)
    results.add(
        f"upload {body.csv_bytes / 1e9:.2f} GB, sending",
        f"{throughput:,.0f} MB/s",
        f"reply after {answered - started:.1f} s",
        "–",
        None,
    )
    if baseline is not None and upload_peak is not None and total_peak is not None:
        results.add(
            "server RSS growth while sending",
            f"{upload_peak - baseline:+.0f} MB",
            f"{baseline:.0f} MB before",
            f"< {TARGET_RSS_GROWTH_MB:g} MB",
            upload_peak - baseline < TARGET_RSS_GROWTH_MB,
        )
        results.add(
            "server RSS growth until the reply",
            f"{total_peak - baseline:+.0f} MB",
            "(profiling included)",
            f"< {TARGET_RSS_GROWTH_MB:g} MB",
            total_peak - baseline < TARGET_RSS_GROWTH_MB,
        )


def print_table(results: Results, *, markdown: bool) -> None:
    headers = ("measure", "value", "floor / reference (same run)", "target", "result")
    rows = [(r.measure, r.value, r.floor, r.target, r.verdict) for r in results.rows]
    if markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    out = io.StringIO()
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + "\n")
    print(out.getvalue(), end="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for every figure")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    results = run(plan, keep=args.keep_workdir)
    print_table(results, markdown=args.markdown)
    out = args.out or RESULTS_DIR / f"service-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"figures": results.figures, "table": [r.__dict__ for r in results.rows]}
    out.write_text(json.dumps(payload, indent=2, default=str))
    log(f"figures written to {out}")


if __name__ == "__main__":
    main()
