"""Content-addressed blob store: resumable verified ingest, commit by rename, GC, verify.

See ``store.py`` (ContentStore), ``ingest.py`` (Writer) and ``gc.py`` (mark-and-sweep, verify).
"""

from dockyard.content.gc import GcReport, Protected, VerifyReport
from dockyard.content.ingest import IngestStatus, Writer
from dockyard.content.store import BlobInfo, ContentStore

__all__ = ["BlobInfo", "ContentStore", "GcReport", "IngestStatus", "Protected", "VerifyReport",
           "Writer"]
