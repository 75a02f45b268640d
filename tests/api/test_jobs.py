"""/api/jobs: validation before queuing, listing, events and SSE, tags, cancel, delete, retry."""

from __future__ import annotations

import html
import json
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tabpilot.api import streams
from tabpilot.context import AppContext
from tabpilot.records import JobStatus
from tests.api.support import finish_job, make_ctx, runner_of, upload_frame
from tests.conftest import make_mixed_frame


@pytest.fixture
def dataset(api: TestClient) -> dict[str, Any]:
    frame = make_mixed_frame(120, seed=3)
    frame["one_class"] = "same"
    frame["price"] = frame["x2"] * 3.5
    return upload_frame(api, frame, "customers.csv")


def create(api: TestClient, dataset: dict[str, Any], **fields: Any) -> Any:
    body = {"dataset_id": dataset["id"], "target": "label"} | fields
    return api.post("/api/jobs", json=body)


def test_create_job_queues_with_resolved_spec(
    api: TestClient, app_ctx: AppContext, dataset: dict[str, Any]
) -> None:
    response = create(api, dataset, tags=["first", "first", " exp "], notes="hello")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert job["tags"] == ["first", "exp"] and job["notes"] == "hello"
    spec = job["spec"]
    assert spec["target"] == "label"
    assert spec["problem_type"] == "binary"
    assert spec["metric"] == "roc_auc"
    assert spec["time_budget"] == 30.0
    assert "chosen from the data size" in spec["time_budget_reason"]
    assert spec["estimators"] is None and spec["seed"] == 0
    assert spec["dataset_name"] == "customers"
    assert "30 s" in job["message"] and "chosen from the data size" in job["message"]
    assert runner_of(app_ctx).submitted == [job["id"]]
    events = api.get(f"/api/jobs/{job['id']}/events").json()
    assert [(e["seq"], e["kind"], e["data"]["status"]) for e in events] == [(1, "status", "queued")]


def test_create_job_with_every_option(api: TestClient, dataset: dict[str, Any]) -> None:
    response = create(
        api,
        dataset,
        target="price",
        problem_type="regression",
        metric="MAE",
        time_budget=12.5,
        include=["customer_id"],
        exclude=["city", "city"],
        estimators=["lgbm", "linear"],
        seed=7,
    )
    assert response.status_code == 202, response.text
    spec = response.json()["spec"]
    assert spec["problem_type"] == "regression" and spec["metric"] == "mae"
    assert spec["time_budget"] == 12.5 and spec["time_budget_reason"] == "set by you"
    assert spec["include"] == ["customer_id"] and spec["exclude"] == ["city"]
    assert spec["estimators"] == ["lgbm", "linear"] and spec["seed"] == 7


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"target": "nope"}, "target", ['Column "nope" not found', "x1", "label"]),
        ({"target": "one_class"}, "target", ["1 distinct value", "nothing to learn"]),
        ({"time_budget": 1}, "time_budget", ["between 5 and 86400"]),
        ({"time_budget": 100_000}, "time_budget", ["between 5 and 86400"]),
        ({"metric": "rmse"}, "metric", ["not available for binary", "roc_auc"]),
        ({"metric": "wow"}, "metric", ['Unknown metric "wow"']),
        ({"estimators": ["lgbm", "catboost"]}, "estimators", ["'catboost'", "lgbm, xgboost"]),
        ({"estimators": []}, "estimators", ["at least one"]),
        ({"include": ["ghost"]}, "include", ["'ghost'", "columns are"]),
        ({"exclude": ["label"]}, "exclude", ["is the target"]),
        ({"include": ["x1"], "exclude": ["x1"]}, "exclude", ["both included and excluded"]),
        ({"problem_type": "regression"}, "problem_type", ["needs a numeric target"]),
        ({"target": "price", "problem_type": "binary"}, "problem_type", ["exactly 2 classes"]),
        ({"tags": ["t"] * 3 + [str(i) for i in range(11)]}, "tags", ["at most 10 tags"]),
        ({"tags": ["x" * 51]}, "tags", ["at most 50"]),
        ({"seed": -1}, "seed", ["seed must be"]),
    ],
)
def test_invalid_job_is_422_and_never_queued(
    api: TestClient,
    app_ctx: AppContext,
    dataset: dict[str, Any],
    fields: dict[str, Any],
    field: str,
    words: list[str],
) -> None:
    response = create(api, dataset, **fields)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in error["details"]["problems"], error
    for word in words:
        assert word in error["message"], (word, error["message"])
    assert runner_of(app_ctx).submitted == []
    assert api.get("/api/jobs").json()["items"] == []


def test_several_problems_are_reported_together(api: TestClient, dataset: dict[str, Any]) -> None:
    error = create(api, dataset, time_budget=2, metric="nope", seed=-5).json()["error"]
    assert set(error["details"]["problems"]) == {"time_budget", "metric", "seed"}


def test_request_shape_errors_name_the_fields(api: TestClient, dataset: dict[str, Any]) -> None:
    response = api.post("/api/jobs", json={"dataset_id": dataset["id"]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["details"]["fields"]] == ["target"]
    assert "target" in error["message"]
    response = create(api, dataset, time_budget="soon", colour="red")
    fields = {f["field"] for f in response.json()["error"]["details"]["fields"]}
    assert fields == {"time_budget", "colour"}
    response = api.post(
        "/api/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_unknown_dataset_is_404(api: TestClient) -> None:
    response = api.post("/api/jobs", json={"dataset_id": "ds_0000000000000000", "target": "y"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_runner_refusal_fails_the_job_with_a_clear_message(
    api: TestClient, app_ctx: AppContext, dataset: dict[str, Any]
) -> None:
    runner_of(app_ctx).fail_submit = True
    job = create(api, dataset).json()
    assert job["status"] == "failed"
    assert "runner did not accept" in job["error"] and "/secret" not in job["error"]


def test_list_filters_sort_and_pagination(
    api: TestClient, app_ctx: AppContext, dataset: dict[str, Any]
) -> None:
    other = upload_frame(api, make_mixed_frame(40, seed=9, task="regression"), "houses.csv")
    a = create(api, dataset, tags=["alpha"], notes="first try").json()
    b = create(api, dataset, target="price", tags=["beta"]).json()
    c = api.post("/api/jobs", json={"dataset_id": other["id"], "target": "label"}).json()
    finish_job(app_ctx, a["id"])
    finish_job(app_ctx, b["id"], status=JobStatus.FAILED, error="out of memory")

    def ids(**params: Any) -> list[str]:
        response = api.get("/api/jobs", params=params)
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()["items"]]

    assert ids() == [c["id"], b["id"], a["id"]]
    assert ids(sort="created_at") == [a["id"], b["id"], c["id"]]
    assert ids(status="succeeded") == [a["id"]]
    assert ids(status="succeeded,failed") == [b["id"], a["id"]]
    assert ids(status=["queued", "failed"]) == [c["id"], b["id"]]
    assert ids(tag="beta") == [b["id"]]
    assert ids(dataset_id=other["id"]) == [c["id"]]
    assert ids(problem_type="regression") == [c["id"], b["id"]]
    assert ids(q="FIRST TRY") == [a["id"]]
    assert ids(q="houses") == [c["id"]]
    page = api.get("/api/jobs", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = api.get("/api/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [j["id"] for j in rest["items"]] == [a["id"]] and rest["next_cursor"] is None
    for bad in ({"status": "done"}, {"sort": "name"}, {"problem_type": "ranking"}):
        response = api.get("/api/jobs", params=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid_input"


def test_get_job_shows_progress_and_result(
    api: TestClient, app_ctx: AppContext, dataset: dict[str, Any]
) -> None:
    job = create(api, dataset).json()
    app_ctx.metadata.claim_job(job["id"], worker_id="w1", lease_seconds=600)
    app_ctx.metadata.update_job(
        job["id"],
        owner=None,
        progress={
            "phase": "searching",
            "elapsed": 3.2,
            "budget": 30,
            "trials": 9,
            "estimator": "lgbm",
            "best_score": 0.91,
            "best_estimator": "lgbm",
        },
    )
    body = api.get(f"/api/jobs/{job['id']}").json()
    assert body["status"] == "running" and body["started_at"]
    assert body["progress"]["trials"] == 9 and body["progress"]["best_score"] == 0.91
    model = finish_job(app_ctx, job["id"])
    body = api.get(f"/api/jobs/{job['id']}").json()
    assert body["status"] == "succeeded" and body["model_id"] == model.id
    assert body["finished_at"]
    assert api.get("/api/jobs/job_0000000000000000").status_code == 404


def test_events_after_seq(api: TestClient, app_ctx: AppContext, dataset: dict[str, Any]) -> None:
    job = create(api, dataset).json()
    finish_job(app_ctx, job["id"])
    events = api.get(f"/api/jobs/{job['id']}/events").json()
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["kind"] for e in events] == ["status", "status", "progress", "status"]
    later = api.get(f"/api/jobs/{job['id']}/events", params={"after": 2}).json()
    assert [e["seq"] for e in later] == [3, 4]
    assert api.get(f"/api/jobs/{job['id']}/events", params={"after": -1}).status_code == 422


def parse_sse(text: str) -> list[tuple[str, dict[str, Any], str | None]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    return out


def test_stream_replays_then_ends_with_the_final_state(
    api: TestClient, app_ctx: AppContext, dataset: dict[str, Any]
) -> None:
    job = create(api, dataset).json()
    finish_job(app_ctx, job["id"])
    response = api.get(f"/api/jobs/{job['id']}/stream")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [e[0] for e in events] == ["job", "status", "status", "progress", "status", "end"]
    assert [e[2] for e in events[1:5]] == ["1", "2", "3", "4"]
    assert events[-1][1]["status"] == "succeeded" and events[-1][1]["model_id"]
    resumed = parse_sse(
        api.get(f"/api/jobs/{job['id']}/stream", headers={"Last-Event-ID": "3"}).text
    )
    assert [e[2] for e in resumed] == [None, "4", None]


def test_stream_follows_a_running_job_live(
    api: TestClient, app_ctx: AppContext, dataset: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "POLL_SECONDS", 0.05)
    job = create(api, dataset).json()

    def work() -> None:
        time.sleep(0.3)
        finish_job(app_ctx, job["id"])

    worker = threading.Thread(target=work)
    worker.start()
    started = time.monotonic()
    lines: list[str] = []
    with api.stream("GET", f"/api/jobs/{job['id']}/stream") as response:
        for line in response.iter_lines():
            lines.append(line)
    worker.join()
    events = parse_sse("\n".join(lines))
    assert [e[0] for e in events][-2:] == ["status", "end"]
    assert [e[0] for e in events].count("progress") == 1
    assert time.monotonic() - started < 10


def test_stream_of_unknown_job_is_404(api: TestClient) -> None:
    response = api.get("/api/jobs/job_0000000000000000/stream")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_patch_tags_and_notes(api: TestClient, dataset: dict[str, Any]) -> None:
    job = create(api, dataset, tags=["a"], notes="n").json()
    url = f"/api/jobs/{job['id']}"
    body = api.patch(url, json={"tags": ["x", "y"]}).json()
    assert body["tags"] == ["x", "y"] and body["notes"] == "n"
    body = api.patch(url, json={"notes": "better"}).json()
    assert body["tags"] == ["x", "y"] and body["notes"] == "better"
    assert api.patch(url, json={"tags": [f"t{i}" for i in range(10)]}).status_code == 200
    too_many = api.patch(url, json={"tags": [f"t{i}" for i in range(11)]})
    assert too_many.status_code == 422 and "at most 10" in too_many.json()["error"]["message"]
    too_long = api.patch(url, json={"tags": ["x" * 51]})
    assert too_long.status_code == 422 and "at most 50" in too_long.json()["error"]["message"]
    assert api.patch(url, json={"tags": ["x" * 50]}).status_code == 200
    assert api.patch(url, json={"tags": [""]}).status_code == 422
    assert api.patch(url, json={"notes": "x" * 10_001}).status_code == 422
    assert api.patch(url, json={"status": "succeeded"}).status_code == 422
    assert api.get(url).json()["tags"] == ["x" * 50]
    assert api.patch("/api/jobs/job_0000000000000000", json={"notes": ""}).status_code == 404


def test_cancel_queued_and_running_jobs(
    api: TestClient, app_ctx: AppContext, dataset: dict[str, Any]
) -> None:
    queued = create(api, dataset).json()
    body = api.post(f"/api/jobs/{queued['id']}/cancel").json()
    assert body["status"] == "canceled" and body["finished_at"]
    running = create(api, dataset).json()
    app_ctx.metadata.claim_job(running["id"], worker_id="w1", lease_seconds=600)
    body = api.post(f"/api/jobs/{running['id']}/cancel").json()
    assert body["status"] == "canceled"
    assert app_ctx.metadata.get_job(running["id"], owner=None).lease_owner is None
    assert runner_of(app_ctx).canceled == [queued["id"], running["id"]]
    events = api.get(f"/api/jobs/{running['id']}/events").json()
    assert events[-1]["data"]["status"] == "canceled"
    again = api.post(f"/api/jobs/{running['id']}/cancel")
    assert again.status_code == 409
    assert "already been canceled" in again.json()["error"]["message"]
    done = create(api, dataset).json()
    finish_job(app_ctx, done["id"])
    assert api.post(f"/api/jobs/{done['id']}/cancel").status_code == 409


def test_delete_running_job_cancels_it_and_removes_everything(
    api: TestClient, app_ctx: AppContext, dataset: dict[str, Any]
) -> None:
    done = create(api, dataset).json()
    model = finish_job(app_ctx, done["id"], files={"model.onnx": b"x", "report.html": b"y"})
    running = create(api, dataset).json()
    app_ctx.metadata.claim_job(running["id"], worker_id="w1", lease_seconds=600)

    assert api.delete(f"/api/jobs/{running['id']}").json() == {
        "id": running["id"],
        "deleted": True,
    }
    assert running["id"] in runner_of(app_ctx).canceled
    assert api.get(f"/api/jobs/{running['id']}").status_code == 404

    assert api.delete(f"/api/jobs/{done['id']}").status_code == 200
    assert app_ctx.metadata.find_model(model.id, owner=None) is None
    assert app_ctx.artifacts.list_keys("models") == []
    assert api.get(f"/api/jobs/{done['id']}/events").status_code == 404
    assert api.delete(f"/api/jobs/{done['id']}").status_code == 404
    # The dataset is free again.
    assert api.delete(f"/api/datasets/{dataset['id']}").status_code == 200


def test_retry_failed_or_canceled_only(
    api: TestClient, app_ctx: AppContext, dataset: dict[str, Any]
) -> None:
    failed = create(api, dataset, time_budget=8, tags=["t"], notes="n").json()
    finish_job(app_ctx, failed["id"], status=JobStatus.FAILED, error="worker lost")
    response = api.post(f"/api/jobs/{failed['id']}/retry")
    assert response.status_code == 202, response.text
    retry = response.json()
    assert retry["id"] != failed["id"] and retry["status"] == "queued"
    assert retry["spec"] == failed["spec"]
    assert retry["tags"] == ["t"] and retry["notes"] == "n"
    assert f"Retry of {failed['id']}" in retry["message"]
    assert runner_of(app_ctx).submitted[-1] == retry["id"]
    assert api.get(f"/api/jobs/{failed['id']}").json()["status"] == "failed"

    canceled = create(api, dataset).json()
    api.post(f"/api/jobs/{canceled['id']}/cancel")
    assert api.post(f"/api/jobs/{canceled['id']}/retry").status_code == 202

    queued = create(api, dataset).json()
    refused = api.post(f"/api/jobs/{queued['id']}/retry")
    assert refused.status_code == 409
    assert "only failed or canceled" in refused.json()["error"]["message"]
    finish_job(app_ctx, queued["id"])
    assert api.post(f"/api/jobs/{queued['id']}/retry").status_code == 409


@pytest.mark.parametrize("bad_id", ["..%2Fdatasets", "job_1%2F..%2F..", "..", "job_%00"])
def test_path_traversal_in_job_ids_is_404(api: TestClient, bad_id: str) -> None:
    for method, suffix in (
        ("GET", ""),
        ("GET", "/events"),
        ("GET", "/stream"),
        ("PATCH", ""),
        ("POST", "/cancel"),
        ("POST", "/retry"),
        ("DELETE", ""),
    ):
        kwargs: dict[str, Any] = {"json": {"notes": "x"}} if method == "PATCH" else {}
        response = api.request(method, f"/api/jobs/{bad_id}{suffix}", **kwargs)
        assert response.status_code in (404, 405), (method, suffix, response.status_code)
        assert response.json()["error"]["code"] in ("not_found", "method_not_allowed")


def test_job_on_a_dataset_with_an_unusable_column_only(api: TestClient) -> None:
    frame = pd.DataFrame({"id": range(50), "y": [0, 1] * 25})
    dataset = upload_frame(api, frame)
    response = api.post("/api/jobs", json={"dataset_id": dataset["id"], "target": "y"})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "No usable feature columns" in message and "include" in message
    response = api.post(
        "/api/jobs", json={"dataset_id": dataset["id"], "target": "y", "include": ["id"]}
    )
    assert response.status_code == 202


@pytest.mark.slow
def test_automatic_choices_reach_the_model_card_and_report_with_their_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a job created with automatic choices got a card and report saying the
    budget was "set by the user" and the problem type "chosen by the user"."""
    from tabpilot.api.app import create_app
    from tabpilot.engine import spec as spec_module
    from tabpilot.jobs.inline import InlineRunner

    # The automatic budget, shortened for the test; its reason is what the card must repeat.
    def short_budget(n_rows: int, n_features: int) -> tuple[float, str]:
        return 5.0, f"chosen from the data size: {n_rows:,} rows x {n_features} features -> 5 s"

    monkeypatch.setattr(spec_module, "auto_budget", short_budget)
    ctx = make_ctx(tmp_path, runner=InlineRunner())
    with TestClient(create_app(ctx)) as client:
        dataset = upload_frame(client, make_mixed_frame(150, seed=3), "customers.csv")
        body = {"dataset_id": dataset["id"], "target": "label", "estimators": ["linear"]}
        created = client.post("/api/jobs", json=body)  # the inline runner trains it here
        assert created.status_code == 202, created.text
        job = client.get(f"/api/jobs/{created.json()['id']}").json()
        assert job["status"] == "succeeded", job["error"]
        spec = job["spec"]
        assert spec["problem_type_reason"].startswith("detected: ")
        assert spec["time_budget_reason"].startswith("chosen from the data size")
        card = client.get(f"/api/models/{job['model_id']}").json()["card"]
        assert card["problem_reason"] == spec["problem_type_reason"]
        assert card["budget"]["reason"] == spec["time_budget_reason"]
        assert card["budget"]["seconds"] == 5.0
        report = client.get(f"/api/models/{job['model_id']}/files/report.html").text
    for reason in (spec["problem_type_reason"], spec["time_budget_reason"]):
        assert html.escape(reason, quote=False) in report, reason
    assert "set by the user" not in report and "chosen by the user" not in report
    ctx.metadata.close()


def test_the_job_schemas_are_the_training_spec() -> None:
    """JobCreate and JobSpec are generated from TrainRequest and TrainSpec: a training option
    added there reaches the API without touching it."""
    import dataclasses

    from tabpilot.api.schemas import JobCreate, JobSpec
    from tabpilot.engine.spec import TrainRequest, TrainSpec
    from tabpilot.services.jobs import JobRequest

    request_fields = [f.name for f in dataclasses.fields(TrainRequest)]
    spec_fields = [f.name for f in dataclasses.fields(TrainSpec)]
    assert set(request_fields) <= set(spec_fields)
    assert list(JobCreate.model_fields) == ["dataset_id", *request_fields, "tags", "notes"]
    assert set(JobCreate.model_fields) == {f.name for f in dataclasses.fields(JobRequest)}
    assert list(JobSpec.model_fields) == spec_fields
    for f in dataclasses.fields(TrainRequest):
        assert JobCreate.model_fields[f.name].description == f.metadata["doc"]
