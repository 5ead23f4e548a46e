"""Containers end to end with the real docker CLI (28) against a real ``dockyard daemon``: run
(attached, detached, exit codes, flags), create/start, stop/kill/restart, rm, ps (filters and
formats), inspect, wait, logs, attach, top, stats, pause, rename, update, prune, events, restart
policies and health checks. Raw HTTP where the CLI hides the shape."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from daemon_util import Daemon, daemon_fixture

pytestmark = [
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs host /bin/busybox"),
    pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI"),
    pytest.mark.skipif(shutil.which("conmon") is None, reason="needs conmon"),
]

daemon = daemon_fixture()


def poll(what: str, check: Callable[[], object], timeout: float = 20.0) -> object:
    """``check()``'s first truthy answer; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def d(daemon: Daemon) -> Iterator[Daemon]:
    """The module daemon; every container left at the end of a test is removed (and the test
    fails if one was left that it did not clean up itself)."""
    yield daemon
    left = daemon.docker("ps", "-aq").stdout.split()
    if left:
        daemon.docker("rm", "-f", *left, check=False)


def state(d: Daemon, name: str, field: str = "{{.State.Status}}") -> str:
    return d.docker("inspect", "--format", field, name).stdout.strip()


# ------------------------------------------------------------------ run: output and exit codes


def test_run_attached_prints_output_and_passes_exit_codes(d: Daemon) -> None:
    p = d.docker("run", "--rm", "busybox", "echo", "hello")
    assert p.stdout == "hello\n"
    assert d.docker("run", "--rm", "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    # pid 1 of a pid namespace ignores its own SIGKILL (as under Docker); from outside it dies
    assert d.docker("run", "--rm", "busybox", "sh", "-c", "kill -9 $$").returncode == 0
    run = subprocess.Popen(["docker", "-H", d.host, "run", "--rm", "--name", "k9", "busybox",
                            "sleep", "60"], env={**os.environ, "DOCKER_CONFIG": str(d.tmp)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        poll("k9 running", lambda: d.docker("ps", "-q", "--filter", "name=k9").stdout)
        d.docker("kill", "k9")
        assert run.wait(20) == 137
    finally:
        run.kill()
        run.wait()
    p = d.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert p.stdout == "out\n" and p.stderr == "err\n"
    assert d.docker("ps", "-aq").stdout == ""


def test_run_errors_exit_125_126_127(d: Daemon) -> None:
    p = d.docker("run", "--rm", "nosuchimage:1", "true", check=False)
    assert p.returncode == 125
    assert "nosuchimage" in p.stderr
    p = d.docker("run", "--rm", "busybox", "nosuch", check=False)
    assert p.returncode == 127, p.stderr
    p = d.docker("run", "--rm", "busybox", "/etc", check=False)
    assert p.returncode == 126, p.stderr
    p = d.docker("run", "--name", "bad/name", "busybox", "true", check=False)
    assert p.returncode == 125 and "Invalid container name" in p.stderr
    p = d.docker("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert p.returncode == 125 and "conflicting options" in p.stderr, p.stderr
    assert d.docker("ps", "-aq").stdout == ""


def test_run_detached_prints_the_id_and_duplicate_name_is_409(d: Daemon) -> None:
    cid = d.docker("run", "-d", "--name", "dup", "busybox", "sleep", "60").stdout.strip()
    assert len(cid) == 64 and all(ch in "0123456789abcdef" for ch in cid)
    assert state(d, "dup") == "running"
    assert state(d, cid[:12], "{{.Name}}") == "/dup"
    p = d.docker("run", "-d", "--name", "dup", "busybox", "true", check=False)
    assert p.returncode == 125
    assert 'Conflict. The container name "/dup" is already in use' in p.stderr
    code, _, raw = d.request("POST", "/containers/create?name=dup",
                             json.dumps({"Image": "busybox"}).encode(),
                             {"Content-Type": "application/json"})
    assert code == 409 and "already in use" in json.loads(raw)["message"]
    d.docker("rm", "-f", "dup")
    assert d.docker("ps", "-aq").stdout == ""


def test_run_flags_reach_the_process(d: Daemon, tmp_path: Path) -> None:
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    script = ("echo env=$FOO; echo pwd=$(pwd); id -u; id -g; hostname; cat /data/in.txt; "
              "mount | grep ' /run ' | cut -d' ' -f5")
    p = d.docker("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000:1001", "-h", "box1",
                 "-v", f"{host}:/data", "--tmpfs", "/run", "busybox", "sh", "-c", script)
    assert p.stdout.splitlines() == ["env=bar", "pwd=/tmp", "1000", "1001", "box1", "from host",
                                     "tmpfs"]
    d.docker("run", "--rm", "-v", f"{host}:/data", "busybox", "sh", "-c",
             "echo made > /data/out.txt")
    assert (host / "out.txt").read_text() == "made\n"
    missing = tmp_path / "created" / "by-run"
    d.docker("run", "--rm", "-v", f"{missing}:/m", "busybox", "true")
    assert missing.is_dir()  # Docker creates a missing bind source


def test_run_entrypoint_labels_and_read_only(d: Daemon) -> None:
    p = d.docker("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b")
    assert p.stdout == "a b\n"
    d.docker("create", "--name", "lab", "-l", "tier=web", "-l", "x=1", "busybox", "true")
    assert json.loads(state(d, "lab", "{{json .Config.Labels}}")) == {"tier": "web", "x": "1"}
    d.docker("rm", "lab")
    p = d.docker("run", "--rm", "--read-only", "busybox", "sh", "-c",
                 "touch /x 2>&1; echo rc=$?", check=False)
    assert "Read-only file system" in p.stdout and "rc=1" in p.stdout


def test_run_resource_limits_are_seen_inside(d: Daemon) -> None:
    p = d.docker("run", "--rm", "-m", "64m", "--pids-limit", "50", "--ulimit", "nofile=100:100",
                 "busybox", "sh", "-c",
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                 "cat /sys/fs/cgroup/pids/pids.max; ulimit -n")
    assert p.stdout.split() == [str(64 << 20), "50", "100"]
    assert d.docker("run", "--rm", "-m", "64m", "busybox", "true").returncode == 0
    d.docker("create", "--name", "mem", "-m", "64m", "busybox", "true")
    assert state(d, "mem", "{{.HostConfig.Memory}}") == str(64 << 20)
    d.docker("rm", "mem")


def test_run_capabilities_privileged_and_stop_signal(d: Daemon) -> None:
    def cap_eff(*flags: str) -> int:
        out = d.docker("run", "--rm", *flags, "busybox", "grep", "CapEff", "/proc/self/status"
                       ).stdout
        return int(out.split()[1], 16)

    default = cap_eff()
    assert default & (1 << 0)  # CAP_CHOWN by default
    assert not cap_eff("--cap-drop", "CHOWN") & (1 << 0)
    assert not default & (1 << 21)  # no CAP_SYS_ADMIN by default
    assert cap_eff("--privileged") & (1 << 21)
    d.docker("create", "--name", "sig", "--stop-signal", "SIGUSR1", "busybox", "true")
    assert state(d, "sig", "{{.Config.StopSignal}}") == "SIGUSR1"
    d.docker("rm", "sig")


# ------------------------------------------------------------------ create, start, stop, kill, rm


def test_create_then_start_and_start_attached(d: Daemon) -> None:
    cid = d.docker("create", "--name", "cs", "busybox", "sh", "-c", "echo hi; exit 4"
                   ).stdout.strip()
    assert len(cid) == 64
    assert state(d, "cs") == "created"
    assert d.docker("ps", "-aq", "--filter", "status=created").stdout.split() == [cid[:12]]
    p = d.docker("start", "-a", "cs", check=False)
    assert (p.returncode, p.stdout) == (4, "hi\n")
    assert state(d, "cs", "{{.State.Status}} {{.State.ExitCode}}") == "exited 4"
    assert d.docker("start", "cs").stdout.strip() == "cs"
    assert d.docker("wait", "cs").stdout.strip() == "4"
    d.docker("rm", "cs")


def test_stop_restart_kill_and_rm(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "st", "busybox", "sleep", "300")
    started = state(d, "st", "{{.State.StartedAt}}")
    d.docker("restart", "-t", "1", "st")
    assert state(d, "st") == "running"
    assert state(d, "st", "{{.State.StartedAt}}") != started
    d.docker("stop", "-t", "1", "st")  # sleep as pid 1 ignores SIGTERM: killed after 1 s
    assert state(d, "st", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    # a stop of a stopped container is fine (304 on the API)
    code, _, _ = d.request("POST", "/containers/st/stop")
    assert code == 304
    d.docker("start", "st")
    p = d.docker("rm", "st", check=False)
    assert p.returncode == 1 and "cannot remove a running container" in p.stderr.lower() or \
        "stop the container" in p.stderr.lower(), p.stderr
    d.docker("rm", "-f", "st")
    p = d.docker("inspect", "st", check=False)
    assert p.returncode == 1 and "No such" in p.stderr
    # kill -s: the signal reaches a pid 1 that handles it
    d.docker("run", "-d", "--name", "ks", "busybox", "sh", "-c",
             "trap 'exit 5' USR1; while true; do sleep 0.1; done")
    time.sleep(0.3)  # the shell installs its trap before the first sleep
    d.docker("kill", "-s", "USR1", "ks")
    poll("ks exits 5", lambda: state(d, "ks", "{{.State.Status}} {{.State.ExitCode}}") == "exited 5")
    d.docker("start", "ks")
    d.docker("kill", "ks")
    assert state(d, "ks", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    p = d.docker("kill", "ks", check=False)
    assert p.returncode == 1 and "is not running" in p.stderr
    d.docker("rm", "ks")


def test_stop_sends_the_stop_signal_then_waits(d: Daemon) -> None:
    # a shell that traps TERM and exits 0: stop ends it without SIGKILL
    d.docker("run", "-d", "--name", "trap", "busybox", "sh", "-c",
             "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done")
    poll("trap set", lambda: state(d, "trap") == "running")
    time.sleep(0.3)  # the shell installs its trap before the first sleep
    d.docker("stop", "trap")
    assert state(d, "trap", "{{.State.ExitCode}}") == "0"
    assert "got TERM" in d.docker("logs", "trap").stdout
    # --stop-signal USR1 with a shell that only traps USR1
    d.docker("run", "-d", "--name", "usr1", "--stop-signal", "USR1", "busybox", "sh", "-c",
             "trap 'exit 7' USR1; while true; do sleep 0.1; done")
    time.sleep(0.3)
    d.docker("stop", "usr1")
    assert state(d, "usr1", "{{.State.ExitCode}}") == "7"
    d.docker("rm", "trap", "usr1")


def test_run_rm_leaves_nothing_and_wait_prints_the_code(d: Daemon) -> None:
    d.docker("run", "--rm", "--name", "gone", "busybox", "true")
    assert d.docker("ps", "-aq").stdout == ""
    d.docker("run", "-d", "--name", "w9", "busybox", "sh", "-c", "sleep 0.5; exit 9")
    assert d.docker("wait", "w9").stdout.strip() == "9"
    d.docker("rm", "w9")


# ------------------------------------------------------------------ ps, inspect


def test_ps_filters_and_formats(d: Daemon) -> None:
    a = d.docker("run", "-d", "--name", "psa", "-l", "app=web", "busybox", "sleep", "300"
                 ).stdout.strip()
    b = d.docker("run", "--name", "psb", "-l", "app=db", "busybox", "sh", "-c", "exit 2",
                 check=False)
    assert b.returncode == 2
    bid = state(d, "psb", "{{.Id}}")
    c = d.docker("create", "--name", "psc", "busybox", "true").stdout.strip()

    def ids(*args: str) -> list[str]:
        return d.docker("ps", *args).stdout.split()

    assert ids("-q") == [a[:12]]
    assert ids("-aq") == [c[:12], bid[:12], a[:12]]  # newest first
    assert ids("-aq", "--no-trunc") == [c, bid, a]
    assert ids("-q", "-n", "2") == [c[:12], bid[:12]]
    assert ids("-q", "-l") == [c[:12]]
    assert ids("-aq", "--filter", "status=exited") == [bid[:12]]
    assert ids("-aq", "--filter", "status=running") == [a[:12]]
    assert ids("-aq", "--filter", "name=psb") == [bid[:12]]
    assert ids("-aq", "--filter", "label=app=web") == [a[:12]]
    assert ids("-aq", "--filter", "label=app") == [bid[:12], a[:12]]
    assert ids("-aq", "--filter", "exited=2") == [bid[:12]]
    assert ids("-aq", "--filter", f"id={a[:8]}") == [a[:12]]
    assert ids("-aq", "--filter", "ancestor=busybox") == [c[:12], bid[:12], a[:12]]
    assert ids("-aq", "--filter", "ancestor=nosuch") == []
    p = d.docker("ps", "-a", "--filter", "bogus=1", check=False)
    assert p.returncode != 0 and "bogus" in p.stderr

    out = d.docker("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.splitlines()
    assert out[0] == f"{c[:12]} psc Created"
    assert out[1].startswith(f"{bid[:12]} psb Exited (2) ")
    assert out[2].startswith(f"{a[:12]} psa Up ")
    table = d.docker("ps", "--format", "table {{.Names}}\t{{.Image}}\t{{.Command}}"
                     ).stdout.splitlines()
    assert table[0].split() == ["NAMES", "IMAGE", "COMMAND"]
    assert table[1].split() == ["psa", "busybox", '"sleep', '300"']
    default = d.docker("ps").stdout.splitlines()
    assert default[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                  "PORTS", "NAMES"]
    assert default[1].startswith(a[:12]) and default[1].endswith("psa")
    labels = d.docker("ps", "--format", "{{.Labels}} {{.Label \"app\"}}").stdout.strip()
    assert labels == "app=web web"
    d.docker("rm", "-f", "psa", "psb", "psc")


def test_inspect_formats_and_raw_shape(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "ins", "-e", "A=1", "-m", "32m", "busybox", "sleep", "300")
    assert state(d, "ins", "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}") == \
        "running true 0"
    env = json.loads(state(d, "ins", "{{json .Config.Env}}"))
    assert "A=1" in env and any(e.startswith("PATH=") for e in env)
    assert state(d, "ins", "{{.HostConfig.Memory}}") == str(32 << 20)
    assert state(d, "ins", "{{.Config.Image}} {{.Name}} {{.Path}} {{.Args}}") == \
        "busybox /ins sleep [300]"
    raw = d.json("GET", "/containers/ins/json")
    assert raw["State"]["Pid"] > 0
    assert raw["Config"]["Cmd"] == ["sleep", "300"]
    assert raw["HostConfig"]["Memory"] == 32 << 20
    assert raw["Image"].startswith("sha256:")
    pid = raw["State"]["Pid"]
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    listed = d.json("GET", "/containers/json?filters=" + quote(json.dumps({"name": ["ins"]})))
    assert [c["Names"] for c in listed] == [["/ins"]]
    assert listed[0]["State"] == "running" and listed[0]["Status"].startswith("Up ")
    code, _, body = d.request("GET", "/containers/nosuch/json")
    assert code == 404 and json.loads(body)["message"] == "No such container: nosuch"
    d.docker("rm", "-f", "ins")


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
    deadline = time.monotonic() + timeout
    while marker not in buf:
        assert time.monotonic() < deadline, f"no {marker!r} in {buf!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the pty
            break
        if not chunk:
            break
        buf += chunk
    return buf


def _pty_finish(pid: int, fd: int) -> tuple[bytes, int]:
    rest = _pty_read_until(fd, b"\0never\0")
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
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 44, 132, 0, 0))  # SIGWINCH
        poll("the resize reaches the container's tty", lambda: d.docker(
            "exec", "rsz", "stty", "-F", "/dev/pts/0", "size", check=False).stdout == "44 132\n")
        os.write(fd, b"typed\r")
        buf = _pty_read_until(fd, b"44 132", buf)
    finally:
        out, code = _pty_finish(pid, fd)
    text = (buf + out).decode(errors="replace").replace("\r", "")
    assert "line=typed" in text
    assert code == 0


# ------------------------------------------------------------------ top, stats, pause, rename, update


def test_top_and_stats(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "ts", "-m", "64m", "busybox", "sleep", "300")
    top = d.docker("top", "ts").stdout.splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and "CMD" in top[0]
    assert len(top) == 2 and top[1].split()[-2:] == ["sleep", "300"]
    pid = int(state(d, "ts", "{{.State.Pid}}"))
    assert top[1].split()[1] == str(pid)
    p = d.docker("top", "ts", "-o", "pid,comm")
    assert p.stdout.split() == ["PID", "COMMAND", str(pid), "sleep"]
    stats = d.docker("stats", "--no-stream", "ts").stdout.splitlines()
    header = stats[0]
    for col in ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                "BLOCK I/O", "PIDS"):
        assert col in header
    row = stats[1]
    assert row.startswith(state(d, "ts", "{{.Id}}")[:12]) and " ts " in row
    assert "/ 64MiB" in row
    one = json.loads(d.docker("stats", "--no-stream", "--format", "{{json .}}", "ts").stdout)
    assert one["Name"] == "ts" and one["PIDs"] == "1" and one["CPUPerc"].endswith("%")
    raw = d.json("GET", "/containers/ts/stats?stream=false")
    assert raw["memory_stats"]["limit"] == 64 << 20 and raw["pids_stats"]["current"] == 1
    assert raw["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    d.docker("stop", "-t", "0", "ts")
    p = d.docker("top", "ts", check=False)
    assert p.returncode == 1 and "is not running" in p.stderr
    d.docker("rm", "ts")


def test_pause_unpause_rename_update(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "pz", "busybox", "sleep", "300")
    d.docker("pause", "pz")
    assert state(d, "pz", "{{.State.Status}} {{.State.Paused}}") == "paused true"
    assert d.docker("ps", "--format", "{{.Status}}", "--filter", "name=pz").stdout \
        .strip().endswith("(Paused)")
    assert d.docker("ps", "-q", "--filter", "status=paused").stdout.split() == \
        [state(d, "pz", "{{.Id}}")[:12]]
    p = d.docker("pause", "pz", check=False)
    assert p.returncode == 1 and "already paused" in p.stderr
    d.docker("unpause", "pz")
    assert state(d, "pz") == "running"
    p = d.docker("unpause", "pz", check=False)
    assert p.returncode == 1 and "is not paused" in p.stderr

    d.docker("rename", "pz", "pz2")
    assert state(d, "pz2", "{{.Name}}") == "/pz2"
    assert d.docker("inspect", "pz", check=False).returncode == 1
    d.docker("create", "--name", "other", "busybox", "true")
    p = d.docker("rename", "pz2", "other", check=False)
    assert p.returncode == 1 and "already in use" in p.stderr

    d.docker("update", "-m", "48m", "--memory-swap", "96m", "pz2")
    assert state(d, "pz2", "{{.HostConfig.Memory}}") == str(48 << 20)
    limit = d.docker("exec", "pz2", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert limit.strip() == str(48 << 20)
    d.docker("update", "--restart", "on-failure:3", "pz2")
    assert state(d, "pz2", "{{.HostConfig.RestartPolicy.Name}}:"
                 "{{.HostConfig.RestartPolicy.MaximumRetryCount}}") == "on-failure:3"
    d.docker("rm", "-f", "pz2", "other")


def test_container_prune_removes_only_stopped(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "keep", "busybox", "sleep", "300")
    done = d.docker("run", "-d", "--name", "done1", "busybox", "true").stdout.strip()
    d.docker("wait", "done1")
    made = d.docker("create", "--name", "made", "busybox", "true").stdout.strip()
    out = d.docker("container", "prune", "-f").stdout
    assert done in out and made in out and "Total reclaimed space" in out
    assert d.docker("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["keep"]
    d.docker("rm", "-f", "keep")


# ------------------------------------------------------------------ events


def test_events_show_the_lifecycle(d: Daemon) -> None:
    since = f"{time.time():.9f}"
    cid = d.docker("run", "--name", "ev", "busybox", "true").stdout
    cid = state(d, "ev", "{{.Id}}")
    d.docker("rm", "ev")
    out = d.docker("events", "--since", since, "--until", f"{time.time():.9f}",
                   "--filter", "type=container", "--format", "{{json .}}").stdout
    got = [json.loads(line) for line in out.splitlines()]
    actions = [e["Action"] for e in got if e["Actor"]["ID"] == cid]
    for a in ("create", "attach", "start", "die", "destroy"):
        assert a in actions
    assert actions.index("create") < actions.index("start") < actions.index("die") < \
        actions.index("destroy")
    die = next(e for e in got if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "0"
    assert die["Actor"]["Attributes"]["name"] == "ev"
    assert die["Actor"]["Attributes"]["image"] == "busybox"
    human = d.docker("events", "--since", since, "--until", f"{time.time():.9f}",
                     "--filter", "event=destroy").stdout
    assert f"container destroy {cid} (image=busybox, name=ev)" in human


# ------------------------------------------------------------------ restart policies, health


def test_restart_on_failure_stops_after_the_retries(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "rof", "--restart", "on-failure:2", "busybox", "sh", "-c",
             "exit 1")
    poll("two restarts and exited",
         lambda: state(d, "rof", "{{.RestartCount}} {{.State.Status}}") == "2 exited", 30)
    assert state(d, "rof", "{{.State.ExitCode}}") == "1"
    time.sleep(1.5)  # no third restart comes
    assert state(d, "rof", "{{.RestartCount}} {{.State.Status}}") == "2 exited"
    d.docker("rm", "rof")


def test_restart_always_restarts_until_stopped(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "ra", "--restart", "always", "busybox", "sh", "-c",
             "sleep 0.2; exit 0")
    poll("a restart", lambda: int(state(d, "ra", "{{.RestartCount}}")) >= 1, 30)
    d.docker("stop", "-t", "1", "ra")
    assert state(d, "ra") == "exited"
    count = state(d, "ra", "{{.RestartCount}}")
    time.sleep(1)
    assert state(d, "ra", "{{.State.Status}} {{.RestartCount}}") == f"exited {count}"
    d.docker("rm", "ra")


def test_health_checks(d: Daemon) -> None:
    since = f"{time.time():.9f}"
    d.docker("run", "-d", "--name", "hok", "--health-cmd", "true", "--health-interval", "1s",
             "busybox", "sleep", "300")
    d.docker("run", "-d", "--name", "hbad", "--health-cmd", "false", "--health-retries", "1",
             "--health-interval", "1s", "busybox", "sleep", "300")
    poll("hok healthy", lambda: state(d, "hok", "{{.State.Health.Status}}") == "healthy")
    poll("hbad unhealthy", lambda: state(d, "hbad", "{{.State.Health.Status}}") == "unhealthy")
    status = d.docker("ps", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
    assert any(line.startswith("hok Up ") and line.endswith("(healthy)") for line in status)
    assert any(line.startswith("hbad Up ") and line.endswith("(unhealthy)") for line in status)
    assert d.docker("ps", "-q", "--filter", "health=healthy").stdout.split() == \
        [state(d, "hok", "{{.Id}}")[:12]]
    log = json.loads(state(d, "hbad", "{{json .State.Health}}"))
    assert log["FailingStreak"] >= 1 and log["Log"][-1]["ExitCode"] == 1
    out = d.docker("events", "--since", since, "--until", f"{time.time():.9f}",
                   "--filter", "event=health_status", "--format", "{{.Action}} {{.Actor.Attributes.name}}"
                   ).stdout.splitlines()
    assert "health_status: healthy hok" in out
    assert "health_status: unhealthy hbad" in out
    d.docker("rm", "-f", "hok", "hbad")


# ------------------------------------------------------------------ the raw API: hijack, wait, errors


def _hijack(d: Daemon, path: str) -> socket.socket:
    """POST ``path`` asking for Docker's upgrade; the socket after the ``101`` head."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(str(d.sock))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              "Content-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"application/vnd.docker.multiplexed-stream" in head or \
        b"application/vnd.docker.raw-stream" in head
    return s


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def _demux(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while data:
        assert len(data) >= 8 and data[1:4] == b"\0\0\0", data[:16]
        size = int.from_bytes(data[4:8], "big")
        frames.append((data[0], data[8:8 + size]))
        data = data[8 + size:]
    return frames


def test_raw_attach_is_multiplexed_and_takes_stdin(d: Daemon) -> None:
    cid = d.json("POST", "/containers/create?name=raw", {
        "Image": "busybox", "Cmd": ["sh", "-c", "read x; echo got $x; echo oops >&2; exit 2"],
        "OpenStdin": True, "StdinOnce": True, "AttachStdin": True, "AttachStdout": True,
        "AttachStderr": True})["Id"]
    s = _hijack(d, "/v1.45/containers/raw/attach?stream=1&stdin=1&stdout=1&stderr=1")
    try:
        d.json("POST", "/containers/raw/start", status=204)
        s.sendall(b"hello\n")
        s.shutdown(socket.SHUT_WR)
        frames = _demux(_read_all(s))
    finally:
        s.close()
    out = b"".join(b for sid, b in frames if sid == 1)
    err = b"".join(b for sid, b in frames if sid == 2)
    assert (out, err) == (b"got hello\n", b"oops\n")
    assert d.json("POST", "/containers/raw/wait")["StatusCode"] == 2
    d.json("DELETE", f"/containers/{cid}", status=204)


def test_raw_attach_with_a_tty_is_not_multiplexed(d: Daemon) -> None:
    d.json("POST", "/containers/create?name=rawtty", {
        "Image": "busybox", "Cmd": ["sh", "-c", "echo tty-out"], "Tty": True,
        "AttachStdout": True})
    s = _hijack(d, "/v1.45/containers/rawtty/attach?stream=1&stdout=1&stderr=1")
    try:
        d.json("POST", "/containers/rawtty/start", status=204)
        data = _read_all(s)
    finally:
        s.close()
    assert data == b"tty-out\r\n"
    assert d.json("POST", "/containers/rawtty/wait")["StatusCode"] == 0
    d.json("DELETE", "/containers/rawtty", status=204)


def test_wait_conditions_and_api_errors(d: Daemon) -> None:
    d.json("POST", "/containers/create?name=wt", {"Image": "busybox", "Cmd": ["sh", "-c", "exit 7"]})
    # not-running on a created container answers at once with its code (0)
    assert d.json("POST", "/containers/wt/wait")["StatusCode"] == 0
    d.json("POST", "/containers/wt/start", status=204)
    assert d.json("POST", "/containers/wt/wait?condition=not-running")["StatusCode"] == 7
    code, _, body = d.request("POST", "/containers/wt/wait?condition=bogus")
    assert code == 400 and "condition" in json.loads(body)["message"]
    # start of a running one: 304; remove of a running one: 409
    d.json("POST", "/containers/create?name=wt2", {"Image": "busybox", "Cmd": ["sleep", "300"]})
    d.json("POST", "/containers/wt2/start", status=204)
    assert d.request("POST", "/containers/wt2/start")[0] == 304
    code, _, body = d.request("DELETE", "/containers/wt2")
    assert code == 409 and "Stop the container before attempting removal" in \
        json.loads(body)["message"]
    d.json("DELETE", "/containers/wt2?force=1", status=204)
    d.json("DELETE", "/containers/wt", status=204)
    # a create that cannot work: 400 and nothing left
    for body_, words in (
            (b"{not json", "invalid"),
            (json.dumps({"Image": "busybox", "HostConfig": {
                "AutoRemove": True, "RestartPolicy": {"Name": "always"}}}).encode(), "restart"),
            (json.dumps({"Image": "busybox", "HostConfig": {"Memory": -5}}).encode(), "memory")):
        code, _, raw = d.request("POST", "/containers/create", body_,
                                 {"Content-Type": "application/json"})
        assert code == 400, raw
        assert words in json.loads(raw)["message"].lower(), raw
    code, _, raw = d.request("POST", "/containers/create", json.dumps(
        {"Image": "nosuch:9"}).encode(), {"Content-Type": "application/json"})
    assert code == 404 and json.loads(raw)["message"] == "No such image: nosuch:9"
    assert d.json("GET", "/containers/json?all=1") == []


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


# ------------------------------------------------------------------ edges


def test_detached_rm_is_removed_at_exit_and_paused_containers_stop(d: Daemon) -> None:
    d.docker("run", "-d", "--rm", "--name", "drm", "busybox", "sleep", "0.3")
    poll("drm removed", lambda: d.docker("ps", "-aq", "--filter", "name=drm").stdout == "")
    d.docker("run", "-d", "--name", "pstop", "--stop-timeout", "1", "busybox", "sleep", "300")
    assert state(d, "pstop", "{{.Config.StopTimeout}}") == "1"
    d.docker("pause", "pstop")
    d.docker("stop", "pstop")  # paused: signalled, thawed, killed after the 1 s stop timeout
    assert state(d, "pstop", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    d.docker("start", "pstop")
    d.docker("pause", "pstop")
    d.docker("rm", "-f", "pstop")
    assert d.docker("ps", "-aq").stdout == ""


def test_hung_health_check_fails_at_its_timeout(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "hung", "--health-cmd", "sleep 30", "--health-timeout", "1s",
             "--health-interval", "1s", "--health-retries", "1", "busybox", "sleep", "300")
    poll("hung unhealthy", lambda: state(d, "hung", "{{.State.Health.Status}}") == "unhealthy",
         30)
    log = json.loads(state(d, "hung", "{{json .State.Health.Log}}"))
    assert log[-1]["ExitCode"] != 0
    d.docker("run", "-d", "--name", "nohc", "--no-healthcheck", "busybox", "sleep", "300")
    assert state(d, "nohc", "{{json .State.Health}}") == "null"
    d.docker("rm", "-f", "hung", "nohc")


def test_unless_stopped_restarts_and_a_stop_ends_it(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "us", "--restart", "unless-stopped", "busybox", "sh", "-c",
             "sleep 0.2; exit 3")
    poll("a restart", lambda: int(state(d, "us", "{{.RestartCount}}")) >= 1, 30)
    d.docker("stop", "-t", "0", "us")
    assert state(d, "us") == "exited"
    d.docker("rm", "us")


def test_logs_follow_with_tail_and_until(d: Daemon) -> None:
    d.docker("run", "--name", "lt", "busybox", "sh", "-c", "for i in 1 2 3 4; do echo n$i; done")
    assert d.docker("logs", "-f", "--tail", "1", "lt").stdout == "n4\n"
    assert d.docker("logs", "--until", "1h", "lt").stdout == ""  # all were written < 1 h ago
    assert d.docker("logs", "--until", f"{time.time() + 60:.0f}", "lt").stdout.split() == \
        ["n1", "n2", "n3", "n4"]
    d.docker("rm", "lt")


def test_more_run_flags_reach_the_process(d: Daemon, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=yes\nEMPTY=\n")
    p = d.docker("run", "--rm", "--env-file", str(env_file), "--cpus", "0.5", "--cpu-shares",
                 "512", "--cpuset-cpus", "0", "-m", "64m", "--memory-swap", "128m", "busybox",
                 "sh", "-c", "echo $FROM_FILE; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                 "/sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares "
                 "/sys/fs/cgroup/cpuset/cpuset.cpus "
                 "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null")
    lines = p.stdout.split()
    assert lines[:5] == ["yes", "50000", "100000", "512", "0"]
    if len(lines) > 5:  # swap accounting on
        assert lines[5] == str(128 << 20)
    src = tmp_path / "m"
    src.mkdir()
    p = d.docker("run", "--rm", "--mount", f"type=bind,source={src},target=/m,readonly",
                 "--network", "none", "busybox", "sh", "-c",
                 "touch /m/x 2>/dev/null; echo rc=$?; ls /sys/class/net")
    assert p.stdout.split() == ["rc=1", "lo"]
    p = d.docker("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/comm")
    assert p.stdout.strip() != "sh"  # pid 1 is the init, sh its child
    host_pid = d.docker("run", "--rm", "--pid", "host", "busybox", "sh", "-c",
                        "echo $$").stdout.strip()
    assert int(host_pid) > 1
    p = d.docker("run", "--rm", "--security-opt", "no-new-privileges", "busybox", "grep",
                 "NoNewPrivs", "/proc/self/status")
    assert p.stdout.split() == ["NoNewPrivs:", "1"]
