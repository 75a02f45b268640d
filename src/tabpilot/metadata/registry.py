"""The metadata backends, by URI scheme; `build_metadata_store(uri)` opens the one a URI names.

A new backend registers here: its scheme, a check of its URI and a builder that imports its
module only when called (see `tabpilot.backends`).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

from tabpilot.backends import BackendURI, Registry, writable_dir_problem
from tabpilot.errors import MissingDependency
from tabpilot.metadata.base import MetadataStore

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")

METADATA_STORES: Registry[MetadataStore] = Registry(
    "metadata store", setting="TABPILOT_METADATA_URI"
)


def build_metadata_store(uri: str) -> MetadataStore:
    """Open the metadata store named by `uri`, applying any pending schema migrations.

    `sqlite:///PATH` and `postgresql://USER@HOST/DB` open a `SqlMetadataStore`.

    Raises:
        InvalidInput: for an unsupported scheme or a backend that is not available.
        MissingDependency: when the backend's optional extra is not installed.
    """
    return METADATA_STORES.build(uri)


def sqlite_path(uri: str) -> str | None:
    """The database file of a `sqlite:///` URI (`sqlite:////abs` is absolute), or None."""
    rest = uri.split(":", 1)[1] if ":" in uri else ""
    if not rest.startswith("///"):
        return None
    path = unquote(rest[3:].split("?", 1)[0])
    return path or None


def _check_sqlite(uri: BackendURI) -> str | None:
    path = sqlite_path(uri.text)
    # In-memory and `file:` URI databases cannot be shared by the server and its workers.
    if path is None or path == ":memory:" or path.startswith("file:"):
        return (
            f'"{uri.shown}" has no database file (the server and the workers share one); '
            "write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    problem = writable_dir_problem(Path(os.path.abspath(Path(path).expanduser())).parent)
    return f'the directory of "{path}" {problem}' if problem else None


def _check_postgres(uri: BackendURI) -> str | None:
    if not uri.path.strip("/"):
        return f'"{uri.shown}" names no database; add /DBNAME'
    return None


def _build_sql(uri: BackendURI) -> MetadataStore:
    if uri.scheme in POSTGRES_SCHEMES:
        _require_psycopg()
    from tabpilot.metadata.sql import SqlMetadataStore

    return SqlMetadataStore(uri.text)


def _require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise MissingDependency(
            "PostgreSQL metadata needs psycopg; install it with: pip install 'tabpilot[postgres]'"
        ) from None


METADATA_STORES.register(
    "sqlite", name="SQLite", example="sqlite:///PATH", build=_build_sql, check=_check_sqlite
)
METADATA_STORES.register(
    *POSTGRES_SCHEMES,
    name="PostgreSQL",
    example="postgresql://USER@HOST/DB",
    build=_build_sql,
    check=_check_postgres,
)
METADATA_STORES.plan(
    "dynamodb", name="the DynamoDB metadata store", example="dynamodb://TABLE?region=REGION"
)
