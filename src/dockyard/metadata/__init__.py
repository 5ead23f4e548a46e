"""Metadata in SQLite: ``Database`` (schema drawn in ``db.py``) and its typed repositories."""

from dockyard.metadata.db import SCHEMA_VERSION, Database
from dockyard.metadata.records import (
    ContainerRecord,
    ImageRecord,
    ImageRefs,
    LayerRecord,
    LeaseRecord,
    LeaseResource,
    SnapshotRecord,
    TagRecord,
)

__all__ = ["SCHEMA_VERSION", "ContainerRecord", "Database", "ImageRecord", "ImageRefs",
           "LayerRecord", "LeaseRecord", "LeaseResource", "SnapshotRecord", "TagRecord"]
