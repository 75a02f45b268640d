"""Permutation importance keeps to its time limit, even where one repeat cannot fit."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from tabpilot.engine.data.inputs import FeatureSpec
from tabpilot.engine.training.explain import compute_permutation_importance


def _data(n_cols: int) -> tuple[pd.DataFrame, np.ndarray, list[FeatureSpec]]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, n_cols)), columns=[f"c{i}" for i in range(n_cols)])
    y = (frame["c0"] > 0).astype(float).to_numpy()
    return frame, y, [FeatureSpec(c, "numeric") for c in frame.columns]


def _accuracy_of_c0(delay: float):
    def score(rows: pd.DataFrame, y: np.ndarray) -> float:
        time.sleep(delay)  # a slow model
        return float(np.mean((rows["c0"].to_numpy() > 0) == y))

    return score


def test_every_column_is_measured_when_time_allows() -> None:
    frame, y, features = _data(6)
    found, note = compute_permutation_importance(
        _accuracy_of_c0(0.0), frame, y, features, greater_is_better=True, time_limit=5.0
    )
    assert {f.feature for f in found} == set(frame.columns)
    assert found[0].feature == "c0" and found[0].importance > 0.3
    assert "were not" not in note


def test_a_repeat_that_cannot_fit_stops_and_names_the_columns_left_out() -> None:
    frame, y, features = _data(200)
    started = time.perf_counter()
    found, note = compute_permutation_importance(
        _accuracy_of_c0(0.01), frame, y, features, greater_is_better=True, time_limit=0.3
    )
    took = time.perf_counter() - started
    # 200 columns at 10 ms a score would take 2 s; it stops near its 0.3 s.
    assert took < 1.5, took
    assert 1 <= len(found) < 200
    assert found[0].feature == "c0"  # the first column is measured first
    assert f"only the first {len(found)} of 200 columns" in note
    assert f"{200 - len(found)} were not (c{len(found)}, " in note
