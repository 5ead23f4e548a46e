"""OCI runtime-spec 1.2 (Linux) as typed, frozen dataclasses, and the parser from config.json.

The parser is the edge: raw JSON goes in, typed objects come out, and every invalid value is
reported as ``InvalidArgument("config.json: <field path>: <what is wrong>")`` so that one line
names the field. Names follow the spec's JSON keys in snake_case. Unknown keys are ignored, as the
spec asks of runtimes; unknown *values* in known fields are errors.

This module is on the runtime's start-up path: stdlib only, no heavy imports.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from dockyard.oci._fields import _abs, _fail, _get, _list, _obj, _str_map, _strs, _uint
from dockyard.oci.linux_resources import (  # noqa: F401 - re-exported: part of the spec's types
    SECCOMP_ACTIONS, SECCOMP_FLAGS, SECCOMP_OPS, BlockIO, Cpu, DeviceRule, HugepageLimit, Memory, Pids,
    Resources, Seccomp, SeccompArg, SyscallRule, ThrottleDevice, WeightDevice, parse_resources,
    parse_seccomp)
from dockyard.record import Record

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
RLIMIT_TYPES = (
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
    "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
)
# Linux capability numbers (linux/capability.h).
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBERS = {name: i for i, name in enumerate(CAPABILITIES)}
PROPAGATIONS = ("", "private", "rprivate", "slave", "rslave", "shared", "rshared",
                "unbindable", "runbindable")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")


# ---------------------------------------------------------------- dataclasses


class Box(Record):
    height: int
    width: int


class User(Record):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


class Capabilities(Record):
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()


class Rlimit(Record):
    type: str
    soft: int
    hard: int


class Process(Record):
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    cwd: str = "/"
    terminal: bool = False
    console_size: Box | None = None
    user: User = User()
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    apparmor_profile: str = ""
    selinux_label: str = ""
    oom_score_adj: int | None = None


class Root(Record):
    path: str
    readonly: bool = False


class Mount(Record):
    destination: str
    type: str = ""
    source: str = ""
    options: tuple[str, ...] = ()


class Hook(Record):
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


class Hooks(Record):
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


class Namespace(Record):
    type: str
    path: str = ""


class IDMapping(Record):
    container_id: int
    host_id: int
    size: int


class Device(Record):
    """A device node to create in the container's /dev (``linux.devices``)."""

    path: str
    type: str  # c, b, u, p
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class Linux(Record):
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IDMapping, ...] = ()
    gid_mappings: tuple[IDMapping, ...] = ()
    devices: tuple[Device, ...] = ()
    cgroups_path: str = ""
    resources: Resources | None = None
    rootfs_propagation: str = ""
    seccomp: Seccomp | None = None
    sysctl: tuple[tuple[str, str], ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    mount_label: str = ""

    def namespace(self, kind: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None


class Spec(Record):
    oci_version: str
    root: Root | None = None
    process: Process | None = None
    hostname: str = ""
    domainname: str = ""
    mounts: tuple[Mount, ...] = ()
    hooks: Hooks = Hooks()
    annotations: tuple[tuple[str, str], ...] = ()
    linux: Linux = Linux()


# ---------------------------------------------------------------- parsers


def parse_capabilities(d: dict, path: str) -> Capabilities:
    sets = {}
    for key in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        names = _strs(d, key, path)
        for i, n in enumerate(names):
            if n not in CAP_NUMBERS:
                raise _fail(f"{path}.{key}[{i}]", f"unknown capability {n!r}")
        sets[key] = names
    return Capabilities(**sets)


# 4294967295 is (uid_t)-1, which setresuid/setresgid read as "leave unchanged": the init stays root.
ID_MAX = 2**32 - 2


def parse_user(d: dict, path: str) -> User:
    gids = _get(d, "additionalGids", list, path, [])
    for i, g in enumerate(gids):
        if isinstance(g, bool) or not isinstance(g, int) or g < 0:
            raise _fail(f"{path}.additionalGids[{i}]", f"expected a non-negative integer, got {g!r}")
        if g > ID_MAX:
            raise _fail(f"{path}.additionalGids[{i}]", f"must be at most {ID_MAX}, got {g}")
    if "username" in d and d["username"]:
        raise _fail(f"{path}.username", "is Windows-only; give uid and gid")
    uid, gid = _uint(d, "uid", path, 0), _uint(d, "gid", path, 0)
    for key, v in (("uid", uid), ("gid", gid)):
        if v > ID_MAX:
            raise _fail(f"{path}.{key}", f"must be at most {ID_MAX} ({ID_MAX + 1} would leave the "
                        f"process root), got {v}")
    return User(uid=uid, gid=gid, umask=_uint(d, "umask", path), additional_gids=tuple(gids))


def parse_rlimit(d: dict, path: str) -> Rlimit:
    kind = _get(d, "type", str, path, "")
    if kind not in RLIMIT_TYPES:
        raise _fail(f"{path}.type", f"unknown rlimit {kind!r}")
    soft, hard = _uint(d, "soft", path), _uint(d, "hard", path)
    if soft is None or hard is None:
        raise _fail(path, "soft and hard are required")
    if soft > hard:
        raise _fail(path, f"soft limit {soft} is above hard limit {hard}")
    return Rlimit(kind, soft, hard)


def parse_process(d: dict, path: str = "process", *, require_args: bool = True) -> Process:
    args = _strs(d, "args", path)
    if require_args and not args:
        raise _fail(f"{path}.args", "must name the program to run")
    cwd = _get(d, "cwd", str, path, "/") or "/"
    _abs(cwd, f"{path}.cwd")
    box = None
    if d.get("consoleSize") is not None:
        b = _obj(d["consoleSize"], f"{path}.consoleSize")
        box = Box(_uint(b, "height", f"{path}.consoleSize", 0), _uint(b, "width", f"{path}.consoleSize", 0))
    caps = None
    if d.get("capabilities") is not None:
        caps = parse_capabilities(_obj(d["capabilities"], f"{path}.capabilities"), f"{path}.capabilities")
    rlimits = tuple(parse_rlimit(x, p) for p, x in _list(d, "rlimits", path))
    seen = set()
    for i, r in enumerate(rlimits):
        if r.type in seen:
            raise _fail(f"{path}.rlimits[{i}].type", f"duplicate rlimit {r.type}")
        seen.add(r.type)
    env = _strs(d, "env", path)
    for i, e in enumerate(env):
        if "=" not in e:
            raise _fail(f"{path}.env[{i}]", f"expected KEY=value, got {e!r}")
    oom = _get(d, "oomScoreAdj", int, path)
    if oom is not None and not -1000 <= oom <= 1000:
        raise _fail(f"{path}.oomScoreAdj", f"must be within -1000..1000, got {oom}")
    return Process(
        args=args, env=env, cwd=cwd,
        terminal=bool(_get(d, "terminal", bool, path, False)),
        console_size=box,
        user=parse_user(_obj(d.get("user") or {}, f"{path}.user"), f"{path}.user"),
        capabilities=caps, rlimits=rlimits,
        no_new_privileges=bool(_get(d, "noNewPrivileges", bool, path, False)),
        apparmor_profile=_get(d, "apparmorProfile", str, path, ""),
        selinux_label=_get(d, "selinuxLabel", str, path, ""),
        oom_score_adj=oom,
    )


def parse_hooks(d: dict, path: str = "hooks") -> Hooks:
    out = {}
    for kind in HOOK_KINDS:
        hooks = []
        for p, h in _list(d, kind, path):
            hp = _get(h, "path", str, p, "")
            _abs(hp, f"{p}.path")
            timeout = _get(h, "timeout", int, p)
            if timeout is not None and timeout <= 0:
                raise _fail(f"{p}.timeout", f"must be positive, got {timeout}")
            hooks.append(Hook(hp, _strs(h, "args", p), _strs(h, "env", p), timeout))
        snake = "".join("_" + c.lower() if c.isupper() else c for c in kind)
        out[snake] = tuple(hooks)
    return Hooks(**out)


def parse_mount(d: dict, path: str) -> Mount:
    dest = _get(d, "destination", str, path, "")
    if not dest:
        raise _fail(f"{path}.destination", "is required")
    if not dest.startswith("/"):
        dest = "/" + dest  # runtime-spec: a relative destination is relative to "/" (deprecated)
    return Mount(destination=dest, type=_get(d, "type", str, path, ""),
                 source=_get(d, "source", str, path, ""), options=_strs(d, "options", path))


def _mappings(d: dict, key: str, path: str) -> tuple[IDMapping, ...]:
    out = []
    for p, m in _list(d, key, path):
        c, h, s = _uint(m, "containerID", p), _uint(m, "hostID", p), _uint(m, "size", p)
        if c is None or h is None or not s:
            raise _fail(p, "containerID, hostID and a positive size are required")
        if c + s > 2**32 or h + s > 2**32:
            raise _fail(p, "range exceeds the 32-bit id space")
        out.append(IDMapping(c, h, s))
    ranges = sorted((m.container_id, m.container_id + m.size) for m in out)
    for (a0, a1), (b0, _b1) in zip(ranges, ranges[1:]):
        if b0 < a1:
            raise _fail(f"{path}.{key}", f"container id ranges overlap at {b0}")
    return tuple(out)


def parse_linux(d: dict, path: str = "linux") -> Linux:
    namespaces = []
    seen = set()
    for p, n in _list(d, "namespaces", path):
        kind = _get(n, "type", str, p, "")
        if kind not in NAMESPACE_TYPES:
            raise _fail(f"{p}.type", f"unknown namespace type {kind!r}")
        if kind in seen:
            raise _fail(f"{p}.type", f"duplicate namespace {kind!r}")
        seen.add(kind)
        ns_path = _get(n, "path", str, p, "")
        if ns_path:
            _abs(ns_path, f"{p}.path")
        namespaces.append(Namespace(kind, ns_path))
    uid_maps, gid_maps = _mappings(d, "uidMappings", path), _mappings(d, "gidMappings", path)
    user_ns = next((n for n in namespaces if n.type == "user"), None)
    if (uid_maps or gid_maps) and (user_ns is None or user_ns.path):
        raise _fail(f"{path}.uidMappings", "id mappings need a new user namespace in linux.namespaces")
    if user_ns is not None and not user_ns.path and not (uid_maps and gid_maps):
        raise _fail(f"{path}.uidMappings", "a new user namespace needs uidMappings and gidMappings")
    devices = []
    for p, dv in _list(d, "devices", path):
        dpath = _abs(_get(dv, "path", str, p, ""), f"{p}.path")
        kind = _get(dv, "type", str, p, "")
        if kind not in ("c", "b", "u", "p"):
            raise _fail(f"{p}.type", f"must be c, b, u or p; got {kind!r}")
        devices.append(Device(dpath, kind, _uint(dv, "major", p, 0), _uint(dv, "minor", p, 0),
                              _uint(dv, "fileMode", p), _uint(dv, "uid", p), _uint(dv, "gid", p)))
    prop = _get(d, "rootfsPropagation", str, path, "")
    if prop not in PROPAGATIONS:
        raise _fail(f"{path}.rootfsPropagation", f"unknown propagation {prop!r}")
    resources = None
    if d.get("resources") is not None:
        resources = parse_resources(_obj(d["resources"], f"{path}.resources"))
    seccomp = None
    if d.get("seccomp") is not None:
        seccomp = parse_seccomp(_obj(d["seccomp"], f"{path}.seccomp"))
    masked = _strs(d, "maskedPaths", path)
    readonly = _strs(d, "readonlyPaths", path)
    for key, paths in (("maskedPaths", masked), ("readonlyPaths", readonly)):
        for i, mp in enumerate(paths):
            _abs(mp, f"{path}.{key}[{i}]")
    return Linux(
        namespaces=tuple(namespaces), uid_mappings=uid_maps, gid_mappings=gid_maps,
        devices=tuple(devices), cgroups_path=_get(d, "cgroupsPath", str, path, ""),
        resources=resources, rootfs_propagation=prop, seccomp=seccomp,
        sysctl=_str_map(d, "sysctl", path), masked_paths=masked, readonly_paths=readonly,
        mount_label=_get(d, "mountLabel", str, path, ""),
    )


def parse_spec(d: Any) -> Spec:
    """Parse a decoded config.json into a :class:`Spec`, naming the field of any error."""
    d = _obj(d, "")
    version = _get(d, "ociVersion", str, "", "")
    if not version:
        raise _fail("ociVersion", "is required")
    if not version.startswith("1."):
        raise _fail("ociVersion", f"unsupported version {version!r} (this runtime implements 1.x)")
    root = None
    if d.get("root") is not None:
        r = _obj(d["root"], "root")
        rp = _get(r, "path", str, "root", "")
        if not rp:
            raise _fail("root.path", "is required")
        root = Root(rp, bool(_get(r, "readonly", bool, "root", False)))
    process = None
    if d.get("process") is not None:
        process = parse_process(_obj(d["process"], "process"))
    hostname = _get(d, "hostname", str, "", "")
    if len(hostname.encode()) > 64:
        raise _fail("hostname", "is longer than 64 bytes")
    return Spec(
        oci_version=version, root=root, process=process, hostname=hostname,
        domainname=_get(d, "domainname", str, "", ""),
        mounts=tuple(parse_mount(m, p) for p, m in _list(d, "mounts", "")),
        hooks=parse_hooks(_obj(d.get("hooks") or {}, "hooks")),
        annotations=_str_map(d, "annotations", ""),
        linux=parse_linux(_obj(d.get("linux") or {}, "linux")),
    )
