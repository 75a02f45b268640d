"""Fitting and scoring the planned candidates on the training split: each is scored on the
held-out rows (and by cross-validation on small data) and adds its models to the blend's
pool; optional ones are skipped, with a decision saying so, when their fit would not end in
time."""

from __future__ import annotations

import time
from typing import Any

from sklearn.base import clone
from sklearn.pipeline import Pipeline

from tabpilot.engine.training.blend import BlendMember
from tabpilot.engine.training.blend_pool import candidate_members
from tabpilot.engine.training.candidates import Candidate, PlannedCandidate
from tabpilot.engine.training.clock import Clock
from tabpilot.engine.training.holdout import Split
from tabpilot.engine.training.metrics import MetricSpec, score
from tabpilot.engine.training.outputs import output, score_output, split_output
from tabpilot.engine.training.search import SearchOutcome
from tabpilot.engine.training.selection import Folds, out_of_fold
from tabpilot.engine.wording import about_seconds

# Compared whatever the time: the search's winner (already fitted) and the baseline (free).
ALWAYS_COMPARED = ("search", "baseline")


def compare_candidates(
    planned: list[PlannedCandidate],
    split: Split,
    search: SearchOutcome,
    *,
    folds: Folds | None,
    metric: MetricSpec,
    classes: list[Any] | None,
    clock: Clock,
    decisions: list[str],
) -> tuple[list[Candidate], list[BlendMember]]:
    """The compared candidates in the planned order, and every model fitted on the way (the
    blend's pool; the baseline never joins it)."""
    scored: list[Candidate] = []
    members: list[BlendMember] = []
    proxy = 1.0  # seconds; replaced by the first measured fit
    for cand in planned:
        expected = proxy if cand.cost is None else cand.cost
        if folds is not None:
            expected *= 1 + len(folds)
        if clock.too_late_for(expected) and cand.name not in ALWAYS_COMPARED:
            description = cand.description
            decisions.append(
                f"{description[:1].upper()}{description[1:]} was not compared: its fit "
                f"({about_seconds(expected)}) did not fit in the time left."
            )
            continue
        pipe, fit_seconds = _fit(cand, split, search)
        if cand.name == "search":
            proxy = fit_seconds
        holdout = output(pipe, split.X_test, classes)
        preds, proba = split_output(holdout, classes)
        cv_score = None
        oof = None
        if folds is not None:
            oof = out_of_fold(
                split.pre, cand.estimator, split.X_train, split.y_train, folds, classes
            )
            cv_score = score_output(metric, split.y_train, oof[0], classes)
        scored.append(
            Candidate(
                cand.name,
                cand.description,
                pipe,
                score(metric, split.y_test, preds, proba),
                fit_seconds,
                preds,
                proba,
                cv_score,
            )
        )
        if cand.name != "baseline":
            members.extend(
                candidate_members(
                    cand.name,
                    cand.description,
                    cand.estimator,
                    pipe,
                    holdout,
                    split.X_test,
                    classes,
                    fit_seconds,
                    oof,
                )
            )
    return scored, members


def _fit(cand: PlannedCandidate, split: Split, search: SearchOutcome) -> tuple[Pipeline, float]:
    """The candidate fitted on the training split, and the seconds its fit took."""
    started = time.perf_counter()
    reuse = cand.name == "search" and search.best_model is not None
    if reuse:
        # The search already trained this model on the training split: reuse it rather
        # than pay for the fit again (a refit can cost more than the search).
        pipe = Pipeline([("pre", split.pre), ("model", search.best_model)])
    else:
        pipe = Pipeline([("pre", clone(split.pre)), ("model", cand.estimator)])
        pipe.fit(split.X_train, split.y_train)
    fit_seconds = time.perf_counter() - started
    if reuse:
        fit_seconds = cand.cost or fit_seconds
    return pipe, fit_seconds
