"""Feature importance comparable across estimators: permutation importance on held-out rows.

Measured in the user's original columns: a datetime column's parts are shuffled together,
so its importance is that of the column the user knows.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from tabpilot.engine.data.inputs import FeatureSpec

MAX_ROWS = 5000
MIN_ROWS = 200


@dataclass(frozen=True)
class FeatureImportance:
    feature: str
    importance: float  # mean drop of the primary metric when the column is shuffled
    std: float

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def compute_permutation_importance(
    score_fn: Callable[[pd.DataFrame, np.ndarray], float],
    prepared: pd.DataFrame,
    y: np.ndarray,
    features: list[FeatureSpec],
    *,
    greater_is_better: bool,
    seed: int = 0,
    time_limit: float = 10.0,
    max_repeats: int = 5,
) -> tuple[list[FeatureImportance], str]:
    """Importance of each feature, and a note on how it was computed.

    Args:
        score_fn: scores the model on prepared input rows and their targets.
        prepared: the held-out rows as model input columns.
        y: their targets.
        features: the raw features, whose input columns are shuffled together.
        greater_is_better: direction of `score_fn`; importance is always "higher matters more".
        time_limit: seconds to spend; repeats stop early when it runs out (at least one).
    """
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    if len(prepared) > MAX_ROWS:
        keep = rng.choice(len(prepared), MAX_ROWS, replace=False)
        prepared, y = prepared.iloc[keep], y[keep]
    base = score_fn(prepared, y)
    # One repeat scores every feature once: shrink the sample until that fits the limit
    # (slow models, such as many-class ensembles, would otherwise blow the budget).
    per_score = time.perf_counter() - started
    fits = time_limit / max(per_score * (len(features) + 1), 1e-9)
    if fits < 1.0 and len(prepared) > MIN_ROWS:
        n = max(MIN_ROWS, int(len(prepared) * fits * 0.8))
        keep = rng.choice(len(prepared), n, replace=False)
        # A rare class absent from the smaller sample makes some metrics fail: keep all rows.
        with contextlib.suppress(ValueError):
            base, prepared, y = score_fn(prepared.iloc[keep], y[keep]), prepared.iloc[keep], y[keep]
    sign = 1.0 if greater_is_better else -1.0
    drops: dict[str, list[float]] = {f.name: [] for f in features}
    repeats = 0
    for _ in range(max_repeats):
        for spec in features:
            cols = [c for c, _ in spec.input_columns()]
            shuffled = prepared.copy()
            order = rng.permutation(len(prepared))
            shuffled[cols] = prepared[cols].iloc[order].to_numpy()
            drops[spec.name].append(sign * (base - score_fn(shuffled, y)))
        repeats += 1
        elapsed = time.perf_counter() - started
        if elapsed * (repeats + 1) / repeats > time_limit:
            break
    result = [
        FeatureImportance(name, float(np.mean(v)), float(np.std(v))) for name, v in drops.items()
    ]
    result.sort(key=lambda f: f.importance, reverse=True)
    note = (
        f"permutation importance on {len(prepared):,} held-out rows, {repeats} repeat(s): "
        "the drop in the primary metric when a column's values are shuffled"
    )
    return result, note
