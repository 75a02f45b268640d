"""/api/compare: succeeded jobs side by side, with real model cards from the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tabpilot.context import AppContext
from tabpilot.records import JobStatus
from tests.api.support import fake_card, finish_job, upload_frame
from tests.conftest import make_mixed_frame


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Two real model cards: LightGBM only, and a linear model only (5 s budgets)."""
    from tabpilot.engine.spec import TrainSpec
    from tabpilot.engine.training.run import run_training

    root = tmp_path_factory.mktemp("compare")
    data = root / "train.csv"
    make_mixed_frame(300, seed=11).to_csv(data, index=False)
    out = []
    for name, estimators in (("lgbm", ("lgbm",)), ("linear", ("linear",))):
        outcome = run_training(
            data,
            TrainSpec(target="label", time_budget=5, estimators=estimators, seed=0),
            out_dir=root / name,
            reports=False,
        )
        out.append(outcome.card.to_dict())
    return out


def queue(api: TestClient, dataset_id: str, **fields: Any) -> str:
    body = {"dataset_id": dataset_id, "target": "label", "time_budget": 5} | fields
    response = api.post("/api/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.mark.slow
def test_compare_two_real_jobs(
    api: TestClient, app_ctx: AppContext, cards: list[dict[str, Any]], tmp_path: Path
) -> None:
    dataset = upload_frame(api, make_mixed_frame(300, seed=11), "train.csv")
    a = queue(api, dataset["id"], estimators=["lgbm"])
    b = queue(api, dataset["id"], estimators=["linear"], tags=["linear"])
    finish_job(app_ctx, a, card=cards[0])
    finish_job(app_ctx, b, card=cards[1])

    response = api.get("/api/compare", params={"jobs": f"{a},{b}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [j["id"] for j in body["jobs"]] == [a, b]
    assert body["jobs"][1]["tags"] == ["linear"]
    rows = {m["name"]: m for m in body["metrics"]}
    assert body["metrics"][0]["name"] == "roc_auc" and body["metrics"][0]["primary"]
    for name, direction in (("roc_auc", "higher"), ("accuracy", "higher"), ("log_loss", "lower")):
        row = rows[name]
        assert row["direction"] == direction
        values = row["values"]
        assert set(values) == {a, b}
        assert values[a] == cards[0]["metrics"]["holdout"][name]
        best = max(values.values()) if direction == "higher" else min(values.values())
        assert row["best"] == [k for k, v in values.items() if v == best]
    assert "confusion_matrix" not in rows and "per_class" not in rows
    features = [r["feature"] for r in body["feature_importance"]]
    assert "x1" in features
    differences = {d["key"]: d["values"] for d in body["differences"]}
    assert differences["estimators"] == {a: ["lgbm"], b: ["linear"]}
    assert "chosen_estimator" in differences
    # Both runs may end in a weighted blend (one VotingClassifier class): the class is part of
    # the configuration either way, a difference only when it differs.
    assert "estimator_class" in set(differences) | set(body["same"])
    assert "LightGBM" in differences["chosen_estimator"][a]
    assert body["jobs"][0]["chosen_estimator"] == differences["chosen_estimator"][a]
    assert body["same"]["target"] == "label" and body["same"]["dataset_id"] == dataset["id"]
    assert "time_budget_reason" not in differences and "time_budget_reason" not in body["same"]
    assert body["notes"] == []

    # Repeated query parameters work as well as commas; duplicates are ignored.
    again = api.get("/api/compare", params=[("jobs", a), ("jobs", f"{b},{a}")])
    assert [j["id"] for j in again.json()["jobs"]] == [a, b]


def test_compare_needs_succeeded_jobs(api: TestClient, app_ctx: AppContext) -> None:
    dataset = upload_frame(api, make_mixed_frame(100, seed=1))
    a = queue(api, dataset["id"])
    b = queue(api, dataset["id"])
    finish_job(app_ctx, a)
    response = api.get("/api/compare", params={"jobs": f"{a},{b}"})
    assert response.status_code == 409
    error = response.json()["error"]
    assert f"{b} (queued)" in error["message"]
    assert error["details"]["jobs"] == {b: "queued"}
    finish_job(app_ctx, b, status=JobStatus.FAILED, error="x")
    assert api.get("/api/compare", params={"jobs": f"{a},{b}"}).status_code == 409


def test_compare_argument_errors(api: TestClient, app_ctx: AppContext) -> None:
    dataset = upload_frame(api, make_mixed_frame(100, seed=1))
    a = queue(api, dataset["id"])
    finish_job(app_ctx, a)
    one = api.get("/api/compare", params={"jobs": f"{a},{a}"})
    assert one.status_code == 422 and "between 2 and 20" in one.json()["error"]["message"]
    missing = api.get("/api/compare")
    assert missing.status_code == 422
    assert missing.json()["error"]["details"]["fields"][0]["field"] == "jobs"
    unknown = api.get("/api/compare", params={"jobs": f"{a},job_0000000000000000"})
    assert unknown.status_code == 404
    traversal = api.get("/api/compare", params={"jobs": f"{a},../../etc/passwd"})
    assert traversal.status_code == 404


def test_compare_marks_lower_is_better_and_ties(api: TestClient, app_ctx: AppContext) -> None:
    frame = make_mixed_frame(100, seed=2, task="regression")
    first = upload_frame(api, frame, "one.csv")
    second = upload_frame(api, frame, "two.csv")
    ids = [queue(api, first["id"]), queue(api, first["id"], seed=3), queue(api, second["id"])]
    holdouts = [
        {"rmse": 2.0, "mae": 1.0, "r2": 0.5, "mape": None},
        {"rmse": 1.5, "mae": 1.0, "r2": 0.7, "mape": 0.1},
        {"rmse": 3.0, "mae": 2.0, "r2": 0.2, "mape": 0.2},
    ]
    for job_id, holdout in zip(ids, holdouts, strict=True):
        card = fake_card(problem_type="regression", metric="rmse", holdout=holdout)
        finish_job(app_ctx, job_id, card=card)
    body = api.get("/api/compare", params={"jobs": ",".join(ids)}).json()
    rows = {m["name"]: m for m in body["metrics"]}
    assert rows["rmse"]["best"] == [ids[1]] and rows["rmse"]["primary"]
    assert rows["mae"]["best"] == [ids[0], ids[1]]
    assert rows["r2"]["best"] == [ids[1]] and rows["r2"]["direction"] == "higher"
    assert rows["mape"]["values"][ids[0]] is None and rows["mape"]["best"] == [ids[1]]
    assert any("different datasets" in n for n in body["notes"])
