"""What a user may choose for training (estimators, metrics), as plain data.

Kept free of scikit-learn and FLAML so that the API can validate a job request against the
very tables the engine trains with.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str
    flaml: str  # FLAML's name for the same metric
    greater_is_better: bool
    problems: tuple[ProblemType, ...]

    def better(self, a: float, b: float) -> bool:
        """True if score `a` is strictly better than `b`."""
        return a > b if self.greater_is_better else a < b


_B, _M, _R = ProblemType.BINARY, ProblemType.MULTICLASS, ProblemType.REGRESSION
METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("roc_auc", "ROC AUC", "roc_auc", True, (_B, _M)),
        MetricSpec("log_loss", "log loss", "log_loss", False, (_B, _M)),
        MetricSpec("accuracy", "accuracy", "accuracy", True, (_B, _M)),
        MetricSpec("f1", "F1", "f1", True, (_B,)),
        MetricSpec("macro_f1", "macro F1", "macro_f1", True, (_B, _M)),
        MetricSpec("rmse", "RMSE", "rmse", False, (_R,)),
        MetricSpec("mae", "MAE", "mae", False, (_R,)),
        MetricSpec("r2", "R²", "r2", True, (_R,)),
        MetricSpec("mape", "MAPE", "mape", False, (_R,)),
    )
}
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
