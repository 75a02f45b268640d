"""The application context: settings plus the three backends, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tabpilot.metadata import build_metadata_store
from tabpilot.metadata.base import MetadataStore
from tabpilot.scrub import add_server_paths
from tabpilot.settings import Settings
from tabpilot.storage import build_artifact_store
from tabpilot.storage.base import ArtifactStore

if TYPE_CHECKING:
    from tabpilot.jobs.base import JobRunner


@dataclass
class AppContext:
    settings: Settings
    metadata: MetadataStore
    artifacts: ArtifactStore
    runner: JobRunner


def build_context(settings: Settings, *, runner: JobRunner | None = None) -> AppContext:
    """Open the stores named by `settings` and build (but do not start) the runner."""
    from tabpilot.jobs.registry import build_runner

    artifacts = build_artifact_store(settings.artifact_uri)
    runner = runner if runner is not None else build_runner(settings.runner_uri)
    # Last: it is the one backend that holds something open (connections) to close.
    metadata = build_metadata_store(settings.metadata_uri)
    # Job messages must never show where this server keeps its files (tabpilot.scrub).
    add_server_paths(settings.data_dir, getattr(artifacts, "root", None))
    return AppContext(settings=settings, metadata=metadata, artifacts=artifacts, runner=runner)
