"""deploy/terraform's structure, read from the parsed HCL: what the issue asks of each part, and
the names the code relies on (handler, command, settings, store URIs) kept equal to the code's.

No provider is downloaded and nothing is applied; `terraform fmt -check` runs when a terraform
binary is on PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from tabpilot.engine.budget import MAX_BUDGET
from tabpilot.settings import Settings, env_var_name
from tests.deploy.terraform import (
    ENVIRONMENTS_DIR,
    TERRAFORM_DIR,
    Config,
    block,
    blocks,
    is_literal,
    load_config,
    parse_file,
    reference,
)

SETTINGS = {env_var_name(name) for name in Settings.model_fields}
STORE_SETTINGS = ("TABPILOT_METADATA_URI", "TABPILOT_ARTIFACT_URI")
# Locals that are built from local.name (checked below), so names made from them carry it too.
NAMED_LOCALS = (
    "local.name",
    "local.table_prefix",
    "local.job_queue_name",
    "local.job_definition_name",
    "local.api_function_name",
)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


def test_terraform_fmt_check() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary on PATH: `terraform fmt -check` needs one")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, (
        f"run `terraform fmt -recursive deploy/terraform`:\n{result.stdout}"
    )


def test_every_file_parses_and_the_environments_set_only_declared_variables(config: Config) -> None:
    assert {"aws", "random"} == {
        name for block_ in config.terraform for req in block_["required_providers"] for name in req
    }
    tfvars = sorted(ENVIRONMENTS_DIR.glob("*.tfvars"))
    assert [path.stem for path in tfvars] == ["dev", "prod"]
    for path in tfvars:
        values = parse_file(path)
        unknown = set(values) - set(config.variables)
        assert not unknown, f"{path.name} sets undeclared variables {sorted(unknown)}"
        assert values["environment"] == path.stem
    # Only the image tag has no default: it is given on the command line (README's steps).
    required = sorted(name for name, body in config.variables.items() if "default" not in body)
    assert required == ["environment", "worker_image_tag"]
    for name, body in config.variables.items():
        assert body.get("description"), f"variable {name!r} has no description"


def test_bucket_is_private_encrypted_versioned_and_expires_abandoned_uploads(
    config: Config,
) -> None:
    bucket = "${aws_s3_bucket.data.id}"
    public = config.resource("aws_s3_bucket_public_access_block", "data")
    assert public["bucket"] == bucket
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls"):
        assert public[flag] is True, flag
    assert public["restrict_public_buckets"] is True
    owner = config.resource("aws_s3_bucket_ownership_controls", "data")
    assert block(owner, "rule")["object_ownership"] == "BucketOwnerEnforced"

    sse = block(
        config.resource("aws_s3_bucket_server_side_encryption_configuration", "data"), "rule"
    )
    assert block(sse, "apply_server_side_encryption_by_default")["sse_algorithm"] == "aws:kms"
    versioning = config.resource("aws_s3_bucket_versioning", "data")
    assert block(versioning, "versioning_configuration")["status"] == "Enabled"

    rules = blocks(config.resource("aws_s3_bucket_lifecycle_configuration", "data"), "rule")
    assert all(rule["status"] == "Enabled" for rule in rules)
    aborts = [
        block(rule, "abort_incomplete_multipart_upload")
        for rule in rules
        if "abort_incomplete_multipart_upload" in rule
    ]
    assert [abort["days_after_initiation"] for abort in aborts] == [1]
    old = [rule for rule in rules if "noncurrent_version_expiration" in rule]
    assert len(old) == 1
    days = block(old[0], "noncurrent_version_expiration")["noncurrent_days"]
    assert days == "${var.noncurrent_version_days}"

    # TLS only: the bucket policy denies every request without it.
    policy = config.data_source("aws_iam_policy_document", "data_bucket")
    (deny,) = blocks(policy, "statement")
    assert deny["effect"] == "Deny" and deny["actions"] == ["s3:*"]
    condition = block(deny, "condition")
    assert (condition["variable"], condition["values"]) == ("aws:SecureTransport", ["false"])


def test_table_is_on_demand_with_point_in_time_recovery(config: Config) -> None:
    table = config.resource("aws_dynamodb_table", "metadata")
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert block(table, "point_in_time_recovery")["enabled"] is True
    assert table["deletion_protection_enabled"] == "${var.protect_data}"
    assert table["name"] == "${local.table_prefix}${local.metadata_table_suffix}"


def _environment(config: Config) -> dict[str, Any]:
    return dict(config.local("api_environment"))


def test_api_lambda_runs_the_handler_behind_an_http_api(config: Config) -> None:
    function = config.resource("aws_lambda_function", "api")
    handler = function["handler"]
    module_name, _, attribute = handler.rpartition(".")
    module = __import__(module_name, fromlist=[attribute])
    assert callable(getattr(module, attribute)), f"{handler} is not a callable"
    assert re.fullmatch(r"python3\.\d+", config.variables["lambda_runtime"]["default"])
    assert function["role"] == "${aws_iam_role.api.arn}"
    assert block(function, "environment")["variables"] == "${local.api_environment}"
    assert block(function, "logging_config")["log_group"] == "${aws_cloudwatch_log_group.api.name}"

    api = config.resource("aws_apigatewayv2_api", "http")
    assert api["protocol_type"] == "HTTP"
    integration = config.resource("aws_apigatewayv2_integration", "api")
    assert integration["integration_type"] == "AWS_PROXY"
    assert integration["payload_format_version"] == "2.0"  # what the handler's Mangum expects
    assert integration["integration_uri"] == "${aws_lambda_function.api.invoke_arn}"
    route = config.resource("aws_apigatewayv2_route", "default")
    assert route["route_key"] == "$default"
    stage = config.resource("aws_apigatewayv2_stage", "default")
    assert stage["auto_deploy"] is True
    throttle = block(stage, "default_route_settings")
    assert throttle["throttling_rate_limit"] == "${var.api_throttle_rate}"
    assert block(stage, "access_log_settings")["destination_arn"] == (
        "${aws_cloudwatch_log_group.gateway.arn}"
    )
    # The schedule that replaces the server's background threads on Lambda.
    target = config.resource("aws_cloudwatch_event_target", "housekeeping")
    assert target["arn"] == "${aws_lambda_function.api.arn}"
    assert config.resource("aws_lambda_permission", "gateway")["principal"] == (
        "apigateway.amazonaws.com"
    )


def test_api_environment_names_real_settings_and_token_auth(config: Config) -> None:
    environment = _environment(config)
    unknown = set(environment) - SETTINGS
    assert not unknown, f"the API's environment sets no such settings: {sorted(unknown)}"
    assert environment["TABPILOT_AUTH"] == "token"  # a public URL is never single-user
    assert environment["TABPILOT_DATA_DIR"].startswith("/tmp/")  # Lambda's only writable place
    assert environment["TABPILOT_METADATA_URI"] == "${local.metadata_uri}"
    assert environment["TABPILOT_ARTIFACT_URI"] == "${local.artifact_uri}"
    assert environment["TABPILOT_RUNNER_URI"] == "${local.runner_uri}"
    assert "local.api_host" in environment["TABPILOT_ALLOWED_HOSTS"]
    assert environment["TABPILOT_WEB_SECRET"] == "${random_password.web_secret.result}"
    # Lambda refuses request bodies over 6 MB (base64-encoded): the app says so first.
    assert environment["TABPILOT_MAX_UPLOAD_MB"] == "${tostring(var.api_max_upload_mb)}"
    assert config.variables["api_max_upload_mb"]["default"] <= 4
    assert environment["TABPILOT_STREAM_MAX_SECONDS"] == "${tostring(var.api_stream_max_seconds)}"
    assert config.resource("random_password", "web_secret")["length"] >= 32  # Settings' minimum


def test_store_uris_have_the_schemes_the_registries_know(config: Config) -> None:
    assert config.local("metadata_uri").startswith("dynamodb://")
    assert "?region=${var.region}" in config.local("metadata_uri")
    assert config.local("artifact_uri") == (
        "s3://${aws_s3_bucket.data.bucket}/${local.artifact_prefix}"
    )
    # The runner URI names the queue and job definition that Terraform creates, by the same locals.
    assert config.local("runner_uri") == (
        "batch://${local.job_queue_name}?job_definition=${local.job_definition_name}"
    )
    assert config.resource("aws_batch_job_queue", "jobs")["name"] == "${local.job_queue_name}"
    definition = config.resource("aws_batch_job_definition", "train")
    assert definition["name"] == "${local.job_definition_name}"


def test_compute_is_fargate_spot_first_then_on_demand(config: Config) -> None:
    kinds = {}
    for name in ("spot", "on_demand"):
        environment = config.resource("aws_batch_compute_environment", name)
        assert environment["type"] == "MANAGED"
        resources = block(environment, "compute_resources")
        kinds[name] = resources["type"]
        assert resources["security_group_ids"] == ["${aws_security_group.jobs.id}"]
    assert kinds == {"spot": "FARGATE_SPOT", "on_demand": "FARGATE"}
    queue = config.resource("aws_batch_job_queue", "jobs")
    order = sorted(
        (item["order"], item["compute_environment"])
        for item in blocks(queue, "compute_environment_order")
    )
    assert order == [
        (1, "${aws_batch_compute_environment.spot.arn}"),
        (2, "${aws_batch_compute_environment.on_demand.arn}"),
    ]
    group = config.resource("aws_security_group", "jobs")
    assert "ingress" not in group, "training containers take no inbound traffic"
    assert [(rule["from_port"], rule["to_port"]) for rule in blocks(group, "egress")] == [
        (443, 443)
    ]


def test_job_definition_runs_run_job_with_only_the_store_settings(config: Config) -> None:
    definition = config.resource("aws_batch_job_definition", "train")
    assert definition["platform_capabilities"] == ["FARGATE"]
    properties = definition["container_properties"]
    for part in (
        "command = local.worker_command",
        "jobRoleArn = aws_iam_role.worker.arn",
        "executionRoleArn = aws_iam_role.worker_execution.arn",
        "keys(local.worker_environment)",
        "awslogs-group = aws_cloudwatch_log_group.jobs.name",
        "aws_ecr_repository.worker.repository_url}:${var.worker_image_tag}",
    ):
        assert part in properties, f"container_properties lacks {part!r}"

    command = config.local("worker_command")
    assert command == ["tabpilot", "run-job", "Ref::job_id"]
    batch = pytest.importorskip(
        "tabpilot.jobs.batch", reason="tabpilot.jobs.batch (the Batch runner) is not there yet"
    )
    assert list(batch.BATCH_COMMAND) == command

    environment = config.local("worker_environment")
    settings = {name for name in environment if name.startswith("TABPILOT_")}
    assert settings <= SETTINGS, f"no such settings: {sorted(settings - SETTINGS)}"
    # The same stores as the API, and nothing about training (that is in the job's spec).
    assert {name: environment[name] for name in STORE_SETTINGS} == {
        name: _environment(config)[name] for name in STORE_SETTINGS
    }
    assert settings == {*STORE_SETTINGS, "TABPILOT_DATA_DIR"}


def test_job_timeout_exceeds_the_largest_budget_and_only_host_errors_retry(config: Config) -> None:
    definition = config.resource("aws_batch_job_definition", "train")
    assert block(definition, "timeout")["attempt_duration_seconds"] == "${var.job_timeout_s}"
    timeout = config.variables["job_timeout_s"]["default"]
    assert timeout >= MAX_BUDGET + 1800, "leave time to load the data and export the model"

    strategy = block(definition, "retry_strategy")
    assert strategy["attempts"] == "${var.job_attempts}"
    assert config.variables["job_attempts"]["default"] == 2
    (dynamic,) = blocks(strategy, "dynamic")
    retry = dynamic["evaluate_on_exit"]
    assert retry["for_each"] == "${local.host_error_reasons}"
    assert block(retry, "content") == {
        "action": "RETRY",
        "on_status_reason": "${evaluate_on_exit.value}",
    }
    reasons = config.local("host_error_reasons")
    assert "Host EC2*" in reasons and any("Spot" in reason for reason in reasons)
    # Batch retries any failure no rule matches: the last rule must end everything else.
    assert blocks(strategy, "evaluate_on_exit") == [{"action": "EXIT", "on_reason": "*"}]


def test_images_logs_and_outputs(config: Config) -> None:
    repository = config.resource("aws_ecr_repository", "worker")
    assert repository["image_tag_mutability"] == "IMMUTABLE"
    assert block(repository, "image_scanning_configuration")["scan_on_push"] is True
    groups = config.resources["aws_cloudwatch_log_group"]
    assert set(groups) == {"api", "gateway", "jobs"}
    for name, group in groups.items():
        assert group["retention_in_days"] == "${var.log_retention_days}", name
    assert config.resource("aws_cloudwatch_log_group", "api")["name"] == (
        "/aws/lambda/${local.name}-api"
    )
    expected = {"api_url", "worker_repository_url", "tabpilot_environment", "job_queue"}
    assert expected <= set(config.outputs)
    lines = config.outputs["tabpilot_environment"]["value"]
    for setting in ("TABPILOT_METADATA_URI", "TABPILOT_ARTIFACT_URI", "TABPILOT_RUNNER_URI"):
        assert f"export {setting}=" in lines


def test_every_resource_is_named_from_the_environment(config: Config) -> None:
    """Two deployments (dev, prod) in one account never collide: names carry local.name."""
    for name in NAMED_LOCALS[1:]:
        assert "${local.name}" in config.local(name.removeprefix("local.")), name
    name_fields = ("name", "function_name", "compute_environment_name", "bucket")
    for kind, named in config.resources.items():
        for label, body in named.items():
            for name_field in name_fields:
                value = body.get(name_field)
                if value is None or kind.startswith("aws_s3_bucket_") or kind == "aws_s3_object":
                    continue
                if kind in ("aws_iam_role_policy", "aws_apigatewayv2_stage"):
                    continue  # a role's own policy; the stage "$default"
                assert not is_literal(value), f"{kind}.{label}.{name_field} is fixed: {value!r}"
                ref = reference(value) or ""
                if re.fullmatch(r"aws_\w+\.\w+\.(name|function_name|id|bucket)", ref):
                    continue  # the name of another resource, checked where it is declared
                assert any(part in value for part in NAMED_LOCALS), (
                    f"{kind}.{label}.{name_field} does not carry local.name: {value!r}"
                )


# Fargate's task sizes: vCPU -> (smallest, largest, step) of memory in MiB.
FARGATE_MEMORY = {
    0.25: (512, 2048, 512),
    0.5: (1024, 4096, 1024),
    1: (2048, 8192, 1024),
    2: (4096, 16384, 1024),
    4: (8192, 30720, 1024),
    8: (16384, 61440, 4096),
    16: (32768, 122880, 8192),
}


def test_every_environment_asks_for_a_fargate_size(config: Config) -> None:
    defaults = {name: body.get("default") for name, body in config.variables.items()}
    for path in sorted(ENVIRONMENTS_DIR.glob("*.tfvars")):
        values = {**defaults, **parse_file(path)}
        vcpu, memory = values["worker_vcpu"], values["worker_memory_mb"]
        low, high, step = FARGATE_MEMORY[vcpu]
        assert low <= memory <= high and (memory - low) % step == 0, (
            f"{path.name}: Fargate has no task of {vcpu} vCPU with {memory} MiB"
        )
        assert values["max_vcpus"] >= vcpu, f"{path.name}: max_vcpus fits no job"
        assert 3 <= values["lambda_timeout_s"] <= 30
        # An event stream reaches the browser only when it ends: before the request times out.
        assert values["api_stream_max_seconds"] <= values["lambda_timeout_s"] - 10
