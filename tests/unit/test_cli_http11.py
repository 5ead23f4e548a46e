"""The CLI's HTTP/1.1 (cli/http11.py): requests as sent, answers read in pieces."""

from __future__ import annotations

import io
import socket
import threading

import pytest

from dockyard.cli.http11 import ProtocolError, Response, send_request


def _answer(raw: bytes, method: str = "GET") -> Response:
    a, b = socket.socketpair()

    def feed() -> None:
        try:
            for i in range(0, len(raw), 7):  # in small pieces: every boundary is crossed
                b.sendall(raw[i:i + 7])
        except OSError:
            pass  # the reader stopped early (an error answer): nothing more to send
        finally:
            b.close()

    threading.Thread(target=feed, daemon=True).start()
    return Response(a, method)


def test_content_length_body_and_headers():
    r = _answer(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
                b"{\"a\": true}trailing-garbage")
    assert r.status == 200 and r.getheader("content-type") == "application/json"
    assert ("Content-Type", "application/json") in r.getheaders()
    assert r.read() == b'{"a": true}' and r.read() == b""


def test_chunked_body_lines_cross_chunks():
    body = b"5\r\nline1\r\n7\r\n\nline2\n\r\n3\r\nend\r\n0\r\n\r\n"
    r = _answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert r.readline() == b"line1\n" and r.readline() == b"line2\n"
    assert r.read(2) == b"en" and r.read() == b"d" and r.read1() == b""


def test_body_to_the_end_and_no_body_answers():
    r = _answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 100000)
    assert len(r.read()) == 100000
    assert _answer(b"HTTP/1.1 204 No Content\r\n\r\n").read() == b""
    assert _answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD").read() == b""


def test_an_answer_cut_short_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="early"):
        _answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").read()
    with pytest.raises(ProtocolError, match="chunk"):
        _answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\nabc").read()
    with pytest.raises(ProtocolError, match="before answering"):
        _answer(b"")
    with pytest.raises(ProtocolError, match="not an HTTP answer"):
        _answer(b"garbage\r\n\r\n")


def test_requests_bytes_and_streamed_bodies():
    a, b = socket.socketpair()
    send_request(a, "POST", "/v1.45/x?y=1", "localhost", {"User-Agent": "t"}, b"abc")
    send_request(a, "POST", "/load", "localhost", {}, io.BytesIO(b"0123456789"))
    send_request(a, "POST", "/start", "localhost", {}, None)
    a.close()
    data = b""
    while chunk := b.recv(65536):
        data += chunk
    first, rest = data.split(b"\r\n\r\n", 1)
    assert first.startswith(b"POST /v1.45/x?y=1 HTTP/1.1\r\nHost: localhost\r\n")
    assert b"Content-Length: 3" in first and rest.startswith(b"abc")
    assert b"Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n" in rest
    assert rest.endswith(b"POST /start HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_a_regular_file_goes_by_sendfile_with_its_length(tmp_path, timeout):
    """From the file's position to its end, with Content-Length (not chunked), also through a
    socket with a timeout (non-blocking: sendfile waits while the peer is slow to read)."""
    payload = bytes(range(256)) * 4096  # 1 MiB: more than a socket buffer holds
    path = tmp_path / "archive.tar"
    path.write_bytes(b"skipped!" + payload)
    a, b = socket.socketpair()
    a.settimeout(timeout)
    got = bytearray()

    def read() -> None:
        while chunk := b.recv(65536):
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    with open(path, "rb") as f:
        f.read(8)
        send_request(a, "POST", "/images/load", "localhost", {}, f)
    a.close()
    reader.join()
    head, body = bytes(got).split(b"\r\n\r\n", 1)
    assert f"Content-Length: {len(payload)}".encode() in head and b"chunked" not in head
    assert body == payload
