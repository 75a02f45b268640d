"""The job definition Terraform registers passes the Batch runner's own start-up check
(`definition_problem`, what `BatchRunner.check` runs against the registered definition), with
the store URIs the API Lambda gets: the two are rendered from the same Terraform locals.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.terraform import Config, load_config, render

batch = pytest.importorskip("tabpilot.jobs.batch", reason="the Batch runner (jobs/batch.py)")
batch_check = pytest.importorskip("tabpilot.jobs.batch_check", reason="jobs/batch_check.py")

# What only `terraform apply` would know, for one imagined dev deployment.
KNOWN = {
    "var.region": "eu-west-1",
    "var.name": "tabpilot",
    "var.environment": "dev",
    "aws_s3_bucket.data.bucket": "tabpilot-dev-123456789012-eu-west-1",
}
URI_SETTINGS = ("TABPILOT_METADATA_URI", "TABPILOT_ARTIFACT_URI", "TABPILOT_RUNNER_URI")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


def registered_definition(config: Config) -> dict:
    """The job definition as Batch would describe it (the parts the check reads)."""
    environment = render(config, config.local("worker_environment"), KNOWN)
    return {
        "jobDefinitionName": render(config, "${local.job_definition_name}", KNOWN),
        "revision": 1,
        "type": "container",
        "containerProperties": {
            "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tabpilot-dev-worker:abc123",
            "command": config.local("worker_command"),
            "environment": [
                {"name": key, "value": environment[key]} for key in sorted(environment)
            ],
        },
    }


def test_terraform_job_definition_passes_the_runners_check(config: Config, tmp_path: Path) -> None:
    from tabpilot.settings import Settings

    environment = config.local("api_environment")
    api = {name: render(config, environment[name], KNOWN) for name in URI_SETTINGS}
    settings = Settings(
        data_dir=tmp_path,
        metadata_uri=api["TABPILOT_METADATA_URI"],
        artifact_uri=api["TABPILOT_ARTIFACT_URI"],
        runner_uri=api["TABPILOT_RUNNER_URI"],
    )
    options = batch.batch_options(settings.runner_uri)
    definition = registered_definition(config)
    assert options.job_definition == definition["jobDefinitionName"]
    assert options.queue == "tabpilot-dev-jobs"
    assert settings.metadata_uri == "dynamodb://tabpilot-dev?region=eu-west-1"
    assert batch_check.definition_problem(definition, options, settings) is None


def test_the_check_would_catch_a_definition_with_other_stores(
    config: Config, tmp_path: Path
) -> None:
    """The comparison above can fail: a worker pointed at another table is refused."""
    from tabpilot.settings import Settings

    definition = registered_definition(config)
    settings = Settings(
        data_dir=tmp_path,
        metadata_uri="dynamodb://other-prefix?region=eu-west-1",
        artifact_uri=render(config, config.local("artifact_uri"), KNOWN),
        runner_uri=render(config, config.local("runner_uri"), KNOWN),
    )
    options = batch.batch_options(settings.runner_uri)
    problem = batch_check.definition_problem(definition, options, settings)
    assert problem is not None and "TABPILOT_METADATA_URI" in problem
