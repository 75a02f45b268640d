"""Artifact stores: dataset files and model bundles by key.

Backends are chosen by URI with `build_artifact_store` (registered in `registry.py`); see
`ArtifactStore` for the interface, which every backend passes tests/storage/test_contract.py
on. Every key the platform writes is built by `keys.py`.
"""

from tabpilot.storage.base import ArtifactStore, validate_key
from tabpilot.storage.registry import build_artifact_store

__all__ = ["ArtifactStore", "build_artifact_store", "validate_key"]
