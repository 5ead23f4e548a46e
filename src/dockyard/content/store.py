"""``ContentStore``: the content-addressed blob store under ``Store.blobs``.

A blob path names a complete, verified file or nothing: bytes only reach ``blobs/`` by the rename
at the end of ``Writer.commit``. Every path comes from ``Store`` (blob(d) from a parsed
``Digest``, ingest(ref) from a validated ref).

Concurrency (within the one process that holds the store lock): a short lock serializes the steps
that make a blob appear, vanish or be relied on (commit's rename, delete, exists/info/open) with
GC's sweep; blobs relied on while GC runs are remembered and spared (see ``gc.py``). One writer
per ingest ref at a time: a second gets ``errors.Unavailable``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import threading

from dockyard.content._fs import fsync_dir
from dockyard.content.ingest import IngestStatus, Writer, status
from dockyard.errors import InvalidArgument, NotFound, Unavailable
from dockyard.oci.digest import Digest
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import BinaryIO

    from dockyard.content.gc import GcReport, Protected, VerifyReport
    from dockyard.store import Store


class BlobInfo(Record):
    digest: Digest
    size: int
    committed_at: float


class ContentStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        for d in (store.blobs, store.ingests):
            os.makedirs(d, mode=0o711, exist_ok=True)
        self._lock = threading.Lock()
        self._active: set[str] = set()  # ingest refs with an open Writer
        self._gc_touched: set[Digest] | None = None  # blobs relied on while a GC runs

    # -- writing
    def writer(self, ref: str, *, expected: Digest | None = None, size: int | None = None) -> Writer:
        """Open (or resume) the ingest ``ref``. ``errors.Unavailable`` if a writer has it open."""
        self.store.ingest(ref)  # validates the ref before anything else
        with self._lock:
            if ref in self._active:
                raise Unavailable(f"ingest {ref} is being written by another writer")
            self._active.add(ref)
        try:
            return Writer(self, ref, expected, size)
        except BaseException:
            self._release(ref)
            raise

    def ingest(self, src: BinaryIO, *, expected: Digest | None = None, size: int | None = None,
               ref: str | None = None, on_digest: Callable[[Digest], None] | None = None) -> Digest:
        """Write a whole stream and commit it. With ``expected`` (and no ``ref``) the ref is
        derived from the digest, so a retry after a crash resumes the same ingest."""
        if ref is None:
            ref = f"{expected.algorithm}-{expected.hex}" if expected else f"tmp-{secrets.token_hex(8)}"
        w = self.writer(ref, expected=expected, size=size)
        if w.offset:
            try:
                src.seek(w.offset)  # resume where the last attempt stopped
            except (AttributeError, OSError, ValueError):
                w.abort()  # a stream that cannot skip: start over
                w = self.writer(ref, expected=expected, size=size)
        with w:
            w.copy_from(src)
            return w.commit(on_digest=on_digest)

    def write_bytes(self, data: bytes, *, expected: Digest | None = None,
                    on_digest: Callable[[Digest], None] | None = None) -> Digest:
        """Store a small blob (a manifest, a config) held in memory."""
        with self.writer(f"tmp-{secrets.token_hex(8)}", expected=expected, size=len(data)) as w:
            w.write(data)
            return w.commit(on_digest=on_digest)

    def _release(self, ref: str) -> None:
        with self._lock:
            self._active.discard(ref)

    def _touch(self, digest: Digest) -> None:
        """Called under ``_lock``: a running GC must not sweep this blob."""
        if self._gc_touched is not None:
            self._gc_touched.add(digest)

    def _publish(self, src: str, digest: Digest) -> bool:
        """Rename a verified, synced file to the blob path; drop it if the blob exists already."""
        target = self.store.blob(digest)
        parent = os.path.dirname(target)
        with self._lock:
            self._touch(digest)
            if os.path.lexists(target):
                os.unlink(src)
                return False
            if not os.path.isdir(parent):
                os.makedirs(parent, mode=0o711, exist_ok=True)
                fsync_dir(self.store.blobs)
            os.rename(src, target)
            fsync_dir(parent)
        return True

    # -- reading
    def exists(self, digest: Digest) -> bool:
        path = self.store.blob(digest)
        with self._lock:
            self._touch(digest)
            return os.path.isfile(path)

    def info(self, digest: Digest) -> BlobInfo:
        path = self.store.blob(digest)
        with self._lock:
            self._touch(digest)
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                raise NotFound(f"content {digest}: not found") from None
        return BlobInfo(digest, st.st_size, st.st_mtime)

    def open(self, digest: Digest) -> BinaryIO:
        """The blob for reading. The open file stays readable even if the blob is deleted later."""
        path = self.store.blob(digest)
        with self._lock:
            self._touch(digest)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                raise NotFound(f"content {digest}: not found") from None
        return os.fdopen(fd, "rb")

    def read_bytes(self, digest: Digest, *, limit: int = 4 << 20) -> bytes:
        """A small blob (manifest, config, index) whole; ``errors.InvalidArgument`` above
        ``limit`` bytes, so a hostile size never becomes an allocation (checklist 4)."""
        with self.open(digest) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidArgument(f"content {digest}: larger than {limit} bytes")
        return data

    def walk(self) -> Iterator[BlobInfo]:
        """Every blob (entries whose names are not digests are skipped; ``verify`` reports them)."""
        for algorithm, name, st in self._entries():
            if stat.S_ISREG(st.st_mode):
                try:
                    d = Digest.parse(f"{algorithm}:{name}")
                except InvalidArgument:
                    continue
                yield BlobInfo(d, st.st_size, st.st_mtime)

    def _entries(self) -> Iterator[tuple[str, str, os.stat_result]]:
        """(algorithm dir, name, lstat) of everything two levels under ``blobs/``.

        Names come from listing the store's own directory; they are only ever joined to it.
        """
        top = self.store.blobs
        try:
            algorithms = sorted(os.listdir(top))
        except FileNotFoundError:
            return
        for algorithm in algorithms:
            adir = f"{top}/{algorithm}"
            try:
                names = sorted(os.listdir(adir))
            except (NotADirectoryError, FileNotFoundError):
                continue
            for name in names:
                try:
                    yield algorithm, name, os.lstat(f"{adir}/{name}")
                except FileNotFoundError:
                    continue

    # -- removing
    def delete(self, digest: Digest) -> None:
        path = self.store.blob(digest)
        with self._lock:
            try:
                os.unlink(path)
            except FileNotFoundError:
                raise NotFound(f"content {digest}: not found") from None
            fsync_dir(os.path.dirname(path))

    # -- ingests
    def ingests(self) -> list[IngestStatus]:
        """Status of every ingest with readable info (in progress, or left by a crash)."""
        out = []
        for ref in self._ingest_refs():
            st = status(self, ref)
            if st is not None:
                out.append(st)
        return out

    def _ingest_refs(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.store.ingests))
        except FileNotFoundError:
            return []
        refs = []
        for name in names:
            try:
                self.store.ingest(name)
            except InvalidArgument:
                continue  # not made by us; never built into a path
            refs.append(name)
        return refs

    def abort(self, ref: str) -> None:
        """Remove an ingest that no writer has open; ``errors.NotFound`` if there is none."""
        path = self.store.ingest(ref)
        with self._lock:
            if ref in self._active:
                raise Unavailable(f"ingest {ref} is being written")
            if not os.path.isdir(path):
                raise NotFound(f"no such ingest: {ref}")
            shutil.rmtree(path)

    # -- maintenance (gc.py)
    def gc(self, protected: Callable[[], Protected], *, ingest_grace: float = 3600.0,
           now: float | None = None) -> GcReport:
        from dockyard.content.gc import collect

        return collect(self, protected, ingest_grace=ingest_grace, now=now)

    def verify(self, *, repair: bool = False) -> VerifyReport:
        from dockyard.content.gc import verify

        return verify(self, repair=repair)
