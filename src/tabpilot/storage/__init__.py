"""Artifact stores: dataset files and model bundles by key.

Backends are chosen by URI with `build_artifact_store`; see `ArtifactStore` for the interface.
"""

from tabpilot.storage.base import ArtifactStore, validate_key
from tabpilot.storage.registry import build_artifact_store

__all__ = ["ArtifactStore", "build_artifact_store", "validate_key"]
