"""The CLI's client of the daemon's Docker Engine API: HTTP/1.1 (``cli/http11.py``) over a unix
socket (or loopback TCP), stdlib only.

Host choice (docker's order): ``-H/--host`` > ``DOCKYARD_HOST`` > ``unix:///run/dockyard/dockyard.sock``.
Every path is sent under ``/v1.45`` (the daemon's API version; no ``_ping`` round trip per command).
Failures: a non-2xx answer raises ``APIError(status, message)`` with the daemon's ``{"message"}``;
no daemon at the host raises ``DaemonUnavailable`` whose text says how to start one.

Why hand-written hijacking: ``attach`` and ``exec start`` answer ``101 UPGRADED`` (or ``200``) and
then carry raw bytes both ways on the same connection: the request is written and the
status/headers parsed here, and the caller gets the socket itself.
"""

from __future__ import annotations

import os

import _socket  # socket.py's enums and selectors cost ~4 ms per command; the C module is all we use

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from dockyard.cli.http11 import Response
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Any, BinaryIO

DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
HOST_ENV = "DOCKYARD_HOST"
API_VERSION = "1.45"
USER_AGENT = "dockyard-cli"
_BLOCK = 1 << 20
STDIN, STDOUT, STDERR = 0, 1, 2


class ClientError(Exception):
    """Base of the client's errors (the CLI prints ``str(e)`` and exits 1)."""


class APIError(ClientError):
    """The daemon answered with an error status; ``message`` is its ``{"message"}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"Error response from daemon: {self.message}"


class DaemonUnavailable(ClientError):
    """Nothing answers at the host (no socket, connection refused, or no permission)."""

    def __init__(self, host: str, reason: str = "") -> None:
        super().__init__(host)
        self.host = host
        self.reason = reason

    def __str__(self) -> str:
        if self.reason == "permission":
            return (f"permission denied while trying to connect to the dockyard daemon socket at "
                    f"{self.host}: run as root, or join the socket's group")
        return (f"Cannot connect to the dockyard daemon at {self.host}. Is the dockyard daemon "
                f"running?\nStart one with 'dockyard daemon' (as root; see 'dockyard daemon "
                f"--help'), or point -H/--host or {HOST_ENV} at a running one.")


class ConnectionLost(ClientError):
    """The daemon closed the connection before its answer was complete (it crashed or stopped)."""

    def __init__(self, host: str, cause: BaseException) -> None:
        super().__init__(host)
        self.host, self.cause = host, cause

    def __str__(self) -> str:
        at = f" at {self.host}" if self.host else ""
        return (f"error during connect: the dockyard daemon{at} closed the connection before "
                f"its answer was complete ({type(self.cause).__name__}: {self.cause}); is it "
                "still running?")


def _lost_errors() -> tuple[type[BaseException], ...]:
    from dockyard.cli.http11 import ProtocolError

    return (ProtocolError, ConnectionError)


class Host:
    """A parsed ``-H`` value: ``unix:///path`` or ``tcp://HOST:PORT``."""

    __slots__ = ("kind", "path", "address", "port", "text")

    def __init__(self, kind: str, text: str, path: str = "", address: str = "", port: int = 0
                 ) -> None:
        self.kind, self.text, self.path, self.address, self.port = kind, text, path, address, port

    def __repr__(self) -> str:
        return f"Host({self.text!r})"


def parse_host(text: str) -> Host:
    """``unix:///path``, a bare ``/path``, ``tcp://HOST:PORT`` (``tcp://HOST`` means port 2375)."""
    value = text.strip()
    if value.startswith("/"):
        value = "unix://" + value
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ValueError(f"invalid host {text!r}: use unix:///path or tcp://HOST:PORT")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise ValueError(f"invalid host {text!r}: the socket path must be absolute")
        return Host("unix", f"unix://{rest}", path=rest)
    if scheme in ("tcp", "http"):
        rest = rest.rstrip("/")
        if rest.startswith("["):  # [::1]:2375
            address, _, tail = rest[1:].partition("]")
            port_text = tail[1:] if tail.startswith(":") else ""
        else:
            address, colon, port_text = rest.rpartition(":")
            if not colon:
                address, port_text = rest, ""
        port_text = port_text or "2375"
        if not address or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"invalid host {text!r}: tcp needs HOST:PORT")
        return Host("tcp", f"tcp://{address}:{port_text}", address=address, port=int(port_text))
    raise ValueError(f"invalid host {text!r}: unsupported scheme {scheme!r} (unix or tcp)")


def resolve_host(flag: str | None, environ: Mapping[str, str] | None = None) -> Host:
    """``-H`` if given, else ``DOCKYARD_HOST``, else the default socket."""
    env = os.environ if environ is None else environ
    return parse_host(flag or env.get(HOST_ENV) or DEFAULT_HOST)


class UnixSocket(_socket.socket):
    """The C socket with ``with`` support: what this client needs of ``socket.socket``."""

    __slots__ = ()

    def __enter__(self) -> UnixSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def pct_encode(text: str, safe: str = "") -> str:
    """``urllib.parse.quote(text, safe)`` (RFC 3986 percent-encoding of UTF-8) without importing
    urllib.parse, which pulls in ``re`` and ``ipaddress`` (~5 ms per command)."""
    keep = _UNRESERVED.union(safe)
    return "".join(c if c in keep else "".join(f"%{b:02X}" for b in c.encode())
                   for c in text)


def encode_query(query: Mapping[str, Any] | None) -> str:
    """Docker's query conventions: booleans as 1/0, dicts (filters) as JSON, lists repeated,
    ``None`` left out."""
    if not query:
        return ""
    from dockyard.leanjson import dumps

    parts = []
    for key, value in query.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is None:
                continue
            if isinstance(v, bool):
                v = "1" if v else "0"
            elif isinstance(v, dict):
                v = dumps(v)
            parts.append(f"{pct_encode(key)}={pct_encode(str(v))}")
    return "?" + "&".join(parts) if parts else ""


def _error_message(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        from dockyard.leanjson import loads

        try:
            doc = loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return doc["message"]
    return text or f"HTTP {status}"


class Client:
    """One daemon at ``host``; each request opens its own connection (the CLI makes few)."""

    def __init__(self, host: str | Host | None = None, *, timeout: float | None = None,
                 version: str = API_VERSION) -> None:
        self.host = host if isinstance(host, Host) else resolve_host(host)
        self.timeout = timeout
        self.prefix = f"/v{version}" if version else ""

    # ------------------------------------------------------------------ plumbing

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        return self.prefix + path + encode_query(query)

    def _connect(self) -> socket.socket:
        sock = self._raw_socket()
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        return sock

    @staticmethod
    def _body(body: Any, headers: dict[str, str]) -> Any:
        """JSON for dicts/lists, bytes as they are, files and iterators streamed (chunked)."""
        if body is None or isinstance(body, (bytes, bytearray, memoryview)):
            return body
        if isinstance(body, (dict, list)):
            from dockyard.leanjson import dumps

            headers.setdefault("Content-Type", "application/json")
            return dumps(body).encode()
        if isinstance(body, str):
            return body.encode()
        headers.setdefault("Content-Type", "application/x-tar")
        return body  # a file or an iterator of bytes: sent chunked

    def stream(self, method: str, path: str, query: Mapping[str, Any] | None = None,
               body: Any = None, headers: Mapping[str, str] | None = None) -> Response:
        """Send a request; the open response (2xx), to be read and closed by the caller."""
        from dockyard.cli.http11 import Response, send_request

        h = {"User-Agent": USER_AGENT, **(headers or {})}
        data = self._body(body, h)
        sock = self._connect()
        try:
            try:
                send_request(sock, method, self.url(path, query), self._host_header(), h, data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon answered before reading the whole body: read its answer
            try:
                resp = Response(sock, method)
            except _lost_errors() as e:
                raise ConnectionLost(self.host.text, e) from e
        except BaseException:
            sock.close()
            raise
        if not 200 <= resp.status < 300:
            try:
                raise APIError(resp.status, _error_message(resp.status, resp.read()))
            finally:
                resp.close()
        return resp

    def _host_header(self) -> str:
        return "localhost" if self.host.kind == "unix" else f"{self.host.address}:{self.host.port}"

    def call(self, method: str, path: str, query: Mapping[str, Any] | None = None,
             body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        """A whole request: the parsed JSON answer, the raw bytes of another type, or None."""
        resp = self.stream(method, path, query, body, headers)
        try:
            raw = resp.read()
            kind = resp.getheader("Content-Type", "") or ""
        except _lost_errors() as e:
            raise ConnectionLost(self.host.text, e) from e
        finally:
            resp.close()
        if not raw.strip():
            return None
        if kind.startswith("application/json"):
            from dockyard.leanjson import loads

            return loads(raw)
        return raw

    def get(self, path: str, query: Mapping[str, Any] | None = None, body: Any = None,
            headers: Mapping[str, str] | None = None) -> Any:
        return self.call("GET", path, query, body, headers)

    def post(self, path: str, query: Mapping[str, Any] | None = None, body: Any = None,
             headers: Mapping[str, str] | None = None) -> Any:
        return self.call("POST", path, query, body, headers)

    def put(self, path: str, query: Mapping[str, Any] | None = None, body: Any = None,
            headers: Mapping[str, str] | None = None) -> Any:
        return self.call("PUT", path, query, body, headers)

    def delete(self, path: str, query: Mapping[str, Any] | None = None, body: Any = None,
               headers: Mapping[str, str] | None = None) -> Any:
        return self.call("DELETE", path, query, body, headers)

    def head(self, path: str, query: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None) -> dict[str, str]:
        """The answer's headers (lower-cased names)."""
        resp = self.stream("HEAD", path, query, None, headers)
        try:
            resp.read()
            return {k.lower(): v for k, v in resp.getheaders()}
        finally:
            resp.close()

    def ping(self) -> dict[str, str]:
        """``/_ping`` (unversioned, as docker's negotiation does): its headers."""
        prefix, self.prefix = self.prefix, ""
        try:
            return self.head("/_ping")
        finally:
            self.prefix = prefix

    # ------------------------------------------------------------------ hijacked streams

    def hijack(self, method: str, path: str, query: Mapping[str, Any] | None = None,
               body: Any = None, headers: Mapping[str, str] | None = None
               ) -> tuple[socket.socket, bytes]:
        """Docker's attach / exec start: ask to upgrade the connection to a raw stream.

        Returns the connected socket and the bytes of the stream the daemon already sent after
        its headers (read them before reading the socket). A ``101`` or ``200`` starts the raw
        stream; any other status raises ``APIError``.
        """
        h = {"User-Agent": USER_AGENT, "Connection": "Upgrade", "Upgrade": "tcp",
             **(headers or {})}
        data = self._body(body, h)
        if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
            data = b"".join(data.read() if hasattr(data, "read") else data)  # small bodies only
        head = [f"{method} {self.url(path, query)} HTTP/1.1",
                f"Host: {'localhost' if self.host.kind == 'unix' else self.host.address}"]
        head += [f"{k}: {v}" for k, v in h.items()]
        head.append(f"Content-Length: {len(data) if data is not None else 0}")
        from dockyard.cli.http11 import ProtocolError, Response

        sock = self._raw_socket()
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + bytes(data or b""))
            try:
                resp = Response(sock, method)
            except ProtocolError as e:
                raise ClientError(str(e)) from None
            if resp.status in (101, 200):
                return sock, resp.unread_bytes()
            raise APIError(resp.status, _error_message(resp.status, resp.read()))
        except BaseException:
            sock.close()
            raise

    def _raw_socket(self) -> socket.socket:
        try:
            if self.host.kind == "unix":
                s = UnixSocket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    s.connect(self.host.path)
                except BaseException:
                    s.close()
                    raise
                return s
            import socket

            return socket.create_connection((self.host.address, self.host.port))
        except PermissionError as e:
            raise DaemonUnavailable(self.host.text, "permission") from e
        except OSError as e:
            raise DaemonUnavailable(self.host.text) from e


# -------------------------------------------------------------------------- stream helpers

def frame(stream_id: int, data: bytes) -> bytes:
    """One frame of Docker's multiplexed stream: ``[id, 0, 0, 0, size (big endian)]`` + data."""
    return bytes((stream_id, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


def _read_exactly(reader: BinaryIO, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = reader.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def demux(reader: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(stream id, bytes) for each frame of a multiplexed stream (non-TTY attach, logs, exec),
    until the end of ``reader``. A truncated frame ends the iteration with what arrived."""
    while True:
        head = _read_exactly(reader, 8)
        if len(head) < 8:
            return
        size = int.from_bytes(head[4:8], "big")
        data = _read_exactly(reader, size) if size else b""
        if data or not size:
            yield head[0], data
        if len(data) < size:
            return


class SocketReader:
    """``read(n)`` over a hijacked socket, starting with the bytes ``hijack`` already had."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock, self._buf = sock, buffered

    def read(self, n: int = 65536) -> bytes:
        if self._buf:
            out, self._buf = self._buf[:n], self._buf[n:]
            return out
        return self.sock.recv(n)


def json_messages(resp: BinaryIO) -> Iterator[Any]:
    """The JSON documents of a newline-delimited JSON stream (load, import, pull, events)."""
    from dockyard.leanjson import loads

    try:
        for line in resp:
            line = line.strip()
            if line:
                yield loads(line)
    except _lost_errors() as e:
        raise ConnectionLost("", e) from e


def copy_stream(src: BinaryIO, dst: Any, block: int = _BLOCK) -> int:
    """Copy ``src`` to ``dst`` in blocks; the number of bytes. A response the daemon cut short
    raises ``ConnectionLost`` (a partial archive must not pass for a whole one)."""
    total = 0
    lost = _lost_errors()
    while True:
        try:
            chunk = src.read(block)
        except lost as e:  # only the daemon's side: a closed stdout is the caller's BrokenPipe
            raise ConnectionLost("", e) from e
        if not chunk:
            return total
        dst.write(chunk)
        total += len(chunk)


def iter_file(f: BinaryIO, block: int = _BLOCK) -> Iterable[bytes]:
    """A file as an iterator of blocks (a request body streamed with chunked encoding)."""
    while chunk := f.read(block):
        yield chunk
