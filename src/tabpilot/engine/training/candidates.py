"""The candidates: which models are compared with the search's winner, in which order, and
what a compared candidate carries."""

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
    build_ensemble,
    constant_baseline,
    default_lightgbm,
    default_linear,
    searched_estimator,
)
from tabpilot.engine.training.outputs import output
from tabpilot.engine.training.search import SearchOutcome

# The best configuration of up to this many estimator kinds is averaged into an ensemble.
ENSEMBLE_SIZE = 3
# Members must score within 5% of the best member's validation loss (for scores where
# higher is better, within half the best's distance from 1).
ENSEMBLE_TOLERANCE = 0.05


@dataclass
class Candidate:
    """One model compared on the held-out rows."""

    name: str
    description: str
    pipeline: Pipeline
    holdout_score: float
    fit_seconds: float
    predictions: np.ndarray
    proba: np.ndarray | None
    cv_score: float | None = None  # on the training split, when candidates are chosen by CV
    # A blend is not fitted as one model until it is chosen: `pipeline` is then unfitted and
    # predictions come from its members, each fitted on the training split.
    blend: Blend | None = None

    @property
    def selection_score(self) -> float:
        return self.holdout_score if self.cv_score is None else self.cv_score


class PlannedCandidate(NamedTuple):
    """A model to compare, not fitted yet."""

    name: str  # "search", "default_lgbm", "default_linear", "ensemble" or "baseline"
    description: str
    estimator: Any
    cost: float | None  # expected seconds to fit; None: about as long as the search's winner


def plan_candidates(
    search: SearchOutcome,
    problem: ProblemType,
    y_train: np.ndarray,
    pre_shape: tuple[int, int],
    *,
    estimators: tuple[str, ...] | None,
    seed: int,
    n_jobs: int,
) -> list[PlannedCandidate]:
    """Models to compare on the held-out rows, in order of priority, with the expected
    seconds to fit each; the constant baseline comes last."""

    def searched(name: str) -> Any:
        return searched_estimator(
            search, name, problem=problem, seed=seed, n_jobs=n_jobs, y_train=y_train
        )

    out: list[PlannedCandidate] = []
    if search.best_estimator is not None:
        name = search.best_estimator
        out.append(
            PlannedCandidate(
                "search",
                f"{ESTIMATORS[name]} found by the search",
                searched(name),
                search.best_trial_seconds.get(name),
            )
        )
    # Rough costs of the defaults: 100 trees (per class) over the training cells.
    n_rows, n_cols = pre_shape
    per_class = max(1, len(np.unique(y_train))) if problem == ProblemType.MULTICLASS else 1
    out.append(
        PlannedCandidate(
            "default_lgbm",
            "LightGBM with its default settings",
            default_lightgbm(problem, seed=seed, n_jobs=n_jobs),
            0.05 + n_rows * n_cols * 100 * per_class * 2e-8,
        )
    )
    wanted = estimators or tuple(ESTIMATORS)
    if "linear" in wanted:
        # FLAML rates linear models as costly and rarely tunes one; on small, mostly
        # linear data a plain one is often the best choice, so one is always compared.
        out.append(
            PlannedCandidate(
                "default_linear",
                "linear model with default settings",
                default_linear(problem),
                0.02 + n_rows * n_cols * per_class * 1e-6,
            )
        )
    ensemble = _ensemble_of_best_kinds(search, problem, searched)
    if ensemble is not None:
        out.append(ensemble)
    label = (
        "constant baseline (predicts the class frequencies)"
        if problem.is_classification
        else "constant baseline (predicts the mean)"
    )
    out.append(PlannedCandidate("baseline", label, constant_baseline(problem, n_jobs=n_jobs), 0.0))
    return out


def _ensemble_of_best_kinds(
    search: SearchOutcome, problem: ProblemType, searched: Any
) -> PlannedCandidate | None:
    """An equal-weight average of the best configurations of the top ENSEMBLE_SIZE kinds,
    if at least two score close enough to the best."""
    ranked = sorted(
        (n for n in search.best_configs if n in search.best_scores),
        key=lambda n: search.best_scores[n],
        reverse=search.higher_is_better,
    )[:ENSEMBLE_SIZE]
    if ranked:
        # A member much worse than the best drags an equal-weight average down.
        best = search.best_scores[ranked[0]]
        ranked = [n for n in ranked if _close_enough(search.best_scores[n], best, search)]
    if len(ranked) < 2:
        return None
    members = [(name, searched(name)) for name in ranked]
    labels = " + ".join(ESTIMATORS[n] for n in ranked)
    costs = [search.best_trial_seconds.get(n) for n in ranked]
    cost = None if None in costs else sum(c for c in costs if c is not None)
    return PlannedCandidate(
        "ensemble", f"average of {labels}", build_ensemble(members, problem), cost
    )


def _close_enough(value: float, best: float, search: SearchOutcome) -> bool:
    """Within ENSEMBLE_TOLERANCE of the best validation score (relative, or absolute for
    bounded scores such as AUC where "relative" means little)."""
    if search.higher_is_better:
        return value >= best - ENSEMBLE_TOLERANCE * max(1.0 - best, 0.01) * 10
    return value <= best * (1 + ENSEMBLE_TOLERANCE)


def candidate_output(cand: Candidate, X: pd.DataFrame, classes: list[Any] | None) -> np.ndarray:
    """The candidate's outputs on raw rows (a blend's from its members)."""
    if cand.blend is not None:
        return cand.blend.predict(X)
    return output(cand.pipeline, X, classes)
