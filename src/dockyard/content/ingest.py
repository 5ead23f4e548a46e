"""``Writer``: one resumable, verified write of a blob through ``content/ingest/<ref>/``.

The bytes go to ``<ingest>/data`` and are hashed as they are written, never held in memory. A
writer refuses any byte past the expected size (checklist 5: a lying size is caught at size+1,
not after the whole stream). ``commit()`` checks size and digest (a mismatch removes the ingest
and stores nothing: checklist 1), fsyncs the data and renames it into ``blobs/`` (then fsyncs
that directory), so a blob path only ever names a complete, verified file.

Resume: opening a writer on a ref whose ingest exists continues at its offset; the hash state is
rebuilt by reading the bytes already there (hashlib states cannot be saved). Opening it for other
content (a different expected digest or size) starts over.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time

from dockyard.content._fs import read_small, write_atomic
from dockyard.errors import FailedPrecondition, InvalidArgument, KernelError
from dockyard.oci.digest import Digest
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import BinaryIO

    from dockyard.content.store import ContentStore

CHUNK = 1 << 20


class IngestInfo(Record):
    """What ``<ingest>/info`` holds."""

    ref: str
    expected: Digest | None
    total: int | None
    started: float

    def to_json(self) -> bytes:
        return json.dumps({"ref": self.ref, "expected": None if self.expected is None else
                           str(self.expected), "total": self.total, "started": self.started}).encode()

    @classmethod
    def load(cls, path: str) -> IngestInfo | None:
        """The info at ``path``, or None when it is missing or unreadable (the ingest restarts)."""
        raw = read_small(path)
        if raw is None:
            return None
        try:
            d = json.loads(raw)
            expected = None if d["expected"] is None else Digest.parse(d["expected"])
            total = d["total"]
            if total is not None and (not isinstance(total, int) or total < 0):
                return None
            return cls(str(d["ref"]), expected, total, float(d["started"]))
        except (ValueError, KeyError, TypeError, InvalidArgument):
            return None


class IngestStatus(Record):
    ref: str
    offset: int
    total: int | None
    expected: Digest | None
    started_at: float
    updated_at: float


def _hash_file(fd: int, hasher: object, limit: int | None = None) -> int:
    """Feed the file's bytes from offset 0 into ``hasher``; return how many (at most ``limit``)."""
    n = 0
    while limit is None or n < limit:
        want = CHUNK if limit is None else min(CHUNK, limit - n)
        buf = os.pread(fd, want, n)
        if not buf:
            break
        hasher.update(buf)  # type: ignore[attr-defined]
        n += len(buf)
    return n


class Writer:
    """Made by ``ContentStore.writer``; use as a context manager (leaving it unfinished keeps
    the ingest for a later resume; GC collects it once stale)."""

    def __init__(self, cs: ContentStore, ref: str, expected: Digest | None, size: int | None) -> None:
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise InvalidArgument(f"ingest {ref}: invalid size {size!r}")
        self._cs = cs
        self.ref = ref
        store = cs.store
        self._dir = store.ingest(ref)
        self._data = store.ingest_data(ref)
        self._info_path = store.ingest_info(ref)
        self._fd: int | None = None
        try:
            info = self._prepare(expected, size)
            self.expected: Digest | None = info.expected
            self.total: int | None = info.total
            self.started = info.started
            self._hasher = hashlib.new(self.expected.algorithm if self.expected else "sha256")
            self._fd = self._open_data()
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                shutil.rmtree(self._dir, ignore_errors=True)
            raise KernelError(f"open ingest {self._dir}", e.errno or errno.EIO) from None

    def _prepare(self, expected: Digest | None, size: int | None) -> IngestInfo:
        """The ingest's info: the existing one (completed with what the caller now knows) or new."""
        info = IngestInfo.load(self._info_path)
        if info is not None and ((expected is not None and info.expected not in (None, expected))
                                 or (size is not None and info.total not in (None, size))):
            info = None  # left by a write of other content: start over
        if info is None:
            shutil.rmtree(self._dir, ignore_errors=True)
            os.mkdir(self._dir, 0o700)
            info = IngestInfo(self.ref, expected, size, time.time())
            write_atomic(self._info_path, info.to_json())
        elif (expected is not None and info.expected is None) or \
                (size is not None and info.total is None):
            info = IngestInfo(self.ref, expected or info.expected,
                              size if size is not None else info.total, info.started)
            write_atomic(self._info_path, info.to_json())
        return info

    def _open_data(self) -> int:
        """Open the data file at its end, with the hash rebuilt from the bytes already there."""
        fd = os.open(self._data, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            self._offset = _hash_file(fd, self._hasher)
            if self.total is not None and self._offset > self.total:
                os.ftruncate(fd, 0)  # more than the whole blob: not this content; start over
                self._hasher = hashlib.new(self._hasher.name)
                self._offset = 0
            os.lseek(fd, self._offset, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- state
    @property
    def offset(self) -> int:
        """Bytes written so far: where a resumed download continues (an HTTP Range start)."""
        return self._offset

    def digest(self) -> Digest:
        """The digest of the bytes written so far."""
        return Digest.of_hasher(self._hasher.copy())

    def _fd_or_fail(self) -> int:
        if self._fd is None:
            raise FailedPrecondition(f"ingest {self.ref}: writer is closed")
        return self._fd

    # -- writing
    def write(self, data: bytes | bytearray | memoryview) -> int:
        fd = self._fd_or_fail()
        n = len(data)
        if self.total is not None and self._offset + n > self.total:
            self.abort()
            raise InvalidArgument(f"ingest {self.ref}: more data than the expected size {self.total} "
                                  f"(at least {self._offset + n} bytes)")
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError as e:
            self._fail(e, "write")
        self._hasher.update(data)
        self._offset += n
        return n

    def copy_from(self, src: BinaryIO, *, chunk: int = CHUNK) -> int:
        """Copy ``src`` to its end; with a known size, never read more than size+1 bytes."""
        copied = 0
        while True:
            want = chunk if self.total is None else min(chunk, self.total - self._offset + 1)
            buf = src.read(want)
            if not buf:
                return copied
            copied += self.write(buf)

    def _fail(self, e: OSError, what: str) -> None:
        """Disk full: drop the ingest (checklist 43). Other errors: keep it for a resume."""
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            self.abort()
        else:
            self.close()  # the file may hold bytes the hash has not seen; a resume rehashes
        raise KernelError(f"{what} ingest {self._data}", e.errno or errno.EIO) from None

    def commit(self, size: int | None = None, expected: Digest | None = None, *,
               on_digest: Callable[[Digest], None] | None = None) -> Digest:
        """Verify, make durable and publish the blob; return its digest.

        ``size``/``expected`` default to the writer's. A mismatch raises ``errors.InvalidArgument``
        naming expected and actual, and the ingest is removed. ``on_digest`` is called with the
        verified digest just before the blob becomes visible: record it in a lease there, so GC
        cannot sweep it between commit and the image row that will reference it.
        """
        fd = self._fd_or_fail()
        size = self.total if size is None else size
        expected = self.expected if expected is None else expected
        if size is not None and self._offset != size:
            self.abort()
            raise InvalidArgument(f"commit ingest {self.ref}: size mismatch: expected {size} bytes, "
                                  f"got {self._offset}")
        if expected is not None and expected.algorithm != self._hasher.name:
            h = expected.hasher()
            _hash_file(fd, h)
            actual = Digest.of_hasher(h)
        else:
            actual = self.digest()
        if expected is not None and actual != expected:
            self.abort()
            raise InvalidArgument(f"commit ingest {self.ref}: digest mismatch: expected {expected}, "
                                  f"actual {actual}")
        try:
            os.fsync(fd)
        except OSError as e:
            self._fail(e, "sync")
        if on_digest is not None:
            on_digest(actual)  # if it raises, the ingest stays, verified and resumable
        try:
            os.fchmod(fd, 0o444)  # blobs are immutable
            self._cs._publish(self._data, actual)
        except OSError as e:
            self._fail(e, "commit")
        self.abort()  # the data is gone (renamed or dropped); remove the rest of the ingest
        return actual

    def close(self) -> None:
        """Stop writing but keep the ingest, to resume it later."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
            self._cs._release(self.ref)

    def abort(self) -> None:
        """Stop writing and remove the ingest. A no-op once closed: the ref may be another
        writer's by then (use ``ContentStore.abort(ref)`` for an ingest nobody writes)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        os.close(fd)
        shutil.rmtree(self._dir, ignore_errors=True)  # still ours: the ref is registered until now
        self._cs._release(self.ref)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Writer(ref={self.ref!r}, offset={self._offset}, total={self.total})"


def status(cs: ContentStore, ref: str) -> IngestStatus | None:
    """The state of one ingest, or None when it has no readable info (a crash before it was set
    up; GC collects it)."""
    store = cs.store
    info = IngestInfo.load(store.ingest_info(ref))
    if info is None:
        return None
    try:
        st = os.stat(store.ingest_data(ref))
        offset, updated = st.st_size, st.st_mtime
    except FileNotFoundError:
        offset, updated = 0, info.started
    return IngestStatus(ref, offset, info.total, info.expected, info.started, updated)
