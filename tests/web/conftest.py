"""Browser test harness: a real `tabpilot serve` and Debian's Chromium driven by Playwright.

Fixtures:
- `server` (session): a `tabpilot serve` in local mode on a free loopback port with its own data
  directory; yields its base URL. `token_server` (session): the same with TABPILOT_AUTH=token
  and one user; yields `TokenServer(url, token)`.
- `browser` (session): Chromium at /usr/bin/chromium (or $TABPILOT_CHROMIUM), `--no-sandbox`
  when running as root. Without Chromium or Playwright the browser tests skip, saying how to
  install them (`make test` installs Chromium with apt when it runs as root).
- `page`: a fresh browser context (no cookies, empty localStorage) and page per test, light
  colour scheme, 1280x800. Any Content-Security-Policy violation logged on it fails the test.
- `shoot(page, name)`: saves `<name>-light.png` and `<name>-dark.png` under
  $TABPILOT_SCREENSHOTS or tests/web/screenshots/ (ignored by git) for a reviewer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import servers
from tests.servers import free_port, tabpilot_command

CHROMIUM = os.environ.get("TABPILOT_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(
    os.environ.get("TABPILOT_SCREENSHOTS") or Path(__file__).resolve().parent / "screenshots"
)
MAX_UPLOAD_MB = 2  # small, so a "too large" upload is quick to make
INSTALL_HINT = (
    "install it with: apt-get update && apt-get install -y chromium "
    "(make test does this when it runs as root), or point TABPILOT_CHROMIUM at a Chromium"
)


def server_environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """The shared test-server environment with a small upload limit."""
    return servers.server_environment(data_dir, **{"max_upload_mb": str(MAX_UPLOAD_MB), **settings})


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def start_server(root: Path, env: dict[str, str]) -> RunningServer:
    port = free_port()
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*tabpilot_command(), "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"tabpilot serve exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return RunningServer(url, process, log_path)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("tabpilot serve did not answer /health within 60 s")
        time.sleep(0.2)


def stop_server(server: RunningServer) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("web-server")
    running = start_server(root, server_environment(root / "data"))
    try:
        yield running.url
    finally:
        stop_server(running)


@dataclass(frozen=True)
class TokenServer:
    url: str
    token: str


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    root = tmp_path_factory.mktemp("web-token-server")
    env = server_environment(root / "data", auth="token")
    created = subprocess.run(
        [*tabpilot_command(), "users", "create", "alice"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.strip().splitlines()[-1]
    running = start_server(root, env)
    try:
        yield TokenServer(running.url, token)
    finally:
        stop_server(running)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -e '.[dev]'")
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium is not at {CHROMIUM}; {INSTALL_HINT}")
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    context.set_default_timeout(15_000)
    opened = context.new_page()
    violations: list[str] = []
    opened.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    try:
        yield opened
    finally:
        context.close()
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"


@pytest.fixture
def shoot() -> Callable[[Any, str], None]:
    """`shoot(page, "home")`: the page in light and in dark mode, as PNG files."""

    def save(page: Any, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        before = page.evaluate("document.documentElement.getAttribute('data-theme')")
        for theme in ("light", "dark"):
            page.evaluate(f"document.documentElement.setAttribute('data-theme', '{theme}')")
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{theme}.png"), full_page=True)
        if before is None:
            page.evaluate("document.documentElement.removeAttribute('data-theme')")
        else:
            page.evaluate(f"document.documentElement.setAttribute('data-theme', '{before}')")

    return save
