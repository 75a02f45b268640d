"""Take the README's web UI screenshots: a real `tabpilot serve` walked through like a new user.

Run from the repository root:

    .venv/bin/python docs/screenshots/take.py [--out docs/screenshots] [--budget 15]

It writes a churn-like CSV (made here from a fixed seed; nothing is downloaded), starts
`tabpilot serve` on a free loopback port with a temporary data directory, and drives Debian's
Chromium (/usr/bin/chromium, or $TABPILOT_CHROMIUM) with Playwright through the pages: upload on
the home page (the real file input), choose the target on the dataset page, start training,
watch the live progress, read the results, try a prediction, train a second job, then History
and Compare; a few pages again in dark mode. Each page is saved as a small JPEG.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("TABPILOT_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1200, "height": 800}
QUALITY = 70  # JPEG quality: text stays readable, a page stays well under 120 KB
TRAINING_TIMEOUT_MS = 300_000  # two shared cores can make a 15 s budget take a few minutes


def churn_frame(rows: int = 1500, seed: int = 7) -> pd.DataFrame:
    """A telecom-churn-like table: an id, categories, numbers, a date and a yes/no target."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "standard", "premium"], rows, p=[0.5, 0.3, 0.2])
    contract = rng.choice(["monthly", "yearly", "two-year"], rows, p=[0.55, 0.3, 0.15])
    region = rng.choice(["north", "south", "east", "west"], rows)
    tenure = rng.integers(1, 72, rows)
    base = pd.Series(plan).map({"basic": 25.0, "standard": 55.0, "premium": 90.0}).to_numpy()
    monthly = np.round(np.clip(base + rng.normal(0, 8, rows), 10, None), 2)
    calls = rng.poisson(1.5, rows)
    signup = pd.Timestamp("2024-12-01") - pd.to_timedelta(tenure * 30, unit="D")
    risk = (
        -1.0
        + 1.4 * (contract == "monthly")
        - 0.04 * tenure
        + 0.45 * calls
        + 0.01 * (monthly - 50)
        + rng.normal(0, 0.8, rows)
    )
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{100000 + i}" for i in range(rows)],
            "plan": plan,
            "contract": contract,
            "region": region,
            "tenure_months": tenure,
            "monthly_charge": monthly,
            "support_calls": calls,
            "signup_date": signup.strftime("%Y-%m-%d"),
            "churned": np.where(risk > 0, "yes", "no"),
        }
    )
    # A few blanks, as real exports have.
    frame.loc[rng.random(rows) < 0.03, "monthly_charge"] = np.nan
    return frame


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(work: Path) -> Iterator[str]:
    """`tabpilot serve` in local mode with its own data directory; yields its address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABPILOT_")}
    env["TABPILOT_DATA_DIR"] = str(work / "data")
    script = Path(sys.executable).parent / "tabpilot"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "tabpilot.cli"]
    port = free_port()
    log_path = work / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"tabpilot serve exited early:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("tabpilot serve did not answer /health within 60 s")
            time.sleep(0.2)
        yield url
    except BaseException:
        # Say why a page did not come: the server's own log (a failed job names its error).
        print(f"--- tail of the server log ---\n{log_path.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Camera:
    """Saves the viewport (or one element) as `<out>/<name>.jpg` and says how big it is."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)

    def shoot(self, page: Page, name: str, element: Any = None) -> None:
        path = self.out / f"{name}.jpg"
        # Let charts and fonts settle; keep the caret and hover effects out of the picture.
        page.wait_for_timeout(300)
        page.mouse.move(0, 0)
        target = element if element is not None else page
        target.screenshot(path=str(path), type="jpeg", quality=QUALITY)
        print(
            f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
            f"{path.stat().st_size // 1024} KB"
        )


def scroll_to(page: Page, selector: str, margin: int = 16) -> None:
    """Scroll so that the element starts near the top of the viewport."""
    page.locator(selector).scroll_into_view_if_needed()
    top = page.locator(selector).evaluate("el => el.getBoundingClientRect().top")
    page.mouse.wheel(0, top - margin)
    page.wait_for_timeout(200)


def wait_until(page: Page, expression: str, timeout_ms: int) -> None:
    """Poll a JavaScript expression (the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout_ms} ms: {expression}")
        page.wait_for_timeout(250)


def set_theme(page: Page, theme: str) -> None:
    """Use the header's toggle, as a user would (it is remembered for the next pages)."""
    toggle = page.get_by_role("button", name="Dark mode")
    pressed = toggle.get_attribute("aria-pressed") == "true"
    if pressed != (theme == "dark"):
        toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true" if theme == "dark" else "false")


def configure_and_start(page: Page, budget: int, tags: str, only_lgbm: bool = False) -> str:
    """On the dataset page: choose the target and options, press Start; returns the job id."""
    page.get_by_label("Column to predict (target)").select_option("churned")
    expect(page.locator("#problem-type")).to_have_text("binary")
    page.get_by_label("Time budget (seconds)").fill(str(budget))
    if only_lgbm:
        for label in ("XGBoost", "random forest", "extra trees", "linear model"):
            page.get_by_label(label).uncheck()
    page.get_by_label("Tags (comma-separated)").fill(tags)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"/jobs/job_[0-9a-f]+$"))
    return page.url.rsplit("/", 1)[-1]


def tour(page: Page, url: str, csv: Path, camera: Camera, budget: int) -> None:
    page.goto(url + "/")
    camera.shoot(page, "home")

    page.locator("#upload-file").set_input_files(str(csv))
    page.wait_for_url(re.compile(r"/datasets/ds_[0-9a-f]+$"))
    dataset_url = page.url
    expect(page.locator("#dataset-rows")).to_have_text("1,500")
    camera.shoot(page, "dataset")
    page.get_by_label("Column to predict (target)").select_option("churned")
    expect(page.locator("#target-chart svg")).to_be_visible()
    scroll_to(page, "#train-heading")
    camera.shoot(page, "dataset-target")

    first = configure_and_start(page, budget, "tour")
    expect(page.locator("#training")).not_to_have_attribute(
        "data-updates", "0", timeout=TRAINING_TIMEOUT_MS
    )
    # Wait until most of the budget is used, so the best-score chart has a curve to show.
    wait_until(
        page,
        "(() => { const bar = document.getElementById('budget-bar');"
        " return !bar || bar.value >= 0.7 * bar.max; })()",
        TRAINING_TIMEOUT_MS,
    )
    if page.locator("#progress-heading").count():
        scroll_to(page, "#job-heading")
        page.mouse.wheel(0, 250)  # the progress panel and the chart, below the job's facts
        camera.shoot(page, "training")
    else:
        print("training.jpg not taken: the job ended before 70% of its budget", file=sys.stderr)

    expect(page.get_by_role("heading", name="Results: predict churned")).to_be_visible(
        timeout=TRAINING_TIMEOUT_MS
    )
    # The page reloads into the results keeping the scroll position: back to the top.
    page.mouse.wheel(0, -10_000)
    camera.shoot(page, "results")
    scroll_to(page, "#charts-heading")
    camera.shoot(page, "results-charts")

    page.get_by_role("link", name="Try predictions").click()
    expect(page.locator("#predict-label")).to_be_visible()
    page.get_by_label(re.compile(r"^contract\b")).select_option("two-year")
    expect(page.locator("#predict-changes")).to_contain_text("contract")
    camera.shoot(page, "predict")

    # A second job on the same data, LightGBM only with a shorter budget, to compare.
    page.goto(dataset_url)
    second = configure_and_start(page, max(5, budget // 2), "tour, lgbm only", only_lgbm=True)
    expect(page.get_by_role("heading", name="Results: predict churned")).to_be_visible(
        timeout=TRAINING_TIMEOUT_MS
    )

    page.goto(url + "/jobs")
    camera.shoot(page, "history")
    for job_id in (first, second):
        page.get_by_label(f"Select job {job_id} for comparison").check()
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_url(re.compile(r"/compare\?jobs="))
    camera.shoot(page, "compare")

    set_theme(page, "dark")
    camera.shoot(page, "compare-dark")
    page.goto(f"{url}/jobs/{first}")
    camera.shoot(page, "results-dark")
    page.goto(url + "/")
    camera.shoot(page, "home-dark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--budget", type=int, default=15, help="first job's time budget (s)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tabpilot-tour-") as temp:
        work = Path(temp)
        csv = work / "churn.csv"
        churn_frame().to_csv(csv, index=False)
        with serve(work) as url, sync_playwright() as playwright:
            args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
            context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
            context.set_default_timeout(30_000)
            try:
                tour(context.new_page(), url, csv, Camera(options.out), options.budget)
            finally:
                context.close()
                browser.close()
    total = sum(p.stat().st_size for p in options.out.glob("*.jpg"))
    print(f"all: {total // 1024} KB")


if __name__ == "__main__":
    main()
