"""Helpers shared by the peer scripts (stdlib and pandas only: they run in other venvs too)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd


def build_parser(description: str) -> argparse.ArgumentParser:
    """The two sub-commands every peer has: `train` and `predict`, as Tabpilot's CLI has."""
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="fit on a CSV and save the model in --model-dir")
    train.add_argument("data", type=Path, help="training CSV, target included")
    train.add_argument("--target", required=True)
    train.add_argument("--task", required=True, choices=["binary", "multiclass", "regression"])
    train.add_argument("--metric", required=True, choices=["roc_auc", "log_loss", "rmse"])
    train.add_argument("--time-budget", type=float, required=True)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--model-dir", type=Path, required=True)
    predict = sub.add_parser("predict", help="predict a CSV with the model in --model-dir")
    predict.add_argument("model_dir", type=Path)
    predict.add_argument("-i", "--input", type=Path, required=True)
    predict.add_argument("-o", "--output", type=Path, required=True)
    return parser


def write_predictions(
    path: Path, *, predictions: object, probabilities: pd.DataFrame | None
) -> None:
    """Write `prediction` and `proba_<label>` columns, the format of `tabpilot predict`."""
    out = pd.DataFrame({"prediction": list(predictions)})
    if probabilities is not None:
        for label in probabilities.columns:
            out[f"proba_{label}"] = probabilities[label].to_numpy()
    out.to_csv(path, index=False)


def write_info(model_dir: Path, info: dict) -> None:
    """Record versions and timings beside the model (read back by bench/quality.py)."""
    (model_dir / "peer.json").write_text(json.dumps(info, indent=2, default=str))


def read_info(model_dir: Path) -> dict:
    return json.loads((model_dir / "peer.json").read_text())


class Stopwatch:
    """Seconds since creation; `lap(name)` records a phase."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.laps: dict[str, float] = {}
        self._last = self.start

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now
