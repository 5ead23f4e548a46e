"""GC roots and consistency checks that join the metadata with the content store.

The marks are read in one transaction: a pull adds its image row before deleting its lease, so
a consistent read sees every in-flight blob under the lease or under the image, never neither.
"""

from __future__ import annotations

from dockyard.content.gc import GcReport, Protected
from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.content.store import ContentStore
    from dockyard.metadata.db import Database


def content_protected(db: Database, now: float | None = None) -> Protected:
    """Every blob an image needs (manifest, config, layers) or a live lease names; leased ingests."""
    with db.transaction():
        roots = db.images.blob_roots()
        leased = db.leases.leased("blob", now)
        ingests = db.leases.leased("ingest", now)
    for key in leased:
        try:
            roots.add(Digest.parse(key))
        except InvalidArgument:
            continue  # a lease may name anything; only digests can be blobs
    return Protected(frozenset(roots), frozenset(ingests))


def collect_garbage(db: Database, content: ContentStore, *, ingest_grace: float = 3600.0,
                    now: float | None = None) -> GcReport:
    """Drop expired leases (a crashed pull's protection ends), then mark and sweep the content."""
    db.leases.delete_expired(now)
    return content.gc(lambda: content_protected(db, now), ingest_grace=ingest_grace, now=now)


def missing_content(db: Database, content: ContentStore) -> list[tuple[Digest, Digest]]:
    """(image id, blob) for every blob an image row needs that the content store lacks."""
    out: list[tuple[Digest, Digest]] = []
    for image in db.images.list():
        needed = [image.manifest_digest, image.id, *(la.blob_digest for la in image.layers)]
        out.extend((image.id, d) for d in needed if not content.exists(d))
    return out
