"""The portfolio's order and estimates, early stopping inside fit, and fold averages."""

from __future__ import annotations

import time
from itertools import pairwise

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression

from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training import portfolio
from tabpilot.engine.training.bagging import (
    FoldAverageClassifier,
    FoldAverageRegressor,
    fits_per_average,
    fold_average,
)
from tabpilot.engine.training.early_stop import (
    EarlyStoppedClassifier,
    EarlyStoppedRegressor,
    early_stopped,
    one_cycle_rate,
)
from tabpilot.engine.training.sizes import MAX_TREE_NODES


def _lgbm(problem: ProblemType, **params: object) -> object:
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMRegressor if problem == ProblemType.REGRESSION else LGBMClassifier
    settings = {"n_estimators": 2000, "learning_rate": 0.1, "verbose": -1, "n_jobs": 1}
    return cls(**{**settings, **params})


def test_multiclass_puts_the_neural_net_first_and_skips_catboost_on_many_classes() -> None:
    many = portfolio.portfolio(ProblemType.MULTICLASS, n_rows=16_000, n_cols=16, n_classes=26)
    assert [e.name for e in many][:3] == ["mlp", "lgbm", "lgbm_xt"]
    assert "catboost" not in [e.name for e in many]
    few = portfolio.portfolio(ProblemType.MULTICLASS, n_rows=300, n_cols=10, n_classes=3)
    assert "catboost" in [e.name for e in few]
    rates = {e.name: e.estimator.get_params().get("estimator__learning_rate") for e in many}
    assert rates["lgbm"] == rates["lgbm_xt"] == portfolio.MANY_CLASSES_LEARNING_RATE
    # The card says the rate the model has.
    assert "learning rate 0.1," in {e.name: e.description for e in many}["lgbm"]
    assert {e.name: e.estimator.get_params().get("estimator__learning_rate") for e in few}[
        "lgbm"
    ] == 0.05


def test_forests_are_sized_so_their_leaves_fit_in_memory_and_onnx() -> None:
    small = portfolio.portfolio(ProblemType.BINARY, n_rows=400, n_cols=50, n_classes=2)
    rf = next(e for e in small if e.name == "rf").estimator.estimator
    assert rf.n_estimators == portfolio.FOREST_TREES and rf.max_leaf_nodes is None
    many = portfolio.portfolio(ProblemType.MULTICLASS, n_rows=16_000, n_cols=16, n_classes=26)
    for e in many:
        if e.kind in ("rf", "extra_tree"):
            est = e.estimator.estimator
            # 2 nodes a leaf, each node 1 + 26 / 2: within the size a model may have.
            assert est.n_estimators * est.max_leaf_nodes * 2 * 14 <= MAX_TREE_NODES
            assert f"{est.n_estimators} trees" in e.description


def test_binary_and_regression_order_and_fields() -> None:
    for problem in (ProblemType.BINARY, ProblemType.REGRESSION):
        entries = portfolio.portfolio(problem, n_rows=1000, n_cols=20, n_classes=2)
        assert [e.name for e in entries] == portfolio.names()
        assert len({e.name for e in entries}) == len(entries)
        for e in entries:
            assert e.seconds > 0
            assert e.kind in ("lgbm", "rf", "catboost", "extra_tree", "mlp", "xgboost")
            assert (e.class_weighted is not None) == problem.is_classification
            clone(e.estimator)  # clone()-able, as the refit and the folds need


def test_estimates_grow_with_rows_columns_and_classes() -> None:
    def est(rows: int, cols: int, k: int, name: str = "lgbm") -> float:
        problem = ProblemType.MULTICLASS if k > 2 else ProblemType.BINARY
        return portfolio.estimate_seconds(name, problem, n_rows=rows, n_cols=cols, n_classes=k)

    assert est(1000, 10, 2) < est(10_000, 10, 2) < est(10_000, 50, 2) < est(10_000, 50, 10)
    assert est(10_000, 50, 10, "rf") < est(10_000, 50, 10, "lgbm")


@pytest.mark.slow
@pytest.mark.parametrize("problem", [ProblemType.BINARY, ProblemType.REGRESSION])
def test_early_stopping_stops_on_noise_and_keeps_the_best_iteration(problem: ProblemType) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    y = rng.integers(0, 2, 600) if problem.is_classification else rng.normal(size=600)
    model = early_stopped(_lgbm(problem), patience=20, seed=0).fit(X, y)
    # Pure noise: the best is one of the first trees, and patience ends the fit.
    assert model.stopped_by_ == "patience"
    assert model.best_iteration_ < 30
    # The kept model holds exactly the trees it uses (what the ONNX graph then holds too).
    assert model.estimator_.booster_.current_iteration() == model.best_iteration_


@pytest.mark.slow
def test_validation_rows_given_by_the_caller_decide_the_stop() -> None:
    X, y = make_classification(800, 8, n_informative=5, random_state=0)
    honest = EarlyStoppedClassifier(_lgbm(ProblemType.BINARY), patience=20)
    honest.fit(X[:600], y[:600], X_valid=X[600:], y_valid=y[600:])
    flipped = EarlyStoppedClassifier(_lgbm(ProblemType.BINARY), patience=20)
    flipped.fit(X[:600], y[:600], X_valid=X[600:], y_valid=1 - y[600:])
    # Inverted labels get worse with every tree: the first tree is the best.
    assert flipped.best_iteration_ == 1 < honest.best_iteration_


@pytest.mark.slow
def test_time_limit_stops_and_keeps_the_best_so_far() -> None:
    X, y = make_regression(3000, 20, noise=1.0, random_state=0)
    started = time.perf_counter()
    model = EarlyStoppedRegressor(
        _lgbm(ProblemType.REGRESSION, learning_rate=0.01), max_seconds=0.3
    ).fit(X, y)
    assert time.perf_counter() - started < 3.0
    assert model.stopped_by_ == "time"
    assert model.best_iteration_ >= 1


@pytest.mark.slow
def test_a_class_missing_from_the_rows_gets_probability_zero() -> None:
    X, y = make_classification(300, 6, n_informative=4, n_classes=3, random_state=0)
    keep = y != 1  # the model sees classes 0 and 2 only
    model = EarlyStoppedClassifier(_lgbm(ProblemType.MULTICLASS), patience=10).fit(X[keep], y[keep])
    assert list(model.classes_) == [0, 2]
    assert set(model.predict(X)) <= {0, 2}


@pytest.mark.slow
def test_class_weights_raise_minority_recall() -> None:
    X, y = make_classification(
        2000, 8, n_informative=3, weights=[0.95, 0.05], flip_y=0.05, random_state=1
    )
    plain = portfolio.build("lgbm", ProblemType.BINARY)
    weighted = portfolio.with_class_weights(plain)
    assert weighted is not None and weighted.get_params()["class_weight"] == "balanced"
    recall = [
        np.mean(clone(e).fit(X[:1500], y[:1500]).predict(X[1500:])[y[1500:] == 1] == 1)
        for e in (plain, weighted)
    ]
    assert recall[1] > recall[0]


@pytest.mark.slow
def test_regression_net_learns_a_target_far_from_zero() -> None:
    X, y = make_regression(800, 6, noise=1.0, random_state=0)
    y = 50_000 + 1_000 * y  # unscaled, a net without target scaling barely moves
    net = portfolio.build("mlp", ProblemType.REGRESSION)
    model = clone(net).fit(X[:600], y[:600])
    rmse = np.sqrt(np.mean((model.predict(X[600:]) - y[600:]) ** 2))
    assert rmse < 0.3 * np.std(y[600:])


def test_one_cycle_rate_warms_up_to_its_peak_then_anneals() -> None:
    rates = [one_cycle_rate(e, 20, 0.01) for e in range(1, 21)]
    peak = int(np.argmax(rates))
    assert rates[peak] == pytest.approx(0.01, rel=0.01) and 0 < peak < 10
    assert all(a < b for a, b in pairwise(rates[: peak + 1]))
    assert all(a > b for a, b in pairwise(rates[peak:]))
    assert rates[0] < 0.005 and rates[-1] < 0.0005


@pytest.mark.parametrize(
    ("problem", "n_rows", "cycled"),
    [
        (ProblemType.BINARY, 1_000, False),
        (ProblemType.BINARY, 20_000, True),
        (ProblemType.MULTICLASS, 500, False),
        (ProblemType.MULTICLASS, 6_000, True),
        (ProblemType.REGRESSION, 500, False),
        (ProblemType.REGRESSION, 6_000, True),
    ],
)
def test_the_net_trains_on_a_one_cycle_schedule_except_on_small_data(
    problem: ProblemType, n_rows: int, cycled: bool
) -> None:
    n_classes = 3 if problem == ProblemType.MULTICLASS else 2
    net = portfolio.build("mlp", problem, n_rows=n_rows, n_classes=n_classes)
    if problem == ProblemType.MULTICLASS and cycled:
        net = net.estimator  # a seed average of that net (see the test below)
    params = net.get_params()
    assert bool(params["net__cycle_epochs"]) == cycled
    layers = params["net__estimator__hidden_layer_sizes"]
    assert layers == (portfolio.CYCLE_LAYERS if cycled else (256, 128))
    entry = next(
        e
        for e in portfolio.portfolio(problem, n_rows=n_rows, n_cols=5, n_classes=n_classes)
        if e.name == "mlp"
    )
    assert ("one-cycle" in entry.description) == cycled


def test_a_one_cycle_net_runs_its_epochs_keeps_the_best_and_ends_at_the_peak_setting() -> None:
    X, y = make_classification(600, 8, n_informative=5, n_classes=3, random_state=0)
    net = portfolio.build("mlp", ProblemType.MULTICLASS, n_rows=6_000, n_classes=3).estimator
    model = clone(net).fit(X[:500], y[:500])  # one net of the seed average
    inner = model.named_steps["net"]
    assert inner.stopped_by_ == "max_iterations"  # the schedule, not patience, ended it
    assert 1 <= inner.best_iteration_ <= portfolio.CYCLE_EPOCHS
    assert inner.iterations_ == portfolio.CYCLE_EPOCHS
    # The fitted net reports the peak it was configured with (a clone rebuilds the same).
    assert inner.estimator_.get_params()["learning_rate_init"] == portfolio.CYCLE_PEAK_RATE
    assert np.mean(model.predict(X[500:]) == y[500:]) > 0.6


@pytest.mark.slow
def test_fold_average_out_of_fold_outputs_come_from_the_model_that_never_saw_the_row() -> None:
    X, y = make_classification(400, 6, n_informative=4, n_classes=3, random_state=0)
    bag = fold_average(_lgbm(ProblemType.MULTICLASS, n_estimators=30), n_folds=4, seed=0)
    assert isinstance(bag, FoldAverageClassifier)
    bag.fit(X, y)
    assert len(bag.estimators_) == 4 and bag.oof_.shape == (400, 3)
    np.testing.assert_allclose(bag.oof_.sum(axis=1), 1.0)
    # The average of the fold models predicts.
    mean = np.mean([m.predict_proba(X[:20]) for m in bag.estimators_], axis=0)
    np.testing.assert_allclose(bag.predict_proba(X[:20]), mean)
    # A row's out-of-fold output is the model of the fold that held it out.
    folds = [(tr, va) for tr, va in _stratified(y, 4)]
    for model, (_, valid) in zip(bag.estimators_, folds, strict=True):
        np.testing.assert_allclose(bag.oof_[valid], model.predict_proba(X[valid]))


def _stratified(y: np.ndarray, k: int) -> list:
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(k, shuffle=True, random_state=0).split(np.zeros(len(y)), y))


@pytest.mark.slow
def test_fold_average_uses_the_folds_it_is_given_and_early_stops_on_them() -> None:
    X, y = make_regression(300, 5, noise=5.0, random_state=0)
    folds = [(np.arange(100, 300), np.arange(100)), (np.arange(200), np.arange(200, 300))]
    stopped = EarlyStoppedRegressor(_lgbm(ProblemType.REGRESSION), patience=10)
    bag = FoldAverageRegressor(stopped, folds=folds).fit(X, y)
    assert len(bag.estimators_) == 2
    assert bag.oof_[200:].tolist() == pytest.approx(bag.estimators_[1].predict(X[200:]).tolist())
    assert bag.oof_[100:200].tolist() == [0.0] * 100  # in no fold's held-out rows
    # Each fold model stopped on its own held-out rows, not a slice of its training rows.
    refit = EarlyStoppedRegressor(_lgbm(ProblemType.REGRESSION), patience=10)
    refit.fit(X[100:300], y[100:300], X_valid=X[:100], y_valid=y[:100])
    assert bag.estimators_[0].best_iteration_ == refit.best_iteration_


@pytest.mark.slow
def test_fold_average_from_fitted_models() -> None:
    X, y = make_classification(200, 5, random_state=0)
    models = [_lgbm(ProblemType.BINARY, n_estimators=10).fit(X[i::2], y[i::2]) for i in (0, 1)]
    bag = FoldAverageClassifier.from_fitted(models, classes=[0, 1])
    expected = (models[0].predict_proba(X) + models[1].predict_proba(X)) / 2
    np.testing.assert_allclose(bag.predict_proba(X), expected)
    with pytest.raises(ValueError, match="classes"):
        FoldAverageClassifier.from_fitted(models)


@pytest.mark.slow
def test_a_forest_grows_every_tree_or_stops_when_its_time_is_up() -> None:
    X, y = make_classification(3000, 20, random_state=0)
    forest = portfolio.build("rf", ProblemType.BINARY, n_rows=3000)
    full = clone(forest).set_params(estimator__n_estimators=30).fit(X, y)
    assert len(full.estimator_.estimators_) == 30 and full.stopped_by_ == "max_iterations"
    capped = clone(forest).set_params(max_seconds=0.05).fit(X, y)
    assert capped.stopped_by_ == "time"
    assert 0 < len(capped.estimator_.estimators_) < portfolio.FOREST_TREES
    assert capped.best_iteration_ == len(capped.estimator_.estimators_)


@pytest.mark.slow
@pytest.mark.parametrize("problem", [ProblemType.MULTICLASS, ProblemType.REGRESSION])
def test_a_bagged_random_forest_is_one_forest_with_out_of_bag_outputs(problem: ProblemType) -> None:
    if problem.is_classification:
        X, y = make_classification(600, 8, n_informative=4, n_classes=3, random_state=0)
    else:
        X, y = make_regression(600, 8, noise=20.0, random_state=0)
    rf = portfolio.build("rf", problem, n_classes=3, n_rows=600).set_params(
        estimator__n_estimators=60
    )
    bag = fold_average(rf, n_folds=5).fit(X, y)
    assert len(bag.estimators_) == 1  # one forest, not five
    inside = bag.estimators_[0].predict_proba(X) if problem.is_classification else bag.predict(X)
    if problem.is_classification:
        assert bag.oof_.shape == (600, 3)
        np.testing.assert_allclose(bag.oof_.sum(axis=1), 1.0)
        # Out of bag is honest: far less sure of the true class than the forest on its rows.
        picked = np.arange(600), y
        assert bag.oof_[picked].mean() < inside[picked].mean() - 0.1
    else:
        oob_error = np.mean((bag.oof_ - y) ** 2)
        assert oob_error > 2 * np.mean((inside - y) ** 2)
    # Extra trees draw bootstrap samples for classification only (regression lost accuracy with
    # them): without, a fold average trains one forest per fold.
    xt = portfolio.build("xt", problem, n_classes=3, n_rows=600)
    xt.set_params(estimator__n_estimators=20)
    folds = 1 if problem.is_classification else 3
    assert len(fold_average(xt, n_folds=3).fit(X, y).estimators_) == folds
    assert fits_per_average(xt, 3) == folds and fits_per_average(rf, 5) == 1


def test_forests_planned_as_fold_averages_share_their_size_across_the_folds() -> None:
    def forest(name: str, problem: ProblemType, folds: int) -> object:
        entries = portfolio.portfolio(problem, n_rows=6000, n_cols=16, n_classes=2, n_folds=folds)
        return next(e for e in entries if e.name == name)

    # Regression extra trees (no bootstrap) train one forest per fold: the folds share the size.
    alone = forest("xt", ProblemType.REGRESSION, 1).estimator.estimator
    folded = forest("xt", ProblemType.REGRESSION, 5).estimator.estimator
    leaves = portfolio.forest_leaves(ProblemType.REGRESSION, 0)
    assert folded.n_estimators * folded.max_leaf_nodes * 5 <= leaves
    assert alone.n_estimators * alone.max_leaf_nodes <= leaves
    assert leaves * 2 * 1.5 <= MAX_TREE_NODES  # 2 nodes a leaf, each 1 + half a value
    assert folded.n_estimators < alone.n_estimators
    assert (
        forest("xt", ProblemType.REGRESSION, 5).seconds
        < forest("xt", ProblemType.REGRESSION, 1).seconds
    )
    # A random forest's fold average is one out-of-bag forest: sized as one.
    rf = forest("rf", ProblemType.REGRESSION, 5).estimator.estimator
    assert rf.n_estimators == portfolio.FOREST_TREES


@pytest.mark.parametrize("problem", [ProblemType.BINARY, ProblemType.REGRESSION])
def test_repeated_folds_average_each_rows_out_of_fold_outputs(problem: ProblemType) -> None:
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    classify = problem.is_classification
    y = (X[:, 0] > 0).astype(int) if classify else X[:, 0] * 2.0 + rng.normal(size=60)
    est = LogisticRegression() if classify else LinearRegression()
    once = fold_average(est, n_folds=3, seed=0).fit(X, y)
    thrice = fold_average(est, n_folds=3, seed=0, n_repeats=3).fit(X, y)
    assert len(once.estimators_) == 3 and len(thrice.estimators_) == 9
    # The folds drawn as the fold average draws them: each row is held out once per draw,
    # and its out-of-fold output is the average of the three models that did not see it.
    splitter = (
        RepeatedStratifiedKFold(n_splits=3, n_repeats=3, random_state=0)
        if classify
        else RepeatedKFold(n_splits=3, n_repeats=3, random_state=0)
    )
    row, outputs = 7, []
    for model, (_, valid) in zip(thrice.estimators_, splitter.split(X, y), strict=True):
        if row in valid:
            out = model.predict_proba(X[[row]]) if classify else model.predict(X[[row]])
            outputs.append(out[0])
    assert len(outputs) == 3
    np.testing.assert_allclose(thrice.oof_[row], np.mean(outputs, axis=0))


def test_every_lightgbm_the_engine_builds_bounds_its_histogram_cache() -> None:
    from tabpilot.engine.training.estimators import build_estimator
    from tabpilot.engine.training.sizes import LIGHTGBM_HISTOGRAM_MB

    for problem in (ProblemType.BINARY, ProblemType.MULTICLASS, ProblemType.REGRESSION):
        entries = portfolio.portfolio(problem, n_rows=1000, n_cols=20, n_classes=3)
        boosted = [e.estimator.estimator for e in entries if e.kind == "lgbm"]
        assert len(boosted) == 3  # learning rate 0.05, extremely randomised, large
        searched = build_estimator(
            "lgbm",
            {"n_estimators": 4, "num_leaves": 4},
            problem=problem,
            seed=0,
            n_jobs=1,
            y_train=np.array([0.0, 1.0, 2.0]),
        )
        for est in [*boosted, searched]:
            assert est.get_params()["histogram_pool_size"] == LIGHTGBM_HISTOGRAM_MB


def test_a_seed_average_trains_its_nets_with_their_own_seeds_and_averages_them() -> None:
    from tabpilot.engine.training.bagging import SeedAverageClassifier

    X, y = make_classification(300, n_features=8, n_informative=5, n_classes=3, random_state=0)
    net = portfolio.build("mlp", ProblemType.MULTICLASS, seed=7, n_classes=3)
    avg = SeedAverageClassifier(net, n_seeds=3).fit(X, y)
    seeds = [m.get_params()["net__estimator__random_state"] for m in avg.estimators_]
    assert seeds == [7, 8, 9]
    assert [m.get_params()["net__seed"] for m in avg.estimators_] == [7, 8, 9]
    mean = np.mean([m.predict_proba(X) for m in avg.estimators_], axis=0)
    np.testing.assert_allclose(avg.predict_proba(X), mean)
    assert not np.allclose(avg.estimators_[0].predict_proba(X), avg.estimators_[1].predict_proba(X))
    np.testing.assert_array_equal(avg.predict(X), mean.argmax(axis=1))


def test_many_rows_of_many_classes_get_a_seed_average_of_one_cycle_nets() -> None:
    from tabpilot.engine.training.bagging import SeedAverageClassifier
    from tabpilot.engine.training.scoring import with_time_limit

    entries = portfolio.portfolio(ProblemType.MULTICLASS, n_rows=16_000, n_cols=16, n_classes=26)
    net = entries[0]
    assert net.name == "mlp" and isinstance(net.estimator, SeedAverageClassifier)
    assert net.estimator.n_seeds == portfolio.MULTICLASS_NET_SEEDS
    assert net.description.endswith(f"average of {portfolio.MULTICLASS_NET_SEEDS} seeds")
    one = portfolio.estimate_seconds(
        "mlp", ProblemType.BINARY, n_rows=16_000, n_cols=16, n_classes=2
    )
    assert net.seconds > 2 * one  # every seed counted
    # A time limit is shared by the seeds, as by a fold average's folds.
    limited = with_time_limit(net.estimator, 9.0)
    assert limited.get_params()["estimator__net__max_seconds"] == pytest.approx(3.0)
    for problem, rows in ((ProblemType.MULTICLASS, 3_000), (ProblemType.BINARY, 16_000)):
        first = portfolio.portfolio(problem, n_rows=rows, n_cols=16, n_classes=3)
        nets = [e for e in first if e.name == "mlp"]
        assert not isinstance(nets[0].estimator, SeedAverageClassifier)


def test_a_seed_average_in_a_fold_average_trains_each_net_on_every_row_of_its_fold() -> None:
    from tabpilot.engine.training.bagging import SeedAverageClassifier

    X, y = make_classification(300, n_features=6, n_informative=4, n_classes=3, random_state=0)
    net = portfolio.build("mlp", ProblemType.MULTICLASS, n_classes=3)
    net.set_params(net__estimator__max_iter=3)
    folds = [
        (np.arange(300)[np.arange(300) % 3 != k], np.arange(300)[np.arange(300) % 3 == k])
        for k in range(3)
    ]
    bag = fold_average(SeedAverageClassifier(net, n_seeds=2), folds=folds).fit(X, y)
    for (train, _), fold_model in zip(folds, bag.estimators_, strict=True):
        for member in fold_model.estimators_:
            stopper = member.named_steps["net"]
            # No slice of its own carved off: it stopped on the fold's held-out rows.
            assert stopper.estimator_.t_ == len(train) * stopper.iterations_
    assert bag.oof_.shape == (300, 3)
