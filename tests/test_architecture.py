"""The architecture, checked on the source (with `ast` and `tokenize`; nothing is imported).

- Layers: the engine imports no outer layer (services, api, jobs, stores, settings, cli); the
  services import no web or command-line framework; `HTTPException` lives only in `api/`, and
  routes raise domain errors (`tabpilot.errors`), never `HTTPException`.
- Services speak the domain only (DESIGN.md: services never see a request): no status codes,
  `status_code`, `media_type`, header names, media types or `Request` in their code, strings,
  docstrings or comments.
- No import cycles among tabpilot modules, counting the imports that run when a module is
  loaded (module level, not under `if TYPE_CHECKING:`; imports inside functions are the
  accepted way to defer one). An edge goes to the module an import names: `from a.b import c`
  names `a.b.c` if that is a module, else `a.b`.

Each failure lists every `file:line` that breaks the rule, with the rule.
"""

from __future__ import annotations

import ast
import io
import itertools
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "tabpilot"


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. "tabpilot.api.auth"; a package is its __init__
    path: Path
    source: str
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    def where(self, line: int) -> str:
        return f"{self.path.relative_to(ROOT)}:{line}"


@dataclass(frozen=True)
class Import:
    target: str  # the absolute dotted name the import statement names
    line: int
    at_load: bool  # runs when the module is loaded (module level, not TYPE_CHECKING-only)


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        source = path.read_text(encoding="utf-8")
        name = ".".join(parts)
        found[name] = Module(name, path, source, ast.parse(source, filename=str(path)))
    return found


def in_layer(name: str, layer: str) -> bool:
    return name == layer or name.startswith(layer + ".")


def layer_modules(layer: str) -> list[Module]:
    return [m for n, m in modules().items() if in_layer(n, layer)]


# -- imports ---------------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    base = package.split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: Module, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = _absolute(module, node)
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in modules() else base


def imports_of(module: Module) -> list[Import]:
    """Every import statement of the module, marked with whether it runs at load time."""
    found: list[Import] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.extend(Import(t, node.lineno, at_load) for t in _targets(module, node))
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            at_load = False
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, at_load)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, at_load)

    visit(module.tree, True)
    return found


def _owning_module(name: str) -> str | None:
    """The tabpilot module an imported name belongs to (its longest known prefix)."""
    while name:
        if name in modules():
            return name
        name = name.rpartition(".")[0]
    return None


# -- (a) layers ------------------------------------------------------------------------------

OUTER_LAYERS = (
    "services",
    "api",
    "jobs",
    "metadata",
    "storage",
    "context",
    "settings",
    "cli",
    "records",
    "backends",
)
WEB_AND_CLI = ("fastapi", "starlette", "click", "uvicorn", "python_multipart", "rich")

LAYER_RULES: list[tuple[str, tuple[str, ...], str]] = [
    (
        f"{PACKAGE}.engine",
        tuple(f"{PACKAGE}.{layer}" for layer in OUTER_LAYERS) + WEB_AND_CLI,
        "the engine is pure ML: it imports no services, API, jobs, stores, records, settings "
        "or CLI",
    ),
    (
        f"{PACKAGE}.services",
        (f"{PACKAGE}.api", f"{PACKAGE}.cli", *WEB_AND_CLI),
        "services are shared by every front end: they import no API, CLI or their frameworks",
    ),
]


def layer_violations(layer: str, forbidden: tuple[str, ...], why: str) -> list[str]:
    return [
        f"{module.where(imp.line)}: {module.name} imports {imp.target} ({why})"
        for module in layer_modules(layer)
        for imp in imports_of(module)
        if any(in_layer(imp.target, banned) for banned in forbidden)
    ]


@pytest.mark.parametrize(("layer", "forbidden", "why"), LAYER_RULES, ids=["engine", "services"])
def test_layers_import_only_inward(layer: str, forbidden: tuple[str, ...], why: str) -> None:
    broken = layer_violations(layer, forbidden, why)
    assert not broken, "Layer rule broken:\n" + "\n".join(broken)


def identifiers(module: Module) -> Iterator[tuple[str, int]]:
    """Every name the code uses or defines, with its line (strings and comments excluded)."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Name):
            yield node.id, node.lineno
        elif isinstance(node, ast.Attribute):
            yield node.attr, node.lineno
        elif isinstance(node, ast.arg):
            yield node.arg, node.lineno
        elif isinstance(node, ast.keyword) and node.arg:
            yield node.arg, node.value.lineno
        elif isinstance(node, ast.alias):
            yield (node.asname or node.name).split(".")[-1], node.lineno
            yield node.name.split(".")[-1], node.lineno
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name, node.lineno


def test_http_exception_lives_only_in_the_api() -> None:
    broken = [
        f"{module.where(line)}: {module.name} uses HTTPException (it lives only in "
        f"{PACKAGE}/api/; raise a tabpilot.errors class and let the API map it)"
        for name, module in modules().items()
        if not in_layer(name, f"{PACKAGE}.api")
        for ident, line in identifiers(module)
        if ident == "HTTPException"
    ]
    assert not broken, "\n".join(broken)


def test_routes_raise_domain_errors_not_http_exceptions() -> None:
    broken = [
        f"{module.where(line)}: {module.name} uses HTTPException (routes raise tabpilot.errors "
        "classes; api/errors.py maps each to its status)"
        for module in layer_modules(f"{PACKAGE}.api.routes")
        for ident, line in identifiers(module)
        if ident == "HTTPException"
    ]
    assert not broken, "\n".join(broken)


# -- (b) no HTTP words in services -----------------------------------------------------------

HTTP_IDENTIFIERS = frozenset({"status_code", "media_type", "Request", "HTTPException"})
HTTP_STATUSES = "400|401|403|404|405|406|409|411|413|415|422|429|500|501|502|503"
HTTP_TEXT: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\bHTTP[ /]?\d{{3}}\b|(?<![\w.])(?:{HTTP_STATUSES})(?![\w.])"), "a status code"),
    (
        re.compile(
            r"\b(?:Content-(?:Type|Disposition|Length|Encoding|Security-Policy)"
            r"|WWW-Authenticate|Authorization|X-Content-Type-Options|X-Tabpilot-[\w-]+)\b"
        ),
        "header text",
    ),
    (
        re.compile(r"\b(?:text|application|multipart|image)/[a-z0-9][\w.+-]*", re.IGNORECASE),
        "a media type",
    ),
]
_TEXT_TOKENS = {tokenize.STRING, tokenize.COMMENT} | (
    {tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set()
)


def text_pieces(module: Module) -> Iterator[tuple[str, int]]:
    """Every string literal, docstring and comment, with the line it starts on."""
    for token in tokenize.generate_tokens(io.StringIO(module.source).readline):
        if token.type in _TEXT_TOKENS:
            yield token.string, token.start[0]


def http_words(module: Module) -> Iterator[str]:
    for ident, line in identifiers(module):
        if ident in HTTP_IDENTIFIERS:
            yield f"{module.where(line)}: the HTTP name {ident!r}"
    for text, first_line in text_pieces(module):
        for pattern, what in HTTP_TEXT:
            for match in pattern.finditer(text):
                line = first_line + text.count("\n", 0, match.start())
                yield f"{module.where(line)}: {what} {match.group()!r}"


@pytest.mark.parametrize(
    "module_name", sorted(n for n in modules() if in_layer(n, f"{PACKAGE}.services"))
)
def test_services_speak_the_domain_only(module_name: str) -> None:
    found = list(http_words(modules()[module_name]))
    assert not found, (
        "Services never see a request (DESIGN.md): status codes, headers and media types "
        "belong to the API routes; say it in domain words (a tabpilot.errors class, a file "
        "kind) and let the route translate:\n" + "\n".join(found)
    )


# -- (c) no import cycles --------------------------------------------------------------------


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported tabpilot module: line of the first such import}, load-time only."""
    graph: dict[str, dict[str, int]] = {}
    for name, module in modules().items():
        edges = graph.setdefault(name, {})
        for imp in imports_of(module):
            target = _owning_module(imp.target) if in_layer(imp.target, PACKAGE) else None
            if imp.at_load and target is not None and target != name:
                edges.setdefault(target, imp.line)
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_path_within(graph, sorted(group)) for group in groups]


def _path_within(graph: dict[str, dict[str, int]], group: list[str]) -> list[str]:
    """A shortest closed path from the group's first module back to itself, inside the group."""
    members, start = set(group), group[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt == start:
                    path = [start]
                    while node != start:
                        path.insert(1, node)
                        node = previous[node]
                    return [*path, start]
                if nxt in members and nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group has one


def describe_cycle(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    steps = [
        f"  {modules()[a].where(graph[a][b])}: {a} imports {b}"
        for a, b in itertools.pairwise(cycle)
    ]
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_find_cycles_reports_the_path() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}, "e": {"e": 5}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "Import cycles (break each by moving the shared part down a layer):\n" + (
        "\n".join(describe_cycle(graph, cycle) for cycle in cycles)
    )


def test_the_checks_see_the_source() -> None:
    """Guards the guards: the scans find modules, imports and text where they must."""
    assert {f"{PACKAGE}.engine", f"{PACKAGE}.services", f"{PACKAGE}.api.app"} <= set(modules())
    graph = import_graph()
    assert f"{PACKAGE}.api.errors" in graph[f"{PACKAGE}.api.app"]
    assert f"{PACKAGE}.errors" in graph[f"{PACKAGE}.services"]
    api_errors = modules()[f"{PACKAGE}.api.errors"]
    assert any("status code" in found for found in http_words(api_errors))
    assert any("media type" in found for found in http_words(modules()[f"{PACKAGE}.api.app"]))
