"""/api/datasets: upload (streamed, hashed, limited), profile, list, preview, EDA, delete."""

from __future__ import annotations

import gzip
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.context import AppContext
from tabpilot.records import JobStatus
from tabpilot.services.auth import local_owner
from tests.api.support import (
    csv_bytes,
    finish_job,
    make_ctx,
    runner_of,
    sha256,
    upload,
    upload_frame,
)
from tests.conftest import make_mixed_frame


def small_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    return make_mixed_frame(n, seed=seed)


def test_upload_returns_profile_with_targets_warnings_and_preview(
    api: TestClient, app_ctx: AppContext
) -> None:
    frame = small_frame(80)
    data = csv_bytes(frame)
    body = upload_frame(api, frame, "customers.csv")
    assert body["id"].startswith("ds_")
    assert body["name"] == "customers"
    assert body["filename"] == "customers.csv"
    assert body["sha256"] == sha256(data)
    assert body["n_bytes"] == len(data)
    assert (body["n_rows"], body["n_columns"]) == frame.shape
    columns = {c["name"]: c for c in body["columns"]}
    assert set(columns) == set(frame.columns)
    assert columns["label"]["as_target"]["problem_type"] == "binary"
    assert columns["x2"]["as_target"]["problem_type"] == "regression"
    assert columns["constant"]["as_target"]["problem_type"] is None
    assert "nothing to learn" in columns["constant"]["as_target"]["reason"]
    kinds = {(w["column"], w["kind"]) for w in body["warnings"]}
    assert ("customer_id", "identifier") in kinds
    assert ("constant", "constant") in kinds
    assert ("x1", "missing") in kinds
    assert body["file"] == {"encoding": "utf-8", "delimiter": ",", "compressed": False}
    assert body["preview"]["columns"] == list(frame.columns)
    assert len(body["preview"]["rows"]) == 20
    # The file is stored byte for byte under the dataset's key.
    assert app_ctx.artifacts.get_bytes(f"datasets/{body['id']}/data.csv") == data
    record = app_ctx.metadata.get_dataset(body["id"], owner=local_owner())
    assert record.sha256 == sha256(data)


def test_upload_gzip_and_raw_body(api: TestClient, app_ctx: AppContext) -> None:
    data = gzip.compress(csv_bytes(small_frame()))
    body = upload(api, data, "sales.csv.gz").json()
    assert body["name"] == "sales" and body["file"]["compressed"] is True
    assert app_ctx.artifacts.get_bytes(f"datasets/{body['id']}/data.csv.gz") == data

    raw = csv_bytes(small_frame(30))
    response = api.post(
        "/api/datasets?filename=raw.csv&name=Raw%20data",
        content=raw,
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Raw data"
    assert response.json()["filename"] == "raw.csv"
    assert response.json()["sha256"] == sha256(raw)


def test_name_form_field(api: TestClient) -> None:
    response = api.post(
        "/api/datasets",
        files={"file": ("a.csv", csv_bytes(small_frame()), "text/csv")},
        data={"name": "My data"},
    )
    assert response.status_code == 201
    assert response.json()["name"] == "My data"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "PNG image"),
        (b"PK\x03\x04" + b"\0" * 100, "Excel"),
        (b"a,b,c\n1,2,3\n4,5\n6,7,8,9,10\n", "line"),
    ],
)
def test_bad_csv_is_422_naming_the_upload_not_a_server_path(
    api: TestClient, app_ctx: AppContext, content: bytes, expected: str
) -> None:
    response = upload(api, content, "broken.csv")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_data_file"
    assert expected in error["message"]
    assert error["message"].startswith("broken.csv")
    text = response.text
    assert str(app_ctx.settings.data_dir) not in text and "/tmp" not in text
    assert "Traceback" not in text
    # Nothing is left behind: no record, no stored file, no staged upload.
    assert api.get("/api/datasets").json()["items"] == []
    assert app_ctx.artifacts.list_keys("datasets") == []
    assert list((app_ctx.settings.data_dir / "uploads").iterdir()) == []


def test_upload_without_file_or_with_wrong_type(api: TestClient) -> None:
    response = api.post("/api/datasets", data={"name": "x"}, files={"other": ("", b"")})
    assert response.status_code == 422
    response = api.post("/api/datasets", data={"name": "only a field"})
    assert response.status_code == 422
    assert "multipart field 'file'" in response.json()["error"]["message"]
    response = api.post("/api/datasets", json={"file": "a,b"})
    assert response.status_code == 422
    assert "Unsupported Content-Type" in response.json()["error"]["message"]


def test_too_large_upload_is_413(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, max_upload_mb=1)
    big = csv_bytes(pd.DataFrame({"a": np.arange(200_000), "b": np.arange(200_000) * 2}))
    assert len(big) > 1024 * 1024
    with TestClient(create_app(ctx)) as client:
        response = upload(client, big, "big.csv")
        assert response.status_code == 413
        error = response.json()["error"]
        assert error["code"] == "too_large"
        assert "1 MiB" in error["message"] and "TABPILOT_MAX_UPLOAD_MB" in error["message"]
        # Without a Content-Length the limit is enforced while streaming.
        chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
        response = client.post(
            "/api/datasets?filename=big.csv", content=chunks, headers={"Content-Type": "text/csv"}
        )
        assert response.status_code == 413
        assert list((ctx.settings.data_dir / "uploads").iterdir()) == []
        small = upload(client, csv_bytes(small_frame()), "small.csv")
        assert small.status_code == 201
    ctx.metadata.close()


def test_list_is_paginated_newest_first(api: TestClient) -> None:
    ids = [upload_frame(api, small_frame(seed=i), f"d{i}.csv")["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/datasets", params=params).json()
        assert len(page["items"]) <= 2
        assert all("columns" not in item for item in page["items"])
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert api.get("/api/datasets", params={"limit": 0}).status_code == 422
    bad = api.get("/api/datasets", params={"cursor": "garbage"})
    assert bad.status_code == 422 and "cursor" in bad.json()["error"]["message"]


def test_get_dataset_has_profile_and_preview(api: TestClient) -> None:
    frame = small_frame(25)
    created = upload_frame(api, frame)
    body = api.get(f"/api/datasets/{created['id']}").json()
    assert body["id"] == created["id"]
    assert len(body["preview"]["rows"]) == 20
    first = dict(zip(body["preview"]["columns"], body["preview"]["rows"][0], strict=True))
    assert first["customer_id"] == int(frame["customer_id"][0])
    assert first["label"] == frame["label"][0]
    assert api.get("/api/datasets/ds_0000000000000000").status_code == 404


def test_eda_report_is_rendered_once_and_cached(api: TestClient, app_ctx: AppContext) -> None:
    created = upload_frame(api, small_frame(60))
    response = api.get(f"/api/datasets/{created['id']}/eda.html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    key = f"datasets/{created['id']}/eda.html"
    assert app_ctx.artifacts.exists(key)
    app_ctx.artifacts.put_bytes(key, b"<html>cached</html>")
    assert api.get(f"/api/datasets/{created['id']}/eda.html").text == "<html>cached</html>"


def test_delete_dataset_refused_while_jobs_use_it_unless_forced(
    api: TestClient, app_ctx: AppContext
) -> None:
    dataset = upload_frame(api, small_frame(60))
    job_ids = []
    for _ in range(2):
        response = api.post(
            "/api/jobs", json={"dataset_id": dataset["id"], "target": "label", "time_budget": 5}
        )
        job_ids.append(response.json()["id"])
    model = finish_job(app_ctx, job_ids[0], files={"model.onnx": b"onnx"})
    assert model is not None
    refused = api.delete(f"/api/datasets/{dataset['id']}")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert sorted(error["details"]["jobs"]) == sorted(job_ids)
    assert "force=true" in error["message"]

    forced = api.delete(f"/api/datasets/{dataset['id']}", params={"force": "true"})
    assert forced.status_code == 200
    assert sorted(forced.json()["deleted_jobs"]) == sorted(job_ids)
    assert api.get(f"/api/datasets/{dataset['id']}").status_code == 404
    for job_id in job_ids:
        assert api.get(f"/api/jobs/{job_id}").status_code == 404
    assert app_ctx.metadata.find_model(model.id, owner=None) is None
    assert app_ctx.artifacts.list_keys() == []
    # The queued one was canceled before deletion, so its worker would stop.
    assert job_ids[1] in runner_of(app_ctx).canceled


def test_delete_unused_dataset(api: TestClient, app_ctx: AppContext) -> None:
    dataset = upload_frame(api, small_frame())
    api.get(f"/api/datasets/{dataset['id']}/eda.html")
    response = api.delete(f"/api/datasets/{dataset['id']}")
    assert response.status_code == 200 and response.json()["deleted_jobs"] == []
    assert app_ctx.artifacts.list_keys() == []
    assert api.delete(f"/api/datasets/{dataset['id']}").status_code == 404


@pytest.mark.parametrize(
    "bad_id",
    ["..%2F..%2Fetc%2Fpasswd", "..", "%2E%2E", "ds_1%00", "ds_..%5C..%5Cx", "a" * 300],
)
def test_path_traversal_in_dataset_ids_is_404(
    api: TestClient, app_ctx: AppContext, bad_id: str
) -> None:
    upload_frame(api, small_frame())
    for method, suffix in (("GET", ""), ("GET", "/eda.html"), ("DELETE", "")):
        response = api.request(method, f"/api/datasets/{bad_id}{suffix}")
        assert response.status_code == 404, (method, suffix, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert len(app_ctx.artifacts.list_keys("datasets")) == 1


def test_uploaded_file_name_cannot_choose_where_it_is_stored(
    api: TestClient, app_ctx: AppContext
) -> None:
    for name in ("../../../etc/evil.csv", "..\\..\\evil.csv", "/abs/evil.csv", "..", "\x00.csv"):
        response = upload(api, csv_bytes(small_frame()), name)
        assert response.status_code == 201, response.text
        body = response.json()
        assert "/" not in body["filename"] and "\\" not in body["filename"]
        assert not body["filename"].startswith(".")
    root = Path(app_ctx.settings.artifact_uri)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 5
    assert all(p.parent.parent == root / "datasets" and p.name == "data.csv" for p in files)
    assert not (app_ctx.settings.data_dir.parent / "etc").exists()


def test_twenty_concurrent_uploads_are_stored_intact(api: TestClient, app_ctx: AppContext) -> None:
    files = [csv_bytes(make_mixed_frame(200 + 10 * i, seed=i)) for i in range(20)]
    barrier = threading.Barrier(20)

    def send(i: int) -> dict:
        barrier.wait()
        response = upload(api, files[i], f"part{i}.csv")
        assert response.status_code == 201, response.text
        return response.json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(send, range(20)))
    assert len({r["id"] for r in results}) == 20
    for i, body in enumerate(results):
        assert body["filename"] == f"part{i}.csv"
        assert body["sha256"] == sha256(files[i])
        stored = app_ctx.artifacts.get_bytes(f"datasets/{body['id']}/data.csv")
        assert sha256(stored) == sha256(files[i])
        assert body["n_rows"] == 200 + 10 * i
    listed = api.get("/api/datasets", params={"limit": 100}).json()["items"]
    assert len(listed) == 20


def test_profiling_runs_off_the_event_loop(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one upload is being profiled, the server still answers other requests."""
    from tabpilot.services import datasets as service

    gate = threading.Event()
    original = service.describe_dataset

    def slow_describe(frame: pd.DataFrame) -> dict:
        assert gate.wait(10), "the health check never got through"
        return original(frame)

    monkeypatch.setattr(service, "describe_dataset", slow_describe)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(upload, api, csv_bytes(small_frame()), "slow.csv")
        assert api.get("/health").status_code == 200
        gate.set()
        assert pending.result(timeout=20).status_code == 201


def test_failed_job_state_is_kept_on_dataset_delete_conflict(
    api: TestClient, app_ctx: AppContext
) -> None:
    dataset = upload_frame(api, small_frame())
    job = api.post(
        "/api/jobs", json={"dataset_id": dataset["id"], "target": "label", "time_budget": 5}
    ).json()
    finish_job(app_ctx, job["id"], status=JobStatus.FAILED, error="boom")
    assert api.delete(f"/api/datasets/{dataset['id']}").status_code == 409
    assert api.get(f"/api/jobs/{job['id']}").json()["status"] == "failed"
