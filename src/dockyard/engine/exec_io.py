"""File-descriptor plumbing of an exec run: a pipe or pty master read through the event loop,
writes to a non-blocking fd, and the exit of a process the daemon inherited as subreaper."""

from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger("dockyard.engine.exec")
POLL = 0.01  # a full pipe is written again after this many seconds


class FdReader:
    """Chunks from a non-blocking fd (pipe or pty master) through the event loop; ``b""`` at
    EOF (a pty master's EIO: every slave closed). Reading pauses while chunks wait unread."""

    MAX_QUEUED = 16

    def __init__(self, fd: int, *, owned: bool = True) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.owned = owned
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._watching = False
        self._eof = False
        self._watch()

    def _watch(self) -> None:
        if not self._watching and not self._eof and self.fd >= 0:
            self._loop.add_reader(self.fd, self._readable)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self.fd)
            self._watching = False

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._eof = True
            self._unwatch()
        elif self._queue.qsize() >= self.MAX_QUEUED:
            self._unwatch()
        self._queue.put_nowait(data)

    async def read(self) -> bytes:
        if self._eof and self._queue.empty():
            return b""
        data = await self._queue.get()
        self._watch()
        return data

    def close(self) -> None:
        self._unwatch()
        if self.owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


async def wait_child(pid: int) -> int:
    """The exit code of ``pid``, a process the daemon inherited (it is a subreaper) from a
    runtime's ``exec --detach``: a pidfd tells the exit, ``waitid`` reaps it."""
    try:
        fd = os.pidfd_open(pid)
    except OSError as e:
        log.error("exec process %d: cannot watch it: %s", pid, e.strerror)
        return 255
    loop = asyncio.get_running_loop()
    try:
        gone = loop.create_future()
        loop.add_reader(fd, lambda: gone.done() or gone.set_result(None))
        try:
            await gone
        finally:
            loop.remove_reader(fd)
        try:
            r = os.waitid(os.P_PIDFD, fd, os.WEXITED)
        except ChildProcessError:
            log.error("exec process %d is not the daemon's child: its exit code is unknown", pid)
            return 255
        if r is None:
            return 255
        return r.si_status if r.si_code == os.CLD_EXITED else 128 + r.si_status
    finally:
        os.close(fd)


async def write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await asyncio.sleep(POLL)
            continue
        view = view[n:]
