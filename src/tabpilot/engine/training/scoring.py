"""Training the planned candidates on the training rows and scoring them: each gets its
selection outputs (out-of-fold on small data, validation rows on larger data), which choose
the model and the blend, and its outputs on the held-out rows, which are only reported.

On small data every model is bagged (`bagging.fold_average` over the split's folds, the same
for every model): its out-of-fold predictions come with the fit, and the average of its fold
models is what ships.
"""

from __future__ import annotations

import time
from typing import Any

from sklearn.base import clone
from sklearn.pipeline import Pipeline

from tabpilot.engine.training.candidates import Candidate, PlannedCandidate
from tabpilot.engine.training.holdout import Split
from tabpilot.engine.training.metrics import MetricSpec
from tabpilot.engine.training.outputs import native_output, score_output, split_output, spread


def bagged(estimator: Any, split: Split) -> Any:
    """`estimator` as an average of fold models over the split's folds."""
    from tabpilot.engine.training.bagging import fold_average

    return fold_average(estimator, folds=split.folds, n_repeats=split.repeats)


def with_time_limit(estimator: Any, seconds: float) -> Any:
    """A copy of `estimator` whose early-stopped models (`early_stop.py`, also inside a blend
    or a fold average) stop adding trees or epochs so that all their fits end within
    `seconds` together (each keeps its best iteration so far); others unchanged."""
    est = clone(estimator)
    params = est.get_params(deep=True)
    keys = [k for k in params if k == "max_seconds" or k.endswith("__max_seconds")]
    if keys:
        fits = sum(_fits_under(params, k) for k in keys)
        est.set_params(**{k: max(0.2, seconds / fits) for k in keys})
    return est


def _fits_under(params: dict[str, Any], key: str) -> int:
    """How many fits a `max_seconds` parameter governs: the folds of fold averages and the
    seeds of seed averages above it."""
    parts = key.split("__")[:-1]
    fits = 1
    for depth in range(len(parts) + 1):
        prefix = "__".join(parts[:depth])
        at = f"{prefix}__" if prefix else ""
        folds, n_folds = params.get(f"{at}folds"), params.get(f"{at}n_folds")
        seeds = params.get(f"{at}n_seeds")  # a seed average fits its model once a seed
        if isinstance(seeds, int):
            fits *= seeds
        if folds:
            fits *= len(folds)
        elif isinstance(n_folds, int):
            fits *= n_folds * int(params.get(f"{at}n_repeats") or 1)
    return fits


def fit_candidate(
    planned: PlannedCandidate,
    split: Split,
    *,
    metric: MetricSpec,
    classes: list[Any] | None,
    fitted: Any = None,
    fit_seconds: float | None = None,
    max_seconds: float | None = None,
) -> Candidate:
    """The planned model trained on the training rows (bagged on small data) and scored;
    `fitted`: a model already trained on those rows (the search's), used as it is;
    `max_seconds`: a time limit for the whole fit (shared by the folds), for the kinds that
    stop early."""
    started = time.perf_counter()
    estimator = planned.estimator
    if fitted is not None:
        model = fitted
    else:
        if split.bagged and planned.source != "baseline":
            estimator = bagged(estimator, split)
        limited = estimator if max_seconds is None else with_time_limit(estimator, max_seconds)
        model = clone(limited).fit(split.Xt_train, split.y_train)
    seconds = time.perf_counter() - started if fit_seconds is None else fit_seconds
    holdout = native_output(model, split.Xt_test, classes)
    if split.bagged:
        selection = _oof(model, split, classes)
    else:
        selection = native_output(model, split.Xt_valid, classes)
    preds, proba = split_output(holdout, classes)
    chosen_by = score_output(metric, split.y_selection, selection, classes)
    return Candidate(
        planned.name,
        planned.description,
        Pipeline([("pre", split.pre), ("model", model)]),
        score_output(metric, split.y_test, holdout, classes),
        seconds,
        preds,
        proba,
        cv_score=chosen_by if split.bagged else None,
        valid_score=None if split.bagged else chosen_by,
        source=planned.source,
        estimator=estimator,
        selection=selection,
        holdout=holdout,
    )


def _oof(model: Any, split: Split, classes: list[Any] | None) -> Any:
    """Out-of-fold outputs of a bagged model (the baseline's own outputs: it learns nothing
    from the rows but their frequencies or mean)."""
    oof = getattr(model, "oof_", None)
    if oof is None:
        return native_output(model, split.Xt_train, classes)
    if classes is None:
        return oof
    return spread(oof, model.classes_, len(classes))


def first_folds(model: Any) -> Any:
    """A view of a fitted model in which every fold average keeps only its first fold model
    (also inside blends and temperature scaling): k times cheaper to predict, for permutation
    importance, which predicts the held-out rows once per shuffled feature. The model itself
    is unchanged."""
    import copy

    from sklearn.ensemble import VotingClassifier, VotingRegressor

    from tabpilot.engine.training.bagging import FoldAverageClassifier, FoldAverageRegressor
    from tabpilot.engine.training.calibrate import TemperatureScaled

    if isinstance(model, FoldAverageClassifier | FoldAverageRegressor):
        return type(model).from_fitted(
            model.estimators_[:1], classes=getattr(model, "classes_", None)
        )
    if isinstance(model, VotingClassifier | VotingRegressor):
        view = copy.copy(model)
        view.estimators_ = [first_folds(m) for m in model.estimators_]
        return view
    if isinstance(model, TemperatureScaled) and hasattr(model, "estimator_"):
        view = copy.copy(model)
        view.estimator_ = first_folds(model.estimator_)
        return view
    return model
