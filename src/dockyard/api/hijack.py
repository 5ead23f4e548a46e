"""Docker's hijacked streams (attach, exec start) on aiohttp.

The client sends ``Connection: Upgrade`` + ``Upgrade: tcp``; dockerd answers ``101 UPGRADED``
(``200 OK`` to an old client that did not ask to upgrade) and from then on the connection is a
raw byte stream both ways: stdin in, output out (multiplexed with 8-byte headers unless a TTY).

Why the protocol is touched directly: aiohttp has no "raw upgrade" response. Like its own
WebSocketResponse, this one turns off length checks (no chunked encoding) and installs a payload
parser that hands the client's bytes to a queue. One addition: a client half-closes after stdin
ends (``CloseWrite``); aiohttp's protocol would close the whole transport on EOF, losing the
output still to come, so EOF is turned into "stdin ended" and the transport stays open.
"""

from __future__ import annotations

import asyncio
import struct

from aiohttp import web

RAW = "application/vnd.docker.raw-stream"
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"


class _Reader:
    """aiohttp payload-parser interface: bytes from the client go into a queue."""

    def __init__(self, queue: asyncio.Queue[bytes | None]) -> None:
        self._queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self._queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self._queue.put_nowait(None)


class _KeepOpen(asyncio.Protocol):
    """Stands between the transport and aiohttp's protocol (whose attributes are slots): all
    is passed on, except that the client's EOF ends stdin instead of the connection."""

    def __init__(self, inner: asyncio.Protocol, queue: asyncio.Queue[bytes | None]) -> None:
        self._inner = inner
        self._queue = queue

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool:
        self._queue.put_nowait(None)
        return True  # keep the transport open for the output still to come

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class RawStream(web.StreamResponse):
    _length_check = False  # never chunked: the stream is raw

    def __init__(self, request: web.Request, *, tty: bool, api_multiplexed: bool = True) -> None:
        upgrade = "upgrade" in request.headers.get("Connection", "").lower() and \
            request.headers.get("Upgrade", "").lower() == "tcp"
        super().__init__(status=101 if upgrade else 200, reason="UPGRADED" if upgrade else None)
        ctype = RAW if tty or not api_multiplexed else MULTIPLEXED
        self.headers["Content-Type"] = ctype
        if upgrade:
            self.headers["Connection"] = "Upgrade"
            self.headers["Upgrade"] = "tcp"
        self._upgrade = upgrade
        self._request = request
        self.tty = tty
        self.input: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def start(self) -> None:
        await self.prepare(self._request)
        proto = self._request.protocol
        if self._upgrade:
            proto.set_parser(_Reader(self.input))  # type: ignore[arg-type]
        transport = self._request.transport
        if transport is not None and self._upgrade:
            transport.set_protocol(_KeepOpen(proto, self.input))  # type: ignore[arg-type]
        if not self._upgrade:
            self.input.put_nowait(None)

    async def send(self, stream: int, data: bytes) -> None:
        if not data:
            return
        if self.tty:
            await self.write(data)
        else:
            await self.write(struct.pack(">BxxxI", stream, len(data)) + data)

    async def finish(self) -> None:
        try:
            await self.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        transport = self._request.transport
        if transport is not None:
            transport.close()
