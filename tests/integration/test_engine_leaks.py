"""Issue #4, acceptance 3: the engine leaves nothing behind.

20 parallel ``docker run --rm`` leave no container, directory, mount, cgroup, monitor or exit
file; 100 sequential create → start → stop → rm cycles through the API leave the daemon with as
many open fds and threads, and the host with as many mounts and dockyard cgroups, after cycle 100
as after cycle 10.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from containers_util import conmon_pids
from daemon_util import Daemon, daemon_fixture

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/conmon"), reason="needs conmon")

daemon = daemon_fixture()

CGROUP_ROOT = Path("/sys/fs/cgroup")


@pytest.fixture(scope="module", autouse=True)
def _daemon_cgroup_parents():
    """The daemon puts containers under /dockyard/<id>; runtimes leave that parent behind.
    Removed (where empty) once this module's containers are gone."""
    yield
    for parent in CGROUP_ROOT.glob("*/dockyard"):
        try:
            parent.rmdir()
        except OSError:
            pass  # another daemon's container is in it, or it is already gone


def container_cgroups(ids: set[str]) -> list[str]:
    """Cgroups of these containers in any hierarchy (other daemons may share /dockyard)."""
    return [str(p) for p in CGROUP_ROOT.glob("*/dockyard/*") if p.name in ids]


def mounts_under(path: Path, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    with open(mountinfo) as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(str(path))]




def exit_dir(d: Daemon) -> Path:
    """The daemon's exit files: ``<exec-root>/exits`` (the default exec root unless its command
    line names one)."""
    with open(f"/proc/{d.pid}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0")]
    root = argv[argv.index("--exec-root") + 1] if "--exec-root" in argv else "/run/dockyard"
    return Path(root) / "exits"


def test_parallel_run_rm_leaves_nothing(daemon: Daemon, tmp_path: Path) -> None:
    cidfiles = [tmp_path / f"cid{i}" for i in range(20)]

    def run(cidfile: Path):
        return daemon.docker("run", "--rm", "--cidfile", str(cidfile), "busybox", "true",
                             check=False)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(run, cidfiles))
    failed = [(r.returncode, r.stderr) for r in results if r.returncode != 0]
    assert not failed, failed
    ids = {f.read_text().strip() for f in cidfiles}
    assert len(ids) == 20 and all(len(i) == 64 for i in ids), ids

    # --rm removal runs in the daemon after the exit reaches the client: let it finish
    deadline = time.monotonic() + 20
    while daemon.docker("ps", "-aq").stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert daemon.docker("ps", "-aq").stdout.strip() == ""
    containers = daemon.root / "containers"
    assert not containers.exists() or not list(containers.iterdir())
    assert mounts_under(daemon.root) == []
    assert container_cgroups(ids) == []
    assert conmon_pids(*ids) == []
    assert not [i for i in ids if (exit_dir(daemon) / i).exists()], "exit files left behind"


def fd_targets(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return sorted(out)


def settled(sample, tries: int = 10, step: float = 0.1) -> int:
    """The smallest of a few samples: a leaked fd or thread stays, while the socket of the
    request just answered or a store call finishing may still be there a moment later."""
    values = []
    for _ in range(tries):
        values.append(sample())
        time.sleep(step)
    return min(values)


def measure(d: Daemon, ids: set[str]) -> dict[str, int]:
    pid = d.pid

    def threads() -> int:
        with open(f"/proc/{pid}/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("Threads:"))

    return {
        "fds": settled(lambda: len(os.listdir(f"/proc/{pid}/fd"))),
        "threads": settled(threads),
        # the daemon's own view of the mounts below its root (other tests may mount elsewhere)
        "mounts": len(mounts_under(d.root, f"/proc/{pid}/mountinfo")),
        "host mounts": len(mounts_under(d.root)),
        "cgroups": len(container_cgroups(ids)),
        "monitors": len(conmon_pids(*ids)),
    }


def test_create_start_stop_rm_cycles_do_not_grow(daemon: Daemon) -> None:
    ids: set[str] = set()
    samples: dict[int, dict[str, int]] = {}
    started = time.monotonic()
    for cycle in range(1, 101):
        cid = daemon.json("POST", "/containers/create",
                          {"Image": "busybox", "Cmd": ["sleep", "1000"]})["Id"]
        ids.add(cid)
        daemon.json("POST", f"/containers/{cid}/start", status=204)
        daemon.json("POST", f"/containers/{cid}/stop?t=0", status=204)
        daemon.json("DELETE", f"/containers/{cid}", status=204)
        if cycle in (10, 100):
            samples[cycle] = measure(daemon, ids)
    per_cycle = (time.monotonic() - started) / 100
    print(f"\ncreate+start+stop+rm: {per_cycle * 1000:.0f} ms per cycle; {samples}")
    at10, at100 = samples[10], samples[100]
    assert at100["mounts"] == at10["mounts"] == 0, samples
    assert at100["host mounts"] == at10["host mounts"] == 0, samples
    assert at100["cgroups"] == at10["cgroups"] == 0, samples
    assert at100["monitors"] == at10["monitors"] == 0, samples
    assert at100["threads"] <= at10["threads"], samples
    assert at100["fds"] <= at10["fds"], (samples, fd_targets(daemon.pid))
    assert daemon.docker("ps", "-aq").stdout.strip() == ""
