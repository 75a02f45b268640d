"""ModelCard: the same JSON as model.json, both ways, for new and old cards."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tabpilot.engine.card import CardFeature, ModelCard

CARD: dict[str, Any] = {
    "format_version": 1,
    "tabpilot_version": "0.1.0",
    "created_at": "2026-12-04T18:00:00+00:00",
    "source": "customers.csv",
    "target": "label",
    "problem_type": "binary",
    "problem_reason": "detected: the target holds two integer codes",
    "classes": [0, 1],
    "metric": {"name": "roc_auc", "label": "ROC AUC", "greater_is_better": True},
    "features": [
        {
            "name": "x1",
            "kind": "numeric",
            "profile_kind": "numeric",
            "dtype": "float64",
            "missing_fraction": 0.0,
            "n_distinct": 120,
            "min": -2.5,
            "max": 3.1,
        },
        {
            "name": "city",
            "kind": "categorical",
            "profile_kind": "categorical",
            "dtype": "object",
            "missing_fraction": 0.1,
            "n_distinct": 3,
            "values": ["a", "b", "c"],
        },
        {
            "name": "when",
            "kind": "datetime",
            "profile_kind": "datetime",
            "dtype": "object",
            "missing_fraction": 0.0,
            "n_distinct": 90,
            "has_time": False,
            "inputs": ["when__year", "when__month"],
            "min": "2024-01-01 00:00:00",
            "max": "2024-12-31 00:00:00",
        },
    ],
    "inputs": [
        {"name": "x1", "column": "x1", "type": "float32"},
        {"name": "city", "column": "city", "type": "string"},
    ],
    "dropped_columns": [{"name": "id", "reason": "identifier", "detail": "looks like an id"}],
    "warnings": [],
    "rows": {"total": 120, "used": 120, "train": 96, "test": 24, "valid": 0, "removed": []},
    "split": {"test_size": 0.2, "stratified": True, "seed": 0},
    "metrics": {"holdout": {"roc_auc": 0.9, "accuracy": 0.8}, "baseline": {"roc_auc": 0.5}},
    "chosen": {"name": "lgbm", "description": "the search's best LightGBM"},
    "estimator": {"class": "lightgbm.sklearn.LGBMClassifier", "params": {"n_estimators": 4}},
    "decisions": ["kept the search's winner"],
    "leaderboard": [{"estimator": "lgbm", "label": "LightGBM", "validation_score": 0.9}],
    "feature_importance": [{"feature": "x1", "importance": 0.2}],
    "importance_note": "",
    "budget": {"seconds": 30.0, "reason": "chosen from the data size", "elapsed": 12.3},
    "timings": {"profile": 0.1},
    "refit_on_all_rows": True,
    "evaluation_method": {
        "selection": "out_of_fold",
        "folds": 5,
        "bagged": True,
        "holdout": "24 held-out rows that no model trained on and that chose nothing",
        "chosen_by": "5-fold out-of-fold predictions on the 96 training rows",
        "selection_score": 0.88,
        "source": "blend",
        "final_model": "refitted on all rows after the evaluation",
    },
    "options": {
        "metric": "roc_auc",
        "problem_type": "binary",
        "time_budget": 30.0,
        "include": [],
        "exclude": [],
        "estimators": [],
        "seed": 0,
    },
    "evaluation": {
        "rows": 24,
        "curves": [
            {
                "label": "1",
                "index": 1,
                "auc": 0.9,
                "average_precision": 0.85,
                "roc": {"x": [0.0, 0.1, 1.0], "y": [0.0, 0.8, 1.0]},
                "pr": {"x": [0.0, 0.8, 1.0], "y": [1.0, 0.9, 0.5]},
            }
        ],
        "curve_note": 'for the positive class "1"',
        "calibration": {
            "name": "P(1)",
            "note": "the predicted probability of 1 against how often it is",
            "bins": [{"predicted": 0.2, "observed": 0.25, "rows": 12}],
        },
        "scatter": {},
        "residuals": {},
        "error_bins": [],
    },
    "versions": {"python": "3.11.0"},
    "files": {"model.onnx": {"sha256": "ab" * 32, "bytes": 10}},
}


def test_a_card_reads_and_writes_the_same_json() -> None:
    card = ModelCard.from_dict(copy.deepcopy(CARD))
    assert card.to_dict() == CARD
    assert list(card.to_dict()) == list(CARD)  # the usual key order
    assert ModelCard.from_dict(card.to_dict()) == card
    assert card.metric.name == "roc_auc" and card.score == 0.9
    assert card.budget.reason == "chosen from the data size"
    assert card.feature_names == ["x1", "city", "when"]
    assert card.features[2].has_time is False and card.inputs[0].numeric
    assert card.file_sha256("model.onnx") == "ab" * 32 and card.file_sha256("x") is None


def test_unknown_keys_are_kept_and_missing_parts_get_defaults() -> None:
    newer = copy.deepcopy(CARD) | {"preprocessing": {"x1": "median"}}
    assert ModelCard.from_dict(newer).to_dict() == newer
    old = {k: v for k, v in CARD.items() if k not in ("options", "timings", "budget", "split")}
    card = ModelCard.from_dict(old)
    assert card.budget.seconds == 0.0 and card.split.test_size == 0.2
    assert card.options.estimators == []


def test_cards_before_the_evaluation_method_read_with_empty_defaults() -> None:
    old = {k: v for k, v in copy.deepcopy(CARD).items() if k != "evaluation_method"}
    old["rows"] = {k: v for k, v in old["rows"].items() if k != "valid"}
    card = ModelCard.from_dict(old)
    assert card.evaluation_method == {} and card.rows.valid == 0
    assert card.rows.test == 24 and card.refit_on_all_rows
    assert ModelCard.from_dict(CARD).evaluation_method["selection"] == "out_of_fold"


def test_the_evaluation_data_round_trips_and_old_cards_have_none() -> None:
    card = ModelCard.from_dict(copy.deepcopy(CARD))
    assert card.evaluation.curves[0]["auc"] == 0.9 and not card.evaluation.empty
    assert card.evaluation.calibration_bins == [{"predicted": 0.2, "observed": 0.25, "rows": 12}]
    assert json.loads(json.dumps(card.to_dict()))["evaluation"] == CARD["evaluation"]
    old = ModelCard.from_dict({k: v for k, v in CARD.items() if k != "evaluation"})
    assert old.evaluation.empty and old.evaluation.curves == [] and old.evaluation.rows == 0


def test_feature_parts_are_absent_unless_set() -> None:
    assert CardFeature("a", "text", details={"note": "free text"}).to_dict() == {
        "name": "a",
        "kind": "text",
        "profile_kind": "",
        "dtype": "",
        "missing_fraction": 0.0,
        "n_distinct": 0,
        "note": "free text",
    }
    with_range = {"name": "b", "kind": "numeric", "min": None, "max": None}
    feature = CardFeature.from_dict(with_range)
    assert feature.details == {"min": None, "max": None} and feature.values is None
    assert {k: v for k, v in feature.to_dict().items() if k in with_range} == with_range


@pytest.mark.parametrize("name", ["model.json"])
def test_an_exported_card_round_trips(tmp_path: Path, name: str) -> None:
    from tabpilot.engine.spec import TrainSpec
    from tabpilot.engine.training.run import run_training
    from tests.conftest import make_mixed_frame

    csv = tmp_path / "data.csv"
    make_mixed_frame(150, seed=2).to_csv(csv, index=False)
    spec = TrainSpec(target="label", time_budget=5, estimators=("linear",))
    outcome = run_training(csv, spec, out_dir=tmp_path / "bundle", reports=False)
    written = json.loads((tmp_path / "bundle" / name).read_text())
    card = ModelCard.from_dict(written)
    assert card.to_dict() == written
    assert card.extra == {}
    assert card.target == "label" and card.inputs and card.features
    assert outcome.result.budget == 5
    # How the figures were obtained: 120 training rows are bagged and chosen out of fold.
    method = card.evaluation_method
    assert method["selection"] == "out_of_fold" and card.rows.valid == 0
    assert "held-out rows" in method["holdout"] and "out-of-fold" in method["chosen_by"]
    # The held-out curves are kept, small (a few KB) and plain JSON.
    evaluation = written["evaluation"]
    assert evaluation["rows"] == card.rows.test and card.evaluation.curves
    roc = card.evaluation.curves[0]["roc"]
    assert len(roc["x"]) == len(roc["y"]) <= 210 and card.evaluation.calibration_bins
    assert len(json.dumps(evaluation)) < 20_000
