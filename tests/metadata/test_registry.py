"""build_metadata_store: backends chosen by URI, optional ones imported lazily."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tabpilot.errors import InvalidInput, MissingDependency
from tabpilot.metadata import build_metadata_store
from tabpilot.metadata.sql import SqlMetadataStore


def test_sqlite_uri_opens_a_sql_store_and_creates_its_directory(tmp_path: Path) -> None:
    with build_metadata_store(f"sqlite:///{tmp_path}/deep/er/tabpilot.db") as store:
        assert isinstance(store, SqlMetadataStore)
        store.ping()
    assert (tmp_path / "deep" / "er" / "tabpilot.db").is_file()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("dynamodb://t", "names no valid table prefix"),
        ("dynamodb://tabpilot/extra", "names no valid table prefix"),
        ("dynamodb://tabpilot?region=Europe", '"Europe" is not an AWS region'),
        ("dynamodb://tabpilot?endpoint=http://x", "has options dynamodb:// does not take"),
        ("mysql://host/db", 'TABPILOT_METADATA_URI: unsupported scheme "mysql"'),
        (
            "just-a-path.db",
            "use sqlite:///PATH, postgresql://USER@HOST/DB or dynamodb://TABLE_PREFIX?region=REGION",
        ),
        ("sqlite://", "has no database file"),
        ("sqlite:///:memory:", "has no database file"),
        ("sqlite:///file:x.db?mode=memory&uri=true", "has no database file"),
        ("postgresql://user:pw@host", "names no database"),
    ],
)
def test_unusable_uris_say_what_to_use(uri: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as caught:
        build_metadata_store(uri)
    assert caught.value.message.startswith("TABPILOT_METADATA_URI: ")
    assert "pw" not in caught.value.message


def test_missing_psycopg_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(MissingDependency, match=r"pip install 'tabpilot\[postgres\]'"):
        build_metadata_store("postgresql://user@localhost/tabpilot")
