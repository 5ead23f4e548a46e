"""The few parts of HTTP/1.1 the CLI needs, on a connected socket: one request (body as bytes
or streamed chunked), one response (Content-Length, chunked, or to the end), read in pieces.

Why not ``http.client``: importing it costs 13–16 ms (it pulls in ``email`` and ``ssl``), paid by
every ``dockyard`` command; the daemon is local and speaks plain HTTP/1.1, so this is all the
protocol a command needs (``bench/RESULTS.md``, engine section).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterable, Mapping
    from typing import Any

_BLOCK = 1 << 16
_MAX_HEAD = 1 << 20


class ProtocolError(Exception):
    """The daemon's answer is not HTTP, or ended in the middle."""


def send_request(sock: socket.socket, method: str, target: str, host: str,
                 headers: Mapping[str, str], body: Any) -> None:
    """Send the request; ``body``: None, bytes, or a file / iterable of bytes (sent chunked). A
    regular file goes with its length by ``sendfile`` (``load -i`` of a 200 MB archive: no byte
    through Python)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    size = _regular_file_rest(body)
    if size is not None:
        lines.append(f"Content-Length: {size}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        _sendfile(sock, body.fileno(), body.tell(), size)
        return
    streamed = body is not None and not isinstance(body, (bytes, bytearray, memoryview))
    if streamed:
        lines.append("Transfer-Encoding: chunked")
    elif body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if not streamed:
        sock.sendall(head + bytes(body or b""))
        return
    sock.sendall(head)
    for chunk in _chunks(body):
        if chunk:
            sock.sendall(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
    sock.sendall(b"0\r\n\r\n")


def _regular_file_rest(body: Any) -> int | None:
    """Bytes from the position to the end when ``body`` is a regular file; else None."""
    import stat

    try:
        st = os.fstat(body.fileno())
        pos = body.tell()
    except (AttributeError, OSError, ValueError):
        return None
    return st.st_size - pos if stat.S_ISREG(st.st_mode) and st.st_size >= pos else None


def _sendfile(sock: socket.socket, fd: int, offset: int, count: int) -> None:
    """``count`` bytes of ``fd`` from ``offset`` to the socket (waiting while it is full, as
    with a timeout the socket is non-blocking)."""
    import select

    out = sock.fileno()
    timeout = sock.gettimeout()
    while count > 0:
        try:
            sent = os.sendfile(out, fd, offset, min(count, 1 << 30))
        except BlockingIOError:
            if not select.select([], [out], [], timeout)[1]:
                raise TimeoutError("sending the request body timed out") from None
            continue
        if sent == 0:
            raise OSError(f"the file being sent ended {count} bytes early (it shrank)")
        offset += sent
        count -= sent


def _chunks(body: Any) -> Iterable[bytes]:
    if hasattr(body, "read"):
        read = getattr(body, "read1", None) or body.read
        while True:
            chunk = read(_BLOCK)
            if not chunk:
                return
            yield chunk
    else:
        yield from body


class Response:
    """An answer being read: ``status``, ``headers`` (lower-cased names), and its body through
    ``read``/``read1``/``readline``. ``close`` closes the connection."""

    def __init__(self, sock: socket.socket, method: str) -> None:
        self._sock = sock
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(_BLOCK)
            if not chunk:
                raise ProtocolError("the daemon closed the connection before answering")
            buf += chunk
            if len(buf) > _MAX_HEAD:
                raise ProtocolError("the daemon's answer has no end of headers")
        head, _, self._buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP answer: {lines[0]!r}")
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self._items: list[tuple[str, str]] = []
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self._items.append((name.strip(), value.strip()))
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._left: int | None = int(length) if length and length.isdigit() else None
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self._left, self._chunked = 0, False
        self._chunk_left = 0
        self._body = b""  # decoded body bytes given back by readline
        self._done = self._left == 0

    def unread_bytes(self) -> bytes:
        """What was received after the headers and not read yet (a hijacked stream's start)."""
        data, self._buf = self._buf, b""
        return data

    # -- headers, as http.client's HTTPResponse offers them
    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self._items)

    # -- body
    def _recv(self) -> bytes:
        if self._buf:
            data, self._buf = self._buf, b""
            return data
        return self._sock.recv(_BLOCK)

    def _unread(self, data: bytes) -> None:
        self._buf = data + self._buf

    def read1(self, n: int = _BLOCK) -> bytes:
        """Up to ``n`` bytes, at most one receive; b"" at the end of the body."""
        if self._body:
            take = self._body[:n if n > 0 else _BLOCK]
            self._body = self._body[len(take):]
            return take
        if self._done:
            return b""
        if n <= 0:
            n = _BLOCK
        if self._chunked:
            return self._read_chunk(n)
        data = self._recv()
        if not data:
            if self._left is not None:
                raise ProtocolError(f"the answer ended {self._left} bytes early")
            self._done = True
            return b""
        if self._left is not None:
            if len(data) > self._left:
                self._unread(data[self._left:])
                data = data[:self._left]
            self._left -= len(data)
            self._done = self._left == 0
        if len(data) > n:
            self._unread(data[n:])
            if self._left is not None:
                self._left += len(data) - n
                self._done = False
            data = data[:n]
        return data

    def _read_chunk(self, n: int) -> bytes:
        if self._chunk_left == 0:
            line = self._line()
            try:
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {line[:40]!r}") from None
            if size == 0:
                while self._line():  # trailers up to the empty line
                    pass
                self._done = True
                return b""
            self._chunk_left = size
        data = self._recv()
        if not data:
            raise ProtocolError("the answer ended inside a chunk")
        take = min(len(data), self._chunk_left, n)
        self._unread(data[take:])
        self._chunk_left -= take
        if self._chunk_left == 0:
            self._expect_crlf()
        return data[:take]

    def _line(self) -> bytes:
        buf = b""
        while b"\r\n" not in buf:
            data = self._recv()
            if not data:
                raise ProtocolError("the answer ended inside a chunk header")
            buf += data
        line, _, rest = buf.partition(b"\r\n")
        self._unread(rest)
        return line

    def _expect_crlf(self) -> None:
        buf = b""
        while len(buf) < 2:
            data = self._recv()
            if not data:
                raise ProtocolError("the answer ended after a chunk")
            buf += data
        self._unread(buf[2:])

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self.read1(_BLOCK):
                parts.append(chunk)
            return b"".join(parts)
        out = bytearray()
        while len(out) < n:
            chunk = self.read1(n - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def readline(self, limit: int = -1) -> bytes:
        out = bytearray()
        while limit < 0 or len(out) < limit:
            chunk = self.read1(_BLOCK)
            if not chunk:
                break
            end = chunk.find(b"\n")
            if end >= 0:
                out += chunk[:end + 1]
                self._give_back(chunk[end + 1:])
                break
            out += chunk
        return bytes(out)

    def _give_back(self, data: bytes) -> None:
        """Body bytes ``readline`` read too far: served again by the next read."""
        if data:
            self._body = data + self._body

    def __iter__(self):  # noqa: ANN204 - lines, as a file
        while line := self.readline():
            yield line

    def close(self) -> None:
        self._sock.close()

    @property
    def closed(self) -> bool:
        return self._sock.fileno() < 0
