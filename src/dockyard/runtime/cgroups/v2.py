"""cgroup v2: one directory in the unified tree (``<root>/dockyard/abc``).

A controller's files appear in a cgroup only when its parent lists the controller in
``cgroup.subtree_control``, so create enables every available controller on each ancestor, from
the root down to the leaf's parent (as runc does), whatever limits come later: stats need them too.
"""

from __future__ import annotations

import errno
import os

from dockyard.errors import DockyardError, FailedPrecondition, KernelError
from dockyard.runtime.cgroups import base
from dockyard.runtime.cgroups import resources as conv

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.oci.runtime_spec import Resources

SIGKILL = 9
KEY = ""  # paths() key, as /proc/<pid>/cgroup writes the unified hierarchy ("0::/path")


def enable_controllers(level: str, wanted: list[str]) -> list[str]:
    """Enable ``wanted`` in ``level``'s subtree_control; returns those enabled there afterwards.

    All at once first; if the kernel refuses one (e.g. cpu while a realtime task sits in the
    root), one by one, keeping those it accepts.
    """
    current = (base.read_opt(level + "/cgroup.subtree_control") or "").split()
    missing = [c for c in wanted if c not in current]
    if not missing:
        return [c for c in wanted if c in current]
    ctl = level + "/cgroup.subtree_control"
    try:
        base.write_file(ctl, " ".join("+" + c for c in missing))
        return list(wanted)
    except KernelError as e:
        if e.errno == errno.ENOENT and not os.path.exists(ctl):
            raise  # not a cgroup2 directory at all
    ok = [c for c in wanted if c in current]
    for c in missing:
        try:
            base.write_file(ctl, "+" + c)
            ok.append(c)
        except KernelError:
            pass
    return [c for c in wanted if c in ok]


class V2Manager:
    """Creates and reopens cgroups in the unified hierarchy mounted at ``root``."""

    version = "v2"

    def __init__(self, root: str = base.DEFAULT_ROOT,
                 proc_self_cgroup: str = base.PROC_SELF_CGROUP) -> None:
        self.root = root.rstrip("/") or "/"
        self.proc_self_cgroup = proc_self_cgroup

    def resolve(self, cgroups_path: str) -> dict[str, str]:
        """{"": directory} for ``linux.cgroupsPath`` (relative paths: under our own cgroup)."""
        absolute, comps = base.split_cgroups_path(cgroups_path)
        start = self.root
        if not absolute:
            own = base.own_cgroups(self.proc_self_cgroup).get(KEY, "/")
            start = base.join_under(self.root, [c for c in own.split("/") if c])
        return {KEY: base.join_under(start, comps)}

    def available(self) -> list[str]:
        return (base.read_opt(self.root + "/cgroup.controllers") or "").split()

    def create(self, cgroups_path: str) -> V2Cgroup:
        path = self.resolve(cgroups_path)[KEY]
        comps = path[len(self.root) + 1:].split("/")
        top = base.make_dirs(self.root, comps)
        cg = V2Cgroup(path, top, self.root)
        try:
            levels = [self.root]  # the root down to the leaf's parent
            for c in comps[:-1]:
                levels.append(levels[-1] + "/" + c)
            wanted = self.available()
            for level in levels:
                if not wanted:
                    break
                wanted = enable_controllers(level, wanted)
        except BaseException:
            try:
                cg.destroy()
            except DockyardError:
                pass
            raise
        return cg

    def load(self, paths: dict[str, str], created: dict[str, str] | None = None) -> V2Cgroup:
        """Reopen a cgroup from :meth:`V2Cgroup.paths` (and ``created``) saved in the state."""
        if KEY not in paths:
            raise FailedPrecondition(f"cgroup paths {paths!r} are not cgroup v2 paths")
        path = base.check_under(self.root, paths[KEY], "cgroup v2")
        top = (created or {}).get(KEY)
        if top is not None:
            top = base.check_under(self.root, top, "cgroup v2")
        return V2Cgroup(path, top, self.root)


class V2Cgroup:
    version = "v2"

    def __init__(self, path: str, created_top: str | None = None,
                 root: str = base.DEFAULT_ROOT) -> None:
        self.path = path
        self._top = created_top
        self.root = root

    def __repr__(self) -> str:
        return f"V2Cgroup({self.path!r})"

    def paths(self) -> dict[str, str]:
        return {KEY: self.path}

    def created(self) -> dict[str, str]:
        return {} if self._top is None else {KEY: self._top}

    # ---------------------------------------------------------------- limits

    def apply(self, resources: Resources) -> None:
        self._write_all(conv.v2_writes(resources))

    def update(self, resources: Resources) -> None:
        self._write_all(conv.v2_update_writes(resources))

    def _write_all(self, writes: list[tuple[str, str]]) -> None:
        for fname, value in writes:
            target = f"{self.path}/{fname}"
            try:
                base.write_file(target, value)
            except KernelError as e:
                ctrl = fname.split(".", 1)[0]
                if e.errno != errno.ENOENT or ctrl == "cgroup":
                    raise
                enabled = (base.read_opt(self.path + "/cgroup.controllers") or "").split()
                if ctrl in enabled:
                    raise
                raise FailedPrecondition(
                    f"write {value} to {target}: the {ctrl} controller is not enabled for "
                    f"{self.path} (it has: {' '.join(enabled) or 'none'})") from None

    # ---------------------------------------------------------------- processes

    def add_pid(self, pid: int) -> None:
        base.write_file(self.path + "/cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        return sorted(set(base.read_pids(self.path)))

    def _events(self) -> dict[str, int]:
        return base.kv_ints(base.read_opt(self.path + "/cgroup.events"))

    def _set_freeze(self, value: str, op: str, timeout: float) -> None:
        ctl = self.path + "/cgroup.freeze"
        if not os.path.exists(ctl):
            raise FailedPrecondition(f"{op} {self.path}: no cgroup.freeze (kernel older than 5.2?)")
        base.write_file(ctl, value)
        want = int(value)
        try:
            base.wait_for(lambda: self._events().get("frozen", want) == want, timeout,
                          f"{op} {self.path}")
        except DockyardError:
            if want:
                base.write_file(ctl, "0")
            raise

    def freeze(self, timeout: float = 5.0) -> None:
        """Write 1 to cgroup.freeze and wait for ``frozen 1`` in cgroup.events (thaw on timeout)."""
        self._set_freeze("1", "freeze", timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        self._set_freeze("0", "thaw", timeout)

    def is_frozen(self) -> bool:
        ev = self._events()
        if "frozen" in ev:
            return ev["frozen"] == 1
        return base.read_opt(self.path + "/cgroup.freeze") == "1"

    def kill_all(self, sig: int = SIGKILL) -> None:
        """SIGKILL through cgroup.kill when the kernel has it (5.14+: atomic, fork-proof);
        otherwise signal each process, frozen for SIGKILL so that no fork escapes."""
        if sig == SIGKILL and os.path.exists(self.path + "/cgroup.kill"):
            base.write_file(self.path + "/cgroup.kill", "1")
            return
        if not self.pids():
            return
        if sig != SIGKILL or not os.path.exists(self.path + "/cgroup.freeze"):
            base.signal_pids(self.pids(), sig)
            return
        try:
            if not self.is_frozen():
                self.freeze(timeout=1.0)
        except DockyardError:
            pass
        try:
            base.signal_pids(self.pids(), sig)
        finally:
            self.thaw()

    def destroy(self, kill: bool = False) -> None:
        """Remove the cgroup (and any below it) and the empty levels create made above it."""
        if kill:
            self.kill_all(SIGKILL)
            try:
                base.wait_for(lambda: not self.pids(), 1.0, "kill cgroup processes")
            except DockyardError:
                pass
        base.remove_tree(self.path)
        if self._top is not None and self._top != self.path:
            base.remove_created_parents(self.path, self._top)

    # ---------------------------------------------------------------- stats

    def stats(self) -> base.Stats:
        p = self.path
        cpu = base.kv_ints(base.read_opt(p + "/cpu.stat"))
        return base.Stats(
            memory_usage=base.int_or_none(base.read_opt(p + "/memory.current")) or 0,
            memory_max_usage=base.int_or_none(base.read_opt(p + "/memory.peak")) or 0,
            memory_limit=base.int_or_none(base.read_opt(p + "/memory.max")),
            memory_inactive_file=base.kv_ints(base.read_opt(p + "/memory.stat")).get("inactive_file", 0),
            memory_oom_kills=base.kv_ints(base.read_opt(p + "/memory.events")).get("oom_kill", 0),
            pids_current=base.int_or_none(base.read_opt(p + "/pids.current")) or 0,
            pids_limit=base.int_or_none(base.read_opt(p + "/pids.max")),
            cpu_usage_ns=cpu.get("usage_usec", 0) * 1000,
            cpu_nr_periods=cpu.get("nr_periods", 0),
            cpu_nr_throttled=cpu.get("nr_throttled", 0),
            cpu_throttled_time_ns=cpu.get("throttled_usec", 0) * 1000,
        )
