"""What the v1 and v2 managers share: the interface, the stats record, path rules and file I/O.

Every filesystem touch goes through the module-level functions here (``read_file``,
``write_file``, ``make_dir``, ``remove_dir``), called as ``base.make_dir(...)`` so that tests can
stand a temporary directory in for cgroupfs and simulate what the kernel does on mkdir.
"""

from __future__ import annotations

import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Protocol

    from dockyard.oci.runtime_spec import Resources
else:
    Protocol = object

from dockyard.errors import DockyardError, InvalidArgument, KernelError
from dockyard.record import Record

DEFAULT_ROOT = "/sys/fs/cgroup"
PROC_SELF_CGROUP = "/proc/self/cgroup"


class Stats(Record):
    """Resource usage of one cgroup (what ``docker stats`` shows). None = no limit / unknown."""

    memory_usage: int = 0
    memory_max_usage: int = 0
    memory_limit: int | None = None
    memory_inactive_file: int = 0
    memory_oom_kills: int = 0
    pids_current: int = 0
    pids_limit: int | None = None
    cpu_usage_ns: int = 0
    cpu_nr_periods: int = 0
    cpu_nr_throttled: int = 0
    cpu_throttled_time_ns: int = 0


class Cgroup(Protocol):
    """One container's cgroup, in every hierarchy (v1) or in the unified tree (v2)."""

    version: str

    def apply(self, resources: Resources) -> None: ...
    def update(self, resources: Resources) -> None: ...
    def add_pid(self, pid: int) -> None: ...
    def pids(self) -> list[int]: ...
    def freeze(self, timeout: float = 5.0) -> None: ...
    def thaw(self, timeout: float = 5.0) -> None: ...
    def is_frozen(self) -> bool: ...
    def kill_all(self, sig: int = 9) -> None: ...
    def destroy(self, kill: bool = False) -> None: ...
    def paths(self) -> dict[str, str]: ...
    def created(self) -> dict[str, str]: ...
    def stats(self) -> Stats: ...


class Manager(Protocol):
    """Creates and reopens cgroups under one cgroupfs root."""

    version: str
    root: str

    def resolve(self, cgroups_path: str) -> dict[str, str]: ...
    def create(self, cgroups_path: str) -> Cgroup: ...
    def load(self, paths: dict[str, str], created: dict[str, str] | None = None) -> Cgroup: ...


# ---------------------------------------------------------------- paths


def split_cgroups_path(cgroups_path: str) -> tuple[bool, list[str]]:
    """Validate ``linux.cgroupsPath``: (is it absolute, its components).

    Refuses the systemd ``slice:prefix:name`` form, ``..`` components, and paths naming a root.
    """
    if not cgroups_path:
        raise InvalidArgument("linux.cgroupsPath: empty (the caller must choose a default)")
    parts = cgroups_path.split(":")
    if len(parts) == 3 and "/" not in cgroups_path:
        raise InvalidArgument(
            f"linux.cgroupsPath {cgroups_path!r}: systemd cgroup paths (slice:prefix:name) need "
            "--systemd-cgroup, and no systemd manages cgroups here; give a path like /dockyard/<id>")
    comps = [c for c in cgroups_path.split("/") if c not in ("", ".")]
    if ".." in comps:
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r}: must not contain '..'")
    if "\0" in cgroups_path or "\n" in cgroups_path:
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r}: invalid character")
    if not comps:
        raise InvalidArgument(f"linux.cgroupsPath {cgroups_path!r}: refusing to use a cgroup root")
    return cgroups_path.startswith("/"), comps


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` → {controller: path}; the v2 line ("0::/x") is under key ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        if fields[1] == "":
            out[""] = fields[2]
            continue
        for ctrl in fields[1].split(","):
            out[ctrl] = fields[2]
    return out


def own_cgroups(proc_self_cgroup: str) -> dict[str, str]:
    return parse_proc_cgroup(read_file(proc_self_cgroup))


def join_under(base: str, comps: list[str]) -> str:
    """``base`` joined with validated components (never with ``/``: an absolute right side wins)."""
    return base.rstrip("/") + "/" + "/".join(comps) if comps else base


def check_under(root: str, path: str, what: str) -> str:
    """Refuse a stored path that is not strictly under ``root`` (state files are input too)."""
    norm = os.path.normpath(path)
    if not norm.startswith(root.rstrip("/") + "/") or ".." in norm.split("/"):
        raise InvalidArgument(f"cgroup path for {what} {path!r} is not under {root}")
    return norm


# ---------------------------------------------------------------- file I/O


def read_file(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode()
    except OSError as e:
        raise KernelError(f"read {path}", e.errno or errno.EIO) from None


def read_opt(path: str) -> str | None:
    """The file's stripped content, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read().decode().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise KernelError(f"read {path}", e.errno or errno.EIO) from None


def write_file(path: str, value: str) -> None:
    """One write(2) of ``value``; cgroupfs parses each write as a whole. Never creates the file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        raise KernelError(f"write {value} to {path}", e.errno or errno.EIO) from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise KernelError(f"write {value} to {path}", e.errno or errno.EIO) from None
    finally:
        os.close(fd)


def make_dir(path: str) -> None:
    os.mkdir(path, 0o755)


def remove_dir(path: str) -> None:
    os.rmdir(path)


def make_dirs(base: str, comps: list[str]) -> str | None:
    """Create ``base/comps...`` level by level; returns the topmost directory created, or None.

    ENOENT on a level is retried from the top: a concurrent destroy may have removed an empty
    parent (e.g. ``/dockyard``) between our levels.
    """
    for _attempt in range(5):
        top: str | None = None
        path = base.rstrip("/")
        try:
            for c in comps:
                path += "/" + c
                try:
                    make_dir(path)
                except FileExistsError:
                    continue
                if top is None:
                    top = path
            return top
        except OSError as e:
            if top is not None:  # undo our levels; best effort, the error below matters more
                try:
                    remove_tree(top, 0.0)
                except DockyardError:
                    pass
            if isinstance(e, FileNotFoundError):
                continue
            raise KernelError(f"mkdir {path}", e.errno or errno.EIO) from None
    raise KernelError(f"mkdir {path}", errno.ENOENT)


def read_pids(path: str) -> list[int]:
    """Processes in ``path`` and every cgroup below it."""
    out: list[int] = []
    text = read_opt(path + "/cgroup.procs")
    if text is None:
        return out
    out.extend(int(x) for x in text.split())
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return out
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            out.extend(read_pids(e.path))
    return out


def remove_tree(path: str, timeout: float = 1.0) -> None:
    """rmdir ``path`` and any cgroups below it, bottom-up, retrying EBUSY until ``timeout``.

    EBUSY means processes are still leaving (a killed task stays until it finishes exiting).
    """
    try:
        entries = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    except OSError as e:
        raise KernelError(f"list {path}", e.errno or errno.EIO) from None
    for child in entries:
        remove_tree(child, timeout)
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            remove_dir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise KernelError(f"rmdir {path}", e.errno or errno.EIO) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def remove_created_parents(leaf: str, top: str) -> None:
    """Remove the now-empty levels between ``leaf``'s parent and ``top`` (which we created).

    A level still holding other cgroups (another container under /dockyard) stays; no retry.
    """
    top = top.rstrip("/")
    path = os.path.dirname(leaf.rstrip("/"))
    while len(path) >= len(top) and (path == top or path.startswith(top + "/")):
        try:
            if any(e.is_dir(follow_symlinks=False) for e in os.scandir(path)):
                return
            remove_dir(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno in (errno.EBUSY, errno.ENOTEMPTY):
                return
            raise KernelError(f"rmdir {path}", e.errno or errno.EIO) from None
        path = os.path.dirname(path)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check()`` until true; DockyardError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not check():
        if time.monotonic() >= deadline:
            raise DockyardError(f"{what}: did not settle within {timeout:g}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except OSError as e:
            raise KernelError(f"kill -{sig} {pid}", e.errno or errno.EIO) from None


def kv_ints(text: str | None) -> dict[str, int]:
    """Parse "key value" lines (cpu.stat, memory.stat, memory.events) into ints."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def int_or_none(text: str | None) -> int | None:
    """A limit file's value: None for absent, "max" or the kernel's huge "unlimited"."""
    if text is None or text == "max" or text == "":
        return None
    try:
        v = int(text.split()[0])
    except ValueError:
        return None
    return None if v < 0 or v >= (1 << 62) else v
