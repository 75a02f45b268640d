"""A static security scan of deploy/terraform with checkov: no finding is left unexplained.

Open-source checkov reports no severities (they come from Prisma Cloud), so every failed check
counts as high here: the scan must end with no failed check, and every check the code skips
(`# checkov:skip=ID:reason` next to the resource) must give its reason.

checkov is big (about 290 MB with its dependencies), so it lives in a tool environment of its
own rather than in the project's: the test runs the executable named by `TABPILOT_CHECKOV`, else
`.venv-tools/bin/checkov` in the checkout (what `make test` installs), else `checkov` on PATH;
without one it skips and says how to get it. The scan takes about 4 s of CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.terraform import ROOT, TERRAFORM_DIR

MIN_REASON = 30  # characters: a reason, not a placeholder

# A separate process that imports checkov's many modules: about 4 s of CPU, 15-30 s on a
# busy 2-core machine.
pytestmark = pytest.mark.slow


def checkov_executable() -> str | None:
    named = os.environ.get("TABPILOT_CHECKOV")
    if named:
        if not os.access(named, os.X_OK):
            pytest.fail(f"TABPILOT_CHECKOV={named} is not an executable")
        return named
    tool = ROOT / ".venv-tools" / "bin" / "checkov"
    if os.access(tool, os.X_OK):
        return str(tool)
    return shutil.which("checkov")


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    checkov = checkov_executable()
    if checkov is None:
        pytest.skip(
            "checkov is not installed: `python3 -m venv .venv-tools && .venv-tools/bin/pip "
            "install checkov` (or set TABPILOT_CHECKOV to its path)"
        )
    home = tmp_path_factory.mktemp("checkov-home")
    result = subprocess.run(
        [
            checkov,
            "--directory",
            str(TERRAFORM_DIR),
            "--framework",
            "terraform",
            "--output",
            "json",
            "--skip-download",  # offline: no guidelines or policies from Prisma Cloud
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=home,
        env={**os.environ, "HOME": str(home), "BC_SKIP_MAPPING": "TRUE"},
    )
    if not result.stdout.strip():
        pytest.fail(
            f"checkov printed no report (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report  # a list when several frameworks


def test_scan_covers_the_whole_configuration(scan: dict[str, Any]) -> None:
    summary = scan["summary"]
    assert summary["parsing_errors"] == 0
    resources = sum(text.count('resource "') for text in _tf_texts())
    assert summary["resource_count"] >= resources, "checkov did not read every resource"
    assert summary["passed"] > 50


def test_no_failed_check(scan: dict[str, Any]) -> None:
    failed = scan["results"].get("failed_checks", [])
    assert not failed, "checkov findings; fix them or skip each with a reason:\n" + "\n".join(
        f"  {check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}"
        for check in failed
    )


def test_every_skipped_check_says_why(scan: dict[str, Any]) -> None:
    skipped = scan["results"].get("skipped_checks", [])
    assert skipped, "the configuration explains its skips; none were seen"
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason.strip()) >= MIN_REASON, (
            f"{check['check_id']} on {check['resource']} is skipped without a reason"
        )
    # Every skip comment in the files was recognised (a typo would silently skip nothing).
    written = sum(text.count("checkov:skip=") for text in _tf_texts())
    assert len(skipped) == written


def _tf_texts() -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted(Path(TERRAFORM_DIR).glob("*.tf"))]
