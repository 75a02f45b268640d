"""Estimator builders: the searched configurations as fresh native models, the plain defaults,
the constant baseline and averages of several models. Nothing is fitted here."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.search import SearchOutcome, learner_class


def build_estimator(
    name: str,
    config: dict[str, Any],
    *,
    problem: ProblemType,
    seed: int,
    n_jobs: int,
    y_train: np.ndarray,
) -> Any:
    """A fresh native estimator (LGBMClassifier, XGBRegressor, ...) with a searched config."""
    wrapper = learner_class(name, problem)(task=str(problem), n_jobs=n_jobs, **config)
    est = wrapper.estimator_class(**wrapper.params)
    if name in ("lgbm", "xgboost", "rf", "extra_tree"):
        est.set_params(random_state=seed)
    if name == "xgboost":
        # XGBoost 2 estimates base_score itself; the ONNX converter needs it stated.
        base = float(np.mean(y_train)) if problem == ProblemType.REGRESSION else 0.5
        est.set_params(base_score=base)
    return est


def searched_estimator(
    search: SearchOutcome,
    kind: str,
    *,
    problem: ProblemType,
    seed: int,
    n_jobs: int,
    y_train: np.ndarray,
) -> Any:
    """A fresh estimator of `kind` with the search's best configuration for it."""
    return build_estimator(
        kind, search.best_configs[kind], problem=problem, seed=seed, n_jobs=n_jobs, y_train=y_train
    )


def build_ensemble(
    members: list[tuple[str, Any]], problem: ProblemType, *, weights: list[int] | None = None
) -> Any:
    """An average of the members' probabilities (or predictions), equal-weight by default.

    Averaging different model families is the cheapest reliable gain over a single
    winner; scikit-learn's voting estimators export to ONNX like their members.
    """
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    # skl2onnx reads the weights as an array (it calls .sum() on them).
    w = None if weights is None else np.asarray(weights, dtype="float64")
    if problem == ProblemType.REGRESSION:
        return VotingRegressor(members, weights=w)
    return VotingClassifier(members, voting="soft", weights=w, flatten_transform=False)


def default_linear(problem: ProblemType) -> Pipeline:
    """Standardised logistic or ridge regression with library defaults: fast and stable."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if problem == ProblemType.REGRESSION:
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))


def default_lightgbm(problem: ProblemType, *, seed: int, n_jobs: int) -> Any:
    """LightGBM with its library defaults."""
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMRegressor if problem == ProblemType.REGRESSION else LGBMClassifier
    return cls(random_state=seed, n_jobs=n_jobs, verbose=-1)


def constant_baseline(problem: ProblemType, *, n_jobs: int) -> Any:
    """The trivial model: class frequencies or the mean, whatever the features say.

    A LightGBM that may not split predicts exactly the prior (or the mean), and exports to
    ONNX like any other model, so the baseline can be shipped if nothing beats it.
    """
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMRegressor if problem == ProblemType.REGRESSION else LGBMClassifier
    return cls(n_estimators=1, min_child_samples=10**9, n_jobs=n_jobs, verbose=-1)


def fitted_ensemble(
    members: list[tuple[str, Any, Any]],
    problem: ProblemType,
    *,
    weights: list[int],
    n_classes: int,
) -> Any:
    """`build_ensemble` of (name, unfitted, fitted) members, made fitted from the members as
    they were trained (on label codes 0..n_classes-1), without training again."""
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils import Bunch

    ensemble = build_ensemble([(n, u) for n, u, _ in members], problem, weights=weights)
    ensemble.estimators_ = [f for _, _, f in members]
    ensemble.named_estimators_ = Bunch(**{n: f for n, _, f in members})
    if problem != ProblemType.REGRESSION:
        ensemble.le_ = LabelEncoder().fit(np.arange(n_classes))
        ensemble.classes_ = ensemble.le_.classes_
    return ensemble
