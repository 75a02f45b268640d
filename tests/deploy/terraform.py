"""deploy/terraform parsed with python-hcl2 (no terraform binary, no provider download).

`load_config()` merges every `*.tf` file of the directory into one `Config`: resources and data
sources by type and name, locals, variables and outputs. Strings keep Terraform's own spelling:
a literal is its text (`"FARGATE"`), an expression keeps its `${...}` (`"${local.name}"`), so a
test can tell a fixed value from a reference and compare references by name.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "deploy" / "terraform"
ENVIRONMENTS_DIR = TERRAFORM_DIR / "environments"

_REFERENCE = re.compile(r"^\$\{([A-Za-z0-9_.\[\]\"-]+)\}$")


@dataclass
class Config:
    """The merged blocks of every `*.tf` file."""

    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # file name -> raw text

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        """The body of `resource "kind" "name"`; fails the test naming it when missing."""
        try:
            return self.resources[kind][name]
        except KeyError:
            pytest.fail(f'deploy/terraform has no resource "{kind}" "{name}"')

    def data_source(self, kind: str, name: str) -> dict[str, Any]:
        try:
            return self.data[kind][name]
        except KeyError:
            pytest.fail(f'deploy/terraform has no data "{kind}" "{name}"')

    def local(self, name: str) -> Any:
        try:
            return self.locals[name]
        except KeyError:
            pytest.fail(f"deploy/terraform has no local value {name!r}")


def _options() -> Any:
    from hcl2.utils import SerializationOptions

    return SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False
    )


def parse_file(path: Path) -> dict[str, Any]:
    """One HCL file as python-hcl2 reads it (quotes stripped, blocks as lists of dicts)."""
    hcl2 = pytest.importorskip("hcl2", reason="the deploy tests need python-hcl2 (the dev extra)")
    with path.open(encoding="utf-8") as handle:
        return dict(hcl2.load(handle, serialization_options=_options()))


def _merge_named(
    target: dict[str, dict[str, Any]], blocks: list[dict[str, Any]], what: str
) -> None:
    for block in blocks:
        for kind, named in block.items():
            for name, body in named.items():
                if name in target.setdefault(kind, {}):
                    raise AssertionError(f'{what} "{kind}" "{name}" is declared twice')
                target[kind][name] = body


def _merge_flat(target: dict[str, Any], blocks: list[dict[str, Any]], what: str) -> None:
    for block in blocks:
        for name, body in block.items():
            if name in target:
                raise AssertionError(f"{what} {name!r} is declared twice")
            target[name] = body


@functools.cache
def load_config(directory: Path = TERRAFORM_DIR) -> Config:
    """Every `*.tf` file of `directory` (not its subfolders, as Terraform reads a module).

    Parsed once per test session (python-hcl2 takes seconds); tests must not change it.
    """
    config = Config()
    paths = sorted(directory.glob("*.tf"))
    if not paths:
        raise AssertionError(f"no *.tf files in {directory}")
    for path in paths:
        parsed = parse_file(path)
        config.files[path.name] = path.read_text(encoding="utf-8")
        _merge_named(config.resources, parsed.get("resource", []), "resource")
        _merge_named(config.data, parsed.get("data", []), "data")
        _merge_flat(config.locals, parsed.get("locals", []), "local")
        _merge_flat(config.variables, parsed.get("variable", []), "variable")
        _merge_flat(config.outputs, parsed.get("output", []), "output")
        config.terraform.extend(parsed.get("terraform", []))
    return config


def reference(value: Any) -> str | None:
    """`local.x` for the string `${local.x}` (a whole-string reference), else None."""
    if isinstance(value, str):
        match = _REFERENCE.match(value)
        if match:
            return match.group(1)
    return None


def is_literal(value: Any) -> bool:
    """Whether `value` is a fixed string (no `${...}` expression in it)."""
    return isinstance(value, str) and "${" not in value


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body (python-hcl2 gives a list)."""
    blocks = body.get(name)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {name!r} block: {blocks!r}"
    return dict(blocks[0])


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Every nested block `name` of a body (an empty list when there is none)."""
    found = body.get(name, [])
    assert isinstance(found, list), f"{name!r} is not a block: {found!r}"
    return [dict(item) for item in found]


_INTERPOLATION = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def render(config: Config, value: Any, known: dict[str, str]) -> Any:
    """`value` with every `${local.x}` and every reference in `known` replaced by its value,
    recursively (locals that refer to other locals), for one imagined deployment.

    `known` gives what only `terraform apply` would know (`var.region`, resource attributes
    such as `aws_s3_bucket.data.bucket`); anything else left over is an error.
    """
    if isinstance(value, dict):
        return {key: render(config, item, known) for key, item in value.items()}
    if isinstance(value, list):
        return [render(config, item, known) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in known:
            return known[name]
        if name.startswith("local."):
            resolved = render(config, config.local(name.removeprefix("local.")), known)
            if isinstance(resolved, str):
                return resolved
        raise AssertionError(f"cannot render ${{{name}}} in {value!r}")

    return _INTERPOLATION.sub(substitute, value)
