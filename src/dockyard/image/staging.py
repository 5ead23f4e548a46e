"""Layers extracted while an archive is still being read (``load``'s overlap of its two phases).

A docker-archive names its layers' diff ids and order only in ``manifest.json`` and the config,
which often come after the layers; so the snapshot a layer belongs to (its chain id) is unknown
while its bytes stream by. With a snapshotter whose layers are independent directories
(overlay), a layer's files do not depend on the layers below it, so each layer blob is extracted
as soon as it is committed to the content store, on a worker thread, into a staging directory
under the store's ``tmp/``, while the main thread goes on reading the archive. ``unpack_layers``
later *adopts* a staged tree (one rename into the prepared snapshot) when its diff id is the one
the config names; anything else (a mismatch, an extraction that failed, a blob that is no layer)
is dropped and the ordinary path runs, which reports the error as before.

Guarantees kept: a staged tree is only the extraction of a committed, verified blob (its digest
checked again while extracting), confined as every extraction is; it becomes a snapshot only
through ``prepare_layer`` / ``commit_layers`` (one syncfs before anything is marked complete).
Crash safety: a staging directory is named ``load-*`` and flock'ed while in use; a crash leaves
it behind, unreferenced, and the next load removes every ``load-*`` directory nobody holds.

Where the trees go (kernel/inode_flags.py): the staging directory is a top of hierarchies, so each
layer's slot ``load-*/<n>/`` lands in a block group of its own and its tree ``<n>/fs`` next to it.
A finished load keeps its slots, empty, for ``KEEP_EMPTY`` seconds: an ``rmi`` of those layers
then leaves their groups one directory fuller than the emptiest, so the next load's layers go to
other groups instead of scanning the inodes just freed there (a journal-less ext4 will not reuse
them for up to six minutes). Only empty directories are kept, at most ``MAX_KEPT`` loads' worth.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time

from dockyard.oci.digest import Digest
from dockyard.record import Record
from dockyard.kernel.inode_flags import spread_subtrees

TYPE_CHECKING = False
if TYPE_CHECKING:
    from concurrent.futures import Future

    from dockyard.image.service import ImageService

PREFIX = "load-"
KEEP_EMPTY = 600.0  # seconds: longer than ext4's six minutes of not reusing a freed inode
MAX_KEPT = 32
WORKERS = 2  # this VM's cores; extraction is mostly syscalls, sha256 and copies (GIL released)


class StagedLayer(Record):
    """A blob extracted into ``path`` (a directory under the staging directory)."""

    path: str
    digest: Digest
    diff_id: Digest
    size: int  # bytes of regular-file content (docker's layer size)


def _only_empty_dirs(path: str) -> bool:
    """``path`` holds nothing but empty directories (a finished load's slots)."""
    try:
        with os.scandir(path) as it:
            for e in it:
                if not e.is_dir(follow_symlinks=False) or os.listdir(e.path):
                    return False
    except OSError:
        return False
    return True


def remove_stale(tmp: str, now: float | None = None) -> list[str]:
    """Remove ``load-*`` staging directories no live load holds: a crashed load's, and finished
    loads' empty slots once older than ``KEEP_EMPTY`` (or beyond the newest ``MAX_KEPT``)."""
    removed: list[str] = []
    kept: list[tuple[float, str]] = []
    now = time.time() if now is None else now
    try:
        names = os.listdir(tmp)
    except FileNotFoundError:
        return removed
    for name in names:
        if not name.startswith(PREFIX):
            continue
        path = os.path.join(tmp, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a load in progress
        try:
            mtime = os.fstat(fd).st_mtime
            if now - mtime < KEEP_EMPTY and _only_empty_dirs(path):
                kept.append((mtime, path))
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    kept.sort(reverse=True)
    for _, path in kept[MAX_KEPT:]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class Abandoned(Exception):
    """The blob a staged extraction was reading will not be committed (the load failed)."""


class Feed:
    """One blob as the ingest writer writes it, readable by offset on another thread: a read
    waits until the writer got that far. ``finish(digest)`` once the writer committed the blob
    (verified), ``abandon()`` otherwise; either wakes every waiter. Also a
    ``archive.extract.PlainSource`` (``size``, ``read``/``tell``/``seek``, ``copy``)."""

    def __init__(self, path: str, size: int) -> None:
        import threading

        self.fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.size = size
        self._written = 0
        self._pos = 0
        self._digest: Digest | None = None
        self._abandoned = False
        self._cond = threading.Condition()

    # -- the writer's side (the load's thread)
    def wrote(self, n: int) -> None:
        # No branch on the reader's state: what this thread executes never depends on timing.
        with self._cond:
            self._written += n
            self._cond.notify_all()

    def finish(self, digest: Digest) -> None:
        """The writer committed the blob: every byte is written and verified as ``digest``."""
        with self._cond:
            self._digest = digest
            self._cond.notify_all()

    def abandon(self) -> None:
        """The reader must stop: its next wait raises ``Abandoned`` (also after ``finish``)."""
        with self._cond:
            self._abandoned = True
            self._cond.notify_all()

    # -- the reader's side (a worker)
    def _wait(self, end: int) -> int:
        """Wait until ``end`` bytes are written (fewer if the blob is complete and shorter)."""
        end = min(end, self.size)
        with self._cond:
            while self._written < end and self._digest is None and not self._abandoned:
                self._cond.wait()
            if self._abandoned:
                raise Abandoned("the load stopped before this blob was committed")
            return self._written

    def digest(self) -> Digest:
        """The committed blob's digest (waits for the commit)."""
        with self._cond:
            while self._digest is None and not self._abandoned:
                self._cond.wait()
            if self._abandoned:
                raise Abandoned("the load stopped before this blob was committed")
            return self._digest

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self._pos
        self._wait(self._pos + n)
        b = os.pread(self.fd, n, self._pos)
        self._pos += len(b)
        return b

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos + (self._pos if whence == 1 else self.size if whence == 2 else 0)
        return self._pos

    def copy(self, offset: int, size: int, dst: int) -> None:
        from dockyard.archive.extract import copy_range

        self._wait(offset + size)
        copy_range(self.fd, offset, size, dst)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        os.close(self.fd)


class Stager:
    """Extracts layer blobs on worker threads while they are written; ``take`` hands a finished
    one over. Use as a context manager: leaving it abandons the blobs not committed, waits for
    every worker and removes what was not taken.
    """

    def __init__(self, svc: ImageService) -> None:
        import tempfile
        from concurrent.futures import ThreadPoolExecutor

        self._whiteout_mode = svc.snapshotter.whiteout_mode
        tmp = svc.store.tmp
        os.makedirs(tmp, mode=0o711, exist_ok=True)
        remove_stale(tmp)
        self.dir = tempfile.mkdtemp(prefix=PREFIX, dir=tmp)
        self._fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        spread_subtrees(self.dir)  # each layer's slot in a block group of its own
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="stage")
        self._futures: dict[Digest, Future[StagedLayer | None]] = {}  # committed blobs
        self._feeds: dict[Feed, Future[StagedLayer | None]] = {}  # blobs being written
        self._jobs: list[tuple[Feed, Future[StagedLayer | None]]] = []
        self._n = 0

    def start(self, path: str, size: int) -> Feed:
        """Start extracting the blob being written to ``path`` (``size`` bytes in all); the
        caller reports progress on the returned ``Feed`` and then ``committed``/``abandon``."""
        feed = Feed(path, size)
        self._n += 1
        slot = os.path.join(self.dir, str(self._n))
        os.mkdir(slot, 0o700)
        fut = self._pool.submit(self._extract, feed, os.path.join(slot, "fs"))
        self._feeds[feed] = fut
        self._jobs.append((feed, fut))
        return feed

    def committed(self, feed: Feed, digest: Digest) -> None:
        """The blob of ``feed`` is in the content store as ``digest`` (verified)."""
        feed.finish(digest)
        fut = self._feeds.pop(feed)
        if digest in self._futures:  # the same blob twice in one archive: one tree is enough
            return
        self._futures[digest] = fut

    def abandon(self, feed: Feed) -> None:
        feed.abandon()
        self._feeds.pop(feed, None)

    def _extract(self, feed: Feed, path: str) -> StagedLayer | None:
        from dockyard.archive.compression import NONE, detect_compression
        from dockyard.archive.extract import discard_partial, extract_layer, extract_plain

        try:
            os.mkdir(path, 0o755)
            if detect_compression(feed.read(6)) == NONE:
                # A plain tar: not hashed again (its diff id is the digest the writer verifies
                # at commit); file data copied by the kernel from the blob as it is written.
                feed.seek(0)
                r = extract_plain(feed, path, feed.digest, whiteout_mode=self._whiteout_mode,
                                  device_policy="create")
            else:
                feed.seek(0)
                r = extract_layer(feed, path, whiteout_mode=self._whiteout_mode,  # type: ignore[arg-type]
                                  device_policy="create")
            if r.digest != feed.digest():
                raise Abandoned("the blob extracted is not the blob committed")
        except Exception:  # noqa: BLE001 - not a layer, a bad one, or abandoned: the ordinary
            discard_partial(path)  # path reports it
            return None
        return StagedLayer(path, r.digest, r.diff_id, r.size)

    def take(self, digest: Digest) -> StagedLayer | None:
        """The extracted tree of ``digest`` (waits for it), or None: not staged, or it failed.
        Each tree is handed out once; the caller renames it away or leaves it for ``close``."""
        fut = self._futures.pop(digest, None)
        if fut is None:
            return None
        return fut.result()

    def close(self) -> None:
        """Stop every extraction still running (a blob not committed, or one no image turned
        out to need), wait for the workers (those not started are cancelled), remove every
        tree not taken; the slots stay, empty (see the module docstring)."""
        for feed, _ in self._jobs:  # a worker still extracting stops at its next read
            feed.abandon()
        interrupted: BaseException | None = None
        while True:
            try:
                self._pool.shutdown(wait=True, cancel_futures=True)
                break
            except BaseException as e:  # noqa: BLE001 - e.g. KeyboardInterrupt while waiting
                interrupted = interrupted or e
        for feed, _ in self._jobs:  # every worker has stopped
            feed.close()
        self._jobs.clear()
        self._futures.clear()
        self._feeds.clear()
        try:
            if not self._n or not self._empty_slots():  # no layer staged: nothing worth keeping
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            os.close(self._fd)
        if interrupted is not None:
            raise interrupted

    def _empty_slots(self) -> bool:
        """Remove the trees not taken, keep the slots (the module docstring says why); False if
        that failed (then the whole directory goes)."""
        try:
            for slot in os.listdir(self.dir):
                slot = os.path.join(self.dir, slot)
                for tree in os.listdir(slot):
                    shutil.rmtree(os.path.join(slot, tree), ignore_errors=True)
            os.utime(self._fd)  # finished now: kept KEEP_EMPTY from here
        except OSError:
            return False
        return True

    def __enter__(self) -> Stager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
