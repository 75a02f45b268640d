"""`build_metadata_store(uri)`: the metadata backend a URI names, imported only when used."""

from __future__ import annotations

from tabpilot.errors import InvalidInput, MissingDependency
from tabpilot.metadata.base import MetadataStore

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def build_metadata_store(uri: str) -> MetadataStore:
    """Open the metadata store named by `uri`, applying any pending schema migrations.

    `sqlite:///PATH` and `postgresql://USER@HOST/DB` open a `SqlMetadataStore`;
    `dynamodb://TABLE` is reserved for the DynamoDB backend.

    Raises:
        InvalidInput: for an unsupported scheme or a backend that is not available.
        MissingDependency: when the backend's optional extra is not installed.
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite" or scheme in POSTGRES_SCHEMES:
        if scheme != "sqlite":
            _require_psycopg()
        from tabpilot.metadata.sql import SqlMetadataStore

        return SqlMetadataStore(uri)
    if scheme == "dynamodb":
        raise InvalidInput(
            "The DynamoDB metadata store (dynamodb://) is not built yet; "
            "use sqlite:///PATH or postgresql://... for TABPILOT_METADATA_URI"
        )
    shown = scheme or uri
    raise InvalidInput(
        f'Unsupported metadata store "{shown}"; use sqlite:///, postgresql:// or dynamodb://'
    )


def _require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise MissingDependency(
            "PostgreSQL metadata needs psycopg; install it with: pip install 'tabpilot[postgres]'"
        ) from None
