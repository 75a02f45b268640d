"""Early stopping inside `fit(X, y)`: boosted trees and neural nets that stop adding trees (or
epochs) when rows they do not learn from stop improving, and keep their best iteration.

`EarlyStoppedClassifier` / `EarlyStoppedRegressor` wrap LightGBM, XGBoost, CatBoost or a
scikit-learn MLP; also a random forest or extra trees, which have nothing to stop on but grow
their trees in batches until `max_seconds` (and train on every row). `fit(X, y)` carves a
validation slice out of `X` itself (stratified for classes), so `clone(est).fit(X, y)` alone
is enough anywhere (a refit, a cross-validation fold, a fold average) and the stopping never
sees a row outside `X`. A caller that holds rows of its
own for this (a fold average's held-out fold) passes `X_valid`/`y_valid` instead.

The wrapped model is fitted on label codes 0..k'-1 of the classes present in `y` (`classes_`
maps them back), so a fold missing a class still trains. Its ONNX converter (in
`onnx_converters.py`) embeds the wrapped model's graph at its best iteration.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier

from tabpilot.engine.training.outputs import spread

_FLOOR = 1e-12


def _slice_rows(y: np.ndarray, fraction: float, seed: int, stratify: bool) -> np.ndarray:
    """Indices of the validation slice: `fraction` of each class (a class with one row stays in
    the training part), or of all rows for regression; at least one row."""
    rng = np.random.default_rng(seed)
    if not stratify:
        n = max(1, round(len(y) * fraction))
        return np.sort(rng.permutation(len(y))[:n])
    out = []
    for code in np.unique(y):
        rows = np.flatnonzero(y == code)
        take = int(len(rows) * fraction) if len(rows) > 1 else 0
        if take == 0 and len(rows) > 2:
            take = 1
        out.append(rng.permutation(rows)[:take])
    picked = np.concatenate(out) if out else np.zeros(0, dtype=int)
    if len(picked) == 0:
        picked = rng.permutation(len(y))[:1]
    return np.sort(picked)


def _balanced_weights(y: np.ndarray) -> np.ndarray:
    """Sample weights that give every class the same total weight (mean weight 1)."""
    counts = np.bincount(y)
    per_class = len(y) / (len(counts) * np.maximum(counts, 1))
    return per_class[y]


def _is_forest(estimator: Any) -> bool:
    return type(estimator).__name__.startswith(("RandomForest", "ExtraTrees"))


def _input_dtype(estimator: Any) -> str:
    """float32 for a neural net (its epochs take half the time, and the ONNX graph computes in
    float32 too); float64 for trees, whose split thresholds were found on float64 values."""
    return "float32" if type(estimator).__name__.startswith("MLP") else "float64"


def _one_blas_thread() -> Any:
    """Matrix products (the neural net's) on one BLAS thread: on a busy 2-core machine two
    BLAS threads ran an MLP's epochs ten times slower than one."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class _Tracker:
    """Best validation loss so far, patience and a deadline, shared by the libraries' hooks."""

    def __init__(self, patience: int, deadline: float | None) -> None:
        self.patience = patience
        self.deadline = deadline
        self.best = np.inf
        self.best_iteration = 0  # 1-based count of iterations at the best
        self.iteration = 0
        self.stopped_by = "max_iterations"

    def update(self, loss: float) -> bool:
        """Record one iteration's validation loss; True when training should stop."""
        self.iteration += 1
        if self.best_iteration == 0 or loss < self.best - 1e-12 * max(1.0, abs(self.best)):
            self.best, self.best_iteration = loss, self.iteration
        if self.iteration - self.best_iteration >= self.patience:
            self.stopped_by = "patience"
            return True
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.stopped_by = "time"
            return True
        return False


class _EarlyStoppedBase(BaseEstimator):
    """What the classifier and the regressor share (see the module docstring).

    Args:
        estimator: an unfitted LGBM*, XGB*, CatBoost* or MLP* model; its iteration count
            (n_estimators, iterations, max_iter) is the most it may use.
        validation_fraction: share of `X` carved off to stop on when no `X_valid` is given.
        patience: iterations (trees or epochs) without improvement before stopping.
        max_seconds: stop after this long; the best iteration so far is kept.
        class_weight: None or "balanced" (sample weights in the fit).
        scale_target: regression: fit on the standardised target (neural nets need it).
        cycle_epochs: neural nets only: train this many epochs on a one-cycle learning rate
            (see `one_cycle_rate`), keeping the best epoch, instead of stopping on patience.
    """

    def __init__(
        self,
        estimator: Any = None,
        *,
        validation_fraction: float = 0.1,
        patience: int = 50,
        max_seconds: float | None = None,
        seed: int = 0,
        class_weight: str | None = None,
        scale_target: bool = False,
        cycle_epochs: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.max_seconds = max_seconds
        self.seed = seed
        self.class_weight = class_weight
        self.scale_target = scale_target
        self.cycle_epochs = cycle_epochs

    def _is_classifier(self) -> bool:
        return is_classifier(self)

    def fit(
        self,
        X: Any,
        y: Any,
        X_valid: Any = None,
        y_valid: Any = None,
    ) -> _EarlyStoppedBase:
        started = time.perf_counter()
        X = np.asarray(X, dtype=_input_dtype(self.estimator))
        y = np.asarray(y)
        if self._is_classifier():
            self.classes_ = np.unique(y)
            y = np.searchsorted(self.classes_, y)
        else:
            y = y.astype("float64")
        X_fit, y_fit, X_val, y_val = self._rows(X, y, X_valid, y_valid)
        weights = None
        if self.class_weight == "balanced" and self._is_classifier():
            weights = _balanced_weights(y_fit)
        self.y_mean_, self.y_scale_ = 0.0, 1.0
        if self.scale_target and not self._is_classifier():
            self.y_mean_ = float(np.mean(y_fit))
            self.y_scale_ = float(np.std(y_fit)) or 1.0
            y_fit = (y_fit - self.y_mean_) / self.y_scale_
            y_val = (y_val - self.y_mean_) / self.y_scale_
        deadline = None if self.max_seconds is None else started + self.max_seconds
        # A one-cycle schedule ends the fit itself: no stop on patience before it.
        tracker = _Tracker(self.cycle_epochs or self.patience, deadline)
        with _one_blas_thread():
            self.estimator_ = _fit_family(
                clone(self.estimator), X_fit, y_fit, X_val, y_val, weights, tracker, self
            )
        self.best_iteration_ = tracker.best_iteration
        self.iterations_ = tracker.iteration  # how many it ran (0: a forest, which scores none)
        self.stopped_by_ = tracker.stopped_by
        self.n_features_in_ = X.shape[1]
        return self

    def _rows(
        self, X: np.ndarray, y: np.ndarray, X_valid: Any, y_valid: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(training rows, their codes, validation rows, their codes): the caller's validation
        rows, or a slice carved from X; a forest validates nothing and trains on all rows."""
        if _is_forest(self.estimator):
            return X, y, X[:0], y[:0]
        if X_valid is None:
            valid = _slice_rows(y, self.validation_fraction, self.seed, self._is_classifier())
            keep = np.ones(len(y), dtype=bool)
            keep[valid] = False
            if not keep.any():
                keep[:] = True
            return X[keep], y[keep], X[valid], y[valid]
        X_val = np.asarray(X_valid, dtype=X.dtype)
        y_val = np.asarray(y_valid)
        if self._is_classifier():
            # A validation row of a class the training rows lack cannot be scored.
            known = np.isin(y_val, self.classes_)
            return X, y, X_val[known], np.searchsorted(self.classes_, y_val[known])
        return X, y, X_val, y_val.astype("float64")

    def _inner_proba(self, X: Any) -> np.ndarray:
        with _one_blas_thread():
            proba = self.estimator_.predict_proba(np.asarray(X, dtype=_input_dtype(self.estimator)))
        return spread(proba, self.estimator_.classes_, len(self.classes_))


class EarlyStoppedClassifier(ClassifierMixin, _EarlyStoppedBase):
    """A classifier early-stopped on log loss (see `_EarlyStoppedBase`)."""

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._inner_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class EarlyStoppedRegressor(RegressorMixin, _EarlyStoppedBase):
    """A regressor early-stopped on squared error (see `_EarlyStoppedBase`)."""

    def predict(self, X: Any) -> np.ndarray:
        with _one_blas_thread():
            raw = self.estimator_.predict(np.asarray(X, dtype=_input_dtype(self.estimator)))
        raw = np.asarray(raw, dtype="float64")
        return raw.ravel() * self.y_scale_ + self.y_mean_


def early_stopped(estimator: Any, **kwargs: Any) -> _EarlyStoppedBase:
    """`estimator` wrapped in the early-stopping classifier or regressor that fits it."""
    if is_classifier(estimator):
        return EarlyStoppedClassifier(estimator, **kwargs)
    return EarlyStoppedRegressor(estimator, **kwargs)


# -- one fit per library --------------------------------------------------------------------


def _fit_family(
    est: Any,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    weights: np.ndarray | None,
    tracker: _Tracker,
    owner: _EarlyStoppedBase,
) -> Any:
    module = type(est).__module__.split(".")[0]
    if module == "lightgbm":
        return _fit_lightgbm(est, X, y, X_val, y_val, weights, tracker)
    if module == "xgboost":
        return _fit_xgboost(est, X, y, X_val, y_val, weights, tracker)
    if module == "catboost":
        return _fit_catboost(est, X, y, X_val, y_val, weights, tracker)
    if module == "sklearn" and type(est).__name__.startswith("MLP"):
        return _fit_mlp(est, X, y, X_val, y_val, weights, tracker, owner)
    if _is_forest(est):
        return _fit_forest(est, X, y, weights, tracker)
    raise TypeError(f"no early stopping for {type(est).__name__}")


def _fit_lightgbm(est, X, y, X_val, y_val, weights, tracker):  # type: ignore[no-untyped-def]
    from lightgbm.callback import EarlyStopException

    def callback(env: Any) -> None:
        # The first (only) evaluation is the objective's own loss on the validation slice.
        loss = float(env.evaluation_result_list[0][2])
        stop = tracker.update(loss)
        if stop or env.iteration + 1 >= env.end_iteration:
            if tracker.stopped_by == "max_iterations":
                tracker.best_iteration = tracker.best_iteration or tracker.iteration
            # LightGBM keeps best_iteration = this + 1; its predict and ONNX use it.
            raise EarlyStopException(tracker.best_iteration - 1, [])

    callback.order = 30  # type: ignore[attr-defined]
    est.fit(X, y, sample_weight=weights, eval_set=[(X_val, y_val)], callbacks=[callback])
    return est


class _XGBoostHook:
    """An XGBoost training callback that feeds the tracker (module level: picklable)."""

    def __init__(self, tracker: _Tracker) -> None:
        self.tracker = tracker

    def before_training(self, model: Any) -> Any:
        return model

    def after_training(self, model: Any) -> Any:
        return model

    def before_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        return False

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        metric = next(iter(evals_log["validation_0"].values()))
        return self.tracker.update(float(metric[-1]))


def _fit_xgboost(est, X, y, X_val, y_val, weights, tracker):  # type: ignore[no-untyped-def]
    import xgboost as xgb

    class Hook(_XGBoostHook, xgb.callback.TrainingCallback):
        pass

    est.set_params(callbacks=[Hook(tracker)], early_stopping_rounds=None)
    est.fit(X, y, sample_weight=weights, eval_set=[(X_val, y_val)], verbose=False)
    best = max(1, tracker.best_iteration)
    # Keep only the trees up to the best iteration: predict and the ONNX graph then agree
    # without either having to know about a best iteration.
    booster = est.get_booster()[:best]
    est._Booster = booster
    est.set_params(callbacks=None, n_estimators=best)
    return est


class _CatBoostHook:
    def __init__(self, tracker: _Tracker, metric: str) -> None:
        self.tracker = tracker
        self.metric = metric

    def after_iteration(self, info: Any) -> bool:
        values = info.metrics["validation"][self.metric]
        return not self.tracker.update(float(values[-1]))  # False stops CatBoost


def _fit_catboost(est, X, y, X_val, y_val, weights, tracker):  # type: ignore[no-untyped-def]
    metric = est.get_params().get("loss_function")
    if metric is None:
        binary = len(np.unique(y)) <= 2
        metric = "RMSE" if not is_classifier(est) else ("Logloss" if binary else "MultiClass")
    est.set_params(loss_function=metric)
    est.fit(
        X,
        y,
        sample_weight=weights,
        eval_set=(X_val, y_val),
        callbacks=[_CatBoostHook(tracker, metric)],
        use_best_model=False,
    )
    best = max(1, tracker.best_iteration)
    est.shrink(best)  # keep the trees up to the best iteration only
    return est


# One-cycle learning rate: a quarter of the epochs warm up from a tenth of the peak, the rest
# anneal on a cosine to near zero.
CYCLE_WARMUP_SHARE = 0.25
CYCLE_START, CYCLE_END = 0.1, 0.002


def one_cycle_rate(epoch: int, epochs: int, peak: float) -> float:
    """The learning rate of `epoch` (1-based) of `epochs` on a one-cycle schedule to `peak`."""
    warmup = max(1, int(epochs * CYCLE_WARMUP_SHARE))
    if epoch <= warmup:
        return peak * (CYCLE_START + (1 - CYCLE_START) * epoch / warmup)
    progress = min(1.0, (epoch - warmup) / max(1, epochs - warmup))
    return peak * (0.5 * (1 + np.cos(np.pi * progress)) + CYCLE_END)


def _fit_mlp(est, X, y, X_val, y_val, weights, tracker, owner):  # type: ignore[no-untyped-def]
    # One partial_fit is one epoch with the optimiser's state kept; a RandomState instance
    # (not a seed) makes each epoch shuffle differently.
    seed = owner.seed
    est.set_params(random_state=np.random.RandomState(seed))
    classes = np.unique(y) if is_classifier(est) else None
    best: tuple[list, list] | None = None
    cycle = owner.cycle_epochs
    limit = int(cycle or est.get_params()["max_iter"])
    peak = float(est.get_params()["learning_rate_init"])
    for epoch in range(1, limit + 1):
        if cycle:
            _set_learning_rate(est, one_cycle_rate(epoch, limit, peak))
        if classes is not None:
            est.partial_fit(X, y, sample_weight=weights, classes=classes)
            proba = spread(est.predict_proba(X_val), est.classes_, len(classes))
            picked = proba[np.arange(len(y_val)), y_val]
            loss = float(-np.mean(np.log(np.maximum(picked, _FLOOR))))
        else:
            est.partial_fit(X, y, sample_weight=weights)
            loss = float(np.mean((est.predict(X_val) - y_val) ** 2))
        if not np.isfinite(loss):
            break
        improved = tracker.best_iteration
        stop = tracker.update(loss)
        if tracker.best_iteration != improved or best is None:
            best = (copy.deepcopy(est.coefs_), copy.deepcopy(est.intercepts_))
        if stop:
            break
    if best is not None:
        est.coefs_, est.intercepts_ = best
    est.set_params(random_state=seed, learning_rate_init=peak)
    tracker.best_iteration = max(1, tracker.best_iteration)
    return est


def _set_learning_rate(est: Any, rate: float) -> None:
    """The learning rate of the next epoch: before the first, the parameter the optimiser is
    built from; after it, the (private, stable since scikit-learn 0.18) optimiser's own."""
    optimiser = getattr(est, "_optimizer", None)
    if optimiser is None:
        est.set_params(learning_rate_init=rate)
    else:
        optimiser.learning_rate_init = rate


# A forest grows its trees in this many batches, checking the time after each.
FOREST_BATCHES = 10


def _fit_forest(est, X, y, weights, tracker):  # type: ignore[no-untyped-def]
    """A forest has nothing to stop on, but may run out of time: its trees grow in batches
    (warm start) until all are grown or `max_seconds` has passed."""
    total = int(est.get_params()["n_estimators"])
    step = max(1, -(-total // FOREST_BATCHES))
    # Out-of-bag outputs are computed once, at the end, not after every batch.
    want_oob = bool(est.get_params().get("oob_score"))
    est.set_params(warm_start=True, oob_score=False)
    grown = 0
    tracker.stopped_by = "max_iterations"
    while grown < total:
        began = time.perf_counter()
        grown = min(total, grown + step)
        est.set_params(n_estimators=grown)
        est.fit(X, y, sample_weight=weights)
        now = time.perf_counter()
        # Stop before a batch that would end past the deadline (batches take about as long).
        if (
            tracker.deadline is not None
            and grown < total
            and now + (now - began) > tracker.deadline
        ):
            tracker.stopped_by = "time"
            break
    if want_oob:
        import warnings

        with warnings.catch_warnings():
            # "fitting without increasing n_estimators": wanted, it only scores out of bag.
            warnings.simplefilter("ignore")
            est.set_params(oob_score=True).fit(X, y, sample_weight=weights)
    est.set_params(warm_start=False)
    tracker.best_iteration = grown
    return est
