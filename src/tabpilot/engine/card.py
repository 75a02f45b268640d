"""The model card (model.json): everything known about a trained model, typed.

Written by export (`engine/training/export.py`) and read by everyone else: the predictor, the
services, the API and the CLI. `to_dict` gives the JSON of model.json; `from_dict` reads any
card written so far (a missing part gets an empty default, and keys this version does not know
are kept in `extra` and written back), so existing bundles and model records keep loading.

Plain Python: the API reads cards without the training libraries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CardMetric:
    """The metric the model was chosen by."""

    name: str
    label: str
    greater_is_better: bool

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CardMetric:
        return cls(
            name=str(data.get("name") or ""),
            label=str(data.get("label") or data.get("name") or ""),
            greater_is_better=bool(data.get("greater_is_better", True)),
        )


_FEATURE_CORE = ("name", "kind", "profile_kind", "dtype", "missing_fraction", "n_distinct")


@dataclass(frozen=True)
class CardFeature:
    """A feature column as seen in training: its kind, and its allowed values or range.

    `details` holds the parts that exist for some kinds only, as written (datetime:
    `has_time`, `inputs`; numeric and datetime: `min`, `max`; text: `note`; categorical and
    boolean: `values`, `values_note`).
    """

    name: str
    kind: str  # numeric, categorical, boolean, datetime or text (see `FeatureSpec`)
    profile_kind: str = ""
    dtype: str = ""
    missing_fraction: float = 0.0
    n_distinct: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def has_time(self) -> bool:
        return bool(self.details.get("has_time", False))

    @property
    def values(self) -> list[str] | None:
        """The allowed values of a categorical or boolean feature (the most frequent)."""
        values = self.details.get("values")
        return None if values is None else [str(v) for v in values]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _FEATURE_CORE} | self.details

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CardFeature:
        core = {k: data[k] for k in _FEATURE_CORE if k in data}
        return cls(**core, details={k: v for k, v in data.items() if k not in _FEATURE_CORE})


@dataclass(frozen=True)
class CardInput:
    """One input of the ONNX graph: its name, the model input column it takes, its type."""

    name: str
    column: str
    type: str  # float32 or string

    @property
    def numeric(self) -> bool:
        return self.type == "float32"


@dataclass(frozen=True)
class CardRows:
    total: int = 0
    used: int = 0
    train: int = 0
    test: int = 0
    valid: int = 0  # validation rows that chose the model (0: chosen on out-of-fold outputs)
    removed: list[dict[str, Any]] = field(default_factory=list)  # {"rows", "reason"}


@dataclass(frozen=True)
class CardSplit:
    test_size: float = 0.2
    stratified: bool = False
    seed: int = 0


@dataclass(frozen=True)
class CardBudget:
    seconds: float = 0.0
    reason: str = ""
    elapsed: float | None = None


@dataclass(frozen=True)
class CardChosen:
    name: str = ""
    description: str = ""


@dataclass(frozen=True)
class CardOptions:
    """What the training spec asked for (None: chosen automatically by the run)."""

    metric: str | None = None
    problem_type: str | None = None
    time_budget: float | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    estimators: list[str] = field(default_factory=list)
    seed: int = 0


@dataclass(frozen=True)
class CardEvaluation:
    """The chosen model's held-out evaluation, ready to draw (computed by
    `engine.training.evaluation`; empty in cards written before it existed).

    Classification: `curves`, one per class drawn (the positive class of a binary problem),
    each {"label", "index", "auc", "average_precision", "roc": {"x": fpr, "y": tpr},
    "pr": {"x": recall, "y": precision}}, at most a few hundred points; `curve_note` says which
    classes; `calibration` {"name", "note", "bins": [{"predicted", "observed", "rows"}]}.
    Regression: `scatter` {"actual": [...], "predicted": [...]} (a sample of at most 500 rows),
    `residuals` {"mean", "std", "quantiles": {"min", "q05", ..., "max"},
    "histogram": {"edges", "counts"}} (actual − predicted, all rows), `error_bins`
    [{"lo", "hi", "rows", "actual", "predicted", "mae", "bias"}] by range of the actual value.
    `rows`: the held-out rows it was computed from.
    """

    rows: int = 0
    curves: list[dict[str, Any]] = field(default_factory=list)
    curve_note: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)
    scatter: dict[str, list[float]] = field(default_factory=dict)
    residuals: dict[str, Any] = field(default_factory=dict)
    error_bins: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.curves or self.calibration.get("bins") or self.scatter)

    @property
    def calibration_bins(self) -> list[dict[str, Any]]:
        return list(self.calibration.get("bins") or [])


def _part(cls: type, data: Any) -> Any:
    """A card part from its dict, with the keys it knows (a missing part: all defaults)."""
    data = data if isinstance(data, dict) else {}
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def _as_dict(part: Any) -> dict[str, Any]:
    return {f.name: getattr(part, f.name) for f in fields(part)}


@dataclass(frozen=True)
class ModelCard:
    """Everything known about a model; the JSON of model.json is `to_dict()`."""

    target: str
    problem_type: str  # binary, multiclass or regression
    problem_reason: str
    metric: CardMetric
    features: list[CardFeature]
    inputs: list[CardInput]
    classes: list[Any] | None = None
    format_version: int = FORMAT_VERSION
    tabpilot_version: str = ""
    created_at: str = ""
    source: str | None = None  # the training file's name
    dropped_columns: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    rows: CardRows = field(default_factory=CardRows)
    split: CardSplit = field(default_factory=CardSplit)
    # {"holdout": {metric: value}, "baseline": {metric: value}}
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    chosen: CardChosen = field(default_factory=CardChosen)
    estimator: dict[str, Any] = field(default_factory=dict)  # {"class", "params"}
    decisions: list[str] = field(default_factory=list)
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    feature_importance: list[dict[str, Any]] = field(default_factory=list)
    importance_note: str = ""
    budget: CardBudget = field(default_factory=CardBudget)
    timings: dict[str, float] = field(default_factory=dict)
    refit_on_all_rows: bool = False
    # How each figure was obtained: "selection" ("out_of_fold" or "validation"), "folds" or
    # "validation_rows", "bagged", "holdout" and "chosen_by" (sentences), "selection_score",
    # "source" (portfolio, search, blend, baseline), "final_model"; {} in older cards.
    evaluation_method: dict[str, Any] = field(default_factory=dict)
    options: CardOptions = field(default_factory=CardOptions)
    evaluation: CardEvaluation = field(default_factory=CardEvaluation)
    versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {sha256, bytes}
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    # -- reading -----------------------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def holdout(self) -> dict[str, Any]:
        return dict(self.metrics.get("holdout") or {})

    @property
    def baseline(self) -> dict[str, Any]:
        return dict(self.metrics.get("baseline") or {})

    @property
    def score(self) -> Any:
        """The held-out score of the metric the model was chosen by (None if unknown)."""
        return self.holdout.get(self.metric.name) if self.metric.name else None

    def file_sha256(self, name: str) -> str | None:
        """The sha256 recorded for bundle file `name`, or None."""
        return stored_file_sha256({"files": self.files}, name)

    # -- JSON --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON of model.json, in its usual key order."""
        out: dict[str, Any] = {
            "format_version": self.format_version,
            "tabpilot_version": self.tabpilot_version,
            "created_at": self.created_at,
            "source": self.source,
            "target": self.target,
            "problem_type": self.problem_type,
            "problem_reason": self.problem_reason,
            "classes": self.classes,
            "metric": _as_dict(self.metric),
            "features": [f.to_dict() for f in self.features],
            "inputs": [_as_dict(i) for i in self.inputs],
            "dropped_columns": self.dropped_columns,
            "warnings": self.warnings,
            "rows": _as_dict(self.rows),
            "split": _as_dict(self.split),
            "metrics": self.metrics,
            "chosen": _as_dict(self.chosen),
            "estimator": self.estimator,
            "decisions": self.decisions,
            "leaderboard": self.leaderboard,
            "feature_importance": self.feature_importance,
            "importance_note": self.importance_note,
            "budget": _as_dict(self.budget),
            "timings": self.timings,
            "refit_on_all_rows": self.refit_on_all_rows,
            "evaluation_method": self.evaluation_method,
            "options": _as_dict(self.options),
            "evaluation": _as_dict(self.evaluation),
            "versions": self.versions,
            "files": self.files,
        }
        return out | self.extra

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """A card from model.json or a model record (any version so far)."""
        parts = {
            "metric": CardMetric.from_dict(data.get("metric") or {}),
            "features": [CardFeature.from_dict(f) for f in data.get("features") or []],
            "inputs": [_part(CardInput, i) for i in data.get("inputs") or []],
            "rows": _part(CardRows, data.get("rows")),
            "split": _part(CardSplit, data.get("split")),
            "chosen": _part(CardChosen, data.get("chosen")),
            "budget": _part(CardBudget, data.get("budget")),
            "options": _part(CardOptions, data.get("options")),
            "evaluation": _part(CardEvaluation, data.get("evaluation")),
        }
        known = {f.name for f in fields(cls)} - {"extra"}
        plain = {k: v for k, v in data.items() if k in known and k not in parts}
        for key in ("target", "problem_type", "problem_reason"):
            plain[key] = str(plain.get(key) or "")
        return cls(**plain, **parts, extra={k: v for k, v in data.items() if k not in known})


def stored_file_sha256(card: dict[str, Any], name: str) -> str | None:
    """`ModelCard.from_dict(card).file_sha256(name)` without reading the rest of the card:
    the prediction cache asks it on every request."""
    files = card.get("files")
    entry = files.get(name) if isinstance(files, dict) else None
    sha = entry.get("sha256") if isinstance(entry, dict) else None
    return str(sha) if sha else None
