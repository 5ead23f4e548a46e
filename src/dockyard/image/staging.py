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
"""

from __future__ import annotations

import fcntl
import os
import shutil

from dockyard.oci.digest import Digest
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from concurrent.futures import Future

    from dockyard.image.service import ImageService

PREFIX = "load-"
WORKERS = 2  # this VM's cores; extraction is mostly syscalls, sha256 and copies (GIL released)


class StagedLayer(Record):
    """A blob extracted into ``path`` (a directory under the staging directory)."""

    path: str
    digest: Digest
    diff_id: Digest
    size: int  # bytes of regular-file content (docker's layer size)


def remove_stale(tmp: str) -> list[str]:
    """Remove ``load-*`` staging directories no live load holds (left by a crash)."""
    removed = []
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
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


class Stager:
    """Extracts committed layer blobs on worker threads; ``take`` hands a finished one over.

    Use as a context manager: leaving it waits for every worker and removes what was not taken.
    """

    def __init__(self, svc: ImageService) -> None:
        import tempfile
        from concurrent.futures import ThreadPoolExecutor

        self._content = svc.content
        self._whiteout_mode = svc.snapshotter.whiteout_mode
        tmp = svc.store.tmp
        os.makedirs(tmp, mode=0o711, exist_ok=True)
        remove_stale(tmp)
        self.dir = tempfile.mkdtemp(prefix=PREFIX, dir=tmp)
        self._fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="stage")
        self._futures: dict[Digest, Future[StagedLayer | None]] = {}
        self._n = 0

    def submit(self, digest: Digest) -> None:
        """Start extracting the committed blob ``digest`` (once per blob)."""
        if digest in self._futures:
            return
        self._n += 1
        path = os.path.join(self.dir, str(self._n))
        self._futures[digest] = self._pool.submit(self._extract, digest, path)

    def _extract(self, digest: Digest, path: str) -> StagedLayer | None:
        from dockyard.archive.extract import discard_partial, extract_layer

        try:
            os.mkdir(path, 0o755)
            with self._content.open(digest) as f:
                # Committed moments ago: hashed as written, immutable since; a plain tar is
                # not hashed again (its diff id is its digest), a compressed one is.
                r = extract_layer(f, path, whiteout_mode=self._whiteout_mode,
                                  device_policy="create", verified=digest)
        except Exception:  # noqa: BLE001 - not a layer, or a bad one: the ordinary path reports it
            discard_partial(path)
            return None
        if r.digest != digest:
            discard_partial(path)
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
        """Wait for the workers (pending ones cancelled), remove every tree not taken."""
        interrupted: BaseException | None = None
        while True:
            try:
                self._pool.shutdown(wait=True, cancel_futures=True)
                break
            except BaseException as e:  # noqa: BLE001 - e.g. KeyboardInterrupt while waiting
                interrupted = interrupted or e
        self._futures.clear()
        try:
            shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            os.close(self._fd)
        if interrupted is not None:
            raise interrupted

    def __enter__(self) -> Stager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
