"""The worker image's recipe (deploy/docker/worker.Dockerfile) stays true to the code.

Docker may not run where the tests do, so the image is not built here; these checks catch the
ways the recipe can fall out of step: an extra that pyproject.toml no longer defines, a package
the image removes that the code has started to import, a root user.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "worker.Dockerfile"


def _text() -> str:
    return DOCKERFILE.read_text()


def _imported_top_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src" / "tabpilot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_two_stages_and_the_last_runs_as_a_user() -> None:
    stages = re.findall(r"^FROM\s+(\S+)", _text(), flags=re.M)
    assert len(stages) == 2 and all("slim" in s for s in stages), stages
    final = _text().split("\nFROM ")[-1]
    assert re.search(r"^USER\s+(?!root\b)\S+", final, flags=re.M)
    assert "COPY --from=build /opt/tabpilot /opt/tabpilot" in final


def test_the_extras_installed_exist_in_pyproject() -> None:
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    installed = re.search(r'pip install "\.\[([a-z,]+)\]"', _text())
    assert installed, "the image installs the project with its extras"
    wanted = set(installed.group(1).split(","))
    assert {"train", "aws"} <= wanted
    assert wanted <= extras, wanted - extras


def test_what_the_image_removes_is_never_imported_by_tabpilot() -> None:
    removed: set[str] = set()
    for command in re.findall(r"pip uninstall --yes ([^&]+)", _text()):
        removed.update(command.replace("\\", " ").split())
    removed -= {"pip", "setuptools", "wheel", "xgboost"}  # xgboost comes back as xgboost-cpu
    assert {"plotly", "matplotlib", "nvidia-nccl-cu12"} <= removed
    modules = {name.replace("-", "_").lower() for name in removed} | {"PIL", "nvidia"}
    assert not modules & _imported_top_modules()
    assert "xgboost-cpu==" in _text()
