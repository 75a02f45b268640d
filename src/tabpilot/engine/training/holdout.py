"""The split of the usable rows, made before anything learns from the data, and the
preprocessor fitted on the rows models train on.

Three roles, so that no reported figure comes from rows that chose the model:

- **test** rows (`test_size` of all): only ever predicted, for the reported held-out metrics;
- **selection**: on small data (at most `BAG_ROWS` training rows and `BAG_CELLS` cells) the
  out-of-fold predictions of k-fold bagging on the training rows; on larger or wide data a
  **validation** slice of the
  training rows (`VALID_SHARE`), which chooses the model, the blend weights and the
  temperatures and on which nothing trains;
- **training** rows: what the models (and the search) learn from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold, train_test_split

from tabpilot.engine.data.columns import FeaturePlan
from tabpilot.engine.data.inputs import input_columns, prepare_frame
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.preprocess import build_preprocessor
from tabpilot.engine.training.targets import Target

# Up to this many training rows every model is bagged: trained on k folds, chosen and blended
# on its out-of-fold predictions, shipped as the average of its fold models. Above it a
# validation slice is cheaper and large enough to tell good from lucky.
BAG_ROWS = 8_000
BAG_FOLDS = 5
# Up to this many training rows the k folds are drawn BAG_REPEATS times over (repeated k-fold,
# as AutoGluon's best-quality presets do): on a few hundred rows one draw of the folds leaves
# the out-of-fold scores, and so the choice, noisy, and each fold model varies more; the fits
# are cheap there and the run's budget mostly unused.
REPEAT_ROWS, BAG_REPEATS = 1_000, 3
# Nor are rows bagged past this many cells (training rows x input columns): on wide data every
# fit costs k times a fit that is slow already, and the kinds that win there (CatBoost) would
# not fit the budget k times over. Synthetic wide tables, one quiet core: CatBoost took 16 s a
# fit on 1,920 x 800 (32 borders, `portfolio.WIDE_COLS`); bagged on 3,200 x 300 (960,000
# cells), LightGBM's five fits took 10 s of a 60 s run's 25 s portfolio share.
BAG_CELLS = 500_000
# Share of the training rows held back for validation above BAG_ROWS (at most VALID_MAX_ROWS).
VALID_SHARE = 0.2
VALID_MAX_ROWS = 50_000

Folds = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class Split:
    """Model inputs of all usable rows, split into training, validation and held-out rows."""

    prepared: pd.DataFrame  # every usable row, as model input columns
    y: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray
    pre: Any  # the preprocessor, fitted on X_train
    Xt_train: Any  # X_train preprocessed: what the search and the models see
    Xt_test: Any = None
    valid_idx: np.ndarray | None = None  # None on small data: bagging's folds instead
    X_valid: pd.DataFrame | None = None
    y_valid: np.ndarray | None = None
    Xt_valid: Any = None
    folds: Folds | None = None  # on small data: the k folds of the training rows (x repeats)
    repeats: int = 1  # how many times over the k folds were drawn
    note: str = ""  # why rows that could have been bagged were not, for the card's decisions

    @property
    def bagged(self) -> bool:
        return self.folds is not None

    @property
    def y_selection(self) -> np.ndarray:
        """The true values the selection predictions are scored against."""
        if self.folds is not None or self.y_valid is None:
            return self.y_train
        return self.y_valid

    @property
    def n_valid(self) -> int:
        return 0 if self.valid_idx is None else len(self.valid_idx)

    def selection_words(self) -> str:
        """How the model, blend weights and temperatures were chosen, for people."""
        if self.folds is not None:
            k = len(self.folds) // self.repeats
            times = f", drawn {self.repeats} times over" if self.repeats > 1 else ""
            return (
                f"{k}-fold out-of-fold predictions{times} on the {len(self.train_idx):,} "
                "training rows"
            )
        return f"{self.n_valid:,} validation rows that no model trained on"


def make_folds(
    y: np.ndarray, classes: list[Any] | None, *, seed: int, repeats: int = 1
) -> Folds | None:
    """BAG_FOLDS folds (stratified for classification), drawn `repeats` times over (each
    draw's folds after the previous one's), or None when a class has fewer than two rows."""
    if classes is None:
        splitter: Any = RepeatedKFold(n_splits=BAG_FOLDS, n_repeats=repeats, random_state=seed)
    else:
        smallest = int(np.bincount(y, minlength=len(classes)).min())
        if smallest < 2:
            return None
        splitter = RepeatedStratifiedKFold(
            n_splits=min(BAG_FOLDS, smallest), n_repeats=repeats, random_state=seed
        )
    return list(splitter.split(np.zeros(len(y)), y))


def split_rows(
    target: Target,
    plan: FeaturePlan,
    *,
    test_size: float,
    seed: int,
    bag_rows: int | None = None,
) -> Split:
    """Hold out `test_size` of the rows (at least one per class; stratified for
    classification), then bagging folds or a validation slice of the rest; the preprocessor
    is fitted on the training rows."""
    data, y, classes = target.data, target.y, target.classes
    bag_rows = BAG_ROWS if bag_rows is None else bag_rows
    prepared = prepare_frame(data, plan.features)
    columns = input_columns(plan.features)
    idx = np.arange(len(data))
    n_test = max(round(len(data) * test_size), len(classes or ()))
    stratify = y if classes is not None else None
    train_idx, test_idx = train_test_split(
        idx, test_size=n_test, random_state=seed, stratify=stratify
    )
    repeats = BAG_REPEATS if len(train_idx) <= REPEAT_ROWS else 1
    cells = len(train_idx) * len(columns)
    bag = len(train_idx) <= bag_rows and cells <= BAG_CELLS
    folds = make_folds(y[train_idx], classes, seed=seed, repeats=repeats) if bag else None
    note = ""
    if len(train_idx) <= bag_rows and cells > BAG_CELLS:
        note = (
            f"The models are not bagged although the training rows are few: "
            f"{len(train_idx):,} rows x {len(columns):,} columns is past the {BAG_CELLS:,} "
            "cells up to which they are (on wide data k fits of every model cost too much). "
            "A validation slice chooses instead."
        )
    valid_idx = None
    if folds is None:
        n_valid = min(VALID_MAX_ROWS, max(round(len(train_idx) * VALID_SHARE), len(classes or ())))
        counts = np.bincount(y[train_idx]) if classes is not None else None
        strat = y[train_idx] if counts is not None and counts[counts > 0].min() >= 2 else None
        train_idx, valid_idx = train_test_split(
            train_idx, test_size=n_valid, random_state=seed, stratify=strat
        )
    X_train, X_test = prepared.iloc[train_idx], prepared.iloc[test_idx]
    y_train, y_test = y[train_idx], y[test_idx]
    order_by_target = target.problem.problem_type != ProblemType.MULTICLASS
    pre = build_preprocessor(X_train, columns, y_train, order_by_target=order_by_target)
    Xt_train = pre.fit_transform(X_train)
    split = Split(
        prepared,
        y,
        train_idx,
        test_idx,
        X_train,
        X_test,
        y_train,
        y_test,
        pre,
        Xt_train,
        Xt_test=pre.transform(X_test),
        folds=folds,
        repeats=repeats if folds is not None else 1,
        note=note,
    )
    if valid_idx is not None:
        split.valid_idx = valid_idx
        split.X_valid = prepared.iloc[valid_idx]
        split.y_valid = y[valid_idx]
        split.Xt_valid = pre.transform(split.X_valid)
    return split
