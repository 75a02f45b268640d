"""Quality benchmark: Tabpilot against raw FLAML and AutoGluon on ../shared/datasets.

For each dataset in manifest.json: a deterministic split (seed 0, 80/20, stratified for
classification) without the manifest's leakage columns, then each tool in turn, one process at
a time, trains on train.csv with the same time budget and predicts test.csv. The test rows' truth
never leaves this process; every tool is scored the same way from its predictions CSV
(`prediction`, `proba_<label>`). Wall time and peak memory are those of the training command.

    python bench/quality.py                          # all datasets, 60 s, every tool
    python bench/quality.py --datasets wine,titanic --budget 10 --tools tabpilot,flaml
    python bench/quality.py --markdown > table.md   # tables as Markdown (progress on stderr)

See bench/README.md for what is measured and how to read the output.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

# Run as a script: bench/ is on sys.path.
from quality_report import (
    DEFAULT_METRIC,
    METRIC_TITLES,
    TOOL_TITLES,
    TOOLS,
    DatasetSpec,
    compare_dataset,
    fmt_metric,
    fmt_number,
    merge_reports,
    render_report,
    summarise,
)
from quality_run import child_env, run_measured
from quality_scoring import BenchError, label_key, score_predictions

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PEERS_DIR = BENCH_DIR / "peers"
PEERS_PYTHON = BENCH_DIR / ".venv-peers" / "bin" / "python"

SEED = 0  # also quality_run.SEED
TEST_SIZE = 0.2
METRICS = ("roc_auc", "log_loss", "rmse")


# --------------------------------------------------------------------------------------------
# Datasets and the split


@dataclass
class Split:
    train_csv: Path
    test_csv: Path
    truth: list[Any]  # label keys (classification) or floats (regression)
    rows_train: int
    rows_test: int
    stratified: bool
    dropped_columns: list[str]
    rows_without_target: int


def load_manifest(data_dir: Path) -> list[DatasetSpec]:
    manifest = json.loads((data_dir / "manifest.json").read_text())
    specs = []
    for entry in manifest["datasets"]:
        task = entry["task"]
        # The manifest writes e.g. "log_loss (also report accuracy)".
        words = str(entry.get("metric") or "").split()
        metric = words[0] if words and words[0] in METRICS else DEFAULT_METRIC[task]
        positive = entry.get("positive_class")
        specs.append(
            DatasetSpec(
                name=entry["name"],
                path=data_dir / entry["file"],
                target=entry["target"],
                task=task,
                metric=metric,
                positive_class=None if positive is None else str(positive),
                leakage_columns=tuple(entry.get("leakage_columns") or ()),
            )
        )
    return specs


def build_split(spec: DatasetSpec, workdir: Path) -> Split:
    """Write train.csv (with the target) and test.csv (without it); keep the truth here."""
    # The file's own text, so that every tool reads the same values the original file has.
    text = pd.read_csv(spec.path, dtype=str, keep_default_na=False)
    if spec.target not in text.columns:
        raise BenchError(f"target {spec.target!r} not in {spec.path.name}")
    target = pd.read_csv(spec.path, usecols=[spec.target])[spec.target]
    dropped = [c for c in spec.leakage_columns if c in text.columns]
    text = text.drop(columns=dropped)
    has_target = target.notna().to_numpy()
    text, target = text[has_target].reset_index(drop=True), target[has_target]
    target = target.reset_index(drop=True)

    classification = spec.task != "regression"
    stratify = None
    if classification:
        keys = target.map(label_key)
        if keys.value_counts().min() >= 2:
            stratify = keys
    train_idx, test_idx = train_test_split(
        np.arange(len(text)), test_size=TEST_SIZE, random_state=SEED, stratify=stratify
    )
    workdir.mkdir(parents=True, exist_ok=True)
    train_csv, test_csv = workdir / "train.csv", workdir / "test.csv"
    text.iloc[train_idx].to_csv(train_csv, index=False)
    text.iloc[test_idx].drop(columns=[spec.target]).to_csv(test_csv, index=False)
    truth_values = target.iloc[test_idx]
    truth = (
        [label_key(v) for v in truth_values] if classification else [float(v) for v in truth_values]
    )
    return Split(
        train_csv=train_csv,
        test_csv=test_csv,
        truth=truth,
        rows_train=len(train_idx),
        rows_test=len(test_idx),
        stratified=stratify is not None,
        dropped_columns=dropped,
        rows_without_target=int((~has_target).sum()),
    )


# --------------------------------------------------------------------------------------------
# The tools


def _tabpilot_exe() -> str | None:
    beside = Path(sys.executable).with_name("tabpilot")
    if beside.exists():
        return str(beside)
    return shutil.which("tabpilot")


def check_tools(tools: list[str]) -> dict[str, str | None]:
    """None for each tool that can run, else why not."""
    problems: dict[str, str | None] = {}
    for tool in tools:
        problem = None
        if tool == "tabpilot":
            if _tabpilot_exe() is None:
                problem = "tabpilot not found beside this Python nor on PATH (run `make setup`)"
        elif tool == "flaml":
            try:
                importlib.metadata.version("flaml")
            except importlib.metadata.PackageNotFoundError:
                problem = "flaml is not installed in this Python (run `make setup`)"
        elif tool == "autogluon":
            if not PEERS_PYTHON.exists():
                problem = "not installed (run `bash bench/setup_peers.sh`)"
            else:
                probe = subprocess.run(
                    [str(PEERS_PYTHON), "-c", "import autogluon.tabular"],
                    capture_output=True,
                    text=True,
                    env=child_env(),
                    timeout=300,
                )
                if probe.returncode != 0:
                    last = (probe.stderr.strip().splitlines() or ["?"])[-1]
                    problem = f"not installed: bench/.venv-peers cannot import it ({last})"
        problems[tool] = problem
    return problems


def train_command(
    tool: str, *, spec: DatasetSpec, split: Split, budget: float, model_dir: Path
) -> list[str]:
    if tool == "tabpilot":
        exe = _tabpilot_exe()
        assert exe is not None
        return [
            exe,
            "train",
            str(split.train_csv),
            "--target",
            spec.target,
            "--time-budget",
            f"{budget:g}",
            "--out",
            str(model_dir),
            "--seed",
            str(SEED),
        ]
    python = sys.executable if tool == "flaml" else str(PEERS_PYTHON)
    return [
        python,
        str(PEERS_DIR / f"{tool}_peer.py"),
        "train",
        str(split.train_csv),
        "--target",
        spec.target,
        "--task",
        spec.task,
        "--metric",
        spec.metric,
        "--time-budget",
        f"{budget:g}",
        "--seed",
        str(SEED),
        "--model-dir",
        str(model_dir),
    ]


def predict_command(tool: str, *, model_dir: Path, test_csv: Path, output: Path) -> list[str]:
    args = [str(model_dir), "-i", str(test_csv), "-o", str(output)]
    if tool == "tabpilot":
        exe = _tabpilot_exe()
        assert exe is not None
        return [exe, "predict", *args]
    python = sys.executable if tool == "flaml" else str(PEERS_PYTHON)
    return [python, str(PEERS_DIR / f"{tool}_peer.py"), "predict", *args]


def _tabpilot_best(chosen: Any, method: dict[str, Any]) -> str | None:
    """The chosen model's name and where it came from, e.g. "blend (bagged)"."""
    if not isinstance(chosen, dict) or not chosen.get("name"):
        return None
    name, source = str(chosen["name"]), method.get("source")
    kind = f"{source}: {name}" if source and source != name else name
    return f"{kind} (bagged)" if method.get("bagged") else kind


def _tool_info(tool: str, model_dir: Path) -> dict[str, Any]:
    """What the tool recorded about its model; `best` names the winner for every tool."""
    try:
        if tool == "tabpilot":
            card = json.loads((model_dir / "model.json").read_text())
            keys = ("chosen", "problem_type", "budget", "timings", "versions")
            info = {k: card[k] for k in keys if k in card}
            info["evaluation_method"] = card.get("evaluation_method") or {}
            info["decisions"] = card.get("decisions") or []
            info["candidates"] = [
                {k: row.get(k) for k in ("estimator", "holdout_score", "cv_score", "valid_score")}
                for row in card.get("leaderboard") or []
                if row.get("candidate")
            ]
            chosen = info.get("chosen")
            best = _tabpilot_best(chosen, info["evaluation_method"])
        else:
            info = json.loads((model_dir / "peer.json").read_text())
            best = info.get("best_estimator") or info.get("best_model")
    except (OSError, ValueError):
        return {}
    return {"best": best, **info} if isinstance(best, str) else info


# --------------------------------------------------------------------------------------------
# Scoring


# --------------------------------------------------------------------------------------------
# One dataset, one tool


def _last_line(run: dict[str, Any], limit: int = 160) -> str:
    """The last line of a failed command's stderr, which usually says why."""
    lines = [line.strip() for line in run.get("stderr_tail", "").splitlines() if line.strip()]
    if not lines:
        return ""
    return ": " + (lines[-1] if len(lines[-1]) <= limit else lines[-1][: limit - 1] + "…")


def run_tool(
    tool: str,
    *,
    spec: DatasetSpec,
    split: Split,
    workdir: Path,
    budget: float,
    timeout_s: float,
) -> dict[str, Any]:
    tool_dir = workdir / tool
    tool_dir.mkdir(parents=True, exist_ok=True)
    model_dir = tool_dir / "model"
    output = tool_dir / "predictions.csv"
    result: dict[str, Any] = {"status": "failed"}

    cmd = train_command(tool, spec=spec, split=split, budget=budget, model_dir=model_dir)
    train = run_measured(cmd, cwd=tool_dir, name="train", timeout_s=timeout_s)
    result["train"] = train
    result["info"] = _tool_info(tool, model_dir)
    if train["timed_out"] or train["returncode"] != 0:
        why = f"timed out after {timeout_s:g} s" if train["timed_out"] else "training failed"
        result["error"] = f"{why} (exit {train['returncode']}){_last_line(train)}"
        return result

    cmd = predict_command(tool, model_dir=model_dir, test_csv=split.test_csv, output=output)
    predict = run_measured(cmd, cwd=tool_dir, name="predict", timeout_s=max(timeout_s, 600))
    result["predict"] = predict
    if predict["timed_out"] or predict["returncode"] != 0:
        result["error"] = f"prediction failed (exit {predict['returncode']}){_last_line(predict)}"
        return result
    try:
        result["metrics"] = score_predictions(spec, split.truth, output)
    except BenchError as exc:
        result["error"] = f"scoring failed: {exc}"
        return result
    result["status"] = "ok"
    return result


# --------------------------------------------------------------------------------------------
# Main


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("tabpilot", "flaml", "lightgbm", "xgboost", "scikit-learn", "pandas"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Tabpilot against raw FLAML and AutoGluon on ../shared/datasets.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--budget", type=float, default=60.0, help="time budget in seconds")
    parser.add_argument("--datasets", help="comma-separated dataset names (default: all)")
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help="comma-separated subset of " + ", ".join(TOOLS)
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON file for all raw figures (default: bench/results/quality-<timestamp>.json)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds before a training command is killed (default: 3 x budget + 120)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder holding manifest.json"
    )
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep the splits, models and logs"
    )
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print the tables of earlier runs from their JSON files (several: merged, e.g. "
        "one run per tool); runs nothing",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 unless every target is met"
    )
    return parser.parse_args(argv)


def _specs_and_tools(args: argparse.Namespace) -> tuple[list[DatasetSpec], list[str]]:
    """The datasets and tools asked for (exits with a clear message on a bad choice)."""
    if not (args.data_dir / "manifest.json").is_file():
        sys.exit(
            f"Datasets not found: {args.data_dir / 'manifest.json'} does not exist.\n"
            "The benchmark needs the shared datasets in ../shared/datasets beside the project "
            "(or pass --data-dir)."
        )
    if args.budget <= 0:
        sys.exit("--budget must be a positive number of seconds")
    specs = load_manifest(args.data_dir)
    if args.datasets:
        wanted = [name.strip() for name in args.datasets.split(",") if name.strip()]
        known = {spec.name for spec in specs}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            sys.exit(f"Unknown dataset(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        specs = [spec for spec in specs if spec.name in wanted]
    tools = [tool.strip() for tool in args.tools.split(",") if tool.strip()]
    unknown = [tool for tool in tools if tool not in TOOLS]
    if unknown or not tools:
        sys.exit(f"Unknown tool(s): {', '.join(unknown) or '(none)'}; known: {', '.join(TOOLS)}")
    return specs, tools


def _show_reports(paths: list[Path], *, markdown: bool) -> None:
    reports = []
    for path in paths:
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            sys.exit(f"Cannot read the results file {path}: {exc}")
    print(render_report(merge_reports(reports), markdown=markdown))


def _say_outcome(prefix: str, tool: str, spec: DatasetSpec, entry: dict[str, Any]) -> None:
    train = entry.get("train") or {}
    figure = fmt_metric(spec.metric, (entry.get("metrics") or {}).get(spec.metric))
    outcome = (
        f"{METRIC_TITLES[spec.metric]} {figure}"
        if entry["status"] == "ok"
        else f"FAILED: {entry.get('error')}"
    )
    wall, peak = fmt_number(train.get("wall_s")), fmt_number(train.get("peak_mb"), 0)
    _progress(f"{prefix} {TOOL_TITLES[tool]}: {outcome}, {wall} s, {peak} MB")
    if entry["status"] != "ok":
        tail = (train.get("stderr_tail") or "").strip().splitlines()[-5:]
        tail += ((entry.get("predict") or {}).get("stderr_tail") or "").strip().splitlines()[-5:]
        for line in tail:
            _progress(f"    {line}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        _show_reports(args.report, markdown=args.markdown)
        return 0
    specs, tools = _specs_and_tools(args)
    timeout_s = args.timeout or args.budget * 3 + 120
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_path = args.out or BENCH_DIR / "results" / f"quality-{stamp}.json"

    unavailable = check_tools(tools)
    for tool, problem in unavailable.items():
        if problem:
            _progress(f"{TOOL_TITLES[tool]}: {problem}")
    report: dict[str, Any] = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "budget_s": args.budget,
        "seed": SEED,
        "test_size": TEST_SIZE,
        "tools": tools,
        "timeout_s": timeout_s,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": _versions(),
        "unavailable": {tool: problem for tool, problem in unavailable.items() if problem},
        "datasets": {},
    }

    workroot = Path(tempfile.mkdtemp(prefix="tabpilot-bench-"))
    comparison: dict[str, Any] = {}
    try:
        for n, spec in enumerate(specs, start=1):
            prefix = f"[{n}/{len(specs)} {spec.name}]"
            if not spec.path.is_file():
                _progress(f"{prefix} skipped: {spec.path} is missing")
                report["datasets"][spec.name] = {"error": f"{spec.path} is missing"}
                continue
            workdir = workroot / spec.name
            try:
                split = build_split(spec, workdir)
            except (BenchError, OSError, ValueError, KeyError) as exc:
                _progress(f"{prefix} skipped: cannot split {spec.path.name}: {exc}")
                report["datasets"][spec.name] = {"error": f"cannot split: {exc}"}
                continue
            data: dict[str, Any] = {
                "task": spec.task,
                "target": spec.target,
                "metric": spec.metric,
                "split": {
                    "rows_train": split.rows_train,
                    "rows_test": split.rows_test,
                    "stratified": split.stratified,
                    "dropped_columns": split.dropped_columns,
                    "rows_without_target": split.rows_without_target,
                },
                "tools": {},
            }
            report["datasets"][spec.name] = data
            for tool in tools:
                if unavailable[tool]:
                    data["tools"][tool] = {"status": "not installed", "error": unavailable[tool]}
                    continue
                _progress(f"{prefix} {TOOL_TITLES[tool]}: training ({args.budget:g} s budget)")
                entry = run_tool(
                    tool,
                    spec=spec,
                    split=split,
                    workdir=workdir,
                    budget=args.budget,
                    timeout_s=timeout_s,
                )
                data["tools"][tool] = entry
                _say_outcome(prefix, tool, spec, entry)
                _write_json(out_path, report)
            comparison[spec.name] = compare_dataset(spec, data["tools"], budget=args.budget)
            data["comparison"] = comparison[spec.name]
            _write_json(out_path, report)
    finally:
        if args.keep_workdir:
            _progress(f"Work folder kept: {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)

    report["summary"] = summarise(comparison, budget=args.budget)
    report["finished"] = datetime.now().isoformat(timespec="seconds")
    _write_json(out_path, report)
    print(render_report(report, markdown=args.markdown))
    print(f"\nRaw figures: {out_path}")
    if args.strict and report["summary"]["all_targets_met"] is not True:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
