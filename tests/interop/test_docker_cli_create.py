"""The docker CLI's real ``POST /containers/create`` bodies parse into the records the flags mean.

A thread answers on a unix socket in the test's temp dir as an API 1.45 daemon would for
``/_ping``, records the create body and answers it with a 500; ``docker -H unix://...`` never
reaches a real daemon. Each case is one ``docker create`` command line and what ``parse_create``
must make of its body.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading

import pytest

from dockyard.engine.create_mounts import MountRequest
from dockyard.engine.create_request import parse_create
from dockyard.engine.host_config import LogConfig, PortBinding, RestartPolicy
from dockyard.errors import InvalidArgument

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")


class FakeDaemon:
    """Just enough of the Engine API for ``docker create`` to send its body."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.bodies: list[tuple[str, bytes]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as f:
            while self._answer(conn, f):
                pass

    def _answer(self, conn: socket.socket, f) -> bool:
        request = f.readline().decode()
        if not request.strip():
            return False
        headers = {}
        while (line := f.readline().decode().strip()):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        body = f.read(int(headers.get("content-length", "0") or 0))
        common = b"Api-Version: 1.45\r\nOstype: linux\r\n"
        if "/_ping" in request:
            payload = b"" if request.startswith("HEAD") else b"OK"
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + common + b"Content-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
            return True
        self.bodies.append((request.split()[1], body))
        msg = b'{"message":"recorded by the test"}'
        conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\n" + common +
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(msg)
                     + msg)
        return True

    def create(self, *args: str) -> tuple[str, bytes]:
        """Run ``docker create ARGS`` and return (request target, body) it sent."""
        before = len(self.bodies)
        subprocess.run(["docker", "-H", f"unix://{self.path}", "create", *args],
                       capture_output=True, timeout=60, check=False,
                       env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent",
                            "DOCKER_CONFIG": "/nonexistent"})
        assert len(self.bodies) == before + 1, "docker create sent no create request"
        return self.bodies[-1]

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def fake_daemon(tmp_path):
    daemon = FakeDaemon(str(tmp_path / "api.sock"))
    yield daemon
    daemon.close()


def _name(target: str) -> str:
    _, _, query = target.partition("?name=")
    return query.split("&")[0]


def test_run_style_flags(fake_daemon):
    target, body = fake_daemon.create(
        "--name", "web", "-m", "64m", "--cpus", "0.5", "-e", "A=1", "-v", "/tmp/x:/data:ro",
        "--tmpfs", "/run:size=1m", "--restart", "on-failure:3", "-p", "127.0.0.1:8080:80",
        "busybox", "httpd", "-f")
    req = parse_create(body, name=_name(target))
    assert req.name == "web" and req.image == "busybox"
    assert req.run.cmd == ("httpd", "-f") and req.run.env == ("A=1",)
    assert req.run.memory == 64 << 20 and req.run.nano_cpus == 500_000_000
    assert req.restart == RestartPolicy("on-failure", 3)
    assert [(m.kind, m.source, m.destination, m.read_only) for m in req.mounts] == [
        ("bind", "/tmp/x", "/data", True), ("tmpfs", "", "/run", False)]
    assert req.port_bindings == (PortBinding(80, "tcp", "127.0.0.1", 8080, 8080),)
    assert req.host_config["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}


def test_mount_health_and_log_flags(fake_daemon):
    _, body = fake_daemon.create(
        "--mount", "type=bind,src=/tmp,dst=/hosttmp,readonly,bind-propagation=rslave",
        "--mount", "type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1770",
        "--health-cmd", "true", "--health-interval", "5s", "--log-opt", "max-size=5m",
        "--security-opt", "no-new-privileges", "--entrypoint", "", "busybox", "sh")
    req = parse_create(body)
    assert req.mounts[0] == MountRequest("bind", "/hosttmp", "/tmp", True, "rslave",
                                         origin="mounts")
    assert req.mounts[1].tmpfs_size == 1 << 20 and req.mounts[1].tmpfs_mode == 0o1770
    assert req.healthcheck.test == ("/bin/sh", "-c", "true") and req.healthcheck.interval == 5
    assert req.log == LogConfig("json-file", 5 << 20, 3, (("max-size", "5m"),))
    assert req.run.no_new_privileges and req.run.entrypoint == ("",)


def test_refusals_reach_the_client_as_docker_words(fake_daemon):
    _, body = fake_daemon.create("--log-driver", "syslog", "busybox")
    with pytest.raises(InvalidArgument, match="logging driver 'syslog' is not supported"):
        parse_create(body)
    _, body = fake_daemon.create("--uts", "host", "--hostname", "box", "busybox")
    with pytest.raises(InvalidArgument, match="hostname and the UTS mode"):
        parse_create(body)
