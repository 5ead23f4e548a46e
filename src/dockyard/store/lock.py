"""``StoreLock``: the flock on ``Store.lock`` that keeps two writers off one store (checklist 44).

Why flock and not a pid file: the kernel drops the lock when the holder dies, even by SIGKILL, so
a crash never leaves a stale lock to clean up. Why not ``fcntl`` (POSIX) record locks: those are
per process, so a second lock in the same process would succeed silently, and closing *any* fd of
the file drops them; flock locks belong to the open file description.

The fd is close-on-exec, so the runtime and monitors the daemon executes never inherit the lock. A
child made by a bare ``fork()`` does inherit it and keeps the store locked while it lives: close
it there (``StoreLock.close_in_child``) before doing anything long-lived.

The exclusive holder writes its pid into the file, so the error a second process gets names it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from dockyard.errors import Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

    from dockyard.store import Store


class StoreLock:
    """An flock on one file. ``timeout=0``: fail at once; ``None``: wait forever; else seconds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self.shared = False

    @classmethod
    def for_store(cls, store: Store) -> StoreLock:
        return cls(store.lock)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, shared: bool = False, timeout: float | None = 0) -> StoreLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: lock already held by this object")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        try:
            while True:
                try:
                    fcntl.flock(fd, op | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise Unavailable(self._busy_message(fd, timeout))
                pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
                time.sleep(pause)
                delay = min(delay * 2, 0.1)
        except BaseException:
            os.close(fd)
            raise
        if not shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd, self.shared = fd, shared
        return self

    def _busy_message(self, fd: int, timeout: float | None) -> str:
        try:
            pid = os.pread(fd, 32, 0).decode().strip()
        except (OSError, UnicodeDecodeError):
            pid = ""
        notes = [f"pid {pid}"] if pid.isdigit() else []
        if timeout:
            notes.append(f"waited {timeout:g}s")
        return f"another dockyard process holds {self.path}" + (f" ({', '.join(notes)})" if notes else "")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if not self.shared:
                os.ftruncate(fd, 0)  # the pid is no longer the holder's
        except OSError:
            pass
        os.close(fd)  # closing the only fd of the description drops the flock

    def close_in_child(self) -> None:
        """In a forked child: close the inherited fd without unlocking the parent's lock."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> StoreLock:
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def lock_store(store: Store, *, shared: bool = False, timeout: float | None = 0) -> StoreLock:
    """Take the store's lock (exclusive unless ``shared``); ``errors.Unavailable`` if it is held."""
    return StoreLock(store.lock).acquire(shared=shared, timeout=timeout)
