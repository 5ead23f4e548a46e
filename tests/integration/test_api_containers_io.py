"""Container I/O with the real docker CLI against a real ``dockyard daemon``: logs (streams,
tail, timestamps, since/until, follow, Docker's framing, rotation read across files), attach,
piped stdin and ``-it`` through a real pty (tty, window size, resizes, keys, Ctrl-C)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from containers_util import ENGINE_MARKS, cleaned_daemon, poll, state
from daemon_util import Daemon, daemon_fixture

pytestmark = ENGINE_MARKS

daemon = daemon_fixture()
d = cleaned_daemon()


# ------------------------------------------------------------------ logs


def test_logs_streams_tail_timestamps_and_since(d: Daemon) -> None:
    d.docker("run", "--name", "lg", "busybox", "sh", "-c",
             "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done")
    p = d.docker("logs", "lg")
    assert p.stdout.split() == [f"out{i}" for i in range(1, 6)]
    assert p.stderr.split() == [f"err{i}" for i in range(1, 6)]
    p = subprocess.run(f"docker -H {d.host} logs lg 2>/dev/null", shell=True, text=True,
                       capture_output=True, env={**os.environ, "DOCKER_CONFIG": str(d.tmp)})
    assert p.stdout.split() == [f"out{i}" for i in range(1, 6)]
    d.docker("run", "--name", "lg2", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo o$i; done")
    assert d.docker("logs", "--tail", "2", "lg2").stdout.split() == ["o4", "o5"]
    assert d.docker("logs", "--tail", "0", "lg2").stdout == ""
    stamped = d.docker("logs", "-t", "lg2").stdout.splitlines()
    assert len(stamped) == 5
    ts, text = stamped[0].split(" ", 1)
    assert text == "o1" and ts.endswith("Z") and ts[:4].isdigit() and "T" in ts
    assert d.docker("logs", "--since", "1h", "lg").stdout.split()[0] == "out1"
    assert d.docker("logs", "--since", f"{time.time() + 60:.0f}", "lg").stdout == ""
    # the raw API: Docker's 8-byte framing, stream ids 1 and 2
    code, headers, body = d.request("GET", "/v1.41/containers/lg/logs?stdout=1&stderr=1")
    assert code == 200
    frames: dict[int, bytes] = {1: b"", 2: b""}
    while body:
        assert body[1:4] == b"\0\0\0" and body[0] in frames
        size = int.from_bytes(body[4:8], "big")
        frames[body[0]] += body[8:8 + size]
        body = body[8 + size:]
    assert frames == {1: b"out1\nout2\nout3\nout4\nout5\n", 2: b"err1\nerr2\nerr3\nerr4\nerr5\n"}
    code, _, body = d.request("GET", "/containers/lg/logs")
    assert code == 400 and "choose at least one stream" in json.loads(body)["message"]
    d.docker("rm", "lg", "lg2")


def test_logs_follow_ends_when_the_container_stops(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "lf", "busybox", "sh", "-c",
             "echo first; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo last")
    follower = subprocess.Popen(["docker", "-H", d.host, "logs", "-f", "lf"],
                                env={**os.environ, "DOCKER_CONFIG": str(d.tmp)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "first\n"
        d.docker("exec", "lf", "touch", "/tmp/go")
        out, _ = follower.communicate(timeout=20)
        assert out == "last\n" and follower.returncode == 0
    finally:
        follower.kill()
        follower.wait()
    d.docker("rm", "lf")


def test_log_rotation_keeps_two_files_and_logs_reads_across(d: Daemon) -> None:
    # ~1.4 kB a second for 3 s: the daemon (checking each second) rotates at 1 kB, keeps 2 files
    d.docker("run", "--name", "rot", "--log-opt", "max-size=1k", "--log-opt", "max-file=2",
             "busybox", "sh", "-c", "i=0; while [ $i -lt 90 ]; do echo line$i; i=$((i+1)); "
             "[ $((i % 3)) = 0 ] && sleep 0.1; done")
    log_path = Path(state(d, "rot", "{{.LogPath}}"))
    files = sorted(p.name for p in log_path.parent.iterdir() if p.name.startswith("ctr.log"))
    assert files == ["ctr.log", "ctr.log.1"]
    assert sum(p.stat().st_size for p in log_path.parent.glob("ctr.log*")) < 4096
    lines = d.docker("logs", "rot").stdout.split()
    assert lines and lines[-1] == "line89"
    first = int(lines[0][4:])
    assert first > 0 and lines == [f"line{i}" for i in range(first, 90)]
    d.docker("rm", "rot")


# ------------------------------------------------------------------ attach, stdin, tty


def test_attach_to_a_running_container(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "at", "busybox", "sh", "-c",
             "while [ ! -e /tmp/stop ]; do echo tick; sleep 0.1; done; echo bye; exit 3")
    att = subprocess.Popen(["docker", "-H", d.host, "attach", "at"],
                           env={**os.environ, "DOCKER_CONFIG": str(d.tmp)},
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert att.stdout is not None
        assert att.stdout.readline() == "tick\n"
        d.docker("exec", "at", "touch", "/tmp/stop")
        out, _ = att.communicate(timeout=20)
        assert out.endswith("bye\n") and att.returncode == 3
    finally:
        att.kill()
        att.wait()
    d.docker("rm", "at")


def test_run_i_pipes_stdin(d: Daemon) -> None:
    p = d.docker("run", "-i", "--rm", "busybox", "cat", input="one\ntwo\n")
    assert p.stdout == "one\ntwo\n"
    p = d.docker("run", "-i", "--rm", "busybox", "sh", "-c", "wc -l; exit 6",
                 input="a\nb\nc\n", check=False)
    assert (p.returncode, p.stdout.strip()) == (6, "3")
    data = bytes(range(256)) * 512  # 128 KiB of binary through stdin and stdout
    p = d.docker("run", "-i", "--rm", "busybox", "cat", input=data)
    assert p.stdout == data


def _pty_docker(d: Daemon, rows: int, cols: int, *args: str) -> tuple[int, int]:
    """Fork ``docker ARGS`` on a new pty of ``rows`` x ``cols``; ``(pid, master fd)``."""
    import fcntl
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: docker on the pty
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.environ["DOCKER_CONFIG"] = str(d.tmp)
            os.execvp("docker", ["docker", "-H", d.host, *args])
        finally:
            os._exit(127)
    return pid, fd


def _pty_read_until(fd: int, marker: bytes, buf: bytes = b"", timeout: float = 20) -> bytes:
    import select

    deadline = time.monotonic() + timeout
    while marker not in buf:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"no {marker!r} in {buf!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the pty
            break
        if not chunk:
            break
        buf += chunk
    return buf


def _pty_finish(pid: int, fd: int) -> tuple[bytes, int]:
    """The rest of the output and docker's exit code (killed if it has not ended in 20 s)."""
    try:
        rest = _pty_read_until(fd, b"\0never\0")
    except AssertionError:
        os.kill(pid, 9)
        raise
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return rest, os.waitstatus_to_exitcode(status)


def test_run_it_through_a_pty(d: Daemon) -> None:
    pid, fd = _pty_docker(d, 33, 101, "run", "-it", "--rm", "busybox", "sh", "-c",
                          "tty; stty size; exit 5")
    out, code = _pty_finish(pid, fd)
    text = out.decode(errors="replace").replace("\r", "")
    assert "/dev/pts/0" in text
    assert "33 101" in text
    assert code == 5


def test_run_it_follows_window_resizes_and_takes_keys(d: Daemon) -> None:
    import fcntl
    import struct
    import termios

    pid, fd = _pty_docker(d, 20, 70, "run", "-it", "--rm", "--name", "rsz", "busybox", "sh",
                          "-c", "stty size; read line; echo line=$line; stty size; exit 0")
    try:
        buf = _pty_read_until(fd, b"20 70")

        def resized() -> bool:
            # each size change sends docker a SIGWINCH; again while docker may not have been
            # listening yet (the CLI starts watching only after the start returned)
            for rows, cols in ((45, 133), (44, 132)):
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            time.sleep(0.2)
            return d.docker("exec", "rsz", "stty", "-F", "/dev/pts/0", "size",
                            check=False).stdout == "44 132\n"

        poll("the resize reaches the container's tty", resized)
        os.write(fd, b"typed\r")
        buf = _pty_read_until(fd, b"44 132", buf)
    finally:
        out, code = _pty_finish(pid, fd)
    text = (buf + out).decode(errors="replace").replace("\r", "")
    assert "line=typed" in text
    assert code == 0


def test_run_it_ctrl_c_reaches_the_container(d: Daemon) -> None:
    pid, fd = _pty_docker(d, 24, 80, "run", "-it", "--rm", "busybox", "sh", "-c",
                          "trap 'echo got-INT; exit 9' INT; echo ready; "
                          "while true; do sleep 0.1; done")
    try:
        buf = _pty_read_until(fd, b"ready")
        os.write(fd, b"\x03")
    finally:
        out, code = _pty_finish(pid, fd)
    assert b"got-INT" in buf + out
    assert code == 9


def test_logs_follow_with_tail_and_until(d: Daemon) -> None:
    d.docker("run", "--name", "lt", "busybox", "sh", "-c", "for i in 1 2 3 4; do echo n$i; done")
    assert d.docker("logs", "-f", "--tail", "1", "lt").stdout == "n4\n"
    assert d.docker("logs", "--until", "1h", "lt").stdout == ""  # all were written < 1 h ago
    assert d.docker("logs", "--until", f"{time.time() + 60:.0f}", "lt").stdout.split() == \
        ["n1", "n2", "n3", "n4"]
    d.docker("rm", "lt")


def test_run_it_detach_keys_leave_the_container_running(d: Daemon) -> None:
    pid, fd = _pty_docker(d, 24, 80, "run", "-it", "--name", "det", "busybox", "sh", "-c",
                          "echo ready; cat")
    try:
        _pty_read_until(fd, b"ready")
        os.write(fd, b"\x10\x11")  # ctrl-p ctrl-q
    finally:
        _, code = _pty_finish(pid, fd)
    assert code == 0
    assert state(d, "det") == "running"
    # attach again and detach with custom keys
    pid, fd = _pty_docker(d, 24, 80, "attach", "--detach-keys", "ctrl-x,y", "det")
    try:
        os.write(fd, b"ping\r")
        _pty_read_until(fd, b"ping\r\nping")  # the tty's echo, then cat's: attached, raw
        os.write(fd, b"\x18y")
    finally:
        out, code = _pty_finish(pid, fd)
    assert b"read escape sequence" in out and code == 1  # the docker CLI's answer to a detach
    assert state(d, "det") == "running"
    d.docker("rm", "-f", "det")


def test_logs_follow_reads_across_rotations(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "frot", "--log-opt", "max-size=1k", "--log-opt",
             "max-file=3", "busybox", "sh", "-c", "i=0; while [ $i -lt 120 ]; do echo line$i; "
             "i=$((i+1)); [ $((i % 4)) = 0 ] && sleep 0.1; done")
    p = d.docker("logs", "-f", "frot", timeout=60)
    assert p.stdout.split() == [f"line{i}" for i in range(120)]
    d.docker("rm", "frot")
