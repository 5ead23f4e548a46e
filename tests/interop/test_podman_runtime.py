"""Podman (with conmon) drives dockyard-runtime: ``podman --runtime <dockyard-runtime> ...``.

Podman runs with a private configuration and storage under the test's temp dir (CONTAINERS_CONF,
CONTAINERS_STORAGE_CONF): cgroupfs cgroups (no systemd here), file events, no network (there is
no CNI/netavark setup), and nofile/nproc ulimits this host allows (without CAP_SYS_RESOURCE a
container cannot be given podman's rootful default of 1048576). The image is a busybox rootfs
made here and imported: there is no registry. Everything is removed at the end.
"""

from __future__ import annotations

import os
import re
import shutil
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

PODMAN = shutil.which("podman")
CONMON = shutil.which("conmon") or next(
    (p for p in ("/usr/bin/conmon", "/usr/libexec/podman/conmon") if os.path.exists(p)), None)
RUNTIME = runtime_binary("dockyard")
IMAGE = "localhost/dockyard-busybox:test"

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]
if PODMAN is None:
    pytestmark.append(pytest.mark.skip(reason="podman not installed (Debian package podman)"))
elif CONMON is None:
    pytestmark.append(pytest.mark.skip(reason="conmon not installed (Debian package conmon)"))

#: Outside podman's configured roots, podman 4.3 creates these itself: the blob-info cache of
#: ``import`` (/var/lib/containers/cache) and, before a network backend is configured, lock files.
#: Removed afterwards when they were not there before.
HOST_PATHS = ("/var/lib/containers", "/var/lib/containers/cache", "/etc/cni/net.d/cni.lock",
              "/etc/containers/networks", "/run/containers", "/run/containers/networks",
              "/run/dockyard-runtime")


class Podman:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "CONTAINERS_CONF": str(root / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(root / "storage.conf")}
        for name in ("CONTAINER_HOST", "CONTAINER_CONNECTION", "CONTAINERS_REGISTRIES_CONF"):
            self.env.pop(name, None)
        self.ids: set[str] = set()

    def argv(self, *args) -> list[str]:
        return [PODMAN, "--runtime", str(RUNTIME), "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", *map(str, args)]

    def __call__(self, *args, timeout: float = 60, check: bool = True):
        return run_cmd(self.argv(*args), env=self.env, timeout=timeout, check=check)


def write_config(root: Path) -> None:
    (root / "net").mkdir()
    (root / "containers.conf").write_text(f"""\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{root}/events.log"
tmp_dir = "{root}/tmp"
volume_path = "{root}/volumes"

[network]
network_backend = "cni"
network_config_dir = "{root}/net"
""")
    (root / "storage.conf").write_text(f"""\
[storage]
driver = "overlay"
graphroot = "{root}/graph"
runroot = "{root}/run"
""")


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path):
    root = tmp_path_factory.mktemp("podman")
    host = HostPaths(HOST_PATHS)
    had_parent = bool(cgroup_dirs("libpod_parent"))
    write_config(root)
    p = Podman(root)
    try:
        p("import", tar_rootfs(busybox_rootfs, root / "busybox.tar"), IMAGE, timeout=120)
        yield p
    finally:
        problems = teardown(p, had_parent)
        host.remove_created(trees=["/var/lib/containers"])
    assert not problems, "podman left these behind:\n" + "\n".join(problems)


def teardown(p: Podman, had_parent: bool) -> list[str]:
    """Remove every container and image, then check (and clean) what they could leave behind.
    Each step runs even when an earlier one failed."""
    problems: list[str] = []

    def podman_step(*args, timeout: float = 120):
        try:
            return p(*args, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            problems.append(f"podman {' '.join(args)}: no exit in {timeout}s")
            return None

    listed = podman_step("ps", "--all", "--quiet", "--no-trunc")
    p.ids.update(listed.stdout.split() if listed else ())
    podman_step("rm", "--all", "--force", "--time", "0")
    podman_step("rmi", "--all", "--force")
    podman_step("system", "reset", "--force")
    # conmon, cleanup processes and any runtime process still around name our dirs
    left = processes_mentioning(str(p.root))
    if left:
        problems += [f"process {pid}: {cmd}" for pid, cmd in left.items()]
        kill_pids(left)
        wait_gone(left)
    problems += [f"mount {m}" for m in unmount_under(p.root)]
    state = run_cmd([RUNTIME, "list", "--quiet"], check=False, timeout=30).stdout.split()
    for cid in p.ids:
        if cid in state:
            problems.append(f"dockyard-runtime state of {cid}")
            run_cmd([RUNTIME, "delete", "--force", cid], check=False, timeout=30)
        cgroups = cgroup_dirs(f"libpod_parent/libpod-{cid}")
        problems += [f"cgroup {c}" for c in cgroups]
        remove_empty_cgroups([f"libpod_parent/libpod-{cid}"])
    if not had_parent:  # podman's shared parents, emptied by the rm above
        remove_empty_cgroups(["libpod_parent/conmon", "libpod_parent"])
    return problems


def container_gone(p: Podman, cid: str) -> None:
    """After ``podman rm``: no cgroup, no runtime state, no monitor left for the container."""
    deadline = time.monotonic() + 10
    while cgroup_dirs(f"libpod_parent/libpod-{cid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cgroup_dirs(f"libpod_parent/libpod-{cid}") == []
    assert cid not in run_cmd([RUNTIME, "list", "--quiet"]).stdout.split()
    assert wait_gone(processes_mentioning(cid)) == set()


def test_run_rm_echo(podman: Podman) -> None:
    out = podman("run", "--rm", "--network", "none", IMAGE, "echo", "ok")
    assert out.stdout == "ok\n", out
    assert podman("ps", "--all", "--quiet").stdout.strip() == ""


def test_run_exit_code(podman: Podman) -> None:
    out = podman("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "exit 42", check=False)
    assert out.returncode == 42, out


def test_detached_exec_logs_stop_rm(podman: Podman) -> None:
    cid = podman("run", "-d", "--network", "none", IMAGE,
                 "sh", "-c", "echo started; exec sleep 1000").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), cid
    podman.ids.add(cid)
    inspect = ["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", cid]
    assert podman(*inspect).stdout.split() == ["running", "0"]

    assert podman("exec", cid, "echo", "hi").stdout == "hi\n"
    assert podman("exec", cid, "sh", "-c", "exit 7", check=False).returncode == 7
    deadline = time.monotonic() + 10
    while "started" not in podman("logs", cid).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert podman("logs", cid).stdout == "started\n"

    # sleep as pid 1 has no SIGTERM handler: podman escalates to SIGKILL after -t 2
    started = time.monotonic()
    assert podman("stop", "-t", "2", cid).stdout.strip() == cid
    assert time.monotonic() - started < 20
    assert podman(*inspect).stdout.split() == ["exited", "137"]

    assert podman("rm", cid).stdout.strip() == cid
    container_gone(podman, cid)


def test_stop_delivers_sigterm(podman: Podman) -> None:
    script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
    cid = podman("run", "-d", "--network", "none", IMAGE, "sh", "-c", script).stdout.strip()
    podman.ids.add(cid)
    deadline = time.monotonic() + 10
    while "ready" not in podman("logs", cid).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    podman("stop", "-t", "30", cid)
    assert time.monotonic() - started < 15, "SIGTERM did not reach the container's init"
    assert podman("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip() == "0"
    assert podman("logs", cid).stdout == "ready\ngot-term\n"
    podman("rm", cid)
    container_gone(podman, cid)


def test_interactive_tty(podman: Podman) -> None:
    code, out = run_in_pty(podman.argv("run", "--rm", "-it", "--network", "none", IMAGE, "sh"),
                           env=podman.env, prompt=b"# ", send=b"echo hi-from-tty; exit 3\r")
    assert b"\r\nhi-from-tty\r\n" in out, out
    assert code == 3, out
    assert podman("ps", "--all", "--quiet").stdout.strip() == ""


def test_info_reports_runtime(podman: Podman) -> None:
    out = podman("info", "--format", "{{.Host.OCIRuntime.Path}} {{.Host.OCIRuntime.Version}}")
    assert out.stdout.startswith(f"{RUNTIME} "), out
    assert "dockyard-runtime version" in out.stdout, out
