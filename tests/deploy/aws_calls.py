"""The AWS API calls Tabpilot's code makes, found by reading its source (AST), as IAM actions.

A call counts when a boto3 operation's method is called on a client-like receiver
(`self._client.put_object(...)`, `runner.batch.submit_job(...)`, `ecr.describe_images(...)`),
or when an operation is named by a string and called through a dispatcher: a function that
does `getattr(client, <its parameter>)(...)` (`self._call("query", ...)`), `get_paginator("op")`
or `generate_presigned_url("op")`. Every operation found is mapped to the IAM actions that
authorize it (`IAM_ACTIONS`, from AWS's service authorization reference); an operation missing
from that table is an error, so a new call cannot slip through unmapped.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "tabpilot"

# Which modules serve which backend URI scheme, and the AWS services their clients talk to.
BACKEND_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "s3": ("storage/s3*.py", ("s3",)),
    "dynamodb": ("metadata/dynamo*.py", ("dynamodb",)),
    "batch": ("jobs/batch*.py", ("batch", "ecr")),
}

# Receivers that hold a boto3 client in this code base: the identifier a method is called on.
CLIENT_RECEIVER = re.compile(r"^_?(client|\w+_client|batch|ecr|s3|dynamo|ddb)$")
# Receivers that are Tabpilot objects whose methods share names with AWS operations
# (`MetadataStore.list_jobs`); calls on any other receiver named like an operation are errors.
NOT_CLIENT_RECEIVER = re.compile(r"^_?(self|meta|metadata|store|ctx|runner)$")

# Operations whose IAM action is not simply service:OperationName.
_SPECIAL: dict[str, dict[str, tuple[str, ...]]] = {
    "s3": {
        "head_object": ("s3:GetObject",),
        "head_bucket": ("s3:ListBucket",),
        "list_objects_v2": ("s3:ListBucket",),
        "list_objects": ("s3:ListBucket",),
        "delete_objects": ("s3:DeleteObject",),
        # boto3's managed transfer: one PUT, or a multipart upload it aborts when it fails.
        "upload_fileobj": ("s3:PutObject", "s3:AbortMultipartUpload"),
        "upload_file": ("s3:PutObject", "s3:AbortMultipartUpload"),
        "create_multipart_upload": ("s3:PutObject",),
        "upload_part": ("s3:PutObject",),
        "complete_multipart_upload": ("s3:PutObject",),
        "download_fileobj": ("s3:GetObject",),
        "download_file": ("s3:GetObject",),
        "copy_object": ("s3:GetObject", "s3:PutObject"),
    },
    "dynamodb": {
        # A transaction needs the action of each kind of item it holds (see transact_kinds).
        "transact_get_items": ("dynamodb:GetItem",),
    },
}
_TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
_DISPATCHERS_BUILTIN = {"get_paginator": 0, "generate_presigned_url": 0, "can_paginate": 0}
_TRANSFER_METHODS = {"upload_fileobj", "upload_file", "download_fileobj", "download_file"}


@dataclass(frozen=True)
class Call:
    """One AWS operation called from the code."""

    service: str
    operation: str  # the boto3 method name, e.g. put_object
    module: str  # path relative to src/tabpilot
    function: str  # the enclosing function's qualified name
    line: int

    def where(self) -> str:
        return f"{self.module}:{self.line} ({self.function})"


@cache
def operations(service: str) -> frozenset[str]:
    """boto3 method names of `service`'s operations (from botocore's bundled models, offline)."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    names = {xform_name(name) for name in model.operation_names}
    if service == "s3":
        names |= _TRANSFER_METHODS  # boto3 adds these to the S3 client
    return frozenset(names)


def backend_modules(scheme: str) -> list[Path]:
    pattern, _ = BACKEND_MODULES[scheme]
    return sorted(PACKAGE.glob(pattern))


def aws_client_modules() -> list[str]:
    """Modules of src/tabpilot that make boto3 clients or resources (`.client("...")`)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if re.search(r"\.(client|resource)\(\s*[\"']", text):
            found.append(path.relative_to(PACKAGE).as_posix())
    return found


def _receiver_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _dispatchers(tree: ast.Module) -> dict[str, int]:
    """Functions that call `getattr(x, <param>)(...)`: name -> index of that positional param."""
    found = dict(_DISPATCHERS_BUILTIN)
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        params = [arg.arg for arg in node.args.args]
        if params and params[0] in ("self", "cls"):
            params = params[1:]
        for inner in ast.walk(node):
            if (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Call)
                and isinstance(inner.func.func, ast.Name)
                and inner.func.func.id == "getattr"
                and len(inner.func.args) == 2
                and isinstance(inner.func.args[1], ast.Name)
                and inner.func.args[1].id in params
            ):
                found[node.name] = params.index(inner.func.args[1].id)
    return found


class _Scanner(ast.NodeVisitor):
    def __init__(self, module: str, services: tuple[str, ...], dispatchers: dict[str, int]):
        self.module = module
        self.services = services
        self.dispatchers = dispatchers
        self.scope: list[str] = []
        self.calls: list[Call] = []
        self.unclear: list[str] = []  # op-named calls on receivers that are not clients

    def _visit_scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_scope(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_scope(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_scope(node)

    def _service_of(self, operation: str) -> list[str]:
        return [service for service in self.services if operation in operations(service)]

    def _add(self, operation: str, line: int) -> None:
        for service in self._service_of(operation):
            function = ".".join(self.scope) or "<module>"
            self.calls.append(Call(service, operation, self.module, function, line))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and self._service_of(func.attr):
            receiver = _receiver_name(func.value)
            if receiver is not None and CLIENT_RECEIVER.match(receiver):
                self._add(func.attr, node.lineno)
            elif func.attr not in self.dispatchers and not (
                receiver is not None and NOT_CLIENT_RECEIVER.match(receiver)
            ):
                self.unclear.append(f"{self.module}:{node.lineno} {ast.unparse(func)}")
        name = _receiver_name(func)
        if name in self.dispatchers:
            index = self.dispatchers[name]
            if len(node.args) > index:
                arg = node.args[index]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    self._add(arg.value, node.lineno)
        self.generic_visit(node)


def scan(paths: Iterable[Path], services: tuple[str, ...]) -> tuple[list[Call], list[str]]:
    """The AWS calls in `paths` to `services`, and the op-named calls the scan could not place."""
    calls: list[Call] = []
    unclear: list[str] = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        scanner = _Scanner(path.relative_to(PACKAGE).as_posix(), services, _dispatchers(tree))
        scanner.visit(tree)
        calls += scanner.calls
        unclear += scanner.unclear
    return calls, unclear


def transact_kinds(paths: Iterable[Path]) -> set[str]:
    """The kinds of transaction items (`{"Put": ...}`, `{"Update": ...}`) the modules build."""
    kinds = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                for key in node.keys:
                    if isinstance(key, ast.Constant) and key.value in _TRANSACT_ITEM_ACTIONS:
                        kinds.add(str(key.value))
    return kinds


def iam_actions(call: Call, transaction_kinds: set[str]) -> tuple[str, ...]:
    """The IAM actions that authorize `call`."""
    special = _SPECIAL.get(call.service, {})
    if call.operation in special:
        return special[call.operation]
    if call.service == "dynamodb" and call.operation == "transact_write_items":
        if not transaction_kinds:
            raise AssertionError(f"{call.where()}: a transaction whose items were not found")
        return tuple(sorted(_TRANSACT_ITEM_ACTIONS[kind] for kind in transaction_kinds))
    camel = "".join(part.capitalize() for part in call.operation.split("_"))
    return (f"{call.service}:{camel}",)


def actions_by_call(scheme: str, excluded: set[str]) -> dict[str, list[Call]]:
    """IAM action -> the calls needing it, for the modules of backend `scheme`.

    `excluded` names functions (`Class.method`) whose calls are made with other credentials.
    """
    paths = backend_modules(scheme)
    _, services = BACKEND_MODULES[scheme]
    calls, unclear = scan(paths, services)
    if unclear:
        raise AssertionError(
            "calls named like AWS operations on receivers that are not known clients (name the "
            "client attribute like CLIENT_RECEIVER in tests/deploy/aws_calls.py, or rename the "
            "method): " + "; ".join(unclear)
        )
    kinds = transact_kinds(paths)
    found: dict[str, list[Call]] = {}
    for call in calls:
        if call.function in excluded:
            continue
        for action in iam_actions(call, kinds):
            found.setdefault(action, []).append(call)
    return found


def functions_in(scheme: str) -> Iterator[str]:
    """Qualified names of every function in the backend's modules (`Class.method`)."""
    for path in backend_modules(scheme):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        yield from _qualnames(tree.body, [])


def _qualnames(body: list[ast.stmt], scope: list[str]) -> Iterator[str]:
    for node in body:
        if isinstance(node, ast.ClassDef):
            yield from _qualnames(node.body, [*scope, node.name])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield ".".join([*scope, node.name])
            yield from _qualnames(node.body, [*scope, node.name])
