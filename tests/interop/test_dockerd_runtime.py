"""dockerd (with containerd and containerd-shim-runc-v2) drives dockyard-runtime.

A private dockerd runs for this module: data root, exec root, socket and daemon.json under the
test's temp dir; it starts its own containerd (under the exec root); no bridge and no iptables;
dockyard-runtime is registered as the runtime ``dockyard``. The image is a busybox rootfs made here
and imported: there is no registry. At the end every container is removed, dockerd (and with it
containerd) stopped, and the test checks that no shim, mount or cgroup is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine_drive import (
    HostPaths,
    cgroup_dirs,
    kill_pids,
    processes_mentioning,
    remove_empty_cgroups,
    run_cmd,
    run_in_pty,
    tar_rootfs,
    unmount_under,
    wait_gone,
)
from helpers import runtime_binary

DOCKERD = shutil.which("dockerd")
# The client of the same release as dockerd first (Debian's docker.io); a newer client negotiates
# the API version down by itself.
DOCKER = next((p for p in ("/usr/bin/docker", shutil.which("docker")) if p and os.path.exists(p)),
              None)
RUNTIME = runtime_binary("dockyard")
IMAGE = "dockyard-busybox:test"

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]
if DOCKERD is None or shutil.which("containerd") is None:
    pytestmark.append(pytest.mark.skip(
        reason="dockerd/containerd not installed (Debian package docker.io)"))
elif DOCKER is None:
    pytestmark.append(pytest.mark.skip(reason="docker client not installed (Debian package docker.io)"))

#: Made by dockerd/containerd outside the roots they are given: the plugin socket directory and
#: the shims' socket directory. Removed afterwards (when empty) if they were not there before.
HOST_PATHS = ("/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s",
              "/etc/docker/key.json")


class Docker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "docker.sock"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("DOCKER_") or k == "DOCKER_API_VERSION"}
        self.env.update(DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(root / "client"))
        self.ids: set[str] = set()

    def argv(self, *args) -> list[str]:
        return [DOCKER, *map(str, args)]

    def __call__(self, *args, timeout: float = 60, check: bool = True):
        return run_cmd(self.argv(*args), env=self.env, timeout=timeout, check=check)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join((self.root / "dockerd.log").read_text(errors="replace")
                             .splitlines()[-lines:])
        except OSError:
            return "(no dockerd.log)"


def start_dockerd(d: Docker) -> subprocess.Popen:
    root = d.root
    (root / "daemon.json").write_text(json.dumps({
        "runtimes": {"dockyard": {"path": str(RUNTIME)}},
        # dockerd 20.10 writes its trust key to /etc/docker/key.json unless told otherwise
        "deprecated-key-path": str(root / "key.json"),
    }))
    argv = [DOCKERD, "--config-file", root / "daemon.json", "--data-root", root / "docker",
            "--exec-root", root / "exec", "--pidfile", root / "docker.pid",
            "-H", f"unix://{d.sock}", "--bridge", "none", "--iptables=false", "--ip6tables=false",
            "--ip-masq=false", "--storage-driver", "overlay2", "--exec-opt",
            "native.cgroupdriver=cgroupfs"]
    with open(root / "dockerd.log", "wb") as log:
        proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"dockerd exited {proc.returncode}:\n{d.log_tail()}")
        if d("version", "--format", "{{.Server.Version}}", check=False, timeout=10).returncode == 0:
            return proc
        if time.monotonic() > deadline:
            raise AssertionError(f"dockerd did not answer on {d.sock} in 60s:\n{d.log_tail()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path):
    root = tmp_path_factory.mktemp("dockerd")
    host = HostPaths(HOST_PATHS)
    had_parent = bool(cgroup_dirs("docker"))
    d = Docker(root)
    proc = None
    try:
        proc = start_dockerd(d)
        d("import", tar_rootfs(busybox_rootfs, root / "busybox.tar"), IMAGE, timeout=120)
        yield d
    finally:
        problems = teardown(d, proc, had_parent)
        host.remove_created()
    assert not problems, "dockerd left these behind:\n" + "\n".join(problems)


def teardown(d: Docker, proc: subprocess.Popen | None, had_parent: bool) -> list[str]:
    """Remove every container, stop dockerd (it stops its containerd), then check (and clean) what
    could be left behind. Each step runs even when an earlier one failed."""
    problems: list[str] = []

    def docker_step(*args, timeout: float = 120):
        try:
            return d(*args, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            problems.append(f"docker {' '.join(args)}: no exit in {timeout}s")
            return None

    if proc is not None and proc.poll() is None:
        listed = docker_step("ps", "--all", "--quiet", "--no-trunc", timeout=30)
        d.ids.update(listed.stdout.split() if listed else ())
        if d.ids:
            docker_step("rm", "--force", *sorted(d.ids))
        docker_step("rmi", "--force", IMAGE)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            problems.append(f"dockerd {proc.pid} ignored SIGTERM for 60s; killed")
            proc.kill()
            proc.wait(timeout=30)
    # containerd, shims and any runtime process still around name our dirs on their command line
    left = processes_mentioning(str(d.root))
    if left:
        problems += [f"process {pid}: {cmd}" for pid, cmd in left.items()]
        kill_pids(left)
        wait_gone(left)
    problems += [f"mount {m}" for m in unmount_under(d.root)]
    for cid in d.ids:
        problems += [f"cgroup {c}" for c in cgroup_dirs(f"docker/{cid}")]
        remove_empty_cgroups([f"docker/{cid}"])
    if not had_parent:
        remove_empty_cgroups(["docker"])
    return problems


def container_gone(d: Docker, cid: str) -> None:
    """After ``docker rm``: no cgroup, no runtime state, no shim left for the container."""
    deadline = time.monotonic() + 10
    while cgroup_dirs(f"docker/{cid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cgroup_dirs(f"docker/{cid}") == []
    state_root = d.root / "exec/runtime-runc/moby"  # the --root dockerd gives every runtime
    assert not (state_root / cid).exists()
    assert wait_gone(processes_mentioning(cid)) == set()


def test_run_rm_echo(docker: Docker) -> None:
    out = docker("run", "--runtime", "dockyard", "--rm", "--network", "none", IMAGE, "echo", "ok")
    assert out.stdout == "ok\n", out
    assert docker("ps", "--all", "--quiet").stdout.strip() == ""


def test_run_exit_code(docker: Docker) -> None:
    out = docker("run", "--runtime", "dockyard", "--rm", "--network", "none", IMAGE,
                 "sh", "-c", "exit 42", check=False)
    assert out.returncode == 42, out


def test_detached_exec_logs_stop_rm(docker: Docker) -> None:
    cid = docker("run", "--runtime", "dockyard", "-d", "--network", "none", IMAGE,
                 "sh", "-c", "echo started; exec sleep 1000").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), cid
    docker.ids.add(cid)
    inspect = ["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.HostConfig.Runtime}}",
               cid]
    assert docker(*inspect).stdout.split() == ["running", "0", "dockyard"]

    assert docker("exec", cid, "echo", "hi").stdout == "hi\n"
    assert docker("exec", cid, "sh", "-c", "exit 7", check=False).returncode == 7
    deadline = time.monotonic() + 10
    while "started" not in docker("logs", cid).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert docker("logs", cid).stdout == "started\n"

    # sleep as pid 1 has no SIGTERM handler: dockerd escalates to SIGKILL after -t 2
    started = time.monotonic()
    assert docker("stop", "-t", "2", cid).stdout.strip() == cid
    assert time.monotonic() - started < 20
    assert docker(*inspect).stdout.split() == ["exited", "137", "dockyard"]

    assert docker("rm", cid).stdout.strip() == cid
    container_gone(docker, cid)


def test_stop_delivers_sigterm(docker: Docker) -> None:
    script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
    cid = docker("run", "--runtime", "dockyard", "-d", "--network", "none", IMAGE,
                 "sh", "-c", script).stdout.strip()
    docker.ids.add(cid)
    deadline = time.monotonic() + 10
    while "ready" not in docker("logs", cid).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    docker("stop", "-t", "30", cid)
    assert time.monotonic() - started < 15, "SIGTERM did not reach the container's init"
    assert docker("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip() == "0"
    assert docker("logs", cid).stdout == "ready\ngot-term\n"
    docker("rm", cid)
    container_gone(docker, cid)


def test_interactive_tty(docker: Docker) -> None:
    code, out = run_in_pty(docker.argv("run", "--runtime", "dockyard", "--rm", "-it",
                                       "--network", "none", IMAGE, "sh"),
                           env=docker.env, prompt=b"# ", send=b"echo hi-from-tty; exit 3\r")
    assert b"\r\nhi-from-tty\r\n" in out, out
    assert code == 3, out
    assert docker("ps", "--all", "--quiet").stdout.strip() == ""


def test_info_lists_runtime(docker: Docker) -> None:
    out = docker("info", "--format", "{{json .Runtimes}}")
    assert json.loads(out.stdout)["dockyard"]["path"] == str(RUNTIME), out
