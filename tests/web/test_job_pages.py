"""The job page (/jobs/{id}) in a real Chromium against a real `tabpilot serve` (conftest.py):
Training with live progress, Results from the model card, cancel, a failure with Retry, the
tags and notes editor, and deploy with the key shown once.

One short job (time budget 5 s on a small CSV) is trained for the whole module; the first test
watches it live, the others wait for it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tabpilot.engine.card import ModelCard
from tabpilot.web.pages import job_view
from tests.web.conftest import TokenServer

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips these tests, saying why
    expect = None

Shoot = Callable[[Any, str], None]
FINAL = ("succeeded", "failed", "canceled")

# Notes every live progress update the page receives, with the page load it happened in; kept
# in sessionStorage, which survives the reload that shows the results.
RECORD_UPDATES = """
(() => {
  const load = String(Math.random());
  const loads = JSON.parse(sessionStorage.getItem("loads") || "[]");
  loads.push(load);
  sessionStorage.setItem("loads", JSON.stringify(loads));
  document.addEventListener("tabpilot:progress", () => {
    const seen = JSON.parse(sessionStorage.getItem("updates") || "[]");
    const root = document.getElementById("training");
    seen.push({
      load: load,
      trials: document.getElementById("progress-trials").textContent,
      counted: root.getAttribute("data-updates"),
      heading: document.querySelector("h1").textContent,
    });
    sessionStorage.setItem("updates", JSON.stringify(seen));
  });
})();
"""


def binary_csv(path: Path, rows: int = 300) -> Path:
    lines = ["age,plan,score,churn"]
    for i in range(rows):
        plan = ("basic", "pro", "team")[i % 3]
        score = (i * 37 % 101) / 10
        churn = "yes" if score + (2 if plan == "basic" else 0) + (i % 7) / 3 > 7 else "no"
        lines.append(f"{18 + i % 60},{plan},{score},{churn}")
    path.write_text("\n".join(lines) + "\n")
    return path


def upload(url: str, path: Path) -> str:
    with path.open("rb") as handle:
        answer = httpx.post(f"{url}/api/datasets", files={"file": (path.name, handle)}, timeout=60)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def create_job(url: str, dataset_id: str, target: str, budget: int) -> str:
    body = {"dataset_id": dataset_id, "target": target, "time_budget": budget}
    answer = httpx.post(f"{url}/api/jobs", json=body, timeout=60)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def wait_final(url: str, job_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()
        if job["status"] in FINAL:
            return dict(job)
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def dataset(server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return upload(server, binary_csv(tmp_path_factory.mktemp("job-pages") / "churn.csv"))


@pytest.fixture(scope="module")
def trained_job(server: str, dataset: str) -> str:
    """A 5-second job, created (not awaited): the first test watches it train."""
    return create_job(server, dataset, "churn", 5)


@pytest.fixture
def succeeded_job(server: str, trained_job: str) -> dict[str, Any]:
    job = wait_final(server, trained_job)
    assert job["status"] == "succeeded", job
    return job


@pytest.mark.slow
def test_training_is_followed_live_then_the_results_show(
    page: Any, server: str, trained_job: str, shoot: Shoot
):
    page.add_init_script(RECORD_UPDATES)
    page.goto(f"{server}/jobs/{trained_job}")
    expect(page.get_by_role("heading", name="Training: predict churn")).to_be_visible()
    expect(page.locator("#budget-bar")).to_be_visible()
    # A live update: the page counts progress events from the stream, without reloading.
    expect(page.locator("#training")).not_to_have_attribute("data-updates", "0", timeout=120_000)
    expect(page.locator("#progress-trials")).not_to_have_text("0")
    shoot(page, "job-training")
    expect(page.get_by_role("heading", name="Results: predict churn")).to_be_visible(
        timeout=180_000
    )
    loads = json.loads(page.evaluate("sessionStorage.getItem('loads')"))
    updates = json.loads(page.evaluate("sessionStorage.getItem('updates')"))
    assert updates, "no progress update reached the page"
    assert updates[0]["load"] == loads[0], "the first update came on the training page"
    assert updates[0]["heading"] == "Training: predict churn"
    assert len(loads) == 2, "one reload only: to the results, when the job ended"

    cards = page.locator("#metric-cards > li")
    expect(cards.first).to_contain_text("ROC AUC")
    expect(cards.first).to_contain_text("baseline")
    assert cards.count() >= 5
    expect(page.locator("#leaderboard-table tbody tr").first).to_be_visible()
    expect(page.locator("#candidates-table .badge", has_text="chosen")).to_have_count(1)
    expect(page.locator("#confusion-chart svg")).to_be_visible()
    expect(page.locator("#importance-chart svg")).to_be_visible()
    for chart in ("roc-chart", "pr-chart", "calibration-chart"):  # from the card's evaluation
        expect(page.locator(f"#{chart} svg")).to_be_visible()
    downloads = page.locator("#downloads")
    for name in ("model.onnx", "model.pkl", "model.json"):
        expect(downloads.get_by_role("link", name=name)).to_be_visible()
    expect(downloads.get_by_role("link", name="Training report")).to_be_visible()
    expect(downloads).to_contain_text("loading it runs code")
    csv_href = page.locator("#leaderboard-csv").get_attribute("href")
    csv = page.request.get(server + csv_href)
    assert csv.status == 200 and csv.text().startswith("stage,estimator,label")
    onnx = page.request.get(
        server + downloads.get_by_role("link", name="model.onnx").get_attribute("href")
    )
    assert onnx.status == 200 and len(onnx.body()) > 100
    expect(page.get_by_role("link", name="Try predictions")).to_have_attribute(
        "href", re.compile(r"^/models/mdl_\w+/predict$")
    )
    shoot(page, "job-results")


@pytest.mark.slow
def test_tags_and_notes_are_edited_and_shown_as_text(
    page: Any, server: str, succeeded_job: dict[str, Any], shoot: Shoot
):
    job_id = succeeded_job["id"]
    page.set_viewport_size({"width": 700, "height": 900})  # half a laptop screen
    page.goto(f"{server}/jobs/{job_id}")
    widest = page.evaluate("document.documentElement.scrollWidth")
    assert widest <= 700, f"the results page scrolls sideways at 700 px ({widest} px wide)"
    shoot(page, "job-results-narrow")
    page.get_by_role("textbox", name=re.compile(r"^Tags")).fill("baseline run, <b>bold</b>")
    page.get_by_role("textbox", name="Notes", exact=True).fill(
        'First try "quoted" <script>alert(1)</script>'
    )
    page.get_by_role("button", name="Save tags and notes").click()
    expect(page.locator("#tag-list li")).to_have_text(["baseline run", "<b>bold</b>"])
    expect(page.get_by_role("textbox", name="Notes", exact=True)).to_have_value(
        'First try "quoted" <script>alert(1)</script>'
    )
    stored = httpx.get(f"{server}/api/jobs/{job_id}", timeout=30).json()
    assert stored["tags"] == ["baseline run", "<b>bold</b>"]

    page.get_by_role("textbox", name=re.compile(r"^Tags")).fill(
        ",".join(f"t{i}" for i in range(11))
    )
    page.get_by_role("button", name="Save tags and notes").click()
    expect(page.locator("#labels-error")).to_contain_text("at most 10 tags")
    assert httpx.get(f"{server}/api/jobs/{job_id}", timeout=30).json()["tags"] == stored["tags"]


@pytest.mark.slow
def test_deploy_shows_the_key_once_and_undeploy_revokes_it(
    page: Any, server: str, succeeded_job: dict[str, Any], shoot: Shoot
):
    job_id, model_id = succeeded_job["id"], succeeded_job["model_id"]
    page.goto(f"{server}/jobs/{job_id}")
    page.get_by_role("button", name="Deploy").click()
    key_field = page.get_by_label(f"Key for model {model_id}")
    expect(key_field).to_have_value(re.compile(r"^tpk_[\w-]{20,}$"))
    key = key_field.input_value()
    shoot(page, "job-deployed")
    row = {"rows": [{"age": 30, "plan": "pro", "score": 5.0}]}
    predict = f"{server}/api/models/{model_id}/predict"
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.post(predict, json=row, headers=auth, timeout=60).status_code == 200

    page.goto(f"{server}/jobs/{job_id}")
    expect(page.locator("#deploy-state")).to_contain_text("deployed")
    expect(page.locator("#deploy-key")).to_have_count(0)
    assert key not in page.content()
    page.get_by_role("button", name="Undeploy (revoke the key)").click()
    expect(page.locator("#deploy-state")).to_contain_text("not deployed")
    assert httpx.post(predict, json=row, headers=auth, timeout=60).status_code == 401


@pytest.mark.slow
def test_cancel_a_job_from_its_page(page: Any, server: str, dataset: str, shoot: Shoot):
    job_id = create_job(server, dataset, "churn", 300)
    page.goto(f"{server}/jobs/{job_id}")
    expect(page.get_by_role("heading", name="Training: predict churn")).to_be_visible()
    page.get_by_role("button", name="Cancel training").click()
    expect(page.get_by_role("heading", name="The job was canceled")).to_be_visible()
    expect(page.locator("#job-status")).to_have_text("canceled")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel training")).to_have_count(0)
    assert wait_final(server, job_id)["status"] == "canceled"
    shoot(page, "job-canceled")


@pytest.mark.slow
def test_a_failing_job_shows_its_message_and_retry_queues_a_new_one(
    page: Any, server: str, tmp_path: Path, shoot: Shoot
):
    # One row of class "b": the worker finds fewer than 2 classes with 2 rows each.
    path = tmp_path / "lonely.csv"
    path.write_text("x,y\n" + "".join(f"{i % 5},{'b' if i == 0 else 'a'}\n" for i in range(20)))
    job_id = create_job(server, upload(server, path), "y", 5)
    page.goto(f"{server}/jobs/{job_id}")
    error = page.locator("#job-error")
    expect(error).to_contain_text("fewer than 2 classes", timeout=180_000)
    expect(error).to_have_text(wait_final(server, job_id)["error"])
    shoot(page, "job-failed")
    page.get_by_role("button", name="Retry").click()
    page.wait_for_url(re.compile(r"/jobs/job_\w+$"))
    assert not page.url.endswith(job_id)
    retry_id = page.url.rsplit("/", 1)[1]
    retry = httpx.get(f"{server}/api/jobs/{retry_id}", timeout=30).json()
    assert retry["spec"]["target"] == "y" and retry["dataset_id"]
    expect(page.locator("h1")).to_contain_text("predict y")
    wait_final(server, retry_id)  # leaves the worker free for the next test module


FIRST_STREAM_EVENT = """
(url) => new Promise((resolve, reject) => {
  const source = new EventSource(url);
  source.addEventListener("job", (event) => {
    source.close();
    resolve(JSON.parse(event.data).status);
  });
  source.onerror = () => { source.close(); reject(new Error("the stream was refused")); };
})
"""


@pytest.mark.slow
def test_token_mode_follows_the_job_with_the_session_cookie(
    page: Any, token_server: TokenServer, tmp_path: Path
):
    url, auth = token_server.url, {"Authorization": f"Bearer {token_server.token}"}
    path = tmp_path / "lonely.csv"
    path.write_text("x,y\n" + "".join(f"{i % 5},{'b' if i == 0 else 'a'}\n" for i in range(20)))
    with path.open("rb") as handle:
        uploaded = httpx.post(
            f"{url}/api/datasets", files={"file": (path.name, handle)}, headers=auth, timeout=60
        )
    body = {"dataset_id": uploaded.json()["id"], "target": "y", "time_budget": 5}
    job_id = httpx.post(f"{url}/api/jobs", json=body, headers=auth, timeout=60).json()["id"]
    page.goto(f"{url}/jobs/{job_id}")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_label("API token").fill(token_server.token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/jobs/{job_id}")
    # The page's stream is an API call that only the session cookie authenticates.
    assert page.evaluate(FIRST_STREAM_EVENT, f"/api/jobs/{job_id}/stream") in (
        "queued",
        "running",
        "failed",
    )
    expect(page.locator("#job-error")).to_contain_text("fewer than 2 classes", timeout=120_000)


# -- the view, without a browser -----------------------------------------------------------------


def card_with(**parts: Any) -> ModelCard:
    base: dict[str, Any] = {
        "target": "y",
        "problem_type": "binary",
        "classes": ["no", "yes"],
        "metric": {"name": "log_loss", "label": "log loss", "greater_is_better": False},
    }
    return ModelCard.from_dict(base | parts)


def test_metric_cards_put_the_optimised_metric_first_and_judge_by_its_direction():
    card = card_with(
        metrics={
            "holdout": {"roc_auc": 0.9, "log_loss": 0.3, "confusion_matrix": [[1, 0], [0, 1]]},
            "baseline": {"roc_auc": 0.5, "log_loss": 0.7},
        }
    )
    cards = job_view.metric_cards(card)
    assert [(c.name, c.primary, c.verdict) for c in cards] == [
        ("log_loss", True, "better"),
        ("roc_auc", False, "better"),
    ]
    assert cards[0].direction == "lower"


def test_leaderboard_csv_lists_the_search_then_the_finalists_and_keeps_formulas_as_text():
    card = card_with(
        chosen={"name": "search", "description": "x"},
        leaderboard=[
            {"estimator": "lgbm", "label": "=HYPERLINK(1)", "validation_score": 0.8, "best": True},
            {"estimator": "search", "label": "found", "holdout_score": 0.7, "candidate": True},
        ],
    )
    lines = job_view.leaderboard_csv(card).splitlines()
    assert lines[0].startswith("stage,estimator,label,validation_score")
    assert lines[1].startswith("search,lgbm,'=HYPERLINK(1),0.8,")
    assert lines[2].startswith("final,search,found,,,,,0.7,,True")
