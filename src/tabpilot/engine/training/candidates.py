"""The candidates: what a compared model carries, and which models are planned, in which
order (the portfolio of strong defaults first, then the search's best of each kind)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tabpilot.engine.choices import ESTIMATORS
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.blend import Blend
from tabpilot.engine.training.estimators import (
    constant_baseline,
    default_lightgbm,
    default_linear,
)
from tabpilot.engine.training.outputs import output


@dataclass
class Candidate:
    """One compared model, fitted on the training rows.

    `holdout_score` is on the held-out test rows (reported, never used to choose);
    `cv_score` (out-of-fold, small data) or `valid_score` (validation rows, larger data) is
    what it is chosen by.
    """

    name: str
    description: str
    pipeline: Pipeline  # preprocessor + model, fitted on the training rows
    holdout_score: float
    fit_seconds: float
    predictions: np.ndarray  # on the held-out rows
    proba: np.ndarray | None
    cv_score: float | None = None
    blend: Blend | None = None  # set for the weighted blend of the pool
    valid_score: float | None = None
    source: str = ""  # "portfolio", "search", "blend" or "baseline"
    estimator: Any = None  # unfitted, with its configuration: what the refit on all rows trains
    selection: np.ndarray | None = None  # outputs the choice is made on (out-of-fold or validation)
    holdout: np.ndarray | None = None  # outputs on the held-out rows
    size: int = 0  # its trees' size (`sizes.py`): what exporting it costs

    @property
    def selection_score(self) -> float:
        if self.cv_score is not None:
            return self.cv_score
        if self.valid_score is not None:
            return self.valid_score
        return self.holdout_score

    @property
    def model(self) -> Any:
        return self.pipeline.named_steps["model"]


class PlannedCandidate(NamedTuple):
    """A model to train, not fitted yet."""

    name: str  # unique: letters, digits and "_" (the blend's member key)
    description: str
    estimator: Any
    cost: float  # expected seconds of one fit on the training rows (one core)
    source: str = "portfolio"


def baseline_candidate(problem: ProblemType, *, n_jobs: int) -> PlannedCandidate:
    label = (
        "constant baseline (predicts the class frequencies)"
        if problem.is_classification
        else "constant baseline (predicts the mean)"
    )
    return PlannedCandidate(
        "baseline", label, constant_baseline(problem, n_jobs=n_jobs), 0.0, "baseline"
    )


def plan_portfolio(
    problem: ProblemType,
    shape: tuple[int, int],
    *,
    n_classes: int,
    estimators: tuple[str, ...] | None,
    seed: int,
    n_jobs: int,
    balanced: bool = False,
    small: bool = False,
    n_folds: int = 1,
) -> list[PlannedCandidate]:
    """The portfolio of strong default configurations in priority order (see
        `portfolio.py`), restricted to the kinds a user asked for (the first LightGBM, the safe
        choice, always stays); with `balanced`, a class-weighted copy of the first configuration
        that takes class weights follows it; `small` (bagged data): the neural net after the first
    trees."""
    n_rows, n_cols = shape
    out: list[PlannedCandidate] = []
    weighted_added = not balanced
    entries = _portfolio_entries(problem, n_rows, n_cols, n_classes, seed, n_jobs, n_folds)
    if small:
        # The neural net leads on many classes and many rows; on small data it costs the
        # most of all kinds (k times, bagged) and rarely beats the trees: it comes later.
        nets = [e for e in entries if e.name == "mlp"]
        entries = [e for e in entries if e.name != "mlp"]
        entries[min(len(entries), NET_POSITION_SMALL) : 0] = nets
    for entry in entries:
        kind = PORTFOLIO_KINDS.get(entry.name, entry.name)
        safe = entry.name == "lgbm" or (entry.name == "default_lgbm")
        if estimators is not None and kind not in estimators and not safe:
            continue
        out.append(PlannedCandidate(entry.name, entry.description, entry.estimator, entry.seconds))
        if not weighted_added and entry.class_weighted is not None:
            weighted_added = True
            out.append(
                PlannedCandidate(
                    f"{entry.name}_balanced",
                    f"{entry.description}, classes weighted to balance them",
                    entry.class_weighted,
                    entry.seconds,
                )
            )
    wanted = estimators or tuple(ESTIMATORS)
    if "linear" in wanted:
        # On small, mostly linear data a plain linear model is often the best choice; it
        # costs little.
        per_class = n_classes if problem == ProblemType.MULTICLASS else 1
        out.append(
            PlannedCandidate(
                "linear",
                "linear model with default settings",
                default_linear(problem),
                0.05 + n_rows * n_cols * per_class * 1e-6,
            )
        )
    return out


# On small data the neural net comes after this many configurations (trees first).
NET_POSITION_SMALL = 5

# The portfolio's configurations by the estimator kind a user names (`choices.ESTIMATORS`);
# kinds outside that table (CatBoost, the neural net) are left out when a user names kinds.
PORTFOLIO_KINDS = {
    "lgbm": "lgbm",
    "lgbm_xt": "lgbm",
    "lgbm_large": "lgbm",
    "rf": "rf",
    "xt": "extra_tree",
    "xgboost": "xgboost",
}


class _Entry(NamedTuple):
    name: str
    description: str
    estimator: Any
    seconds: float
    class_weighted: Any


def _portfolio_entries(
    problem: ProblemType,
    n_rows: int,
    n_cols: int,
    n_classes: int,
    seed: int,
    n_jobs: int,
    n_folds: int,
) -> list[_Entry]:
    """The model kinds' portfolio (`portfolio.py`); a default LightGBM if it is missing."""
    try:
        from tabpilot.engine.training.portfolio import portfolio
    except ImportError:
        per_class = n_classes if problem == ProblemType.MULTICLASS else 1
        return [
            _Entry(
                "default_lgbm",
                "LightGBM with its default settings",
                default_lightgbm(problem, seed=seed, n_jobs=n_jobs),
                0.05 + n_rows * n_cols * 100 * per_class * 2e-8,
                None,
            )
        ]
    return [
        _Entry(e.name, e.description, e.estimator, float(e.seconds), e.class_weighted)
        for e in portfolio(
            problem,
            n_rows=n_rows,
            n_cols=n_cols,
            n_classes=n_classes,
            seed=seed,
            n_jobs=n_jobs,
            n_folds=n_folds,  # forests kept k-fold get smaller, to stay exportable together
        )
    ]


def candidate_output(cand: Candidate, X: pd.DataFrame, classes: list[Any] | None) -> np.ndarray:
    """The candidate's outputs on raw rows."""
    return output(cand.pipeline, X, classes)


def describe_kind(kind: str) -> str:
    return ESTIMATORS.get(kind, kind)
