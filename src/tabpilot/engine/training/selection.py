"""Choosing among the candidates: cross-validation folds on small data, out-of-fold outputs,
and the winner (with the decisions that explain it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from tabpilot.engine.training.metrics import MetricSpec
from tabpilot.engine.training.outputs import member_outputs, output

if TYPE_CHECKING:
    from tabpilot.engine.training.candidates import Candidate

# Up to this many training rows, candidates are chosen by CV_FOLDS-fold cross-validation on
# the training split instead of on the (then small and noisy) held-out split.
CV_SELECTION_ROWS, CV_FOLDS = 5_000, 5

Folds = list[tuple[np.ndarray, np.ndarray]]


def selection_folds(y_train: np.ndarray, classes: list[Any] | None, *, seed: int) -> Folds | None:
    """Folds for choosing among candidates by cross-validation on small data, where
    the held-out rows are too few to tell good from lucky; None on larger data."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(y_train) > CV_SELECTION_ROWS:
        return None
    if classes is None:
        splitter: Any = KFold(CV_FOLDS, shuffle=True, random_state=seed)
    else:
        smallest = int(np.bincount(y_train).min())
        if smallest < 2:
            return None
        splitter = StratifiedKFold(min(CV_FOLDS, smallest), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y_train)), y_train))


def out_of_fold(
    pre: Any,
    est: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: Folds,
    classes: list[Any] | None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Out-of-fold outputs (probabilities over all classes, or values) of a fresh copy of
    `est` per fold; for an ensemble, also each member's, by member name."""
    width = () if classes is None else (len(classes),)
    oof = np.zeros((len(y), *width))
    oof_members: dict[str, np.ndarray] = {}
    for train_rows, valid_rows in folds:
        pipe = Pipeline([("pre", clone(pre)), ("model", clone(est))])
        pipe.fit(X.iloc[train_rows], y[train_rows])
        X_valid = X.iloc[valid_rows]
        oof[valid_rows] = output(pipe, X_valid, classes)
        for name, values in member_outputs(pipe, X_valid, classes).items():
            oof_members.setdefault(name, np.zeros((len(y), *width)))[valid_rows] = values
    return oof, oof_members


def choose_winner(scored: list[Candidate], metric: MetricSpec, decisions: list[str]) -> Candidate:
    """The candidate with the best selection score (the earlier one on a tie); `decisions`
    gets why, when it is not the search's winner or is the constant baseline."""
    by_name = {c.name: c for c in scored}
    best = scored[0]
    for cand in scored[1:]:
        if metric.better(cand.selection_score, best.selection_score):
            best = cand
    where = (
        "in 5-fold cross-validation on the training rows"
        if best.cv_score is not None
        else "on the held-out rows"
    )
    winner = by_name.get("search")
    if winner is None:
        decisions.append("The search found no model in time; a safe choice is used.")
    elif best is not winner:
        decisions.append(
            f"The search's winner ({winner.description}) scored "
            f"{winner.selection_score:.4g} {metric.label} {where}, worse than "
            f"{best.description} ({best.selection_score:.4g}); the latter is used."
        )
    if best.name == "baseline":
        decisions.append(
            "No model beat the constant baseline: the features may not predict the target."
        )
    return best
