"""The CLI's API client without a daemon: host resolution, query encoding, Docker's stream framing,
errors, and requests against a tiny scripted server on a unix socket (errors, chunked uploads,
hijacked connections)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
from urllib.parse import unquote

import pytest

from dockyard.cli.client import (
    DEFAULT_HOST,
    APIError,
    Client,
    ConnectionLost,
    DaemonUnavailable,
    SocketReader,
    copy_stream,
    demux,
    encode_query,
    frame,
    parse_host,
    resolve_host,
)


def test_host_resolution_order():
    assert resolve_host(None, {}).text == DEFAULT_HOST
    assert resolve_host(None, {"DOCKYARD_HOST": "unix:///x/y.sock"}).path == "/x/y.sock"
    assert resolve_host("tcp://127.0.0.1:2376", {"DOCKYARD_HOST": "unix:///x"}).port == 2376


@pytest.mark.parametrize("text, kind, where", [
    ("unix:///run/d.sock", "unix", "/run/d.sock"),
    ("/run/d.sock", "unix", "/run/d.sock"),
    ("tcp://127.0.0.1:2375", "tcp", ("127.0.0.1", 2375)),
    ("tcp://localhost", "tcp", ("localhost", 2375)),
    ("tcp://[::1]:99/", "tcp", ("::1", 99)),
])
def test_parse_host(text, kind, where):
    h = parse_host(text)
    assert h.kind == kind
    assert (h.path if kind == "unix" else (h.address, h.port)) == where


@pytest.mark.parametrize("text", ["unix://rel.sock", "ssh://x", "tcp://h:port", "tcp://:1", "nothing"])
def test_parse_host_rejects(text):
    with pytest.raises(ValueError, match="invalid host"):
        parse_host(text)


def test_encode_query_follows_docker_conventions():
    q = encode_query({"all": True, "quiet": False, "skip": None, "names": ["a:1", "b"],
                      "filters": {"dangling": ["true"]}})
    assert q.startswith("?all=1&quiet=0&names=a%3A1&names=b&filters=")
    assert json.loads(unquote(q.rpartition("filters=")[2])) == {"dangling": ["true"]}
    assert encode_query({}) == encode_query(None) == ""
    assert Client("unix:///x").url("/images/json", {"all": 1}) == "/v1.45/images/json?all=1"


def test_frames_round_trip_and_truncation():
    data = frame(1, b"out\n") + frame(2, b"err") + frame(1, b"") + frame(1, b"x" * 70000)
    got = list(demux(io.BytesIO(data)))
    assert got == [(1, b"out\n"), (2, b"err"), (1, b""), (1, b"x" * 70000)]
    assert list(demux(io.BytesIO(frame(2, b"abcdef")[:-2]))) == [(2, b"abcd")]
    assert list(demux(io.BytesIO(b"\x01\x00\x00"))) == []


def test_missing_socket_is_daemon_unavailable_with_a_hint(tmp_path):
    c = Client(f"unix://{tmp_path}/none.sock")
    with pytest.raises(DaemonUnavailable) as e:
        c.get("/version")
    text = str(e.value)
    assert text.startswith(f"Cannot connect to the dockyard daemon at unix://{tmp_path}/none.sock.")
    assert "dockyard daemon" in text.splitlines()[1]
    with pytest.raises(DaemonUnavailable):
        c.hijack("POST", "/exec/x/start")


def test_refused_tcp_is_daemon_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connect is refused
        with pytest.raises(DaemonUnavailable, match=f"tcp://127.0.0.1:{port}"):
            Client(f"tcp://127.0.0.1:{port}").get("/_ping")


class ScriptedServer:
    """Accepts connections on a unix socket; ``answer(request_bytes, conn)`` writes the reply."""

    def __init__(self, path, answer):
        self.path, self.answer = str(path), answer
        self.requests: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                if b"chunked" in head.lower():
                    while not body.endswith(b"0\r\n\r\n"):
                        body += conn.recv(65536)
                elif b"content-length:" in head.lower():
                    n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while len(body) < n:
                        body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                self.answer(head, conn)

    def close(self):
        self.sock.close()


def _reply(status, body=b"", ctype="application/json", extra=""):
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}\r\n").encode() + body


@pytest.fixture
def server(tmp_path):
    made = []

    def make(answer):
        s = ScriptedServer(tmp_path / "s.sock", answer)
        made.append(s)
        return Client(f"unix://{s.path}"), s

    yield make
    for s in made:
        s.close()


def test_json_answers_and_error_messages(server):
    def answer(head, conn):
        if b"/nope" in head:
            conn.sendall(_reply(404, b'{"message":"No such image: nope"}\n'))
        elif b"/text" in head:
            conn.sendall(_reply(500, b"boom", "text/plain"))
        else:
            conn.sendall(_reply(200, b'[{"Id":"sha256:1"}]\n'))

    client, srv = server(answer)
    assert client.get("/images/json", {"all": True}) == [{"Id": "sha256:1"}]
    assert srv.requests[0].startswith(b"GET /v1.45/images/json?all=1 HTTP/1.1\r\n")
    with pytest.raises(APIError) as e:
        client.delete("/images/nope")
    assert (e.value.status, e.value.message) == (404, "No such image: nope")
    assert str(e.value) == "Error response from daemon: No such image: nope"
    with pytest.raises(APIError, match="boom"):
        client.get("/text")


def _dechunk(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2:end + 2 + size]
        pos = end + 2 + size + 2


def test_file_bodies_are_streamed_chunked_and_dicts_sent_as_json(server):
    client, srv = server(lambda head, conn: conn.sendall(_reply(200, b"")))
    payload = bytes(range(256)) * 5000
    assert client.post("/images/load", {"quiet": True}, body=io.BytesIO(payload)) is None
    head, _, body = srv.requests[0].partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"Content-Type: application/x-tar" in head
    assert _dechunk(body) == payload
    client.post("/containers/create", body={"Image": "busybox"})
    head, _, body = srv.requests[1].partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head and json.loads(body) == {"Image": "busybox"}


def test_hijack_returns_the_socket_and_buffered_bytes(server):
    def answer(head, conn):
        if b"/bad/" in head:
            conn.sendall(_reply(409, b'{"message":"container is not running"}'))
            return
        conn.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                     b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + frame(1, b"hello "))
        got = conn.recv(100)
        conn.sendall(frame(2, got))

    client, srv = server(answer)
    sock, rest = client.hijack("POST", "/exec/e1/start", body={"Detach": False})
    with sock:
        sock.sendall(b"typed")
        frames = list(demux(SocketReader(sock, rest)))
    assert frames == [(1, b"hello "), (2, b"typed")]
    head = srv.requests[0]
    assert b"Connection: Upgrade\r\n" in head and b"Upgrade: tcp\r\n" in head
    assert json.loads(head.partition(b"\r\n\r\n")[2]) == {"Detach": False}
    with pytest.raises(APIError, match="container is not running") as e:
        client.hijack("POST", "/bad/x/attach")
    assert e.value.status == 409


def test_a_cut_answer_is_connection_lost_not_a_short_result(server):
    def answer(head, conn):
        if b"/silent" in head:
            return  # closes without a word
        if b"/get" in head:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            return  # the stream ends without its last chunk
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n[1, 2")

    client, _ = server(answer)
    with pytest.raises(ConnectionLost, match="closed the connection before its answer"):
        client.get("/silent")
    with pytest.raises(ConnectionLost):
        client.get("/images/json")
    with pytest.raises(ConnectionLost):
        copy_stream(client.stream("GET", "/images/get"), io.BytesIO())


def test_client_module_imports_stay_light():
    code = ("import sys; import dockyard.cli.client, dockyard.cli.main; "
            "print(sorted(m for m in ('aiohttp', 'json', 'http.client', 'asyncio', 'sqlite3') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_container_verbs_import_no_heavy_stdlib_modules():
    """The hot verbs' import path (bench/RESULTS.md, engine section): no argparse, re, socket.py,
    signal.py, urllib.parse, calendar or json (each several ms per command)."""
    heavy = ("argparse", "re", "socket", "signal", "urllib.parse", "calendar", "json", "enum",
             "threading")
    code = ("import sys\nfrom dockyard.cli.main import main\n"
            "for argv in (['ps'], ['run', '--rm', '-e', 'A=1', 'busybox', 'true'], ['rm', 'x'],\n"
            "             ['stop', 'x'], ['start', 'x'], ['create', 'busybox']):\n"
            "    try:\n        main(['-H', 'unix:///nonexistent/d.sock', *argv])\n"
            "    except SystemExit:\n        pass\n"
            "import dockyard.cli.stream, dockyard.cli.format, dockyard.cli.containers_list as cl\n"
            "import dockyard.cli.containers as cc\n"
            "class Api:\n    def stream(self, *a, **k):\n        return object()\n"
            "cc._start_wait(Api(), 'x', 'removed')  # run's wait before start: no thread\n"
            "c = {'Id': 'a' * 64, 'Names': ['/web'], 'Image': 'busybox', 'Command': 'sleep 1',\n"
            "     'Created': 1, 'State': 'running', 'Status': 'Up 1 second', 'Ports': [\n"
            "     {'PrivatePort': 80, 'PublicPort': 8080, 'Type': 'tcp', 'IP': '0.0.0.0'}]}\n"
            "assert 'web' in cl.render_ps([c], {}, 100.0)\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
