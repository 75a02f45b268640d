"""Backends chosen by URI: the one URI parser and the registry each kind of backend uses.

There are three kinds (metadata stores, artifact stores, job runners), each with one `Registry`
in its package's `registry.py`. A backend registers the URI schemes it serves with

- a *builder*, which imports the backend's module only when called, so an optional dependency
  (psycopg, later boto3 or ray) is needed only by the processes that use it; and
- a *check*, which says what is wrong with a URI (or None) without touching anything; and
- optionally an *init*, which creates what the URI names when it is missing (an S3 bucket,
  later DynamoDB tables), idempotently: `Registry.initialize`, run by `tabpilot init-stores`.
  Backends that create what they need when first opened (SQLite, local folders) have none.

`Settings` runs the same check at start-up that `Registry.build` runs before building, so a bad
URI is refused with the same words in both places. A scheme that is known but whose backend is
not part of this version is registered with `Registry.plan`; its backend later replaces the
plan with `Registry.register`, and nothing else (settings included) changes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from tabpilot.errors import InvalidInput

T = TypeVar("T")


@dataclass(frozen=True)
class BackendURI:
    """A backend URI split into its parts. A plain path (no `://`) has the scheme ""."""

    text: str
    """The URI as given, without surrounding whitespace."""
    scheme: str
    """Lower case; "" for a plain path."""
    netloc: str = ""
    path: str = ""
    query: Mapping[str, str] = field(default_factory=dict)
    """The last value of each query parameter."""
    password: str = ""

    @property
    def shown(self) -> str:
        """The URI as it may appear in messages and logs: any password is replaced by `***`."""
        if not self.password:
            return self.text
        return self.text.replace(f":{self.password}@", ":***@", 1)

    def param(self, name: str, default: str = "") -> str:
        """The query parameter `name`, or `default` when it is absent."""
        return self.query.get(name, default)


def parse_uri(uri: str | Path) -> BackendURI:
    """Split a backend URI (or a plain path) into its parts.

    Raises:
        InvalidInput: when the text has a scheme but cannot be read as a URI.
    """
    text = str(uri).strip()
    if "://" not in text:
        return BackendURI(text=text, scheme="", path=text)
    scheme = text.split("://", 1)[0].lower()
    try:
        parts = urlsplit(text)
        password = parts.password or ""
    except ValueError as exc:  # e.g. an unclosed "[" in the host
        shown = re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", text)
        raise InvalidInput(f'"{shown}" is not a valid URI: {exc}') from None
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    return BackendURI(
        text=text,
        scheme=scheme,
        netloc=parts.netloc,
        path=parts.path,
        query=query,
        password=password,
    )


Check = Callable[[BackendURI], str | None]
Build = Callable[[BackendURI], T]
Init = Callable[[BackendURI], str]
"""Creates what a URI names when missing (idempotent); returns what it did, in words."""


@dataclass(frozen=True)
class Backend(Generic[T]):
    """One registered backend: its schemes, how to write its URI, its check and builder."""

    name: str
    """What a user calls it, e.g. "the S3 artifact store"."""
    schemes: tuple[str, ...]
    examples: tuple[str, ...]
    """How its URI is written, for hints, e.g. ("sqlite:///PATH",)."""
    build: Build[T] | None
    """None for a planned backend: its scheme is known, the backend is not in this version."""
    check: Check | None = None
    init: Init | None = None
    """None when the backend creates what it needs itself, or needs nothing created."""


class Registry(Generic[T]):
    """The backends of one kind, by URI scheme; see the module docstring."""

    def __init__(self, kind: str, *, setting: str) -> None:
        """`kind` names what the backends are ("metadata store"); `setting` is the environment
        variable that chooses one, named in every error."""
        self.kind = kind
        self.setting = setting
        self._by_scheme: dict[str, Backend[T]] = {}

    def register(
        self,
        *schemes: str,
        name: str,
        example: str | Sequence[str],
        build: Build[T],
        check: Check | None = None,
        init: Init | None = None,
    ) -> None:
        """Serve `schemes` ("" is a plain path) with `build`, after `check` finds no problem;
        `init` creates what a URI names (see the module docstring).

        A planned scheme may be taken over; a scheme another backend serves may not.
        """
        self._add(Backend(name, _lower(schemes), _tuple(example), build, check, init))

    def plan(self, *schemes: str, name: str, example: str | Sequence[str]) -> None:
        """Know `schemes` as a backend that is not available in this version."""
        self._add(Backend(name, _lower(schemes), _tuple(example), None))

    def _add(self, backend: Backend[T]) -> None:
        for scheme in backend.schemes:
            taken = self._by_scheme.get(scheme)
            if taken is not None and taken.build is not None:
                raise ValueError(f'{self.kind} scheme "{scheme}" is already served by {taken.name}')
        for scheme in backend.schemes:
            self._by_scheme[scheme] = backend

    def backends(self) -> list[Backend[T]]:
        """Every registered backend once, available ones first, in registration order."""
        unique = list(dict.fromkeys(self._by_scheme.values()))
        return sorted(unique, key=lambda b: b.build is None)

    @property
    def hint(self) -> str:
        """What to use instead, e.g. "use sqlite:///PATH or postgresql://USER@HOST/DB"."""
        examples = [e for b in self.backends() if b.build is not None for e in b.examples]
        if len(examples) > 1:
            return f"use {', '.join(examples[:-1])} or {examples[-1]}"
        return f"use {examples[0]}" if examples else f"no {self.kind} is available"

    def problem(self, uri: str | BackendURI) -> str | None:
        """What is wrong with `uri` (one message), or None when it can be built."""
        if isinstance(uri, str):
            try:
                uri = parse_uri(uri)
            except InvalidInput as exc:
                return exc.message
        backend = self._by_scheme.get(uri.scheme)
        if backend is None:
            if uri.scheme:
                return f'unsupported scheme "{uri.scheme}"; {self.hint}'
            return f'"{uri.text}" is not a {self.kind} URI; {self.hint}'
        if backend.build is None:
            return (
                f"{backend.name} ({uri.scheme}://) is not available in this version of "
                f"Tabpilot; {self.hint}"
            )
        return backend.check(uri) if backend.check is not None else None

    def error(self, problem: str, uri: BackendURI | None = None) -> InvalidInput:
        """The error for `problem`, naming the setting as start-up validation does."""
        details = {"setting": self.setting, "problem": problem}
        if uri is not None:
            details["uri"] = uri.shown
        return InvalidInput(f"{self.setting}: {problem}", details=details)

    def _checked(self, uri: str | Path) -> BackendURI:
        """`uri` parsed, or the error (naming the setting) that settings validation gives."""
        try:
            parsed = parse_uri(uri)
        except InvalidInput as exc:
            raise self.error(exc.message) from None
        problem = self.problem(parsed)
        if problem is not None:
            raise self.error(problem, parsed)
        return parsed

    def build(self, uri: str | Path) -> T:
        """Build the backend `uri` names, after the same check settings validation runs.

        Raises:
            InvalidInput: naming the setting, when `uri` is not usable.
            MissingDependency: from a builder whose optional extra is not installed.
        """
        parsed = self._checked(uri)
        builder = self._by_scheme[parsed.scheme].build
        assert builder is not None  # a planned backend always has a problem
        return builder(parsed)

    def initialize(self, uri: str | Path) -> tuple[Backend[T], str | None]:
        """Create what `uri` names when it is missing; safe to repeat.

        Returns the backend and what its init did, in words, or None when it has no init
        (it creates what it needs when first opened).

        Raises:
            InvalidInput: naming the setting, when `uri` is not usable (as `build`).
        """
        parsed = self._checked(uri)
        backend = self._by_scheme[parsed.scheme]
        return backend, backend.init(parsed) if backend.init is not None else None


def _lower(schemes: Sequence[str]) -> tuple[str, ...]:
    return tuple(scheme.lower() for scheme in schemes)


def _tuple(example: str | Sequence[str]) -> tuple[str, ...]:
    return (example,) if isinstance(example, str) else tuple(example)


def writable_dir_problem(path: Path) -> str | None:
    """Why `path` cannot be used (or created) as a writable directory, or None if it can."""
    if path.exists():
        if not path.is_dir():
            return "is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return "is not writable"
        return None
    # It will be created on first use, so the nearest existing ancestor must allow that.
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f'cannot be created because "{parent}" is not a directory'
            if not os.access(parent, os.W_OK | os.X_OK):
                return f'cannot be created because "{parent}" is not writable'
            return None
    return "cannot be created"
