"""Container state on disk and the status state machine.

    <root>/<id>/state.json   the persisted state, written atomically (tmp, fsync, rename, fsync dir)
    <root>/<id>/exec.fifo    exists between create and start: init blocks reading it

The status is derived from facts each time it is read (is the init pid alive and the same process,
does the fifo exist, is the freezer frozen), so a crash of any runtime process cannot leave a
stale status behind. Allowed transitions are explicit.
"""

from __future__ import annotations

import errno
import os
import time

from dockyard import leanjson as json
from dockyard.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from dockyard.record import Record

OCI_VERSION = "1.2.0"
CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"
TRANSITIONS: dict[str, frozenset[str]] = {
    CREATING: frozenset({CREATED, STOPPED}),
    CREATED: frozenset({RUNNING, STOPPED}),
    RUNNING: frozenset({PAUSED, STOPPED}),
    PAUSED: frozenset({RUNNING, STOPPED}),
    STOPPED: frozenset(),
}
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_transition(current: str, target: str, container_id: str) -> None:
    if target not in TRANSITIONS[current]:
        raise FailedPrecondition(f"container {container_id} is {current}: cannot move to {target}")


def validate_id(container_id: str) -> None:
    if not container_id or not _ID_CHARS.issuperset(container_id) or container_id in (".", ".."):
        raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits, _ + - .")


class ContainerState(Record):
    id: str
    bundle: str
    rootfs: str
    pid: int  # host pid of the container's init; 0 while creating
    start_time: int  # init's start time in clock ticks (/proc/<pid>/stat field 22), for pid reuse
    created: str  # RFC 3339
    owner: str
    annotations: tuple[tuple[str, str], ...]
    cgroup_paths: tuple[tuple[str, str], ...]  # controller -> directory
    cgroup_version: str
    cgroup_created: tuple[tuple[str, str], ...]  # levels this container made (removed at delete)
    namespaces: tuple[tuple[str, str], ...]  # type -> path joined ("" = new)
    config: str  # the bundle's config.json as given at create (exec takes defaults from it)
    status: str  # persisted; ``derive_status`` refines it
    use_fifo: bool = True

    def to_json(self) -> dict:
        return {
            "id": self.id, "bundle": self.bundle, "rootfs": self.rootfs, "pid": self.pid,
            "start_time": self.start_time, "created": self.created, "owner": self.owner,
            "annotations": dict(self.annotations), "cgroup_paths": dict(self.cgroup_paths),
            "cgroup_version": self.cgroup_version, "cgroup_created": dict(self.cgroup_created),
            "namespaces": dict(self.namespaces),
            "config": self.config, "status": self.status, "use_fifo": self.use_fifo,
        }

    @classmethod
    def from_json(cls, d: dict) -> ContainerState:
        return cls(
            id=d["id"], bundle=d["bundle"], rootfs=d["rootfs"], pid=d["pid"],
            start_time=d["start_time"], created=d["created"], owner=d.get("owner", ""),
            annotations=tuple(d.get("annotations", {}).items()),
            cgroup_paths=tuple(d.get("cgroup_paths", {}).items()),
            cgroup_version=d.get("cgroup_version", "v1"),
            cgroup_created=tuple(d.get("cgroup_created", {}).items()),
            namespaces=tuple(d.get("namespaces", {}).items()), config=d["config"],
            status=d["status"], use_fifo=d.get("use_fifo", True),
        )


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None if the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def write_atomic(path: str, data: bytes, *, durable: bool = True, mode: int = 0o600) -> None:
    """Write to a temporary name, then rename: readers see the old or the new file, never half.

    ``durable`` adds fsync of the file and of its directory, for files that must survive power
    loss. Runtime state and pid files live in /run and describe processes that a power loss
    ends anyway, so the runtime writes them without (as runc does): rename alone already keeps
    them whole across a crash of any process. ``mode``: the file's permissions, exactly (not
    narrowed by the umask).
    """
    tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        if mode != 0o600:
            os.fchmod(fd, mode)
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if not durable:
        return
    dfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class StateDir:
    """The runtime's --root: one directory per container."""

    def __init__(self, root: str) -> None:
        self.root = root

    def dir(self, container_id: str) -> str:
        validate_id(container_id)
        return f"{self.root}/{container_id}"

    def state_file(self, container_id: str) -> str:
        return f"{self.dir(container_id)}/state.json"

    def fifo(self, container_id: str) -> str:
        return f"{self.dir(container_id)}/exec.fifo"

    def reserve(self, container_id: str) -> str:
        """Create the container's directory; AlreadyExists if the id is taken."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        d = self.dir(container_id)
        try:
            os.mkdir(d, 0o711)
        except FileExistsError:
            raise AlreadyExists(f"container with id {container_id} already exists") from None
        return d

    def save(self, st: ContainerState) -> None:
        write_atomic(self.state_file(st.id), json.dumps(st.to_json()).encode(), durable=False)

    def load(self, container_id: str) -> ContainerState:
        try:
            with open(self.state_file(container_id), "rb") as f:
                return ContainerState.from_json(json.loads(f.read()))
        except FileNotFoundError:
            raise NotFound(f"container {container_id} does not exist") from None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise FailedPrecondition(f"state of container {container_id} is unreadable "
                                     f"({self.state_file(container_id)}): {e}") from None

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if os.path.exists(f"{self.root}/{n}/state.json"))

    def remove(self, container_id: str) -> None:
        d = self.dir(container_id)
        for name in os.listdir(d) if os.path.isdir(d) else ():
            try:
                os.unlink(f"{d}/{name}")
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass


def init_alive(st: ContainerState) -> bool:
    return st.pid > 0 and proc_start_time(st.pid) == st.start_time


def derive_status(states: StateDir, st: ContainerState, frozen: bool | None = None) -> str:
    """The status now. ``frozen`` is the freezer's answer, asked only when it matters."""
    if st.status == CREATING:
        return CREATING if st.pid == 0 or init_alive(st) else STOPPED
    if not init_alive(st):
        return STOPPED
    if st.use_fifo and os.path.exists(states.fifo(st.id)):
        return CREATED
    if frozen:
        return PAUSED
    return RUNNING


def open_cgroup(cur: ContainerState):  # -> Cgroup
    """Reopen the container's cgroup from its recorded paths (kill, pause, delete, exec)."""
    from dockyard.runtime.cgroups import load

    return load(dict(cur.cgroup_paths), dict(cur.cgroup_created))
