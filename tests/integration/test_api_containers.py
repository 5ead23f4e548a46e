"""Containers end to end with the real docker CLI (28) against a real ``dockyard daemon``: run
(attached, detached, exit codes, flags), create/start, stop/kill/restart, rm, ps (filters and
formats), inspect, wait, logs, attach, top, stats, pause, rename, update, prune, events, restart
policies and health checks. Raw HTTP where the CLI hides the shape."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

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
    assert p.returncode == 125 and "conflicting options" in p.stderr.lower() or \
        "cannot" in p.stderr.lower(), p.stderr
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
