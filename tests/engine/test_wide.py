"""Wide data: boosting bins each column coarsely, CatBoost comes second, rows too many cells
wide for k fits are chosen on a validation slice instead of bagged, and the search gives up
time to the refit."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tabpilot.engine.data.columns import build_feature_plan
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.data.profiling import profile_frame
from tabpilot.engine.training import portfolio
from tabpilot.engine.training.clock import (
    MAX_REFIT_SHARE,
    SEARCH_MIN_SHARE,
    WIDE_MAX_REFIT_SHARE,
    WIDE_SEARCH_MIN_SHARE,
    Clock,
)
from tabpilot.engine.training.holdout import BAG_CELLS, split_rows
from tabpilot.engine.training.targets import prepare_target


def _params(entries: list[portfolio.Entry]) -> dict[str, dict[str, object]]:
    return {e.name: e.estimator.get_params() for e in entries}


def test_wide_data_bins_coarsely_and_trains_catboost_second() -> None:
    cols = portfolio.WIDE_COLS
    wide = portfolio.portfolio(ProblemType.BINARY, n_rows=2_000, n_cols=cols, n_classes=2)
    narrow = portfolio.portfolio(ProblemType.BINARY, n_rows=2_000, n_cols=cols - 1, n_classes=2)
    assert [e.name for e in wide][:2] == ["lgbm", "catboost"]
    assert [e.name for e in narrow] == portfolio.names()
    params, before = _params(wide), _params(narrow)
    for name in ("lgbm", "lgbm_xt", "lgbm_large"):
        assert params[name]["estimator__max_bin"] == portfolio.WIDE_LIGHTGBM_BINS
        assert "estimator__max_bin" not in before[name]
    assert params["xgboost"]["estimator__max_bin"] == portfolio.WIDE_XGBOOST_BINS
    assert before["xgboost"]["estimator__max_bin"] is None
    assert params["catboost"]["estimator__border_count"] == portfolio.WIDE_CATBOOST_BORDERS
    assert params["catboost"]["estimator__learning_rate"] == portfolio.WIDE_CATBOOST_LEARNING_RATE
    described = {e.name: e.description for e in wide}
    assert f"{portfolio.WIDE_LIGHTGBM_BINS} bins a column" in described["lgbm"]
    assert "learning rate 0.1," in described["catboost"]
    assert f"{portfolio.WIDE_CATBOOST_BORDERS} borders a column" in described["catboost"]
    assert "learning rate 0.05," in {e.name: e.description for e in narrow}["catboost"]
    # Coarser bins cost less a cell: the estimate says so (the clock learns the rest).
    seconds = {e.name: e.seconds for e in wide}
    assert seconds["lgbm"] < {e.name: e.seconds for e in narrow}["lgbm"]


def test_wide_multiclass_keeps_the_net_first() -> None:
    entries = portfolio.portfolio(ProblemType.MULTICLASS, n_rows=3_000, n_cols=600, n_classes=3)
    assert [e.name for e in entries][:3] == ["mlp", "lgbm", "catboost"]


def _split(n_rows: int, n_cols: int):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.normal(size=(n_rows, n_cols)), columns=[f"c{i}" for i in range(n_cols)]
    )
    frame["y"] = np.where(frame["c0"] > 0, "yes", "no")
    profile = profile_frame(frame)
    target = prepare_target(frame, profile.column("y"), None)
    plan = build_feature_plan(target.data, profile, target="y", problem_type=ProblemType.BINARY)
    return split_rows(target, plan, test_size=0.2, seed=0)


def test_rows_past_the_bagging_cells_are_chosen_on_a_validation_slice_and_the_card_says_why() -> (
    None
):
    n_cols = 600
    n_rows = int(BAG_CELLS / n_cols / 0.8) + 50  # training rows x columns just past the limit
    wide = _split(n_rows, n_cols)
    assert not wide.bagged and wide.n_valid > 0
    assert "not bagged" in wide.note and f"{BAG_CELLS:,} cells" in wide.note
    assert f"x {n_cols:,} columns" in wide.note
    narrow = _split(n_rows, 20)
    assert narrow.bagged and narrow.note == ""


def test_on_wide_data_the_search_gives_up_time_to_the_refit() -> None:
    """Narrow data: the search keeps a quarter of the training time and the refit at most 30%;
    wide data: the search keeps a tenth and the refit may reserve 70%."""
    started = time.perf_counter()
    narrow, wide = Clock(started=started, budget=60.0), Clock(started=started, budget=60.0)
    narrow.plan_portfolio()
    wide.plan_portfolio(wide=True)
    assert wide.portfolio_deadline == pytest.approx(narrow.portfolio_deadline, abs=0.1)
    assert narrow.search_floor() == pytest.approx(SEARCH_MIN_SHARE * 48.0, abs=0.1)
    assert wide.search_floor() == pytest.approx(WIDE_SEARCH_MIN_SHARE * 48.0, abs=0.1)
    assert narrow.reserve_refit(30.0) == pytest.approx(MAX_REFIT_SHARE * 48.0, abs=0.1)
    assert wide.reserve_refit(40.0) == pytest.approx(WIDE_MAX_REFIT_SHARE * 48.0, abs=0.1)
    assert wide.reserve_refit(5.0) == 5.0
