"""The v1 manager on the real /sys/fs/cgroup (root, cgroup v1 or hybrid hosts only)."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import uuid

import pytest

from dockyard.errors import InvalidArgument
from dockyard.oci.runtime_spec import Cpu, DeviceRule, Memory, Pids, Resources
from dockyard.runtime import cgroups
from dockyard.runtime.cgroups.v1 import V1Manager

ROOT = "/sys/fs/cgroup"
MiB = 1 << 20

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(cgroups.detect(ROOT) != "v1", reason="needs cgroup v1 (or hybrid)"),
]


def leftovers(prefix: str = "dockyard-test-") -> list[str]:
    return glob.glob(f"{ROOT}/*/{prefix}*")


def force_clean(name: str) -> None:
    """Last resort for a failed test: remove our own directories, deepest first."""
    for top in glob.glob(f"{ROOT}/*/{name}"):
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_real_v1_lifecycle():
    name = f"dockyard-test-{uuid.uuid4().hex[:12]}"
    manager = cgroups.open_manager(ROOT)
    assert isinstance(manager, V1Manager)
    procs: list[subprocess.Popen] = []
    try:
        cg = manager.create(f"/{name}/ctr")
        paths = cg.paths()
        assert {"memory", "pids", "cpu", "freezer", "cpuset"} <= set(paths)
        for ctrl, p in paths.items():
            assert os.path.isdir(p), ctrl
        cpuset = paths["cpuset"]
        assert read(f"{cpuset}/cpuset.cpus") == read(f"{ROOT}/cpuset/cpuset.cpus")
        assert read(f"{cpuset}/cpuset.mems") == read(f"{ROOT}/cpuset/cpuset.mems")

        cg.apply(Resources(
            devices=(DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm"),
                     DeviceRule(True, "c", 1, 5, "rwm")),
            memory=Memory(limit=64 * MiB, swap=128 * MiB, reservation=32 * MiB),
            cpu=Cpu(shares=512, quota=50000, period=100000),
            pids=Pids(50),
        ))
        mem, cpu = paths["memory"], paths["cpu"]
        assert read(f"{mem}/memory.limit_in_bytes") == str(64 * MiB)
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            assert read(f"{mem}/memory.memsw.limit_in_bytes") == str(128 * MiB)
        assert read(f"{mem}/memory.soft_limit_in_bytes") == str(32 * MiB)
        assert read(f"{paths['pids']}/pids.max") == "50"
        assert read(f"{cpu}/cpu.shares") == "512"
        assert read(f"{cpu}/cpu.cfs_period_us") == "100000"
        assert read(f"{cpu}/cpu.cfs_quota_us") == "50000"
        if "devices" in paths:
            assert read(f"{paths['devices']}/devices.list").splitlines() == ["c 1:3 rwm", "c 1:5 rwm"]

        # raising above the current memsw needs memsw first; lowering needs memory first
        cg.update(Resources(memory=Memory(limit=256 * MiB, swap=512 * MiB)))
        assert read(f"{mem}/memory.limit_in_bytes") == str(256 * MiB)
        cg.update(Resources(memory=Memory(limit=32 * MiB, swap=48 * MiB), pids=Pids(-1)))
        assert read(f"{mem}/memory.limit_in_bytes") == str(32 * MiB)
        assert read(f"{paths['pids']}/pids.max") == "max"

        proc = subprocess.Popen(["sleep", "30"])
        procs.append(proc)
        cg.add_pid(proc.pid)
        own = read(f"/proc/{proc.pid}/cgroup").splitlines()
        for ctrl in ("memory", "pids", "cpu", "freezer", "cpuset", "devices"):
            if ctrl in paths:
                assert any(line.split(":")[1].split(",").count(ctrl) and
                           line.endswith(f":/{name}/ctr") for line in own), (ctrl, own)
        assert cg.pids() == [proc.pid]
        st = cg.stats()
        assert st.pids_current == 1 and st.pids_limit is None
        assert st.memory_limit == 32 * MiB  # usage stays ~0: v1 charges do not move with a task

        cg.freeze()
        assert read(f"{paths['freezer']}/freezer.state") == "FROZEN"
        assert cg.is_frozen()
        cg.thaw()
        assert read(f"{paths['freezer']}/freezer.state") == "THAWED"
        assert not cg.is_frozen()

        cg.kill_all(signal.SIGKILL)
        assert proc.wait(timeout=5) == -signal.SIGKILL
        assert cg.pids() == []
        assert read(f"{paths['freezer']}/freezer.state") == "THAWED"

        # a later process (runtime delete) reopens the cgroup from the saved state
        again = cgroups.load(cg.paths(), cg.created(), root=ROOT)
        survivor = subprocess.Popen(["sleep", "30"])
        procs.append(survivor)
        again.add_pid(survivor.pid)
        again.destroy(kill=True)
        assert survivor.wait(timeout=5) == -signal.SIGKILL
        assert leftovers(name) == []
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        force_clean(name)
    assert leftovers(name) == []
    assert leftovers() == []


def test_real_v1_refuses_root_and_systemd_paths():
    manager = cgroups.open_manager(ROOT)
    for bad in ("/", "system.slice:dockyard:x", "/a/../.."):
        with pytest.raises(InvalidArgument):
            manager.create(bad)
    assert leftovers() == []
