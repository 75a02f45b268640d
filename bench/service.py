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
- the delay from job creation to training start (`started_at - created_at`);
- a load test: single-row predictions and listings while a training job runs, with `/health`
  probed every 20 ms (its p99 must stay under 50 ms).

    python bench/service.py            # the full run (about 2 minutes on 2 cores)
    python bench/service.py --quick    # a smoke run (about 60 s): smaller data, fewer requests
    python bench/service.py --quick --only latency,load   # some parts only (repeat runs)

Everything runs on 127.0.0.1 and every loop is bounded. Targets are those of issues 3 and 11;
see bench/README.md. The parts live in service_support.py (plan, targets, data, processes,
timing), service_measures.py (one function per measurement) and service_load.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from service_load import measure_load
from service_measures import (
    describe_model,
    install_reference_model,
    measure_batch,
    measure_delays,
    measure_latency,
    measure_listing,
    measure_upload,
    report_delays,
    train_model,
)
from service_support import (
    FULL,
    QUICK,
    RESULTS_DIR,
    Plan,
    Process,
    Results,
    free_port,
    insert_jobs,
    log,
    start_process,
    synthetic_frame,
)

PARTS = ("latency", "batch", "listing", "delay", "upload", "load")
"""What `--only` may name; all of them by default, in this order."""

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


def start_servers(work: Path, data_dir: Path) -> tuple[Process, Process]:
    """`tabpilot serve` (local auth, one local worker) and the floor app, both on loopback."""
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
            *(sys.executable, "-m", "tabpilot.cli", "serve"),
            *("--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)),
        ],
        env=env,
        cwd=work,
        log_dir=work,
        base_url=f"http://127.0.0.1:{port}",
    )
    (work / "floor_app.py").write_text(FLOOR_APP)
    floor_port = free_port()
    floor = start_process(
        "floor",
        [
            *(sys.executable, "-m", "uvicorn", "floor_app:app"),
            *("--host", "127.0.0.1", "--port", str(floor_port)),
        ],
        env=env,
        cwd=work,
        log_dir=work,
        base_url=f"http://127.0.0.1:{floor_port}",
    )
    return server, floor


def run(plan: Plan, *, keep: bool, parts: tuple[str, ...] = PARTS) -> Results:
    results = Results()
    figures = results.figures
    figures["plan"] = plan.__dict__
    figures["parts"] = list(parts)
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
        if "listing" in parts:
            log(f"inserting {plan.jobs:,} finished jobs into the store")
            figures["insert_jobs_s"] = insert_jobs(data_dir, plan.jobs)
        server, floor = start_servers(work, data_dir)
        processes += [server, floor]
        server.wait_ready("/health")
        floor.wait_ready("/docs")
        log(f"server pid {server.proc.pid} on {server.base_url}; floor on {floor.base_url}")
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            measure_parts(client, server, floor, data_dir, plan, results, parts)
    finally:
        for process in processes:
            process.stop()
        if keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def measure_parts(
    client: httpx.Client,
    server: Process,
    floor: Process,
    data_dir: Path,
    plan: Plan,
    results: Results,
    parts: tuple[str, ...],
) -> None:
    """Train the model, then run each selected part in `PARTS` order."""
    figures = results.figures
    model_id, delays = train_model(client, plan, figures)
    row: dict[str, Any] = {
        k: (v.item() if hasattr(v, "item") else v)
        for k, v in synthetic_frame(1, seed=11).iloc[0].items()
        if k != "churned"
    }
    trained = f"trained model ({describe_model(figures['model'])})"
    labels = {model_id: trained}
    if "latency" in parts or "batch" in parts:
        log(f"fitting a {plan.reference_trees}-tree LightGBM reference on the same pipeline")
        reference = install_reference_model(
            data_dir, model_id, synthetic_frame(plan.train_rows, seed=1), trees=plan.reference_trees
        )
        figures["reference_model"] = reference
        labels[reference["id"]] = f"{plan.reference_trees}-tree LightGBM"
    if "latency" in parts:
        for some_id, label in labels.items():
            measure_latency(client, floor, some_id, row, plan, results, label=label)
    if "batch" in parts:
        for some_id, label in labels.items():
            measure_batch(client, some_id, plan, results, label=label)
    if "listing" in parts:
        measure_listing(client, plan, results)
    if "delay" in parts:
        delays += measure_delays(client, plan)
        report_delays(delays, results)
    if "upload" in parts:
        measure_upload(client, server, plan, results)
    if "load" in parts:
        measure_load(client, figures["dataset_id"], "churned", model_id, row, plan, results)


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
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all)",
    )
    args = parser.parse_args()
    parts = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        parser.error(f"--only takes some of {', '.join(PARTS)}; not {', '.join(unknown)}")
    plan = QUICK if args.quick else FULL
    results = run(plan, keep=args.keep_workdir, parts=tuple(p for p in PARTS if p in parts))
    print_table(results, markdown=args.markdown)
    out = args.out or RESULTS_DIR / f"service-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"figures": results.figures, "table": [r.__dict__ for r in results.rows]}
    out.write_text(json.dumps(payload, indent=2, default=str))
    log(f"figures written to {out}")


if __name__ == "__main__":
    main()
