"""dockyard-runtime exec on the real kernel: the args and --process forms, its flags, failures.

Terminal exec (-t, --console-socket) is in test_runtime_terminal.py.
"""

from __future__ import annotations

import json
import os

import pytest

from runtime_util import SLEEP, alive, output_on_fd3, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CAP_NET_RAW = 13
# runc's default spec: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE
DEFAULT_CAPS = 1 << 29 | 1 << 5 | 1 << 10


def status_caps(text: str) -> dict[str, int]:
    """The Cap* lines of a /proc/<pid>/status text, as integers."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Cap"):
            out[key] = int(value.strip(), 16)
    return out


@pytest.fixture
def running(runtime, make_bundle):
    """A running busybox container (``sleep``); returns its Bundle."""
    b = make_bundle(SLEEP)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    return b


# --------------------------------------------------------------------------------------------------
# the two forms


def test_exec_args(runtime, running):
    proc = runtime.run("exec", running.id, "sh", "-c", "echo hello; echo oops >&2; hostname")
    assert proc.stdout == f"hello\n{running.id}\n"
    assert proc.stderr == "oops\n"


@pytest.mark.parametrize("code", [0, 1, 5])
def test_exec_exit_code_propagated(any_runtime, make_bundle, code):
    b = make_bundle(SLEEP)
    any_runtime.run("run", "--detach", "--bundle", b.path, b.id)
    proc = any_runtime.run("exec", b.id, "sh", "-c", f"exit {code}", check=False)
    assert proc.returncode == code, proc.stderr


def test_exec_stdin(runtime, running):
    proc = runtime.run("exec", running.id, "cat", input="from stdin\n")
    assert proc.stdout == "from stdin\n"


def test_exec_sees_the_container(runtime, running):
    """The exec'd process shares the init's pid namespace and root."""
    proc = runtime.run("exec", running.id, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /")
    lines = proc.stdout.splitlines()
    assert lines[0].strip() == "sleep 1000"
    assert "bin" in lines[1:]


def test_exec_process_file(runtime, running, tmp_path):
    process = {
        "args": ["sh", "-c", "echo $GREETING; pwd; id -u; id -g"],
        "env": ["PATH=/bin", "GREETING=from-process-file"],
        "cwd": "/tmp",
        "user": {"uid": 1000, "gid": 1000},
        "terminal": False,
    }
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    proc = runtime.run("exec", "--process", path, running.id)
    assert proc.stdout.splitlines() == ["from-process-file", "/tmp", "1000", "1000"]


def test_exec_process_file_exit_code(runtime, running, tmp_path):
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["sh", "-c", "exit 6"], "cwd": "/",
                                "user": {"uid": 0, "gid": 0}}))
    assert runtime.run("exec", "-p", path, running.id, check=False).returncode == 6


def test_exec_process_file_invalid(runtime, running, tmp_path):
    path = tmp_path / "process.json"
    path.write_text("{not json")
    proc = runtime.run("exec", "--process", path, running.id, check=False)
    assert proc.returncode == 1
    assert str(path) in proc.stderr


# --------------------------------------------------------------------------------------------------
# flags


def test_exec_env_cwd_user(runtime, running):
    proc = runtime.run("exec", "-e", "FOO=bar", "--env", "BAZ=qux", "--cwd", "/tmp",
                       "--user", "1000:1000", running.id,
                       "sh", "-c", "echo $FOO $BAZ; pwd; id -u; id -g; echo $PATH")
    lines = proc.stdout.splitlines()
    assert lines[:4] == ["bar qux", "/tmp", "1000", "1000"]
    assert "/bin" in lines[4].split(":"), "the spec's PATH is kept"


def test_exec_env_overrides_the_spec(runtime, running):
    proc = runtime.run("exec", "-e", "TERM=dumb", running.id, "sh", "-c", "echo $TERM")
    assert proc.stdout == "dumb\n"


def test_exec_user_uid_only(runtime, running):
    proc = runtime.run("exec", "--user", "1234", running.id, "sh", "-c", "id -u; id -g")
    assert proc.stdout.split() == ["1234", "0"]


def test_exec_relative_cwd_rejected(runtime, running):
    proc = runtime.run("exec", "--cwd", "tmp", running.id, "true", check=False)
    assert proc.returncode == 1
    assert "cwd" in proc.stderr


def test_exec_missing_program(runtime, running):
    proc = runtime.run("exec", running.id, "/no/such/program", check=False)
    assert proc.returncode != 0
    assert "/no/such/program" in proc.stderr
    assert runtime.state(running.id)["status"] == "running"


def test_exec_detach_pid_file(runtime, running, tmp_path):
    pid_file = tmp_path / "exec.pid"
    proc = runtime.run("exec", "--detach", "--pid-file", pid_file, running.id, "sleep", "999")
    assert proc.stdout == ""
    pid = int(pid_file.read_text())
    assert pid != runtime.state(running.id)["pid"]
    assert alive(pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"999"]
    assert pid in json.loads(runtime.run("ps", "--format", "json", running.id).stdout)


def test_exec_cap_adds_the_capability_but_not_inheritable(any_runtime, make_bundle):
    """--cap goes to bounding, effective and permitted; never to inheritable (CVE-2022-29162)."""
    b = make_bundle(SLEEP)
    any_runtime.run("run", "--detach", "--bundle", b.path, b.id)

    plain = status_caps(any_runtime.run("exec", b.id, "cat", "/proc/self/status").stdout)
    assert plain["CapEff"] == DEFAULT_CAPS
    assert not plain["CapEff"] >> CAP_NET_RAW & 1

    caps = status_caps(any_runtime.run("exec", "--cap", "CAP_NET_RAW", b.id,
                                       "cat", "/proc/self/status").stdout)
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert caps[field] >> CAP_NET_RAW & 1, f"{field} lacks CAP_NET_RAW: {caps[field]:#x}"
    assert caps["CapEff"] == DEFAULT_CAPS | 1 << CAP_NET_RAW
    assert caps["CapInh"] == 0
    assert caps["CapAmb"] == 0


def test_exec_unknown_cap_rejected(runtime, running):
    proc = runtime.run("exec", "--cap", "CAP_BOGUS", running.id, "true", check=False)
    assert proc.returncode == 1
    assert "CAP_BOGUS" in proc.stderr


def test_exec_preserve_fds(runtime, running):
    proc, out = output_on_fd3(runtime, "exec", "--preserve-fds", "1", running.id,
                              "sh", "-c", "echo exec-fd3 > /proc/self/fd/3")
    assert proc.returncode == 0, proc.stderr
    assert out == b"exec-fd3\n"


# --------------------------------------------------------------------------------------------------
# exec where it cannot run


def test_exec_into_paused_container_fails(runtime, running):
    runtime.run("pause", running.id)
    proc = runtime.run("exec", running.id, "true", check=False)
    assert proc.returncode == 1
    assert "paused" in proc.stderr
    runtime.run("resume", running.id)
    assert runtime.run("exec", running.id, "true").returncode == 0


def test_exec_into_stopped_container_fails(runtime, make_bundle):
    b = make_bundle(["true"])
    runtime.run("create", "--bundle", b.path, b.id)
    runtime.run("start", b.id)
    runtime.wait_status(b.id, "stopped")
    proc = runtime.run("exec", b.id, "true", check=False)
    assert proc.returncode == 1
    assert "stopped" in proc.stderr or "not running" in proc.stderr


def test_exec_into_missing_container_fails(runtime):
    proc = runtime.run("exec", "dy-no-such-container", "true", check=False)
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr


def test_exec_processes_die_with_the_container(runtime, running, tmp_path):
    pid_file = tmp_path / "exec.pid"
    runtime.run("exec", "-d", "--pid-file", pid_file, running.id, "sleep", "999")
    pid = int(pid_file.read_text())
    runtime.run("delete", "--force", running.id)
    wait_for(lambda: not alive(pid), "the exec'd process to die")
