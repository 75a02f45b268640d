"""The FLAML search: the only module in Tabpilot that imports FLAML.

FLAML is imported inside the functions, so importing the engine stays cheap.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from tabpilot.engine.choices import ESTIMATORS
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.metrics import MetricSpec
from tabpilot.engine.training.sizes import LIGHTGBM_HISTOGRAM_MB


@dataclass
class SearchOutcome:
    """What the search found: the best configuration (and score, trials, seconds) of each
    estimator kind, and the overall winner as FLAML trained it."""

    higher_is_better: bool
    best_estimator: str | None
    best_model: Any | None  # the winner as FLAML trained it (on the training split)
    best_configs: dict[str, dict[str, Any]]
    best_scores: dict[str, float]
    trials: dict[str, int]
    seconds: dict[str, float]
    best_trial_seconds: dict[str, float]
    history: list[dict[str, Any]]
    # The best model of each kind as the search trained it, when asked to keep them.
    fitted: dict[str, Any] = field(default_factory=dict)


def _scaled(estimator_class: Any) -> Callable[..., Pipeline]:
    """Wrap a linear estimator class so it standardises its inputs first (trees need not)."""

    def factory(**params: Any) -> Pipeline:
        return make_pipeline(StandardScaler(), estimator_class(**params))

    return factory


def learner_class(name: str, problem: ProblemType) -> Any:
    """FLAML's learner class for an estimator kind (see `choices.ESTIMATORS`); the linear
    kind standardises its inputs."""
    from flaml.automl.model import (
        ElasticNetEstimator,
        ExtraTreesEstimator,
        LGBMEstimator,
        LRL1Classifier,
        RandomForestEstimator,
        XGBoostSklearnEstimator,
    )

    if name == "linear":
        base = LRL1Classifier if problem.is_classification else ElasticNetEstimator

        class ScaledLinear(base):  # type: ignore[misc, valid-type]
            """FLAML's linear learner on standardised inputs."""

            def __init__(self, task: str = "binary", **config: Any) -> None:
                super().__init__(task, **config)
                self.estimator_class = _scaled(self.estimator_class)

        return ScaledLinear
    if name == "lgbm":

        class BoundedLGBM(LGBMEstimator):  # type: ignore[misc, valid-type]
            """FLAML's LightGBM learner with its histogram cache bounded (`sizes.py`)."""

            def __init__(self, task: str = "binary", **config: Any) -> None:
                super().__init__(task, **config)
                self.params.setdefault("histogram_pool_size", LIGHTGBM_HISTOGRAM_MB)

        return BoundedLGBM
    return {
        "xgboost": XGBoostSklearnEstimator,
        "rf": RandomForestEstimator,
        "extra_tree": ExtraTreesEstimator,
    }[name]


def _fitted_winner(automl: Any, problem: ProblemType, seed: int) -> Any | None:
    """FLAML's trained winner, made ready for ONNX export; None if FLAML kept none."""
    wrapper = getattr(automl, "model", None)
    model = getattr(wrapper, "model", None)
    if model is None:
        return None
    if automl.best_estimator == "xgboost":
        # XGBoost 2 estimated base_score itself; the ONNX converter reads the parameter.
        config = json.loads(model.get_booster().save_config())
        base = config["learner"]["learner_model_param"]["base_score"]
        model.set_params(base_score=float(str(base).strip("[]").split(",")[0]))
    return model


class _TrialLog:
    """Per-kind trial counts, seconds, best losses (and models) and the score history,
    gathered one trial at a time."""

    def __init__(self, metric: MetricSpec, keep_models: bool) -> None:
        self.metric = metric
        self.keep_models = keep_models
        self.trials: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.best_trial_seconds: dict[str, float] = {}
        self.best_loss: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.fitted: dict[str, Any] = {}

    def to_score(self, loss: float) -> float:
        return 1.0 - loss if self.metric.greater_is_better else loss

    def add(self, search_state: Any, estimator: str, at: float, best: float | None) -> None:
        self.trials[estimator] = self.trials.get(estimator, 0) + 1
        self.seconds[estimator] = self.seconds.get(estimator, 0.0) + float(search_state.trial_time)
        loss = float(search_state.val_loss)
        if loss <= self.best_loss.get(estimator, float("inf")):
            self.best_loss[estimator] = loss
            self.best_trial_seconds[estimator] = float(search_state.trial_time)
            model = getattr(search_state.trained_estimator, "model", None)
            if self.keep_models and model is not None:
                # Held here because FLAML discards a kind's model once another kind
                # leads (model_history=True only keeps it until then).
                self.fitted[estimator] = model
        self.history.append(
            {
                "at": round(at, 3),
                "estimator": estimator,
                "score": self.to_score(float(search_state.val_loss)),
                "best_score": best,
            }
        )


def run_search(
    X: np.ndarray,
    y: np.ndarray,
    *,
    problem: ProblemType,
    metric: MetricSpec,
    estimators: list[str],
    time_budget: float,
    seed: int,
    n_jobs: int,
    on_trial: Callable[..., None],
    keep_models: bool = False,
) -> SearchOutcome:
    """Run FLAML's search and collect the best configuration of each estimator, and with
    `keep_models` the best trained model of each (more memory: one model per kind)."""
    from flaml import AutoML

    log = _TrialLog(metric, keep_models)

    class _Observed(AutoML):  # type: ignore[misc]
        # FLAML has no per-trial callback; _log_trial is called once per trial (log_type="all").
        def _log_trial(self, search_state: Any, estimator: str) -> None:
            best = log.to_score(float(self.best_loss)) if self.best_loss < float("inf") else None
            log.add(search_state, estimator, float(self._state.time_from_start), best)
            n_trials = sum(log.trials.values())
            on_trial(
                trials=n_trials,
                estimator=estimator,
                best_score=best,
                best_estimator=self._best_estimator,
                message=f"trial {n_trials}: {ESTIMATORS[estimator]}",
            )
            super()._log_trial(search_state, estimator)

    automl = _Observed()
    for name in ("linear", "lgbm"):  # ours: linear standardises, LightGBM's memory bounded
        if name in estimators:
            automl.add_learner(name, learner_class(name, problem))
    flaml_logger = logging.getLogger("flaml.automl.logger")
    flaml_logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(
            X,
            y,
            task=str(problem),
            metric=metric.flaml,
            estimator_list=estimators,
            time_budget=time_budget,
            seed=seed,
            n_jobs=n_jobs,
            verbose=0,
            log_type="all",
            retrain_full=False,
            keep_search_state=False,
            model_history=keep_models,
        )
    best_configs = dict(automl.best_config_per_estimator or {})
    best_configs = {k: v for k, v in best_configs.items() if v is not None}
    losses = automl.best_loss_per_estimator or {}
    return SearchOutcome(
        higher_is_better=metric.greater_is_better,
        best_estimator=automl.best_estimator if best_configs else None,
        best_model=_fitted_winner(automl, problem, seed) if best_configs else None,
        best_configs=best_configs,
        best_scores={
            k: log.to_score(float(v))
            for k, v in losses.items()
            if v is not None and v < float("inf")
        },
        trials=log.trials,
        seconds=log.seconds,
        best_trial_seconds=log.best_trial_seconds,
        history=log.history,
        fitted=log.fitted,
    )
