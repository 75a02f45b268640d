"""`tabpilot init-stores`: creates what the configured URIs name when missing, idempotently."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tabpilot.cli import main
from tests.aws_support import new_bucket_name, remove_bucket, s3_client


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("TABPILOT_METADATA_URI", "TABPILOT_ARTIFACT_URI", "TABPILOT_RUNNER_URI"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_local_stores_need_nothing_created(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["init-stores", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("TABPILOT_METADATA_URI (SQLite): nothing to create")
    assert lines[1].startswith("TABPILOT_ARTIFACT_URI (the local artifact store): nothing")
    assert lines[2].startswith("TABPILOT_RUNNER_URI (")
    assert all("it makes what it needs when first used" in line for line in lines)


def test_the_s3_bucket_is_created_once(
    runner: CliRunner, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bucket = new_bucket_name()
    monkeypatch.setenv("TABPILOT_ARTIFACT_URI", f"s3://{bucket}/tabpilot")
    client = s3_client()
    try:
        first = runner.invoke(main, ["init-stores", "--data-dir", str(tmp_path)])
        assert first.exit_code == 0, first.output
        assert f'TABPILOT_ARTIFACT_URI (the S3 artifact store): created the bucket "{bucket}"' in (
            first.output
        )
        client.head_bucket(Bucket=bucket)  # it exists
        second = runner.invoke(main, ["init-stores", "--data-dir", str(tmp_path)])
        assert second.exit_code == 0, second.output
        assert f'the bucket "{bucket}" exists already' in second.output
    finally:
        remove_bucket(client, bucket)


def test_a_bad_uri_is_refused_naming_the_setting(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TABPILOT_ARTIFACT_URI", "s3://No_Such_Bucket")
    result = runner.invoke(main, ["init-stores", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "TABPILOT_ARTIFACT_URI" in result.output and "names no valid bucket" in result.output
