"""The predict page in a real Chromium against a real `tabpilot serve` (see conftest.py).

One model is trained per module through the API (upload, job with a 5 s budget, wait), on a
small CSV whose categories include markup and quotes. The tests check the playground against
the JSON API (same service, same numbers), the what-if difference, the batch download, and
run the snippets as printed: the Python one on the downloaded model.onnx, curl where installed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tabpilot.engine.card import ModelCard
from tabpilot.web.pages.predict import format_value
from tabpilot.web.pages.predict_snippets import build_snippets
from tabpilot.web.render import format_number
from tests.web.conftest import TokenServer

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect

Shoot = Callable[[Any, str], None]

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"
QUOTED = 'O\'Brien "gold", & co'
PLANS = ["basic", "pro", HOSTILE, QUOTED]

# Records the batch form's upload progress events with what its bar showed at that moment.
RECORD_BATCH_PROGRESS = """
(() => {
  window.__batchProgress = [];
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    this.upload.addEventListener("progress", (event) => {
      const box = document.getElementById("batch-progress");
      window.__batchProgress.push({
        loaded: event.loaded, total: event.total,
        bar: document.getElementById("batch-bar").value, visible: box ? !box.hidden : false,
        text: document.getElementById("batch-status").textContent,
      });
    });
    return send.call(this, body);
  };
})();
"""


def churn_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        plan = PLANS[int(rng.integers(0, len(PLANS)))]
        age = int(rng.integers(18, 80))
        member = bool(rng.integers(0, 2))
        signal = (age - 50) / 15 + (1.5 if plan in (HOSTILE, "pro") else -0.5) + member
        rows.append(
            {
                "age": age,
                "income": round(float(rng.uniform(1000, 9000)), 2),
                "plan": plan,
                "member": "true" if member else "false",
                "joined": f"2022-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 28)):02d}",
                "churn": "yes" if signal + rng.normal(scale=0.7) > 0.5 else "no",
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], *, drop: tuple[str, ...] = ()) -> Path:
    with path.open("w", newline="") as handle:
        names = [k for k in rows[0] if k not in drop]
        writer = csv.DictWriter(handle, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass(frozen=True)
class Trained:
    server: str
    model_id: str
    card: ModelCard

    @property
    def page_url(self) -> str:
        return f"{self.server}/models/{self.model_id}/predict"

    def api_predict(self, row: dict[str, Any]) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.server}/api/models/{self.model_id}/predict", json={"rows": [row]}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()


def train(server: str, path: Path, target: str, token: str | None = None) -> Trained:
    """Upload `path`, train a model of `target` with a 5 s budget through the API, wait."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with path.open("rb") as handle:
        uploaded = httpx.post(
            f"{server}/api/datasets", files={"file": handle}, headers=headers, timeout=120
        )
    assert uploaded.status_code == 201, uploaded.text
    job = httpx.post(
        f"{server}/api/jobs",
        json={"dataset_id": uploaded.json()["id"], "target": target, "time_budget": 5},
        headers=headers,
        timeout=30,
    )
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    deadline = time.monotonic() + 240
    while True:
        state = httpx.get(f"{server}/api/jobs/{job_id}", headers=headers, timeout=30).json()
        if state["status"] == "succeeded":
            break
        assert state["status"] in ("queued", "running"), state
        assert time.monotonic() < deadline, f"training did not finish: {state}"
        time.sleep(0.5)
    model_id = state["model_id"]
    card = httpx.get(f"{server}/api/models/{model_id}", headers=headers, timeout=30).json()
    return Trained(server, model_id, ModelCard.from_dict(card["card"]))


@pytest.fixture(scope="module")
def trained(server: str, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A binary model of churn, whose plan categories include markup and quotes."""
    path = write_csv(tmp_path_factory.mktemp("predict-page") / "churn.csv", churn_rows(300, 1))
    return train(server, path, "churn")


def form_row(page: Any, card: ModelCard) -> dict[str, Any]:
    """The row the playground's form holds now, as a JSON client would send it."""
    row: dict[str, Any] = {}
    for index, feature in enumerate(card.features):
        value = page.locator(f"#predict-f{index}").input_value()
        if feature.kind == "numeric":
            row[feature.name] = float(value) if value else None
        else:
            row[feature.name] = value or None
    return row


def shown_probabilities(page: Any) -> dict[str, float]:
    rows = page.locator("#predict-probabilities tbody tr")
    out = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        label = row.locator("th").inner_text()
        out[label] = float(row.locator(".proba-value").inner_text().rstrip("%")) / 100
    return out


def assert_matches_api(page: Any, trained: Trained) -> dict[str, Any]:
    answer = trained.api_predict(form_row(page, trained.card))
    expect(page.locator("#predict-label")).to_have_text(str(answer["predictions"][0]))
    shown = shown_probabilities(page)
    expected = answer["probabilities"][0]
    assert shown.keys() == expected.keys()
    for label, probability in expected.items():
        assert shown[label] == pytest.approx(probability, abs=0.0006)
    return answer


def field_index(card: ModelCard, name: str) -> int:
    return card.feature_names.index(name)


# -- the playground ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_playground_shows_inputs_from_the_card(page: Any, trained: Trained, shoot: Shoot):
    card = trained.card
    assert set(card.feature_names) == {"age", "income", "plan", "member", "joined"}
    response = page.goto(trained.page_url)
    assert response.status == 200
    expect(page.get_by_role("heading", name="Predict churn")).to_be_visible()
    for feature in card.features:
        control = page.get_by_label(re.compile("^" + re.escape(feature.name) + r"\b"))
        expect(control).to_have_count(1)
    plan = page.locator(f"#predict-f{field_index(card, 'plan')}")
    assert plan.evaluate("e => e.tagName") == "SELECT"
    options = plan.locator("option").all_inner_texts()
    assert set(PLANS) <= set(options) and "(missing)" in options
    member = page.locator(f"#predict-f{field_index(card, 'member')}")
    assert member.evaluate("e => e.tagName") == "SELECT"
    assert {o.lower() for o in member.locator("option").all_inner_texts()} >= {"true", "false"}
    joined = page.locator(f"#predict-f{field_index(card, 'joined')}")
    expect(joined).to_have_attribute("type", "date")
    for name in ("age", "income"):
        index = field_index(card, name)
        feature = card.features[index]
        expect(page.locator(f"#predict-f{index}")).to_have_attribute("type", "number")
        hint = page.locator(f"#predict-f{index}-hint")
        low = float(hint.locator(".range-min").inner_text())
        high = float(hint.locator(".range-max").inner_text())
        assert low == pytest.approx(feature.details["min"], rel=1e-5)
        assert high == pytest.approx(feature.details["max"], rel=1e-5)
    # The first result is there without touching anything, and is the API's.
    assert_matches_api(page, trained)
    assert page.locator("#predict-probabilities .proba-fill").count() == 2
    shoot(page, "predict")
    # Half a laptop screen: one column, nothing wider than the window.
    page.set_viewport_size({"width": 700, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 700


@pytest.mark.slow
def test_changing_one_field_shows_the_new_result_and_the_difference(
    page: Any, trained: Trained, shoot: Shoot
):
    card = trained.card
    page.goto(trained.page_url)
    before = shown_probabilities(page)
    age = page.locator(f"#predict-f{field_index(card, 'age')}")
    old_age = age.input_value()
    age.fill("79")
    age.press("Tab")  # a change event: htmx posts the form
    changes = page.locator("#predict-changes")
    expect(changes).to_contain_text(f"age: {old_age} → 79")
    answer = assert_matches_api(page, trained)
    after = answer["probabilities"][0]
    deltas = page.locator("#predict-probabilities .proba-delta").all_inner_texts()
    expected = [f"{(after[k] - before[k]) * 100:+.1f} pts" for k in after]
    # The page compares with what it showed (the API's probabilities, unrounded).
    assert [float(d.split()[0]) for d in deltas] == pytest.approx(
        [float(e.split()[0]) for e in expected], abs=0.11
    )

    # A second change compares with the result just before it, not with the first one.
    plan = page.locator(f"#predict-f{field_index(card, 'plan')}")
    old_plan = plan.input_value()
    new_plan = "basic" if old_plan != "basic" else "pro"
    plan.select_option(new_plan)
    expect(changes).to_contain_text(f"plan: {old_plan} → {new_plan}")
    expect(changes).not_to_contain_text("age:")
    assert_matches_api(page, trained)

    # Outside the training range: predicted, with a note that the model extrapolates.
    age.fill("150")
    age.press("Tab")
    expect(page.locator("#predict-result")).to_contain_text("outside the training range")
    assert_matches_api(page, trained)
    shoot(page, "predict-what-if")

    # A value the model cannot read: the service's words, inline.
    income = page.locator(f"#predict-f{field_index(card, 'income')}")
    income.evaluate("e => { e.type = 'text'; }")
    income.fill("lots")
    income.press("Tab")
    expect(page.locator("#predict-error")).to_contain_text('Column "income" expects numbers')


@pytest.mark.slow
def test_a_hostile_category_value_renders_as_text(page: Any, trained: Trained):
    card = trained.card
    page.goto(trained.page_url)
    plan = page.locator(f"#predict-f{field_index(card, 'plan')}")
    previous = plan.input_value()
    plan.select_option(HOSTILE)
    expect(page.locator("#predict-changes")).to_contain_text(f"plan: {previous} → {HOSTILE}")
    assert_matches_api(page, trained)
    plan.select_option(QUOTED)
    expect(page.locator("#predict-changes")).to_contain_text(f"plan: {HOSTILE} → {QUOTED}")
    assert_matches_api(page, trained)
    assert page.locator("main img").count() == 0
    assert page.title() != "pwned"
    # The snippets follow the form, the values as text in them too.
    plan.select_option(HOSTILE)
    expect(page.locator("#snippet-python")).to_contain_text(repr(HOSTILE))
    expect(page.locator("#snippet-curl-csv")).to_contain_text(HOSTILE.replace('"', '""'))
    assert page.locator("main img").count() == 0
    assert page.title() != "pwned"


# -- batch ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_batch_upload_gives_a_csv_download_with_one_row_per_input_row(
    page: Any, trained: Trained, tmp_path: Path, shoot: Shoot
):
    rows = churn_rows(20_000, 2)  # about 700 KB: upload progress events are seen
    path = write_csv(tmp_path / "new customers.csv", rows, drop=("churn",))
    page.add_init_script(RECORD_BATCH_PROGRESS)
    page.goto(trained.page_url)
    page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    page.get_by_role("button", name="Predict file").click()
    link = page.get_by_role("link", name="Download predictions")
    expect(link).to_be_visible(timeout=60_000)
    expect(page.locator("#batch-summary")).to_contain_text("20,000 rows predicted")
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == f"{trained.model_id}-predictions.csv"
    saved = tmp_path / "predictions.csv"
    download.save_as(saved)
    got = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert len(got) == len(rows)
    assert list(got[0]) == ["prediction", "proba_no", "proba_yes"]
    with path.open("rb") as handle:
        direct = httpx.post(
            f"{trained.server}/api/models/{trained.model_id}/predict.csv",
            files={"file": handle},
            timeout=120,
        )
    assert direct.status_code == 200
    assert saved.read_bytes() == direct.content  # the same service's very bytes

    progress = page.evaluate("window.__batchProgress")
    assert progress, "no upload progress event was seen"
    last = progress[-1]
    assert last["visible"] and last["loaded"] == last["total"] > path.stat().st_size
    assert last["bar"] == 100 and "Uploading" in last["text"]
    shoot(page, "predict-batch")


@pytest.mark.slow
def test_a_bad_batch_file_shows_the_api_message(page: Any, trained: Trained, tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text("age,plan\n30,basic\n")
    with path.open("rb") as handle:
        answer = httpx.post(
            f"{trained.server}/api/models/{trained.model_id}/predict.csv",
            files={"file": handle},
            timeout=30,
        )
    assert answer.status_code == 422
    page.goto(trained.page_url)
    page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    page.get_by_role("button", name="Predict file").click()
    expect(page.locator("#batch-error")).to_have_text(answer.json()["error"]["message"])
    expect(page.locator("#batch-done")).to_be_hidden()


# -- snippets ------------------------------------------------------------------------------------


def copied_snippet(page: Any, server: str, snippet_id: str) -> str:
    """The snippet as its Copy button puts it on the clipboard."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    head = page.locator(f"#{snippet_id}").locator("xpath=..")
    head.get_by_role("button", name="Copy").click()
    expect(head.get_by_role("button", name="Copied")).to_be_visible()
    text = str(page.evaluate("navigator.clipboard.readText()"))
    assert text == page.locator(f"#{snippet_id}").text_content()
    return text


@pytest.mark.slow
def test_the_python_snippet_runs_as_printed_on_the_downloaded_model(
    page: Any, trained: Trained, tmp_path: Path
):
    page.goto(trained.page_url)
    # The snippet follows the form: predict a changed row, with the hostile category.
    page.locator(f"#predict-f{field_index(trained.card, 'plan')}").select_option(HOSTILE)
    expect(page.locator("#snippet-python")).to_contain_text(repr(HOSTILE))
    code = copied_snippet(page, trained.server, "snippet-python")
    download = re.search(r"^#\s+(curl -sS -o model\.onnx .*)$", code, re.M)
    assert download, code
    url = download.group(1).split()[-1].strip("'")
    assert url == f"{trained.server}/api/models/{trained.model_id}/files/model.onnx"
    onnx = httpx.get(url, timeout=60)
    assert onnx.status_code == 200
    (tmp_path / "model.onnx").write_bytes(onnx.content)
    (tmp_path / "snippet.py").write_text(code)
    ran = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    printed = dict(re.findall(r"^\s+(\w+): ([0-9.]+)$", ran.stdout, re.M))
    label = re.search(r"^prediction: (.*)$", ran.stdout, re.M)
    answer = trained.api_predict(form_row(page, trained.card))
    assert label and label.group(1) == answer["predictions"][0]
    for name, probability in answer["probabilities"][0].items():
        assert float(printed[name]) == pytest.approx(probability, abs=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_snippets_run_as_printed(page: Any, trained: Trained, tmp_path: Path):
    page.goto(trained.page_url)
    expected = trained.api_predict(form_row(page, trained.card))
    code = copied_snippet(page, trained.server, "snippet-curl-json")
    ran = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["predictions"] == expected["predictions"]
    assert answer["probabilities"] == expected["probabilities"]

    code = page.locator("#snippet-curl-csv").text_content()
    ran = subprocess.run(
        ["bash", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    got = list(csv.DictReader(io.StringIO((tmp_path / "predictions.csv").read_text())))
    assert [r["prediction"] for r in got] == expected["predictions"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_deployed_model_has_a_deploy_key_snippet_that_works(page: Any, trained: Trained):
    api = f"{trained.server}/api/models/{trained.model_id}"
    key = httpx.post(f"{api}/deploy", timeout=30).json()["key"]
    try:
        page.goto(trained.page_url)
        code = page.locator("#snippet-curl-deploy").text_content()
        assert "Authorization: Bearer $TABPILOT_DEPLOY_KEY" in code
        env = {**os.environ, "TABPILOT_DEPLOY_KEY": key}
        ran = subprocess.run(["bash", "-c", code], env=env, capture_output=True, text=True)
        assert ran.returncode == 0 and '"predictions"' in ran.stdout, ran.stdout + ran.stderr
        # Any other key is refused, so the snippet really uses the key.
        env["TABPILOT_DEPLOY_KEY"] = "tpk_" + "x" * 43
        ran = subprocess.run(["bash", "-c", code], env=env, capture_output=True, text=True)
        assert '"predictions"' not in ran.stdout
    finally:
        httpx.post(f"{api}/undeploy", timeout=30)
    page.reload()
    expect(page.locator("#snippet-curl-deploy")).to_have_count(0)


@pytest.mark.slow
def test_a_regression_model_shows_the_value_and_its_change(
    page: Any, server: str, tmp_path: Path, shoot: Shoot
):
    rows = [
        {
            "age": r["age"],
            "plan": r["plan"],
            "spend": r["age"] * 10 + (50 if r["plan"] == "pro" else 0),
        }
        for r in churn_rows(200, 3)
    ]
    regression = train(server, write_csv(tmp_path / "spend.csv", rows), "spend")
    assert regression.card.problem_type == "regression"
    page.goto(regression.page_url)
    expect(page.locator("#predict-probabilities")).to_have_count(0)

    def value_matches() -> float:
        expected = regression.api_predict(form_row(page, regression.card))["predictions"][0]
        expect(page.locator("#predict-value")).to_have_text(format_value(expected))
        return float(expected)

    before = value_matches()
    age = page.locator(f"#predict-f{field_index(regression.card, 'age')}")
    age.fill("20")
    age.press("Tab")
    expect(page.locator("#predict-changes")).to_contain_text("age:")
    after = value_matches()
    expect(page.locator("#predict-delta")).to_have_text(
        f"{after - before:+,.4g} from {format_number(before)}"
    )
    shoot(page, "predict-regression")

    (tmp_path / "model.onnx").write_bytes(
        httpx.get(f"{server}/api/models/{regression.model_id}/files/model.onnx").content
    )
    (tmp_path / "snippet.py").write_text(page.locator("#snippet-python").text_content())
    ran = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    printed = re.search(r"^prediction: (.*)$", ran.stdout, re.M)
    assert printed and float(printed.group(1)) == pytest.approx(after, rel=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_token_mode_page_snippet_and_batch(page: Any, token_server: TokenServer, tmp_path: Path):
    rows = churn_rows(200, 4)
    model = train(
        token_server.url, write_csv(tmp_path / "t.csv", rows), "churn", token_server.token
    )
    page.goto(model.page_url)
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_label("API token").fill(token_server.token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(model.page_url)
    expect(page.locator("#predict-label")).to_have_count(1)

    # The snippet says where the token goes, and works with it there.
    code = page.locator("#snippet-curl-json").text_content()
    assert 'Authorization: Bearer $TABPILOT_TOKEN"' in code
    expect(page.locator("#snippets")).to_contain_text("export TABPILOT_TOKEN=")
    env = {**os.environ, "TABPILOT_TOKEN": token_server.token}
    ran = subprocess.run(["bash", "-c", code], env=env, capture_output=True, text=True)
    assert ran.returncode == 0 and '"predictions"' in ran.stdout, ran.stdout + ran.stderr
    env["TABPILOT_TOKEN"] = "tpu_wrong"
    ran = subprocess.run(["bash", "-c", code], env=env, capture_output=True, text=True)
    assert '"predictions"' not in ran.stdout

    # What-if and batch go through the login cookie (with the page's CSRF token).
    age = page.locator(f"#predict-f{field_index(model.card, 'age')}")
    age.fill("30")
    age.press("Tab")
    expect(page.locator("#predict-changes")).to_contain_text("age:")
    path = write_csv(tmp_path / "batch.csv", rows[:25], drop=("churn",))
    page.get_by_label("CSV file", exact=True).set_input_files(str(path))
    page.get_by_role("button", name="Predict file").click()
    expect(page.locator("#batch-summary")).to_contain_text("25 rows predicted")


def test_token_mode_snippets_say_where_the_token_goes():
    card = ModelCard.from_dict(
        {
            "target": "y",
            "problem_type": "regression",
            "features": [{"name": "x", "kind": "numeric"}],
            "inputs": [{"name": "x", "column": "x", "type": "float32"}],
        }
    )
    snippets = build_snippets(
        base_url="http://tabpilot.internal:8000",
        model_id="mdl_0123456789abcdef",
        card=card,
        row={"x": 1.5},
        token_mode=True,
        deployed=False,
    )
    by_id = {s.id: s for s in snippets}
    assert set(by_id) == {"snippet-curl-json", "snippet-curl-csv", "snippet-python"}
    for name in ("snippet-curl-json", "snippet-curl-csv"):
        assert 'Authorization: Bearer $TABPILOT_TOKEN"' in by_id[name].text
    assert "http://tabpilot.internal:8000/api/models/mdl_0123456789abcdef/predict" in (
        by_id["snippet-curl-json"].text
    )
    assert "export TABPILOT_TOKEN=" in by_id["snippet-curl-json"].note
    assert "Authorization: Bearer $TABPILOT_TOKEN" in by_id["snippet-python"].text


def test_page_without_a_browser_escapes_names_and_says_a_missing_onnx_inline(tmp_path: Path):
    """Fast (no training): a stored model whose model.onnx is missing, with hostile names."""
    from fastapi.testclient import TestClient

    from tabpilot.api.app import create_app
    from tabpilot.services.auth import local_owner
    from tabpilot.settings import load_settings
    from tests.factories import add_dataset, add_job, add_model

    column = '<script>alert("c")</script>'
    card = {
        "target": "<b>y</b>",
        "problem_type": "binary",
        "classes": ["no", "yes"],
        "features": [
            {"name": column, "kind": "categorical", "values": [HOSTILE, QUOTED]},
            {"name": "n", "kind": "numeric", "dtype": "int64", "min": 1.0, "max": 10.0},
            {"name": "when", "kind": "datetime", "has_time": True, "max": "2024-05-01 10:30:00"},
            {"name": "ok", "kind": "boolean", "values": ["False", "True"]},
            {"name": "note", "kind": "text"},
        ],
        "inputs": [{"name": column, "column": column, "type": "string"}],
    }
    settings = load_settings(data_dir=tmp_path / "data", runner_uri="inline://")
    with TestClient(create_app(settings=settings)) as client:
        store = client.app.state.ctx.metadata  # type: ignore[attr-defined]
        dataset = add_dataset(store, owner=local_owner(), filename="t.csv")
        model = add_model(store, add_job(store, dataset), card=card)
        answer = client.get(f"/models/{model.id}/predict", headers={"Accept": "text/html"})
    assert answer.status_code == 200
    text = answer.text
    assert "<script>alert" not in text and "<b>y</b>" not in text and "<img" not in text
    assert "&lt;script&gt;alert(&#34;c&#34;)&lt;/script&gt;" in text
    assert 'id="predict-f0"' in text and "&lt;img src=x" in text
    assert 'type="number" step="any" value="6"' in text  # the middle of 1..10, an integer
    assert 'type="datetime-local" value="2024-05-01T10:30"' in text
    assert 'id="predict-error"' in text and "has no model.onnx" in text
