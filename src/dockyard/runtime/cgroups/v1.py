"""cgroup v1: one directory per hierarchy (``<root>/memory/dockyard/abc``, ``<root>/cpu,cpuacct/...``).

Hierarchies are discovered by listing the root: each entry that is a mounted hierarchy (it has a
``cgroup.procs``) names its controllers, comma-separated when co-mounted (``cpu,cpuacct``), and
symlinks (``cpu -> cpu,cpuacct``) resolve to the same directory. ``systemd`` is the named
``name=systemd`` hierarchy, joined like runc does; so is ``unified`` (the hybrid cgroup2 tree, key
``"unified"``), best effort as in runc 1.1: a container gets its own cgroup2 cgroup too.
"""

from __future__ import annotations

import errno
import os
import time

from dockyard.errors import DockyardError, FailedPrecondition, KernelError
from dockyard.runtime.cgroups import base
from dockyard.runtime.cgroups import resources as conv

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.oci.runtime_spec import Resources

KNOWN_CONTROLLERS = frozenset((
    "cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
    "net_cls", "net_prio", "perf_event", "rdma", "misc",
))
SYSTEMD = "name=systemd"
UNIFIED = "unified"  # the hybrid host's cgroup2 tree, <root>/unified
SIGKILL = 9


def discover(root: str) -> dict[str, str]:
    """{controller: hierarchy mount directory} for the v1 hierarchies mounted under ``root``."""
    out: dict[str, str] = {}
    real_root = os.path.realpath(root)
    try:
        names = sorted(os.listdir(root))
    except OSError as e:
        raise KernelError(f"list {root}", e.errno or errno.EIO) from None
    for name in names:
        full = root + "/" + name
        real = os.path.realpath(full)
        if os.path.dirname(real) != real_root:
            continue  # a symlink out of the root: not a hierarchy we manage
        canonical = os.path.basename(real)
        mount = root + "/" + canonical
        if not os.path.isfile(mount + "/cgroup.procs"):
            continue
        for ctrl in canonical.split(","):
            if ctrl == "systemd":
                ctrl = SYSTEMD
            elif ctrl not in KNOWN_CONTROLLERS:
                continue
            out.setdefault(ctrl, mount)
    return out


class V1Manager:
    """Creates and reopens v1 cgroups under ``root`` (a temp dir in tests)."""

    version = "v1"

    def __init__(self, root: str = base.DEFAULT_ROOT,
                 proc_self_cgroup: str = base.PROC_SELF_CGROUP) -> None:
        self.root = root.rstrip("/") or "/"
        self.proc_self_cgroup = proc_self_cgroup
        self._mounts: dict[str, str] | None = None

    def hierarchies(self) -> dict[str, str]:
        if self._mounts is None:
            self._mounts = discover(self.root)
            unified = self.root + "/" + UNIFIED
            if self._mounts and os.path.isfile(unified + "/cgroup.controllers"):
                self._mounts[UNIFIED] = unified
        return self._mounts

    def resolve(self, cgroups_path: str) -> dict[str, str]:
        """{controller: directory} for ``linux.cgroupsPath``, without touching the filesystem.

        Absolute paths are under each hierarchy's root; relative ones under the runtime's own
        cgroup in that hierarchy (from /proc/self/cgroup).
        """
        absolute, comps = base.split_cgroups_path(cgroups_path)
        mounts = self.hierarchies()
        if not mounts:
            raise FailedPrecondition(f"no cgroup v1 hierarchies are mounted under {self.root}")
        own = {} if absolute else base.own_cgroups(self.proc_self_cgroup)
        out: dict[str, str] = {}
        for ctrl, mount in mounts.items():
            start = mount
            if not absolute:
                mine = [c for c in own.get("" if ctrl == UNIFIED else ctrl, "/").split("/") if c]
                start = base.join_under(mount, mine)
            out[ctrl] = base.join_under(start, comps)
        return out

    def create(self, cgroups_path: str) -> V1Cgroup:
        """Make the cgroup's directory in every hierarchy; cpuset levels get cpus/mems from above."""
        paths = self.resolve(cgroups_path)
        mounts = self.hierarchies()
        created: dict[str, str] = {}
        tops: dict[str, str | None] = {}
        cg = V1Cgroup(paths, created, self.root)
        try:
            for ctrl, path in list(paths.items()):
                mount = mounts[ctrl]
                fresh = path not in tops
                if fresh and ctrl == UNIFIED:
                    try:  # runc ignores a unified tree it cannot use (read-only, delegated)
                        tops[path] = base.make_dirs(mount, path[len(mount) + 1:].split("/"))
                    except DockyardError:
                        del paths[ctrl]
                        continue
                elif fresh:
                    tops[path] = base.make_dirs(mount, path[len(mount) + 1:].split("/"))
                top = tops[path]
                if top is not None:
                    created[ctrl] = top
                if fresh and "cpuset" in mount.rsplit("/", 1)[1].split(","):
                    _init_cpuset(mount, path[len(mount) + 1:].split("/"))
        except BaseException:
            try:
                cg.destroy()
            except DockyardError:
                pass
            raise
        return cg

    def load(self, paths: dict[str, str], created: dict[str, str] | None = None) -> V1Cgroup:
        """Reopen a cgroup from :meth:`V1Cgroup.paths` (and ``created``) saved in the state."""
        for ctrl, p in list(paths.items()) + list((created or {}).items()):
            base.check_under(self.root, p, ctrl)
        return V1Cgroup(dict(paths), dict(created or {}), self.root)


def _init_cpuset(mount: str, comps: list[str]) -> None:
    """v1 refuses tasks in a cpuset whose cpus/mems are empty, and a new level starts empty."""
    parent = mount
    for c in comps:
        level = parent + "/" + c
        for fname in ("cpuset.cpus", "cpuset.mems"):
            cur = base.read_opt(level + "/" + fname)
            if not cur:
                base.write_file(level + "/" + fname, base.read_file(parent + "/" + fname).strip())
        parent = level


class V1Cgroup:
    """A container's cgroup across the v1 hierarchies: {controller: directory}."""

    version = "v1"

    def __init__(self, paths: dict[str, str], created: dict[str, str] | None = None,
                 root: str = base.DEFAULT_ROOT) -> None:
        self._paths = paths
        self._created = created if created is not None else {}
        self.root = root

    def __repr__(self) -> str:
        return f"V1Cgroup({self._paths!r})"

    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    def created(self) -> dict[str, str]:
        """{controller: topmost directory this cgroup's create made} — what destroy may remove."""
        return dict(self._created)

    def _dirs(self) -> list[str]:
        """Each hierarchy's directory once (co-mounted controllers share one)."""
        out: list[str] = []
        for p in self._paths.values():
            if p not in out:
                out.append(p)
        return out

    # ---------------------------------------------------------------- limits

    def apply(self, resources: Resources) -> None:
        self._write_all(conv.v1_writes(resources))

    def update(self, resources: Resources) -> None:
        self._write_all(conv.v1_update_writes(resources))

    def _write_all(self, writes: list[tuple[str, str, str]]) -> None:
        mem = self._paths.get("memory")
        if mem is not None and sum(w[0] == "memory" for w in writes) > 1:
            cur_limit = base.int_or_none(base.read_opt(mem + "/memory.limit_in_bytes"))
            cur_memsw = base.int_or_none(base.read_opt(mem + "/memory.memsw.limit_in_bytes"))
            writes = conv.order_v1_memory(writes, -1 if cur_limit is None else cur_limit,
                                          -1 if cur_memsw is None else cur_memsw)
        for ctrl, fname, value in writes:
            d = self._paths.get(ctrl)
            if d is None:
                if ctrl == "devices":
                    continue  # every default spec has device rules; runc skips them likewise
                raise FailedPrecondition(
                    f"set {fname}={value}: cgroup controller {ctrl} is not mounted under {self.root}")
            if fname in ("blkio.weight", "blkio.weight_device") \
                    and not os.path.exists(f"{d}/{fname}") \
                    and os.path.exists(f"{d}/blkio.bfq.{fname[6:]}"):
                fname = "blkio.bfq." + fname[6:]  # CFQ is gone since 5.0; BFQ has the same scale
            try:
                base.write_file(f"{d}/{fname}", value)
            except KernelError as e:
                if e.errno == errno.ENOENT and fname == "memory.memsw.limit_in_bytes":
                    continue  # swap accounting is off (swapaccount=0): nothing to limit
                raise

    # ---------------------------------------------------------------- processes

    def add_pid(self, pid: int) -> None:
        for d in self._dirs():
            base.write_file(d + "/cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        seen: set[int] = set()
        for d in self._dirs():
            seen.update(base.read_pids(d))
        return sorted(seen)

    def _freezer(self, op: str) -> str:
        d = self._paths.get("freezer")
        if d is None:
            raise FailedPrecondition(f"{op}: the freezer cgroup controller is not mounted under {self.root}")
        return d + "/freezer.state"

    def freeze(self, timeout: float = 5.0) -> None:
        """Write FROZEN and wait until the state leaves FREEZING (re-asking now and then, as runc
        does: a task in a racy spot can make one request stall). Thaws again on timeout."""
        state = self._freezer("freeze")
        deadline = time.monotonic() + timeout
        n = 0
        while True:
            if n % 50 == 0:
                base.write_file(state, "FROZEN")
            if base.read_file(state).strip() == "FROZEN":
                return
            if time.monotonic() >= deadline:
                base.write_file(state, "THAWED")
                raise DockyardError(f"freeze {state}: still FREEZING after {timeout:g}s; thawed again")
            n += 1
            time.sleep(0.001 if n < 10 else 0.01)

    def thaw(self, timeout: float = 5.0) -> None:
        state = self._freezer("thaw")
        base.write_file(state, "THAWED")
        base.wait_for(lambda: base.read_file(state).strip() == "THAWED", timeout, f"thaw {state}")

    def is_frozen(self) -> bool:
        d = self._paths.get("freezer")
        return d is not None and base.read_opt(d + "/freezer.state") == "FROZEN"

    def kill_all(self, sig: int = SIGKILL) -> None:
        """Signal every process. For SIGKILL freeze first (no fork can escape the sweep), then
        thaw: v1 frozen tasks only die once thawed."""
        if not self.pids():
            return
        if sig != SIGKILL or "freezer" not in self._paths:
            base.signal_pids(self.pids(), sig)
            return
        try:
            if not self.is_frozen():
                self.freeze(timeout=1.0)
        except DockyardError:
            pass  # kill anyway
        try:
            base.signal_pids(self.pids(), sig)
        finally:
            self.thaw()

    def destroy(self, kill: bool = False) -> None:
        """Remove the cgroup (and any below it) in every hierarchy, then the empty parent levels
        create made. Missing directories are fine: destroy is idempotent."""
        if kill:
            self.kill_all(SIGKILL)
            try:
                base.wait_for(lambda: not self.pids(), 1.0, "kill cgroup processes")
            except DockyardError:
                pass  # remove_tree retries EBUSY and reports what stays
        problems: list[str] = []
        for d in self._dirs():
            try:
                base.remove_tree(d)
            except DockyardError as e:
                problems.append(str(e))
        for ctrl, top in self._created.items():
            leaf = self._paths.get(ctrl)
            if leaf is not None and leaf != top:
                try:
                    base.remove_created_parents(leaf, top)
                except DockyardError as e:
                    problems.append(str(e))
        if problems:
            raise DockyardError("destroy cgroup: " + "; ".join(problems))

    # ---------------------------------------------------------------- stats

    def stats(self) -> base.Stats:
        mem = self._paths.get("memory")
        pids = self._paths.get("pids")
        cpu = self._paths.get("cpu")
        acct = self._paths.get("cpuacct")
        kw: dict[str, Any] = {}
        if mem is not None:
            kw["memory_usage"] = base.int_or_none(base.read_opt(mem + "/memory.usage_in_bytes")) or 0
            kw["memory_max_usage"] = base.int_or_none(
                base.read_opt(mem + "/memory.max_usage_in_bytes")) or 0
            kw["memory_limit"] = base.int_or_none(base.read_opt(mem + "/memory.limit_in_bytes"))
            kw["memory_oom_kills"] = base.kv_ints(base.read_opt(mem + "/memory.oom_control")).get(
                "oom_kill", 0)
            kw["memory_inactive_file"] = base.kv_ints(base.read_opt(mem + "/memory.stat")).get(
                "total_inactive_file", 0)
        if pids is not None:
            kw["pids_current"] = base.int_or_none(base.read_opt(pids + "/pids.current")) or 0
            kw["pids_limit"] = base.int_or_none(base.read_opt(pids + "/pids.max"))
        if acct is not None:
            kw["cpu_usage_ns"] = base.int_or_none(base.read_opt(acct + "/cpuacct.usage")) or 0
        if cpu is not None:
            st = base.kv_ints(base.read_opt(cpu + "/cpu.stat"))
            kw["cpu_nr_periods"] = st.get("nr_periods", 0)
            kw["cpu_nr_throttled"] = st.get("nr_throttled", 0)
            kw["cpu_throttled_time_ns"] = st.get("throttled_time", 0)
        return base.Stats(**kw)
