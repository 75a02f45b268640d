"""Fold averages: k models, each trained on all rows but one fold, averaged (and seed averages:
k copies of one model on the same rows with different seeds, `SeedAverageClassifier`).

On small data one held-out split is noisy and wastes rows; k-fold bagging trains every model on
(k-1)/k of the rows, early-stops each on its own held-out fold, and gives out-of-fold outputs
for every training row (`oof_`), on which a blend's weights can be chosen honestly. The average
of the k models predicts (and exports to ONNX as one averaging graph, `onnx_converters.py`).

Labels are codes 0..K-1. A fold model that never saw a class gives it probability 0, so the
average still covers every class in `classes_`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier

from tabpilot.engine.training.early_stop import _EarlyStoppedBase
from tabpilot.engine.training.outputs import spread

Folds = list[tuple[np.ndarray, np.ndarray]]
DEFAULT_FOLDS = 5


def _split(y: np.ndarray, n_folds: int, seed: int, classify: bool, repeats: int = 1) -> Folds:
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    if classify:
        smallest = int(np.bincount(np.searchsorted(np.unique(y), y)).min())
        if smallest >= 2:
            splitter: Any = RepeatedStratifiedKFold(
                n_splits=min(n_folds, smallest), n_repeats=repeats, random_state=seed
            )
            return list(splitter.split(np.zeros(len(y)), y))
    splitter = RepeatedKFold(n_splits=min(n_folds, len(y)), n_repeats=repeats, random_state=seed)
    return list(splitter.split(np.zeros(len(y))))


def _early_stopper(est: Any) -> _EarlyStoppedBase | None:
    """The early-stopping step of `est` (itself, or a pipeline's last step), if any."""
    from sklearn.pipeline import Pipeline

    last = est.steps[-1][1] if isinstance(est, Pipeline) else est
    return last if isinstance(last, _EarlyStoppedBase) else None


def _bootstrapped_forest(est: Any) -> Any | None:
    """The forest with bootstrap samples (so with out-of-bag rows) that `est` is or wraps."""
    inner = est.estimator_ if hasattr(est, "estimator_") else getattr(est, "estimator", None)
    forest = inner if isinstance(est, _EarlyStoppedBase) else est
    name = type(forest).__name__
    if name.startswith(("RandomForest", "ExtraTrees")) and forest.get_params().get("bootstrap"):
        return forest
    return None


def _fit_fold(est: Any, X: np.ndarray, y: np.ndarray, train: np.ndarray, valid: np.ndarray) -> Any:
    """`est` fitted on the `train` rows; an early-stopping model stops on the `valid` rows (the
    fold's own held-out rows: as AutoGluon does, so no row is lost to a second slice)."""
    from sklearn.pipeline import Pipeline

    if isinstance(est, SeedAverageClassifier):  # each of its nets stops on the fold's rows
        return est.fit_each(lambda net: _fit_fold(net, X, y, train, valid), y[train], X)
    stopper = _early_stopper(est)
    if stopper is None:
        return est.fit(X[train], y[train])
    if isinstance(est, Pipeline):
        # Fit the leading steps on the training rows, then the stopper with the held-out rows
        # passed through them, as the pipeline would see them at predict time.
        Xt_train, Xt_valid = X[train], X[valid]
        for _, step in est.steps[:-1]:
            Xt_train = step.fit_transform(Xt_train, y[train])
            Xt_valid = step.transform(Xt_valid)
        stopper.fit(Xt_train, y[train], X_valid=Xt_valid, y_valid=y[valid])
        return est
    return est.fit(X[train], y[train], X_valid=X[valid], y_valid=y[valid])


class _FoldAverageBase(BaseEstimator):
    """What the classifier and the regressor share.

    Args:
        estimator: the unfitted model every fold trains a clone of.
        n_folds: folds when `folds` is not given (fewer when a class has fewer rows).
        seed: shuffles the folds.
        folds: (train_rows, valid_rows) pairs to use instead, e.g. the same for every kind
            so that out-of-fold outputs are comparable; with repeated folds a row is in
            several held-out folds, and its out-of-fold output is their average.
        n_repeats: times the `n_folds` folds are drawn over when `folds` is not given.
    """

    def __init__(
        self,
        estimator: Any = None,
        *,
        n_folds: int = DEFAULT_FOLDS,
        seed: int = 0,
        folds: Folds | None = None,
        out_of_bag: bool = True,
        n_repeats: int = 1,
    ) -> None:
        self.estimator = estimator
        self.n_folds = n_folds
        self.seed = seed
        self.folds = folds
        self.out_of_bag = out_of_bag
        self.n_repeats = n_repeats

    def _fit_out_of_bag(self, X: np.ndarray, y: np.ndarray) -> _FoldAverageBase:
        """One forest on every row; its out-of-bag outputs (each row predicted by the
        trees that did not draw it) are the out-of-fold outputs, as AutoGluon does for forests:
        a fifth of the cost and of the nodes of five fold forests."""
        model = clone(self.estimator)
        prefix = "estimator__" if isinstance(model, _EarlyStoppedBase) else ""
        model.set_params(**{f"{prefix}oob_score": True}).fit(X, y)
        forest = _bootstrapped_forest(model)
        assert forest is not None
        if is_classifier(self):
            # The forest's columns are codes into the wrapper's classes (or the labels).
            labels = np.asarray(getattr(model, "classes_", forest.classes_))
            if prefix:
                labels = labels[np.asarray(forest.classes_, dtype=int)]
            oob = np.asarray(forest.oob_decision_function_, dtype="float64")
            prior = np.bincount(np.searchsorted(self.classes_, y), minlength=len(self.classes_))
            full = np.zeros((len(y), len(self.classes_)))
            full[:, np.searchsorted(self.classes_, labels)] = oob
            # A row no tree left out (rare with many trees) gets the class frequencies.
            never = ~np.isfinite(full).all(axis=1) | (full.sum(axis=1) == 0)
            full[never] = prior / prior.sum()
            self.oof_ = full / full.sum(axis=1, keepdims=True)
        else:
            oob = np.asarray(forest.oob_prediction_, dtype="float64").ravel()
            if prefix:
                oob = oob * model.y_scale_ + model.y_mean_
            self.oof_ = np.where(np.isfinite(oob), oob, float(np.mean(y)))
        self.estimators_ = [model]
        self.n_features_in_ = X.shape[1]
        return self

    def fit(self, X: Any, y: Any) -> _FoldAverageBase:
        X = np.asarray(X, dtype="float64")
        y = np.asarray(y)
        classify = is_classifier(self)
        if classify:
            self.classes_ = np.unique(y)
        if self.out_of_bag and _bootstrapped_forest(self.estimator) is not None:
            return self._fit_out_of_bag(X, y)
        folds = self.folds or _split(y, self.n_folds, self.seed, classify, self.n_repeats)
        self.estimators_ = []
        oof = np.zeros((len(y), len(self.classes_)) if classify else len(y))
        times = np.zeros(len(y))
        for train, valid in folds:
            model = _fit_fold(clone(self.estimator), X, y, np.asarray(train), np.asarray(valid))
            self.estimators_.append(model)
            oof[valid] += self._member_output(model, X[valid])
            times[valid] += 1
        # Each row's average over the draws that held it out (once per draw of the folds).
        self.oof_ = oof / np.maximum(times, 1).reshape((-1,) + (1,) * (oof.ndim - 1))
        self.n_features_in_ = X.shape[1]
        return self

    @classmethod
    def from_fitted(
        cls, estimators: list[Any], *, classes: Any = None, oof: np.ndarray | None = None
    ) -> _FoldAverageBase:
        """A fold average of models fitted elsewhere (each on its own fold's training rows);
        `classes` (classifiers): the label codes the average predicts, 0..K-1."""
        if not estimators:
            raise ValueError("a fold average needs at least one fitted model")
        out = cls(clone(estimators[0]), n_folds=len(estimators))
        if is_classifier(out):
            if classes is None:
                raise ValueError("classes are needed to average classifiers")
            out.classes_ = np.asarray(classes)
        out.estimators_ = list(estimators)
        out.oof_ = oof
        out.n_features_in_ = getattr(estimators[0], "n_features_in_", None)
        return out

    def _member_output(self, model: Any, X: np.ndarray) -> np.ndarray:
        if not is_classifier(self):
            return np.asarray(model.predict(X), dtype="float64").ravel()
        return _class_output(model, self.classes_, X)

    def _average(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype="float64")
        total = sum(self._member_output(m, X) for m in self.estimators_)
        return np.asarray(total, dtype="float64") / len(self.estimators_)


def _class_output(model: Any, classes: np.ndarray, X: Any) -> np.ndarray:
    """A member's probabilities in the columns of `classes`: its own classes_ are codes into
    them, and a class it lacks gets 0."""
    columns = np.searchsorted(classes, model.classes_)
    return spread(model.predict_proba(X), columns, len(classes))


class FoldAverageClassifier(ClassifierMixin, _FoldAverageBase):
    """The average of k fold models' probabilities (see `_FoldAverageBase`)."""

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._average(X)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class FoldAverageRegressor(RegressorMixin, _FoldAverageBase):
    """The average of k fold models' predictions (see `_FoldAverageBase`)."""

    def predict(self, X: Any) -> np.ndarray:
        return self._average(X)


def fits_per_average(estimator: Any, n_folds: int) -> int:
    """How many fits a fold average of `estimator` trains: one for a forest with bootstrap
    samples (its out-of-bag outputs stand in for the folds), else one per fold."""
    return 1 if _bootstrapped_forest(estimator) is not None else n_folds


def fold_average(estimator: Any, **kwargs: Any) -> _FoldAverageBase:
    """A fold average of `estimator`: the classifier or the regressor that fits it."""
    if is_classifier(estimator):
        return FoldAverageClassifier(estimator, **kwargs)
    return FoldAverageRegressor(estimator, **kwargs)


class SeedAverageClassifier(ClassifierMixin, BaseEstimator):
    """`n_seeds` copies of one model trained on the same rows, each with its seeds moved on by
    one (every `random_state` / `seed` parameter inside it), and the mean of their
    probabilities. One neural net is sure of itself where it should not be; an average of a few
    is not (see `portfolio.MULTICLASS_NET_SEEDS`). Exports as one averaging graph, like a fold
    average. Labels are codes 0..K-1, as for fold averages."""

    def __init__(self, estimator: Any = None, *, n_seeds: int = 3) -> None:
        self.estimator = estimator
        self.n_seeds = n_seeds

    def fit(self, X: Any, y: Any) -> SeedAverageClassifier:
        return self.fit_each(lambda net: net.fit(X, y), y, X)

    def fit_each(self, fit: Callable[[Any], Any], y: Any, X: Any) -> SeedAverageClassifier:
        """Fit every reseeded copy with `fit` (a fold average passes its fold's rows)."""
        self.classes_ = np.unique(np.asarray(y))
        self.estimators_ = [fit(_reseeded(self.estimator, k)) for k in range(self.n_seeds)]
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        total = sum(_class_output(m, self.classes_, X) for m in self.estimators_)
        return np.asarray(total, dtype="float64") / len(self.estimators_)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _reseeded(estimator: Any, offset: int) -> Any:
    """An unfitted clone of `estimator` whose integer seeds are `offset` further on."""
    est = clone(estimator)
    seeds = {
        key: value + offset
        for key, value in est.get_params(deep=True).items()
        if key.rsplit("__", 1)[-1] in ("random_state", "seed", "random_seed")
        and isinstance(value, int)
    }
    return est.set_params(**seeds)
