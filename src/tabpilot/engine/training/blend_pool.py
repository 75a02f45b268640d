"""The blend's pool and the blend candidate.

Every trained candidate (portfolio and search, never the constant baseline) joins the pool
with its selection outputs (out-of-fold or validation rows) and its held-out outputs. For
log loss each member is temperature-scaled first (`calibrate.py`) when there are enough
selection rows. `blend.py` chooses the weights; the blend is assembled from the members as
they were trained, so it always exists, and is refitted on all rows only if it is chosen and
the refit fits in the time reserved for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.blend import Blend, BlendMember, select_blend
from tabpilot.engine.training.calibrate import (
    fit_temperature,
    fitted_with_temperature,
    scale,
    with_temperature,
)
from tabpilot.engine.training.candidates import Candidate
from tabpilot.engine.training.estimators import build_ensemble, fitted_ensemble
from tabpilot.engine.training.metrics import MetricSpec
from tabpilot.engine.training.outputs import native_output, score_output, split_output

# Temperatures are fitted on at least this many out-of-fold or validation rows: on fewer, a
# near-separable problem's temperature rests on one or two uncertain rows.
MIN_CALIBRATION_ROWS = 500
# At most this many different models in a blend (bagged: each is k fold models): predicting,
# permutation importance, the ONNX export and its memory grow with them, the score barely
# (bike_sharing_hourly: a 6-member blend's export took the process from 0.46 to 1.04 GB).
MAX_MEMBERS, MAX_BAGGED_MEMBERS = 4, 3


def pool_members(scored: list[Candidate], classes: list[Any] | None) -> list[BlendMember]:
    """Blend members of the trained candidates (not the baseline), in the order trained."""
    out = []
    for cand in scored:
        if cand.source == "baseline" or cand.selection is None or cand.holdout is None:
            continue
        model = cand.model

        def predict(Xt: Any, model: Any = model) -> np.ndarray:
            return native_output(model, Xt, classes)

        out.append(
            BlendMember(
                key=cand.name,
                label=cand.description,
                estimator=cand.estimator,
                selection=cand.selection,
                holdout=cand.holdout,
                fit_seconds=cand.fit_seconds,
                predict=predict,
                fitted=model,
                size=cand.size,
            )
        )
    return out


def calibrated(member: BlendMember, y_selection: np.ndarray) -> BlendMember:
    """The member with temperature-scaled probabilities, if scaling lowers its log loss on
    the selection predictions (see `calibrate.py`); else the member itself."""
    temperature = fit_temperature(member.selection, y_selection)
    if temperature is None:
        return member

    def predict(X: Any) -> np.ndarray:
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
        size=member.size,
        fitted=(
            None if member.fitted is None else fitted_with_temperature(member.fitted, temperature)
        ),
    )


def greedy_blend(
    members: list[BlendMember],
    metric: MetricSpec,
    *,
    y_selection: np.ndarray,
    classes: list[Any] | None,
    by_cv: bool,
    max_size: int | None,
    allow_single: bool,
) -> Blend | None:
    """Greedy ensemble selection over the pool's members, scored by `metric` on the selection
    outputs, within the member count (fewer when bagged: each is k fold models) and the tree
    size a blend may have (`sizes.blend_size_limit`)."""
    return select_blend(
        members,
        lambda values: score_output(metric, y_selection, values, classes),
        greater_is_better=metric.greater_is_better,
        allow_single=allow_single,
        max_members=MAX_BAGGED_MEMBERS if by_cv else MAX_MEMBERS,
        max_size=max_size,
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
    max_size: int | None = None,
) -> Candidate | None:
    """A weighted blend of the pool, its weights (and temperatures) chosen on the selection
    outputs, as a candidate fitted from its members; None if no blend beats its best member
    (for log loss, a single calibrated member counts as a blend). `max_size`: the most tree
    size its members may have together (`sizes.blend_size_limit`)."""
    calibrate = (
        classes is not None
        and metric.name == "log_loss"
        and len(y_selection) >= MIN_CALIBRATION_ROWS
    )
    if calibrate:
        # Log loss rewards honest probabilities: each model gets its temperature first,
        # and a single calibrated model may then be the best "blend".
        members = [calibrated(m, y_selection) for m in members]
    found = greedy_blend(
        members,
        metric,
        y_selection=y_selection,
        classes=classes,
        by_cv=by_cv,
        max_size=max_size,
        allow_single=calibrate,
    )
    if found is None or (len(found.members) == 1 and found.members[0].temperature is None):
        return None
    holdout = found.holdout()
    preds, proba = split_output(holdout, classes)
    single = len(found.members) == 1
    if single:
        unfitted = clone(found.members[0].estimator)
        model = found.members[0].fitted
    else:
        unfitted = build_ensemble(
            [(m.key, clone(m.estimator)) for m in found.members], problem, weights=found.weights
        )
        model = fitted_ensemble(
            [(m.key, m.estimator, m.fitted) for m in found.members],
            problem,
            weights=found.weights,
            n_classes=0 if classes is None else len(classes),
        )
    return Candidate(
        "blend",
        found.describe(),
        Pipeline([("pre", pre), ("model", model)]),
        score_output(metric, y_test, holdout, classes),
        found.fit_seconds,
        preds,
        proba,
        cv_score=found.selection_score if by_cv else None,
        valid_score=None if by_cv else found.selection_score,
        blend=found,
        source="blend",
        estimator=unfitted,
        holdout=holdout,
        size=sum(m.size for m in found.members),
    )
