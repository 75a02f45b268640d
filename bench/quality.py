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
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PEERS_DIR = BENCH_DIR / "peers"
PEERS_PYTHON = BENCH_DIR / ".venv-peers" / "bin" / "python"

TOOLS = ("tabpilot", "flaml", "autogluon")
TOOL_TITLES = {"tabpilot": "Tabpilot", "flaml": "raw FLAML", "autogluon": "AutoGluon"}
SEED = 0
TEST_SIZE = 0.2
METRICS = ("roc_auc", "log_loss", "rmse")
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
SECONDARY_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2"}
METRIC_TITLES = {
    "roc_auc": "ROC AUC",
    "log_loss": "log loss",
    "rmse": "RMSE",
    "accuracy": "accuracy",
    "balanced_accuracy": "bal. accuracy",
    "r2": "R²",
    "mae": "MAE",
}

# Targets of issue 2 (at a 60 s budget): never worse than raw FLAML beyond noise, better on
# average, wall time within budget + 10% (+ a few seconds on tiny budgets).
AUC_TOLERANCE = 0.005
LOSS_TOLERANCE = 0.03
WALL_TOLERANCE = 0.10
WALL_GRACE_S = 5.0

LOG_TAIL_CHARS = 3000
PROBA_EPS = 1e-15


class BenchError(Exception):
    """A problem with one tool's run or output; recorded, and the benchmark goes on."""


# --------------------------------------------------------------------------------------------
# Datasets and the split


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    path: Path
    target: str
    task: str
    metric: str
    positive_class: str | None
    leakage_columns: tuple[str, ...]


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


def label_key(value: object) -> str:
    """One spelling per label, whichever tool wrote it: 1, 1.0 and "1" are the same class."""
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer() and "e" not in text.lower():
        return str(int(number))
    return text


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
# Running one command: wall time and peak memory


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB; (0, 0) once it is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


class TreeMemoryPoller(threading.Thread):
    """Samples the resident memory of a process and all its descendants.

    GNU time reports the peak of the largest single process; a tool that works in several
    processes (worker pools) uses their sum, which only sampling the tree can see.
    """

    def __init__(self, root_pid: int, *, include_root: bool, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.include_root = include_root
        self.interval_s = interval_s
        self.peak_tree_kb = 0
        self.peak_process_kb = 0
        self._stop_event = threading.Event()
        self.enabled = Path("/proc/self/status").exists()

    def run(self) -> None:
        while self.enabled and not self._stop_event.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        children = _children_by_parent()
        pids, queue = [], [self.root_pid]
        while queue:
            pid = queue.pop()
            pids.append(pid)
            queue.extend(children.get(pid, ()))
        total = 0
        for pid in pids:
            if pid == self.root_pid and not self.include_root:
                continue
            rss, hwm = _status_kb(pid)
            total += rss
            self.peak_process_kb = max(self.peak_process_kb, hwm)
        self.peak_tree_kb = max(self.peak_tree_kb, total)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _gnu_time() -> str | None:
    path = Path("/usr/bin/time")
    return str(path) if path.exists() else None


def _tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:]


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONHASHSEED"] = str(SEED)
    return env


def run_measured(cmd: list[str], *, cwd: Path, name: str, timeout_s: float) -> dict[str, Any]:
    """Run one command alone; its wall time, peak memory, exit code and output tails."""
    stdout_path, stderr_path = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
    time_path = cwd / f"{name}.time"
    gnu_time = _gnu_time()
    full = [gnu_time, "-f", "%e %M", "-o", str(time_path), *cmd] if gnu_time else cmd
    timed_out = False
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            full, cwd=cwd, stdout=out, stderr=err, env=_child_env(), start_new_session=True
        )
        poller = TreeMemoryPoller(proc.pid, include_root=gnu_time is None)
        poller.start()
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
        wall_s = time.perf_counter() - start
        poller.stop()

    largest_kb = None
    if gnu_time and time_path.exists():
        # On a failure GNU time writes "Command exited with non-zero status N" first.
        lines = time_path.read_text().strip().splitlines()
        try:
            elapsed, maxrss = lines[-1].split()
            wall_s, largest_kb = float(elapsed), int(maxrss)
        except (IndexError, ValueError):
            pass
    # GNU time passes the child's exit status through; a signal shows as 128 + N.
    peak_kb = max(largest_kb or 0, poller.peak_tree_kb, poller.peak_process_kb)
    return {
        "command": cmd,
        "returncode": returncode,
        "timed_out": timed_out,
        "wall_s": round(wall_s, 2),
        "peak_mb": round(peak_kb / 1024, 1) if peak_kb else None,
        "peak_largest_process_mb": round(largest_kb / 1024, 1) if largest_kb else None,
        "peak_process_tree_mb": round(poller.peak_tree_kb / 1024, 1) or None,
        "memory_source": "GNU time + /proc sampling" if gnu_time else "/proc sampling",
        "stderr_tail": _tail(stderr_path),
        "stdout_tail": _tail(stdout_path, 1000),
    }


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
                    env=_child_env(),
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


def _tool_info(tool: str, model_dir: Path) -> dict[str, Any]:
    """What the tool recorded about its model; `best` names the winner for every tool."""
    try:
        if tool == "tabpilot":
            card = json.loads((model_dir / "model.json").read_text())
            keys = ("chosen", "problem_type", "budget", "timings", "versions")
            info = {k: card[k] for k in keys if k in card}
            chosen = info.get("chosen")
            best = chosen.get("name") if isinstance(chosen, dict) else None
        else:
            info = json.loads((model_dir / "peer.json").read_text())
            best = info.get("best_estimator") or info.get("best_model")
    except (OSError, ValueError):
        return {}
    return {"best": best, **info} if isinstance(best, str) else info


# --------------------------------------------------------------------------------------------
# Scoring


def score_predictions(spec: DatasetSpec, split: Split, predictions_csv: Path) -> dict[str, float]:
    """The dataset's metric and the secondary ones, from a tool's predictions CSV."""
    try:
        preds = pd.read_csv(predictions_csv, dtype={"prediction": str})
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read the predictions {predictions_csv.name}: {exc}") from exc
    if "prediction" not in preds.columns:
        raise BenchError(f"no `prediction` column in the predictions; columns: {list(preds)}")
    if len(preds) != len(split.truth):
        raise BenchError(f"{len(preds)} predictions for {len(split.truth)} test rows")

    if spec.task == "regression":
        y_true = np.asarray(split.truth, dtype=float)
        y_pred = pd.to_numeric(preds["prediction"], errors="coerce").to_numpy(dtype=float)
        if np.isnan(y_pred).any():
            raise BenchError(f"{int(np.isnan(y_pred).sum())} missing or non-numeric predictions")
        residual = y_true - y_pred
        total = ((y_true - y_true.mean()) ** 2).sum()
        return {
            "rmse": float(np.sqrt(np.mean(residual**2))),
            "mae": float(np.mean(np.abs(residual))),
            "r2": float(1 - (residual**2).sum() / total) if total > 0 else float("nan"),
        }

    truth = split.truth
    predicted = [label_key(v) for v in preds["prediction"]]
    metrics = {
        "accuracy": float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)])),
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
    }
    proba_columns = {
        label_key(c[len("proba_") :]): c for c in preds.columns if c.startswith("proba_")
    }
    if not proba_columns:
        raise BenchError("no `proba_<label>` columns in the predictions")
    labels = list(proba_columns)
    proba = preds[[proba_columns[label] for label in labels]].to_numpy(dtype=float)
    if np.isnan(proba).any():
        raise BenchError("missing probabilities in the predictions")
    # As scikit-learn's log_loss: rows renormalised, probabilities clipped; a true class the
    # tool has no column for counts as probability 0.
    sums = proba.sum(axis=1, keepdims=True)
    proba = np.divide(proba, sums, out=np.full_like(proba, 1 / len(labels)), where=sums > 0)
    index = {label: j for j, label in enumerate(labels)}
    p_true = np.array([proba[i, index[t]] if t in index else 0.0 for i, t in enumerate(truth)])
    metrics["log_loss"] = float(-np.mean(np.log(np.clip(p_true, PROBA_EPS, 1.0))))

    if spec.task == "binary":
        positive = label_key(spec.positive_class) if spec.positive_class is not None else None
        if positive not in index:
            positive = sorted(set(truth))[-1]
        y_true = np.array([t == positive for t in truth])
        if positive in index:
            score = proba[:, index[positive]]
        elif len(labels) == 2:
            score = 1 - proba[:, 0]
        else:
            raise BenchError(f"no probability for the positive class {positive!r}")
        if y_true.all() or not y_true.any():
            raise BenchError("the test split has a single class; ROC AUC is undefined")
        metrics["roc_auc"] = float(roc_auc_score(y_true, score))
    return metrics


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
        result["metrics"] = score_predictions(spec, split, output)
    except BenchError as exc:
        result["error"] = f"scoring failed: {exc}"
        return result
    result["status"] = "ok"
    return result


# --------------------------------------------------------------------------------------------
# Comparison with the targets


def wall_limit_s(budget: float) -> float:
    return max(budget * (1 + WALL_TOLERANCE), budget + WALL_GRACE_S)


def _metric(results: dict[str, Any], tool: str, name: str) -> float | None:
    entry = results.get(tool) or {}
    if entry.get("status") != "ok":
        return None
    value = entry.get("metrics", {}).get(name)
    return None if value is None or not math.isfinite(value) else float(value)


def compare_dataset(spec: DatasetSpec, results: dict[str, Any], *, budget: float) -> dict[str, Any]:
    """Tabpilot against raw FLAML on one dataset, against the issue's targets."""
    tab = _metric(results, "tabpilot", spec.metric)
    ref = _metric(results, "flaml", spec.metric)
    tab_entry = results.get("tabpilot") or {}
    wall = (tab_entry.get("train") or {}).get("wall_s")
    limit = wall_limit_s(budget)
    row: dict[str, Any] = {
        "metric": spec.metric,
        "tabpilot": tab,
        "flaml": ref,
        "autogluon": _metric(results, "autogluon", spec.metric),
        "tabpilot_wall_s": wall,
        "flaml_wall_s": ((results.get("flaml") or {}).get("train") or {}).get("wall_s"),
        "wall_limit_s": round(limit, 1),
        "within_budget": None if wall is None else wall <= limit,
        "delta": None,
        "gain": None,
        "outcome": None,
        "never_worse": None,
    }
    if tab is None:
        row["never_worse"] = False if "tabpilot" in results else None
        row["outcome"] = "Tabpilot failed" if "tabpilot" in results else None
        return row
    if ref is None:
        return row
    if spec.metric == "roc_auc":
        delta = tab - ref
        worse, better = delta < -AUC_TOLERANCE, delta > AUC_TOLERANCE
        # Relative reduction of the error 1 - AUC, comparable with the loss metrics below.
        gain = delta / max(1 - ref, 1e-9)
    else:
        delta = tab / ref - 1 if ref > 0 else tab - ref
        worse, better = delta > LOSS_TOLERANCE, delta < -LOSS_TOLERANCE
        gain = (ref - tab) / ref if ref > 0 else 0.0
    row.update(
        delta=delta,
        # Clipped so that one dataset cannot carry the average alone.
        gain=max(-1.0, min(1.0, gain)),
        outcome="better" if better else "worse" if worse else "tie",
        never_worse=not worse,
    )
    return row


def summarise(rows: dict[str, dict[str, Any]], *, budget: float) -> dict[str, Any]:
    judged = {name: row for name, row in rows.items() if row["never_worse"] is not None}
    gains = [row["gain"] for row in rows.values() if row["gain"] is not None]
    walls = [row["within_budget"] for row in rows.values() if row["within_budget"] is not None]
    mean_gain = float(np.mean(gains)) if gains else None
    summary = {
        "budget_s": budget,
        "wall_limit_s": round(wall_limit_s(budget), 1),
        "datasets_compared": len(gains),
        "better": sum(row["outcome"] == "better" for row in rows.values()),
        "ties": sum(row["outcome"] == "tie" for row in rows.values()),
        "worse": sum(row["outcome"] == "worse" for row in rows.values()),
        "failed": sum(row["outcome"] == "Tabpilot failed" for row in rows.values()),
        "never_worse": all(row["never_worse"] for row in judged.values()) if judged else None,
        "mean_gain": mean_gain,
        "better_on_average": None if mean_gain is None else mean_gain > 0,
        "within_budget": all(walls) if walls else None,
    }
    verdicts = [summary["never_worse"], summary["better_on_average"], summary["within_budget"]]
    summary["all_targets_met"] = False if False in verdicts else None if None in verdicts else True
    return summary


# --------------------------------------------------------------------------------------------
# Output


def render_table(headers: list[str], rows: list[list[str]], *, markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) if _numeric(cell) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _numeric(cell: str) -> bool:
    return bool(cell) and cell.replace(",", "").replace(".", "").lstrip("+-").isdigit()


def fmt_metric(name: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if name in ("rmse", "mae"):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"
    return f"{value:.4f}"


def fmt_number(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def fmt_pass(value: bool | None) -> str:
    return "n/a" if value is None else "PASS" if value else "FAIL"


def _note(entry: dict[str, Any]) -> str:
    if entry.get("status") == "ok":
        best = (entry.get("info") or {}).get("best")
        return f"best: {best}" if best else ""
    if entry.get("status") == "not installed":
        return entry.get("error", "not installed")
    return entry.get("error", "failed")


def render_dataset(spec: DatasetSpec, data: dict[str, Any], *, markdown: bool) -> str:
    secondary = SECONDARY_METRIC[spec.task]
    headers = [
        "tool",
        METRIC_TITLES[spec.metric],
        METRIC_TITLES[secondary],
        "wall s",
        "peak MB",
        "predict s",
        "note",
    ]
    rows = []
    for tool, entry in data["tools"].items():
        metrics = entry.get("metrics") or {}
        train, predict = entry.get("train") or {}, entry.get("predict") or {}
        rows.append(
            [
                TOOL_TITLES[tool],
                fmt_metric(spec.metric, metrics.get(spec.metric)),
                fmt_metric(secondary, metrics.get(secondary)),
                fmt_number(train.get("wall_s")),
                fmt_number(train.get("peak_mb"), 0),
                fmt_number(predict.get("wall_s")),
                _note(entry),
            ]
        )
    split = data["split"]
    title = (
        f"{spec.name}: {spec.task}, target {spec.target!r}, "
        f"{split['rows_train']:,} train / {split['rows_test']:,} test rows"
        + (
            f", leakage dropped: {', '.join(split['dropped_columns'])}"
            if split["dropped_columns"]
            else ""
        )
    )
    heading = f"### {title}" if markdown else title
    return f"{heading}\n\n{render_table(headers, rows, markdown=markdown)}"


def render_overview(
    specs: list[DatasetSpec], datasets: dict[str, Any], tools: list[str], *, markdown: bool
) -> str:
    headers = ["dataset", "metric", *(TOOL_TITLES[t] for t in tools)]
    rows = []
    for spec in specs:
        if spec.name not in datasets:
            continue
        cells = [spec.name, METRIC_TITLES[spec.metric]]
        for tool in tools:
            entry = datasets[spec.name]["tools"].get(tool) or {}
            if entry.get("status") == "ok":
                train = entry["train"]
                cells.append(
                    f"{fmt_metric(spec.metric, entry['metrics'].get(spec.metric))} "
                    f"({fmt_number(train['wall_s'], 0)} s, {fmt_number(train['peak_mb'], 0)} MB)"
                )
            else:
                cells.append(entry.get("status", "–"))
        rows.append(cells)
    return render_table(headers, rows, markdown=markdown)


def render_summary(
    specs: list[DatasetSpec], comparison: dict[str, Any], summary: dict[str, Any], *, markdown: bool
) -> str:
    headers = [
        "dataset",
        "metric",
        "Tabpilot",
        "raw FLAML",
        "change",
        "never worse",
        "Tabpilot wall s",
        "within budget",
    ]
    rows = []
    for spec in specs:
        row = comparison.get(spec.name)
        if row is None:
            continue
        delta = row["delta"]
        if delta is None:
            change = "–"
        elif spec.metric == "roc_auc":
            change = f"{delta:+.4f}"
        else:
            change = f"{delta * 100:+.1f}%"
        rows.append(
            [
                spec.name,
                METRIC_TITLES[spec.metric],
                fmt_metric(spec.metric, row["tabpilot"]),
                fmt_metric(spec.metric, row["flaml"]),
                change,
                fmt_pass(row["never_worse"]),
                f"{fmt_number(row['tabpilot_wall_s'])} / {row['wall_limit_s']:g}",
                fmt_pass(row["within_budget"]),
            ]
        )
    gain = summary["mean_gain"]
    lines = [
        f"- never worse than raw FLAML beyond noise (AUC -{AUC_TOLERANCE}, log loss and RMSE "
        f"+{LOSS_TOLERANCE:.0%}): {fmt_pass(summary['never_worse'])} "
        f"({summary['better']} better, {summary['ties']} within noise, {summary['worse']} worse, "
        f"{summary['failed']} failed)",
        "- better on average (mean relative error reduction against raw FLAML): "
        + (f"{gain * 100:+.1f}%" if gain is not None else "–")
        + f" {fmt_pass(summary['better_on_average'])}",
        f"- training wall time within budget + {WALL_TOLERANCE:.0%} "
        f"(limit {summary['wall_limit_s']:g} s): {fmt_pass(summary['within_budget'])}",
        f"- all targets: {fmt_pass(summary['all_targets_met'])}",
    ]
    title = f"Tabpilot against raw FLAML at a {summary['budget_s']:g} s budget"
    heading = f"### {title}" if markdown else title
    table = render_table(headers, rows, markdown=markdown)
    return f"{heading}\n\n{table}\n\n" + "\n".join(lines)


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
        metavar="JSON",
        help="print the tables of an earlier run from its JSON file; runs nothing",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 unless every target is met"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        try:
            report = json.loads(args.report.read_text())
        except (OSError, ValueError) as exc:
            sys.exit(f"Cannot read the results file {args.report}: {exc}")
        print(render_report(report, markdown=args.markdown))
        return 0
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
                    tail += (
                        ((entry.get("predict") or {}).get("stderr_tail") or "")
                        .strip()
                        .splitlines()[-5:]
                    )
                    for line in tail:
                        _progress(f"    {line}")
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


def render_report(report: dict[str, Any], *, markdown: bool) -> str:
    """Every table of a run, from its raw figures (as written to the JSON file)."""
    budget, tools = float(report["budget_s"]), list(report["tools"])
    specs = [
        DatasetSpec(
            name=name,
            path=Path(name),
            target=data["target"],
            task=data["task"],
            metric=data["metric"],
            positive_class=None,
            leakage_columns=(),
        )
        for name, data in report["datasets"].items()
        if "tools" in data
    ]
    comparison = {
        spec.name: compare_dataset(spec, report["datasets"][spec.name]["tools"], budget=budget)
        for spec in specs
    }
    summary = summarise(comparison, budget=budget)
    sections = [
        render_dataset(spec, report["datasets"][spec.name], markdown=markdown) for spec in specs
    ]
    title = f"All datasets at a {budget:g} s budget: metric (training wall time, peak memory)"
    sections.append(
        (f"### {title}" if markdown else title)
        + "\n\n"
        + render_overview(specs, report["datasets"], tools, markdown=markdown)
    )
    if "tabpilot" in tools and "flaml" in tools:
        sections.append(render_summary(specs, comparison, summary, markdown=markdown))
    skipped = [
        f"- {name}: {data['error']}" for name, data in report["datasets"].items() if "error" in data
    ]
    if skipped:
        sections.append("Skipped datasets:\n" + "\n".join(skipped))
    return "\n\n".join(sections)


if __name__ == "__main__":
    sys.exit(main())
