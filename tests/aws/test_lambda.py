"""The API on Lambda, in process: API Gateway HTTP API (v2) events in, Lambda responses out.

The handler is the one Lambda calls (`build_handler` is `handler` with the settings given
rather than read from the environment). The run goes as a user's would: upload, train,
predict, download the ONNX file (binary, base64 on the wire), open a web page, and the
housekeeping schedule. Training runs inline here; on AWS the job goes to Batch.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tabpilot.aws.lambda_handler import NOT_CONFIGURED, build_handler, is_scheduled
from tabpilot.context import build_context
from tabpilot.metadata.registry import METADATA_STORES
from tabpilot.services.users import create_user
from tabpilot.settings import load_settings
from tests.aws.lambda_events import (
    API_HOST,
    body_of,
    http_event,
    json_event,
    json_of,
    scheduled_event,
    upload_event,
)
from tests.conftest import make_mixed_frame

pytest.importorskip(
    "mangum", reason="the Lambda handler needs the aws extra: pip install -e '.[aws]'"
)


class Lambda:
    """A handler and a user's token, over the stores in one data directory."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.settings = load_settings(
            data_dir=data_dir,
            auth="token",
            runner_uri="inline://",
            allowed_hosts=API_HOST,
            **settings,
        )
        ctx = build_context(self.settings)
        try:
            _, self.token = create_user(ctx.metadata, name="ana")
        finally:
            ctx.metadata.close()
        self.handle = build_handler(self.settings)

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.handle(event, None)

    def get(self, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self(http_event("GET", path, headers=headers, **kwargs))

    def post(self, path: str, payload: Any) -> dict[str, Any]:
        return self(json_event("POST", path, payload, token=self.token))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lambda]:
    yield Lambda(tmp_path_factory.mktemp("lambda") / "data")


def test_health_needs_no_token_and_the_api_does(api: Lambda) -> None:
    health = api(http_event("GET", "/health"))
    assert health["statusCode"] == 200
    assert json_of(health)["status"] == "ok"
    refused = api(http_event("GET", "/api/datasets"))
    assert refused["statusCode"] == 401
    assert json_of(refused)["error"]["code"] == "unauthenticated"


def test_a_request_naming_another_host_is_refused(api: Lambda) -> None:
    response = api(http_event("GET", "/api/datasets", host="evil.example.com"))
    assert response["statusCode"] == 400


@pytest.mark.slow  # trains a model (inline, 5 s budget)
def test_upload_train_predict_and_download_through_lambda_events(api: Lambda) -> None:
    frame = make_mixed_frame(300, seed=4)
    data = frame.to_csv(index=False).encode()
    uploaded = api(upload_event("train.csv", data, token=api.token))
    assert uploaded["statusCode"] == 201, body_of(uploaded)
    dataset = json_of(uploaded)
    assert dataset["n_rows"] == 300

    listed = json_of(api.get("/api/datasets"))
    assert [d["id"] for d in listed["items"]] == [dataset["id"]]

    created = api.post(
        "/api/jobs", {"dataset_id": dataset["id"], "target": "label", "time_budget": 5}
    )
    assert created["statusCode"] == 202, body_of(created)
    job = json_of(api.get(f"/api/jobs/{json_of(created)['id']}"))
    assert job["status"] == "succeeded", job
    model_id = job["model_id"]

    rows = frame.drop(columns=["label"]).head(3).to_dict(orient="records")
    predicted = api.post(f"/api/models/{model_id}/predict", {"rows": rows})
    assert predicted["statusCode"] == 200, body_of(predicted)
    assert len(json_of(predicted)["predictions"]) == 3

    onnx = api.get(f"/api/models/{model_id}/files/model.onnx")
    assert onnx["statusCode"] == 200
    assert onnx["isBase64Encoded"] is True  # binary bodies travel base64-encoded
    import onnxruntime

    # The bytes that came through base64 are a whole graph taking the model's columns.
    inputs = {i.name for i in onnxruntime.InferenceSession(body_of(onnx)).get_inputs()}
    assert {"x1", "x2", "color"} <= inputs, inputs

    csv_out = api(
        http_event(
            "POST",
            f"/api/models/{model_id}/predict.csv",
            headers={"authorization": f"Bearer {api.token}", "content-type": "text/csv"},
            body=frame.drop(columns=["label"]).head(5).to_csv(index=False).encode(),
        )
    )
    assert csv_out["statusCode"] == 200, body_of(csv_out)
    assert len(pd.read_csv(io.BytesIO(body_of(csv_out)))) == 5


def test_the_web_ui_is_served_too(api: Lambda) -> None:
    page = api(http_event("GET", "/login", headers={"accept": "text/html"}))
    assert page["statusCode"] == 200
    assert page["headers"]["content-type"].startswith("text/html")
    assert b"Tabpilot" in body_of(page)
    home = api(http_event("GET", "/", headers={"accept": "text/html"}))
    assert home["statusCode"] in (200, 303)  # the home page, or the way to sign in


def test_the_schedule_runs_housekeeping_not_a_request(api: Lambda) -> None:
    assert is_scheduled(scheduled_event())
    assert not is_scheduled(http_event("GET", "/health"))
    done = api(scheduled_event())
    assert done["housekeeping"] is True
    assert done["swept_uploads"] == 0


def test_local_mode_on_lambda_is_refused_in_plain_words(tmp_path: Path) -> None:
    handle = build_handler(load_settings(data_dir=tmp_path / "data", auth="local"))
    response = handle(http_event("GET", "/api/datasets"), None)
    assert response["statusCode"] == 503
    error = json_of(response)["error"]
    assert error["code"] == NOT_CONFIGURED
    assert "TABPILOT_AUTH must be token" in error["message"]
    assert handle(scheduled_event(), None)["housekeeping"] is False


@pytest.fixture
def dynamo_prefix(aws_env: dict[str, str]) -> Iterator[str]:
    """A fresh DynamoDB table prefix on the moto server; the table is deleted afterwards."""
    import uuid

    import boto3

    prefix = "lambda" + uuid.uuid4().hex[:10]
    METADATA_STORES.initialize(f"dynamodb://{prefix}")  # what `tabpilot init-stores` does
    try:
        yield prefix
    finally:
        boto3.client("dynamodb").delete_table(TableName=f"{prefix}-metadata")


def test_on_s3_and_dynamodb_as_deployed(s3_bucket: str, dynamo_prefix: str, tmp_path: Path) -> None:
    """The AWS shape: records in DynamoDB, files in S3, nothing in the container's data dir
    but scratch space; a second container (a new handler) sees what the first stored."""
    from tests.aws_support import s3_client

    stores = {
        "metadata_uri": f"dynamodb://{dynamo_prefix}",
        "artifact_uri": f"s3://{s3_bucket}/tabpilot",
        "web_secret": "s" * 64,
    }
    first = Lambda(tmp_path / "container1", **stores)
    data = make_mixed_frame(120, seed=6).to_csv(index=False).encode()
    uploaded = first(upload_event("train.csv", data, token=first.token))
    assert uploaded["statusCode"] == 201, body_of(uploaded)
    dataset_id = json_of(uploaded)["id"]
    objects = s3_client().list_objects_v2(Bucket=s3_bucket, Prefix="tabpilot/")
    keys = [o["Key"] for o in objects.get("Contents", [])]
    assert f"tabpilot/datasets/{dataset_id}/data.csv" in keys
    assert not list((tmp_path / "container1").rglob("*.db"))

    second = build_handler(first.settings.model_copy(update={"data_dir": tmp_path / "c2"}))
    headers = {"authorization": f"Bearer {first.token}"}
    listed = second(http_event("GET", "/api/datasets", headers=headers), None)
    assert [d["id"] for d in json_of(listed)["items"]] == [dataset_id]
    assert second(scheduled_event(), None)["housekeeping"] is True
