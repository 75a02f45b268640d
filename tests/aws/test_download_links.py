"""Large model files on S3 are downloaded through a short-lived link, not through the server.

On Lambda a response stops at 6 MB, and any server is spared the traffic. The app runs in
process over an S3 artifact store on the moto server (real HTTP); the link it answers with is
then followed like a browser would, without the user's token.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.context import AppContext, build_context
from tabpilot.services.auth import local_owner
from tabpilot.settings import load_settings
from tabpilot.storage import keys
from tests.factories import add_dataset, add_job, add_model

MiB = 1024 * 1024


@pytest.fixture
def on_s3(s3_bucket: str, tmp_path: Path) -> Iterator[tuple[TestClient, AppContext]]:
    settings = load_settings(
        data_dir=tmp_path / "data", artifact_uri=f"s3://{s3_bucket}/t", download_link_mb=1
    )
    ctx = build_context(settings)
    with TestClient(create_app(ctx)) as client:
        yield client, ctx
    ctx.metadata.close()


def _model_with_files(ctx: AppContext, files: dict[str, bytes]) -> str:
    owner = local_owner()  # local mode: the user running the process
    job = add_job(ctx.metadata, add_dataset(ctx.metadata, owner=owner), status="succeeded")
    model = add_model(ctx.metadata, job)
    for name, data in files.items():
        ctx.artifacts.put_bytes(keys.model_file(model.id, name), data)
    return model.id


def test_a_large_model_file_is_a_link_to_the_store_and_a_small_one_is_served(
    on_s3: tuple[TestClient, AppContext],
) -> None:
    client, ctx = on_s3
    large = os.urandom(int(1.5 * MiB))
    small = b'{"card": true}'
    model_id = _model_with_files(ctx, {"model.onnx": large, "model.json": small})

    answered = client.get(f"/api/models/{model_id}/files/model.onnx", follow_redirects=False)
    assert answered.status_code == 307
    link = answered.headers["location"]
    assert link.startswith(os.environ["AWS_ENDPOINT_URL"]) and "Signature" in link
    fetched = httpx.get(link)  # no token: the link itself is the permission
    assert fetched.status_code == 200 and fetched.content == large

    served = client.get(f"/api/models/{model_id}/files/model.json")
    assert served.status_code == 200 and served.content == small


def test_reports_are_always_served_with_their_sandbox(
    on_s3: tuple[TestClient, AppContext],
) -> None:
    client, ctx = on_s3
    report = b"<html>" + b"x" * int(1.2 * MiB) + b"</html>"
    model_id = _model_with_files(ctx, {"report.html": report})
    answered = client.get(f"/api/models/{model_id}/files/report.html", follow_redirects=False)
    assert answered.status_code == 200
    assert "sandbox" in answered.headers["content-security-policy"]
    assert answered.content == report
