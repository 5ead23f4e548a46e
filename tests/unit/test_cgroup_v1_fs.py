"""The v1 manager against a temporary directory laid out like a hybrid v1 host.

The layout co-mounts cpu,cpuacct with ``cpu`` and ``cpuacct`` symlinks (as many distributions
do), has the name=systemd hierarchy, a cgroup2 ``unified`` tree (joined too, as runc does), and an
unmounted ``hugetlb`` directory. ``FakeKernel`` populates files on mkdir, keeps
memory.limit_in_bytes <= memory.memsw.limit_in_bytes like the kernel (EINVAL otherwise), appends
to cgroup.procs, and refuses rmdir while processes remain.
"""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from dockyard.errors import FailedPrecondition, InvalidArgument, KernelError
from dockyard.oci.runtime_spec import (
    BlockIO, Cpu, DeviceRule, HugepageLimit, Memory, Pids, Resources, WeightDevice,
)
from dockyard.runtime import cgroups
from dockyard.runtime.cgroups import base
from dockyard.runtime.cgroups.v1 import V1Cgroup, V1Manager, discover

UNLIMITED = "9223372036854771712"
MiB = 1 << 20
FILES = {
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
            "cpu.stat": "nr_periods 4\nnr_throttled 2\nthrottled_time 5000\n"},
    "cpuacct": {"cpuacct.usage": "123456"},
    "memory": {"memory.limit_in_bytes": UNLIMITED, "memory.memsw.limit_in_bytes": UNLIMITED,
               "memory.soft_limit_in_bytes": UNLIMITED, "memory.swappiness": "60",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
               "memory.usage_in_bytes": "2048", "memory.max_usage_in_bytes": "4096",
               "memory.stat": "cache 10\ntotal_inactive_file 77\n"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm"},
    "freezer": {"freezer.state": "THAWED"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "",
              "blkio.throttle.read_bps_device": ""},
}
HIERARCHIES = ["cpu,cpuacct", "cpuset", "memory", "devices", "freezer", "pids", "blkio", "systemd"]
JOINED = HIERARCHIES + ["unified"]  # a container's cgroup directories: the hybrid cgroup2 tree too


class FakeKernel:
    def __init__(self, root: str) -> None:
        self.root = root
        self.log: list[tuple[str, str]] = []
        self.baseline: list[str] = []
        os.makedirs(root)
        for h in HIERARCHIES + ["unified"]:
            os.mkdir(f"{root}/{h}")
            self._touch(f"{root}/{h}/cgroup.procs", "")
        self._touch(f"{root}/unified/cgroup.controllers", "")
        os.symlink("cpu,cpuacct", f"{root}/cpu")
        os.symlink("cpu,cpuacct", f"{root}/cpuacct")
        os.mkdir(f"{root}/hugetlb")  # not mounted: no cgroup.procs
        self._touch(f"{root}/cpuset/cpuset.cpus", "0-3\n")
        self._touch(f"{root}/cpuset/cpuset.mems", "0\n")
        self._real_write = base.write_file

    @staticmethod
    def _touch(path: str, content: str) -> None:
        with open(path, "w") as f:
            f.write(content)

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def read(self, rel: str) -> str:
        with open(os.path.join(self.root, rel)) as f:
            return f.read()

    def make_dir(self, path: str) -> None:
        os.mkdir(path)
        hierarchy = self.rel(path).split("/")[0]
        self._touch(path + "/cgroup.procs", "")
        for ctrl in hierarchy.split(","):
            for name, content in FILES.get(ctrl, {}).items():
                self._touch(f"{path}/{name}", content)

    def remove_dir(self, path: str) -> None:
        if any(e.is_dir() for e in os.scandir(path)) or self.read(path + "/cgroup.procs").strip():
            raise OSError(errno.EBUSY, "busy", path)
        for e in os.scandir(path):
            os.unlink(e.path)
        os.rmdir(path)

    def write_file(self, path: str, value: str) -> None:
        self.log.append((self.rel(path), value))
        name, d = os.path.basename(path), os.path.dirname(path)

        def val(v: str) -> int:
            return 1 << 64 if int(v) < 0 or int(v) >= 1 << 62 else int(v)

        if name == "memory.limit_in_bytes":
            if val(value) > val(self.read(d + "/memory.memsw.limit_in_bytes")):
                raise KernelError(f"write {value} to {path}", errno.EINVAL)
        elif name == "memory.memsw.limit_in_bytes":
            if val(value) < val(self.read(d + "/memory.limit_in_bytes")):
                raise KernelError(f"write {value} to {path}", errno.EINVAL)
        elif name == "cgroup.procs":
            value = self.read(path) + value + "\n"
        self._real_write(path, value)


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    k = FakeKernel(str(tmp_path / "cgroup"))
    k.baseline = cgroup_dirs(k.root)
    monkeypatch.setattr(base, "make_dir", k.make_dir)
    monkeypatch.setattr(base, "remove_dir", k.remove_dir)
    monkeypatch.setattr(base, "write_file", k.write_file)
    return k


def cgroup_dirs(root: str) -> list[str]:
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        out.extend(os.path.relpath(os.path.join(dirpath, d), root) for d in dirnames)
    return sorted(out)


def test_discover_comounted_symlinks_and_named(kernel):
    r = kernel.root
    assert discover(r) == {
        "blkio": f"{r}/blkio", "cpu": f"{r}/cpu,cpuacct", "cpuacct": f"{r}/cpu,cpuacct",
        "cpuset": f"{r}/cpuset", "devices": f"{r}/devices", "freezer": f"{r}/freezer",
        "memory": f"{r}/memory", "pids": f"{r}/pids", "name=systemd": f"{r}/systemd",
    }
    assert cgroups.detect(r) == "v1"
    assert isinstance(cgroups.open_manager(r), V1Manager)


def test_create_makes_each_hierarchy_once_and_initialises_cpuset(kernel):
    cg = V1Manager(kernel.root).create("/dockyard/abc")
    paths = cg.paths()
    assert paths["cpu"] == paths["cpuacct"] == kernel.root + "/cpu,cpuacct/dockyard/abc"
    assert paths["name=systemd"] == kernel.root + "/systemd/dockyard/abc"
    assert cg.created()["memory"] == kernel.root + "/memory/dockyard"
    assert kernel.log == [
        ("cpuset/dockyard/cpuset.cpus", "0-3"), ("cpuset/dockyard/cpuset.mems", "0"),
        ("cpuset/dockyard/abc/cpuset.cpus", "0-3"), ("cpuset/dockyard/abc/cpuset.mems", "0"),
    ]
    for h in JOINED:
        assert os.path.isdir(f"{kernel.root}/{h}/dockyard/abc"), h
    assert paths["unified"] == kernel.root + "/unified/dockyard/abc"
    assert not os.path.exists(kernel.root + "/hugetlb/dockyard")


def test_apply_exact_writes(kernel):
    cg = V1Manager(kernel.root).create("/dockyard/abc")
    kernel.log.clear()
    cg.apply(Resources(
        devices=(DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm"),
                 DeviceRule(True, "c", 136, None, "rwm")),
        memory=Memory(limit=64 * MiB, swap=128 * MiB, swappiness=0, disable_oom_killer=False),
        cpu=Cpu(shares=512, quota=20000, period=50000, cpus="1", mems="0"),
        pids=Pids(64),
        block_io=BlockIO(weight=300, weight_device=(WeightDevice(8, 0, weight=200),)),
    ))
    assert kernel.log == [
        ("cpuset/dockyard/abc/cpuset.cpus", "1"), ("cpuset/dockyard/abc/cpuset.mems", "0"),
        ("devices/dockyard/abc/devices.deny", "a"),
        ("devices/dockyard/abc/devices.allow", "c 1:3 rwm"),
        ("devices/dockyard/abc/devices.allow", "c 136:* rwm"),
        ("memory/dockyard/abc/memory.limit_in_bytes", str(64 * MiB)),
        ("memory/dockyard/abc/memory.memsw.limit_in_bytes", str(128 * MiB)),
        ("memory/dockyard/abc/memory.swappiness", "0"),
        ("memory/dockyard/abc/memory.oom_control", "0"),
        ("cpu,cpuacct/dockyard/abc/cpu.shares", "512"),
        ("cpu,cpuacct/dockyard/abc/cpu.cfs_period_us", "50000"),
        ("cpu,cpuacct/dockyard/abc/cpu.cfs_quota_us", "20000"),
        ("pids/dockyard/abc/pids.max", "64"),
        ("blkio/dockyard/abc/blkio.bfq.weight", "300"),  # no blkio.weight: BFQ's file
        ("blkio/dockyard/abc/blkio.bfq.weight_device", "8:0 200"),
    ]
    assert kernel.read("pids/dockyard/abc/pids.max") == "64"
    assert kernel.read("memory/dockyard/abc/memory.limit_in_bytes") == str(64 * MiB)


def test_update_orders_memory_and_swap(kernel):
    cg = V1Manager(kernel.root).create("/dockyard/abc")
    cg.apply(Resources(memory=Memory(limit=64 * MiB, swap=128 * MiB)))
    kernel.log.clear()
    cg.update(Resources(memory=Memory(limit=256 * MiB, swap=512 * MiB),
                        devices=(DeviceRule(False),)))
    assert kernel.log == [("memory/dockyard/abc/memory.memsw.limit_in_bytes", str(512 * MiB)),
                          ("memory/dockyard/abc/memory.limit_in_bytes", str(256 * MiB))]
    kernel.log.clear()
    cg.update(Resources(memory=Memory(limit=32 * MiB, swap=48 * MiB)))
    assert kernel.log == [("memory/dockyard/abc/memory.limit_in_bytes", str(32 * MiB)),
                          ("memory/dockyard/abc/memory.memsw.limit_in_bytes", str(48 * MiB))]
    cg.update(Resources(memory=Memory(limit=-1)))
    assert kernel.read("memory/dockyard/abc/memory.limit_in_bytes") == "-1"


def test_unmounted_controller_and_kernel_errors(kernel):
    cg = V1Manager(kernel.root).create("/dockyard/abc")
    with pytest.raises(FailedPrecondition, match="hugetlb is not mounted"):
        cg.apply(Resources(hugepage_limits=(HugepageLimit("2MB", MiB),)))
    with pytest.raises(KernelError, match=r"write 5 to .*/blkio.leaf_weight: No such file"):
        cg.apply(Resources(block_io=BlockIO(leaf_weight=5)))
    with pytest.raises(InvalidArgument, match="cgroup v2"):
        cg.apply(Resources(unified=(("memory.high", "1"),)))


def test_missing_devices_hierarchy_skips_device_rules(kernel):
    cg = V1Manager(kernel.root).create("/dockyard/abc")
    paths = cg.paths()
    del paths["devices"]
    V1Cgroup(paths, root=kernel.root).apply(Resources(devices=(DeviceRule(False),), pids=Pids(3)))
    assert kernel.read("devices/dockyard/abc/devices.deny") == ""


def test_unusable_unified_tree_is_left_out(kernel, monkeypatch):
    make_dir = base.make_dir

    def refuse_unified(path: str) -> None:
        if "/unified/" in path:
            raise KernelError(f"mkdir {path}", errno.EROFS)
        make_dir(path)

    monkeypatch.setattr(base, "make_dir", refuse_unified)
    cg = V1Manager(kernel.root).create("/dockyard/abc")
    assert "unified" not in cg.paths() and "memory" in cg.paths()


def test_add_pid_and_pids_in_every_hierarchy(kernel):
    cg = V1Manager(kernel.root).create("/dockyard/abc")
    kernel.log.clear()
    cg.add_pid(4242)
    assert sorted(kernel.log) == sorted(
        (f"{h}/dockyard/abc/cgroup.procs", "4242") for h in JOINED)
    kernel._touch(kernel.root + "/memory/dockyard/abc/cgroup.procs", "4242\n4243\n")
    assert cg.pids() == [4242, 4243]


def test_freeze_thaw(kernel):
    cg = V1Manager(kernel.root).create("/dockyard/abc")
    kernel.log.clear()
    cg.freeze()
    assert cg.is_frozen()
    cg.thaw()
    assert not cg.is_frozen()
    assert kernel.log == [("freezer/dockyard/abc/freezer.state", "FROZEN"),
                          ("freezer/dockyard/abc/freezer.state", "THAWED")]
    paths = cg.paths()
    del paths["freezer"]
    with pytest.raises(FailedPrecondition, match="freezer"):
        V1Cgroup(paths, root=kernel.root).freeze()


def test_kill_all_freezes_signals_thaws(kernel):
    cg = V1Manager(kernel.root).create("/dockyard/abc")
    proc = subprocess.Popen(["sleep", "30"])
    try:
        cg.add_pid(proc.pid)
        kernel.log.clear()
        cg.kill_all()
        assert proc.wait(timeout=5) == -9
        assert kernel.log == [("freezer/dockyard/abc/freezer.state", "FROZEN"),
                              ("freezer/dockyard/abc/freezer.state", "THAWED")]
    finally:
        proc.kill()
        proc.wait()


def test_destroy_leaves_nothing_and_load_round_trip(kernel):
    m = V1Manager(kernel.root)
    first = m.create("/dockyard/first")
    cg = m.create("/dockyard/abc")
    assert first.created()["pids"] == kernel.root + "/pids/dockyard"
    assert cg.created()["pids"] == kernel.root + "/pids/dockyard/abc"
    # destroy from another process: reopen from what the state file keeps
    again = cgroups.load(first.paths(), first.created(), root=kernel.root)
    assert isinstance(again, V1Cgroup) and again.paths() == first.paths()
    again.destroy()  # /dockyard still holds abc: it stays
    assert [d for d in cgroup_dirs(kernel.root) if "dockyard" in d] == sorted(
        f"{h}/dockyard{leaf}" for h in JOINED for leaf in ("", "/abc"))
    again.destroy()  # idempotent
    cg.destroy()  # abc did not create /dockyard: it stays
    assert [d for d in cgroup_dirs(kernel.root) if "dockyard" in d] == sorted(
        f"{h}/dockyard" for h in JOINED)
    with pytest.raises(InvalidArgument, match="not under"):
        m.load({"memory": "/etc/x"})


def test_destroy_removes_created_parents(kernel):
    cg = V1Manager(kernel.root).create("/dockyard/a/b")
    cg.destroy()
    assert cgroup_dirs(kernel.root) == kernel.baseline


def test_destroy_busy_is_reported(kernel):
    cg = V1Manager(kernel.root).create("/x")
    kernel._touch(kernel.root + "/pids/x/cgroup.procs", "999999\n")
    with pytest.raises(base.DockyardError, match=r"rmdir .*pids/x: Device or resource busy"):
        base.remove_tree(cg.paths()["pids"], timeout=0.05)
    kernel._touch(kernel.root + "/pids/x/cgroup.procs", "")
    cg.destroy()
    assert cgroup_dirs(kernel.root) == kernel.baseline


def test_stats(kernel):
    cg = V1Manager(kernel.root).create("/dockyard/abc")
    cg.apply(Resources(memory=Memory(limit=MiB), pids=Pids(7)))
    st = cg.stats()
    assert (st.memory_usage, st.memory_max_usage, st.memory_limit, st.memory_oom_kills,
            st.memory_inactive_file) == (2048, 4096, MiB, 1, 77)
    assert (st.pids_current, st.pids_limit) == (0, 7)
    assert (st.cpu_usage_ns, st.cpu_nr_periods, st.cpu_nr_throttled,
            st.cpu_throttled_time_ns) == (123456, 4, 2, 5000)


def test_relative_path_follows_own_cgroup_per_controller(kernel, tmp_path):
    proc = tmp_path / "self_cgroup"
    proc.write_text("5:memory:/process_api/xyz\n3:cpu,cpuacct:/\n1:name=systemd:/init.scope\n0::/\n")
    m = V1Manager(kernel.root, str(proc))
    p = m.resolve("ctr")
    assert p["memory"] == kernel.root + "/memory/process_api/xyz/ctr"
    assert p["cpu"] == kernel.root + "/cpu,cpuacct/ctr"
    assert p["name=systemd"] == kernel.root + "/systemd/init.scope/ctr"
    assert p["pids"] == kernel.root + "/pids/ctr"


@pytest.mark.parametrize("path", ["/", "/../memory", "machine.slice:dockyard:abc", "a/./../b"])
def test_bad_paths_create_nothing(kernel, path):
    with pytest.raises(InvalidArgument):
        V1Manager(kernel.root).create(path)
    assert cgroup_dirs(kernel.root) == kernel.baseline


def test_create_failure_cleans_up(kernel, monkeypatch):
    real = kernel.make_dir

    def fail_in_pids(path):
        if "/pids/" in path:
            raise OSError(errno.EACCES, "denied", path)
        real(path)

    monkeypatch.setattr(base, "make_dir", fail_in_pids)
    with pytest.raises(KernelError, match="mkdir .*/pids/dockyard: Permission denied"):
        V1Manager(kernel.root).create("/dockyard/abc")
    assert cgroup_dirs(kernel.root) == kernel.baseline
