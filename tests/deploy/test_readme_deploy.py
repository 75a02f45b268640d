"""README's "Deploy to AWS in five commands" names only what deploy/terraform has: its
variables, outputs, targets, files and resource names, so the steps cannot go stale."""

from __future__ import annotations

import re

import pytest

from tests.deploy.terraform import ROOT, Config, load_config

HEADING = "## Deploy to AWS in five commands"


@pytest.fixture(scope="module")
def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert HEADING in text, f"README has no section {HEADING!r}"
    body = text.split(HEADING, 1)[1]
    return body.split("\n## ", 1)[0]


def test_steps_name_real_outputs_targets_and_files(section: str) -> None:
    config: Config = load_config()
    outputs = re.findall(r"terraform output -raw (\w+)", section)
    assert outputs and set(outputs) <= set(config.outputs), outputs
    for kind, name in re.findall(r"-target=(\w+)\.(\w+)", section):
        config.resource(kind, name)
    assert "-var-file=environments/$ENV.tfvars" in section
    for env in ("dev", "prod"):
        assert (ROOT / "deploy" / "terraform" / "environments" / f"{env}.tfvars").is_file()
    # The repository name the push step looks up is the one ecr.tf makes.
    assert config.resource("aws_ecr_repository", "worker")["name"] == "${local.name}-worker"
    assert config.local("name") == "${var.name}-${var.environment}"
    assert "--repository-names tabpilot-$ENV-worker" in section
    assert config.variables["name"]["default"] == "tabpilot"
    assert "make lambda-zip worker-image" in section
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^lambda-zip:", makefile, re.M) and re.search(
        r"^worker-image:", makefile, re.M
    )
    assert "tabpilot-worker:latest" in makefile  # the image the push step tags


def test_variables_named_in_the_section_exist(section: str) -> None:
    config = load_config()
    named = {
        token
        for token in re.findall(r"`([a-z][a-z0-9_]*)`", section)
        if "_" in token and not token.startswith("tabpilot")
    }
    assert named, "the section names no variables"
    unknown = named - set(config.variables) - set(config.outputs)
    assert not unknown, f"README names variables deploy/terraform lacks: {sorted(unknown)}"
