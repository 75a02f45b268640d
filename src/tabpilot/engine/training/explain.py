"""What a model relies on, for the card and the training report.

- Permutation importance on held-out rows, comparable across estimators. Measured in the
  user's original columns: a datetime column's parts are shuffled together, so its importance
  is that of the column the user knows.
- SHAP values (exact tree contributions) of LightGBM and XGBoost models, and of the boosted
  members of a blend, within a time limit.
- `explain_model`: what the training report shows beyond the result (the SHAP values, and
  what preprocessing did, from `preprocess`), computed before the report renders.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tabpilot.engine.data.inputs import FeatureSpec, prepare_frame
from tabpilot.engine.training.preprocess import (
    describe_kinds,
    describe_preprocessing,
    output_sources,
)

if TYPE_CHECKING:
    from tabpilot.engine.training.train import TrainResult

log = logging.getLogger(__name__)

MAX_IMPORTANCE_ROWS = 5000
MIN_IMPORTANCE_ROWS = 200  # a slow model's importance sample shrinks no further


@dataclass(frozen=True)
class FeatureImportance:
    feature: str
    importance: float  # mean drop of the primary metric when the column is shuffled
    std: float

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def compute_permutation_importance(
    score_fn: Callable[[pd.DataFrame, np.ndarray], float],
    prepared: pd.DataFrame,
    y: np.ndarray,
    features: list[FeatureSpec],
    *,
    greater_is_better: bool,
    seed: int = 0,
    time_limit: float = 10.0,
    max_repeats: int = 5,
) -> tuple[list[FeatureImportance], str]:
    """Importance of each feature, and a note on how it was computed.

    Args:
        score_fn: scores the model on prepared input rows and their targets.
        prepared: the held-out rows as model input columns.
        y: their targets.
        features: the raw features, whose input columns are shuffled together.
        greater_is_better: direction of `score_fn`; importance is always "higher matters more".
        time_limit: seconds to spend; repeats stop early when it runs out (at least one).
            Where even one repeat does not fit (hundreds of columns, a slow model), it stops
            after the column that ran out of time and the note names the columns left out.
    """
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    if len(prepared) > MAX_IMPORTANCE_ROWS:
        keep = rng.choice(len(prepared), MAX_IMPORTANCE_ROWS, replace=False)
        prepared, y = prepared.iloc[keep], y[keep]
    base = score_fn(prepared, y)
    # One repeat scores every feature once: shrink the sample until that fits the limit
    # (slow models, such as many-class ensembles, would otherwise blow the budget).
    per_score = time.perf_counter() - started
    fits = time_limit / max(per_score * (len(features) + 1), 1e-9)
    if fits < 1.0 and len(prepared) > MIN_IMPORTANCE_ROWS:
        n = max(MIN_IMPORTANCE_ROWS, int(len(prepared) * fits * 0.8))
        keep = rng.choice(len(prepared), n, replace=False)
        # A rare class absent from the smaller sample makes some metrics fail: keep all rows.
        with contextlib.suppress(ValueError):
            base, prepared, y = score_fn(prepared.iloc[keep], y[keep]), prepared.iloc[keep], y[keep]
    sign = 1.0 if greater_is_better else -1.0
    drops: dict[str, list[float]] = {}
    repeats = 0
    for _ in range(max_repeats):
        for spec in features:
            if repeats == 0 and drops and time.perf_counter() - started > time_limit:
                break  # hundreds of columns: the first repeat alone would overrun the budget
            cols = [c for c, _ in spec.input_columns()]
            shuffled = prepared.copy()
            order = rng.permutation(len(prepared))
            shuffled[cols] = prepared[cols].iloc[order].to_numpy()
            drops.setdefault(spec.name, []).append(sign * (base - score_fn(shuffled, y)))
        repeats += 1
        elapsed = time.perf_counter() - started
        if len(drops) < len(features) or elapsed * (repeats + 1) / repeats > time_limit:
            break
    result = [
        FeatureImportance(name, float(np.mean(v)), float(np.std(v))) for name, v in drops.items()
    ]
    result.sort(key=lambda f: f.importance, reverse=True)
    note = (
        f"permutation importance on {len(prepared):,} held-out rows, {repeats} repeat(s): "
        "the drop in the primary metric when a column's values are shuffled"
    )
    if len(drops) < len(features):
        left_out = [f.name for f in features if f.name not in drops]
        shown = ", ".join(left_out[:5]) + (", ..." if len(left_out) > 5 else "")
        note += (
            f"; only the first {len(drops):,} of {len(features):,} columns were measured in the "
            f"{time_limit:.0f} s allowed, {len(left_out):,} were not ({shown})"
        )
    return result, note


# -- SHAP values -----------------------------------------------------------------------------

MAX_SHAP_ROWS = 1000
SHAP_PROBE_ROWS = 50  # timed first, to see how many rows the time left allows


def estimator_name(est: Any) -> str:
    """What a person calls the model: LightGBM, XGBoost, random forest, ..."""
    est = _unscaled(est)
    cls = type(est).__name__
    steps = getattr(est, "steps", None)
    if steps:  # a scaled linear model is a small pipeline
        cls = type(steps[-1][1]).__name__
    members = model_members(est)
    if len(members) > 1:
        return "ensemble of " + " + ".join(estimator_name(m) for _, m in members)
    for prefix, name in (
        ("LGBM", "LightGBM"),
        ("XGB", "XGBoost"),
        ("RandomForest", "random forest"),
        ("ExtraTrees", "extra trees"),
        ("Logistic", "linear model"),
        ("ElasticNet", "linear model"),
        ("Linear", "linear model"),
    ):
        if cls.startswith(prefix):
            return name
    return cls


def model_members(est: Any) -> list[tuple[str, Any]]:
    """The fitted models inside an ensemble (VotingClassifier/Regressor), or the model itself;
    temperature-scaled models (`calibrate`) are unwrapped to the model they scale."""
    est = _unscaled(est)
    fitted = getattr(est, "estimators_", None)
    names = getattr(est, "estimators", None)
    if isinstance(fitted, list) and isinstance(names, list) and len(fitted) == len(names):
        return [(str(n), _unscaled(m)) for (n, _), m in zip(names, fitted, strict=True)]
    return [("model", est)]


def _unscaled(est: Any) -> Any:
    # By duck type: the boosting libraries are imported only where contributions are computed.
    if hasattr(est, "temperature") and hasattr(est, "estimator_"):
        return est.estimator_
    return est


def _booster_kind(est: Any) -> str | None:
    module = type(est).__module__.split(".")[0]
    return module if module in ("lightgbm", "xgboost") else None


@dataclass
class Contributions:
    """Per-feature contributions (SHAP values) of the model on some held-out rows."""

    features: list[str]
    values: np.ndarray  # (classes or 1, rows, features), margin units
    colours: list[np.ndarray | None]  # feature value ranks in [0, 1] for colouring, per feature
    class_names: list[str]
    rows: int
    seconds: float
    engine: str  # which model(s) the values come from
    ensemble: bool = False
    left_out: list[str] = field(default_factory=list)  # members without values


@dataclass
class ModelExplanation:
    """What the training report shows beyond the `TrainResult`, computed before rendering.

    `contributions` is the SHAP values, the reason there are none, or the error that stopped
    them (the report shows it in that section alone).
    """

    contributions: Contributions | str | Exception
    preprocessing: dict[str, str]  # per feature: what preprocessing does to it
    kinds: list[tuple[str, int, str]]  # per kind of feature: how many, what is done to them


def explain_model(result: TrainResult, *, time_limit: float = 10.0) -> ModelExplanation:
    """The report's explanation of a trained model; never raises.

    Args:
        result: what `train` returned.
        time_limit: seconds the SHAP values may take.
    """
    features = result.model.features
    pre = getattr(result.model.pipeline, "named_steps", {}).get("pre")
    preprocessing: dict[str, str] = {}
    try:
        if pre is not None:
            preprocessing = describe_preprocessing(pre, features)
    except Exception:  # the per-kind description below still holds
        log.exception("describing the preprocessing failed")
    contributions: Contributions | str | Exception
    try:
        contributions = compute_contributions(result, time_limit=time_limit)
    except Exception as exc:
        log.exception("computing contributions failed")
        contributions = exc
    return ModelExplanation(contributions, preprocessing, describe_kinds(result.plan.features))


def compute_contributions(result: TrainResult, *, time_limit: float) -> Contributions | str:
    """SHAP values of the model on held-out rows, or why there are none."""
    deadline = time.perf_counter() + max(time_limit, 0.0)
    steps = getattr(result.model.pipeline, "named_steps", {})
    pre, est = steps.get("pre"), steps.get("model")
    if pre is None or est is None:
        return "the model is not a preprocessing + estimator pipeline."
    if result.chosen == "baseline":
        return "the chosen model is the constant baseline; it uses no feature."
    members = model_members(est)
    supported = [m for _, m in members if _booster_kind(m) is not None]
    if not supported:
        names = ", ".join(estimator_name(m) for _, m in members)
        return (
            "exact tree contributions are computed for LightGBM and XGBoost models; the "
            f"chosen model is {names}. The permutation importance above covers every model."
        )
    if deadline - time.perf_counter() < 0.5:
        return "the report's time limit was used up before this section."
    started = time.perf_counter()
    raw = result.holdout
    if len(raw) > MAX_SHAP_ROWS:
        raw = raw.sample(MAX_SHAP_ROWS, random_state=result.spec.seed)
    features = result.model.features
    X = prepare_frame(raw, features)
    Xt = np.asarray(pre.transform(X), dtype="float64")
    sources = output_sources(pre)
    if len(sources) != Xt.shape[1]:
        raise ValueError(f"{Xt.shape[1]} model inputs but {len(sources)} mapped to columns")
    n_classes = len(result.classes) if result.classes is not None else 1
    per_class = _members_contributions(supported, Xt, n_classes, deadline)
    if per_class is None:
        return "the report's time limit ran out while computing contributions."
    n_rows = per_class.shape[1]
    class_names = [str(c) for c in result.classes] if result.classes is not None else []
    if result.classes is None:
        class_names = [result.spec.target]
    elif per_class.shape[0] == 1:
        class_names = [str(result.classes[-1])]
    return Contributions(
        features=[f.name for f in features],
        values=per_class @ _source_matrix(features, sources),  # (classes, rows, features)
        colours=_colours(features, X.iloc[:n_rows]),
        class_names=class_names,
        rows=n_rows,
        seconds=time.perf_counter() - started,
        engine=" and ".join(dict.fromkeys(estimator_name(m) for m in supported)),
        ensemble=len(members) > 1,
        left_out=[estimator_name(m) for _, m in members if _booster_kind(m) is None],
    )


def _members_contributions(
    members: list[Any], Xt: np.ndarray, n_classes: int, deadline: float
) -> np.ndarray | None:
    """The members' average contributions per model input, (classes, rows, inputs), on as
    many rows as the time left allows; None if not even the probe rows fit."""
    probe = min(SHAP_PROBE_ROWS, len(Xt))
    t = time.perf_counter()
    firsts = [_contributions(m, Xt[:probe], n_classes) for m in members]
    per_row = (time.perf_counter() - t) / max(probe, 1)
    affordable = int(max((deadline - time.perf_counter()) * 0.8, 0) / max(per_row, 1e-6))
    if affordable < probe:
        return None
    n_rows = min(len(Xt), affordable)
    parts = []
    for m, first in zip(members, firsts, strict=True):
        rest = _contributions(m, Xt[probe:n_rows], n_classes) if n_rows > probe else None
        parts.append(first if rest is None else np.concatenate([first, rest], axis=1))
    return np.mean(parts, axis=0)  # the members' average, as the ensemble averages


def _contributions(model: Any, rows: np.ndarray, n_classes: int) -> np.ndarray:
    """(classes or 1, rows, inputs): a booster's margin contributions, bias term dropped."""
    n_out = rows.shape[1]
    if _booster_kind(model) == "lightgbm":
        values = np.asarray(model.booster_.predict(rows, pred_contrib=True))
    else:
        import xgboost

        values = np.asarray(model.get_booster().predict(xgboost.DMatrix(rows), pred_contribs=True))
    if values.ndim == 3:  # XGBoost multiclass: (rows, classes, inputs + 1)
        return values[:, :, :n_out].transpose(1, 0, 2)
    if n_classes > 2 and values.shape[1] == (n_out + 1) * n_classes:
        per = values.reshape(len(values), n_classes, n_out + 1)[:, :, :n_out]
        return per.transpose(1, 0, 2)
    return values[None, :, :n_out]


def _source_matrix(features: list[FeatureSpec], sources: list[str]) -> np.ndarray:
    """(inputs, features): 1 where a model input comes from a user's column, so that a
    datetime column's parts add up to the column."""
    owner = {c: f.name for f in features for c, _ in f.input_columns()}
    col_index = {f.name: j for j, f in enumerate(features)}
    mapping = np.zeros((len(sources), len(features)))
    for i, src in enumerate(sources):
        mapping[i, col_index[owner.get(src, src)]] = 1.0
    return mapping


def _colours(features: list[FeatureSpec], shown: pd.DataFrame) -> list[np.ndarray | None]:
    """Each row's value rank in [0, 1] per feature, to colour the points; None for
    categories."""
    colours: list[np.ndarray | None] = []
    for spec in features:
        if spec.kind == "categorical":
            colours.append(None)
            continue
        cols = [c for c, _ in spec.input_columns()]
        col = cols[-1] if spec.kind == "datetime" else cols[0]
        v = pd.to_numeric(shown[col], errors="coerce")
        colours.append(v.rank(pct=True).to_numpy(dtype="float64"))
    return colours
