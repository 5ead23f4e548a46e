"""dockyard-runtime terminals on the real kernel: --console-socket (create, exec -t), and a foreground
``run``/``exec -t`` whose own stdio is a pty."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import socket
import tempfile
import threading
import time

import pytest

from runtime_util import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

PTS = re.compile(r"/dev/pts/\d+")


class ConsoleSocket:
    """A listening unix socket for --console-socket: receives the pty master (SCM_RIGHTS) and reads
    everything the container writes to its terminal, in a background thread."""

    def __init__(self) -> None:
        # sun_path is short (108 bytes): a short directory, not pytest's tmp_path
        self.dir = tempfile.mkdtemp(prefix="dy-console-")
        self.path = os.path.join(self.dir, "sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.server.settimeout(30)
        self.master = -1
        self.payload = b""
        self._out = bytearray()
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
            with conn:
                msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
            self.payload = msg
            if not fds:
                raise AssertionError("no fd received on the console socket")
            self.master = fds[0]
            while True:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: every slave fd closed
                    break
                if not data:
                    break
                with self._lock:
                    self._out += data
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.done.set()

    def output(self) -> str:
        with self._lock:
            return self._out.decode(errors="replace")

    def write(self, data: bytes) -> None:
        wait_for(lambda: self.master >= 0, "the pty master")
        os.write(self.master, data)

    def wait_closed(self, timeout: float = 20) -> str:
        """Wait until the pty has no slave left (the container side exited); return all output."""
        assert self.done.wait(timeout), f"the terminal did not close; output so far {self.output()!r}"
        if self.error is not None:
            raise self.error
        return self.output()

    def close(self) -> None:
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes a thread still blocked in accept()
        except OSError:
            pass
        self.server.close()
        self.done.wait(5)
        if self.master >= 0 and self.done.is_set():
            os.close(self.master)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def console():
    cs = ConsoleSocket()
    yield cs
    cs.close()


def run_under_pty(argv: list[str], reply: tuple[bytes, bytes] | None = None,
                  timeout: float = 30) -> tuple[str, int]:
    """Run ``argv`` with a new pty as its stdin/stdout/stderr; collect the output until it exits.

    ``reply``: when the output contains ``reply[0]``, type ``reply[1]``. Returns (output, exit code).
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, whatever happens
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    sent = reply is None
    status = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO: the child side of the pty is closed
                    data = b""
                if not data:
                    break
                out += data
                if not sent and reply[0] in out:
                    os.write(fd, reply[1])
                    sent = True
        got, status = os.waitpid(pid, 0 if time.monotonic() < deadline else os.WNOHANG)
        if got == 0:
            status = None
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert status is not None, f"{argv} did not finish in {timeout}s; output {out!r}"
    return out.decode(errors="replace"), os.waitstatus_to_exitcode(status)


# --------------------------------------------------------------------------------------------------
# --console-socket


def test_console_socket_create_start(runtime, make_bundle, console):
    script = "tty; test -t 0 && test -t 1 && echo stdio-is-a-tty; ls -l /dev/console; exit 0"
    b = make_bundle(["sh", "-c", script], process={"terminal": True})
    runtime.run("create", "--bundle", b.path, "--console-socket", console.path, b.id)
    wait_for(lambda: console.master >= 0, "the pty master on the console socket")
    assert runtime.state(b.id)["status"] == "created"
    assert console.output() == "", "the process wrote before start"

    runtime.run("start", b.id)
    out = console.wait_closed()
    lines = out.replace("\r\n", "\n").splitlines()
    assert PTS.fullmatch(lines[0]), out
    assert "stdio-is-a-tty" in lines
    console_line = next(ln for ln in lines if ln.endswith("/dev/console"))
    assert console_line.startswith("c"), f"/dev/console is not a character device: {console_line}"
    runtime.wait_status(b.id, "stopped")


def test_console_socket_input(runtime, make_bundle, console):
    b = make_bundle(["sh", "-c", "read line; echo got=$line"], process={"terminal": True})
    runtime.run("run", "--detach", "--bundle", b.path, "--console-socket", console.path, b.id)
    console.write(b"typed\n")
    assert "got=typed" in console.wait_closed()
    runtime.wait_status(b.id, "stopped")


def test_console_size_from_the_spec(runtime, make_bundle, console):
    b = make_bundle(["stty", "size"], process={"terminal": True,
                                               "consoleSize": {"height": 33, "width": 101}})
    runtime.run("run", "--detach", "--bundle", b.path, "--console-socket", console.path, b.id)
    assert console.wait_closed().strip() == "33 101"


def test_terminal_without_console_socket_fails_create(runtime, make_bundle):
    b = make_bundle(["true"], process={"terminal": True})
    proc = runtime.run("create", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == 1
    assert "console-socket" in proc.stderr
    assert b.id not in runtime.containers()


def test_console_socket_without_terminal_fails(runtime, make_bundle, console):
    b = make_bundle(["true"])
    proc = runtime.run("create", "--bundle", b.path, "--console-socket", console.path, b.id,
                       check=False)
    assert proc.returncode == 1
    assert "terminal" in proc.stderr
    assert b.id not in runtime.containers()


@pytest.mark.parametrize("detach", [True, False], ids=["detach", "foreground"])
def test_exec_tty_console_socket(runtime, make_bundle, console, detach):
    b = make_bundle(["sleep", "1000"])
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    flags = ["-t", "--console-socket", console.path] + (["--detach"] if detach else [])
    proc = runtime.run("exec", *flags, b.id, "sh", "-c", "tty; exit 0", check=False)
    assert proc.returncode == 0, proc.stderr
    out = console.wait_closed()
    assert PTS.fullmatch(out.strip()), out


# --------------------------------------------------------------------------------------------------
# a foreground run/exec on our own pty


def test_run_terminal_in_the_foreground(runtime, make_bundle):
    b = make_bundle(["sh", "-c", "tty; read x; echo got=$x; exit 7"], process={"terminal": True})
    out, code = run_under_pty(runtime.argv("run", "--bundle", b.path, b.id),
                              reply=(b"/dev/pts/", b"hello\n"))
    assert code == 7, out
    assert PTS.search(out), out
    assert "got=hello" in out
    assert b.id not in runtime.containers()


def test_exec_tty_in_the_foreground(runtime, make_bundle):
    b = make_bundle(["sleep", "1000"])
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    out, code = run_under_pty(runtime.argv("exec", "-t", b.id, "sh", "-c", "tty; exit 3"))
    assert code == 3, out
    assert PTS.search(out), out
