"""Least privilege, checked against the code: each role is granted exactly the AWS actions its
component's code calls (read from the source by tests/deploy/aws_calls.py), plus the few that
the AWS runtime itself performs with the role (listed below with reasons), and nothing else.

A component's code is the backends its environment in Terraform selects: the scheme of each
store URI (`dynamodb://`, `s3://`, `batch://`) names the modules that serve it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy import aws_calls
from tests.deploy.terraform import Config, block, blocks, load_config, reference

pytest.importorskip(
    "botocore", reason="the IAM check reads botocore's service models: the aws extra"
)


# Functions whose AWS calls are made with a deployer's credentials by `tabpilot init-stores`
# (Terraform creates these things in a deployment), never with a component's role.
INIT_ONLY = {
    "s3": {"S3ArtifactStore.ensure_bucket"},
    "dynamodb": {"DynamoMetadataStore.ensure_table", "DynamoMetadataStore._wait_until_active"},
    "batch": set(),
}

# Actions the AWS runtime performs with a role, which no Tabpilot code calls.
RUNTIME_ACTIONS = {
    "api": {
        # Lambda writes the function's stdout/stderr to its log group with the function's role.
        "logs:CreateLogStream": "Lambda writes the function's logs with its role",
        "logs:PutLogEvents": "Lambda writes the function's logs with its role",
    },
    "worker": {},
    "worker_execution": {
        # ECS (Fargate) pulls the image and ships the container's output with the execution role.
        "ecr:GetAuthorizationToken": "Fargate logs in to ECR to pull the worker image",
        "ecr:BatchCheckLayerAvailability": "Fargate pulls the worker image",
        "ecr:BatchGetImage": "Fargate pulls the worker image",
        "ecr:GetDownloadUrlForLayer": "Fargate pulls the worker image",
        "logs:CreateLogStream": "the awslogs driver writes the job's output",
        "logs:PutLogEvents": "the awslogs driver writes the job's output",
    },
}

# Actions that AWS authorizes only on "*" (no resource-level permissions).
RESOURCE_STAR_ONLY = {
    "batch:DescribeJobs",
    "batch:ListJobs",
    "batch:DescribeJobQueues",
    "batch:DescribeJobDefinitions",
    "ecr:GetAuthorizationToken",
}

# The settings whose URIs select a component's backends.
URI_SETTINGS = ("TABPILOT_METADATA_URI", "TABPILOT_ARTIFACT_URI", "TABPILOT_RUNNER_URI")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


def _policy_of_role(config: Config, role: str) -> dict[str, Any]:
    """The policy document of the role's one inline policy."""
    policies = [
        body
        for body in config.resources.get("aws_iam_role_policy", {}).values()
        if body["role"] == f"${{aws_iam_role.{role}.id}}"
    ]
    assert len(policies) == 1, f"role {role} should have exactly one inline policy"
    document = reference(policies[0]["policy"])
    assert document and document.startswith("data.aws_iam_policy_document."), policies[0]
    return config.data_source("aws_iam_policy_document", document.split(".")[2])


def granted(config: Config, role: str) -> set[str]:
    actions: set[str] = set()
    for statement in blocks(_policy_of_role(config, role), "statement"):
        assert statement.get("effect", "Allow") == "Allow", statement
        actions |= set(statement["actions"])
    return actions


def _resolve(config: Config, value: str) -> str:
    ref = reference(value)
    return config.local(ref.removeprefix("local.")) if ref and ref.startswith("local.") else value


def _schemes(config: Config, environment: dict[str, str]) -> set[str]:
    schemes = set()
    for setting in URI_SETTINGS:
        if setting in environment:
            uri = _resolve(config, environment[setting])
            schemes.add(uri.split("://", 1)[0])
    return schemes


def component_schemes(config: Config) -> dict[str, set[str]]:
    """role -> the backend schemes its component's environment selects."""
    return {
        "api": _schemes(config, config.local("api_environment")),
        # run-job runs the one job in its own process (InlineRunner), whatever runner URI.
        "worker": _schemes(config, config.local("worker_environment")) - {"batch"},
        "worker_execution": set(),  # no Tabpilot code runs with it
    }


def called(schemes: set[str]) -> dict[str, list[aws_calls.Call]]:
    found: dict[str, list[aws_calls.Call]] = {}
    for scheme in sorted(schemes):
        for action, calls in aws_calls.actions_by_call(scheme, INIT_ONLY[scheme]).items():
            found.setdefault(action, []).extend(calls)
    return found


def test_roles_belong_to_their_components(config: Config) -> None:
    assert config.resource("aws_lambda_function", "api")["role"] == "${aws_iam_role.api.arn}"
    properties = config.resource("aws_batch_job_definition", "train")["container_properties"]
    assert "jobRoleArn = aws_iam_role.worker.arn" in properties
    assert "executionRoleArn = aws_iam_role.worker_execution.arn" in properties
    assert set(config.resources["aws_iam_role"]) == set(RUNTIME_ACTIONS)
    # Only inline policies written here: no AWS-managed policy brings actions of its own.
    assert "aws_iam_role_policy_attachment" not in config.resources
    assert "aws_iam_policy_attachment" not in config.resources
    services = {
        "api": "lambda.amazonaws.com",
        "worker": "ecs-tasks.amazonaws.com",
        "worker_execution": "ecs-tasks.amazonaws.com",
    }
    for role, service in services.items():
        trust = reference(config.resource("aws_iam_role", role)["assume_role_policy"])
        assert trust is not None
        (statement,) = blocks(
            config.data_source("aws_iam_policy_document", trust.split(".")[2]), "statement"
        )
        assert statement["actions"] == ["sts:AssumeRole"]
        assert block(statement, "principals")["identifiers"] == [service]
        assert block(statement, "condition")["variable"] == "aws:SourceAccount"


def test_every_module_that_calls_aws_belongs_to_a_backend() -> None:
    """A new AWS-calling module must be assigned to a backend here, or its calls go unchecked."""
    covered = {
        path.relative_to(aws_calls.PACKAGE).as_posix()
        for scheme in aws_calls.BACKEND_MODULES
        for path in aws_calls.backend_modules(scheme)
    }
    stray = set(aws_calls.aws_client_modules()) - covered
    assert not stray, f"modules that make AWS clients outside the known backends: {sorted(stray)}"


def test_init_only_functions_exist() -> None:
    for scheme, functions in INIT_ONLY.items():
        missing = functions - set(aws_calls.functions_in(scheme))
        assert not missing, f"INIT_ONLY names functions that no longer exist: {sorted(missing)}"


def test_the_scan_finds_the_calls_each_backend_is_known_to_make() -> None:
    """The scanner itself: calls written in the three styles the code uses are all found."""
    s3 = aws_calls.actions_by_call("s3", set())
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:CreateBucket"} <= set(s3)
    assert any(
        call.operation == "generate_presigned_url" or call.function.endswith("presigned_url")
        for call in s3["s3:GetObject"]
    )
    if aws_calls.backend_modules("dynamodb"):
        dynamo = aws_calls.actions_by_call("dynamodb", set())
        assert {"dynamodb:GetItem", "dynamodb:Query"} <= set(dynamo)  # through _call("...")
    if aws_calls.backend_modules("batch"):
        batch = aws_calls.actions_by_call("batch", set())
        assert {"batch:SubmitJob", "batch:TerminateJob"} <= set(batch)


@pytest.mark.parametrize("role", sorted(RUNTIME_ACTIONS))
def test_role_grants_exactly_what_its_code_calls(config: Config, role: str) -> None:
    schemes = component_schemes(config)[role]
    needed = called(schemes)
    for scheme in schemes:
        if not aws_calls.backend_modules(scheme):
            pattern = aws_calls.BACKEND_MODULES[scheme][0]
            pytest.fail(f"the {scheme}:// backend's modules are missing ({pattern})")
    runtime = set(RUNTIME_ACTIONS[role])
    have = granted(config, role)
    missing = set(needed) - have
    assert not missing, f"role {role} lacks actions its code calls: " + "; ".join(
        f"{action} (for {needed[action][0].where()})" for action in sorted(missing)
    )
    extra = have - set(needed) - runtime
    assert not extra, f"role {role} is granted actions no code of it calls: {sorted(extra)}"
    assert runtime <= have, f"role {role} lacks runtime actions {sorted(runtime - have)}"


def test_expected_components_use_expected_backends(config: Config) -> None:
    schemes = component_schemes(config)
    assert schemes["api"] == {"dynamodb", "s3", "batch"}
    assert schemes["worker"] == {"dynamodb", "s3"}


@pytest.mark.parametrize("role", sorted(RUNTIME_ACTIONS))
def test_no_wildcards_except_where_aws_allows_nothing_else(config: Config, role: str) -> None:
    for statement in blocks(_policy_of_role(config, role), "statement"):
        actions = statement["actions"]
        assert all("*" not in action for action in actions), f"{role}: wildcard action in {actions}"
        resources = statement["resources"]
        if resources == ["*"]:
            assert set(actions) <= RESOURCE_STAR_ONLY, (
                f"{role}: {sorted(set(actions) - RESOURCE_STAR_ONLY)} granted on every resource"
            )
        else:
            assert "*" not in resources, f"{role}: statement {statement.get('sid')} on '*'"
    # Object access is confined to the artifact prefix, listing to the bucket.
    for statement in blocks(_policy_of_role(config, role), "statement"):
        if any(
            action.startswith("s3:") and action != "s3:ListBucket"
            for action in statement["actions"]
        ):
            assert statement["resources"] == ["${local.artifact_objects}"]
    assert (
        config.local("artifact_objects") == "${aws_s3_bucket.data.arn}/${local.artifact_prefix}/*"
    )


def test_init_only_functions_run_only_from_init_stores() -> None:
    """The excluded functions are reached only from the registries' init hooks, which only
    `tabpilot init-stores` runs: no component ever makes those calls with its role."""
    import ast

    excluded = {name.rsplit(".", 1)[-1] for names in INIT_ONLY.values() for name in names}
    callers = []
    for path in sorted(aws_calls.PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if not any(name in text for name in excluded):
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef):
                continue
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.Call)
                    and isinstance(inner.func, ast.Attribute)
                    and inner.func.attr in excluded
                ):
                    callers.append((path.relative_to(aws_calls.PACKAGE).as_posix(), node.name))
    assert callers, "found no caller of the init-only functions: is the scan still right?"
    for module, function in callers:
        assert module.endswith("registry.py") or function in excluded, (
            f"{module}: {function} calls an init-only function; its calls need the role then"
        )


@pytest.mark.parametrize("role", ["api", "worker"])
def test_listing_is_confined_to_the_artifact_prefix(config: Config, role: str) -> None:
    (listing,) = [
        statement
        for statement in blocks(_policy_of_role(config, role), "statement")
        if "s3:ListBucket" in statement["actions"]
    ]
    assert listing["actions"] == ["s3:ListBucket"]
    assert listing["resources"] == ["${aws_s3_bucket.data.arn}"]
    condition = block(listing, "condition")
    # IfExists: HeadBucket (the store's ping) needs s3:ListBucket and sends no prefix.
    assert (condition["test"], condition["variable"]) == ("StringLikeIfExists", "s3:prefix")
    assert condition["values"] == ["${local.artifact_prefix}/*", "${local.artifact_prefix}"]
    assert config.local("artifact_uri").endswith("/${local.artifact_prefix}")
