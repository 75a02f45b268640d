"""Every shared dataset trains, exports and predicts through the engine, with sensible
column decisions and a model better than the constant baseline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tabpilot.engine.data.io import read_csv
from tabpilot.engine.serving.predict import OnnxPredictor
from tabpilot.engine.spec import TrainSpec
from tabpilot.engine.training.run import run_training
from tests.conftest import SHARED, shared_dataset, shared_manifest

NAMES = [
    "adult",
    "titanic",
    "ibm_hr_attrition",
    "credit_g",
    "penguins",
    "letter",
    "wine",
    "california_housing",
    "diamonds",
    "bike_sharing_hourly",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_dataset_trains_and_predicts(name: str, tmp_path: Path) -> None:
    path = shared_dataset(name)
    entry = next(d for d in shared_manifest()["datasets"] if d["name"] == name)
    # The leakage columns are the user's call (they get a warning); ids are the system's job.
    options = TrainSpec(
        target=entry["target"], time_budget=8, exclude=tuple(entry["leakage_columns"])
    )
    outcome = run_training(path, options, out_dir=tmp_path, reports=False)
    card = outcome.card.to_dict()
    assert card["problem_type"] == entry["task"]

    dropped = {d["name"] for d in card["dropped_columns"] if d["reason"] != "excluded"}
    expected = set(entry["id_columns"]) | set(entry["constant_columns"])
    assert expected <= dropped, f"expected {expected} among the dropped columns {dropped}"
    # Nothing useful is dropped: only ids, constants, free text and the like.
    assert dropped <= expected | {"Name", "Ticket", "Cabin"}, dropped

    hold, base = card["metrics"]["holdout"], card["metrics"]["baseline"]
    metric = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}[entry["task"]]
    assert hold["primary"]["metric"] == metric
    if metric == "roc_auc":
        assert hold["roc_auc"] > 0.7
    else:
        assert hold[metric] < 0.8 * base[metric]

    rows = read_csv(path).frame.head(200)
    predictions = OnnxPredictor.from_dir(tmp_path).predict(rows)
    assert len(predictions.labels) == len(rows)
    if card["classes"] is not None:
        assert set(predictions.labels) <= set(card["classes"])
        pd.testing.assert_index_equal(
            predictions.probabilities.columns, pd.Index([str(c) for c in card["classes"]])
        )
    assert outcome.elapsed < 8 * 1.1 + 6


def test_shared_folder_location_is_beside_the_checkout() -> None:
    assert SHARED.name == "datasets" and SHARED.parent.name == "shared"
