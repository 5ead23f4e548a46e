"""The ``dockyard`` CLI's container and volume verbs end to end: a real daemon (one per module,
busybox bootstrapped), real containers, the CLI as a subprocess. What a user sees: output,
stdout/stderr separation, exit codes (the container's; 125/126/127 as docker), ``-it`` through a
pty with the window size, signal proxying, docker's table shapes.

Every test removes the containers it made (``rm -f``); the module ends with none left.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
from daemon_util import CLI, Daemon, daemon_fixture

pytestmark = pytest.mark.skipif(not Path("/bin/busybox").exists(),
                                reason="needs host /bin/busybox (Debian package busybox-static)")

ERR = "Error response from daemon: "
daemon = daemon_fixture(busybox=True)


class Dy:
    def __init__(self, d: Daemon) -> None:
        self.daemon = d
        self.made: list[str] = []

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60
                 ) -> subprocess.CompletedProcess:
        return self.daemon.cli(*args, input=input if input is not None else "", check=False,
                               timeout=timeout)

    def ok(self, *args: str, input: str | None = None) -> str:
        p = self(*args, input=input)
        assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p.stdout

    def run_d(self, *args: str) -> str:
        cid = self.ok("run", "-d", *args).strip()
        assert re.fullmatch(r"[0-9a-f]{64}", cid), cid
        self.made.append(cid)
        return cid

    def name(self, name: str) -> str:
        self.made.append(name)
        return name


@pytest.fixture
def dy(daemon: Daemon):
    d = Dy(daemon)
    yield d
    left = [c["Id"] for c in daemon.json("GET", "/containers/json?all=1")]
    for cid in left:
        daemon.request("DELETE", f"/containers/{cid}?force=1&v=1")
    assert daemon.json("GET", "/containers/json?all=1") == [], "containers left behind"


# ------------------------------------------------------------------------------------ run

def test_run_prints_output_and_keeps_stdout_and_stderr_apart(dy):
    p = dy("run", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (p.returncode, p.stdout, p.stderr) == (0, "out\n", "err\n")


def test_run_exits_with_the_containers_code(dy):
    assert dy("run", "busybox", "sh", "-c", "exit 3").returncode == 3


def test_run_command_not_found_is_127_and_not_executable_is_126(dy):
    p = dy("run", "busybox", "nosuchcommand")
    assert p.returncode == 127, (p.stdout, p.stderr)
    assert "nosuchcommand" in p.stderr
    assert dy("run", "busybox", "/etc/passwd").returncode == 126


def test_run_engine_failures_are_125(dy):
    p = dy("run", "--pull", "never", "nosuchimage")
    assert p.returncode == 125
    assert p.stderr.startswith(f"dockyard: {ERR}No such image: nosuchimage")
    name = dy.name("dup")
    dy.ok("create", "--name", name, "busybox")
    p = dy("run", "--name", name, "busybox", "true")
    assert p.returncode == 125 and "dockyard: " + ERR in p.stderr and "/dup" in p.stderr
    p = dy("run", "-m", "1x", "busybox")
    assert p.returncode == 125 and "invalid argument \"1x\" for \"-m, --memory\"" in p.stderr


def test_run_stdin_with_i(dy):
    assert dy.ok("run", "-i", "busybox", "cat", input="hello\n") == "hello\n"


def test_run_detached_then_ps_shows_it(dy):
    cid = dy.run_d("--name", dy.name("sleeper"), "-l", "role=test", "busybox", "sleep", "300")
    lines = dy.ok("ps").splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES"]
    row = next(line for line in lines if line.startswith(cid[:12]))
    assert '"sleep 300"' in row and " Up " in row and row.endswith(" sleeper")
    assert dy.ok("ps", "-q", "--filter", "name=sleeper") == cid[:12] + "\n"
    assert dy.ok("ps", "-q", "--no-trunc", "--filter", "label=role=test") == cid + "\n"
    assert dy.ok("ps", "--format", "{{.Names}} {{.State}} {{.Label \"role\"}}",
                 "--filter", "id=" + cid[:12]) == "sleeper running test\n"
    assert dy.ok("inspect", "-f", "{{.State.Status}} {{.Config.Labels}}", "sleeper") == \
        "running map[role:test]\n"
    assert dy.ok("container", "inspect", "-f",
                 "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}} "
                 "{{if .State.Running}}up{{else}}down{{end}}", "sleeper") == "role=test up\n"


def test_ps_all_shows_exited_and_created(dy):
    dy("run", "--name", dy.name("three"), "busybox", "sh", "-c", "exit 3")
    dy.ok("create", "--name", dy.name("fresh"), "busybox", "echo", "hello world this is long")
    assert dy.ok("ps", "-q", "--filter", "name=three") == ""
    out = dy.ok("ps", "-a", "--format", "{{.Names}}|{{.Status}}|{{.Command}}")
    rows = dict(line.split("|", 1) for line in out.splitlines())
    # as dockerd: an argument with a space is single-quoted, then the CLI truncates and quotes
    assert re.fullmatch(r"Exited \(3\) .* ago\|\"sh -c 'exit 3'\"", rows["three"]), rows
    assert rows["fresh"] == 'Created|"echo \'hello world t…"'
    assert dy.ok("ps", "-a", "-q", "--filter", "exited=3") == \
        dy.ok("ps", "-a", "-q", "--filter", "name=three")
    assert dy.ok("ps", "-a", "-n", "1", "--format", "{{.Names}}") == "fresh\n"
    assert dy.ok("ps", "-l", "--format", "{{.Names}}") == "fresh\n"
    assert dy.ok("ps", "-a", "--filter", "status=created", "--format", "{{.Names}}") == "fresh\n"


def _in_pty(argv: list[str], script: list[bytes]) -> tuple[int, bytes]:
    """Run ``argv`` on a new 33x111 pty; type each line of ``script`` at a shell prompt."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    out, script = b"", list(script)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.3)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif script and b"# " in out:  # busybox's prompt (then a cursor query) came
            os.write(fd, script.pop(0))
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def test_run_it_through_a_pty_gets_the_window_size_and_the_exit_code(dy, daemon):
    code, out = _in_pty([*CLI, "-H", daemon.host, "run", "-it", "--name", dy.name("tty"),
                         "busybox", "sh"], [b"stty size\r", b"exit 7\r"])
    assert code == 7, out
    assert b"33 111" in out


def test_exec_it_through_a_pty(dy, daemon):
    name = dy.name("exec-tty")
    dy.run_d("--name", name, "busybox", "sleep", "300")
    code, out = _in_pty([*CLI, "-H", daemon.host, "exec", "-it", name, "sh"],
                        [b"stty size; tty\r", b"exit 5\r"])
    assert code == 5, out
    assert b"33 111" in out and b"/dev/pts/" in out


def test_ctrl_c_without_a_tty_is_proxied_to_the_container(dy, daemon):
    name = dy.name("trapper")
    proc = subprocess.Popen([*CLI, "-H", daemon.host, "run", "--name", name, "busybox", "sh",
                             "-c", 'trap "echo got; exit 9" INT; echo ready; '
                                   "while true; do sleep 0.2; done"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 9
        assert proc.stdout.read() == "got\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------ lifecycle

def test_stop_start_restart_kill_wait_pause_rename(dy):
    name = dy.name("life")
    cid = dy.run_d("--name", name, "busybox", "sleep", "300")
    assert dy.ok("pause", name) == f"{name}\n"
    assert dy.ok("inspect", "-f", "{{.State.Status}}", name) == "paused\n"
    assert dy.ok("unpause", name) == f"{name}\n"
    assert dy.ok("stop", "-t", "1", name) == f"{name}\n"
    assert dy.ok("inspect", "-f", "{{.State.Running}}", name) == "false\n"
    assert dy.ok("start", name) == f"{name}\n"
    assert dy.ok("restart", "-t", "1", name) == f"{name}\n"
    assert dy.ok("inspect", "-f", "{{.State.Running}}", name) == "true\n"
    assert dy.ok("kill", "-s", "KILL", name) == f"{name}\n"
    assert dy.ok("wait", name) == "137\n"
    assert dy.ok("rename", name, "life2") == ""
    dy.made.append("life2")
    assert dy.ok("ps", "-a", "-q", "--no-trunc", "--filter", "name=life2") == cid + "\n"


def test_verbs_on_missing_containers_continue_and_exit_1(dy):
    cid = dy.run_d("busybox", "sleep", "300")
    p = dy("stop", "-t", "1", "nosuch", cid[:12], "other")
    assert p.returncode == 1
    assert p.stdout == cid[:12] + "\n"
    assert p.stderr == (f"{ERR}No such container: nosuch\n{ERR}No such container: other\n")
    p = dy("rm", "nosuch")
    assert (p.returncode, p.stderr) == (1, f"{ERR}No such container: nosuch\n")
    p = dy("start", "nosuch")
    assert p.returncode == 1 and p.stderr.endswith("Error: failed to start containers: nosuch\n")


def test_rm_refuses_a_running_container_without_force(dy):
    cid = dy.run_d("busybox", "sleep", "300")
    p = dy("rm", cid)
    assert p.returncode == 1 and "cannot remove a running container" in p.stderr
    assert dy.ok("rm", "-f", cid) == cid + "\n"
    assert dy.ok("ps", "-a", "-q", "--no-trunc") .count(cid) == 0


# ------------------------------------------------------------------------------------ io

def test_logs_tail_timestamps_and_streams(dy):
    name = dy.name("talker")
    dy("run", "--name", name, "busybox", "sh", "-c", "echo a; echo b >&2; echo c")
    p = dy("logs", name)
    assert (p.stdout, p.stderr) == ("a\nc\n", "b\n")
    counted = dy.name("counter")  # one stream: --tail counts records of both, in file order
    dy("run", "--name", counted, "busybox", "sh", "-c", "echo a; echo c")
    assert dy.ok("logs", "--tail", "1", counted) == "c\n"
    stamped = dy.ok("logs", "-t", name).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["a", "c"]
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ", line) for line in stamped)
    assert dy.ok("logs", "--since", "1h", name) == "a\nc\n"
    assert dy.ok("logs", "--until", "2000-01-01T00:00:00Z", name) == ""


def test_logs_follow_ends_when_the_container_exits(dy):
    name = dy.name("follower")
    dy.run_d("-i", "--name", name, "busybox", "sh", "-c", "echo one; read x; echo two")
    proc = subprocess.Popen([*CLI, "-H", dy.daemon.host, "logs", "-f", name],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "one\n"
        assert dy("attach", name, input="go\n").returncode == 0
        assert proc.wait(30) == 0
        assert proc.stdout.read() == "two\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_top_and_stats(dy):
    name = dy.name("busy")
    dy.run_d("--name", name, "-m", "64m", "busybox", "sleep", "300")
    top = dy.ok("top", name).splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"] and top[1].endswith("sleep 300")
    lines = dy.ok("stats", "--no-stream", name).splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/",
                                "LIMIT", "MEM", "%", "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert re.fullmatch(rf"[0-9a-f]{{12}}\s+{name}\s+\d+\.\d\d%\s+\S+ / 64MiB\s+\d+\.\d\d%\s+"
                        r"\S+ / \S+\s+\S+ / \S+\s+1", lines[1]), lines[1]
    doc = json.loads(dy.ok("stats", "--no-stream", "--format", "{{json .}}", name))
    assert doc["Name"] == name and doc["PIDs"] == "1"


def test_events_since_until_with_a_filter(dy):
    since = str(int(time.time()) - 1)
    name = dy.name("evented")
    dy("run", "--name", name, "busybox", "true")
    out = dy.ok("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter",
                f"container={name}", "--format", "{{.Action}}")
    actions = out.split()
    assert "create" in actions and "start" in actions and "die" in actions, actions


# ------------------------------------------------------------------------------------ volumes

def test_volume_verbs(dy):
    assert dy.ok("volume", "create", "--label", "a=b", "vol1") == "vol1\n"
    assert dy.ok("volume", "create", "vol2") == "vol2\n"
    assert "local     vol1" in dy.ok("volume", "ls").splitlines()
    assert dy.ok("volume", "ls", "-q", "--filter", "label=a=b") == "vol1\n"
    assert dy.ok("volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels}}", "vol1") == \
        "vol1 local map[a:b]\n"
    p = dy("volume", "rm", "vol1", "nosuchvol")
    assert p.returncode == 1 and p.stdout == "vol1\n" and "nosuchvol" in p.stderr
    out = dy.ok("volume", "prune", "-a", "-f")
    assert out.startswith("Deleted Volumes:\nvol2\n") and "Total reclaimed space:" in out
    assert dy.ok("volume", "ls", "-q") == ""


# ------------------------------------------------------------------------------------ more verbs

def test_run_rm_leaves_nothing_and_cidfile_gets_the_id(dy, tmp_path):
    before = dy.ok("ps", "-a", "-q")
    assert dy("run", "--rm", "busybox", "sh", "-c", "exit 4").returncode == 4
    assert dy.ok("ps", "-a", "-q") == before
    cidfile = tmp_path / "cid"
    cid = dy.run_d("--cidfile", str(cidfile), "busybox", "sleep", "300")
    assert cidfile.read_text() == cid
    p = dy("run", "-d", "--cidfile", str(cidfile), "busybox", "true")
    assert p.returncode == 125 and "Container ID file found" in p.stderr
    p = dy("run", "--rm", "--restart", "always", "busybox", "true")
    assert p.returncode == 125
    assert "conflicting options: cannot specify both --restart and --rm" in p.stderr


def test_start_attach_returns_the_exit_code(dy):
    name = dy.name("later")
    dy.ok("create", "--name", name, "busybox", "sh", "-c", "echo started; exit 6")
    p = dy("start", "-a", name)
    assert (p.returncode, p.stdout) == (6, "started\n")


def test_attach_with_stdin(dy):
    name = dy.name("reader")
    dy.run_d("-i", "--name", name, "busybox", "sh", "-c", "read x; echo got $x; exit 2")
    p = dy("attach", name, input="hello\n")
    assert (p.returncode, p.stdout) == (2, "got hello\n")
    p = dy("attach", name)
    assert p.returncode == 1
    assert p.stderr == "You cannot attach to a stopped container, start it first\n"


def test_update_changes_the_memory_limit(dy):
    name = dy.name("limited")
    dy.run_d("--name", name, "-m", "64m", "busybox", "sleep", "300")
    assert dy.ok("update", "-m", "128m", "--memory-swap", "256m", name) == f"{name}\n"
    assert dy.ok("inspect", "-f", "{{.HostConfig.Memory}}", name) == f"{128 << 20}\n"


def test_container_group_aliases_and_prune(dy):
    name = dy.name("pruned")
    dy("run", "--name", name, "busybox", "true")
    assert name in dy.ok("container", "ls", "-a")
    assert dy.ok("container", "list", "-a", "-q") == dy.ok("ps", "-a", "-q")
    assert dy.ok("container", "inspect", "-f", "{{.Name}}", name) == f"/{name}\n"
    p = dy("container", "inspect", "nosuch")
    assert (p.returncode, p.stdout, p.stderr) == (1, "[]\n", f"{ERR}No such container: nosuch\n")
    out = dy.ok("container", "prune", "-f")
    assert out.startswith("Deleted Containers:\n") and "Total reclaimed space:" in out
    assert dy.ok("ps", "-a", "-q", "--filter", f"name={name}") == ""


# ------------------------------------------------------------------------------------ exec, files

def test_exec_output_exit_codes_and_stdin(dy):
    name = dy.name("host")
    dy.run_d("--name", name, "busybox", "sleep", "300")
    p = dy("exec", "-e", "GREETING=hi", "-w", "/tmp", name, "sh", "-c",
           'echo "$GREETING from $(pwd)"; echo oops >&2; exit 4')
    assert (p.returncode, p.stdout, p.stderr) == (4, "hi from /tmp\n", "oops\n")
    assert dy.ok("exec", "-i", name, "cat", input="piped\n") == "piped\n"
    assert dy.ok("exec", "-u", "1000", name, "id", "-u") == "1000\n"
    assert dy("exec", name, "nosuchcommand").returncode in (126, 127)
    assert dy.ok("exec", "-d", name, "sleep", "1") == ""
    p = dy("exec", "nosuch", "true")
    assert (p.returncode, p.stderr) == (1, f"{ERR}No such container: nosuch\n")


def test_cp_both_ways_and_diff(dy, tmp_path):
    name = dy.name("files")
    dy.run_d("--name", name, "busybox", "sleep", "300")
    src = tmp_path / "hello.txt"
    src.write_text("hello\n")
    dy.ok("cp", str(src), f"{name}:/tmp/")
    dy.ok("cp", str(src), f"{name}:/tmp/renamed.txt")
    assert dy.ok("exec", name, "cat", "/tmp/hello.txt", "/tmp/renamed.txt") == "hello\nhello\n"
    out = tmp_path / "out"
    out.mkdir()
    dy.ok("cp", f"{name}:/tmp", str(out))
    assert sorted(p.name for p in (out / "tmp").iterdir()) == ["hello.txt", "renamed.txt"]
    dy.ok("cp", f"{name}:/tmp/hello.txt", str(out / "copy.txt"))
    assert (out / "copy.txt").read_text() == "hello\n"
    p = dy("cp", f"{name}:/nonexistent", str(out))
    assert p.returncode == 1 and "/nonexistent" in p.stderr
    lines = dy.ok("diff", name).splitlines()
    assert "C /tmp" in lines and "A /tmp/hello.txt" in lines and "A /tmp/renamed.txt" in lines


def test_commit_makes_an_image_with_the_changes(dy):
    name = dy.name("committer")
    dy.run_d("--name", name, "busybox", "sleep", "300")
    dy.ok("exec", name, "sh", "-c", "echo made > /made")
    image_id = dy.ok("commit", "-m", "a message", "-c", "ENV COMMITTED=yes", name,
                     "committed:1").strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id), image_id
    try:
        assert dy.ok("run", "--rm", "committed:1", "sh", "-c", "cat /made; echo $COMMITTED") \
            == "made\nyes\n"
        assert dy.ok("image", "inspect", "-f", "{{.Comment}}", "committed:1") == "a message\n"
    finally:
        dy("rmi", "-f", "committed:1")
