"""The home page in-process: recent datasets and jobs of the caller only, linked, escaped."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.services.auth import local_owner
from tests.api.support import make_ctx
from tests.factories import add_dataset, add_job


def test_home_lists_recent_datasets_and_jobs_with_links(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    try:
        mine = add_dataset(ctx.metadata, owner=local_owner(), filename="<b>sales</b>.csv")
        job = add_job(ctx.metadata, mine, spec={"target": "<i>price</i>"})
        add_dataset(ctx.metadata, owner="someone-else", filename="theirs.csv")
        with TestClient(create_app(ctx), base_url="http://127.0.0.1:8000") as client:
            page = client.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert f'href="/datasets/{mine.id}">&lt;b&gt;sales&lt;/b&gt;.csv</a>' in page.text
        assert f'href="/jobs/{job.id}"' in page.text
        assert "&lt;i&gt;price&lt;/i&gt;" in page.text and "<i>price" not in page.text
        assert "queued" in page.text
        assert "theirs.csv" not in page.text
    finally:
        ctx.metadata.close()
