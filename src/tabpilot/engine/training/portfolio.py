"""The portfolio: strong fixed configurations of every model kind, in priority order, each with
the seconds its fit is expected to take, trained before (and whatever) the search does.

The configurations follow what works at small budgets without any search (AutoGluon's
medium-quality defaults are the public reference): boosted trees at learning rate 0.05 with
early stopping, the same with extremely randomised splits, random forest and extra trees,
CatBoost, a neural net with standardised inputs, XGBoost and a larger LightGBM. For multiclass
the neural net comes first: on many classes it is what a blend of trees lacks most.

Every estimator here is unfitted and clone()-able, takes the preprocessor's numeric matrix and
label codes 0..K-1, and exports to ONNX (converters in `onnx_converters.py`). Boosted trees and
the neural net stop early inside `fit(X, y)` (`early_stop.py`).

Expected seconds come from fits timed on this project's 2-core reference machine, one thread,
with early stopping typical of real data (see `estimate_seconds`); they are for planning a
budget, not promises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.bagging import SeedAverageClassifier
from tabpilot.engine.training.early_stop import early_stopped
from tabpilot.engine.training.sizes import LIGHTGBM_HISTOGRAM_MB, MAX_TREE_NODES

# Most trees a boosted model may grow; early stopping usually ends far sooner.
MAX_TREES = 10_000
PATIENCE_TREES = 50
# Neural net epochs: at most, and without improvement before stopping.
MAX_EPOCHS = 200
PATIENCE_EPOCHS = 10
PATIENT_LAYERS = (256, 128)
# On CYCLE_MIN_ROWS rows or more, the net instead trains CYCLE_EPOCHS on a one-cycle learning
# rate peaking at CYCLE_PEAK_RATE, with stronger weight decay, and keeps its best epoch.
# Measured in 5-fold cross-validation on this machine, against the net stopped on patience at
# a steady 0.001: letter log loss 0.125 to 0.085 (16,000 rows; 0.290 to 0.256 on 5,000; in less
# than half the time), adult 0.320 to 0.318, california_housing equal, bike_sharing_hourly
# RMSE 19.4 to 10.4 (with its leakage columns, whose sum is the target: a check of fitting a
# smooth function); but titanic ROC AUC 0.815 to 0.794 and ibm_hr_attrition 0.827 to 0.825:
# on a few hundred noisy binary rows the slow, patient net is better. A third layer
# (CYCLE_LAYERS) then helped for about twice the time: letter 0.085 to 0.077,
# bike_sharing_hourly (as above) 10.4 to 7.5; adult and california_housing equal. On small
# data (wine, penguins) such figures flattered the sharp net, its best epoch chosen on the
# rows scored; on their benchmark test rows it lost (wine 0.0105 to 0.0160; penguins 0.037 to
# 0.127, one row given 0.0003): under CYCLE_MIN_ROWS rows the patient net stays, whatever the
# problem.
CYCLE_EPOCHS = 30
CYCLE_LAYERS = (256, 256, 128)
CYCLE_PEAK_RATE = 1e-2
CYCLE_WEIGHT_DECAY = 3e-2
CYCLE_MIN_ROWS = 5_000
# On multiclass data the one-cycle net is an average of this many nets, each with its own seeds
# (`bagging.SeedAverageClassifier`), calibrated as one. One net is sure of itself where it
# should not be; an average of a few is not. Measured here on a held-out 20%, the net alone
# (no blend, no temperature): letter log loss 0.0738 (one seed), 0.0657 (two), 0.0623 (three);
# a synthetic 40-class table of 20,000 rows 1.124, 0.811, 0.686. About 5 s a net on 16,000
# letter rows.
# A whole 60 s run on letter: 0.0846 to 0.0777, the refit training two of the three seeds on
# every row (`refit.py`: a seed average refits the seeds that fit; on letter the rows gained
# matter more than the seeds). Three nets as separate blend members, each with its own
# temperature, gained nothing there (0.0842): the average of softened members is too soft.
MULTICLASS_NET_SEEDS = 3
# Trees in a random forest / extra trees; fewer on larger data, where every tree is large.
FOREST_TREES = 300
FOREST_TREES_LARGE, FOREST_LARGE_ROWS = 100, 10_000
# A forest's size is its nodes (about twice its leaves) and a value per class in every node,
# in memory, in model.pkl and in model.onnx (see `sizes.py`). Its leaves are capped so that
# it stays within FOREST_SIZE_SHARE of the pool's size limit: a forest grown past it would be
# trained only to be left out.
FOREST_SIZE_SHARE = 0.9
FOREST_MIN_TREES_PER_FOLD = 60
# CatBoost on many classes is far too slow on a few cores (26 classes: minutes on letter).
CATBOOST_MAX_CLASSES = 5
# Above this many classes boosting grows a tree per class per round: LightGBM learns at 0.1,
# not 0.05, so that it ends in half the rounds (letter, 26 classes: 185 rounds, 44 s at 0.05
# on one loaded core; extra trees 1,042 rounds, 185 s).
MANY_CLASSES = 10
MANY_CLASSES_LEARNING_RATE = 0.1
# From this many (preprocessed) columns the data is wide: the boosted kinds bin each column more
# coarsely, and CatBoost, which wins there, comes second. Finding a split costs columns x bins
# for every leaf, reading the rows costs rows x columns: on wide data of a few thousand rows
# the splits are most of the time, and the finer bins buy nothing. Measured on a synthetic
# 2,400 x 800 binary table (30 informative columns; 1,920 rows trained, one loaded core, ROC AUC
# on 600 other rows): LightGBM with 255 bins 16.6 s 0.966, 63 bins 6.2 s 0.962, 31 bins 3.7 s
# 0.965; CatBoost at learning rate 0.1 with 254 borders 47 s 0.985, 32 borders 13.5 s 0.984
# (at 0.05 with 32 borders: 23.6 s, 0.985); XGBoost 256 bins 13.4 s 0.966, 64 bins 4.8 s 0.960.
# Raw FLAML's winner on three wide synthetic tables (binary, 5 classes, regression) was CatBoost
# each time; with 32 borders, on a quiet core: 5 classes x 300 columns x 3,840 rows log loss
# 0.559 (LightGBM 0.663) but 3,172 rounds in 115 s; regression, 300 columns x 2,560 rows, RMSE
# 1.231 in 2.7 s (LightGBM 1.377 in 2.1 s; CatBoost with 254 borders 1.238 in 11.6 s).
WIDE_COLS = 200
WIDE_LIGHTGBM_BINS = 63
WIDE_XGBOOST_BINS = 64
WIDE_CATBOOST_BORDERS = 32
WIDE_CATBOOST_LEARNING_RATE = 0.1
# A boosted fit's time per cell on wide data relative to the formula's (`estimate_seconds`),
# from the fits above; and regression's extra rounds, measured on narrow data (california's
# thousands of rounds at 0.05), stay within WIDE_REGRESSION_COST (276 CatBoost rounds above).
WIDE_PER_CELL = {"lgbm": 0.5, "xgboost": 0.35, "catboost": 0.12}
WIDE_REGRESSION_COST = 2.0


@dataclass(frozen=True)
class Entry:
    """One configuration of the portfolio."""

    name: str  # unique, letters, digits and "_": the blend member's key
    description: str  # for people
    estimator: Any  # unfitted
    seconds: float  # expected fit seconds (one core, on the rows and columns given)
    kind: str  # the model family: a name of choices.ESTIMATORS, or "mlp", "catboost"
    classification: bool = True

    @property
    def class_weighted(self) -> Any | None:
        """The same estimator with balanced class weights (None for regression, or a kind
        without them); built when asked, as few runs need it."""
        return with_class_weights(self.estimator) if self.classification else None


@dataclass(frozen=True)
class _Cost:
    """What a fit costs: `rounds` trees (per class, for boosting) or epochs, each costing
    `per_round` seconds plus `per_cell` per row and column (see `estimate_seconds`)."""

    shape: str  # "boost", "forest" or "net"
    rounds: int  # planned trees or epochs: early stopping's typical count, with its patience
    per_round: float
    per_cell: float
    regression: float = 1.0  # regression's cost relative to this formula (more rounds, ...)


@dataclass(frozen=True)
class _Kind:
    name: str
    family: str  # choices.ESTIMATORS name, or "mlp" / "catboost"
    description: str  # boosted kinds: {rate} and {wide} filled in from the estimator
    build: Callable[[ProblemType, int, int], Any]  # (problem, seed, n_jobs) -> estimator
    cost: _Cost
    problems: tuple[ProblemType, ...] = (
        ProblemType.BINARY,
        ProblemType.MULTICLASS,
        ProblemType.REGRESSION,
    )


def _lgbm(problem: ProblemType, seed: int, n_jobs: int) -> Any:
    return _boosted_lightgbm(problem, seed, n_jobs, {})


def _lgbm_xt(problem: ProblemType, seed: int, n_jobs: int) -> Any:
    return _boosted_lightgbm(problem, seed, n_jobs, {"extra_trees": True})


def _lgbm_large(problem: ProblemType, seed: int, n_jobs: int) -> Any:
    params = {"num_leaves": 128, "colsample_bytree": 0.9, "min_child_samples": 3}
    return _boosted_lightgbm(problem, seed, n_jobs, params, learning_rate=0.03)


def _boosted_lightgbm(
    problem: ProblemType,
    seed: int,
    n_jobs: int,
    params: dict[str, Any],
    *,
    learning_rate: float = 0.05,
) -> Any:
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMRegressor if problem == ProblemType.REGRESSION else LGBMClassifier
    est = cls(
        n_estimators=MAX_TREES,
        learning_rate=learning_rate,
        random_state=seed,
        n_jobs=n_jobs,
        verbose=-1,
        histogram_pool_size=LIGHTGBM_HISTOGRAM_MB,
        **params,
    )
    return early_stopped(est, patience=PATIENCE_TREES, seed=seed)


def _xgboost(problem: ProblemType, seed: int, n_jobs: int) -> Any:
    from xgboost import XGBClassifier, XGBRegressor

    cls = XGBRegressor if problem == ProblemType.REGRESSION else XGBClassifier
    est = cls(
        n_estimators=MAX_TREES,
        learning_rate=0.1,
        max_depth=6,
        tree_method="hist",
        random_state=seed,
        n_jobs=n_jobs,
        # XGBoost 2 estimates base_score itself; the ONNX converter needs it stated.
        base_score=0.5 if problem.is_classification else 0.0,
    )
    return early_stopped(est, patience=PATIENCE_TREES, seed=seed)


def _catboost(problem: ProblemType, seed: int, n_jobs: int) -> Any:
    from catboost import CatBoostClassifier, CatBoostRegressor

    cls = CatBoostRegressor if problem == ProblemType.REGRESSION else CatBoostClassifier
    est = cls(
        iterations=MAX_TREES,
        learning_rate=0.05,
        depth=6,
        random_seed=seed,
        thread_count=n_jobs,
        verbose=False,
        allow_writing_files=False,
    )
    return early_stopped(est, patience=PATIENCE_TREES, seed=seed)


def one_cycle_net(n_rows: int | None) -> bool:
    """Whether the portfolio's neural net for `n_rows` training rows trains on a one-cycle
    schedule (see CYCLE_EPOCHS), whatever the problem."""
    return n_rows is not None and n_rows >= CYCLE_MIN_ROWS


def net_seeds(problem: ProblemType, n_rows: int | None) -> int:
    """How many nets the portfolio's net averages (`MULTICLASS_NET_SEEDS` or 1)."""
    one_cycle_multiclass = problem == ProblemType.MULTICLASS and one_cycle_net(n_rows)
    return MULTICLASS_NET_SEEDS if one_cycle_multiclass else 1


def _mlp(problem: ProblemType, seed: int, n_jobs: int) -> Pipeline:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    cls = MLPRegressor if problem == ProblemType.REGRESSION else MLPClassifier
    net = cls(
        hidden_layer_sizes=PATIENT_LAYERS,
        alpha=1e-4,
        batch_size=256,
        learning_rate_init=1e-3,
        max_iter=MAX_EPOCHS,
        random_state=seed,
    )
    return Pipeline(
        [
            # The preprocessor already fills gaps; a second imputer costs nothing and keeps
            # NaN (a column with no training value) out of the net.
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            (
                "net",
                early_stopped(
                    net,
                    patience=PATIENCE_EPOCHS,
                    seed=seed,
                    scale_target=problem == ProblemType.REGRESSION,
                ),
            ),
        ]
    )


def _forest(extra: bool) -> Callable[[ProblemType, int, int], Any]:
    def build(problem: ProblemType, seed: int, n_jobs: int) -> Any:
        from sklearn.ensemble import (
            ExtraTreesClassifier,
            ExtraTreesRegressor,
            RandomForestClassifier,
            RandomForestRegressor,
        )

        if problem == ProblemType.REGRESSION:
            cls: Any = ExtraTreesRegressor if extra else RandomForestRegressor
        else:
            cls = ExtraTreesClassifier if extra else RandomForestClassifier
        # Wrapped only so that `max_seconds` can cut its growth short (no validation rows).
        forest = cls(n_estimators=FOREST_TREES, random_state=seed, n_jobs=n_jobs)
        if extra and problem.is_classification:
            # Each tree on a bootstrap sample: +0.005 to +0.018 ROC AUC in 11 of 12 splits of
            # titanic, credit_g, adult (3,000 rows) and ibm_hr_attrition; and out-of-bag
            # outputs for a fold average. Regression lost 0.3-8% RMSE with it: not there.
            forest.set_params(bootstrap=True)
        return early_stopped(forest, seed=seed)

    return build


_BINARY_REGRESSION = (ProblemType.BINARY, ProblemType.REGRESSION)

# Priority order for binary and regression; multiclass moves the neural net first.
_KINDS: tuple[_Kind, ...] = (
    _Kind(
        "lgbm",
        "lgbm",
        "LightGBM (learning rate {rate}, early stopping{wide})",
        _lgbm,
        _Cost("boost", 200, 2.0e-4, 3.5e-8, regression=2.0),
    ),
    _Kind(
        "lgbm_xt",
        "lgbm",
        "LightGBM with extremely randomised splits (early stopping{wide})",
        _lgbm_xt,
        _Cost("boost", 500, 2.0e-4, 3.0e-8, regression=3.0),
    ),
    _Kind(
        "rf",
        "rf",
        "random forest",
        _forest(False),
        _Cost("forest", FOREST_TREES, 5.0e-3, 7.0e-8, regression=3.0),
    ),
    _Kind(
        "catboost",
        "catboost",
        "CatBoost (learning rate {rate}, early stopping{wide})",
        _catboost,
        _Cost("boost", 300, 2.0e-3, 1.2e-7, regression=7.0),
    ),
    _Kind(
        "xt",
        "extra_tree",
        "extra trees",
        _forest(True),
        _Cost("forest", FOREST_TREES, 4.0e-3, 8.0e-8, regression=0.6),
    ),
    _Kind(
        "mlp",
        "mlp",
        "neural net (2 layers, standardised inputs, early stopping)",
        _mlp,
        _Cost("net", 50, 3.0e-3, 3.5e-5, regression=0.4),
    ),
    _Kind(
        "xgboost",
        "xgboost",
        "XGBoost (learning rate {rate}, early stopping{wide})",
        _xgboost,
        _Cost("boost", 250, 2.0e-4, 4.0e-8),
    ),
    _Kind(
        "lgbm_large",
        "lgbm",
        "large LightGBM (128 leaves, learning rate {rate}, early stopping{wide})",
        _lgbm_large,
        _Cost("boost", 250, 5.0e-4, 1.0e-7),
    ),
)
_BY_NAME = {k.name: k for k in _KINDS}
CYCLE_NET_DESCRIPTION = (
    f"neural net ({len(CYCLE_LAYERS)} layers, standardised inputs, {CYCLE_EPOCHS} epochs of "
    "one-cycle learning rate)"
)


def names() -> list[str]:
    """Every portfolio kind's name, in the binary/regression priority order."""
    return [k.name for k in _KINDS]


def estimate_seconds(
    name: str,
    problem: ProblemType,
    *,
    n_rows: int,
    n_cols: int,
    n_classes: int,
    n_folds: int = 1,
) -> float:
    """Expected seconds of one fit of portfolio kind `name` on one core (a forest sized for
    `n_folds` folds, see `build`; `bagging.fits_per_average` says how many fits a fold average
    trains).

    Measured on the shared 2-core machine while other jobs ran (load about 13), one thread:
    titanic, credit_g, penguins, letter and california_housing (within a factor of about 2 of
    every fit measured there, except a few early stops far from the typical). A boosted model costs
    rounds x trees per round (one per class for multiclass) x (overhead + rows x columns x
    per cell); a forest its trees x (overhead + rows x log2(rows) x the columns a split tries);
    a net its epochs x (overhead + rows x its layer sizes). Early stopping makes the rounds
    vary by a factor of 3 either way: callers should cap a fit (`max_seconds`).
    """
    kind = _BY_NAME[name]
    cost = kind.cost
    rows, cols = max(1, n_rows), max(1, n_cols)
    rounds, depth = cost.rounds, math.log2(rows + 1)
    if cost.shape == "forest":
        rounds, leaves = _forest_shape(name, problem, rows, n_classes, n_folds)
        depth = math.log2(min(rows, leaves or rows) + 1)  # capped trees are shallower
    multiclass = problem == ProblemType.MULTICLASS
    if cost.shape == "boost":
        trees = cost.rounds * (n_classes if multiclass else 1)
        if multiclass and n_classes > MANY_CLASSES and kind.family == "lgbm":
            trees /= 2  # twice the learning rate: about half the rounds
        per_cell = cost.per_cell * (WIDE_PER_CELL[kind.family] if wide(n_cols) else 1.0)
        seconds = trees * (cost.per_round + per_cell * rows * cols)
    elif cost.shape == "forest":
        tried = cols if problem == ProblemType.REGRESSION else math.sqrt(cols)
        seconds = rounds * (cost.per_round + cost.per_cell * rows * depth * tried)
    else:
        cycled = one_cycle_net(n_rows)
        layers = [cols, *(CYCLE_LAYERS if cycled else PATIENT_LAYERS), max(1, n_classes)]
        width = sum(a * b for a, b in pairwise(layers)) / 40_000  # weights per row, scaled
        epochs = CYCLE_EPOCHS if cycled else cost.rounds
        seconds = epochs * (cost.per_round + cost.per_cell * rows * width)
        seconds *= net_seeds(problem, n_rows)
    if problem == ProblemType.REGRESSION:
        wide_boost = cost.shape == "boost" and wide(n_cols)
        seconds *= min(cost.regression, WIDE_REGRESSION_COST) if wide_boost else cost.regression
    return 0.1 + seconds


def wide(n_cols: int | None) -> bool:
    """Whether `n_cols` preprocessed columns make the data wide (see `WIDE_COLS`)."""
    return n_cols is not None and n_cols >= WIDE_COLS


def _coarse_bins(kind: _Kind, est: Any) -> None:
    """Bin the columns of a boosted estimator (early-stopped) coarsely, for wide data."""
    if kind.family == "lgbm":
        est.set_params(estimator__max_bin=WIDE_LIGHTGBM_BINS)
    elif kind.family == "xgboost":
        est.set_params(estimator__max_bin=WIDE_XGBOOST_BINS)
    elif kind.family == "catboost":
        est.set_params(
            estimator__border_count=WIDE_CATBOOST_BORDERS,
            estimator__learning_rate=WIDE_CATBOOST_LEARNING_RATE,
        )


def _usable(kind: _Kind, problem: ProblemType, n_classes: int) -> bool:
    if kind.name == "catboost" and problem == ProblemType.MULTICLASS:
        return n_classes <= CATBOOST_MAX_CLASSES
    return problem in kind.problems


def forest_trees(n_rows: int) -> int:
    """Trees in a portfolio forest trained on `n_rows` rows."""
    return FOREST_TREES if n_rows <= FOREST_LARGE_ROWS else FOREST_TREES_LARGE


def forest_leaves(problem: ProblemType, n_classes: int) -> int:
    """The most leaves a portfolio forest (or the forests of a fold average together) may
    have: a tree of L leaves has 2L - 1 nodes, each counting 1 + half its values (one per
    class for classification, one for regression) against `sizes.MAX_TREE_NODES`."""
    values = max(2, n_classes) if problem.is_classification else 1
    return int(FOREST_SIZE_SHARE * MAX_TREE_NODES / (2 * (1 + values / 2)))


def _forest_shape(
    name: str, problem: ProblemType, n_rows: int, n_classes: int, n_folds: int
) -> tuple[int, int | None]:
    """(trees, leaf cap or None) of portfolio forest `name`. In a fold average of `n_folds`
    folds that is not one out-of-bag forest, the folds share the trees and the node cap."""
    bootstrapped = name == "rf" or problem.is_classification
    fits = 1 if bootstrapped else max(1, n_folds)
    trees = forest_trees(n_rows)
    if fits > 1:
        trees = max(FOREST_MIN_TREES_PER_FOLD, trees // fits)
    leaves = max(16, forest_leaves(problem, n_classes) // (fits * trees))
    # Full depth (no cap) when the rows cannot grow more leaves than the cap anyway.
    return trees, leaves if leaves < n_rows else None


def build(
    name: str,
    problem: ProblemType,
    *,
    seed: int = 0,
    n_jobs: int = 1,
    n_classes: int = 2,
    n_rows: int | None = None,
    n_cols: int | None = None,
    n_folds: int = 1,
) -> Any:
    """A fresh, unfitted estimator of portfolio kind `name` for `n_classes` classes (and
    `n_rows` training rows, and a fold average of `n_folds` folds if one is planned: forests
    are sized by them; `n_cols` preprocessed columns: boosting bins wide data coarsely)."""
    kind = _BY_NAME[name]
    est = kind.build(problem, seed, n_jobs)
    if n_classes > MANY_CLASSES and kind.family == "lgbm":
        est.set_params(estimator__learning_rate=MANY_CLASSES_LEARNING_RATE)
    if wide(n_cols) and kind.cost.shape == "boost":
        _coarse_bins(kind, est)
    if kind.cost.shape == "forest" and n_rows is not None:
        trees, leaves = _forest_shape(name, problem, n_rows, n_classes, n_folds)
        est.set_params(estimator__n_estimators=trees, estimator__max_leaf_nodes=leaves)
    if kind.name == "mlp" and one_cycle_net(n_rows):
        est.set_params(
            net__cycle_epochs=CYCLE_EPOCHS,
            net__estimator__learning_rate_init=CYCLE_PEAK_RATE,
            net__estimator__alpha=CYCLE_WEIGHT_DECAY,
            net__estimator__hidden_layer_sizes=CYCLE_LAYERS,
        )
        if net_seeds(problem, n_rows) > 1:
            est = SeedAverageClassifier(est, n_seeds=net_seeds(problem, n_rows))
    return est


def _describe(kind: _Kind, est: Any) -> str:
    if isinstance(est, SeedAverageClassifier):
        return f"{CYCLE_NET_DESCRIPTION}, average of {est.n_seeds} seeds"
    if kind.name == "mlp" and est.get_params()["net__cycle_epochs"]:
        return CYCLE_NET_DESCRIPTION
    if kind.cost.shape == "boost":
        return _boosted_description(kind.description, est.get_params())
    if kind.cost.shape != "forest":
        return kind.description
    params = est.get_params()
    cap = params["estimator__max_leaf_nodes"]
    limit = f", at most {cap} leaves each" if cap else ""
    return f"{kind.description} ({params['estimator__n_estimators']} trees{limit})"


def _boosted_description(template: str, params: dict[str, Any]) -> str:
    """A boosted kind's description with the learning rate its estimator has (0.1 on many
    classes, say) and the coarse bins of wide data."""
    bins, borders = params.get("estimator__max_bin"), params.get("estimator__border_count")
    coarse = f"{bins} bins" if bins else f"{borders} borders" if borders else ""
    wide_words = f", {coarse} a column for wide data" if coarse else ""
    return template.format(rate=f"{params['estimator__learning_rate']:g}", wide=wide_words)


def with_class_weights(estimator: Any) -> Any | None:
    """`estimator` (unfitted) with balanced class weights, or None if its kind has none."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    from tabpilot.engine.training.early_stop import EarlyStoppedClassifier

    est = clone(estimator)
    last = est.steps[-1][1] if isinstance(est, Pipeline) else est
    if not isinstance(last, EarlyStoppedClassifier | RandomForestClassifier | ExtraTreesClassifier):
        return None
    last.set_params(class_weight="balanced")
    return est


def portfolio(
    problem: ProblemType,
    *,
    n_rows: int,
    n_cols: int,
    n_classes: int,
    seed: int = 0,
    n_jobs: int = 1,
    n_folds: int = 1,
) -> list[Entry]:
    """The portfolio for `problem` on `n_rows` x `n_cols` (preprocessed) rows, in priority
    order, with expected seconds of one fit; `n_folds` > 1 when each entry will be a fold
    average (forests are then sized so that their folds together stay small).
    Classification entries carry a class-weighted twin where the kind supports one."""
    kinds = [k for k in _KINDS if _usable(k, problem, n_classes)]
    if wide(n_cols):
        kinds.sort(key=lambda k: k.name not in ("lgbm", "catboost"))  # stable sort
    if problem == ProblemType.MULTICLASS:
        kinds.sort(key=lambda k: k.name != "mlp")  # stable: the rest keep their order
    out = []
    for kind in kinds:
        est = build(
            kind.name,
            problem,
            seed=seed,
            n_jobs=n_jobs,
            n_classes=n_classes,
            n_rows=n_rows,
            n_cols=n_cols,
            n_folds=n_folds,
        )
        seconds = estimate_seconds(
            kind.name,
            problem,
            n_rows=n_rows,
            n_cols=n_cols,
            n_classes=n_classes,
            n_folds=n_folds,
        )
        out.append(
            Entry(
                kind.name,
                _describe(kind, est),
                est,
                round(seconds, 3),
                kind.family,
                problem.is_classification,
            )
        )
    return out
