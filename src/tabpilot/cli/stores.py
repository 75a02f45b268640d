"""`tabpilot init-stores`: create what the configured backends need, when it is missing."""

from __future__ import annotations

from pathlib import Path

import click

from tabpilot.cli.common import data_dir_option, friendly_errors, settings_with
from tabpilot.cli.display import say


@click.command("init-stores")
@data_dir_option
@friendly_errors
def init_stores(data_dir: Path | None) -> None:
    """Create what the configured stores name when it is missing (an S3 bucket, a DynamoDB
    table); safe to repeat.

    For development and tests: in a real AWS deployment Terraform creates the bucket and
    table. SQLite databases, local folders and the local runners create what they need when
    first used, so for them there is nothing to do. Each backend's own init does the work
    (backends.py).
    """
    from tabpilot.jobs.registry import RUNNERS
    from tabpilot.metadata.registry import METADATA_STORES
    from tabpilot.storage.registry import ARTIFACT_STORES

    settings = settings_with(data_dir=data_dir)
    configured = (
        (METADATA_STORES, settings.metadata_uri),
        (ARTIFACT_STORES, settings.artifact_uri),
        (RUNNERS, settings.runner_uri),
    )
    for registry, uri in configured:
        backend, done = registry.initialize(uri)
        what = done or "nothing to create; it makes what it needs when first used"
        say(f"{registry.setting} ({backend.name}): {what}")
