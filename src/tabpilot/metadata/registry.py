"""The metadata backends, by URI scheme; `build_metadata_store(uri)` opens the one a URI names.

A new backend registers here: its scheme, a check of its URI and a builder that imports its
module only when called (see `tabpilot.backends`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from tabpilot.backends import BackendURI, Registry, writable_dir_problem
from tabpilot.errors import InvalidInput, MissingDependency
from tabpilot.metadata.base import MetadataStore

if TYPE_CHECKING:
    from tabpilot.metadata.dynamo import DynamoMetadataStore

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")

METADATA_STORES: Registry[MetadataStore] = Registry(
    "metadata store", setting="TABPILOT_METADATA_URI"
)


def build_metadata_store(uri: str) -> MetadataStore:
    """Open the metadata store named by `uri`, applying any pending schema migrations.

    `sqlite:///PATH` and `postgresql://USER@HOST/DB` open a `SqlMetadataStore`;
    `dynamodb://PREFIX?region=REGION` a `DynamoMetadataStore` (its table must exist:
    `tabpilot init-stores` creates it).

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


# A table name is 3-255 of these characters; the prefix leaves room for "-metadata".
_TABLE_PREFIX = re.compile(r"[A-Za-z0-9_.-]{3,200}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")


def dynamo_location(uri: BackendURI) -> tuple[str, str | None]:
    """The table prefix and region (None: the standard AWS settings) of a `dynamodb://` URI.

    Raises:
        InvalidInput: when the URI names no valid prefix or region, or has other options.
    """
    prefix = uri.netloc
    if not _TABLE_PREFIX.fullmatch(prefix) or uri.path.strip("/"):
        raise InvalidInput(
            f'"{uri.shown}" names no valid table prefix: write dynamodb://PREFIX?region=REGION, '
            "where PREFIX is 3 to 200 letters, digits, dots, hyphens or underscores (the table "
            "is PREFIX-metadata)"
        )
    unknown = sorted(set(uri.query) - {"region"})
    if unknown or "#" in uri.text:
        raise InvalidInput(
            f'"{uri.shown}" has options dynamodb:// does not take ({", ".join(unknown) or "#"}); '
            "only region=REGION: credentials and endpoint come from the standard AWS settings "
            "(AWS_PROFILE, AWS_ENDPOINT_URL)"
        )
    region = uri.param("region") or None
    if region is not None and not _REGION.fullmatch(region):
        raise InvalidInput(f'"{uri.shown}": "{region}" is not an AWS region, e.g. eu-west-1')
    return prefix, region


def _check_dynamo(uri: BackendURI) -> str | None:
    try:
        dynamo_location(uri)
    except InvalidInput as exc:
        return exc.message
    return None


def _dynamo_store(uri: BackendURI) -> DynamoMetadataStore:
    """The store of a `dynamodb://` URI; boto3 is imported only here, when one is opened."""
    try:
        from tabpilot.metadata.dynamo import DynamoMetadataStore
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("boto3", "botocore"):
            raise
        raise MissingDependency(
            "The DynamoDB metadata store needs boto3, which is not installed; install it with: "
            "pip install 'tabpilot[aws]'"
        ) from None
    prefix, region = dynamo_location(uri)
    return DynamoMetadataStore(prefix, region)


def _build_dynamo(uri: BackendURI) -> MetadataStore:
    return _dynamo_store(uri)


def _init_dynamo(uri: BackendURI) -> str:
    with _dynamo_store(uri) as store:
        if store.ensure_table():
            return f'created the table "{store.table}" with its indexes'
        return f'the table "{store.table}" exists already'


METADATA_STORES.register(
    "dynamodb",
    name="the DynamoDB metadata store",
    example="dynamodb://TABLE_PREFIX?region=REGION",
    build=_build_dynamo,
    check=_check_dynamo,
    init=_init_dynamo,
)
