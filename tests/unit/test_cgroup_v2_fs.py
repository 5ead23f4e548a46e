"""The v2 manager against a temporary directory standing in for a cgroup2 mount.

``FakeKernel`` stands in for what cgroupfs does behind the files: mkdir populates the interface
files (controller files only for controllers the parent enabled), ``+ctrl`` in subtree_control
adds to the set, cgroup.freeze is reflected in cgroup.events, cgroup.procs appends, and rmdir
refuses a cgroup with processes (EBUSY). Every write is logged in order.
"""

from __future__ import annotations

import errno
import os

import pytest

from dockyard.errors import DockyardError, FailedPrecondition, InvalidArgument
from dockyard.oci.runtime_spec import BlockIO, Cpu, Memory, Pids, Resources, ThrottleDevice
from dockyard.runtime import cgroups
from dockyard.runtime.cgroups import base
from dockyard.runtime.cgroups.v2 import V2Cgroup, V2Manager

CONTROLLER_FILES = {
    "memory": {"memory.max": "max", "memory.low": "0", "memory.swap.max": "max",
               "memory.current": "4096", "memory.peak": "8192",
               "memory.events": "low 0\nhigh 0\nmax 0\noom 1\noom_kill 2\n",
               "memory.stat": "anon 100\ninactive_file 300\n"},
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
            "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\n"
                        "nr_throttled 3\nthrottled_usec 250\n"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "1"},
    "io": {"io.weight": "default 100", "io.max": ""},
}


class FakeKernel:
    def __init__(self, root: str, controllers: str = "cpuset cpu io memory pids") -> None:
        self.root = root
        self.log: list[tuple[str, str]] = []
        os.makedirs(root)
        self._populate(root, controllers, top=True)
        self._real_write = base.write_file

    def _populate(self, d: str, controllers: str, top: bool = False) -> None:
        files = {"cgroup.controllers": controllers, "cgroup.subtree_control": "",
                 "cgroup.procs": "", "cgroup.kill": ""}
        if not top:
            files.update({"cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0\n"})
            for c in controllers.split():
                files.update(CONTROLLER_FILES.get(c, {}))
        for name, content in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(content)

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def read(self, rel: str) -> str:
        with open(os.path.join(self.root, rel)) as f:
            return f.read()

    def make_dir(self, path: str) -> None:
        os.mkdir(path)
        parent = os.path.dirname(path)
        with open(os.path.join(parent, "cgroup.subtree_control")) as f:
            self._populate(path, f.read())

    def remove_dir(self, path: str) -> None:
        if any(e.is_dir() for e in os.scandir(path)):
            raise OSError(errno.EBUSY, "busy", path)
        with open(os.path.join(path, "cgroup.procs")) as f:
            if f.read().strip():
                raise OSError(errno.EBUSY, "busy", path)
        for e in os.scandir(path):
            os.unlink(e.path)
        os.rmdir(path)

    def write_file(self, path: str, value: str) -> None:
        self.log.append((self.rel(path), value))
        name = os.path.basename(path)
        d = os.path.dirname(path)
        if name == "cgroup.subtree_control":
            with open(os.path.join(d, "cgroup.controllers")) as f:
                avail = f.read().split()
            with open(path) as f:
                cur = f.read().split()
            for tok in value.split():
                if tok[1:] not in avail:
                    raise base.KernelError(f"write {value} to {path}", errno.ENOENT)
                if tok[0] == "+" and tok[1:] not in cur:
                    cur.append(tok[1:])
            value = " ".join(c for c in avail if c in cur)
            for e in os.scandir(d):  # children see the new set and get its files
                if e.is_dir():
                    with open(os.path.join(e.path, "cgroup.controllers"), "w") as f:
                        f.write(value)
                    for c in cur:
                        for fname, content in CONTROLLER_FILES.get(c, {}).items():
                            if not os.path.exists(os.path.join(e.path, fname)):
                                with open(os.path.join(e.path, fname), "w") as f:
                                    f.write(content)
        elif name == "cgroup.procs":
            with open(path) as f:
                value = f.read() + value + "\n"
        elif name == "cgroup.freeze":
            with open(os.path.join(d, "cgroup.events"), "w") as f:
                f.write(f"populated 0\nfrozen {value}\n")
        self._real_write(path, value)


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    k = FakeKernel(str(tmp_path / "cgroup"))
    monkeypatch.setattr(base, "make_dir", k.make_dir)
    monkeypatch.setattr(base, "remove_dir", k.remove_dir)
    monkeypatch.setattr(base, "write_file", k.write_file)
    return k


def test_detect(tmp_path):
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cgroup.controllers").write_text("memory\n")
    (tmp_path / "v1" / "memory").mkdir(parents=True)
    assert cgroups.detect(str(tmp_path / "v2")) == "v2"
    assert cgroups.detect(str(tmp_path / "v1")) == "v1"
    assert isinstance(cgroups.open_manager(str(tmp_path / "v2")), V2Manager)


def test_create_enables_controllers_down_to_the_parent(kernel):
    cg = V2Manager(kernel.root).create("/dockyard/abc")
    assert cg.paths() == {"": kernel.root + "/dockyard/abc"}
    assert cg.created() == {"": kernel.root + "/dockyard"}
    assert kernel.log == [
        ("cgroup.subtree_control", "+cpuset +cpu +io +memory +pids"),
        ("dockyard/cgroup.subtree_control", "+cpuset +cpu +io +memory +pids"),
    ]
    assert kernel.read("dockyard/abc/cgroup.controllers") == "cpuset cpu io memory pids"
    assert kernel.read("dockyard/abc/cgroup.subtree_control") == ""  # never on the leaf


def test_create_skips_enabled_and_keeps_existing_parent(kernel):
    m = V2Manager(kernel.root)
    first = m.create("/dockyard/one")
    kernel.log.clear()
    second = m.create("/dockyard/two")
    assert kernel.log == []  # already enabled everywhere
    assert second.created() == {"": kernel.root + "/dockyard/two"}
    second.destroy()
    assert os.path.isdir(kernel.root + "/dockyard/one")
    first.destroy()
    assert not os.path.exists(kernel.root + "/dockyard")


def test_create_keeps_controllers_the_kernel_refuses(tmp_path, monkeypatch):
    k = FakeKernel(str(tmp_path / "cg"), controllers="cpu memory")
    monkeypatch.setattr(base, "make_dir", k.make_dir)
    monkeypatch.setattr(base, "write_file", k.write_file)
    real = k.write_file

    def refuse_cpu(path, value):
        if path.endswith("subtree_control") and "+cpu" in value.split():
            k.log.append((k.rel(path), value))
            raise base.KernelError(f"write {value} to {path}", errno.EINVAL)
        real(path, value)

    monkeypatch.setattr(base, "write_file", refuse_cpu)
    cg = V2Manager(k.root).create("/a/b")
    assert k.log == [("cgroup.subtree_control", "+cpu +memory"), ("cgroup.subtree_control", "+cpu"),
                     ("cgroup.subtree_control", "+memory"), ("a/cgroup.subtree_control", "+memory")]
    assert k.read("a/b/cgroup.controllers") == "memory"
    with pytest.raises(FailedPrecondition, match="cpu controller is not enabled"):
        cg.apply(Resources(cpu=Cpu(shares=1024)))


def test_apply_writes_exact_contents(kernel):
    cg = V2Manager(kernel.root).create("/dockyard/abc")
    kernel.log.clear()
    cg.apply(Resources(
        memory=Memory(limit=64 << 20, swap=96 << 20, reservation=1 << 20),
        cpu=Cpu(shares=1024, quota=50000, period=100000, cpus="0", mems="0"),
        pids=Pids(100),
        block_io=BlockIO(weight=500, throttle_read_bps_device=(ThrottleDevice(8, 0, 1000),)),
        unified=(("memory.low", "2M"),),
    ))
    leaf = "dockyard/abc/"
    assert kernel.log == [
        (leaf + "cpuset.cpus", "0"), (leaf + "cpuset.mems", "0"),
        (leaf + "memory.max", str(64 << 20)), (leaf + "memory.swap.max", str(32 << 20)),
        (leaf + "memory.low", str(1 << 20)), (leaf + "cpu.weight", "39"),
        (leaf + "cpu.max", "50000 100000"), (leaf + "pids.max", "100"),
        (leaf + "io.weight", "4950"), (leaf + "io.max", "8:0 rbps=1000"),
        (leaf + "memory.low", "2M"),
    ]
    assert kernel.read(leaf + "memory.max") == str(64 << 20)
    assert kernel.read(leaf + "memory.low") == "2M"  # unified overrides
    assert kernel.read(leaf + "cpu.max") == "50000 100000"
    cg.update(Resources(pids=Pids(0), cpu=Cpu(quota=-1, period=100000)))
    assert kernel.read(leaf + "pids.max") == "max"
    assert kernel.read(leaf + "cpu.max") == "max 100000"


def test_add_pid_pids_and_stats(kernel):
    cg = V2Manager(kernel.root).create("/dockyard/abc")
    cg.add_pid(12345)
    cg.add_pid(12346)
    os.mkdir(kernel.root + "/dockyard/abc/sub")  # a cgroup the container made inside
    with open(kernel.root + "/dockyard/abc/sub/cgroup.procs", "w") as f:
        f.write("12347\n")
    assert cg.pids() == [12345, 12346, 12347]
    st = cg.stats()
    assert (st.memory_usage, st.memory_max_usage, st.memory_limit, st.memory_oom_kills,
            st.memory_inactive_file) == (4096, 8192, None, 2, 300)
    assert (st.pids_current, st.pids_limit) == (1, None)
    assert (st.cpu_usage_ns, st.cpu_nr_periods, st.cpu_nr_throttled,
            st.cpu_throttled_time_ns) == (1_500_000, 7, 3, 250_000)
    cg.apply(Resources(memory=Memory(limit=1 << 20), pids=Pids(9)))
    st = cg.stats()
    assert (st.memory_limit, st.pids_limit) == (1 << 20, 9)


def test_freeze_and_thaw(kernel):
    cg = V2Manager(kernel.root).create("/dockyard/abc")
    kernel.log.clear()
    assert not cg.is_frozen()
    cg.freeze()
    assert cg.is_frozen()
    assert kernel.read("dockyard/abc/cgroup.freeze") == "1"
    cg.thaw()
    assert not cg.is_frozen()
    assert kernel.log == [("dockyard/abc/cgroup.freeze", "1"), ("dockyard/abc/cgroup.freeze", "0")]


def test_freeze_timeout_thaws_again(kernel, monkeypatch):
    cg = V2Manager(kernel.root).create("/dockyard/abc")
    real = kernel.write_file

    def stuck(path, value):  # the kernel never reports frozen
        if path.endswith("cgroup.freeze"):
            kernel.log.append((kernel.rel(path), value))
            with open(path, "w") as f:
                f.write(value)
            return
        real(path, value)

    monkeypatch.setattr(base, "write_file", stuck)
    kernel.log.clear()
    with pytest.raises(DockyardError, match="freeze .*did not settle"):
        cg.freeze(timeout=0.05)
    assert kernel.log == [("dockyard/abc/cgroup.freeze", "1"), ("dockyard/abc/cgroup.freeze", "0")]


def test_kill_all_uses_cgroup_kill(kernel):
    cg = V2Manager(kernel.root).create("/dockyard/abc")
    kernel.log.clear()
    cg.kill_all()
    assert kernel.log == [("dockyard/abc/cgroup.kill", "1")]


def test_destroy_removes_created_levels_only(kernel):
    kernel.make_dir(kernel.root + "/keep")
    cg = V2Manager(kernel.root).create("/keep/dockyard/abc")
    assert cg.created() == {"": kernel.root + "/keep/dockyard"}
    cg.destroy()
    assert [e.name for e in os.scandir(kernel.root + "/keep") if e.is_dir()] == []
    assert os.path.isdir(kernel.root + "/keep")
    cg.destroy()  # idempotent


def test_destroy_retries_ebusy_then_reports(kernel):
    cg = V2Manager(kernel.root).create("/dockyard/abc")
    cg.add_pid(999999)
    with pytest.raises(DockyardError, match="rmdir .*dockyard/abc"):
        base.remove_tree(cg.path, timeout=0.05)
    with open(cg.path + "/cgroup.procs", "w"):
        pass  # the process left
    cg.destroy()
    assert os.listdir(kernel.root) and not os.path.exists(kernel.root + "/dockyard")


def test_load_round_trip(kernel):
    m = V2Manager(kernel.root)
    cg = m.create("/dockyard/abc")
    again = cgroups.load(cg.paths(), cg.created(), root=kernel.root)
    assert isinstance(again, V2Cgroup) and again.path == cg.path
    again.destroy()
    assert not os.path.exists(kernel.root + "/dockyard")
    with pytest.raises(InvalidArgument):
        m.load({"": "/etc"})


def test_relative_path_under_own_cgroup(kernel, tmp_path):
    proc = tmp_path / "self_cgroup"
    proc.write_text("0::/user.slice/session\n")
    m = V2Manager(kernel.root, str(proc))
    assert m.resolve("ctr/abc") == {"": kernel.root + "/user.slice/session/ctr/abc"}
    assert m.resolve("/ctr/abc") == {"": kernel.root + "/ctr/abc"}


@pytest.mark.parametrize("path,match", [
    ("system.slice:docker:abc", "--systemd-cgroup"),
    ("/", "root"),
    ("//./", "root"),
    ("/a/../../etc", r"\.\."),
    ("", "empty"),
])
def test_bad_cgroups_paths(kernel, path, match):
    with pytest.raises(InvalidArgument, match=match):
        V2Manager(kernel.root).create(path)
    assert sorted(os.listdir(kernel.root)) == sorted(
        ["cgroup.controllers", "cgroup.subtree_control", "cgroup.procs", "cgroup.kill"])
