"""Settings: defaults, environment variables, one error naming every bad value, and docs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tabpilot.errors import InvalidInput
from tabpilot.settings import Settings, env_var_name, load_settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TABPILOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_every_setting_is_documented() -> None:
    docs = DOCS.read_text()
    missing = [env_var_name(f) for f in Settings.model_fields if f"`{env_var_name(f)}`" not in docs]
    assert missing == [], f"add these to {DOCS.name}: {missing}"


def test_defaults_live_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.data_dir == tmp_path / "tabpilot-data"
    assert settings.metadata_uri == f"sqlite:///{tmp_path}/tabpilot-data/tabpilot.db"
    assert settings.artifact_uri == str(tmp_path / "tabpilot-data" / "artifacts")
    assert (settings.runner_uri, settings.host, settings.port) == (
        "local://?workers=1",
        "127.0.0.1",
        8000,
    )
    assert (settings.auth, settings.max_upload_mb) == ("local", 1024)
    assert settings.max_upload_bytes == 1024 * 1024 * 1024
    assert not settings.data_dir.exists(), "validating settings must not create anything"


def test_environment_variables_and_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TABPILOT_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("TABPILOT_PORT", "9001")
    monkeypatch.setenv("TABPILOT_AUTH", "token")
    monkeypatch.setenv("TABPILOT_METADATA_URI", "postgresql://u:secret@db:5432/tabpilot")
    monkeypatch.setenv("TABPILOT_ARTIFACT_URI", f"file://{tmp_path}/store")
    monkeypatch.setenv("TABPILOT_RUNNER_URI", "local://?workers=3&warm=0")
    settings = load_settings(port=9002)
    assert settings.data_dir == tmp_path / "from-env"
    assert (settings.port, settings.auth) == (9002, "token")
    assert settings.metadata_uri == "postgresql://u:secret@db:5432/tabpilot"
    assert settings.artifact_uri == f"file://{tmp_path}/store"
    assert settings.runner_uri == "local://?workers=3&warm=0"
    assert load_settings(data_dir="~/x").data_dir == Path.home() / "x"


def test_every_invalid_setting_is_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABPILOT_METADATA_URI", "mysql://user:pw@host/db")
    monkeypatch.setenv("TABPILOT_PORT", "abc")
    with pytest.raises(InvalidInput) as caught:
        load_settings(
            artifact_uri="gs://bucket",
            runner_uri="local://?workers=0",
            auth="ldap",
            max_upload_mb=0,
        )
    message = caught.value.message
    assert (
        'TABPILOT_METADATA_URI: unsupported scheme "mysql"; '
        "use sqlite:///PATH, postgresql://USER@HOST/DB or dynamodb://TABLE_PREFIX?region=REGION"
    ) in message
    assert 'TABPILOT_ARTIFACT_URI: unsupported scheme "gs"' in message
    assert "TABPILOT_RUNNER_URI: workers must be a whole number of at least 1" in message
    assert "TABPILOT_PORT: 'abc' is not valid" in message
    assert "TABPILOT_AUTH: 'ldap' is not valid: input should be 'local' or 'token'" in message
    assert "TABPILOT_MAX_UPLOAD_MB" in message
    assert "pw" not in message  # the credentials in a URI are never echoed
    assert set(caught.value.details["settings"]) == {
        "TABPILOT_METADATA_URI",
        "TABPILOT_ARTIFACT_URI",
        "TABPILOT_RUNNER_URI",
        "TABPILOT_PORT",
        "TABPILOT_AUTH",
        "TABPILOT_MAX_UPLOAD_MB",
    }


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("metadata_uri", "sqlite://", "has no database file"),
        ("metadata_uri", "sqlite:///:memory:", "has no database file"),
        ("metadata_uri", "postgresql://user:pw@host", "names no database"),
        ("metadata_uri", "mysql://user:pw@[host/db", "is not a valid URI"),
        ("artifact_uri", "file://remote/share", "remote host"),
        ("runner_uri", "celery://broker", 'unsupported scheme "celery"'),
        ("runner_uri", "local://?warm=maybe", 'warm must be 1 or 0 (true or false), not "maybe"'),
        ("port", 70000, "less than or equal to 65535"),
        ("web_secret", "too-short", "must be at least 32 characters"),
        ("unknown", 1, "unknown setting"),
    ],
)
def test_each_invalid_value_says_what_is_wrong(setting: str, value: object, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_settings(**{setting: value})
    assert f"{env_var_name(setting)}: " in caught.value.message
    assert expected in caught.value.message
    assert "pw" not in caught.value.message


def test_backends_of_later_versions_are_refused_with_the_words_of_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settings and the registries refuse a URI in the same words (one check for both).

    Every backend planned so far is built now, so the test plans one of its own.
    """
    from tabpilot.context import build_context
    from tabpilot.metadata.registry import METADATA_STORES

    monkeypatch.setattr(METADATA_STORES, "_by_scheme", dict(METADATA_STORES._by_scheme))
    backend = "the Cassandra metadata store"
    METADATA_STORES.plan("cassandra", name=backend, example="cassandra://HOST/KEYSPACE")
    setting, value = "metadata_uri", "cassandra://host/tabpilot"

    scheme = value.split("://", 1)[0]
    with pytest.raises(InvalidInput) as at_start:
        load_settings(**{setting: value})
    expected = (
        f"{env_var_name(setting)}: {backend} ({scheme}://) is not available in this version "
        "of Tabpilot; use "
    )
    assert expected in at_start.value.message

    unchecked = load_settings().model_copy(update={setting: value})  # copies skip the check
    with pytest.raises(InvalidInput) as when_built:
        build_context(unchecked)
    assert when_built.value.message in at_start.value.message


def test_a_backend_that_registers_its_scheme_is_accepted_without_touching_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """How a backend joins (as the S3 store did): one register call, nothing in settings."""
    from tabpilot.storage import build_artifact_store
    from tabpilot.storage.registry import ARTIFACT_STORES

    monkeypatch.setattr(ARTIFACT_STORES, "_by_scheme", dict(ARTIFACT_STORES._by_scheme))
    ARTIFACT_STORES.register(
        "gs",
        name="the Cloud Storage artifact store",
        example="gs://BUCKET/PREFIX",
        build=lambda uri: f"a GCS store on {uri.netloc}",  # type: ignore[arg-type,return-value]
        check=lambda uri: None if uri.netloc else f'"{uri.text}" names no bucket',
    )
    assert load_settings(artifact_uri="gs://bucket/prefix").artifact_uri == "gs://bucket/prefix"
    assert build_artifact_store("gs://bucket/prefix") == "a GCS store on bucket"
    with pytest.raises(InvalidInput, match='TABPILOT_ARTIFACT_URI: "gs://" names no bucket'):
        load_settings(artifact_uri="gs://")
    with pytest.raises(InvalidInput, match=r"file:///PATH, s3://BUCKET/PREFIX or gs://BUCKET"):
        load_settings(artifact_uri="az://container")


def test_s3_artifact_uris_are_checked_at_start_up_without_any_request() -> None:
    assert load_settings(artifact_uri="s3://bucket/prefix").artifact_uri == "s3://bucket/prefix"
    with pytest.raises(InvalidInput, match='TABPILOT_ARTIFACT_URI: "s3://" names no valid bucket'):
        load_settings(artifact_uri="s3://")
    with pytest.raises(InvalidInput, match=r"use a directory path, file:///PATH or s3://BUCKET"):
        load_settings(artifact_uri="gs://bucket")


def test_unwritable_data_dir_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(InvalidInput) as caught:
        load_settings(data_dir=blocker / "data")
    assert "TABPILOT_DATA_DIR" in caught.value.message
    assert f'"{blocker}" is not a directory' in caught.value.message

    with pytest.raises(InvalidInput, match=r"TABPILOT_DATA_DIR: .* is not a directory"):
        load_settings(data_dir=blocker)
    with pytest.raises(InvalidInput, match="TABPILOT_METADATA_URI: the directory of"):
        load_settings(metadata_uri=f"sqlite:///{blocker}/db/tabpilot.db")
    with pytest.raises(InvalidInput, match=r"TABPILOT_ARTIFACT_URI: .* is not a directory"):
        load_settings(artifact_uri=str(blocker / "artifacts"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any directory")
def test_read_only_data_dir_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(InvalidInput, match=r"TABPILOT_DATA_DIR: .*not writable"):
        load_settings(data_dir=locked / "data")


def test_a_configured_web_secret_is_used_and_no_key_file_is_written(tmp_path: Path) -> None:
    """Servers sharing stores but not a data directory (Lambda) share TABPILOT_WEB_SECRET."""
    from tabpilot.web.sessions import SECRET_FILE, load_secret

    configured = "k" * 40
    settings = load_settings(data_dir=tmp_path, web_secret=configured)
    assert settings.web_secret.get_secret_value() == configured
    assert configured not in repr(settings)  # a SecretStr: never printed
    assert load_secret(tmp_path, configured=configured) == configured.encode()
    assert not (tmp_path / SECRET_FILE).exists()
    made = load_secret(tmp_path)  # without it: a random key kept in the data directory
    assert (tmp_path / SECRET_FILE).read_bytes().strip() == made != configured.encode()
