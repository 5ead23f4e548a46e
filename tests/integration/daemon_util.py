"""A real ``dockyard daemon`` for integration tests: started as a subprocess on a private root and
unix socket, driven by raw HTTP, the ``dockyard`` CLI and the docker CLI, killed and restarted for
crash tests, and checked at teardown (process gone, socket gone).

Imported as ``from daemon_util import ...`` (pytest puts this directory on sys.path, as for
runtime_util.py). In a test module::

    from daemon_util import Daemon, daemon_fixture

    daemon = daemon_fixture()                        # one daemon per module, busybox loaded
    fresh = daemon_fixture(scope="function", busybox=False, name="fresh")

    def test_x(daemon: Daemon) -> None:
        assert daemon.cli("images", "-q").stdout

Or without a fixture: ``with running_daemon(tmp_path) as d: ...``.
"""

from __future__ import annotations

import contextlib
import http.client
import json as _json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_SCRIPT = Path(sys.executable).with_name("dockyard")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "dockyard.cli.main"]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a unix socket."""

    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Daemon:
    """One daemon process on ``root`` listening on ``sock`` (its output goes to ``log``)."""

    def __init__(self, tmp: Path, *, config: dict | None = None, extra_args: tuple[str, ...] = ()
                 ) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        self.root = tmp / "root"
        self.sock = tmp / "d.sock"
        self.log = tmp / "daemon.log"
        self.config_file = tmp / "daemon.json"
        self.config_file.write_text(_json.dumps(config if config is not None
                                                else {"log-level": "info"}))
        self.extra_args = extra_args
        self.host = f"unix://{self.sock}"
        self.proc: subprocess.Popen | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Daemon:
        assert self.proc is None or self.proc.poll() is not None, "the daemon is already running"
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(
                [*CLI, "daemon", "--root", str(self.root), "-H", self.host,
                 "--config", str(self.config_file),
                 *(() if "--exec-root" in self.extra_args else
                   ("--exec-root", str(self.tmp / "exec"))), *self.extra_args],
                stdout=f, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self.request("GET", "/_ping")[0] == 200:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the daemon did not answer /_ping:\n{self.log_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, wait, and check that the process and its socket are gone (exit 0)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"the daemon ignored SIGTERM:\n{self.log_text()}") from None
            assert code == 0, f"the daemon exited {code}:\n{self.log_text()}"
            assert not self.sock.exists(), "the daemon left its socket"
        elif self.sock.exists():  # killed by kill9(): its socket is stale, nobody removed it
            self.sock.unlink()
        self.proc = None

    def kill9(self) -> None:
        """SIGKILL the daemon (a crash): the socket stays behind, as after a real crash."""
        assert self.proc is not None and self.proc.poll() is None, "the daemon is not running"
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> Daemon:
        """Start again on the same root and socket (after ``kill9()`` or a clean ``stop()``)."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        return self.start()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ clients

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 120
                ) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTP request: (status, lower-cased headers, body)."""
        conn = UnixHTTPConnection(str(self.sock), timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: object = None, status: int | None = None):
        """A JSON request; the parsed answer. Fails unless the status is ``status`` (any 2xx
        if not given)."""
        data = None if body is None else _json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        code, _, raw = self.request(method, path, data, headers)
        ok = code == status if status is not None else 200 <= code < 300
        assert ok, f"{method} {path}: {code} {raw[:2000]!r}"
        return _json.loads(raw) if raw.strip() else None

    def cli(self, *args: str, input: bytes | str | None = None, check: bool = True,
            env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        """``dockyard -H unix://<sock> ARGS``; text output unless ``input`` is bytes."""
        text = not isinstance(input, bytes)
        p = subprocess.run([*CLI, "-H", self.host, *args], input=input, capture_output=True,
                           text=text, timeout=timeout, env={**os.environ, **(env or {})})
        if check and p.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} exited {p.returncode}:\n{p.stderr}")
        return p

    def docker(self, *args: str, input: bytes | str | None = None, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess:
        """The real docker CLI against this daemon, with a private DOCKER_CONFIG."""
        cfg = self.tmp / "docker-config"
        cfg.mkdir(exist_ok=True)
        text = not isinstance(input, bytes)
        p = subprocess.run(["docker", "-H", self.host, *args], input=input, capture_output=True,
                           text=text, timeout=timeout,
                           env={**os.environ, "DOCKER_CONFIG": str(cfg)})
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {p.returncode}:\n{p.stderr}")
        return p

    # ------------------------------------------------------------------ images

    def bootstrap_busybox(self, tag: str = "busybox:latest") -> str:
        """Create the busybox image (host /bin/busybox) in this daemon; its id."""
        return self.json("POST", f"/dockyard/images/bootstrap?name=busybox&tag={tag}")["Id"]


@contextlib.contextmanager
def running_daemon(tmp: Path, *, busybox: bool = False, config: dict | None = None,
                   extra_args: tuple[str, ...] = ()) -> Iterator[Daemon]:
    """A started daemon on ``tmp``/root (busybox:latest in it if asked), stopped and checked on
    the way out."""
    d = Daemon(tmp, config=config, extra_args=extra_args)
    d.start()
    try:
        if busybox:
            d.bootstrap_busybox()
        yield d
    finally:
        d.stop()


def daemon_fixture(*, scope: str = "module", busybox: bool = True, name: str = "daemon",
                   config: dict | None = None, extra_args: tuple[str, ...] = ()):
    """A pytest fixture (assign it to a module global) yielding a running ``Daemon``."""

    @pytest.fixture(scope=scope, name=name)
    def _daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
        with running_daemon(tmp_path_factory.mktemp(name), busybox=busybox, config=config,
                            extra_args=extra_args) as d:
            yield d

    return _daemon
