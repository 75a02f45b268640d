"""The training spec: what to train, every automatic choice resolved, each with its reason.

One shape from the request to the model card:

- `TrainRequest` is what a user asks (the API's `JobCreate` and `tabpilot train`'s options);
  None means "choose for me".
- `TrainSpec.resolve(request, profile)` checks a request against a dataset's profile (a job at
  creation, without reading the file) and fills in the problem type, the metric and the time
  budget with the reason for each. Every problem is reported at once, keyed by its field.
- `TrainSpec.from_request(request)` makes a spec without a profile (`tabpilot train`): the
  checks that need no data; what needs the data is decided by the engine when training.
- `to_dict` / `from_dict`: a job stores `spec.to_dict()`; the worker rebuilds it with
  `from_dict`, which also reads specs stored by earlier versions.
- The engine trains from a `TrainSpec` and keeps its reasons for the model card and report.

Adding a training option touches: here, a field in `TrainRequest` (its `doc` metadata is the
API's description) and in `TrainSpec`, and its check in `_FIELD_CHECKS` (an option checked
against the dataset also goes in `_DATA_FIELDS` and a step of `_Resolution`); the engine code
that uses it; a flag in `cli/training.py`. The API's `JobCreate` and `JobSpec`, the service,
the stored job, the worker and `from_dict` follow without a change.

Plain Python (pandas through the profile only): the API validates with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from tabpilot.engine.budget import MAX_BUDGET, MIN_BUDGET, auto_budget
from tabpilot.engine.choices import DEFAULT_METRIC, ESTIMATORS, METRICS
from tabpilot.engine.data.columns import detect_useless_column
from tabpilot.engine.data.problem import (
    PROBLEM_CHOICES,
    USER_CHOICE,
    ProblemType,
    can_decide,
    decide_problem,
)
from tabpilot.engine.data.profiling import DatasetProfile
from tabpilot.errors import InvalidInput

ProblemChoice = Literal["binary", "multiclass", "regression", "classification"]

MAX_SEED = 2**31 - 1
MIN_TEST_SIZE, MAX_TEST_SIZE = 0.05, 0.5
DEFAULT_TEST_SIZE = 0.2
# The reason recorded for a value the user gave.
SET_BY_USER = "set by you"
DEFERRED = "detected from the data when the job runs"
_RESOLVED = tuple(str(p) for p in ProblemType)


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True, kw_only=True)
class TrainRequest:
    """What a user asks to train; everything but the target is optional (None: automatic).

    Values are not checked yet: `TrainSpec.resolve` or `TrainSpec.from_request` check them.
    Each field's `doc` metadata is its description in the API.
    """

    target: str = field(metadata=_doc("The column to predict."))
    problem_type: ProblemChoice | None = field(
        default=None,
        metadata=_doc(
            "Detected from the target when absent; classification lets the class count "
            "choose binary or multiclass."
        ),
    )
    metric: str | None = field(
        default=None,
        metadata=_doc(
            "What the search optimises. binary: roc_auc (default), log_loss, accuracy, f1, "
            "macro_f1; multiclass: log_loss (default), roc_auc, accuracy, macro_f1; "
            "regression: rmse (default), mae, r2, mape."
        ),
    )
    time_budget: float | None = field(
        default=None,
        metadata=_doc(
            f"Seconds for the whole run, {MIN_BUDGET:.0f} to {MAX_BUDGET:.0f}. When absent it "
            "is chosen from the data size and the reply says what and why."
        ),
    )
    include: Sequence[str] = field(
        default=(),
        metadata=_doc("Columns to use even if they look useless (identifiers, constants...)."),
    )
    exclude: Sequence[str] = field(default=(), metadata=_doc("Columns never to use."))
    estimators: Sequence[str] | None = field(
        default=None,
        metadata=_doc(f"Model kinds to search: {', '.join(ESTIMATORS)}. Default: all."),
    )
    seed: int | None = field(default=None, metadata=_doc("Random seed (default 0)."))
    test_size: float | None = field(
        default=None,
        metadata=_doc(
            f"Share of the rows held out for the final scores, {MIN_TEST_SIZE} to "
            f"{MAX_TEST_SIZE} (default {DEFAULT_TEST_SIZE})."
        ),
    )


# -- the checks of single values (no data needed) ------------------------------------------------


def _names(value: Any) -> tuple[str, ...]:
    """A tuple of names from a list, or from comma-separated text."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))


def check_names(
    option: str, values: Iterable[str] | None, allowed: Sequence[str], what: str
) -> tuple[str, ...] | None:
    """`values` without repeats, or InvalidInput naming the unknown ones and the allowed."""
    if values is None:
        return None
    names = tuple(dict.fromkeys(str(v) for v in values))
    known = set(allowed)  # a set: checking n names against m must not cost n x m
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(
            f"Unknown {what} {shown_names(unknown, quote=True)} in {option}; "
            f"{what}s are: {shown_names(allowed)}"
        )
    return names


MAX_NAMES_SENT = 10_000
"""Most names `include`, `exclude` or `estimators` may list (the API refuses longer lists
before any check; the checks themselves are linear)."""

SHOWN_NAMES = 20
"""Messages list at most this many names (a request may carry thousands)."""


def shown_names(names: Sequence[str], *, quote: bool = False) -> str:
    """The first `SHOWN_NAMES` of `names`, comma-separated, with how many more there are."""
    head = [repr(n) if quote else str(n) for n in names[:SHOWN_NAMES]]
    more = len(names) - len(head)
    return ", ".join(head) + (f" and {more:,} more" if more > 0 else "")


def _check_target(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput("target: give the name of the column to predict")
    return value


def _check_problem_type(value: Any) -> str | None:
    if value is None:
        return None
    choice = str(value).strip().lower()
    if choice not in PROBLEM_CHOICES:
        raise InvalidInput(
            f'Unknown problem type "{value}"; use one of: {", ".join(PROBLEM_CHOICES)}.'
        )
    return choice


def _check_metric(value: Any, problem_type: str | None) -> str | None:
    if value is None:
        return None
    name = str(value).strip().lower()
    if name not in METRICS:
        raise InvalidInput(f'Unknown metric "{value}"; metrics are: ' + ", ".join(METRICS))
    if problem_type in _RESOLVED and problem_type not in METRICS[name].problems:
        allowed = [m for m, spec in METRICS.items() if problem_type in spec.problems]
        raise InvalidInput(
            f'Metric "{name}" is not available for {problem_type} problems; '
            f"use one of: {', '.join(allowed)}"
        )
    return name


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_budget(value: Any) -> float | None:
    if value is None:
        return None
    if not _number(value) or not math.isfinite(value) or not MIN_BUDGET <= value <= MAX_BUDGET:
        shown = f"{value:g} s" if _number(value) else repr(value)
        raise InvalidInput(
            f"Time budget {shown} is out of range: it must be between {MIN_BUDGET:.0f} and "
            f"{MAX_BUDGET:.0f} seconds; leave it out to have one chosen from the data size"
        )
    return float(value)


def _check_estimators(value: Any) -> tuple[str, ...] | None:
    names = check_names("estimators", value, list(ESTIMATORS), "estimator")
    if names is not None and not names:
        raise InvalidInput(
            f"estimators: give at least one of {', '.join(ESTIMATORS)}, or leave it out "
            "to search them all"
        )
    return names


def _check_seed(value: Any) -> int:
    seed = 0 if value is None else value
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidInput(f"seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}")
    return seed


def _check_test_size(value: Any) -> float:
    size = DEFAULT_TEST_SIZE if value is None else value
    if not _number(size) or not MIN_TEST_SIZE <= size <= MAX_TEST_SIZE:
        raise InvalidInput(
            f"test_size: the held-out share must be between {MIN_TEST_SIZE} and "
            f"{MAX_TEST_SIZE}, not {size!r}"
        )
    return float(size)


def _check_columns(spec: TrainSpec) -> None:
    if spec.target in spec.include or spec.target in spec.exclude:
        option = "include" if spec.target in spec.include else "exclude"
        raise InvalidInput(
            f'{option}: "{spec.target}" is the target; it cannot be included or excluded'
        )
    both = sorted(set(spec.include) & set(spec.exclude))
    if both:
        raise InvalidInput(f"Column(s) both included and excluded: {shown_names(both)}")


# Field -> its check (value, the spec being built or None) -> the normalised value, run in
# this order. `TrainSpec()` runs them all; `TrainSpec.resolve` runs those not in _DATA_FIELDS
# and checks those against the profile.
_FIELD_CHECKS: dict[str, Callable[[Any, TrainSpec | None], Any]] = {
    "target": lambda v, s: _check_target(v),
    "problem_type": lambda v, s: _check_problem_type(v),
    "metric": lambda v, s: _check_metric(v, s.problem_type if s else None),
    "time_budget": lambda v, s: _check_budget(v),
    "include": lambda v, s: _names(v),
    "exclude": lambda v, s: _names(v),
    "estimators": lambda v, s: _check_estimators(v),
    "seed": lambda v, s: _check_seed(v),
    "test_size": lambda v, s: _check_test_size(v),
}


_DATA_FIELDS = frozenset({"target", "problem_type", "metric", "time_budget", "include", "exclude"})
# The reason recorded when the user gave the value of an automatic choice.
_USER_REASONS = {"problem_type": USER_CHOICE, "metric": SET_BY_USER, "time_budget": SET_BY_USER}


def _problems_error(problems: dict[str, str]) -> InvalidInput:
    return InvalidInput("; ".join(problems.values()), details={"problems": problems})


# -- the spec --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSpec:
    """What to train, checked. A None choice is decided by the engine from the data.

    Each `*_reason` says why its value was chosen ("set by you", or the automatic choice's
    reason); it is empty while the value is not chosen yet. `problem_type` is "binary",
    "multiclass" or "regression" once checked against the data, or None / "classification"
    before. Constructing one checks every value that needs no data (InvalidInput, with
    `details["problems"]` by field).
    """

    target: str
    problem_type: str | None = None
    problem_type_reason: str = ""
    metric: str | None = None
    metric_reason: str = ""
    time_budget: float | None = None
    time_budget_reason: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    estimators: tuple[str, ...] | None = None
    seed: int = 0
    test_size: float = DEFAULT_TEST_SIZE
    dataset_name: str | None = None  # for display and text search of jobs

    def __post_init__(self) -> None:
        problems: dict[str, str] = {}
        for name, check in _FIELD_CHECKS.items():
            try:
                # Frozen: normalised values (lower-case names, tuples) are set this way once.
                object.__setattr__(self, name, check(getattr(self, name), self))
            except InvalidInput as exc:
                problems[name] = exc.message
        if "include" not in problems and "exclude" not in problems:
            try:
                _check_columns(self)
            except InvalidInput as exc:
                problems["exclude"] = exc.message
        if problems:
            raise _problems_error(problems)

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_request(cls, request: TrainRequest, *, dataset_name: str | None = None) -> TrainSpec:
        """A spec from `request` without a profile: values the user gave are checked and
        recorded as theirs; the automatic choices are left to the engine."""
        asked = {f.name: getattr(request, f.name) for f in fields(TrainRequest)}
        given = {k: v for k, v in asked.items() if v is not None and v != ""}
        reasons = {f"{k}_reason": why for k, why in _USER_REASONS.items() if k in given}
        return cls(**given, **reasons, dataset_name=dataset_name)

    @classmethod
    def resolve(
        cls, request: TrainRequest, profile: DatasetProfile, *, dataset_name: str | None = None
    ) -> TrainSpec:
        """Check `request` against a dataset's profile and resolve every automatic choice.

        Raises:
            InvalidInput: listing every problem found (`details["problems"]` maps each
                request field to its message).
        """
        return _Resolution(request, profile, dataset_name).spec()

    # -- storing ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the job's stored spec."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("include", "exclude"):
            out[key] = list(out[key])
        if self.estimators is not None:
            out["estimators"] = list(self.estimators)
        return out

    def options(self) -> dict[str, Any]:
        """The training options alone (no reasons, no dataset name), in field order."""
        return {
            k: v
            for k, v in self.to_dict().items()
            if not k.endswith("_reason") and k != "dataset_name"
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSpec:
        """The spec a job stored (by this version or an earlier one); unknown keys are ignored.

        Raises:
            InvalidInput: no target, or a value of the wrong type or out of range.
        """
        if not data.get("target"):
            raise InvalidInput("The job names no target column; create it again with a target.")
        try:
            # Stored values are JSON: coerced to each field's type, then checked as usual.
            values = {k: _COERCE[k](v) for k, v in data.items() if k in _COERCE and v is not None}
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"The job's training options are invalid ({exc}); create it again."
            ) from None
        return cls(**values)


def _coercion(hint: Any) -> Callable[[Any], Any]:
    """How a stored JSON value becomes a value of a field with type `hint`."""
    if get_origin(hint) is tuple:
        return _names
    if get_origin(hint) in (Union, UnionType):
        inner = _coercion(next(a for a in get_args(hint) if a is not type(None)))
        return (lambda v: inner(v) or None) if inner is _names else inner
    return hint if hint in (str, int, float) else (lambda v: v)


_COERCE = {name: _coercion(hint) for name, hint in get_type_hints(TrainSpec).items()}


# -- checking a request against a profile ---------------------------------------------------------


class _Resolution:
    """One `TrainSpec.resolve`: every check, each problem recorded under its field."""

    def __init__(
        self, request: TrainRequest, profile: DatasetProfile, dataset_name: str | None
    ) -> None:
        self.request = request
        self.dataset_name = dataset_name
        self.profile = profile
        self.n_rows = int(profile.n_rows)
        self.names = [c.name for c in profile.columns]
        self.problems: dict[str, str] = {}
        self.values: dict[str, Any] = {"target": request.target}

    def check(self, name: str, check: Callable[[], Any]) -> Any:
        """Run `check`; its InvalidInput becomes the problem of `name` (the first one wins)."""
        try:
            return check()
        except InvalidInput as exc:
            self.problems.setdefault(name, exc.message)
            return None

    def spec(self) -> TrainSpec:
        req = self.request
        self.decide_problem()
        self.choose_metric()
        n_features = self.check_columns()
        self.choose_budget(n_features)
        for name, check in _FIELD_CHECKS.items():  # the options that need no data
            if name not in _DATA_FIELDS:
                value = getattr(req, name)
                self.values[name] = self.check(name, lambda c=check, v=value: c(v, None))
        if self.problems:
            raise _problems_error(self.problems)
        return TrainSpec(dataset_name=self.dataset_name, **self.values)

    def decide_problem(self) -> None:
        req = self.request
        target = req.target
        if target not in self.names:
            where = f'dataset "{self.dataset_name}"' if self.dataset_name else "the dataset"
            self.problems["target"] = (
                f'Column "{target}" not found in {where}; columns are: {shown_names(self.names)}'
            )
            return
        column = self.profile.column(target)
        if not req.problem_type and not can_decide(column):
            self.values["problem_type_reason"] = DEFERRED
            return
        key = "problem_type" if req.problem_type else "target"
        decision = self.check(
            key, lambda: decide_problem(column, self.n_rows, override=req.problem_type)
        )
        if decision is not None:
            self.values["problem_type"] = str(decision.problem_type)
            self.values["problem_type_reason"] = (
                decision.reason if req.problem_type else f"detected: {decision.reason}"
            )

    def choose_metric(self) -> None:
        problem = self.values.get("problem_type")
        if self.request.metric is not None:
            metric = self.check("metric", lambda: _check_metric(self.request.metric, problem))
            self.values.update(metric=metric, metric_reason=SET_BY_USER)
        elif problem is not None:
            self.values["metric"] = DEFAULT_METRIC[ProblemType(problem)]
            self.values["metric_reason"] = f"the default for {problem} problems"

    def check_columns(self) -> int:
        """Check include/exclude; the number of usable feature columns (0 if unknown)."""
        req = self.request
        target = req.target
        chosen: dict[str, tuple[str, ...]] = {}
        for option in ("include", "exclude"):
            names = self.check(
                option, lambda o=option: check_names(o, getattr(req, o), self.names, "column")
            )
            if names is not None and target in names:
                self.problems[option] = (
                    f'"{target}" is the target; it cannot be included or excluded'
                )
            chosen[option] = names or ()
        self.values.update(chosen)
        both = sorted(set(chosen["include"]) & set(chosen["exclude"]))
        if both:
            self.problems["exclude"] = f"Column(s) both included and excluded: {shown_names(both)}"
        if target not in self.names or {"include", "exclude"} & set(self.problems):
            return 0
        return self.count_features(frozenset(chosen["include"]), frozenset(chosen["exclude"]))

    def count_features(self, include: frozenset[str], exclude: frozenset[str]) -> int:
        dropped: list[str] = []
        n_features = 0
        for col in self.profile.columns:
            if col.name == self.request.target:
                continue
            if col.name in exclude:
                dropped.append(f"{col.name}: excluded by you")
                continue
            useless = detect_useless_column(col, self.n_rows)
            if useless is not None and col.name not in include:
                dropped.append(f"{col.name}: {useless.detail}")
                continue
            n_features += 1
        if n_features == 0:
            self.problems["include"] = (
                "No usable feature columns remain: "
                + ("; ".join(dropped) or "the dataset has only the target column")
                + ". Add columns to include to force them in."
            )
        return n_features

    def choose_budget(self, n_features: int) -> None:
        budget = self.request.time_budget
        if budget is None:
            seconds, reason = auto_budget(self.n_rows, max(n_features, 1))
            self.values.update(time_budget=seconds, time_budget_reason=reason)
            return
        checked = self.check("time_budget", lambda: _check_budget(budget))
        self.values.update(time_budget=checked, time_budget_reason=SET_BY_USER)
