"""The split into training and held-out rows, made before anything learns from the data, and
the preprocessor fitted on the training rows only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tabpilot.engine.data.columns import FeaturePlan
from tabpilot.engine.data.inputs import input_columns, prepare_frame
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.preprocess import build_preprocessor
from tabpilot.engine.training.targets import Target


@dataclass
class Split:
    """Model inputs of all usable rows, split into training and held-out rows."""

    prepared: pd.DataFrame  # every usable row, as model input columns
    y: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray
    pre: Any  # the preprocessor, fitted on X_train
    Xt_train: Any  # X_train preprocessed: what the search sees


def split_rows(target: Target, plan: FeaturePlan, *, test_size: float, seed: int) -> Split:
    """Hold out `test_size` of the rows (at least one per class; stratified for
    classification) and fit the preprocessor on the rest."""
    data, y, classes = target.data, target.y, target.classes
    prepared = prepare_frame(data, plan.features)
    columns = input_columns(plan.features)
    idx = np.arange(len(data))
    n_test = max(round(len(data) * test_size), len(classes or ()))
    stratify = y if classes is not None else None
    train_idx, test_idx = train_test_split(
        idx, test_size=n_test, random_state=seed, stratify=stratify
    )
    X_train, X_test = prepared.iloc[train_idx], prepared.iloc[test_idx]
    y_train, y_test = y[train_idx], y[test_idx]
    order_by_target = target.problem.problem_type != ProblemType.MULTICLASS
    pre = build_preprocessor(X_train, columns, y_train, order_by_target=order_by_target)
    Xt_train = pre.fit_transform(X_train)
    return Split(prepared, y, train_idx, test_idx, X_train, X_test, y_train, y_test, pre, Xt_train)
