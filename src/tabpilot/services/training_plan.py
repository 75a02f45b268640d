"""What training would do with a stored dataset, before any job exists: the dataset page's
questions, answered from the profile stored at upload (pandas-free reading, no file access).

- `column_uses(dataset, target=..., include=..., exclude=...)`: for every column, whether
  training would learn from it, as which kind of feature, or why it would be left out (the
  engine's own `detect_useless_column` and `feature_spec`).
- `preview_target(dataset, target)`: the problem type the target gives with its reason, the
  automatic metric and time budget with theirs (`TrainSpec.resolve`, as `create_job` does),
  the metrics valid for that problem type, and the target's class balance or distribution.

Exact copies of another column and suspected leakage need the rows: training finds those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tabpilot.engine.choices import DEFAULT_METRIC, METRICS, MetricSpec
from tabpilot.engine.data.columns import detect_useless_column, feature_spec
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.data.profiling import ColumnKind, ColumnProfile, DatasetProfile
from tabpilot.engine.spec import TrainSpec
from tabpilot.errors import InvalidInput
from tabpilot.records import DatasetRecord
from tabpilot.services.jobs import JobRequest, build_job_spec

# How each kind of feature is prepared (engine/training/preprocess.py does it; that module
# needs scikit-learn, which the API process never imports, so the words are kept here short).
FEATURE_USES: dict[str, str] = {
    "numeric": "a number (missing values filled with the median)",
    "boolean": "a 1/0 flag",
    "categorical": "categories (one-hot or integer codes; missing is a category of its own)",
    "datetime": "date parts (year, month, day, day of week...) used as numbers",
    "text": "text (the presence of its frequent words)",
}


@dataclass(frozen=True)
class ColumnUse:
    """What training would do with one column: `role` is "target", "feature" or "dropped";
    `feature_kind` is the kind of feature for a used column; `reason` says why."""

    name: str
    role: str
    reason: str
    feature_kind: str | None = None
    forced: bool = False  # the user's include/exclude decided it, not the detection

    @property
    def used(self) -> bool:
        return self.role == "feature"


@dataclass(frozen=True)
class Share:
    """One bar of a class balance: a class (or "other classes") and its rows."""

    label: str
    count: int
    fraction: float


@dataclass(frozen=True)
class TargetPreview:
    """What a job on `target` would be, as far as the stored profile tells.

    `spec` is the resolved spec with default options (None when the target cannot be used;
    `problems` then says why, by request field). `metrics` are those valid for the problem
    type (all of them while it is unknown); `default_metric` is the automatic choice.
    """

    column: ColumnProfile
    spec: TrainSpec | None
    problems: dict[str, str]
    metrics: list[MetricSpec]
    default_metric: str | None
    classes: list[Share] = field(default_factory=list)
    n_present: int = 0

    @property
    def problem_type(self) -> str | None:
        return self.spec.problem_type if self.spec is not None else None

    @property
    def is_classification(self) -> bool:
        return self.problem_type in (ProblemType.BINARY, ProblemType.MULTICLASS)


def stored_profile(dataset: DatasetRecord) -> DatasetProfile:
    stored = dataset.profile if isinstance(dataset.profile, dict) else {}
    return DatasetProfile.from_dict(stored, n_rows=int(dataset.n_rows))


def column_uses(
    dataset: DatasetRecord,
    *,
    target: str | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[ColumnUse]:
    """Every column's use in training on `target` (None: no target chosen yet), in file order."""
    profile = stored_profile(dataset)
    return [
        _column_use(col, profile.n_rows, target=target, include=include, exclude=exclude)
        for col in profile.columns
    ]


def _column_use(
    col: ColumnProfile,
    n_rows: int,
    *,
    target: str | None,
    include: Sequence[str],
    exclude: Sequence[str],
) -> ColumnUse:
    if col.name == target:
        return ColumnUse(col.name, "target", "the column to predict")
    if col.name in exclude:
        return ColumnUse(col.name, "dropped", "left out by you", forced=True)
    useless = detect_useless_column(col, n_rows)
    kind = feature_spec(col).kind
    if useless is not None and col.name not in include:
        return ColumnUse(col.name, "dropped", useless.detail)
    if useless is not None:
        reason = f"kept because you included it, though {useless.detail}"
        return ColumnUse(col.name, "feature", reason, feature_kind=kind, forced=True)
    return ColumnUse(col.name, "feature", f"used as {FEATURE_USES[kind]}", feature_kind=kind)


def valid_metrics(problem_type: str | None) -> list[MetricSpec]:
    """The metrics a user may choose for `problem_type` (every one while it is unknown)."""
    if problem_type not in tuple(ProblemType):
        return list(METRICS.values())
    problem = ProblemType(problem_type)
    return [m for m in METRICS.values() if problem in m.problems]


def preview_target(
    dataset: DatasetRecord, target: str, *, problem_type: str | None = None
) -> TargetPreview:
    """The problem type, automatic choices and class balance a job on `target` would get
    (with `problem_type` as the user's choice when given).

    Raises:
        InvalidInput: `target` is not a column of the dataset.
    """
    profile = stored_profile(dataset)
    try:
        column = profile.column(target)
    except KeyError:
        names = ", ".join(c.name for c in profile.columns)
        raise InvalidInput(
            f'Column "{target}" not found in dataset "{dataset.name}"; columns are: {names}',
            details={"problems": {"target": f'Column "{target}" not found'}},
        ) from None
    spec: TrainSpec | None = None
    problems: dict[str, str] = {}
    try:
        request = JobRequest(dataset_id=dataset.id, target=target, problem_type=problem_type)
        spec = build_job_spec(dataset, request)
    except InvalidInput as exc:
        problems = dict(exc.details.get("problems") or {"target": exc.message})
    problem = spec.problem_type if spec is not None else None
    default = DEFAULT_METRIC[ProblemType(problem)] if problem in tuple(ProblemType) else None
    n_present = max(profile.n_rows - column.n_missing, 0)
    classes: list[Share] = []
    if problem in (ProblemType.BINARY, ProblemType.MULTICLASS) or (
        problem is None and column.kind != ColumnKind.NUMERIC
    ):
        classes = class_shares(column, n_present)
    return TargetPreview(
        column=column,
        spec=spec,
        problems=problems,
        metrics=valid_metrics(problem),
        default_metric=default,
        classes=classes,
        n_present=n_present,
    )


def class_shares(column: ColumnProfile, n_present: int) -> list[Share]:
    """The profile's most frequent values with their share of the rows that have a value; the
    rest (when the profile lists only the top values) as one "other classes" bar."""
    if n_present <= 0:
        return []
    shares = [Share(v, c, c / n_present) for v, c in column.top_values]
    rest = n_present - sum(c for _, c in column.top_values)
    if rest > 0:
        others = column.n_distinct - len(column.top_values)
        label = f"{others} other classes" if others > 1 else "other classes"
        shares.append(Share(label, rest, rest / n_present))
    return shares


# Percentiles the profile keeps for numbers, in order, with the share of rows between them.
_QUANTILES = ("min", "p05", "p25", "median", "p75", "p95", "max")
_QUANTILE_SHARES = (0.05, 0.20, 0.25, 0.25, 0.20, 0.05)


def distribution_bins(column: ColumnProfile, n_present: int) -> tuple[list[float], list[float]]:
    """Bin edges and row densities of a numeric column, approximated from its stored
    percentiles (min, 5 %, 25 %, median, 75 %, 95 %, max): the profile keeps no histogram.
    Empty when the column has no such statistics."""
    stats = column.stats
    if not all(isinstance(stats.get(k), int | float) for k in _QUANTILES):
        return [], []
    edges: list[float] = []
    rows: list[float] = []
    points = [float(stats[k]) for k in _QUANTILES]
    for i, share in enumerate(_QUANTILE_SHARES):
        lo, hi = points[i], points[i + 1]
        if hi <= lo:  # a run of equal values: fold its rows into the next bin
            continue
        if not edges:
            edges.append(lo)
        elif edges[-1] != lo:
            edges.append(lo)
            rows.append(0.0)
        edges.append(hi)
        rows.append(share * n_present / (hi - lo))
    return edges, rows
