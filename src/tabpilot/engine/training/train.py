"""Training: from a DataFrame and options to a fitted, evaluated, explained model.

The only module that imports FLAML. The flow, each step timed against one budget:

1. profile, pick the problem type and the features (with reasons);
2. split off a held-out test set the search never sees (stratified for classification);
3. FLAML searches LightGBM, XGBoost, random forest, extra trees and a linear model;
4. the search's winner is compared with a plain default LightGBM, a default linear model, an
   average of the best model kinds, a weighted blend of all of them (`blend.py`) and a constant
   baseline, by cross-validation on small data and on the held-out rows otherwise, and the
   best is kept (the choice is recorded);
5. permutation importance on the held-out rows;
6. refit of the chosen model on all rows, when the budget allows.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Idle OpenMP threads (LightGBM, XGBoost, scikit-learn) spin by default; on a busy 2-core
# machine two spinning pools slow each other down a hundredfold. Set before any pool starts;
# a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from tabpilot.engine.budget import MAX_BUDGET, MIN_BUDGET, auto_budget
from tabpilot.engine.choices import ESTIMATORS
from tabpilot.engine.data.columns import FeaturePlan, build_feature_plan
from tabpilot.engine.data.inputs import input_columns, prepare_frame
from tabpilot.engine.data.problem import ProblemDecision, ProblemType, detect_problem_type
from tabpilot.engine.data.profiling import DatasetProfile, profile_frame
from tabpilot.engine.data.quality import MIN_TRAINING_ROWS
from tabpilot.engine.serialize import to_jsonable
from tabpilot.engine.training.blend import Blend, BlendMember, select_blend
from tabpilot.engine.training.calibrate import fit_temperature, scale, with_temperature
from tabpilot.engine.training.explain import FeatureImportance, compute_permutation_importance
from tabpilot.engine.training.metrics import (
    MetricSpec,
    evaluate_classification,
    evaluate_regression,
    resolve_metric,
    score,
)
from tabpilot.engine.training.model import TabpilotModel
from tabpilot.engine.training.preprocess import build_preprocessor
from tabpilot.errors import InvalidInput

log = logging.getLogger(__name__)

MIN_ROWS = MIN_TRAINING_ROWS  # defined with the data-quality check that warns of it
# Share of the time left after preparation that goes to the search; the rest pays for
# evaluation, importance, the refit on all rows, export and reports, which cost little on
# small data and more on large (above all the refit on all rows, which is worth more than
# the end of the search): from SEARCH_SHARE_SMALL at SMALL_ROWS training rows down to
# SEARCH_SHARE_LARGE at LARGE_ROWS.
SEARCH_SHARE_SMALL, SEARCH_SHARE_LARGE = 0.8, 0.6
# The refit on all rows happens if this share of the budget is still left after it, for the
# export and the reports.
REFIT_RESERVE = 0.06
SMALL_ROWS, LARGE_ROWS = 2_000, 20_000
# The best configuration of up to this many estimator kinds is averaged into an ensemble.
ENSEMBLE_SIZE = 3
# Up to this many training rows, candidates are chosen by CV_FOLDS-fold cross-validation on
# the training split instead of on the (then small and noisy) held-out split.
CV_SELECTION_ROWS, CV_FOLDS = 5_000, 5
# Members must score within 5% of the best member's validation loss (for scores where
# higher is better, within half the best's distance from 1).
ENSEMBLE_TOLERANCE = 0.05
# Temperatures are fitted on at least this many out-of-fold or held-out rows: on fewer, a
# near-separable problem's temperature rests on one or two uncertain rows.
MIN_CALIBRATION_ROWS = 500
# Permutation importance gets at least this long (a repeat or two on small data).
MIN_IMPORTANCE_SECONDS = 0.5
# Below this many rows every model trains on one thread.
PARALLEL_ROWS = 50_000
# Optional candidates are only fitted while they can finish before the search's share of
# the budget plus this share of what is left; the rest pays for importance, the refit,
# export and reports.
EVALUATION_SHARE = 0.5


@dataclass
class TrainOptions:
    target: str
    problem_type: str | None = None
    metric: str | None = None
    time_budget: float | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    estimators: tuple[str, ...] | None = None
    seed: int = 0
    test_size: float = 0.2


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
class Candidate:
    """One model compared on the held-out rows."""

    name: str
    description: str
    pipeline: Pipeline
    holdout_score: float
    fit_seconds: float
    predictions: np.ndarray
    proba: np.ndarray | None
    cv_score: float | None = None  # on the training split, when candidates are chosen by CV
    # A blend is not fitted as one model until it is chosen: `pipeline` is then unfitted and
    # predictions come from its members, each fitted on the training split.
    blend: Blend | None = None

    @property
    def selection_score(self) -> float:
        return self.holdout_score if self.cv_score is None else self.cv_score


@dataclass
class TrainResult:
    """Everything a model card, a report and a bundle need."""

    model: TabpilotModel
    options: TrainOptions
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


ProgressFn = Callable[[ProgressEvent], None]


def train(
    frame: pd.DataFrame,
    options: TrainOptions,
    *,
    progress: ProgressFn | None = None,
    started: float | None = None,
    profile: DatasetProfile | None = None,
) -> TrainResult:
    """Train, evaluate and explain a model on `frame`.

    Args:
        frame: the data, as read by `engine.data.io.read_csv`.
        options: what to learn and how.
        progress: called with a `ProgressEvent` at each phase and search trial.
        started: `time.perf_counter()` when the run began (before reading the file), so the
            budget covers the whole run; defaults to now.
        profile: the frame's profile, if already computed.
    """
    with warnings.catch_warnings():
        # Convergence and dtype chatter from the libraries is not for the user's console;
        # what matters reaches them as decisions and metrics.
        warnings.simplefilter("ignore")
        return _Trainer(frame, options, progress, started).run(profile)


class _Trainer:
    def __init__(
        self,
        frame: pd.DataFrame,
        options: TrainOptions,
        progress: ProgressFn | None,
        started: float | None,
    ) -> None:
        self.frame = frame
        self.options = options
        self.progress = progress
        self.started = time.perf_counter() if started is None else started
        self.budget = options.time_budget or 0.0
        self.timings: dict[str, float] = {}
        self.decisions: list[str] = []
        self.n_jobs = max(1, os.cpu_count() or 1)
        self.search_share = SEARCH_SHARE_LARGE

    # -- helpers -------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.budget - self.elapsed()

    def emit(self, phase: str, message: str = "", **kw: Any) -> None:
        if self.progress is not None:
            self.progress(
                ProgressEvent(
                    phase=phase, elapsed=self.elapsed(), budget=self.budget, message=message, **kw
                )
            )

    def _timed(self, name: str, since: float) -> None:
        self.timings[name] = round(time.perf_counter() - since, 3)

    # -- the flow ------------------------------------------------------------------------------

    def run(self, profile: DatasetProfile | None) -> TrainResult:
        opts = self.options
        frame = self.frame
        if opts.target not in frame.columns:
            raise InvalidInput(
                f'Target column "{opts.target}" not found; columns are: '
                + ", ".join(map(str, frame.columns)),
                details={"columns": [str(c) for c in frame.columns]},
            )
        if opts.time_budget is not None and not MIN_BUDGET <= opts.time_budget <= MAX_BUDGET:
            raise InvalidInput(
                f"Time budget {opts.time_budget:g} s is out of range: use {MIN_BUDGET:g} to "
                f"{MAX_BUDGET:g} seconds."
            )
        if opts.estimators:
            unknown = [e for e in opts.estimators if e not in ESTIMATORS]
            if unknown:
                raise InvalidInput(
                    f"Unknown estimator(s): {', '.join(unknown)}; use any of: "
                    + ", ".join(ESTIMATORS)
                )
        if not 0.05 <= opts.test_size <= 0.5:
            raise InvalidInput("The held-out share must be between 0.05 and 0.5.")

        t = time.perf_counter()
        self.emit("profiling", "profiling columns")
        profile = profile or profile_frame(frame)
        self._timed("profile", t)

        t = time.perf_counter()
        rows_removed: list[dict[str, Any]] = []
        data = frame
        missing_target = data[opts.target].isna()
        if missing_target.any():
            n = int(missing_target.sum())
            rows_removed.append({"rows": n, "reason": f'the target "{opts.target}" is missing'})
            data = data[~missing_target]
        problem = detect_problem_type(data[opts.target], override=opts.problem_type)
        if problem.problem_type.is_classification:
            data, classes, y = self._encode_classes(data, problem, rows_removed)
            if len(classes) == 2 and problem.problem_type == ProblemType.MULTICLASS:
                problem = ProblemDecision(ProblemType.BINARY, problem.reason, 2)
        else:
            classes = None
            y = data[opts.target].to_numpy(dtype="float64")
        if len(data) < MIN_ROWS:
            raise InvalidInput(
                f"Only {len(data)} rows have a usable target; at least {MIN_ROWS} are needed."
            )
        if len(data) < PARALLEL_ROWS:
            # Threads cost more than they bring on small data, and a second busy pool
            # (another job, the user's browser) makes them much slower still.
            self.n_jobs = 1
        metric = resolve_metric(opts.metric, problem.problem_type)
        plan = build_feature_plan(
            data,
            profile,
            target=opts.target,
            problem_type=problem.problem_type,
            include=opts.include,
            exclude=opts.exclude,
        )
        if opts.time_budget is None:
            self.budget, budget_reason = auto_budget(len(data), len(plan.features))
        else:
            self.budget, budget_reason = float(opts.time_budget), "set by the user"
        self._timed("plan", t)

        # Split before anything learns from the data.
        t = time.perf_counter()
        prepared = prepare_frame(data, plan.features)
        columns = input_columns(plan.features)
        idx = np.arange(len(data))
        n_test = max(round(len(data) * opts.test_size), len(classes or ()))
        stratify = y if classes is not None else None
        train_idx, test_idx = train_test_split(
            idx, test_size=n_test, random_state=opts.seed, stratify=stratify
        )
        X_train, X_test = prepared.iloc[train_idx], prepared.iloc[test_idx]
        y_train, y_test = y[train_idx], y[test_idx]
        order_by_target = problem.problem_type != ProblemType.MULTICLASS
        pre = build_preprocessor(X_train, columns, y_train, order_by_target=order_by_target)
        Xt_train = pre.fit_transform(X_train)
        self._timed("prepare", t)

        t = time.perf_counter()
        search = self._search(Xt_train, y_train, problem.problem_type, metric)
        self._timed("search", t)

        t = time.perf_counter()
        self.emit("evaluating", "comparing the winner with safe choices on held-out rows")
        candidates = self._candidates(search, problem.problem_type, y_train, Xt_train.shape)
        scored: list[Candidate] = []
        members: list[BlendMember] = []  # every model fitted so far, for a weighted blend
        proxy = 1.0  # seconds; replaced by the first measured fit
        folds = self._folds(y_train, classes)
        for name, description, est, cost in candidates:
            expected = proxy if cost is None else cost
            if folds is not None:
                expected *= 1 + len(folds)
            deadline = self.search_share + (1 - self.search_share) * EVALUATION_SHARE
            late = self.elapsed() + expected > self.budget * deadline
            if late and name not in ("search", "baseline"):
                self.decisions.append(
                    f"{description[:1].upper()}{description[1:]} was not compared: its fit "
                    f"(about {expected:.0f} s) did not fit in the time left."
                )
                continue
            fit_t = time.perf_counter()
            if name == "search" and search.best_model is not None:
                # The search already trained this model on the training split: reuse it
                # rather than pay for the fit again (a refit can cost more than the search).
                pipe = Pipeline([("pre", pre), ("model", search.best_model)])
            else:
                pipe = Pipeline([("pre", clone(pre)), ("model", est)])
                pipe.fit(X_train, y_train)
            fit_seconds = time.perf_counter() - fit_t
            if name == "search" and search.best_model is not None:
                fit_seconds = cost or fit_seconds
            if name == "search":
                proxy = fit_seconds
            holdout = _output(pipe, X_test, classes)
            preds, proba = _split_output(holdout, classes)
            cv_score = None
            oof: tuple[np.ndarray, dict[str, np.ndarray]] | None = None
            if folds is not None:
                oof = _out_of_fold(pre, est, X_train, y_train, folds, classes)
                cv_score = _score_output(metric, y_train, oof[0], classes)
            scored.append(
                Candidate(
                    name,
                    description,
                    pipe,
                    score(metric, y_test, preds, proba),
                    fit_seconds,
                    preds,
                    proba,
                    cv_score,
                )
            )
            if name != "baseline":
                members.extend(
                    _blend_members(
                        name, description, est, pipe, holdout, X_test, classes, fit_seconds, oof
                    )
                )
        if folds is None and search.fitted:
            members.extend(
                _searched_members(
                    search,
                    X_test,
                    pre,
                    classes,
                    skip=search.best_estimator,
                    build=lambda kind: self._searched(search, kind, problem.problem_type, y_train),
                )
            )
        blend = self._blend(
            members,
            pre,
            problem.problem_type,
            metric,
            y_selection=y_train if folds is not None else y_test,
            y_test=y_test,
            classes=classes,
            by_cv=folds is not None,
        )
        if blend is not None:
            scored.insert(-1, blend)
        chosen = self._choose(scored, metric)
        baseline = next(c for c in scored if c.name == "baseline")
        if classes is not None:
            assert chosen.proba is not None and baseline.proba is not None
            holdout_metrics = evaluate_classification(
                y_test, chosen.predictions, chosen.proba, len(classes)
            )
            baseline_metrics = evaluate_classification(
                y_test, baseline.predictions, baseline.proba, len(classes)
            )
        else:
            holdout_metrics = evaluate_regression(y_test, chosen.predictions)
            baseline_metrics = evaluate_regression(y_test, baseline.predictions)
        holdout_metrics["primary"] = {"metric": metric.name, "value": chosen.holdout_score}
        baseline_metrics["primary"] = {"metric": metric.name, "value": baseline.holdout_score}
        self._timed("evaluate", t)

        t = time.perf_counter()
        self.emit("explaining", "permutation importance on held-out rows")
        importance, importance_note = compute_permutation_importance(
            lambda X, y_rows: _score_output(
                metric, y_rows, _candidate_output(chosen, X, classes), classes
            ),
            X_test,
            y_test,
            plan.features,
            greater_is_better=metric.greater_is_better,
            seed=opts.seed,
            time_limit=self._importance_limit(
                _refit_cost(chosen.fit_seconds, opts.test_size) if chosen.blend else 0.0
            ),
        )
        self._timed("importance", t)

        t = time.perf_counter()
        final = chosen.pipeline
        # The refit costs about one fit on 25% more rows; the export and reports follow it.
        refit_cost = _refit_cost(chosen.fit_seconds, opts.test_size)
        # A blend exists only as its members until refitted (its choice checked it had time).
        refit = chosen.blend is not None or self.left() - refit_cost > REFIT_RESERVE * self.budget
        if refit:
            self.emit("refitting", "refitting the chosen model on all rows")
            final = clone(chosen.pipeline)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                final.fit(prepared, y)
        else:
            self.decisions.append(
                f"The model was not refitted on all rows: the refit (about {refit_cost:.0f} s) "
                "did not fit in the time left; it is the model trained on the training split."
            )
        self._timed("refit", t)

        holdout = data.iloc[test_idx].copy()
        holdout["__prediction__"] = (
            np.asarray(classes, dtype=object)[chosen.predictions]
            if classes is not None
            else chosen.predictions
        )
        if classes is not None and chosen.proba is not None:
            for j, label in enumerate(classes):
                holdout[f"__proba__{label}"] = chosen.proba[:, j]

        model = TabpilotModel(
            pipeline=final,
            features=plan.features,
            problem_type=problem.problem_type,
            classes=classes,
            target=opts.target,
        )
        return TrainResult(
            model=model,
            options=opts,
            problem=problem,
            metric=metric,
            profile=profile,
            plan=plan,
            classes=classes,
            budget=self.budget,
            budget_reason=budget_reason,
            n_rows=len(data),
            n_train=len(train_idx),
            n_test=len(test_idx),
            rows_removed=rows_removed,
            chosen=chosen.name,
            chosen_description=chosen.description,
            decisions=self.decisions,
            holdout_metrics=holdout_metrics,
            baseline_metrics=baseline_metrics,
            leaderboard=_leaderboard(search, scored, metric),
            importance=importance,
            importance_note=importance_note,
            search_history=search.history,
            timings=self.timings,
            refit_on_all_rows=refit,
            holdout=holdout,
            estimator_params=to_jsonable(final.named_steps["model"].get_params(deep=False)),
        )

    # -- steps ---------------------------------------------------------------------------------

    def _encode_classes(
        self, data: pd.DataFrame, problem: ProblemDecision, rows_removed: list[dict[str, Any]]
    ) -> tuple[pd.DataFrame, list[Any], np.ndarray]:
        target = data[self.options.target]
        counts = target.value_counts()
        tiny = counts[counts < 2]
        if len(tiny):
            shown = ", ".join(repr(_plain(v)) for v in tiny.index[:10])
            rows_removed.append(
                {
                    "rows": int(tiny.sum()),
                    "reason": f"class(es) with a single row, too few to learn and test: {shown}",
                }
            )
            data = data[~target.isin(tiny.index)]
            target = data[self.options.target]
        classes = sorted(_plain(v) for v in target.unique())
        if len(classes) < 2:
            raise InvalidInput(
                f'Target "{self.options.target}" has fewer than 2 classes with at least 2 '
                "rows each; there is nothing to learn."
            )
        codes = pd.Categorical(target.map(_plain), categories=classes).codes
        return data, classes, np.asarray(codes, dtype=np.int64)

    def _search(
        self, X: np.ndarray, y: np.ndarray, problem: ProblemType, metric: MetricSpec
    ) -> _SearchOutcome:
        names = list(self.options.estimators or ESTIMATORS)
        time_left = self.left()
        size = min(1.0, max(0.0, (len(X) - SMALL_ROWS) / (LARGE_ROWS - SMALL_ROWS)))
        share = SEARCH_SHARE_SMALL - (SEARCH_SHARE_SMALL - SEARCH_SHARE_LARGE) * size
        self.search_share = share
        search_budget = max(1.0, time_left * share - 1.0)
        self.emit("searching", f"searching {', '.join(names)} for {search_budget:.0f} s")
        return run_search(
            X,
            y,
            problem=problem,
            metric=metric,
            estimators=names,
            time_budget=search_budget,
            seed=self.options.seed,
            n_jobs=self.n_jobs,
            on_trial=lambda **kw: self.emit("searching", **kw),
            # Candidates are chosen on the held-out rows above CV_SELECTION_ROWS: then the
            # search's best model of each kind joins the blend's pool without another fit.
            keep_models=len(X) > CV_SELECTION_ROWS,
        )

    def _candidates(
        self,
        search: _SearchOutcome,
        problem: ProblemType,
        y_train: np.ndarray,
        pre_shape: tuple[int, int],
    ) -> list[tuple[str, str, Any, float | None]]:
        """Models to compare on the held-out rows, in order of priority, with the expected
        seconds to fit each (None: unknown, assume about as long as the search's winner)."""
        opts = self.options
        out: list[tuple[str, str, Any, float | None]] = []

        def searched(name: str) -> Any:
            return self._searched(search, name, problem, y_train)

        if search.best_estimator is not None:
            name = search.best_estimator
            out.append(
                (
                    "search",
                    f"{ESTIMATORS[name]} found by the search",
                    searched(name),
                    search.best_trial_seconds.get(name),
                )
            )
        # Rough costs of the defaults: 100 trees (per class) over the training cells.
        n_rows, n_cols = pre_shape
        per_class = max(1, len(np.unique(y_train))) if problem == ProblemType.MULTICLASS else 1
        out.append(
            (
                "default_lgbm",
                "LightGBM with its default settings",
                default_lightgbm(problem, seed=opts.seed, n_jobs=self.n_jobs),
                0.05 + n_rows * n_cols * 100 * per_class * 2e-8,
            )
        )
        wanted = opts.estimators or tuple(ESTIMATORS)
        if "linear" in wanted:
            # FLAML rates linear models as costly and rarely tunes one; on small, mostly
            # linear data a plain one is often the best choice, so one is always compared.
            out.append(
                (
                    "default_linear",
                    "linear model with default settings",
                    default_linear(problem),
                    0.02 + n_rows * n_cols * per_class * 1e-6,
                )
            )
        ranked = sorted(
            (n for n in search.best_configs if n in search.best_scores),
            key=lambda n: search.best_scores[n],
            reverse=search.higher_is_better,
        )[:ENSEMBLE_SIZE]
        if ranked:
            # A member much worse than the best drags an equal-weight average down.
            best = search.best_scores[ranked[0]]
            ranked = [n for n in ranked if _close_enough(search.best_scores[n], best, search)]
        if len(ranked) >= 2:
            members = [(name, searched(name)) for name in ranked]
            labels = " + ".join(ESTIMATORS[n] for n in ranked)
            costs = [search.best_trial_seconds.get(n) for n in ranked]
            cost = None if None in costs else sum(c for c in costs if c is not None)
            out.append(("ensemble", f"average of {labels}", build_ensemble(members, problem), cost))
        label = (
            "constant baseline (predicts the class frequencies)"
            if problem.is_classification
            else "constant baseline (predicts the mean)"
        )
        out.append(("baseline", label, constant_baseline(problem, n_jobs=self.n_jobs), 0.0))
        return out

    def _searched(
        self, search: _SearchOutcome, kind: str, problem: ProblemType, y_train: np.ndarray
    ) -> Any:
        """A fresh estimator of `kind` with the search's best configuration for it."""
        return build_estimator(
            kind,
            search.best_configs[kind],
            problem=problem,
            seed=self.options.seed,
            n_jobs=self.n_jobs,
            y_train=y_train,
        )

    def _importance_limit(self, refit_cost: float = 0.0) -> float:
        """Seconds for permutation importance; with `refit_cost`, leaving time for a refit
        that must happen (a chosen blend's)."""
        limit = min(0.08 * self.budget, self.left() * 0.25)
        if refit_cost:
            limit = min(limit, self.left() - refit_cost - REFIT_RESERVE * self.budget)
        return max(MIN_IMPORTANCE_SECONDS, limit)

    def _blend(
        self,
        members: list[BlendMember],
        pre: Any,
        problem: ProblemType,
        metric: MetricSpec,
        *,
        y_selection: np.ndarray,
        y_test: np.ndarray,
        classes: list[Any] | None,
        by_cv: bool,
    ) -> Candidate | None:
        """A weighted blend of the fitted candidates (and of an average's members), chosen on
        out-of-fold predictions (or, on larger data, on the held-out rows), as a candidate;
        None if no blend beats its best member or its refit on all rows would not fit."""
        calibrate = (
            classes is not None
            and metric.name == "log_loss"
            and len(y_selection) >= MIN_CALIBRATION_ROWS
        )
        if calibrate:
            # Log loss rewards honest probabilities: each model gets its temperature first,
            # and a single calibrated model may then be the best "blend".
            members = [_calibrated(m, y_selection) for m in members]
        found = select_blend(
            members,
            lambda output: _score_output(metric, y_selection, output, classes),
            greater_is_better=metric.greater_is_better,
            allow_single=calibrate,
        )
        if found is None or (len(found.members) == 1 and found.members[0].temperature is None):
            return None
        refit_cost = _refit_cost(found.fit_seconds, self.options.test_size)
        spare = self.left() - MIN_IMPORTANCE_SECONDS - refit_cost
        if spare < REFIT_RESERVE * self.budget:
            self.decisions.append(
                f"A {found.describe()} was not compared: it must be refitted as one model "
                f"(about {refit_cost:.0f} s), which did not fit in the time left."
            )
            return None
        preds, proba = _split_output(found.holdout(), classes)
        if len(found.members) == 1:
            ensemble = clone(found.members[0].estimator)
        else:
            ensemble = build_ensemble(
                [(m.key, clone(m.estimator)) for m in found.members],
                problem,
                weights=found.weights,
            )
        description = found.describe() + ("" if by_cv else " (weights chosen on the held-out rows)")
        return Candidate(
            "blend",
            description,
            Pipeline([("pre", clone(pre)), ("model", ensemble)]),
            score(metric, y_test, preds, proba),
            found.fit_seconds,
            preds,
            proba,
            found.selection_score if by_cv else None,
            blend=found,
        )

    def _choose(self, scored: list[Candidate], metric: MetricSpec) -> Candidate:
        by_name = {c.name: c for c in scored}
        best = scored[0]
        for cand in scored[1:]:
            if metric.better(cand.selection_score, best.selection_score):
                best = cand
        where = (
            "in 5-fold cross-validation on the training rows"
            if best.cv_score is not None
            else "on the held-out rows"
        )
        winner = by_name.get("search")
        if winner is None:
            self.decisions.append("The search found no model in time; a safe choice is used.")
        elif best is not winner:
            self.decisions.append(
                f"The search's winner ({winner.description}) scored "
                f"{winner.selection_score:.4g} {metric.label} {where}, worse than "
                f"{best.description} ({best.selection_score:.4g}); the latter is used."
            )
        if best.name == "baseline":
            self.decisions.append(
                "No model beat the constant baseline: the features may not predict the target."
            )
        return best

    def _folds(
        self, y_train: np.ndarray, classes: list[Any] | None
    ) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Folds for choosing among candidates by cross-validation on small data, where
        the held-out rows are too few to tell good from lucky; None on larger data."""
        from sklearn.model_selection import KFold, StratifiedKFold

        if len(y_train) > CV_SELECTION_ROWS:
            return None
        if classes is None:
            splitter: Any = KFold(CV_FOLDS, shuffle=True, random_state=self.options.seed)
        else:
            smallest = int(np.bincount(y_train).min())
            if smallest < 2:
                return None
            splitter = StratifiedKFold(
                min(CV_FOLDS, smallest), shuffle=True, random_state=self.options.seed
            )
        return list(splitter.split(np.zeros(len(y_train)), y_train))


@dataclass
class _SearchOutcome:
    higher_is_better: bool
    best_estimator: str | None
    best_model: Any | None  # the winner as FLAML trained it (on the training split)
    best_configs: dict[str, dict[str, Any]]
    best_scores: dict[str, float]
    trials: dict[str, int]
    seconds: dict[str, float]
    best_trial_seconds: dict[str, float]
    history: list[dict[str, Any]]
    # The best model of each kind as the search trained it, when asked to keep them.
    fitted: dict[str, Any] = field(default_factory=dict)


def _close_enough(value: float, best: float, search: _SearchOutcome) -> bool:
    """Within ENSEMBLE_TOLERANCE of the best validation score (relative, or absolute for
    bounded scores such as AUC where "relative" means little)."""
    if search.higher_is_better:
        return value >= best - ENSEMBLE_TOLERANCE * max(1.0 - best, 0.01) * 10
    return value <= best * (1 + ENSEMBLE_TOLERANCE)


def _out_of_fold(
    pre: Any,
    est: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    classes: list[Any] | None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Out-of-fold outputs (probabilities over all classes, or values) of a fresh copy of
    `est` per fold; for an ensemble, also each member's, by member name."""
    width = () if classes is None else (len(classes),)
    oof = np.zeros((len(y), *width))
    oof_members: dict[str, np.ndarray] = {}
    for train_rows, valid_rows in folds:
        pipe = Pipeline([("pre", clone(pre)), ("model", clone(est))])
        pipe.fit(X.iloc[train_rows], y[train_rows])
        X_valid = X.iloc[valid_rows]
        oof[valid_rows] = _output(pipe, X_valid, classes)
        for name, values in _member_outputs(pipe, X_valid, classes).items():
            oof_members.setdefault(name, np.zeros((len(y), *width)))[valid_rows] = values
    return oof, oof_members


def _output(pipe: Pipeline, X: pd.DataFrame, classes: list[Any] | None) -> np.ndarray:
    """Probabilities over all classes (a class the model never saw gets 0), or values."""
    if classes is None:
        return np.asarray(pipe.predict(X), dtype="float64")
    # A class missing from a cross-validation fold has no column: it gets 0.
    return _spread(pipe.predict_proba(X), pipe.named_steps["model"].classes_, len(classes))


def _spread(proba: Any, columns: Any, n_classes: int) -> np.ndarray:
    """Probabilities over all `n_classes` label codes, from a model's columns for the codes in
    `columns` (a class the model never saw gets 0), rows summing to 1."""
    proba = np.asarray(proba, dtype="float64")
    if proba.shape[1] != n_classes or not np.array_equal(columns, np.arange(n_classes)):
        full = np.zeros((len(proba), n_classes))
        full[:, np.asarray(columns, dtype=int)] = proba
        proba = full
    return proba / proba.sum(axis=1, keepdims=True)  # float32 models sum to 1 only roughly


def _split_output(
    output: np.ndarray, classes: list[Any] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels or values, probabilities or None) of an `_output`."""
    if classes is None:
        return output, None
    return output.argmax(axis=1), output


def _member_outputs(
    pipe: Pipeline, X: pd.DataFrame, classes: list[Any] | None
) -> dict[str, np.ndarray]:
    """Each member's outputs of a fitted ensemble pipeline, by name; {} for a single model."""
    model = pipe.named_steps["model"]
    if not _is_voting(model):
        return {}
    fitted = model.estimators_
    Xt = pipe.named_steps["pre"].transform(X)
    names = [name for name, est in model.estimators if est != "drop"]
    return {
        name: _voting_member_output(model, member, Xt, classes)
        for name, member in zip(names, fitted, strict=True)
    }


def _is_voting(model: Any) -> bool:
    """A voting ensemble (forests also have `estimators_`: their trees)."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    return isinstance(model, VotingClassifier | VotingRegressor)


def _voting_member_output(
    voting: Any, member: Any, Xt: Any, classes: list[Any] | None
) -> np.ndarray:
    if classes is None:
        return np.asarray(member.predict(Xt), dtype="float64")
    # Voting members learn the ensemble's label codes 0..k'-1, which index its classes_.
    columns = np.asarray(voting.classes_, dtype=int)[np.asarray(member.classes_, dtype=int)]
    return _spread(member.predict_proba(Xt), columns, len(classes))


def _member_predictor(
    pipe: Pipeline, name: str, classes: list[Any] | None
) -> Callable[[pd.DataFrame], np.ndarray]:
    """Outputs of one member of a fitted ensemble pipeline, on raw rows."""
    model = pipe.named_steps["model"]

    def predict(X: pd.DataFrame) -> np.ndarray:
        member = model.named_estimators_[name]
        return _voting_member_output(model, member, pipe.named_steps["pre"].transform(X), classes)

    return predict


def _blend_members(
    name: str,
    description: str,
    est: Any,
    pipe: Pipeline,
    holdout: np.ndarray,
    X_test: pd.DataFrame,
    classes: list[Any] | None,
    fit_seconds: float,
    oof: tuple[np.ndarray, dict[str, np.ndarray]] | None,
) -> list[BlendMember]:
    """The models a fitted candidate adds to the blend's pool: itself (`holdout` being its
    outputs on `X_test`), or for an average of model kinds each of its members (so the blend
    can weigh them one by one)."""
    model = pipe.named_steps["model"]
    if not _is_voting(model):
        return [
            BlendMember(
                key=name,
                label=description,
                estimator=est,
                selection=oof[0] if oof is not None else holdout,
                holdout=holdout,
                fit_seconds=fit_seconds,
                predict=lambda X: _output(pipe, X, classes),
            )
        ]
    outputs = _member_outputs(pipe, X_test, classes)
    unfitted = dict(model.estimators)
    return [
        BlendMember(
            key=f"{name}_{kind}",
            label=f"{ESTIMATORS.get(kind, kind)} (searched settings)",
            estimator=unfitted[kind],
            selection=oof[1][kind] if oof is not None else member_holdout,
            holdout=member_holdout,
            fit_seconds=fit_seconds / len(outputs),
            predict=_member_predictor(pipe, kind, classes),
        )
        for kind, member_holdout in outputs.items()
    ]


def _searched_members(
    search: _SearchOutcome,
    X_test: pd.DataFrame,
    pre: Any,
    classes: list[Any] | None,
    *,
    skip: str | None,
    build: Callable[[str], Any],
) -> list[BlendMember]:
    """Blend members from the search's best model of each kind, as the search trained them
    (no extra fit); `skip` is the kind already in the pool as the search's winner."""
    out = []
    Xt_test = pre.transform(X_test)
    for kind, model in search.fitted.items():
        if kind == skip or kind not in search.best_configs:
            continue

        def predict(X: pd.DataFrame, model: Any = model) -> np.ndarray:
            return _native_output(model, pre.transform(X), classes)

        holdout = _native_output(model, Xt_test, classes)
        out.append(
            BlendMember(
                key=f"searched_{kind}",
                label=f"{ESTIMATORS[kind]} (best of its kind in the search)",
                estimator=build(kind),
                selection=holdout,
                holdout=holdout,
                fit_seconds=search.best_trial_seconds.get(kind, 1.0),
                predict=predict,
            )
        )
    return out


def _native_output(model: Any, Xt: Any, classes: list[Any] | None) -> np.ndarray:
    """Outputs of a fitted model on preprocessed rows (label codes as classes)."""
    if classes is None:
        return np.asarray(model.predict(Xt), dtype="float64")
    return _spread(model.predict_proba(Xt), model.classes_, len(classes))


def _calibrated(member: BlendMember, y_selection: np.ndarray) -> BlendMember:
    """The member with temperature-scaled probabilities, if scaling lowers its log loss on
    the selection predictions (see `calibrate.py`); else the member itself."""
    temperature = fit_temperature(member.selection, y_selection)
    if temperature is None:
        return member

    def predict(X: pd.DataFrame) -> np.ndarray:
        return scale(member.predict(X), temperature)

    return BlendMember(
        key=member.key,
        label=f"{member.label}, calibrated (temperature {temperature:.2f})",
        estimator=with_temperature(member.estimator, temperature),
        selection=scale(member.selection, temperature),
        holdout=scale(member.holdout, temperature),
        fit_seconds=member.fit_seconds,
        predict=predict,
        temperature=temperature,
    )


def _score_output(
    metric: MetricSpec, y: np.ndarray, output: np.ndarray, classes: list[Any] | None
) -> float:
    if classes is None:
        return score(metric, y, output, None)
    return score(metric, y, output.argmax(axis=1), output)


def _candidate_output(cand: Candidate, X: pd.DataFrame, classes: list[Any] | None) -> np.ndarray:
    if cand.blend is not None:
        return cand.blend.predict(X)
    return _output(cand.pipeline, X, classes)


def _refit_cost(fit_seconds: float, test_size: float) -> float:
    """Expected seconds to refit on all rows: one fit on 1/(1-test_size) as many rows."""
    return fit_seconds * (1 + test_size) * 1.2 + 0.2


def _predict(
    pipe: Pipeline, X: pd.DataFrame, classes: list[Any] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    return _split_output(_output(pipe, X, classes), classes)


def _leaderboard(
    search: _SearchOutcome, scored: list[Candidate], metric: MetricSpec
) -> list[dict[str, Any]]:
    rows = []
    for name, cfg in search.best_configs.items():
        rows.append(
            {
                "estimator": name,
                "label": ESTIMATORS[name],
                "validation_score": search.best_scores.get(name),
                "trials": search.trials.get(name, 0),
                "search_seconds": round(search.seconds.get(name, 0.0), 2),
                "config": to_jsonable(cfg),
                "best": name == search.best_estimator,
            }
        )
    rows.sort(
        key=lambda r: (
            (r["validation_score"] is None, -(r["validation_score"] or 0.0))
            if metric.greater_is_better
            else (r["validation_score"] is None, r["validation_score"] or 0.0)
        )
    )
    for cand in scored:
        rows.append(
            {
                "estimator": cand.name,
                "label": cand.description,
                "holdout_score": cand.holdout_score,
                "cv_score": cand.cv_score,
                "fit_seconds": round(cand.fit_seconds, 2),
                "candidate": True,
            }
        )
    return rows


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so labels print and serialise as in the data."""
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- the FLAML search ------------------------------------------------------------------------
# FLAML is imported inside these functions so that importing the engine stays cheap.


def _scaled(estimator_class: Any) -> Callable[..., Pipeline]:
    """Wrap a linear estimator class so it standardises its inputs first (trees need not)."""

    def factory(**params: Any) -> Pipeline:
        return make_pipeline(StandardScaler(), estimator_class(**params))

    return factory


def _learner_class(name: str, problem: ProblemType) -> Any:
    from flaml.automl.model import (
        ElasticNetEstimator,
        ExtraTreesEstimator,
        LGBMEstimator,
        LRL1Classifier,
        RandomForestEstimator,
        XGBoostSklearnEstimator,
    )

    if name == "linear":
        base = LRL1Classifier if problem.is_classification else ElasticNetEstimator

        class ScaledLinear(base):  # type: ignore[misc, valid-type]
            """FLAML's linear learner on standardised inputs."""

            def __init__(self, task: str = "binary", **config: Any) -> None:
                super().__init__(task, **config)
                self.estimator_class = _scaled(self.estimator_class)

        return ScaledLinear
    return {
        "lgbm": LGBMEstimator,
        "xgboost": XGBoostSklearnEstimator,
        "rf": RandomForestEstimator,
        "extra_tree": ExtraTreesEstimator,
    }[name]


def build_estimator(
    name: str,
    config: dict[str, Any],
    *,
    problem: ProblemType,
    seed: int,
    n_jobs: int,
    y_train: np.ndarray,
) -> Any:
    """A fresh native estimator (LGBMClassifier, XGBRegressor, ...) with a searched config."""
    wrapper = _learner_class(name, problem)(task=str(problem), n_jobs=n_jobs, **config)
    est = wrapper.estimator_class(**wrapper.params)
    if name in ("lgbm", "xgboost", "rf", "extra_tree"):
        est.set_params(random_state=seed)
    if name == "xgboost":
        # XGBoost 2 estimates base_score itself; the ONNX converter needs it stated.
        base = float(np.mean(y_train)) if problem == ProblemType.REGRESSION else 0.5
        est.set_params(base_score=base)
    return est


def build_ensemble(
    members: list[tuple[str, Any]], problem: ProblemType, *, weights: list[int] | None = None
) -> Any:
    """An average of the members' probabilities (or predictions), equal-weight by default.

    Averaging different model families is the cheapest reliable gain over a single
    winner; scikit-learn's voting estimators export to ONNX like their members.
    """
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    # skl2onnx reads the weights as an array (it calls .sum() on them).
    w = None if weights is None else np.asarray(weights, dtype="float64")
    if problem == ProblemType.REGRESSION:
        return VotingRegressor(members, weights=w)
    return VotingClassifier(members, voting="soft", weights=w, flatten_transform=False)


def default_linear(problem: ProblemType) -> Pipeline:
    """Standardised logistic or ridge regression with library defaults: fast and stable."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if problem == ProblemType.REGRESSION:
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))


def default_lightgbm(problem: ProblemType, *, seed: int, n_jobs: int) -> Any:
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMRegressor if problem == ProblemType.REGRESSION else LGBMClassifier
    return cls(random_state=seed, n_jobs=n_jobs, verbose=-1)


def constant_baseline(problem: ProblemType, *, n_jobs: int) -> Any:
    """The trivial model: class frequencies or the mean, whatever the features say.

    A LightGBM that may not split predicts exactly the prior (or the mean), and exports to
    ONNX like any other model, so the baseline can be shipped if nothing beats it.
    """
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMRegressor if problem == ProblemType.REGRESSION else LGBMClassifier
    return cls(n_estimators=1, min_child_samples=10**9, n_jobs=n_jobs, verbose=-1)


def _fitted_winner(automl: Any, problem: ProblemType, seed: int) -> Any | None:
    """FLAML's trained winner, made ready for ONNX export; None if FLAML kept none."""
    wrapper = getattr(automl, "model", None)
    model = getattr(wrapper, "model", None)
    if model is None:
        return None
    if automl.best_estimator == "xgboost":
        # XGBoost 2 estimated base_score itself; the ONNX converter reads the parameter.
        config = json.loads(model.get_booster().save_config())
        base = config["learner"]["learner_model_param"]["base_score"]
        model.set_params(base_score=float(str(base).strip("[]").split(",")[0]))
    return model


def run_search(
    X: np.ndarray,
    y: np.ndarray,
    *,
    problem: ProblemType,
    metric: MetricSpec,
    estimators: list[str],
    time_budget: float,
    seed: int,
    n_jobs: int,
    on_trial: Callable[..., None],
    keep_models: bool = False,
) -> _SearchOutcome:
    """Run FLAML's search and collect the best configuration of each estimator, and with
    `keep_models` the best trained model of each (more memory: one model per kind)."""
    from flaml import AutoML

    trials: dict[str, int] = {}
    seconds: dict[str, float] = {}
    best_trial_seconds: dict[str, float] = {}
    best_loss: dict[str, float] = {}
    history: list[dict[str, Any]] = []
    fitted: dict[str, Any] = {}

    def to_score(loss: float) -> float:
        return 1.0 - loss if metric.greater_is_better else loss

    class _Observed(AutoML):  # type: ignore[misc]
        # FLAML has no per-trial callback; _log_trial is called once per trial (log_type="all").
        def _log_trial(self, search_state: Any, estimator: str) -> None:
            trials[estimator] = trials.get(estimator, 0) + 1
            seconds[estimator] = seconds.get(estimator, 0.0) + float(search_state.trial_time)
            loss = float(search_state.val_loss)
            if loss <= best_loss.get(estimator, float("inf")):
                best_loss[estimator] = loss
                best_trial_seconds[estimator] = float(search_state.trial_time)
                model = getattr(search_state.trained_estimator, "model", None)
                if keep_models and model is not None:
                    # Held here because FLAML discards a kind's model once another kind
                    # leads (model_history=True only keeps it until then).
                    fitted[estimator] = model
            best = to_score(float(self.best_loss)) if self.best_loss < float("inf") else None
            history.append(
                {
                    "at": round(float(self._state.time_from_start), 3),
                    "estimator": estimator,
                    "score": to_score(float(search_state.val_loss)),
                    "best_score": best,
                }
            )
            on_trial(
                trials=sum(trials.values()),
                estimator=estimator,
                best_score=best,
                best_estimator=self._best_estimator,
                message=f"trial {sum(trials.values())}: {ESTIMATORS[estimator]}",
            )
            super()._log_trial(search_state, estimator)

    automl = _Observed()
    if "linear" in estimators:
        automl.add_learner("linear", _learner_class("linear", problem))
    flaml_logger = logging.getLogger("flaml.automl.logger")
    flaml_logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(
            X,
            y,
            task=str(problem),
            metric=metric.flaml,
            estimator_list=estimators,
            time_budget=time_budget,
            seed=seed,
            n_jobs=n_jobs,
            verbose=0,
            log_type="all",
            retrain_full=False,
            keep_search_state=False,
            model_history=keep_models,
        )
    best_configs = dict(automl.best_config_per_estimator or {})
    best_configs = {k: v for k, v in best_configs.items() if v is not None}
    losses = automl.best_loss_per_estimator or {}
    return _SearchOutcome(
        higher_is_better=metric.greater_is_better,
        best_estimator=automl.best_estimator if best_configs else None,
        best_model=_fitted_winner(automl, problem, seed) if best_configs else None,
        best_configs=best_configs,
        best_scores={
            k: to_score(float(v)) for k, v in losses.items() if v is not None and v < float("inf")
        },
        trials=trials,
        seconds=seconds,
        best_trial_seconds=best_trial_seconds,
        history=history,
        fitted=fitted,
    )
