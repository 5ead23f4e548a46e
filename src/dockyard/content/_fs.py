"""Small file-system helpers for the content store: directory fsync, atomic small files."""

from __future__ import annotations

import os


def fsync_dir(path: str) -> None:
    """Make a rename or unlink in ``path`` durable (the directory entry lives in the directory)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """Readers see the old or the new file, never half of one (rename over it).

    Not fsynced: it is only used for ingest metadata, which a power loss may lose as a whole
    (the ingest is then restarted, or collected).
    """
    tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_small(path: str, limit: int = 1 << 16) -> bytes | None:
    """The file's bytes, or None if it is missing or larger than ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    return None if len(data) > limit else data
