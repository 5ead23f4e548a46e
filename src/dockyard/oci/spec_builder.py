"""The runtime-spec ``config.json`` of a container, built from an image config and run options the
way Docker's engine builds it for ``docker run`` (moby ``oci/defaults.go`` and
``daemon/oci_linux.go``; checked against the config.json dockerd 20.10 hands to containerd on this
machine, see ``tests/unit/test_spec_builder.py``).

Pure: no file, no kernel, no clock. What needs the container's files is done by the caller and
passed in: a user *name* is resolved through the rootfs's ``/etc/passwd`` and ``/etc/group`` by
``image.bundle.resolve_user`` (the result is a :class:`ResolvedUser`); the host's hostname for
``--network host`` comes in ``RunOptions.hostname``; joining another container's namespaces comes
in as ``RunOptions.namespace_paths``.

Deliberate differences from dockerd's output, all of the "leave unset" kind: zero-valued resource
fields (``cpu.shares: 0``, ``blockIO.weight: 0``, ``memory.disableOOMKiller: false``) are omitted,
since they mean "unset" and a runtime must not write 0 to ``cpu.shares``; the
``/etc/resolv.conf``, ``/etc/hostname`` and ``/etc/hosts`` bind mounts and the seccomp profile
are the network's and the security layer's and arrive through ``RunOptions.mounts`` and
``RunOptions.seccomp``; no AppArmor profile (not enabled on this host). ``/sys/devices/virtual/
powercap`` is masked, as Docker 25+ does (20.10 predates it).

``RunOptions`` is the engine's ``docker run`` flag set; it grows field by field with defaults
that keep the Docker-default container, so existing callers never change.
"""

from __future__ import annotations

import posixpath
import signal as _signal

from dockyard.errors import InvalidArgument
from dockyard.oci.runtime_spec import CAPABILITIES, NAMESPACE_TYPES, Mount
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.oci.image_config import ImageConfig

#: What dockerd writes (every field built here exists in runtime-spec 1.0.2).
OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: moby ``oci/caps.DefaultCapabilities``, in its order.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
#: moby ``oci.DefaultLinuxSpec`` device cgroup rules: deny all, then the default nodes (zero,
#: null, urandom, random, tty, console), and fuse explicitly denied. The runtime adds runc's
#: usual allowances (mknod, ptys, tun) itself.
DEFAULT_DEVICE_RULES: tuple[dict, ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
)
#: Set by dockerd 20.10+ in every container with its own network namespace: ports below 1024
#: bindable and ICMP echo sockets usable without capabilities (both only inside that namespace).
NETWORK_SYSCTLS = (("net.ipv4.ip_unprivileged_port_start", "0"),
                   ("net.ipv4.ping_group_range", "0 2147483647"))
#: The uid/gid range Docker (runc's libcontainer/user) accepts: 0 .. 2^31-1.
ID_MAX = 2**31 - 1
#: ``docker run --ulimit`` names -> RLIMIT_*.
ULIMIT_NAMES = {n: f"RLIMIT_{n.upper()}" for n in (
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")}
MIN_MEMORY = 6 * 1024 * 1024  # dockerd: "Minimum memory limit allowed is 6MB"
CPU_PERIOD = 100_000  # --cpus: quota per 100 ms period, as dockerd
_NS_ORDER = ("mount", "network", "uts", "pid", "ipc", "cgroup")  # dockerd's order
_ENV_KEY_BAD = frozenset("\0=")


class ResolvedUser(Record):
    """The process's ids after looking the user up in the container's files.

    ``additional_gids`` as dockerd sets them: the primary gid first, then the groups that list the
    user as a member, then ``--group-add``.
    """

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()


class Ulimit(Record):
    """``--ulimit name=soft:hard``; ``name`` as docker spells it (``nofile``)."""

    name: str
    soft: int
    hard: int


class HostDevice(Record):
    """``--device``: a host device node (resolved by the engine) made in the container."""

    path: str  # in the container
    type: str  # "c" | "b"
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0
    access: str = "rwm"  # the device cgroup permission


class BlockLimit(Record):
    """A block I/O limit of one device: ``kind`` is the runtime-spec list it goes to
    (``throttleReadBpsDevice``, ``throttleWriteBpsDevice``, ``throttleReadIOPSDevice``,
    ``throttleWriteIOPSDevice``, ``weightDevice``)."""

    kind: str
    major: int
    minor: int
    value: int


class RunOptions(Record):
    """The ``docker run``/``create`` options that shape the runtime spec.

    ``None`` and ``()`` differ for ``entrypoint`` and ``cmd`` as in the image config: None keeps
    the image's, ``()`` sets empty. As in dockerd's merge, a non-empty entrypoint drops the
    image's Cmd, and ``("",)`` (what the docker CLI sends for ``--entrypoint ""``) is the way to
    run only ``cmd``; ``()`` clears the entrypoint but keeps the image's Cmd when ``cmd`` is unset.
    """

    container_id: str = ""
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()  # "K=v" sets/overrides; "K" alone unsets
    user: str | None = None  # --user; None: the image's User
    group_add: tuple[str, ...] = ()  # --group-add: gids or group names (names need resolving)
    working_dir: str = ""
    hostname: str = ""  # "" -> the first 12 characters of container_id
    domainname: str = ""
    tty: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    read_only: bool = False
    rootfs: str = "rootfs"  # root.path: relative to the bundle, as the runtime resolves it
    # namespaces: "" = a new one (docker's default), "host" = the runtime's own
    network: str = "none"  # "none" | "bridge" (both a new namespace) | "host"
    pid: str = ""
    ipc: str = ""
    uts: str = ""
    cgroupns: str = "host"  # docker's default on cgroups v1; "private" on v2
    namespace_paths: tuple[tuple[str, str], ...] = ()  # (type, /proc/<pid>/ns/<type>): join
    # cgroups
    cgroup_parent: str = "/dockyard"
    memory: int = 0
    memory_swap: int = 0  # 0: twice memory (docker's default); -1: unlimited
    memory_reservation: int = 0
    oom_kill_disable: bool = False
    nano_cpus: int = 0  # --cpus, in 1e-9 CPUs
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0  # <= 0: unlimited
    memory_swappiness: int | None = None
    blkio_weight: int = 0
    block_limits: tuple[BlockLimit, ...] = ()
    devices: tuple[HostDevice, ...] = ()
    # security
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    host_capabilities: tuple[str, ...] | None = None  # what the engine holds: "all" is at most this
    seccomp: Any = None  # a runtime-spec linux.seccomp object (the default profile's owner passes it)
    # process
    ulimits: tuple[Ulimit, ...] = ()  # none: the process keeps the runtime's (the caller's) limits
    oom_score_adj: int = 0
    stop_signal: str = ""
    # the rest of the container
    shm_size: int = DEFAULT_SHM_SIZE
    sysctls: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount, ...] = ()  # volumes, binds, tmpfs, resolv.conf/hosts/hostname
    masked_paths: tuple[str, ...] | None = None  # None: docker's defaults
    readonly_paths: tuple[str, ...] | None = None
    annotations: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------- the pieces


def process_args(config: ImageConfig, opts: RunOptions) -> list[str]:
    """Entrypoint + Cmd after docker's merge: a given entrypoint replaces the image's and drops
    its Cmd; a given cmd replaces the image's Cmd."""
    image = config.config
    entrypoint = opts.entrypoint
    cmd = opts.cmd
    if not entrypoint:  # None or (): the image's Cmd unless one is given
        if not cmd:
            cmd = image.cmd
        if entrypoint is None:
            entrypoint = image.entrypoint
    if entrypoint == ("",):
        entrypoint = ()
    args = [*(entrypoint or ()), *(cmd or ())]
    if not args or not args[0]:
        raise InvalidArgument("No command specified")
    return args


def merge_env(image_env: tuple[str, ...], run_env: tuple[str, ...], *, hostname: str,
              tty: bool) -> list[str]:
    """dockerd's environment: PATH (default), HOSTNAME, TERM with a tty, then the container's
    env (``--env`` first, the image's keys that ``--env`` does not set after), each replacing a
    default of the same key in place; a bare ``KEY`` unsets."""
    for i, e in enumerate((*run_env, *image_env)):
        key = e.split("=", 1)[0]
        if not key or _ENV_KEY_BAD & set(key) or "\0" in e:
            raise InvalidArgument(f"invalid environment variable {e!r} (entry {i}): "
                                  "expected KEY=value")
    run_keys = {e.split("=", 1)[0] for e in run_env}
    container = [*run_env, *(e for e in image_env if e.split("=", 1)[0] not in run_keys)]
    env: list[str | None] = [DEFAULT_PATH_ENV, f"HOSTNAME={hostname}"]
    if tty:
        env.append("TERM=xterm")
    index = {e.split("=", 1)[0]: i for i, e in enumerate(env) if e}
    for e in container:
        key, eq, _ = e.partition("=")
        if not eq:
            if key in index:
                env[index[key]] = None
            continue
        if key in index and env[index[key]] is not None:
            env[index[key]] = e
        else:
            index[key] = len(env)
            env.append(e)
    return [e for e in env if e is not None]


def parse_numeric_user(user: str) -> ResolvedUser:
    """``""``, ``uid`` or ``uid:gid`` (numbers only): the ids without looking at any file, as for
    a rootfs without /etc/passwd. A name raises: it must be resolved through the container's
    files (``image.bundle.resolve_user``), never guessed (a name must not become root)."""
    if not user:
        return ResolvedUser(0, 0, (0,))
    name, colon, group = user.partition(":")
    uid = parse_id(name, "user", user)
    if colon:
        parse_id(group, "group", user)  # an empty group is an error, not "no group"
    if uid is None:
        raise InvalidArgument(f"user {user!r}: a name must be resolved through the container's "
                              "/etc/passwd")
    if not colon:
        return ResolvedUser(uid, 0, (0,))
    gid = parse_id(group, "group", user)
    if gid is None:
        raise InvalidArgument(f"user {user!r}: a group name must be resolved through the "
                              "container's /etc/group")
    return ResolvedUser(uid, gid, (gid,))


def parse_id(text: str, what: str, spec: str) -> int | None:
    """A numeric uid/gid in Docker's range, or None when ``text`` is a name. Signs, spaces and
    out-of-range numbers are refused, never wrapped around to 0 (root)."""
    if not text:
        raise InvalidArgument(f"user {spec!r}: empty {what}")
    if text.isascii() and text.isdigit():
        n = int(text)
        if n > ID_MAX:
            raise InvalidArgument(f"user {spec!r}: {what} id {text} is out of range "
                                  f"(0..{ID_MAX})")
        return n
    if text[0] in "+-" and text[1:].isascii() and text[1:].isdigit():
        raise InvalidArgument(f"user {spec!r}: {what} id {text} is out of range (0..{ID_MAX})")
    return None


def capabilities(opts: RunOptions) -> list[str]:
    """Docker's ``TweakCapabilities``: the default set, ``--cap-drop`` removed, ``--cap-add``
    appended; ``ALL`` in add means every capability (minus the drops), in drop means only the adds."""
    every = list(CAPABILITIES) if opts.host_capabilities is None else \
        [c for c in CAPABILITIES if c in opts.host_capabilities]
    if opts.privileged:
        return every
    adds = [_cap_name(c) for c in opts.cap_add]
    drops = [_cap_name(c) for c in opts.cap_drop]
    if "ALL" in adds:
        return [c for c in every if c not in drops]
    if "ALL" in drops:
        base: list[str] = []
    else:
        base = [c for c in DEFAULT_CAPABILITIES if c not in drops]
    for c in adds:
        if c != "ALL" and c not in base:
            base.append(c)
    return base


def _cap_name(name: str) -> str:
    up = name.strip().upper()
    if up == "ALL":
        return up
    if not up.startswith("CAP_"):
        up = "CAP_" + up
    if up not in CAPABILITIES:
        raise InvalidArgument(f"unknown capability: {name!r}")
    return up


def stop_signal(config: ImageConfig, opts: RunOptions) -> int:
    """The signal ``docker stop`` sends first: ``--stop-signal``, else the image's StopSignal,
    else SIGTERM. Names with or without ``SIG``, numbers, and ``SIGRTMIN+n`` are accepted. The
    spec has no field for it: the engine keeps it with the container."""
    text = opts.stop_signal or config.config.stop_signal or "SIGTERM"
    return parse_signal(text)


def parse_signal(text: str) -> int:
    s = text.strip().upper()
    if s.isdigit():
        n = int(s)
    else:
        if not s.startswith("SIG"):
            s = "SIG" + s
        base, plus, offset = s.partition("+")
        if plus and base == "SIGRTMIN" and offset.isdigit():
            n = int(_signal.SIGRTMIN) + int(offset)
        else:
            member = getattr(_signal.Signals, s, None) if s.isidentifier() else None
            if not isinstance(member, _signal.Signals):
                raise InvalidArgument(f"invalid signal: {text!r}")
            n = int(member)
    if not 1 <= n <= int(_signal.SIGRTMAX):
        raise InvalidArgument(f"invalid signal: {text!r}")
    return n


def default_mounts(opts: RunOptions) -> list[dict]:
    """dockerd's default mounts, in its order; ``/sys`` and the cgroup mount writable only for
    ``--privileged``; ``/dev/shm`` the host's with ``--ipc host``."""
    ro = [] if opts.privileged else ["ro"]
    if opts.ipc == "host":
        shm = {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
               "options": ["rbind", "rprivate"]}
    else:
        shm = {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={opts.shm_size}"]}
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*ro, "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        shm,
    ]


def merge_mounts(defaults: list[dict], extra: tuple[Mount, ...]) -> list[dict]:
    """The defaults a user mount does not replace (same destination; everything under ``/dev``
    when the user mounts ``/dev``), then the user mounts, parents before children (dockerd sorts
    them by path depth)."""
    for m in extra:
        if not m.destination.startswith("/"):
            raise InvalidArgument(f"mount destination {m.destination!r} must be an absolute path")
    targets = {posixpath.normpath(m.destination) for m in extra}
    kept = [m for m in defaults if m["destination"] not in targets
            and not ("/dev" in targets and m["destination"].startswith("/dev/"))]
    ordered = sorted(extra, key=lambda m: posixpath.normpath(m.destination).count("/"))
    out = [{"destination": posixpath.normpath(m.destination), "type": m.type, "source": m.source,
            "options": list(m.options)} for m in ordered]
    return kept + out


def namespaces(opts: RunOptions) -> list[dict]:
    """mount, network, uts, pid, ipc (dockerd's order), and cgroup when private; a ``"host"``
    mode leaves that namespace out; ``namespace_paths`` join an existing one instead."""
    modes = {"mount": "", "network": "host" if opts.network == "host" else "",
             "uts": opts.uts, "pid": opts.pid, "ipc": opts.ipc,
             "cgroup": "" if opts.cgroupns == "private" else "host"}
    for kind, mode in (("network", opts.network), ("uts", opts.uts), ("pid", opts.pid),
                       ("ipc", opts.ipc), ("cgroupns", opts.cgroupns)):
        allowed = {"network": ("none", "bridge", "host", "default"), "cgroupns": ("host", "private"),
                   "ipc": ("", "private", "shareable", "host")}.get(kind, ("", "host"))
        if mode not in allowed:
            raise InvalidArgument(f"invalid {kind} mode {mode!r}: use one of "
                                  f"{', '.join(repr(a) for a in allowed)}")
    paths = dict(opts.namespace_paths)
    for kind, path in opts.namespace_paths:
        if kind not in NAMESPACE_TYPES or kind == "user":
            raise InvalidArgument(f"cannot join a {kind!r} namespace")
        if not path.startswith("/"):
            raise InvalidArgument(f"namespace path {path!r} must be absolute")
    out = []
    for kind in _NS_ORDER:
        if kind in paths:
            out.append({"type": kind, "path": paths[kind]})
        elif modes[kind] != "host":
            out.append({"type": kind})
    return out


def resources(opts: RunOptions) -> dict:
    """Device rules and the limits given; unset limits are left out (no zeros)."""
    if opts.privileged:
        res: dict = {"devices": [{"allow": True, "access": "rwm"}]}
    else:
        res = {"devices": [dict(r) for r in DEFAULT_DEVICE_RULES]}
    memory: dict = {}
    if opts.memory:
        if opts.memory < MIN_MEMORY:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        memory["limit"] = opts.memory
        if opts.memory_swap == -1:
            memory["swap"] = -1
        elif opts.memory_swap == 0:
            memory["swap"] = 2 * opts.memory
        elif opts.memory_swap < opts.memory:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                                  "see usage")
        else:
            memory["swap"] = opts.memory_swap
    elif opts.memory_swap not in (0, -1):
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, "
                              "see usage")
    if opts.memory_reservation:
        _positive("memory reservation", opts.memory_reservation)
        memory["reservation"] = opts.memory_reservation
    if opts.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        res["memory"] = memory
    cpu: dict = {}
    if opts.nano_cpus:
        if opts.cpu_period or opts.cpu_quota:
            raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period/Quota cannot "
                                  "both be set")
        if opts.nano_cpus < 0:
            raise InvalidArgument(f"invalid --cpus {opts.nano_cpus / 1e9}: must be positive")
        cpu["quota"] = max(1000, opts.nano_cpus * CPU_PERIOD // 1_000_000_000)
        cpu["period"] = CPU_PERIOD
    if opts.cpu_shares:
        cpu["shares"] = _positive("cpu shares", opts.cpu_shares)
    if opts.cpu_quota:
        cpu["quota"] = opts.cpu_quota if opts.cpu_quota == -1 else _positive("cpu quota", opts.cpu_quota)
    if opts.cpu_period:
        cpu["period"] = _positive("cpu period", opts.cpu_period)
    if opts.cpuset_cpus:
        cpu["cpus"] = opts.cpuset_cpus
    if opts.cpuset_mems:
        cpu["mems"] = opts.cpuset_mems
    if cpu:
        res["cpu"] = cpu
    if opts.pids_limit > 0:
        res["pids"] = {"limit": opts.pids_limit}
    if opts.memory_swappiness is not None and opts.memory_swappiness >= 0:
        if opts.memory_swappiness > 100:
            raise InvalidArgument(f"invalid memory swappiness {opts.memory_swappiness}: "
                                  "the valid range is 0-100")
        res.setdefault("memory", {})["swappiness"] = opts.memory_swappiness
    if not opts.privileged:
        for d in opts.devices:
            res["devices"].append({"allow": True, "type": d.type, "major": d.major,
                                   "minor": d.minor, "access": d.access})
    block: dict = {}
    if opts.blkio_weight:
        if not 10 <= opts.blkio_weight <= 1000:
            raise InvalidArgument(f"invalid blkio weight {opts.blkio_weight}: the range is "
                                  "10-1000")
        block["weight"] = opts.blkio_weight
    for lim in opts.block_limits:
        key = "weight" if lim.kind == "weightDevice" else "rate"
        block.setdefault(lim.kind, []).append({"major": lim.major, "minor": lim.minor,
                                               key: lim.value})
    if block:
        res["blockIO"] = block
    return res


def _positive(what: str, n: int) -> int:
    if n <= 0:
        raise InvalidArgument(f"invalid {what} {n}: must be positive")
    return n


def rlimits(opts: RunOptions) -> list[dict]:
    out = []
    seen = set()
    for u in opts.ulimits:
        kind = ULIMIT_NAMES.get(u.name)
        if kind is None:
            raise InvalidArgument(f"invalid ulimit type: {u.name}")
        if u.name in seen:
            raise InvalidArgument(f"ulimit {u.name} given twice")
        seen.add(u.name)
        if u.soft < 0 or u.hard < 0 or u.soft > u.hard:
            raise InvalidArgument(f"ulimit {u.name}: soft limit {u.soft} must be between 0 and "
                                  f"the hard limit {u.hard}")
        out.append({"type": kind, "hard": u.hard, "soft": u.soft})
    return out


# ---------------------------------------------------------------- the spec


def build_spec(config: ImageConfig, opts: RunOptions, *, user: ResolvedUser | None = None) -> dict:
    """The ``config.json`` of a container of ``config``'s image run with ``opts``.

    ``user``: the ids resolved through the container's files (``image.bundle.resolve_user``);
    without it the effective user (``opts.user``, else the image's) must be numeric.
    Raises ``InvalidArgument`` naming the option for anything dockerd would refuse.
    """
    if not opts.container_id:
        raise InvalidArgument("build spec: a container id is required (cgroups path, hostname)")
    if "/" in opts.container_id or opts.container_id in (".", ".."):
        raise InvalidArgument(f"invalid container id {opts.container_id!r}")
    image = config.config
    args = process_args(config, opts)
    hostname = opts.hostname or opts.container_id[:12]
    if len(hostname.encode()) > 64 or "\0" in hostname:
        raise InvalidArgument(f"invalid hostname {hostname!r}: at most 64 bytes")
    cwd = opts.working_dir or image.working_dir or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory '{cwd}' is invalid, it needs to be an "
                              "absolute path")
    cwd = posixpath.normpath(cwd)
    if cwd.startswith("//"):
        cwd = "/" + cwd.lstrip("/")
    if user is None:
        user = parse_numeric_user(image.user if opts.user is None else opts.user)
        extra = []
        for g in opts.group_add:
            gid = parse_id(g, "group", g)
            if gid is None:
                raise InvalidArgument(f"group {g!r}: a name must be resolved through the "
                                      "container's /etc/group")
            if gid not in user.additional_gids and gid not in extra:
                extra.append(gid)
        user = ResolvedUser(user.uid, user.gid, (*user.additional_gids, *extra))
    for n in (user.uid, user.gid, *user.additional_gids):
        if not 0 <= n <= ID_MAX:
            raise InvalidArgument(f"user id {n} is out of range (0..{ID_MAX})")
    if not -1000 <= opts.oom_score_adj <= 1000:
        raise InvalidArgument(f"Invalid value {opts.oom_score_adj}, range for oom score adj is "
                              "[-1000, 1000]")
    caps = capabilities(opts)
    cap_sets = ({"bounding": caps, "effective": list(caps), "permitted": list(caps)}
                if user.uid == 0 else {"bounding": caps})  # non-root: as execve leaves them

    process: dict = {}
    if opts.tty:
        process["terminal"] = True
        if opts.console_size:
            process["consoleSize"] = {"height": opts.console_size[0],
                                      "width": opts.console_size[1]}
    process["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    process["args"] = args
    process["env"] = merge_env(image.env, opts.env, hostname=hostname, tty=opts.tty)
    process["cwd"] = cwd
    process["capabilities"] = cap_sets
    limits = rlimits(opts)
    if limits:
        process["rlimits"] = limits
    if opts.no_new_privileges:
        process["noNewPrivileges"] = True
    process["oomScoreAdj"] = opts.oom_score_adj

    root: dict = {"path": opts.rootfs}
    if opts.read_only:
        root["readonly"] = True

    linux: dict = {}
    sysctl: dict = {}
    if opts.network != "host" and "network" not in dict(opts.namespace_paths):
        sysctl.update(NETWORK_SYSCTLS)
    for key, value in opts.sysctls:
        if not key or "/" in key or ".." in key:
            raise InvalidArgument(f"invalid sysctl {key!r}")
        sysctl[key] = value
    if sysctl:
        linux["sysctl"] = sysctl
    linux["resources"] = resources(opts)
    linux["cgroupsPath"] = posixpath.join(opts.cgroup_parent or "/", opts.container_id)
    linux["namespaces"] = namespaces(opts)
    if opts.seccomp is not None and not opts.privileged:
        linux["seccomp"] = opts.seccomp
    if not opts.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS if opts.masked_paths is None
                                    else opts.masked_paths)
        linux["readonlyPaths"] = list(READONLY_PATHS if opts.readonly_paths is None
                                      else opts.readonly_paths)
    if opts.devices and not opts.privileged:
        linux["devices"] = [{"path": d.path, "type": d.type, "major": d.major, "minor": d.minor,
                             "fileMode": d.file_mode, "uid": d.uid, "gid": d.gid}
                            for d in opts.devices]

    spec: dict = {"ociVersion": OCI_VERSION, "process": process, "root": root}
    if opts.uts != "host":  # --uts host: the host's name, which the container cannot set
        spec["hostname"] = hostname
    if opts.domainname:
        spec["domainname"] = opts.domainname
    spec["mounts"] = merge_mounts(default_mounts(opts), opts.mounts)
    if opts.annotations:
        spec["annotations"] = dict(opts.annotations)
    spec["linux"] = linux
    return spec
