"""build_metadata_store: backends chosen by URI, optional ones imported lazily."""

from __future__ import annotations

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
        ("dynamodb://table?region=eu-west-1", "not built yet"),
        ("mysql://host/db", 'Unsupported metadata store "mysql"'),
        ("just-a-path.db", "use sqlite:///, postgresql:// or dynamodb://"),
        ("sqlite://", "needs a database file"),
        ("sqlite:///:memory:", "needs a database file"),
    ],
)
def test_unusable_uris_say_what_to_use(uri: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        build_metadata_store(uri)


def test_missing_psycopg_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(MissingDependency, match=r"pip install 'tabpilot\[postgres\]'"):
        build_metadata_store("postgresql://user@localhost/tabpilot")
