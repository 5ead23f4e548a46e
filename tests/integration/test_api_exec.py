"""``docker exec`` with the real docker CLI (28) against a real ``dockyard daemon``: output, exit
codes (the command's, 126 for one that cannot start, like dockerd), -e/-u/-w, stdin, separate
stderr, -d, -it through a real pty (tty, resize), ExecIDs in inspect, exec into a stopped
container; raw HTTP for the API's shapes (exec inspect, framing, events)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest
from containers_util import ENGINE_MARKS, poll
from daemon_util import Daemon, daemon_fixture

pytestmark = ENGINE_MARKS

daemon = daemon_fixture()


@pytest.fixture
def d(daemon: Daemon) -> Iterator[Daemon]:
    yield daemon
    left = daemon.docker("ps", "-aq").stdout.split()
    if left:
        daemon.docker("rm", "-f", *left, check=False)


@pytest.fixture
def box(d: Daemon) -> Iterator[str]:
    """A running busybox container (``sleep``); removed after the test."""
    cid = d.docker("run", "-d", "busybox", "sleep", "1000").stdout.strip()
    yield cid
    d.docker("rm", "-f", cid, check=False)


# ------------------------------------------------------------------ output and exit codes


def test_exec_prints_output(d: Daemon, box: str) -> None:
    p = d.docker("exec", box, "echo", "hi")
    assert p.stdout == "hi\n"
    assert p.stderr == ""


def test_exec_exit_codes(d: Daemon, box: str) -> None:
    assert d.docker("exec", box, "sh", "-c", "exit 5", check=False).returncode == 5
    assert d.docker("exec", box, "true").returncode == 0
    p = d.docker("exec", box, "nosuch", check=False)
    assert p.returncode == 126  # dockerd's code for an exec that cannot start
    assert p.stdout == ('OCI runtime exec failed: exec failed: unable to start container '
                        'process: exec: "nosuch": executable file not found in $PATH: unknown\n')  # \r\n in text mode
    p = d.docker("exec", "-u", "nosuchuser", box, "id", check=False)
    assert p.returncode == 126
    assert p.stdout == "unable to find user nosuchuser: no matching entries in passwd file\n"
    p = d.docker("exec", "-d", box, "nosuch", check=False)
    assert p.returncode == 1 and "Error response from daemon: OCI runtime exec failed" in p.stderr


def test_exec_killed_by_signal_is_128_plus(d: Daemon, box: str) -> None:
    assert d.docker("exec", box, "sh", "-c", "kill -9 $$", check=False).returncode == 137


def test_exec_ends_with_its_process_not_its_background_children(d: Daemon, box: str) -> None:
    p = d.docker("exec", box, "sh", "-c", "sleep 1000 & echo started", timeout=60)
    assert p.stdout == "started\n" and p.returncode == 0


def test_exec_stderr_is_separate(d: Daemon, box: str) -> None:
    p = d.docker("exec", box, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert p.returncode == 3
    assert p.stdout == "out\n"
    assert p.stderr == "err\n"


def test_exec_env_user_workdir(d: Daemon) -> None:
    cid = d.docker("run", "-d", "-e", "KEEP=1", "-e", "OVER=old", "-w", "/etc", "busybox",
                   "sleep", "1000").stdout.strip()
    try:
        p = d.docker("exec", "-e", "FOO=bar", "-e", "OVER=new", cid, "sh", "-c",
                     "echo $FOO $KEEP $OVER; pwd; id -u")
        assert p.stdout.split() == ["bar", "1", "new", "/etc", "0"]
        assert d.docker("exec", "-u", "nobody", cid, "id", "-u").stdout.strip() == "65534"
        assert d.docker("exec", "-u", "65534:65534", cid, "id", "-g").stdout.strip() == "65534"
        assert d.docker("exec", "-w", "/tmp", cid, "pwd").stdout.strip() == "/tmp"
    finally:
        d.docker("rm", "-f", cid)


def test_exec_privileged_gets_every_capability(d: Daemon, box: str) -> None:
    def cap_eff(*flags: str) -> int:
        out = d.docker("exec", *flags, box, "grep", "CapEff", "/proc/self/status").stdout
        return int(out.split()[1], 16)

    plain, privileged = cap_eff(), cap_eff("--privileged")
    assert plain & ~privileged == 0
    assert bin(privileged).count("1") > bin(plain).count("1")
    assert privileged & (1 << 21)  # CAP_SYS_ADMIN


# ------------------------------------------------------------------ stdin, detached


def test_exec_stdin(d: Daemon, box: str) -> None:
    assert d.docker("exec", "-i", box, "cat", input="hi\n").stdout == "hi\n"
    big = "".join(f"line {i}\n" for i in range(20000))
    assert d.docker("exec", "-i", box, "wc", "-l", input=big).stdout.strip() == "20000"


def test_exec_without_i_gets_no_stdin(d: Daemon, box: str) -> None:
    assert d.docker("exec", box, "cat", input="ignored\n").stdout == ""


def test_exec_detached(d: Daemon, box: str) -> None:
    p = d.docker("exec", "-d", box, "sh", "-c", "sleep 0.2; touch /tmp/made")
    assert p.stdout == ""
    poll("the detached exec's file", lambda: d.docker("exec", box, "test", "-e", "/tmp/made",
                                                      check=False).returncode == 0)


# ------------------------------------------------------------------ TTY through a real pty


def _docker_in_pty(d: Daemon, args: list[str], script: Callable[[int, int], None]) -> tuple[int, str]:
    """Run ``docker ARGS`` with a pty as its terminal; ``script(master, pid)`` drives it. Returns
    (exit code, everything the terminal showed)."""
    cfg = d.tmp / "docker-config"
    cfg.mkdir(exist_ok=True)
    pid, master = pty.fork()
    if pid == 0:  # the child: docker on the pty
        os.environ["DOCKER_CONFIG"] = str(cfg)
        try:
            os.execvp("docker", ["docker", "-H", d.host, *args])
        finally:
            os._exit(127)
    shown = bytearray()
    try:
        script(master, pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                shown += data
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(master)


def _read_until(master: int, text: bytes, seen: bytearray, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not shown; the terminal showed {bytes(seen)!r}")
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            seen += os.read(master, 65536)


def test_exec_tty_has_a_pty_and_follows_resizes(d: Daemon, box: str) -> None:
    seen = bytearray()

    def drive(master: int, pid: int) -> None:
        import fcntl
        import termios

        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        _read_until(master, b"# ", seen)  # busybox sh's prompt
        os.write(master, b"tty; stty size\r")
        _read_until(master, b"30 100", seen)
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 41, 132, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        time.sleep(0.3)  # the CLI sends the resize asynchronously
        os.write(master, b"stty size; exit 7\r")
        _read_until(master, b"41 132", seen)

    code, rest = _docker_in_pty(d, ["exec", "-it", box, "sh"], drive)
    shown = bytes(seen).decode(errors="replace") + rest
    assert "/dev/pts/" in shown, shown
    assert code == 7


def test_exec_detach_keys_leave_the_process_running(d: Daemon, box: str) -> None:
    seen = bytearray()

    def drive(master: int, pid: int) -> None:
        _read_until(master, b"# ", seen)
        os.write(master, b"echo $((6*7))\r")
        _read_until(master, b"42", seen)
        os.write(master, b"\x10\x11")  # ctrl-p ctrl-q

    _, rest = _docker_in_pty(d, ["exec", "-it", box, "sh"], drive)
    assert "read escape sequence" in rest  # the docker CLI's own words (it exits 1, as with dockerd)
    ids = json.loads(d.docker("inspect", box).stdout)[0]["ExecIDs"]
    assert ids and d.json("GET", f"/exec/{ids[0]}/json")["Running"] is True


def test_exec_detach_keys_end_the_stream_in_the_daemon(d: Daemon, box: str) -> None:
    e = d.json("POST", f"/containers/{box}/exec",
               {"Cmd": ["sh"], "Tty": True, "AttachStdin": True, "AttachStdout": True,
                "DetachKeys": "ctrl-x,x"}, status=201)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(d.sock))
    body = b'{"Tty": true}'
    s.sendall(f"POST /exec/{e['Id']}/start HTTP/1.1\r\nHost: x\r\nContent-Type: "
              f"application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    seen = bytearray()
    try:
        while b"# " not in seen:
            seen += s.recv(65536)
        s.sendall(b"echo $((6*7))\r")
        while b"42" not in seen.split(b"\r\n\r\n", 1)[-1]:
            seen += s.recv(65536)
        s.sendall(b"\x18x")  # ctrl-x x: the stream ends, sh stays
        while chunk := s.recv(65536):
            seen += chunk
    finally:
        s.close()
    info = d.json("GET", f"/exec/{e['Id']}/json")
    assert info["Running"] is True and info["ExitCode"] is None


@pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc")
def test_exec_in_a_runc_container(d: Daemon) -> None:
    """runc honours --console-socket only with --detach: the TTY exec's exit still counts."""
    cid = d.docker("run", "-d", "--runtime", "runc", "busybox", "sleep", "1000").stdout.strip()
    try:
        assert d.docker("exec", cid, "echo", "hi").stdout == "hi\n"
        assert d.docker("exec", cid, "sh", "-c", "exit 5", check=False).returncode == 5
        p = d.docker("exec", "-t", cid, "sh", "-c", "tty; exit 6", check=False)
        assert p.returncode == 6 and p.stdout.startswith("/dev/pts/")
        assert d.docker("exec", cid, "nosuch", check=False).returncode == 126
    finally:
        d.docker("rm", "-f", cid)


def test_exec_tty_over_the_api_is_raw(d: Daemon, box: str) -> None:
    e = d.json("POST", f"/containers/{box}/exec",
               {"Cmd": ["sh", "-c", "tty; echo err >&2"], "Tty": True, "AttachStdout": True,
                "AttachStderr": True}, status=201)
    status, headers, body = d.request("POST", f"/exec/{e['Id']}/start",
                                      json.dumps({"Tty": True}).encode(),
                                      {"Content-Type": "application/json"})
    assert status == 200
    assert headers["content-type"] == "application/vnd.docker.raw-stream"
    text = body.decode()
    assert "/dev/pts/" in text and "err\r\n" in text  # one terminal, no framing


# ------------------------------------------------------------------ API shapes


def _hijack(d: Daemon, path: str, body: dict) -> tuple[bytes, bytes]:
    """POST with ``Upgrade: tcp``; (response head, every byte after it until EOF)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(d.sock))
    data = json.dumps(body).encode()
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(data)}\r\n\r\n"
              .encode() + data)
    raw = bytearray()
    while b"\r\n\r\n" not in raw:  # the client closes its side only once hijacked, as docker
        chunk = s.recv(65536)
        assert chunk, f"the daemon closed the connection: {bytes(raw)!r}"
        raw += chunk
    s.shutdown(socket.SHUT_WR)
    while chunk := s.recv(65536):
        raw += chunk
    s.close()
    head, _, rest = bytes(raw).partition(b"\r\n\r\n")
    return head, rest


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        stream, size = struct.unpack(">BxxxI", data[:8])
        out.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return out


def test_exec_api_inspect_and_multiplexed_stream(d: Daemon, box: str) -> None:
    e = d.json("POST", f"/v1.45/containers/{box}/exec",
               {"Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"], "AttachStdout": True,
                "AttachStderr": True, "User": "nobody"}, status=201)
    eid = e["Id"]
    before = d.json("GET", f"/v1.45/exec/{eid}/json")
    assert before == {
        "CanRemove": False, "ContainerID": box, "DetachKeys": "", "ExitCode": None, "ID": eid,
        "OpenStderr": True, "OpenStdin": False, "OpenStdout": True,
        "ProcessConfig": {"arguments": ["-c", "echo out; echo err >&2; exit 3"],
                          "entrypoint": "sh", "privileged": False, "tty": False,
                          "user": "nobody"},
        "Running": False, "Pid": 0}
    assert eid in json.loads(d.docker("inspect", box).stdout)[0]["ExecIDs"]
    head, rest = _hijack(d, f"/v1.45/exec/{eid}/start", {"Detach": False, "Tty": False})
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    assert b"application/vnd.docker.multiplexed-stream" in head
    assert sorted(_frames(rest)) == [(1, b"out\n"), (2, b"err\n")]
    after = d.json("GET", f"/v1.45/exec/{eid}/json")
    assert after["ExitCode"] == 3 and after["Running"] is False and after["Pid"] > 0
    assert json.loads(d.docker("inspect", box).stdout)[0]["ExecIDs"] is None
    # started twice: refused, as dockerd does
    code, _, body = d.request("POST", f"/exec/{eid}/start", b'{"Detach": true}',
                              {"Content-Type": "application/json"})
    assert code == 409 and f"Error: Exec command {eid} has already run".encode() in body


def test_exec_ids_listed_while_running(d: Daemon, box: str) -> None:
    d.docker("exec", "-d", box, "sleep", "1000")
    ids = poll("an exec id", lambda: json.loads(d.docker("inspect", box).stdout)[0]["ExecIDs"])
    assert len(ids) == 1
    info = d.json("GET", f"/exec/{ids[0]}/json")
    assert info["Running"] is True and info["Pid"] > 0
    assert info["ProcessConfig"]["entrypoint"] == "sleep"


def test_exec_errors(d: Daemon) -> None:
    code, _, body = d.request("POST", "/containers/nosuch/exec", b'{"Cmd": ["true"]}',
                              {"Content-Type": "application/json"})
    assert code == 404 and b"No such container: nosuch" in body
    code, _, body = d.request("GET", "/exec/nosuch/json")
    assert code == 404 and b"No such exec instance: nosuch" in body
    cid = d.docker("create", "busybox", "sleep", "1000").stdout.strip()
    try:
        p = d.docker("exec", cid, "true", check=False)
        assert p.returncode != 0
        assert f"Container {cid} is not running" in p.stderr
        d.docker("start", cid)
        code, _, body = d.request("POST", f"/containers/{cid}/exec", b'{"Cmd": []}',
                                  {"Content-Type": "application/json"})
        assert code == 400 and b"No exec command specified" in body
        d.docker("pause", cid)
        p = d.docker("exec", cid, "true", check=False)
        assert p.returncode != 0 and "is paused" in p.stderr
        d.docker("unpause", cid)
        d.docker("stop", "-t", "0", cid)
        p = d.docker("exec", cid, "true", check=False)
        assert p.returncode != 0 and "is not running" in p.stderr
    finally:
        d.docker("rm", "-f", cid)


def test_exec_records_go_with_their_container(d: Daemon) -> None:
    cid = d.docker("run", "-d", "busybox", "sleep", "1000").stdout.strip()
    eid = d.json("POST", f"/containers/{cid}/exec", {"Cmd": ["true"]}, status=201)["Id"]
    d.json("POST", f"/exec/{eid}/start", {"Detach": True})
    poll("the exec's exit", lambda: d.json("GET", f"/exec/{eid}/json")["ExitCode"] == 0)
    d.docker("rm", "-f", cid)
    code, _, _ = d.request("GET", f"/exec/{eid}/json")
    assert code == 404


def test_exec_ends_when_the_container_stops(d: Daemon, box: str) -> None:
    eid = d.json("POST", f"/containers/{box}/exec", {"Cmd": ["sleep", "1000"]}, status=201)["Id"]
    d.json("POST", f"/exec/{eid}/start", {"Detach": True})
    d.docker("kill", box)
    info = poll("the exec's end", lambda: (lambda i: i if not i["Running"] else None)(
        d.json("GET", f"/exec/{eid}/json")))
    assert info["ExitCode"] != 0


def test_exec_events(d: Daemon, box: str) -> None:
    since = str(time.time() - 1)
    d.docker("exec", box, "sh", "-c", "exit 4", check=False)
    until = str(time.time() + 1)
    out = d.docker("events", "--since", since, "--until", until, "--filter", f"container={box}",
                   "--format", "{{.Action}}|{{index .Actor.Attributes \"exitCode\"}}").stdout
    lines = out.splitlines()
    assert "exec_create: sh -c exit 4|" in lines
    assert "exec_start: sh -c exit 4|" in lines
    assert "exec_die|4" in lines
