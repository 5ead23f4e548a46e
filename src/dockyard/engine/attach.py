"""Attaching to a container's stdio through its monitor's attach socket.

conmon's ``attach`` socket is SOCK_SEQPACKET: every packet it sends is one byte naming the stream
(2 stdout, 3 stderr) followed by the data; every packet sent to it goes to the container's stdin.
Shutting down our write side tells conmon the client is done with stdin (it closes the
container's stdin unless the container keeps it open: ``--leave-stdin-open``).
"""

from __future__ import annotations

import asyncio
import os
import socket

from dockyard.errors import Conflict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.engine.container import Container

STDOUT, STDERR = 1, 2  # Docker's stream ids in the multiplexed framing
_FROM_CONMON = {2: STDOUT, 3: STDERR}
PACKET = 8192  # conmon reads up to 8 KiB per packet from a client


class AttachConn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._loop = asyncio.get_running_loop()

    async def recv(self) -> tuple[int, bytes] | None:
        """The next ``(stream id, data)``; None once the container's output ended."""
        while True:
            try:
                pkt = await self._loop.sock_recv(self.sock, 65536)
            except (ConnectionError, OSError):
                return None
            if not pkt:
                return None
            stream = _FROM_CONMON.get(pkt[0])
            if stream is not None and len(pkt) > 1:
                return stream, pkt[1:]

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            await self._loop.sock_sendall(self.sock, view[:PACKET])
            view = view[PACKET:]

    def close_stdin(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


SUN_PATH_MAX = 107  # a unix socket address holds 108 bytes with its NUL


async def connect(path: str) -> AttachConn:
    """Connect to conmon's attach socket. A path longer than a socket address holds (a deep
    ``--root``) is reached through ``/proc/self/fd`` of its directory, as conmon binds it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    dir_fd = -1
    address = path
    try:
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            dir_fd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
            address = f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}"
        await asyncio.get_running_loop().sock_connect(sock, address)
    except OSError as e:
        sock.close()
        raise Conflict(f"attach to {path}: {e.strerror or e}") from None
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    return AttachConn(sock)


async def attach(svc, c: Container) -> AttachConn:  # noqa: ANN001 - ContainerService
    """Connect to ``c``'s monitor: now if it runs, else at its next start (before its process
    runs, so nothing it prints is missed)."""
    if c.state.status == "paused":
        raise Conflict(f"You cannot attach to a paused container {c.id}, unpause it first")
    if c.state.status == "running":
        return await connect(svc.paths(c).attach)
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()
    connected: asyncio.Future[None] = loop.create_future()
    c.attach_waiters.append((started, connected))
    try:
        await started
        conn = await connect(svc.paths(c).attach)
    finally:
        if not connected.done():
            connected.set_result(None)
    return conn
