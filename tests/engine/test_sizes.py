"""Tree sizes (what exporting a model costs) and the blend's size limit."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tabpilot.engine.training.blend import BlendMember, select_blend
from tabpilot.engine.training.clock import Clock
from tabpilot.engine.training.sizes import (
    EXPORT_NODES_PER_SECOND,
    MAX_TREE_NODES,
    REFIT_GROWTH,
    blend_size_limit,
    tree_nodes,
)


def _data(n: int = 400, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] * 2 + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int) * (classes - 2)
    return X, y


def test_lightgbm_size_counts_every_node_and_leaf_value() -> None:
    from lightgbm import LGBMClassifier

    X, y = _data()
    model = LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(X, y)
    frame = model.booster_.trees_to_dataframe()
    nodes = len(frame)
    leaves = int(frame["left_child"].isna().sum())
    assert tree_nodes(model) == int(nodes + leaves / 2)


def test_xgboost_and_catboost_sizes_grow_with_their_trees() -> None:
    from catboost import CatBoostClassifier
    from xgboost import XGBClassifier

    X, y = _data()
    small, large = (XGBClassifier(n_estimators=n, max_depth=3, n_jobs=1).fit(X, y) for n in (5, 50))
    assert 0 < tree_nodes(small) < tree_nodes(large)
    frame = large.get_booster().trees_to_dataframe()
    assert tree_nodes(large) == int(len(frame) * 1.25)
    cat = CatBoostClassifier(
        iterations=10, depth=3, verbose=False, thread_count=1, allow_writing_files=False
    )
    cat.fit(X, y)
    # CatBoost exports itself (C++): quick however large, so it does not count.
    assert tree_nodes(cat) == 0


def test_wrappers_are_looked_through() -> None:
    from sklearn.ensemble import RandomForestClassifier

    from tabpilot.engine.data.problem import ProblemType
    from tabpilot.engine.training.portfolio import build

    X, y = _data()
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    # Each node plus half of its 3 class values.
    assert tree_nodes(forest) == sum(int(t.tree_.node_count * 2.5) for t in forest.estimators_)
    stopped = build("lgbm", ProblemType.MULTICLASS, n_classes=3).fit(X, y)
    assert tree_nodes(stopped) == tree_nodes(stopped.estimator_) > 0


def test_blend_size_limit_follows_the_export_time_within_bounds() -> None:
    assert blend_size_limit(12.0) < blend_size_limit(24.0)
    assert blend_size_limit(0.1) == MAX_TREE_NODES // 4
    assert blend_size_limit(10_000.0) == 1_000_000
    # Half of 8 s at 70,000 nodes a second, less the refit's growth of a quarter.
    assert blend_size_limit(8.0) == int(0.5 * 8.0 * EXPORT_NODES_PER_SECOND / REFIT_GROWTH)


def test_the_export_window_adds_the_training_time_the_refit_does_not_need() -> None:
    started = time.perf_counter()
    clock = Clock(started=started, budget=60.0)
    clock.reserve_refit(5.0)
    # Nothing spent yet: 48 s of training time, 5 s of it the refit's.
    assert clock.export_window() == pytest.approx(clock.export_reserve() + 43.0, abs=0.5)
    # The training time all spent (a search that used its window): the end reserve, which
    # is more than the export reserve.
    clock.started = started - 50.0
    assert clock.export_window() == clock.end_reserve() > clock.export_reserve()


def _member(key: str, selection: np.ndarray, size: int) -> BlendMember:
    return BlendMember(
        key=key,
        label=key,
        estimator=None,
        selection=selection,
        holdout=selection,
        fit_seconds=1.0,
        predict=lambda X: X,
        size=size,
    )


@pytest.mark.parametrize("max_size", [None, 150])
def test_a_member_that_would_make_the_blend_too_large_stays_out(max_size: int | None) -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0])
    # a and b err in opposite directions: their average is exact; c is no help to a.
    a, b, c = y + 0.5, y - 0.5, y + 0.6
    members = [_member("a", a, 100), _member("b", b, 100), _member("c", c, 40)]
    blend = select_blend(
        members,
        lambda v: float(np.sqrt(np.mean((v - y) ** 2))),
        greater_is_better=False,
        allow_single=True,
        max_size=max_size,
    )
    assert blend is not None
    keys = {m.key for m in blend.members}
    if max_size is None:
        assert keys >= {"a", "b"}
    else:
        assert keys == {"a"}  # b would make it 200
