"""Training: from a DataFrame and a `TrainSpec` to a fitted, evaluated, explained model.

The orchestrator: each step is a module of its own, timed against one budget whose plan is
made up front (`clock.py`), so the strong result is the one that always happens:

1. profile, decide the problem type and encode the target (`targets.py`), choose the
   features (with reasons);
2. split the rows (`holdout.py`): held-out test rows, only ever predicted for the reported
   metrics; on small data (at most `BAG_ROWS` training rows and `BAG_CELLS` cells) k folds
   of the training rows, above it a validation slice that nothing trains on;
3. the portfolio of strong default configurations trains first, in priority order
   (`portfolio.py` via `candidates.py`, `scoring.py`), each bagged on small data
   (`bagging.py`: out-of-fold predictions, the fold models averaged);
4. the refit on all rows is reserved, then FLAML's search gets the time that is left
   (`search.py`, the only module that imports FLAML); its best model of each kind joins the
   pool (bagged on small data, as trained on larger data);
5. a greedy weighted blend of the pool (`blend_pool.py`, `blend.py`), with temperatures for
   log loss (`calibrate.py`), and the best of blend, single models and a constant baseline
   is kept (`selection.py`): all chosen on out-of-fold or validation outputs, never on the
   held-out rows (the choice is recorded);
6. the chosen model (each member of a blend) is refitted on all rows, held-out rows
   included, in the time reserved for it (`refit.py`: on small data as a fold average drawn
   anew over every row); a part whose refit does not fit is kept as trained, and the
   decisions say so;
7. permutation importance of the chosen model as evaluated, on the held-out rows
   (`explain.py`), in the time left before export.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Idle OpenMP threads (LightGBM, XGBoost, scikit-learn) spin by default; on a busy 2-core
# machine two spinning pools slow each other down a hundredfold. Set before any pool starts;
# a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tabpilot.engine.budget import auto_budget
from tabpilot.engine.card import CardEvaluation
from tabpilot.engine.data.columns import FeaturePlan, build_feature_plan
from tabpilot.engine.data.problem import ProblemDecision
from tabpilot.engine.data.profiling import DatasetProfile, profile_frame
from tabpilot.engine.data.quality import MIN_TRAINING_ROWS
from tabpilot.engine.serialize import to_jsonable
from tabpilot.engine.spec import SET_BY_USER, TrainSpec
from tabpilot.engine.training.blend_pool import blend_candidate, pool_members
from tabpilot.engine.training.candidates import Candidate
from tabpilot.engine.training.clock import Clock
from tabpilot.engine.training.evaluation import holdout_evaluation
from tabpilot.engine.training.explain import FeatureImportance, compute_permutation_importance
from tabpilot.engine.training.holdout import Split, split_rows
from tabpilot.engine.training.leaderboard import build_leaderboard
from tabpilot.engine.training.metrics import (
    MetricSpec,
    evaluate_classification,
    evaluate_regression,
    resolve_metric,
)
from tabpilot.engine.training.model import TabpilotModel
from tabpilot.engine.training.outputs import output, score_output
from tabpilot.engine.training.pool import (
    PoolContext,
    reserve_refit,
    search_and_join,
    train_portfolio,
)
from tabpilot.engine.training.refit import RefitOutcome, refit_chosen
from tabpilot.engine.training.scoring import first_folds
from tabpilot.engine.training.search import SearchOutcome
from tabpilot.engine.training.selection import choose_winner
from tabpilot.engine.training.sizes import blend_size_limit
from tabpilot.engine.training.targets import Target, prepare_target
from tabpilot.errors import InvalidInput

MIN_ROWS = MIN_TRAINING_ROWS  # defined with the data-quality check that warns of it
# Below this many rows every model trains on one thread, unless the rows have this many cells
# (wide data: each boosting round's split search is long enough to share; a synthetic
# 3,000 x 800 table, 2 threads against 1: CatBoost 9.3 s against 16.0 s, LightGBM 3.8 s
# against 6.0 s).
PARALLEL_ROWS, PARALLEL_CELLS = 50_000, 1_000_000


def usable_cpus() -> int:
    """The cores a run may use: those this process may run on (a container's cpuset), at most
    OMP_NUM_THREADS when that is set. Ray sets it to a task's CPUs (the ray:// runner's
    `cpus`), so a job there keeps to its share instead of taking the whole node."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return max(1, cores)


@dataclass
class ProgressEvent:
    """What a progress display needs; sent to the `progress` callback."""

    phase: str
    elapsed: float
    budget: float
    message: str = ""
    trials: int = 0
    estimator: str | None = None
    best_score: float | None = None
    best_estimator: str | None = None


@dataclass
class TrainResult:
    """Everything a model card, a report and a bundle need."""

    model: TabpilotModel
    spec: TrainSpec  # as given: its reasons are the ones the card repeats
    problem: ProblemDecision
    metric: MetricSpec
    profile: DatasetProfile
    plan: FeaturePlan
    classes: list[Any] | None
    budget: float
    budget_reason: str
    n_rows: int
    n_train: int
    n_test: int
    rows_removed: list[dict[str, Any]]
    chosen: str
    chosen_description: str
    decisions: list[str]
    holdout_metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    leaderboard: list[dict[str, Any]]
    importance: list[FeatureImportance]
    importance_note: str
    search_history: list[dict[str, Any]]
    timings: dict[str, float]
    refit_on_all_rows: bool
    holdout: pd.DataFrame  # held-out raw rows with target, predictions and probabilities
    estimator_params: dict[str, Any] = field(default_factory=dict)
    # The chosen model's held-out curves or error charts, as the card keeps them.
    evaluation: CardEvaluation = field(default_factory=CardEvaluation)
    n_valid: int = 0  # validation rows (larger data; 0 when chosen on out-of-fold outputs)
    # How each figure was obtained: the card's `evaluation_method`.
    provenance: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[ProgressEvent], None]


def train(
    frame: pd.DataFrame,
    spec: TrainSpec,
    *,
    progress: ProgressFn | None = None,
    started: float | None = None,
    profile: DatasetProfile | None = None,
) -> TrainResult:
    """Train, evaluate and explain a model on `frame`.

    Args:
        frame: the data, as read by `engine.data.io.read_csv`.
        spec: what to learn and how; its automatic choices left open (None) are made
            here from the data, the others are kept with their reasons.
        progress: called with a `ProgressEvent` at each phase and search trial.
        started: `time.perf_counter()` when the run began (before reading the file), so the
            budget covers the whole run; defaults to now.
        profile: the frame's profile, if already computed.
    """
    with warnings.catch_warnings():
        # Convergence and dtype chatter from the libraries is not for the user's console;
        # what matters reaches them as decisions and metrics.
        warnings.simplefilter("ignore")
        return _Trainer(frame, spec, progress, started).run(profile)


def check_target(spec: TrainSpec, frame: pd.DataFrame) -> None:
    """Raise `InvalidInput` if `frame` has no column `spec.target` (a `TrainSpec` checked
    everything that needs no data when it was made)."""
    if spec.target not in frame.columns:
        raise InvalidInput(
            f'Target column "{spec.target}" not found; columns are: '
            + ", ".join(map(str, frame.columns)),
            details={"columns": [str(c) for c in frame.columns]},
        )


@dataclass
class _Plan:
    """What the run learns from: the usable rows and their target, the features, the metric."""

    target: Target
    plan: FeaturePlan
    metric: MetricSpec
    budget_reason: str


@dataclass
class _Evaluation:
    """The compared candidates, the chosen one and its held-out metrics beside the baseline's."""

    scored: list[Candidate]
    chosen: Candidate
    holdout_metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]


class _Trainer:
    """One run: the steps in order, sharing the clock, the decisions and the timings."""

    def __init__(
        self,
        frame: pd.DataFrame,
        spec: TrainSpec,
        progress: ProgressFn | None,
        started: float | None,
    ) -> None:
        self.frame = frame
        self.spec = spec
        self.progress = progress
        self.clock = Clock(
            started=time.perf_counter() if started is None else started,
            budget=spec.time_budget or 0.0,
        )
        self.timings: dict[str, float] = {}
        self.decisions: list[str] = []
        self.n_jobs = usable_cpus()

    def emit(self, phase: str, message: str = "", **kw: Any) -> None:
        if self.progress is not None:
            self.progress(
                ProgressEvent(
                    phase=phase,
                    elapsed=self.clock.elapsed(),
                    budget=self.clock.budget,
                    message=message,
                    **kw,
                )
            )

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        since = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - since, 3)

    # -- the flow ------------------------------------------------------------------------------

    def run(self, profile: DatasetProfile | None) -> TrainResult:
        check_target(self.spec, self.frame)
        with self._timed("profile"):
            self.emit("profiling", "profiling columns")
            profile = profile or profile_frame(self.frame)
        with self._timed("plan"):
            planned = self._plan(profile)
        with self._timed("prepare"):
            split = split_rows(
                planned.target,
                planned.plan,
                test_size=self.spec.test_size,
                seed=self.spec.seed,
            )
        if split.note:
            self.decisions.append(split.note)
        ctx = self._context(split, planned)
        with self._timed("portfolio"), _blas_threads(self.n_jobs):
            scored = train_portfolio(ctx)
            reserve_refit(ctx, scored)
        with self._timed("search"), _blas_threads(self.n_jobs):
            search = search_and_join(ctx, scored, lambda **kw: self.emit("searching", **kw))
        with self._timed("evaluate"):
            evaluation = self._evaluate(split, planned, scored)
        # The refit had its time reserved; importance takes what is left of the end's share.
        with self._timed("refit"):
            refit = self._refit(evaluation.chosen, split, planned)
        with self._timed("importance"):
            importance, importance_note = self._explain(evaluation.chosen, split, planned)
        return self._result(
            profile, planned, split, search, evaluation, refit, importance, importance_note
        )

    # -- steps ---------------------------------------------------------------------------------

    def _plan(self, profile: DatasetProfile) -> _Plan:
        """The usable rows and target, the features, the metric and the budget."""
        spec = self.spec
        target = prepare_target(
            self.frame,
            profile.column(spec.target),
            spec.problem_type,
            # A choice made before the run (at job creation) keeps the reason given then.
            reason=spec.problem_type_reason if spec.problem_type else "",
        )
        data, problem_type = target.data, target.problem.problem_type
        if len(data) < MIN_ROWS:
            raise InvalidInput(
                f"Only {len(data)} rows have a usable target; at least {MIN_ROWS} are needed."
            )
        metric = resolve_metric(spec.metric, problem_type)
        plan = build_feature_plan(
            data,
            profile,
            target=spec.target,
            problem_type=problem_type,
            include=spec.include,
            exclude=spec.exclude,
        )
        if len(data) < PARALLEL_ROWS and len(data) * len(plan.features) < PARALLEL_CELLS:
            # Threads cost more than they bring on small data, and a second busy pool
            # (another job, the user's browser) makes them much slower still.
            self.n_jobs = 1
        if spec.time_budget is None:
            self.clock.budget, budget_reason = auto_budget(len(data), len(plan.features))
        else:
            budget_reason = spec.time_budget_reason or SET_BY_USER
            self.clock.budget = float(spec.time_budget)
        return _Plan(target, plan, metric, budget_reason)

    def _context(self, split: Split, planned: _Plan) -> PoolContext:
        return PoolContext(
            split=split,
            problem=planned.target.problem.problem_type,
            metric=planned.metric,
            classes=planned.target.classes,
            clock=self.clock,
            decisions=self.decisions,
            seed=self.spec.seed,
            n_jobs=self.n_jobs,
            estimators=self.spec.estimators,
            test_size=self.spec.test_size,
            emit=self.emit,
        )

    def _evaluate(self, split: Split, planned: _Plan, scored: list[Candidate]) -> _Evaluation:
        """Blend the pool; choose among the blend, the single models and the baseline."""
        self.emit("evaluating", f"blending and choosing on {split.selection_words()}")
        metric = planned.metric
        problem, classes = planned.target.problem.problem_type, planned.target.classes
        blend = blend_candidate(
            pool_members(scored, classes),
            split.pre,
            problem,
            metric,
            y_selection=split.y_selection,
            y_test=split.y_test,
            classes=classes,
            by_cv=split.bagged,
            max_size=blend_size_limit(self.clock.export_window()),
        )
        baseline = scored[0]
        ordered = [*scored[1:], *([blend] if blend is not None else []), baseline]
        chosen = choose_winner(ordered, metric, self.decisions)
        _release(ordered, chosen)
        return _Evaluation(
            ordered,
            chosen,
            _holdout_metrics(chosen, split.y_test, classes, metric),
            _holdout_metrics(baseline, split.y_test, classes, metric),
        )

    def _explain(
        self, chosen: Candidate, split: Split, planned: _Plan
    ) -> tuple[list[FeatureImportance], str]:
        """Permutation importance of the chosen model on the held-out rows."""
        self.emit("explaining", "permutation importance on held-out rows")
        metric, classes = planned.metric, planned.target.classes
        light = first_folds(chosen.model)
        pipe = Pipeline([("pre", chosen.pipeline.named_steps["pre"]), ("model", light)])
        found, note = compute_permutation_importance(
            lambda X, y_rows: score_output(metric, y_rows, output(pipe, X, classes), classes),
            split.X_test,
            split.y_test,
            planned.plan.features,
            greater_is_better=metric.greater_is_better,
            seed=self.spec.seed,
            time_limit=self.clock.importance_limit(),
        )
        if light is not chosen.model:
            note += " (of bagged models, the first fold model: five times quicker)"
        return found, note

    def _refit(self, chosen: Candidate, split: Split, planned: _Plan) -> RefitOutcome:
        """The shipped model: the chosen one refitted on all rows, as far as time allows."""
        classes = planned.target.classes
        return refit_chosen(
            chosen,
            split,
            problem=planned.target.problem.problem_type,
            n_classes=0 if classes is None else len(classes),
            clock=self.clock,
            test_size=self.spec.test_size,
            decisions=self.decisions,
            emit=self.emit,
        )

    def _result(
        self,
        profile: DatasetProfile,
        planned: _Plan,
        split: Split,
        search: SearchOutcome | None,
        evaluation: _Evaluation,
        refit: RefitOutcome,
        importance: list[FeatureImportance],
        importance_note: str,
    ) -> TrainResult:
        target, chosen = planned.target, evaluation.chosen
        model = TabpilotModel(
            pipeline=refit.pipeline,
            features=planned.plan.features,
            problem_type=target.problem.problem_type,
            classes=target.classes,
            target=self.spec.target,
        )
        return TrainResult(
            model=model,
            spec=self.spec,
            problem=target.problem,
            metric=planned.metric,
            profile=profile,
            plan=planned.plan,
            classes=target.classes,
            budget=self.clock.budget,
            budget_reason=planned.budget_reason,
            n_rows=len(target.data),
            n_train=len(split.train_idx),
            n_test=len(split.test_idx),
            rows_removed=target.rows_removed,
            chosen=chosen.name,
            chosen_description=chosen.description,
            decisions=self.decisions,
            holdout_metrics=evaluation.holdout_metrics,
            baseline_metrics=evaluation.baseline_metrics,
            leaderboard=build_leaderboard(search, evaluation.scored, planned.metric),
            importance=importance,
            importance_note=importance_note,
            search_history=search.history if search is not None else [],
            timings=self.timings,
            refit_on_all_rows=refit.any,
            holdout=_holdout_frame(target, split, chosen),
            estimator_params=to_jsonable(
                refit.pipeline.named_steps["model"].get_params(deep=False)
            ),
            evaluation=holdout_evaluation(
                split.y_test, chosen.predictions, chosen.proba, target.classes, seed=self.spec.seed
            ),
            n_valid=split.n_valid,
            provenance=_provenance(split, chosen, refit),
        )


def _final_words(split: Split, refit: RefitOutcome) -> str:
    if refit.any and refit.kept:
        return (
            "refitted on all rows after the evaluation, except "
            f"{', '.join(refit.kept)} (as trained on the training rows: its refit did not fit "
            "in the time left)"
        )
    if refit.any:
        return "refitted on all rows after the evaluation"
    if split.bagged:
        return (
            f"the average of the {len(split.folds or ())} fold models, as evaluated (together "
            "they learned from every training row)"
        )
    return "as trained on the training rows, as evaluated"


def _blas_threads(n: int) -> Any:
    """At most `n` BLAS threads (the neural net's and linear models' matrix products): on a
    busy machine, more threads than the run's share of cores slow it several times over."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def _release(scored: list[Candidate], chosen: Candidate) -> None:
    """Drop the trained models that will not ship (memory: the pool can be large)."""
    keep = {id(chosen)}
    for cand in scored:
        if id(cand) not in keep and cand.source != "baseline":
            cand.pipeline = None  # type: ignore[assignment]
            cand.selection = None
    if chosen.blend is not None:
        for member in chosen.blend.members:
            member.selection = member.holdout = None  # type: ignore[assignment]


def _provenance(split: Split, chosen: Candidate, refit: RefitOutcome) -> dict[str, Any]:
    """How each figure of the card was obtained (the card's `evaluation_method`)."""
    if split.bagged:
        kind = {
            "selection": "out_of_fold",
            "folds": len(split.folds or ()) // split.repeats,
            "repeats": split.repeats,
            "bagged": chosen.source != "baseline",
        }
    else:
        kind = {"selection": "validation", "validation_rows": split.n_valid, "bagged": False}
    return kind | {
        "holdout": (
            f"{len(split.test_idx):,} held-out rows that no model trained on and that chose "
            "nothing (not the model, the blend weights or the temperatures)"
        ),
        "chosen_by": (
            f"the model, blend weights and temperatures were chosen on {split.selection_words()}"
        ),
        "selection_score": chosen.selection_score,
        "source": chosen.source,
        "final_model": _final_words(split, refit),
    }


def _holdout_metrics(
    cand: Candidate, y_test: np.ndarray, classes: list[Any] | None, metric: MetricSpec
) -> dict[str, Any]:
    """The candidate's held-out metrics, with the primary metric named."""
    if classes is not None:
        assert cand.proba is not None
        metrics = evaluate_classification(y_test, cand.predictions, cand.proba, len(classes))
    else:
        metrics = evaluate_regression(y_test, cand.predictions)
    metrics["primary"] = {"metric": metric.name, "value": cand.holdout_score}
    return metrics


def _holdout_frame(target: Target, split: Split, chosen: Candidate) -> pd.DataFrame:
    """The held-out raw rows with the chosen model's predictions and probabilities."""
    classes = target.classes
    holdout = target.data.iloc[split.test_idx].copy()
    holdout["__prediction__"] = (
        np.asarray(classes, dtype=object)[chosen.predictions]
        if classes is not None
        else chosen.predictions
    )
    if classes is not None and chosen.proba is not None:
        for j, label in enumerate(classes):
            holdout[f"__proba__{label}"] = chosen.proba[:, j]
    return holdout
