"""What a user may choose for training (estimators, metrics), as plain data, and the one
metric table (names, labels, which way is better) that the engine, the reports and the
comparison of jobs read.

Kept free of scikit-learn and FLAML so that the API can validate a job request against the
very tables the engine trains with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tabpilot.engine.data.problem import ProblemType
from tabpilot.errors import InvalidInput

# Estimator names -> what a person reads.
ESTIMATORS: dict[str, str] = {
    "lgbm": "LightGBM",
    "xgboost": "XGBoost",
    "rf": "random forest",
    "extra_tree": "extra trees",
    "linear": "linear model",
}


Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its name (the one name used everywhere: options, cards, reports), what a
    person reads, and which way is better.

    `problems` are the problem types it can be optimised for; a metric with none is only
    reported (computed on the held-out rows). `flaml` is FLAML's name for an optimisable one.
    """

    name: str
    label: str
    flaml: str | None
    greater_is_better: bool
    problems: tuple[ProblemType, ...] = ()

    def better(self, a: float, b: float) -> bool:
        """True if score `a` is strictly better than `b`."""
        return a > b if self.greater_is_better else a < b

    @property
    def direction(self) -> Direction:
        return "higher" if self.greater_is_better else "lower"


_B, _M, _R = ProblemType.BINARY, ProblemType.MULTICLASS, ProblemType.REGRESSION
# The metric table: every metric the engine optimises or reports, in the order reports list
# them.
ALL_METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("roc_auc", "ROC AUC", "roc_auc", True, (_B, _M)),
        MetricSpec("log_loss", "log loss", "log_loss", False, (_B, _M)),
        MetricSpec("accuracy", "accuracy", "accuracy", True, (_B, _M)),
        MetricSpec("balanced_accuracy", "balanced accuracy", None, True),
        MetricSpec("f1", "F1", "f1", True, (_B,)),
        MetricSpec("macro_f1", "macro F1", "macro_f1", True, (_B, _M)),
        MetricSpec("precision_macro", "precision (macro average)", None, True),
        MetricSpec("recall_macro", "recall (macro average)", None, True),
        MetricSpec("f1_weighted", "F1 (weighted average)", None, True),
        MetricSpec("precision_weighted", "precision (weighted average)", None, True),
        MetricSpec("recall_weighted", "recall (weighted average)", None, True),
        MetricSpec("rmse", "RMSE", "rmse", False, (_R,)),
        MetricSpec("mae", "MAE", "mae", False, (_R,)),
        MetricSpec("r2", "R²", "r2", True, (_R,)),
        MetricSpec("mape", "MAPE", "mape", False, (_R,)),
    )
}
# The metrics a user may choose to optimise: a view of the table above.
METRICS: dict[str, MetricSpec] = {n: m for n, m in ALL_METRICS.items() if m.problems}
# Names that model cards written by earlier versions use for a metric of the table.
_FORMER_NAMES = {"f1_macro": "macro_f1"}
DEFAULT_METRIC = {_B: "roc_auc", _M: "log_loss", _R: "rmse"}


def resolve_metric(name: str | None, problem: ProblemType) -> MetricSpec:
    """The metric to optimise: the user's choice, checked, or the problem's default."""
    if not name:
        return METRICS[DEFAULT_METRIC[problem]]
    spec = METRICS.get(name.strip().lower())
    if spec is None or problem not in spec.problems:
        allowed = [m for m, s in METRICS.items() if problem in s.problems]
        raise InvalidInput(
            f'Metric "{name}" is not available for {problem} problems; use one of: '
            + ", ".join(allowed)
        )
    if spec.name == "roc_auc" and problem == _M:
        return MetricSpec("roc_auc", "ROC AUC (one-vs-rest)", "roc_auc_ovr", True, (_M,))
    return spec


def find_metric(name: str) -> MetricSpec | None:
    """The table's entry for a metric name (also the names older model cards use), or None."""
    return ALL_METRICS.get(_FORMER_NAMES.get(name, name))


def metric_direction(name: str) -> Direction | None:
    """Whether a larger or a smaller value of the metric is better; None if unknown."""
    spec = find_metric(name)
    return spec.direction if spec is not None else None
