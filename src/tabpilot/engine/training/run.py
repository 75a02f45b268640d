"""One training run from a file to a model bundle: read, train, report, export.

Shared by `tabpilot train` and the job worker (`tabpilot.jobs.execute`). The budget covers
all of it: the clock starts before the file is read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabpilot.engine.card import ModelCard
from tabpilot.engine.data.io import read_csv
from tabpilot.engine.spec import TrainSpec
from tabpilot.engine.training.export import write_bundle
from tabpilot.engine.training.train import ProgressEvent, ProgressFn, TrainResult, train

REPORT_FILES = ("eda.html", "report.html")


@dataclass
class RunOutcome:
    result: TrainResult
    card: ModelCard
    paths: dict[str, Path]
    elapsed: float


def run_training(
    data: str | Path,
    spec: TrainSpec,
    *,
    out_dir: Path,
    progress: ProgressFn | None = None,
    started: float | None = None,
    reports: bool = True,
) -> RunOutcome:
    """Read `data`, train, write reports and the bundle into `out_dir`."""
    import json

    started = time.perf_counter() if started is None else started

    def emit(phase: str, message: str) -> None:
        if progress is not None:
            budget = spec.time_budget or 0.0
            progress(ProgressEvent(phase, time.perf_counter() - started, budget, message))

    emit("reading", f"reading {data}")
    table = read_csv(data)
    result = train(table.frame, spec, progress=progress, started=started)
    if reports:
        _write_reports(result, table.frame, out_dir, started, emit)
    emit("exporting", "writing model.onnx, model.pkl and model.json")
    paths = write_bundle(
        result,
        out_dir,
        elapsed=time.perf_counter() - started,
        source=Path(data).name,
        extra_files=REPORT_FILES if reports else (),
    )
    card = ModelCard.from_dict(json.loads(paths["model.json"].read_text()))
    return RunOutcome(result, card, paths, time.perf_counter() - started)


def _write_reports(
    result: TrainResult, frame: Any, out_dir: Path, started: float, emit: Any
) -> None:
    """Reports never fail a run: a failure is recorded as a decision instead."""
    emit("reporting", "writing eda.html and report.html")
    left = result.budget - (time.perf_counter() - started)
    try:
        from tabpilot.engine.data.summary import summarize_data
        from tabpilot.engine.reports import write_reports
        from tabpilot.engine.training.explain import explain_model

        data = summarize_data(
            frame,
            result.profile,
            target=result.spec.target,
            problem=result.problem,
            plan=result.plan,
        )
        explanation = explain_model(result, time_limit=max(1.0, min(10.0, left * 0.5)))
        write_reports(result, out_dir, data=data, explanation=explanation)
    except Exception as exc:  # a report is never worth losing the model for
        result.decisions.append(f"The reports could not be written: {type(exc).__name__}: {exc}")
