"""``engine.stats`` on the real kernel: a busy process in a real v1 cgroup (made by the runtime's
manager), sampled twice and rendered as Docker's stats JSON."""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import time
import uuid

import pytest

from dockyard.engine import stats
from dockyard.runtime import cgroups

ROOT = "/sys/fs/cgroup"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(cgroups.detect(ROOT) != "v1", reason="needs cgroup v1 (or hybrid)"),
]


def _force_clean(name: str) -> None:
    for top in glob.glob(f"{ROOT}/*/{name}"):
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def _busy_in(dirs: list[str]) -> subprocess.Popen:
    """A shell that moves itself into ``dirs`` and then execs a busy loop (so its memory is
    charged to the cgroup from the start)."""
    script = 'for f in "$@"; do echo $$ > "$f/cgroup.procs"; done; exec sh -c "while :; do :; done"'
    return subprocess.Popen(["sh", "-c", script, "sh", *dirs])


def _wait_in(pid: int, cgroup_dir: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"{cgroup_dir}/cgroup.procs") as f:
            if str(pid) in f.read().split():
                return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} never joined {cgroup_dir}")


@pytest.fixture
def busy_cgroup():
    name = f"dockyard-test-{uuid.uuid4().hex[:12]}"
    manager = cgroups.open_manager(ROOT)
    proc: subprocess.Popen | None = None
    cg = None
    try:
        cg = manager.create(f"/{name}/ctr")
        dirs = sorted(set(cg.paths().values()))
        proc = _busy_in(dirs)
        _wait_in(proc.pid, cg.paths()["memory"])
        _wait_in(proc.pid, cg.paths()["cpuacct"])
        yield name, proc
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)
        if cg is not None:
            try:
                cg.destroy(kill=True)
            except Exception:  # noqa: BLE001 - fall back to removing the directories
                pass
        _force_clean(name)
        assert not glob.glob(f"{ROOT}/*/{name}")


def test_real_cgroup_counters_grow_and_render(busy_cgroup) -> None:
    name, proc = busy_cgroup
    loc = stats.locate("ctr", root=ROOT, parent=f"/{name}")
    assert stats.exists(loc) and loc.version == "v1"
    first = stats.sample(loc, proc.pid, now=time.time())
    # cpuacct counts in ns; wait until the busy loop has used measurably more CPU
    deadline = time.monotonic() + 20
    while True:
        time.sleep(0.2)
        second = stats.sample(loc, proc.pid, now=time.time())
        if second.cpu_total > first.cpu_total or time.monotonic() > deadline:
            break
    assert second.cpu_total > first.cpu_total > 0
    assert second.system_usage > first.system_usage
    assert second.memory_usage > 0
    assert second.pids_current == 1
    assert sum(second.cpu_percpu) > 0

    j = stats.to_docker_json(second, first, id="c" * 64, name="busy",
                             online_cpus=stats.online_cpus(), host_memory=None)
    usage = j["cpu_stats"]["cpu_usage"]
    assert usage["total_usage"] > j["precpu_stats"]["cpu_usage"]["total_usage"]
    assert j["cpu_stats"]["system_cpu_usage"] > j["precpu_stats"]["system_cpu_usage"]
    assert j["pids_stats"]["current"] == 1
    mem = j["memory_stats"]
    assert mem["usage"] > 0 and "total_inactive_file" in mem["stats"]
    assert mem["limit"] == stats.read_host_memory()  # unlimited: the host's memory
    assert "lo" not in j.get("networks", {})  # host netns here: its interfaces minus lo
    assert all(isinstance(v, list) for v in j["blkio_stats"].values())


def test_real_one_shot_stream(busy_cgroup) -> None:
    name, proc = busy_cgroup
    loc = stats.locate("ctr", root=ROOT, parent=f"/{name}")

    async def one() -> list[dict]:
        return [f async for f in stats.stats_stream(lambda: loc, id="c" * 64, name="busy",
                                                    pid_of=lambda: proc.pid, stream=False,
                                                    interval=0.2)]

    (frame,) = asyncio.run(one())
    assert frame["name"] == "/busy" and frame["pids_stats"] == {"current": 1}
    assert frame["preread"] != "0001-01-01T00:00:00Z"  # stream=false waits to fill precpu
    assert frame["cpu_stats"]["cpu_usage"]["total_usage"] > 0
