"""Rotating a container's log under a running conmon.

conmon 2.1.6 does not rotate: with ``--log-size-max`` it truncates (it writes ``ctr.log.tmp`` and
renames it over ``ctr.log``). So the daemon renames ``ctr.log.(n-1)`` -> ``ctr.log.n`` …
``ctr.log`` -> ``ctr.log.1`` itself and then sends conmon its REOPEN_LOGS_EVENT: ``"2 0 0\\n"``
into the control FIFO ``<bundle>/ctl`` (conmon's ``--full-attach`` layout; checked with the real
2.1.6 binary). Until conmon reads it, it keeps writing into the renamed ``ctr.log.1``, so no line is
lost; its reopen then creates a fresh ``ctr.log``. Readers (``logs.follow``) cope with both steps.
"""

from __future__ import annotations

import asyncio
import errno
import os

from dockyard.engine.logs import rotated_paths
from dockyard.engine.units import parse_size
from dockyard.errors import InvalidArgument
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

#: conmon's control message "reopen the log files" (REOPEN_LOGS_EVENT = 2; height/width unused).
REOPEN_MESSAGE = b"2 0 0\n"


class LogOptions(Record):
    """``--log-opt max-size=… max-file=…``; ``max_size <= 0`` never rotates."""

    max_size: int = 10 * 1024 * 1024
    max_file: int = 3

    @classmethod
    def parse(cls, opts: Mapping[str, str], driver: str = "k8s-file") -> LogOptions:
        """From the container's ``HostConfig.LogConfig.Config``; errors as dockerd words them."""
        known = {"max-size", "max-file"}
        for key in opts:
            if key not in known:
                raise InvalidArgument(f"unknown log opt '{key}' for {driver} log driver")
        max_size = cls._defaults["max_size"]
        max_file = cls._defaults["max_file"]
        if "max-size" in opts:
            text = opts["max-size"]
            max_size = -1 if text == "-1" else parse_size(text)
        if "max-file" in opts:
            text = opts["max-file"]
            if not text.isdigit() or int(text) < 1:
                raise InvalidArgument(f"invalid value for max-file: {text!r}: "
                                      "must be a positive number")
            max_file = int(text)
        return cls(max_size=max_size, max_file=max_file)


def reopen(ctl_fifo: str) -> bool:
    """Ask the conmon that owns ``ctl_fifo`` to reopen its log; False if no conmon listens."""
    try:
        fd = os.open(ctl_fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENOENT):
            return False
        raise
    try:
        os.write(fd, REOPEN_MESSAGE)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def rotate(log_path: str, *, max_size: int, max_file: int, ctl_fifo: str | None) -> bool:
    """Rotate ``log_path`` if it is larger than ``max_size``; True if it did.

    Keeps at most ``max_file`` files (``ctr.log`` included). With ``max_file == 1`` it only asks
    conmon to reopen, which truncates (conmon replaces the file). ``ctl_fifo`` None: rename only
    (for a container whose conmon is gone).
    """
    if max_size <= 0:
        return False
    try:
        if os.stat(log_path).st_size <= max_size:
            return False
    except FileNotFoundError:
        return False
    if max_file <= 1:
        if ctl_fifo is None:
            os.truncate(log_path, 0)
            return True
        return reopen(ctl_fifo)
    for path in rotated_paths(log_path):
        suffix = path[len(log_path) + 1:]
        if suffix.isdigit() and int(suffix) >= max_file:
            os.unlink(path)  # beyond the kept files (or left by a larger max_file before)
    for n in range(max_file - 2, 0, -1):
        try:
            os.replace(f"{log_path}.{n}", f"{log_path}.{n + 1}")
        except FileNotFoundError:
            pass
    os.replace(log_path, f"{log_path}.1")
    if ctl_fifo is not None:
        reopen(ctl_fifo)
    return True


async def watch(log_path: str, options: LogOptions, ctl_fifo: str,
                is_running: Callable[[], bool], interval: float = 1.0) -> None:
    """Rotate ``log_path`` every ``interval`` seconds as needed while ``is_running()`` (one task
    per running container; cancel it on stop)."""
    if options.max_size <= 0:
        return
    while is_running():
        rotate(log_path, max_size=options.max_size, max_file=options.max_file,
               ctl_fifo=ctl_fifo)
        await asyncio.sleep(interval)
