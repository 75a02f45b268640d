"""End to end: train -> bundle -> ONNX prediction, on synthetic frames with every column kind."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabpilot.engine.serving.predict import OnnxPredictor
from tabpilot.engine.spec import TrainSpec
from tabpilot.engine.training.candidates import Candidate
from tabpilot.engine.training.export import file_entry, write_bundle
from tabpilot.engine.training.metrics import METRICS
from tabpilot.engine.training.selection import choose_winner
from tabpilot.engine.training.train import ProgressEvent, train
from tabpilot.errors import InvalidInput
from tests.conftest import make_mixed_frame


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory: pytest.TempPathFactory):
    frame = make_mixed_frame(800, task="binary")
    frame.loc[[3, 7, 11], "label"] = None  # rows without a target are removed and counted
    events: list[ProgressEvent] = []
    started = time.perf_counter()
    result = train(frame, TrainSpec(target="label", time_budget=8), progress=events.append)
    out = tmp_path_factory.mktemp("bundle")
    paths = write_bundle(result, out, elapsed=time.perf_counter() - started)
    return frame, result, events, paths, time.perf_counter() - started


@pytest.mark.slow
def test_binary_result_explains_itself(binary_run) -> None:
    frame, result, _, _, _ = binary_run
    assert result.classes == ["no", "yes"]
    assert result.problem.problem_type == "binary"
    assert result.rows_removed == [{"rows": 3, "reason": 'the target "label" is missing'}]
    assert result.n_rows == len(frame) - 3 == result.n_train + result.n_test
    dropped = {d.name: d.reason for d in result.plan.dropped}
    assert dropped == {"customer_id": "identifier", "constant": "constant"}
    kinds = {f.name: f.kind for f in result.plan.features}
    assert kinds == {
        "x1": "numeric",
        "x2": "numeric",
        "color": "categorical",
        "city": "categorical",
        "flag": "boolean",
        "signup": "datetime",
        "comment": "text",
    }
    primary = result.holdout_metrics["primary"]
    assert primary["metric"] == "roc_auc"
    assert primary["value"] > result.baseline_metrics["primary"]["value"] + 0.2
    cm = np.array(result.holdout_metrics["confusion_matrix"])
    assert cm.sum() == result.n_test
    searched = [r for r in result.leaderboard if not r.get("candidate")]
    assert searched and all(r["trials"] >= 1 for r in searched)
    compared = {r["estimator"] for r in result.leaderboard if r.get("candidate")}
    # The portfolio's first configuration is always trained; the others while their share
    # of the time allows, and a skipped one is said, never silent.
    assert {"lgbm", "search", "baseline"} <= compared
    portfolio = ("lgbm_xt", "rf", "catboost", "xt", "mlp", "xgboost", "lgbm_large")
    for name in portfolio:
        if name not in compared:
            assert any("was not trained" in d for d in result.decisions), name
    top = [i.feature for i in result.importance[:2]]
    assert "x1" in top or "color" in top
    assert {i.feature for i in result.importance} == set(kinds)


@pytest.mark.slow
def test_progress_events_cover_the_run(binary_run) -> None:
    _, _, events, _, _ = binary_run
    phases = [e.phase for e in events]
    for phase in ("profiling", "searching", "evaluating", "explaining"):
        assert phase in phases
    trials = [e for e in events if e.trials]
    assert trials and trials[-1].trials >= len({e.estimator for e in trials})
    assert all(e.budget == 8 for e in events)
    assert [e.elapsed for e in events] == sorted(e.elapsed for e in events)


@pytest.mark.slow
def test_budget_covers_the_whole_run(binary_run) -> None:
    *_, elapsed = binary_run
    assert elapsed <= 8 * 1.1 + 4


@pytest.mark.slow
def test_bundle_files_and_card(binary_run) -> None:
    frame, result, _, paths, _ = binary_run
    card = json.loads(paths["model.json"].read_text())
    assert card["classes"] == ["no", "yes"]
    for name in ("model.onnx", "model.pkl"):
        assert card["files"][name] == file_entry(paths[name])
    assert {f["name"] for f in card["features"]} == {f.name for f in result.plan.features}
    color = next(f for f in card["features"] if f["name"] == "color")
    assert set(color["values"]) == {"red", "green", "blue"}
    assert card["dropped_columns"][0]["detail"]
    assert card["metrics"]["holdout"]["primary"]["value"] == pytest.approx(
        result.holdout_metrics["primary"]["value"]
    )
    assert card["versions"]["flaml"]

    predictor = OnnxPredictor.from_dir(paths["model.onnx"].parent)
    rows = frame.dropna(subset=["label"]).head(50)
    onnx_result = predictor.predict(rows)
    model = pickle.loads(paths["model.pkl"].read_bytes())
    assert list(onnx_result.labels) == list(model.predict(rows))
    np.testing.assert_allclose(
        onnx_result.probabilities.to_numpy(), model.predict_proba(rows).to_numpy(), atol=1e-4
    )
    assert "label" not in onnx_result.ignored_columns


@pytest.mark.slow
def test_integer_class_codes_come_back_as_integers() -> None:
    frame = make_mixed_frame(400, task="multiclass", seed=2)
    result = train(frame, TrainSpec(target="label", time_budget=6, estimators=("lgbm",)))
    assert result.classes == [1, 2, 3]
    assert result.metric.name == "log_loss"
    preds = result.model.predict(frame.head(20))
    assert set(preds) <= {1, 2, 3}
    assert all(isinstance(v, int) for v in preds)


@pytest.mark.slow
def test_boolean_target_and_regression() -> None:
    frame = make_mixed_frame(300, task="regression", seed=4)
    frame["big"] = frame["label"] > frame["label"].median()
    result = train(
        frame.drop(columns=["label"]),
        TrainSpec(target="big", time_budget=5, estimators=("lgbm", "linear")),
    )
    assert result.classes == [False, True]
    result = train(frame, TrainSpec(target="label", time_budget=5, exclude=("big",)))
    assert result.problem.problem_type == "regression"
    assert result.holdout_metrics["rmse"] < result.baseline_metrics["rmse"]
    assert result.holdout_metrics["primary"]["metric"] == "rmse"


@pytest.mark.slow
def test_single_row_class_is_removed_with_a_reason() -> None:
    frame = make_mixed_frame(200, task="binary", seed=5)
    frame.loc[0, "label"] = "rare"
    result = train(frame, TrainSpec(target="label", time_budget=5, estimators=("lgbm",)))
    assert result.classes == ["no", "yes"]
    assert result.rows_removed[0]["rows"] == 1
    assert "'rare'" in result.rows_removed[0]["reason"]


def test_bad_options_are_clear_errors() -> None:
    frame = make_mixed_frame(100)
    with pytest.raises(InvalidInput, match=r'Target column "nope" not found; columns are: '):
        train(frame, TrainSpec(target="nope"))
    with pytest.raises(InvalidInput, match="Time budget 1 s is out of range"):
        train(frame, TrainSpec(target="label", time_budget=1))
    with pytest.raises(InvalidInput, match="Unknown estimator"):
        train(frame, TrainSpec(target="label", estimators=("catboost",)))
    with pytest.raises(InvalidInput, match='Metric "rmse" is not available for binary'):
        train(frame, TrainSpec(target="label", metric="rmse"))


def _cand(name: str, value: float) -> Candidate:
    return Candidate(name, f"the {name} model", None, value, 0.1, np.array([]), None)  # type: ignore[arg-type]


def test_safe_choice_replaces_a_worse_search_winner() -> None:
    decisions: list[str] = []
    auc = METRICS["roc_auc"]
    chosen = choose_winner(
        [_cand("search", 0.70), _cand("default_lgbm", 0.80), _cand("baseline", 0.5)],
        auc,
        decisions,
    )
    assert chosen.name == "default_lgbm"
    assert "worse than the default_lgbm model" in decisions[0]

    decisions = []
    logloss = METRICS["log_loss"]
    chosen = choose_winner(
        [_cand("search", 15.0), _cand("default_lgbm", 2.0), _cand("baseline", 1.0)],
        logloss,
        decisions,
    )
    assert chosen.name == "baseline"
    assert any("No model beat the constant baseline" in d for d in decisions)


@pytest.mark.slow
def test_datetime_parts_are_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    days = pd.date_range("2020-01-01", periods=500, freq="D")
    frame = pd.DataFrame({"when": days.strftime("%Y-%m-%d"), "noise": rng.normal(size=500)}).assign(
        y=lambda f: np.where(days.dayofweek >= 5, "weekend", "weekday")
    )
    result = train(frame, TrainSpec(target="y", time_budget=5, estimators=("lgbm",)))
    assert result.holdout_metrics["accuracy"] > 0.95
    assert result.importance[0].feature == "when"


def test_a_run_keeps_to_the_cores_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """OMP_NUM_THREADS (which Ray sets to a task's CPUs) caps the run's threads; without it a
    run uses the cores the process may run on."""
    import os

    from tabpilot.engine.training.train import usable_cpus

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert usable_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert usable_cpus() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert usable_cpus() == len(os.sched_getaffinity(0))
