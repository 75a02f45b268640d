"""The web UI in a real Chromium against a real `tabpilot serve` (see conftest.py).

Fast: nothing here trains a model. Each test saves screenshots of the pages it visits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import MAX_UPLOAD_MB, TokenServer

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect

Shoot = Callable[[Any, str], None]

# Records every upload progress event of the page's XMLHttpRequests in sessionStorage (which
# survives the move to the dataset page), with what the progress bar showed at that moment.
RECORD_PROGRESS = """
(() => {
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    this.upload.addEventListener("progress", (event) => {
      const seen = JSON.parse(sessionStorage.getItem("progress") || "[]");
      const bar = document.getElementById("upload-bar");
      const box = document.getElementById("upload-progress");
      seen.push({
        loaded: event.loaded, total: event.total, bar: bar ? bar.value : null,
        visible: box ? !box.hidden : false,
        text: (document.getElementById("upload-status") || {}).textContent || "",
      });
      sessionStorage.setItem("progress", JSON.stringify(seen));
    });
    return send.call(this, body);
  };
})();
"""


def numbers_csv(path: Path, rows: int) -> Path:
    lines = ["id,size,color,price"]
    lines += [f"{i},{i % 97},{('red', 'green', 'blue')[i % 3]},{i * 1.5:.2f}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def api_error(url: str, path: Path) -> str:
    """What the API answers for that file: the page must show these very words."""
    with path.open("rb") as handle:
        answer = httpx.post(f"{url}/api/datasets", files={"file": (path.name, handle)}, timeout=60)
    assert answer.status_code >= 400, answer.text
    return str(answer.json()["error"]["message"])


def upload_through_input(page: Any, path: Path) -> None:
    page.locator("#upload-file").set_input_files(str(path))


def test_home_renders_with_navigation_and_recent_lists(page: Any, server: str, shoot: Shoot):
    response = page.goto(server + "/")
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    expect(page.get_by_role("heading", name="Upload a CSV file")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Home", "History", "Compare"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    expect(nav.get_by_role("link", name="Home")).to_have_attribute("aria-current", "page")
    expect(page.get_by_label("Choose a file…")).to_have_attribute("type", "file")
    expect(page.get_by_role("heading", name="Recent datasets")).to_be_visible()
    expect(page.get_by_role("heading", name="Recent jobs")).to_be_visible()
    assert page.evaluate("typeof htmx") == "object", "the vendored htmx loaded"
    assert page.evaluate("htmx.config.allowEval") is False
    shoot(page, "home")


def test_upload_shows_progress_and_opens_the_dataset(
    page: Any, server: str, shoot: Shoot, tmp_path: Path
):
    csv = numbers_csv(tmp_path / "sales.csv", 20_000)  # about 500 KB
    page.add_init_script(RECORD_PROGRESS)
    page.goto(server + "/")
    upload_through_input(page, csv)
    page.wait_for_url(re.compile(r"/datasets/ds_[0-9a-f]+$"))
    expect(page.get_by_role("heading", name="sales")).to_be_visible()
    expect(page.locator("#dataset-rows")).to_have_text("20,000")
    expect(page.locator("#dataset-columns")).to_have_text("4")
    column_names = page.locator("#dataset-column-table tbody th").all_inner_texts()
    assert column_names == ["id", "size", "color", "price"]

    progress = page.evaluate("JSON.parse(sessionStorage.getItem('progress') || '[]')")
    assert progress, "no upload progress event was seen"
    last = progress[-1]
    assert last["loaded"] == last["total"] > csv.stat().st_size  # the file plus multipart
    assert last["visible"] and last["bar"] == 100
    assert re.search(r"KB of .*KB", last["text"]), last["text"]
    shoot(page, "dataset")

    page.goto(server + "/")
    expect(page.locator("#recent-datasets").get_by_role("link", name="sales")).to_be_visible()


def test_drag_and_drop_uploads_the_dropped_file(page: Any, server: str):
    page.goto(server + "/")
    page.evaluate(
        """() => {
          const file = new File(["when,amount\\n2024-01-01,3\\n2024-01-02,4\\n"], "dropped.csv",
                                {type: "text/csv"});
          const data = new DataTransfer();
          data.items.add(file);
          const zone = document.getElementById("upload-form");
          zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: data, bubbles: true}));
          zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true}));
        }"""
    )
    page.wait_for_url(re.compile(r"/datasets/ds_[0-9a-f]+$"))
    expect(page.get_by_role("heading", name="dropped")).to_be_visible()
    expect(page.locator("#dataset-rows")).to_have_text("2")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.csv", b""),
        ("binary.csv", bytes(range(256)) * 40),
        ("header-only.csv", b"a,b,c\n"),
    ],
)
def test_a_bad_file_shows_the_api_message(
    page: Any, server: str, tmp_path: Path, name: str, content: bytes
):
    path = tmp_path / name
    path.write_bytes(content)
    expected = api_error(server, path)
    page.goto(server + "/")
    upload_through_input(page, path)
    error = page.get_by_role("alert")
    expect(error).to_have_text(expected)
    assert page.url == server + "/"
    expect(page.locator("#upload-progress")).to_be_hidden()


def test_a_too_large_file_shows_the_limit(page: Any, server: str, tmp_path: Path, shoot: Shoot):
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * (MAX_UPLOAD_MB * 1024 * 1024 // 4 + 1000))
    expected = api_error(server, path)
    assert f"{MAX_UPLOAD_MB}" in expected
    page.goto(server + "/")
    upload_through_input(page, path)
    expect(page.get_by_role("alert")).to_have_text(expected)
    shoot(page, "home-upload-error")


HOSTILE_COLUMNS = ['<script>alert("c")</script>', '"quoted", col', "<b>bold</b>", "a&amp;b"]
HOSTILE_VALUES = ['<img src=x onerror=alert("v")>', "</td><td>cell", "'single' \"double\"", "x"]


def test_hostile_csv_renders_as_text(page: Any, server: str, tmp_path: Path, shoot: Shoot):
    def quote(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    rows = [",".join(quote(c) for c in HOSTILE_COLUMNS)]
    rows += [",".join(quote(v) for v in HOSTILE_VALUES)] * 3
    path = tmp_path / "<i>hostile &amp; 'quoted'.csv"
    path.write_text("\n".join(rows) + "\n")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(server + "/")
    upload_through_input(page, path)
    page.wait_for_url(re.compile(r"/datasets/ds_[0-9a-f]+$"))
    names = page.locator("#dataset-column-table tbody th").all_inner_texts()
    assert names == HOSTILE_COLUMNS
    headers = page.locator("#dataset-preview thead th").all_inner_texts()
    assert headers == HOSTILE_COLUMNS
    first_row = page.locator("#dataset-preview tbody tr").first.locator("td").all_inner_texts()
    assert first_row == HOSTILE_VALUES
    assert page.locator("#dataset-preview img, #dataset-preview b").count() == 0
    assert page.locator("script:not([src])").count() == 0
    shoot(page, "dataset-hostile")
    page.goto(server + "/")
    expect(page.locator("#recent-datasets")).to_contain_text("<i>hostile &amp; 'quoted'")
    assert page.locator("#recent-datasets i").count() == 0
    assert dialogs == []
    shoot(page, "home-hostile")


def test_a_foreign_host_is_refused_for_api_and_pages(server: str):
    for path, accept in (("/", "text/html"), ("/api/datasets", "application/json")):
        answer = httpx.get(
            server + path, headers={"Host": "evil.example:8000", "Accept": accept}, timeout=10
        )
        assert answer.status_code == 400
        assert "does not answer to the name" in answer.text and "evil.example" in answer.text
        assert "TABPILOT_ALLOWED_HOSTS" in answer.text
    assert httpx.get(server + "/health", headers={"Host": "10.1.2.3"}, timeout=10).is_success


def test_a_cross_site_post_is_refused(page: Any, server: str, shoot: Shoot):
    assert (
        httpx.post(
            server + "/api/datasets",
            headers={"Origin": "http://evil.example"},
            files={"file": ("a.csv", b"a,b\n1,2\n")},
            timeout=10,
        ).status_code
        == 403
    )
    # A real browser on another site submitting a form to this server.
    evil = (
        f'<form id="f" method="post" action="{server}/api/datasets" '
        'enctype="multipart/form-data"><input type="hidden" name="name" value="x">'
        '<button type="submit">Win a prize</button></form>'
    )
    page.route(
        "http://evil.example/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=evil),
    )
    page.goto("http://evil.example/")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Win a prize").click()
    assert navigation.value.status == 403
    expect(page.locator("body")).to_contain_text("Refused a POST to /api/datasets because")


def test_dark_mode_follows_the_system_toggles_and_is_remembered(
    browser: Any, page: Any, server: str
):
    def background(target: Any) -> str:
        return str(target.evaluate("getComputedStyle(document.documentElement).backgroundColor"))

    page.goto(server + "/")
    light = background(page)
    toggle = page.get_by_role("button", name="Dark mode")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    dark = background(page)
    assert dark != light
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert background(page) == dark
    expect(page.get_by_role("button", name="Dark mode")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Dark mode").click()
    assert background(page) == light

    system_dark = browser.new_context(color_scheme="dark")
    try:
        other = system_dark.new_page()
        other.goto(server + "/")
        assert other.evaluate("document.documentElement.dataset.theme") is None
        assert background(other) == dark
        expect(other.get_by_role("button", name="Dark mode")).to_have_attribute(
            "aria-pressed", "true"
        )
    finally:
        system_dark.close()


def test_keyboard_reaches_the_file_input_and_focus_is_visible(page: Any, server: str):
    page.goto(server + "/")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "upload-file":
            break
    assert page.evaluate("document.activeElement.id") == "upload-file"
    # The input is visually hidden; its label (the visible button) shows the focus ring.
    outline = page.evaluate("getComputedStyle(document.querySelector('.file-label')).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.querySelector('.file-label')).outlineStyle")
    assert outline == "none"


def test_half_a_laptop_screen_needs_no_sideways_scrolling(page: Any, server: str, shoot: Shoot):
    page.set_viewport_size({"width": 700, "height": 800})
    page.goto(server + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 700
    shoot(page, "home-700px")


def test_404_page_is_styled_and_api_paths_keep_json(page: Any, server: str, shoot: Shoot):
    response = page.goto(server + "/no/such/page")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("There is no page at /no/such/page.")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.body).display") == "flex"  # our CSS
    shoot(page, "404")
    response = page.goto(server + "/datasets/ds_0000000000000000")
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("ds_0000000000000000")
    answer = httpx.get(server + "/api/nothing", headers={"Accept": "text/html"}, timeout=10)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_token_mode_login_wrong_token_logout(
    page: Any, token_server: TokenServer, shoot: Shoot, tmp_path: Path
):
    url = token_server.url
    page.goto(url + "/")
    page.wait_for_url(re.compile(r"/login\?next=/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    shoot(page, "login")

    page.get_by_label("API token").fill("tpu_wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("The API token is not valid")
    shoot(page, "login-wrong-token")

    page.get_by_label("API token").fill(token_server.token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/")
    expect(page.locator(".user")).to_have_text("alice")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["tabpilot_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert token_server.token not in session["value"]

    # The session cookie authenticates the page's own API calls (with the CSRF header).
    csv = numbers_csv(tmp_path / "mine.csv", 50)
    upload_through_input(page, csv)
    page.wait_for_url(re.compile(r"/datasets/ds_[0-9a-f]+$"))
    expect(page.get_by_role("heading", name="mine")).to_be_visible()
    without_csrf = page.evaluate(
        "fetch('/api/datasets/' + location.pathname.split('/').pop(), {method: 'DELETE'})"
        ".then(r => r.status)"
    )
    assert without_csrf == 403
    listed = page.evaluate(
        "fetch('/api/datasets', {headers: tabpilot.csrfHeaders()}).then(r => r.json())"
    )
    assert [d["name"] for d in listed["items"]] == ["mine"]

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login$"))
    assert "tabpilot_session" not in {c["name"] for c in page.context.cookies()}
    page.goto(url + "/")
    page.wait_for_url(re.compile(r"/login\?next=/$"))
    assert httpx.get(url + "/api/datasets", timeout=10).status_code == 401
