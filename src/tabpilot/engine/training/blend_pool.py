"""The blend's pool and the blend candidate.

Every model fitted while comparing candidates joins the pool (an average of model kinds
joins as its members, one by one), and on larger data also the search's best model of each
kind, as the search trained it. For log loss each member is temperature-scaled first
(`calibrate.py`). `blend.py` then chooses the weights; the blend becomes a candidate that is
fitted as one model only if it is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from tabpilot.engine.choices import ESTIMATORS
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.blend import BlendMember, select_blend
from tabpilot.engine.training.calibrate import fit_temperature, scale, with_temperature
from tabpilot.engine.training.candidates import Candidate
from tabpilot.engine.training.clock import Clock, refit_cost
from tabpilot.engine.training.estimators import build_ensemble
from tabpilot.engine.training.metrics import MetricSpec, score
from tabpilot.engine.training.outputs import (
    is_voting,
    member_outputs,
    member_predictor,
    native_output,
    output,
    score_output,
    split_output,
)
from tabpilot.engine.training.search import SearchOutcome
from tabpilot.engine.wording import about_seconds

# Temperatures are fitted on at least this many out-of-fold or held-out rows: on fewer, a
# near-separable problem's temperature rests on one or two uncertain rows.
MIN_CALIBRATION_ROWS = 500


def candidate_members(
    name: str,
    description: str,
    est: Any,
    pipe: Pipeline,
    holdout: np.ndarray,
    X_test: pd.DataFrame,
    classes: list[Any] | None,
    fit_seconds: float,
    oof: tuple[np.ndarray, dict[str, np.ndarray]] | None,
) -> list[BlendMember]:
    """The models a fitted candidate adds to the blend's pool: itself (`holdout` being its
    outputs on `X_test`), or for an average of model kinds each of its members (so the blend
    can weigh them one by one)."""
    model = pipe.named_steps["model"]
    if not is_voting(model):
        return [
            BlendMember(
                key=name,
                label=description,
                estimator=est,
                selection=oof[0] if oof is not None else holdout,
                holdout=holdout,
                fit_seconds=fit_seconds,
                predict=lambda X: output(pipe, X, classes),
            )
        ]
    outputs = member_outputs(pipe, X_test, classes)
    unfitted = dict(model.estimators)
    return [
        BlendMember(
            key=f"{name}_{kind}",
            label=f"{ESTIMATORS.get(kind, kind)} (searched settings)",
            estimator=unfitted[kind],
            selection=oof[1][kind] if oof is not None else member_holdout,
            holdout=member_holdout,
            fit_seconds=fit_seconds / len(outputs),
            predict=member_predictor(pipe, kind, classes),
        )
        for kind, member_holdout in outputs.items()
    ]


def searched_members(
    search: SearchOutcome,
    X_test: pd.DataFrame,
    pre: Any,
    classes: list[Any] | None,
    *,
    skip: str | None,
    build: Callable[[str], Any],
) -> list[BlendMember]:
    """Blend members from the search's best model of each kind, as the search trained them
    (no extra fit); `skip` is the kind already in the pool as the search's winner."""
    out = []
    Xt_test = pre.transform(X_test)
    for kind, model in search.fitted.items():
        if kind == skip or kind not in search.best_configs:
            continue

        def predict(X: pd.DataFrame, model: Any = model) -> np.ndarray:
            return native_output(model, pre.transform(X), classes)

        holdout = native_output(model, Xt_test, classes)
        out.append(
            BlendMember(
                key=f"searched_{kind}",
                label=f"{ESTIMATORS[kind]} (best of its kind in the search)",
                estimator=build(kind),
                selection=holdout,
                holdout=holdout,
                fit_seconds=search.best_trial_seconds.get(kind, 1.0),
                predict=predict,
            )
        )
    return out


def calibrated(member: BlendMember, y_selection: np.ndarray) -> BlendMember:
    """The member with temperature-scaled probabilities, if scaling lowers its log loss on
    the selection predictions (see `calibrate.py`); else the member itself."""
    temperature = fit_temperature(member.selection, y_selection)
    if temperature is None:
        return member

    def predict(X: pd.DataFrame) -> np.ndarray:
        return scale(member.predict(X), temperature)

    return BlendMember(
        key=member.key,
        label=f"{member.label}, calibrated (temperature {temperature:.2f})",
        estimator=with_temperature(member.estimator, temperature),
        selection=scale(member.selection, temperature),
        holdout=scale(member.holdout, temperature),
        fit_seconds=member.fit_seconds,
        predict=predict,
        temperature=temperature,
    )


def blend_candidate(
    members: list[BlendMember],
    pre: Any,
    problem: ProblemType,
    metric: MetricSpec,
    *,
    y_selection: np.ndarray,
    y_test: np.ndarray,
    classes: list[Any] | None,
    by_cv: bool,
    clock: Clock,
    test_size: float,
    decisions: list[str],
) -> Candidate | None:
    """A weighted blend of the fitted candidates (and of an average's members), chosen on
    out-of-fold predictions (or, on larger data, on the held-out rows), as a candidate;
    None if no blend beats its best member or its refit on all rows would not fit (then
    `decisions` says so)."""
    calibrate = (
        classes is not None
        and metric.name == "log_loss"
        and len(y_selection) >= MIN_CALIBRATION_ROWS
    )
    if calibrate:
        # Log loss rewards honest probabilities: each model gets its temperature first,
        # and a single calibrated model may then be the best "blend".
        members = [calibrated(m, y_selection) for m in members]
    found = select_blend(
        members,
        lambda values: score_output(metric, y_selection, values, classes),
        greater_is_better=metric.greater_is_better,
        allow_single=calibrate,
    )
    if found is None or (len(found.members) == 1 and found.members[0].temperature is None):
        return None
    cost = refit_cost(found.fit_seconds, test_size)
    if not clock.blend_refit_fits(cost):
        decisions.append(
            f"A {found.describe()} was not compared: it must be refitted as one model "
            f"({about_seconds(cost)}), which did not fit in the time left."
        )
        return None
    preds, proba = split_output(found.holdout(), classes)
    if len(found.members) == 1:
        ensemble = clone(found.members[0].estimator)
    else:
        ensemble = build_ensemble(
            [(m.key, clone(m.estimator)) for m in found.members],
            problem,
            weights=found.weights,
        )
    description = found.describe() + ("" if by_cv else " (weights chosen on the held-out rows)")
    return Candidate(
        "blend",
        description,
        Pipeline([("pre", clone(pre)), ("model", ensemble)]),
        score(metric, y_test, preds, proba),
        found.fit_seconds,
        preds,
        proba,
        found.selection_score if by_cv else None,
        blend=found,
    )
