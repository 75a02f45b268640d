"""Metadata stores: records of datasets, jobs, models, users and job events.

Backends are chosen by URI with `build_metadata_store`; see `MetadataStore` for the interface.
"""

from tabpilot.metadata.base import MetadataStore, Page
from tabpilot.metadata.registry import build_metadata_store

__all__ = ["MetadataStore", "Page", "build_metadata_store"]
