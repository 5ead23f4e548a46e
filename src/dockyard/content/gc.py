"""Garbage collection and verification of the content store.

GC is mark-and-sweep and safe while pulls run (checklist 45). The marks come from a callable
(``metadata.gc.content_protected`` reads image rows and live leases in one transaction, so an
image added just before its lease is deleted is seen in one or the other). The race to close:
a blob committed or found present *after* the marks were read but before the sweep. So:

1. under the content lock, start recording every blob that is committed or relied on
   (``exists``/``info``/``open``/commit);
2. read the marks (without the content lock: the database has its own lock, and no lock order
   between the two is needed);
3. under the content lock, sweep blobs neither marked nor recorded, and stale ingests that no
   open writer and no lease holds.

A writer's protocol is: add the blob to a lease, *then* commit or check it exists (or pass
``on_digest`` to ``commit`` when the digest is only known at the end).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time

from dockyard.content._fs import fsync_dir
from dockyard.content.ingest import CHUNK, IngestInfo
from dockyard.errors import InvalidArgument, Unavailable
from dockyard.oci.digest import Digest
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from dockyard.content.store import ContentStore

_ALGORITHMS = ("sha256", "sha512")


class Protected(Record):
    """What GC must keep: blobs reachable from roots or named by a live lease, leased ingests."""

    blobs: frozenset[Digest] = frozenset()
    ingests: frozenset[str] = frozenset()


class GcReport(Record):
    blobs_removed: tuple[Digest, ...]
    bytes_freed: int
    ingests_removed: tuple[str, ...]


class VerifyReport(Record):
    """``bad``: blobs whose bytes do not hash to their name; ``stray``: entries under ``blobs/``
    that are not blobs at all (paths relative to it). ``repaired``: they were removed."""

    checked: int
    bad: tuple[Digest, ...]
    stray: tuple[str, ...]
    repaired: bool

    @property
    def clean(self) -> bool:
        return not self.bad and not self.stray


def collect(cs: ContentStore, protected: Callable[[], Protected], *, ingest_grace: float = 3600.0,
            now: float | None = None) -> GcReport:
    """Sweep blobs not in ``protected().blobs`` and ingests idle for ``ingest_grace`` seconds."""
    with cs._lock:
        if cs._gc_touched is not None:
            raise Unavailable("content garbage collection is already running")
        cs._gc_touched = set()
    try:
        keep = protected()
        removed: list[Digest] = []
        freed = 0
        ingests: list[str] = []
        with cs._lock:
            spared = keep.blobs | cs._gc_touched
            dirs = set()
            for info in list(cs.walk()):
                if info.digest in spared:
                    continue
                path = cs.store.blob(info.digest)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                removed.append(info.digest)
                freed += info.size
                dirs.add(os.path.dirname(path))
            for d in dirs:
                fsync_dir(d)
            t = time.time() if now is None else now
            for ref in cs._ingest_refs():
                if ref in cs._active or ref in keep.ingests:
                    continue
                if t - _last_activity(cs, ref) >= ingest_grace or _finished(cs, ref):
                    shutil.rmtree(cs.store.ingest(ref), ignore_errors=True)
                    ingests.append(ref)
    finally:
        with cs._lock:
            cs._gc_touched = None
    return GcReport(tuple(removed), freed, tuple(ingests))


def _finished(cs: ContentStore, ref: str) -> bool:
    """A crash between commit's rename and the ingest's removal: the blob is there, no data."""
    info = IngestInfo.load(cs.store.ingest_info(ref))
    return (info is not None and info.expected is not None
            and not os.path.lexists(cs.store.ingest_data(ref))
            and os.path.isfile(cs.store.blob(info.expected)))


def _last_activity(cs: ContentStore, ref: str) -> float:
    """The newest mtime of the ingest's directory, info and data: when it last moved."""
    latest = 0.0
    for path in (cs.store.ingest(ref), cs.store.ingest_info(ref), cs.store.ingest_data(ref)):
        try:
            latest = max(latest, os.lstat(path).st_mtime)
        except FileNotFoundError:
            pass
    return latest


def _hash(path: str, algorithm: str) -> tuple[Digest, int] | None:
    """(digest, inode) of the file, or None if it vanished meanwhile (GC, delete)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        h = hashlib.new(algorithm)
        while buf := os.read(fd, CHUNK):
            h.update(buf)
        return Digest.of_hasher(h), os.fstat(fd).st_ino
    finally:
        os.close(fd)


def verify(cs: ContentStore, *, repair: bool = False) -> VerifyReport:
    """Rehash every blob against its name; report (and with ``repair`` remove) bad and stray ones.

    Hashing runs without the content lock; a removal re-checks under it that the entry is still
    the same inode, so a blob re-committed meanwhile is never removed.
    """
    top = cs.store.blobs
    bad: list[tuple[Digest, int]] = []
    stray: list[tuple[str, int]] = []
    checked = 0
    try:
        tops = sorted(os.listdir(top))
    except FileNotFoundError:
        tops = []
    for name in tops:
        st = os.lstat(f"{top}/{name}")
        if name not in _ALGORITHMS or not stat.S_ISDIR(st.st_mode):
            stray.append((name, st.st_ino))
    for algorithm, name, st in cs._entries():
        rel = f"{algorithm}/{name}"
        if algorithm not in _ALGORITHMS:
            continue  # the whole directory is already stray
        try:
            d = Digest.parse(f"{algorithm}:{name}")
        except InvalidArgument:
            d = None
        if d is None or not stat.S_ISREG(st.st_mode):
            stray.append((rel, st.st_ino))
            continue
        result = _hash(cs.store.blob(d), algorithm)
        if result is None:
            continue
        checked += 1
        actual, ino = result
        if actual != d:
            bad.append((d, ino))
    if repair:
        with cs._lock:
            for d, ino in bad:
                _remove_if_same(cs.store.blob(d), ino)
            for rel, ino in stray:
                _remove_if_same(f"{top}/{rel}", ino)
    return VerifyReport(checked, tuple(d for d, _ in bad), tuple(r for r, _ in stray), repair)


def _remove_if_same(path: str, ino: int) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if st.st_ino != ino:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    fsync_dir(os.path.dirname(path))
