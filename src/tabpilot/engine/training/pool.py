"""The pool of trained candidates, in the order the plan trains them (`clock.py`): the
portfolio of strong defaults first, then FLAML's search in the time that is left, whose best
model of each kind joins the pool (bagged on small data, as the search trained it on larger
data). Every candidate carries its selection outputs and its held-out outputs
(`scoring.py`); the blend and the choice come after (`train.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tabpilot.engine.choices import ESTIMATORS
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.bagging import fits_per_average
from tabpilot.engine.training.blend_pool import greedy_blend, pool_members
from tabpilot.engine.training.candidates import (
    Candidate,
    PlannedCandidate,
    baseline_candidate,
    plan_portfolio,
)
from tabpilot.engine.training.clock import (
    MIN_SEARCH_SECONDS,
    SEARCH_JOIN_SHARE,
    Clock,
    refit_cost,
)
from tabpilot.engine.training.estimators import searched_estimator
from tabpilot.engine.training.holdout import Split
from tabpilot.engine.training.metrics import MetricSpec
from tabpilot.engine.training.portfolio import wide
from tabpilot.engine.training.scoring import fit_candidate
from tabpilot.engine.training.search import SearchOutcome, run_search
from tabpilot.engine.training.sizes import MAX_TREE_NODES, blend_size_limit, tree_nodes
from tabpilot.engine.wording import about_seconds

# Metrics that reward the minority classes: class weights are tried for them on imbalanced
# data (the smallest class under IMBALANCED_SHARE of the rows). Probability metrics (log
# loss, ROC AUC) are not helped by reweighting: it distorts the probabilities.
WEIGHTED_METRICS = ("f1", "macro_f1", "balanced_accuracy")
IMBALANCED_SHARE = 0.2
# The refit's reserve: the portfolio blend's members and this much more (a searched model
# may join the blend at the end).
SEARCH_MEMBER_MARGIN = 1.25


@dataclass
class PoolContext:
    """What every step of the pool shares."""

    split: Split
    problem: ProblemType
    metric: MetricSpec
    classes: list[Any] | None
    clock: Clock
    decisions: list[str]
    seed: int
    n_jobs: int
    estimators: tuple[str, ...] | None
    test_size: float
    emit: Callable[..., None]


def imbalanced(y: np.ndarray, classes: list[Any] | None) -> bool:
    if classes is None:
        return False
    counts = np.bincount(y, minlength=len(classes))
    return bool(counts.min() < IMBALANCED_SHARE * counts.sum() / max(1, len(classes) - 1))


def train_portfolio(ctx: PoolContext) -> list[Candidate]:
    """The constant baseline and the portfolio's models that fit in its share of the time."""
    split = ctx.split
    scored = [
        fit_candidate(
            baseline_candidate(ctx.problem, n_jobs=ctx.n_jobs),
            split,
            metric=ctx.metric,
            classes=ctx.classes,
        )
    ]
    balanced = ctx.metric.name in WEIGHTED_METRICS and imbalanced(split.y_train, ctx.classes)
    planned = plan_portfolio(
        ctx.problem,
        split.Xt_train.shape,
        n_classes=len(ctx.classes or ()),
        estimators=ctx.estimators,
        seed=ctx.seed,
        n_jobs=ctx.n_jobs,
        balanced=balanced,
        small=split.bagged,
        n_folds=len(split.folds) if split.folds is not None else 1,
    )
    if balanced:
        ctx.decisions.append(
            f"The classes are imbalanced and {ctx.metric.label} rewards the smaller ones: a "
            "class-weighted model is compared too."
        )
    ctx.clock.plan_portfolio(wide=wide(split.Xt_train.shape[1]))
    for i, cand in enumerate(planned):
        # Bagged: k fits, or one for a forest whose out-of-bag outputs stand for the folds.
        folds = fits_per_average(cand.estimator, len(split.folds)) if split.folds else 1
        expected = ctx.clock.expected(cand.cost * folds)
        if not ctx.clock.portfolio_fits(expected, first=i == 0):
            ctx.decisions.append(
                f"{_upper(cand.description)} was not trained: its fit "
                f"({about_seconds(expected)}) did not fit in the portfolio's share of the time."
            )
            continue
        ctx.emit("training", f"training {cand.description}")
        # A fit that runs long (a busy machine) stops early at the portfolio's deadline,
        # keeping its best iteration so far.
        limit = (
            ctx.clock.first_limit(expected)
            if i == 0
            else max(expected, ctx.clock.portfolio_deadline - ctx.clock.elapsed())
        )
        fitted = fit_candidate(
            cand, split, metric=ctx.metric, classes=ctx.classes, max_seconds=limit
        )
        ctx.clock.record_fit(cand.cost * folds, fitted.fit_seconds)
        _add_if_exportable(ctx, scored, fitted)
    return scored


def reserve_refit(ctx: PoolContext, scored: list[Candidate]) -> None:
    """Reserve the refit on all rows of what the blend of the pool so far would hold (its
    members as measured, plus a share for a searched model joining it; the clock caps the
    reserve). The blend is chosen as at the end (without the temperatures, which cost no
    refit), on the selection outputs: cheap, and it names the members the refit will train
    (the best few by score often are not those)."""
    members = pool_members(scored, ctx.classes)
    if not members:
        return
    blend = greedy_blend(
        members,
        ctx.metric,
        y_selection=ctx.split.y_selection,
        classes=ctx.classes,
        by_cv=ctx.split.bagged,
        # The final blend's limit is at least this (`Clock.export_window`).
        max_size=blend_size_limit(ctx.clock.end_reserve()),
        allow_single=True,
    )
    assert blend is not None  # a single member counts: some member always qualifies
    ctx.clock.reserve_refit(refit_cost(blend.fit_seconds * SEARCH_MEMBER_MARGIN, ctx.test_size))


def search_and_join(
    ctx: PoolContext, scored: list[Candidate], on_trial: Callable[..., None]
) -> SearchOutcome | None:
    """FLAML's search in the time left before the refit's reserve; its best model of each
    kind joins `scored`. None if there was no time for a search."""
    split, clock = ctx.split, ctx.clock
    window = clock.search_window()
    seconds = window * (1 - SEARCH_JOIN_SHARE) if split.bagged else window
    if seconds > 3:
        seconds -= 0.5  # FLAML ends its last trial a little late
    if seconds < MIN_SEARCH_SECONDS:
        ctx.decisions.append(
            f"The search was not run: the portfolio left {about_seconds(max(seconds, 0))} "
            "before the time reserved for the refit."
        )
        return None
    names = list(ctx.estimators or ESTIMATORS)
    ctx.emit("searching", f"searching {', '.join(names)} for {seconds:.0f} s")
    search = run_search(
        split.Xt_train,
        split.y_train,
        problem=ctx.problem,
        metric=ctx.metric,
        estimators=names,
        time_budget=seconds,
        seed=ctx.seed,
        n_jobs=ctx.n_jobs,
        on_trial=on_trial,
        keep_models=not split.bagged,
    )
    _join(ctx, search, scored)
    return search


def _join(ctx: PoolContext, search: SearchOutcome, scored: list[Candidate]) -> None:
    """The search's best model of each kind (best kind first) as candidates."""
    ranked = sorted(
        (k for k in search.best_configs if k in search.best_scores),
        key=lambda k: search.best_scores[k],
        reverse=search.higher_is_better,
    )
    for kind in ranked:
        name = "search" if kind == search.best_estimator else f"search_{kind}"
        label = ESTIMATORS[kind]
        description = (
            f"{label} found by the search"
            if name == "search"
            else f"{label} (best of its kind in the search)"
        )
        estimator = searched_estimator(
            search,
            kind,
            problem=ctx.problem,
            seed=ctx.seed,
            n_jobs=ctx.n_jobs,
            y_train=ctx.split.y_train,
        )
        planned = PlannedCandidate(
            name, description, estimator, search.best_trial_seconds.get(kind, 1.0), "search"
        )
        if ctx.split.bagged:
            if not _bag_fits(ctx, planned, winner=name == "search"):
                continue
            bag = fit_candidate(planned, ctx.split, metric=ctx.metric, classes=ctx.classes)
            ctx.clock.record_fit(planned.cost * len(ctx.split.folds or ()), bag.fit_seconds)
            _add_if_exportable(ctx, scored, bag)
            continue
        fitted = search.best_model if name == "search" else search.fitted.get(kind)
        if fitted is None:
            continue
        _add_if_exportable(
            ctx,
            scored,
            fit_candidate(
                planned,
                ctx.split,
                metric=ctx.metric,
                classes=ctx.classes,
                fitted=fitted,
                fit_seconds=planned.cost,
            ),
        )
    search.fitted.clear()  # held by the candidates now; the rest is freed
    search.best_model = None


def _bag_fits(ctx: PoolContext, planned: PlannedCandidate, *, winner: bool) -> bool:
    """Whether bagging a searched configuration ends before the refit's reserve (the
    search's winner: may take half the end's reserve too)."""
    expected = ctx.clock.expected(planned.cost * len(ctx.split.folds or ()))
    # The winner may use half the end's reserve: the search's result must be in the pool.
    room = ctx.clock.training_seconds() + (0.5 * ctx.clock.end_reserve() if winner else 0.0)
    if room - ctx.clock.refit_reserve >= expected:
        return True
    ctx.decisions.append(
        f"{_upper(planned.description)} was not bagged: its folds "
        f"({about_seconds(expected)}) did not fit before the time reserved for the refit."
    )
    return False


def _add_if_exportable(ctx: PoolContext, scored: list[Candidate], cand: Candidate) -> None:
    """Add `cand` to the pool unless its trees are too many to export (memory)."""
    nodes = tree_nodes(cand.model)
    if nodes <= MAX_TREE_NODES:
        cand.size = nodes
        scored.append(cand)
        return
    ctx.decisions.append(
        f"{_upper(cand.description)} was left out: its trees (size {nodes:,}: nodes and "
        f"class values) would make the exported model too large (the limit is "
        f"{MAX_TREE_NODES:,})."
    )


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]
