"""History (/jobs) and Compare (/compare): quick page tests with TestClient on records made by
the factories, then the pages in Chromium against a real `tabpilot serve` with two jobs trained
through the API (time budget 5 s) and failed ones written into its store."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.context import AppContext, build_context
from tabpilot.records import JobStatus, utc_now
from tabpilot.services.auth import authenticate
from tabpilot.settings import load_settings
from tabpilot.web.pages.history import format_duration, format_metric
from tests import factories
from tests.api.support import fake_card, finish_job
from tests.web.conftest import server_environment, start_server, stop_server

try:  # the browser tests skip without Playwright (the `browser` fixture says how to get it)
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover
    expect = None

Shoot = Callable[[Any, str], None]


# -- quick: formatting and the pages through TestClient -----------------------------------------


def test_metric_values_read_as_their_kind():
    assert format_metric("accuracy", 0.93421) == "93.4 %"
    assert format_metric("f1_macro", 0.5) == "50.0 %"  # an older card's name for macro F1
    assert format_metric("roc_auc", 0.93456) == "0.935"
    assert format_metric("log_loss", 0.123456) == "0.1235"
    assert format_metric("rmse", 1234.5678) == "1,235"
    assert format_metric("r2", 0.5) == "0.500"
    assert format_metric("roc_auc", None) == ""
    assert format_duration(8.4) == "8 s"
    assert format_duration(75.2) == "1 min 15 s"
    assert format_duration(3725) == "1 h 2 min"
    assert format_duration(None) == ""


@dataclass
class Seeded:
    client: TestClient
    ctx: AppContext
    good: str  # roc_auc 0.9, rf, budget 5
    better: str  # roc_auc 0.95, lgbm, budget 10
    failed: str


@pytest.fixture
def seeded(ctx: AppContext) -> Seeded:
    owner = authenticate(ctx.metadata, mode="local", token=None).owner
    dataset = factories.add_dataset(ctx.metadata, owner=owner, filename="<b>loans</b>.csv")
    ids = []
    for auc, chosen, budget in ((0.9, "rf", 5), (0.95, "lgbm", 10)):
        spec = {"target": "label", "problem_type": "binary", "metric": "roc_auc"}
        job = factories.add_job(
            ctx.metadata, dataset, spec=spec | {"time_budget": budget}, tags=["hist", "<i>x</i>"]
        )
        holdout = {"roc_auc": auc, "accuracy": 0.8, "log_loss": 1 - auc}
        card = fake_card(holdout=holdout, importance={"age": auc, "<b>inc</b>": 0.1}, chosen=chosen)
        finish_job(ctx, job.id, card=card)
        ids.append(job.id)
    failed = factories.add_job(
        ctx.metadata,
        dataset,
        status=JobStatus.FAILED,
        error="The target <b>label</b> has one class",
        started_at=utc_now(),
        finished_at=utc_now(),
        message="failed",
    )
    return Seeded(TestClient(create_app(ctx)), ctx, ids[0], ids[1], failed.id)


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-job-id="([^"]+)"', html)


def test_history_lists_jobs_with_score_model_and_escaped_data(seeded: Seeded):
    page = seeded.client.get("/jobs")
    assert page.status_code == 200
    assert set(rows(page.text)) == {seeded.good, seeded.better, seeded.failed}
    assert "0.950" in page.text and "ROC AUC" in page.text and "lgbm" in page.text
    assert "&lt;b&gt;loans&lt;/b&gt;.csv" in page.text and "<b>loans" not in page.text
    assert "&lt;i&gt;x&lt;/i&gt;" in page.text
    assert "The target &lt;b&gt;label&lt;/b&gt; has one class" in page.text
    assert f'href="/jobs/{seeded.failed}#job-error"' in page.text


def test_history_filters_as_the_api_does_and_htmx_gets_the_table_only(seeded: Seeded):
    client = seeded.client
    partial = client.get("/jobs?status=failed", headers={"HX-Request": "true"})
    assert rows(partial.text) == [seeded.failed]
    assert "<html" not in partial.text and partial.headers["vary"] == "HX-Request"
    restored = client.get(
        "/jobs?status=failed", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in restored.text  # the back button restores the whole page
    assert rows(client.get("/jobs?status=failed,succeeded").text) != []
    assert set(rows(client.get("/jobs?tag=hist").text)) == {seeded.good, seeded.better}
    assert rows(client.get(f"/jobs?q={seeded.better}").text) == [seeded.better]
    assert rows(client.get("/jobs?problem_type=regression").text) == []
    bad = client.get("/jobs?problem_type=nonsense")
    assert bad.status_code == 422 and "Unknown problem type" in bad.text


def test_history_pages_follow_the_cursor(seeded: Seeded):
    seen: list[str] = []
    url: str | None = "/jobs?limit=1"
    while url:
        page = seeded.client.get(url)
        seen += rows(page.text)
        found = re.search(r'id="next-page" rel="next"', page.text)
        url = (
            re.search(r'<a href="([^"]+)"[^>]*id="next-page"', page.text)
            .group(1)
            .replace("&amp;", "&")
            if found
            else None
        )
    assert sorted(seen) == sorted([seeded.good, seeded.better, seeded.failed])


def test_delete_asks_then_needs_the_csrf_token(seeded: Seeded):
    client = seeded.client
    confirm = client.get(f"/jobs/{seeded.failed}/delete?back=status%3Dfailed")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text).group(1)
    refused = client.post(f"/jobs/{seeded.failed}/delete", data={"back": ""})
    assert refused.status_code == 403
    done = client.post(
        f"/jobs/{seeded.failed}/delete",
        data={"csrf_token": token, "back": "status=failed"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/jobs?status=failed&deleted={seeded.failed}"
    assert seeded.ctx.metadata.find_job(seeded.failed, owner=None) is None
    # The way back can only be a query string of /jobs.
    other = client.post(
        f"/jobs/{seeded.good}/delete",
        data={"csrf_token": token, "back": "//evil.example/x"},
        follow_redirects=False,
    )
    assert other.headers["location"].startswith("/jobs?")


def test_compare_marks_the_best_and_shows_differences(seeded: Seeded):
    client = seeded.client
    moved = client.get(f"/compare?jobs={seeded.good}&jobs={seeded.better}", follow_redirects=False)
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/compare?jobs={seeded.good},{seeded.better}"
    page = client.get(moved.headers["location"])
    assert page.status_code == 200
    best = re.findall(
        r'<tr data-metric="([a-z_]+)"[^>]*>.*?</tr>', page.text, flags=re.S
    )  # metric rows, primary first
    assert best[0] == "roc_auc"
    roc = re.search(r'<tr data-metric="roc_auc".*?</tr>', page.text, flags=re.S).group(0)
    cells = re.findall(r"<td class=\"num( best)?\"", roc)
    assert cells == ["", " best"]  # 0.95 beats 0.9: higher is better
    loss = re.search(r'<tr data-metric="log_loss".*?</tr>', page.text, flags=re.S).group(0)
    assert re.findall(r"<td class=\"num( best)?\"", loss) == ["", " best"]  # 0.05 < 0.1
    differences = re.search(r'<table id="compare-differences".*?</table>', page.text, flags=re.S)
    assert differences and "time budget (s)" in differences.group(0)
    assert "&lt;b&gt;inc&lt;/b&gt;" in page.text and "<b>inc" not in page.text
    assert page.text.count("<svg") >= 4  # three metric charts and the importance chart


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("{good}", 422, "Give between 2 and 6 different job ids"),
        ("{good},{failed}", 409, "Only succeeded jobs can be compared"),
        ("{good},job_0123456789abcdef", 404, "not found"),
        (",".join(f"job_{i:016x}" for i in range(7)), 422, "Give between 2 and 6"),
    ],
)
def test_compare_says_what_is_wrong_with_the_selection(
    seeded: Seeded, query: str, status: int, words: str
):
    url = "/compare?jobs=" + query.format(good=seeded.good, failed=seeded.failed)
    page = seeded.client.get(url)
    assert page.status_code == status
    assert words in re.search(r'id="compare-error">([^<]*)', page.text).group(1)


def test_compare_without_jobs_explains_how(seeded: Seeded):
    page = seeded.client.get("/compare")
    assert page.status_code == 200 and "/compare?jobs=ID1,ID2" in page.text


# -- Chromium against a real server -------------------------------------------------------------


@dataclass
class History:
    url: str
    good: str
    better: str
    failed: str
    doomed: str


def training_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["age,income,colour,label"]
    for _ in range(300):
        age, income = rng.integers(18, 80), rng.normal(50, 15)
        colour = ("red", "green", "blue")[int(rng.integers(0, 3))]
        label = "yes" if age / 60 + income / 100 + rng.normal(0, 0.3) > 1.2 else "no"
        lines.append(f"{age},{income:.1f},{colour},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_finished(url: str, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return dict(job)
        time.sleep(1)
    pytest.fail(f"job {job_id} did not finish within {timeout} s")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """Its own server, so the table holds only these jobs: two trained (rf and extra trees,
    5 s each), one failed and one more failed job to delete, both written into its store."""
    root = tmp_path_factory.mktemp("web-history")
    running = start_server(root, server_environment(root / "data"))
    url = running.url
    try:
        with training_csv(root / "loans.csv").open("rb") as handle:
            dataset = httpx.post(f"{url}/api/datasets", files={"file": handle}, timeout=60).json()
        ids = []
        for estimator, tags in (("rf", ["hist", "forest"]), ("extra_tree", ["hist"])):
            body = {
                "dataset_id": dataset["id"],
                "target": "label",
                "time_budget": 5,
                "estimators": [estimator],
                "tags": tags,
            }
            created = httpx.post(f"{url}/api/jobs", json=body, timeout=30)
            assert created.status_code == 202, created.text
            ids.append(created.json()["id"])
        for job_id in ids:
            assert wait_finished(url, job_id)["status"] == "succeeded"
        settings = load_settings(data_dir=root / "data", runner_uri="inline://")
        ctx = build_context(settings)
        try:
            record = ctx.metadata.get_dataset(dataset["id"], owner=None)
            failed, doomed = (
                factories.add_job(
                    ctx.metadata,
                    record,
                    spec={"target": "label"},
                    status=JobStatus.FAILED,
                    error=error,
                    tags=tags,
                    started_at=utc_now(),
                    finished_at=utc_now(),
                    message="failed",
                )
                for error, tags in (
                    ("The run ran out of memory <script>alert(1)</script>", ["hist"]),
                    ("Doomed to be deleted", []),
                )
            )
        finally:
            ctx.metadata.close()
        yield History(url, ids[0], ids[1], failed.id, doomed.id)
    finally:
        stop_server(running)


def table_ids(page: Any) -> list[str]:
    return page.locator("#history-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.jobId)"
    )


@pytest.mark.slow
def test_filters_narrow_the_table_and_live_in_the_url(page: Any, history: History, shoot: Shoot):
    page.goto(history.url + "/jobs")
    assert len(table_ids(page)) == 4
    expect(page.locator(f'tr[data-job-id="{history.better}"]')).to_contain_text("extra trees")
    shoot(page, "history")

    page.get_by_label("failed").check()  # the status checkbox
    page.wait_for_url(re.compile(r"status=failed"))
    expect(page.locator("#history-table tbody tr")).to_have_count(2)
    failed_row = page.locator(f'tr[data-job-id="{history.failed}"]')
    expect(failed_row.locator(".job-error")).to_contain_text("<script>alert(1)</script>")
    expect(failed_row.locator(".job-error")).to_have_attribute(
        "href", f"/jobs/{history.failed}#job-error"
    )

    page.get_by_label("Tag").fill("hist")
    page.wait_for_url(re.compile(r"tag=hist"))
    expect(page.locator("#history-table tbody tr")).to_have_count(1)
    filtered_url = page.url

    page.go_back()
    page.wait_for_url(re.compile(r"status=failed(?!.*tag=hist)"))
    expect(page.locator("#history-table tbody tr")).to_have_count(2)
    expect(page.get_by_label("failed")).to_be_checked()

    fresh = page.context.new_page()  # the URL alone gives the same view
    fresh.goto(filtered_url)
    assert table_ids(fresh) == [history.failed]
    expect(fresh.get_by_label("Tag")).to_have_value("hist")
    fresh.close()

    page.goto(history.url + "/jobs?q=" + history.good)
    assert table_ids(page) == [history.good]


@pytest.mark.slow
def test_pages_follow_the_cursor(page: Any, history: History):
    page.goto(history.url + "/jobs?tag=hist&limit=1")
    seen = table_ids(page)
    while page.locator("#next-page").count():
        page.locator("#next-page").click()
        page.wait_for_function(
            "seen => !seen.includes(document.querySelector('#history-table tbody tr')"
            ".dataset.jobId)",
            arg=seen,
        )
        assert "cursor=" in page.url
        seen += table_ids(page)
    assert sorted(seen) == sorted([history.good, history.better, history.failed])
    expect(page.locator("#first-page")).to_be_visible()


@pytest.mark.slow
def test_delete_asks_for_confirmation_then_removes(page: Any, history: History, shoot: Shoot):
    page.goto(history.url + "/jobs")
    page.get_by_role("link", name=f"Delete job {history.doomed}").click()
    expect(page.get_by_role("heading", name=re.compile("Delete job"))).to_be_visible()
    shoot(page, "history-delete")
    page.get_by_role("link", name="Keep it").click()  # changing one's mind keeps it
    expect(page.locator(f'tr[data-job-id="{history.doomed}"]')).to_have_count(1)

    page.get_by_role("link", name=f"Delete job {history.doomed}").click()
    page.get_by_role("button", name="Delete job").click()
    expect(page.locator("#deleted-message")).to_contain_text(history.doomed)
    expect(page.locator(f'tr[data-job-id="{history.doomed}"]')).to_have_count(0)
    gone = httpx.get(f"{history.url}/api/jobs/{history.doomed}", timeout=10)
    assert gone.status_code == 404


@pytest.mark.slow
def test_compare_two_jobs_marks_the_best_and_the_url_reproduces_it(
    page: Any, history: History, shoot: Shoot
):
    page.goto(history.url + "/jobs?status=succeeded")
    button = page.get_by_role("button", name="Compare selected")
    expect(button).to_be_disabled()
    page.get_by_label(f"Select job {history.good} for comparison").check()
    expect(button).to_be_disabled()
    page.get_by_label(f"Select job {history.better} for comparison").check()
    expect(button).to_be_enabled()
    button.click()
    page.wait_for_url(re.compile(r"/compare\?jobs=job_[0-9a-f]+,job_[0-9a-f]+$"))
    assert set(page.url.split("jobs=")[1].split(",")) == {history.good, history.better}

    api = httpx.get(
        f"{history.url}/api/compare", params={"jobs": page.url.split("jobs=")[1]}, timeout=30
    ).json()
    order = [j["id"] for j in api["jobs"]]
    for metric in api["metrics"]:
        cells = page.locator(f'#compare-metrics tr[data-metric="{metric["name"]}"] td')
        expect(cells).to_have_count(2)
        marked = [order[i] for i in range(2) if cells.nth(i).get_attribute("data-best")]
        assert marked == [i for i in order if i in metric["best"]], metric["name"]
    assert any(m["best"] for m in api["metrics"])
    differences = page.locator("#compare-differences")
    expect(differences).to_contain_text("estimators")
    expect(differences).to_contain_text("rf")
    expect(page.locator(".metric-chart svg")).to_have_count(len(api["metrics"]))
    expect(page.locator(".importance-chart svg")).to_have_count(1)
    shoot(page, "compare")

    body = page.locator("main").inner_text()
    fresh = page.context.new_page()
    fresh.goto(page.url)
    assert fresh.locator("main").inner_text() == body
    fresh.close()


@pytest.mark.slow
def test_compare_explains_a_wrong_selection(page: Any, history: History, shoot: Shoot):
    page.goto(f"{history.url}/compare?jobs={history.good},{history.failed}")
    expect(page.get_by_role("alert")).to_contain_text("Only succeeded jobs can be compared")
    shoot(page, "compare-error")
    page.goto(f"{history.url}/compare?jobs={history.good}")
    expect(page.get_by_role("alert")).to_contain_text("Give between 2 and 6")


@pytest.mark.slow
def test_history_and_compare_fit_half_a_laptop_screen(page: Any, history: History, shoot: Shoot):
    page.set_viewport_size({"width": 700, "height": 800})
    page.goto(history.url + "/jobs")
    assert page.evaluate("document.documentElement.scrollWidth") <= 700  # the table scrolls
    shoot(page, "history-700px")
    page.goto(f"{history.url}/compare?jobs={history.good},{history.better}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 700
    shoot(page, "compare-700px")
