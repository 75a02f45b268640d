"""The dataset page: in-process tests of the page and its partials (TestClient, a runner that
runs nothing), then the same path in a real Chromium against `tabpilot serve`."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.context import AppContext
from tabpilot.engine.spec import SET_BY_USER
from tests.api.support import make_ctx, runner_of

BASE = "http://127.0.0.1:8000"
HTML = {"Accept": "text/html"}
HOSTILE_COLUMNS = ['<script>alert("c")</script>', '"quoted", col', "<b>bold</b>", "a&amp;b"]


def churn_csv(rows: int = 120) -> str:
    """customer_id (an identifier), plan (categories), monthly (numbers), flat (constant),
    churned (yes/no target), spend (numeric target)."""
    lines = ["customer_id,plan,monthly,flat,churned,spend"]
    for i in range(rows):
        plan = ("basic", "plus", "pro")[i % 3]
        churned = "yes" if i % 4 == 0 else "no"
        lines.append(f"{1000 + i},{plan},{20 + (i * 7) % 50},same,{churned},{(i * 13) % 97 + 0.5}")
    return "\n".join(lines) + "\n"


def hostile_csv() -> str:
    def quote(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    rows = [",".join(quote(c) for c in HOSTILE_COLUMNS)]
    rows += [
        ",".join(quote(v) for v in ("<img src=x>", str(i), "x" if i % 2 else "y", "1"))
        for i in range(30)
    ]
    return "\n".join(rows) + "\n"


@pytest.fixture
def web_ctx(tmp_path: Path) -> Iterator[AppContext]:
    ctx = make_ctx(tmp_path)
    yield ctx
    ctx.metadata.close()


@pytest.fixture
def client(web_ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(web_ctx), base_url=BASE) as test_client:
        yield test_client


def upload(client: TestClient, text: str, name: str = "churn.csv") -> str:
    answer = client.post("/api/datasets", files={"file": (name, text.encode())})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def csrf_of(page_text: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', page_text)
    assert match
    return match.group(1)


def text_of(fragment: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_page_shows_overview_columns_uses_and_eda_link(client: TestClient) -> None:
    dataset_id = upload(client, churn_csv())
    page = client.get(f"/datasets/{dataset_id}", headers=HTML)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "120" in text and "By kind" in text
    # Warnings in the profile's own words.
    assert "customer_id" in text and "identifier" in text
    # What training does with each column, from the engine's detection.
    table = page.text.split('id="dataset-column-table"')[1].split("</table>")[0]
    rows = {text_of("<tr" + r).split(" ")[0]: text_of("<tr" + r) for r in table.split("<tr")[2:]}
    assert "dropped" in rows["customer_id"] and "identifier" in rows["customer_id"]
    assert "dropped" in rows["flat"] and "same value" in rows["flat"]
    assert "used as categorical" in rows["plan"]
    assert "used as numeric" in rows["monthly"]
    assert f'href="/api/datasets/{dataset_id}/eda.html"' in page.text
    assert '<iframe sandbox=""' in page.text
    assert 'name="target"' in page.text and 'hx-get="/datasets/' in page.text


def test_target_partial_shows_problem_reason_chart_and_valid_metrics(client: TestClient) -> None:
    dataset_id = upload(client, churn_csv())
    part = client.get(f"/datasets/{dataset_id}/target", params={"target": "churned"}, headers=HTML)
    assert part.status_code == 200
    assert part.text.lstrip().startswith('<div id="target-panel"')
    text = text_of(part.text)
    assert re.search(r'id="problem-type">binary<', part.text)
    assert "2 classes" in text or "two" in text, text
    assert "<svg" in part.text and "Class balance" in text
    assert "75.0%" in text  # 90 of 120 rows say "no"
    assert "roc_auc (default)" in text
    assert "rmse" not in text  # not a metric of binary problems
    assert "Leave empty for" in text  # the automatic budget with its reason
    # The target is no feature; the columns list keeps the detected drops with their reasons.
    assert 'name="col_4"' not in part.text and 'name="col_0"' in part.text
    # The column table comes along, out of band, with the target marked.
    table = part.text.split('id="column-table" hx-swap-oob="true"')[1]
    assert "the target" in text_of(table.split("churned", 1)[1].split("</tr>")[0])

    numeric = client.get(f"/datasets/{dataset_id}/target", params={"target": "spend"})
    assert re.search(r'id="problem-type">regression<', numeric.text)
    assert "rmse (default)" in text_of(numeric.text) and "roc_auc" not in numeric.text
    assert "Distribution" in numeric.text and "<svg" in numeric.text

    unusable = client.get(f"/datasets/{dataset_id}/target", params={"target": "flat"})
    assert unusable.status_code == 200
    assert "target-problem" in unusable.text

    kept = client.get(
        f"/datasets/{dataset_id}/target",
        params={"target": "churned", "metric": "f1", "time_budget": "30", "col_0": "include"},
    )
    assert re.search(r'<option value="f1" selected', kept.text)
    assert 'value="30"' in kept.text
    assert re.search(r'<option value="include" selected', kept.text)
    assert "kept because you included it" not in kept.text or "customer_id" in kept.text


def test_a_chosen_problem_type_is_checked_and_narrows_the_metrics(client: TestClient) -> None:
    dataset_id = upload(client, churn_csv())
    url = f"/datasets/{dataset_id}/target"
    chosen = client.get(url, params={"target": "churned", "problem_type": "classification"})
    assert re.search(r'id="problem-type">binary<', chosen.text)
    assert re.search(r'<option value="classification" selected', chosen.text)
    impossible = client.get(url, params={"target": "plan", "problem_type": "regression"})
    assert "target-problem" in impossible.text
    page = client.get(f"/datasets/{dataset_id}", headers=HTML)
    form = {
        "csrf_token": csrf_of(page.text),
        "target": "plan",
        "problem_type": "regression",
        "estimators": "lgbm",
    }
    answer = client.post(f"/datasets/{dataset_id}/jobs", data=form, follow_redirects=False)
    assert answer.status_code == 422
    assert re.search(r'id="problem-problem_type">[^<]+<', answer.text)


def test_bad_options_are_shown_beside_their_fields(client: TestClient) -> None:
    dataset_id = upload(client, churn_csv())
    page = client.get(f"/datasets/{dataset_id}", headers=HTML)
    form = {
        "csrf_token": csrf_of(page.text),
        "target": "churned",
        "metric": "rmse",
        "time_budget": "1",
        "seed": "abc",
        "tags": "x" * 60,
        "estimators": "lgbm",
    }
    answer = client.post(f"/datasets/{dataset_id}/jobs", data=form, follow_redirects=False)
    assert answer.status_code == 422
    for field_name, words in (
        ("metric", "not available for binary"),
        ("time_budget", "out of range"),
        ("seed", "whole number"),
        ("tags", "characters long"),
    ):
        match = re.search(rf'id="problem-{field_name}">([^<]*)<', answer.text)
        assert match and words in html.unescape(match.group(1)), field_name
    # What was typed is kept.
    assert 'value="abc"' in answer.text and re.search(
        r'<option value="churned" selected', answer.text
    )
    assert not runner_of_ctx(client).submitted


def runner_of_ctx(client: TestClient) -> Any:
    return runner_of(client.app.state.ctx)  # type: ignore[attr-defined]


def test_start_creates_the_job_and_redirects_to_it(client: TestClient) -> None:
    dataset_id = upload(client, churn_csv())
    page = client.get(f"/datasets/{dataset_id}", headers=HTML)
    form = {
        "csrf_token": csrf_of(page.text),
        "target": "churned",
        "time_budget": "12",
        "col_0": "include",
        "col_2": "exclude",
        "estimators": ["lgbm", "rf"],
        "seed": "7",
        "tags": "web, first",
    }
    answer = client.post(f"/datasets/{dataset_id}/jobs", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    job_id = answer.headers["location"].removeprefix("/jobs/")
    job = client.get(f"/api/jobs/{job_id}").json()
    spec = job["spec"]
    assert spec["target"] == "churned" and spec["time_budget"] == 12
    assert spec["time_budget_reason"] == SET_BY_USER
    assert spec["include"] == ["customer_id"] and spec["exclude"] == ["monthly"]
    assert spec["estimators"] == ["lgbm", "rf"] and spec["seed"] == 7
    assert job["tags"] == ["web", "first"]
    assert runner_of_ctx(client).submitted == [job_id]


def test_forms_without_the_csrf_token_are_refused(client: TestClient) -> None:
    dataset_id = upload(client, churn_csv())
    answer = client.post(f"/datasets/{dataset_id}/jobs", data={"target": "churned"}, headers=HTML)
    assert answer.status_code == 403
    answer = client.post(f"/datasets/{dataset_id}/delete", data={}, headers=HTML)
    assert answer.status_code == 403
    assert client.get(f"/api/datasets/{dataset_id}").status_code == 200


def test_delete_asks_about_jobs_then_deletes(client: TestClient) -> None:
    dataset_id = upload(client, churn_csv())
    token = csrf_of(client.get(f"/datasets/{dataset_id}", headers=HTML).text)
    started = client.post(
        f"/datasets/{dataset_id}/jobs",
        data={"csrf_token": token, "target": "churned", "estimators": "lgbm"},
        follow_redirects=False,
    )
    assert started.status_code == 303
    page = client.get(f"/datasets/{dataset_id}", headers=HTML)
    assert 'id="delete-force"' in page.text
    refused = client.post(f"/datasets/{dataset_id}/delete", data={"csrf_token": token})
    assert refused.status_code == 409
    assert "is used by 1 job(s)" in text_of(refused.text)
    done = client.post(
        f"/datasets/{dataset_id}/delete",
        data={"csrf_token": token, "force": "yes"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert client.get(f"/api/datasets/{dataset_id}").status_code == 404


def test_hostile_names_are_escaped_in_table_selects_and_partial(client: TestClient) -> None:
    dataset_id = upload(client, hostile_csv(), name="hostile.csv")
    page = client.get(f"/datasets/{dataset_id}", headers=HTML)
    assert "<script>alert" not in page.text and "<b>bold</b>" not in page.text
    assert "&lt;script&gt;alert(&#34;c&#34;)&lt;/script&gt;" in page.text
    part = client.get(f"/datasets/{dataset_id}/target", params={"target": HOSTILE_COLUMNS[0]})
    assert part.status_code == 200
    assert (
        "<script>" not in part.text and "<b>bold</b>" not in part.text and "<img" not in part.text
    )


def test_unknown_dataset_is_a_styled_404(client: TestClient) -> None:
    answer = client.get("/datasets/ds_0000000000000000", headers=HTML)
    assert answer.status_code == 404 and "<html" in answer.text
    part = client.get("/datasets/ds_0000000000000000/target", params={"target": "x"}, headers=HTML)
    assert part.status_code == 404


Shoot = Callable[[Any, str], None]


# -- in Chromium, against `tabpilot serve` ------------------------------------------------------


@pytest.fixture
def expect_() -> Any:
    sync_api = pytest.importorskip("playwright.sync_api")
    return sync_api.expect


def upload_in_browser(page: Any, server: str, path: Path) -> str:
    page.goto(server + "/")
    page.locator("#upload-file").set_input_files(str(path))
    page.wait_for_url(re.compile(r"/datasets/ds_[0-9a-f]+$"))
    return str(page.url.rsplit("/", 1)[-1])


def test_browser_choose_target_bad_option_then_start(
    page: Any, server: str, tmp_path: Path, shoot: Shoot, expect_: Any
) -> None:
    path = tmp_path / "churn.csv"
    path.write_text(churn_csv())
    upload_in_browser(page, server, path)
    names = page.locator("#dataset-column-table tbody th").all_inner_texts()
    assert names == ["customer_id", "plan", "monthly", "flat", "churned", "spend"]
    expect_(page.locator("#dataset-column-table tbody tr").first).to_contain_text("dropped")
    expect_(page.locator("#eda-link")).to_have_attribute("target", "_blank")

    page.get_by_label("Column to predict (target)").select_option("churned")
    expect_(page.locator("#problem-type")).to_have_text("binary")
    expect_(page.locator("#problem-reason")).to_contain_text("2 classes")
    expect_(page.locator("#target-chart svg")).to_be_visible()
    expect_(page.get_by_label("Metric to optimise")).to_contain_text("roc_auc (default)")
    expect_(page.locator("#budget-hint")).to_contain_text("Leave empty for")
    row = page.locator("#dataset-column-table tbody tr", has_text="churned")
    expect_(row.locator("td").last).to_have_text("the target")
    shoot(page, "dataset")
    page.set_viewport_size({"width": 700, "height": 900})  # half a laptop screen
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, "dataset-700px")
    page.set_viewport_size({"width": 1280, "height": 800})

    # A column choice refreshes the panel and the table; focus stays on the select.
    page.locator("#col_0").focus()
    page.keyboard.press("ArrowDown")  # a keyboard user's change: automatic -> force in
    first = page.locator("#dataset-column-table tbody tr").first
    expect_(first.locator("td").last).to_contain_text("kept because you included it")
    expect_(page.locator("#col_0")).to_be_focused()
    expect_(page.locator("#col_0")).to_have_value("include")
    # The column table is swapped in out of band, before the panel holding the select: wait
    # for htmx to finish, or the next change comes from a select about to be replaced (htmx
    # drops the answer to a request whose element has left the page).
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )
    page.get_by_label("Use of column customer_id").select_option("auto")
    expect_(first.locator("td").last).to_contain_text("dropped")

    # The EDA report, embedded in a sandboxed frame.
    page.get_by_text("Show it here").click()
    report = page.frame_locator(".eda-embed iframe")
    expect_(report.locator("h1").first).to_be_visible(timeout=60_000)

    page.get_by_label("Time budget (seconds)").fill("1")
    page.get_by_role("button", name="Start training").click()
    message = page.locator("#problem-time_budget")
    expect_(message).to_contain_text("out of range")
    # Beside its field: in the same field group as the input, which points at it.
    group = page.locator(".field", has=page.locator("#time_budget"))
    expect_(group.locator("#problem-time_budget")).to_be_visible()
    expect_(page.locator("#time_budget")).to_have_attribute(
        "aria-describedby", "problem-time_budget"
    )
    expect_(page.locator("#target")).to_have_value("churned")
    shoot(page, "dataset-bad-option")

    page.get_by_label("Time budget (seconds)").fill("5")
    for label in ("XGBoost", "random forest", "extra trees", "linear model"):
        page.get_by_label(label).uncheck()
    page.get_by_label("Tags (comma-separated)").fill("browser")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"/jobs/job_[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[-1]
    job = page.evaluate(f"fetch('/api/jobs/{job_id}').then(r => r.json())")
    assert job["spec"]["target"] == "churned" and job["spec"]["estimators"] == ["lgbm"]
    assert job["tags"] == ["browser"]
    # Free the test server's one worker: nothing here needs the model.
    httpx.post(f"{server}/api/jobs/{job_id}/cancel", timeout=10)


def test_browser_hostile_column_names_are_text_in_table_and_selects(
    page: Any, server: str, tmp_path: Path, shoot: Shoot, expect_: Any
) -> None:
    path = tmp_path / "hostile.csv"
    path.write_text(hostile_csv())
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    upload_in_browser(page, server, path)
    assert page.locator("#dataset-column-table tbody th").all_inner_texts() == HOSTILE_COLUMNS
    options = page.locator("#target option").all_inner_texts()[1:]
    assert options == HOSTILE_COLUMNS
    assert page.locator("#target option").nth(1).get_attribute("value") == HOSTILE_COLUMNS[0]
    page.locator("#target").select_option(HOSTILE_COLUMNS[0])
    expect_(page.locator("#target-summary h3")).to_contain_text(HOSTILE_COLUMNS[0])
    choice_names = page.locator("#column-choice-table tbody th").all_inner_texts()
    assert choice_names == HOSTILE_COLUMNS
    assert page.locator("main b, main img, script:not([src])").count() == 0
    assert dialogs == []
    shoot(page, "dataset-hostile-target")
