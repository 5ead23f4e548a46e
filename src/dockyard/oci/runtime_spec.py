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

from dockyard.errors import InvalidArgument
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
SECCOMP_ACTIONS = (
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
)
SECCOMP_OPS = (
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)
SECCOMP_FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
)
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


class DeviceRule(Record):
    """A device cgroup rule (``linux.resources.devices``)."""

    allow: bool
    type: str = "a"  # a, c, b
    major: int | None = None  # None = wildcard
    minor: int | None = None
    access: str = "rwm"


class Memory(Record):
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool | None = None
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


class Cpu(Record):
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str = ""
    mems: str = ""
    idle: int | None = None


class Pids(Record):
    limit: int


class WeightDevice(Record):
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


class ThrottleDevice(Record):
    major: int
    minor: int
    rate: int


class BlockIO(Record):
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[WeightDevice, ...] = ()
    throttle_read_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_iops_device: tuple[ThrottleDevice, ...] = ()


class HugepageLimit(Record):
    page_size: str
    limit: int


class Resources(Record):
    devices: tuple[DeviceRule, ...] = ()
    memory: Memory | None = None
    cpu: Cpu | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = None
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    unified: tuple[tuple[str, str], ...] = ()  # cgroup v2 file -> value, in key order


class SeccompArg(Record):
    index: int
    value: int
    op: str
    value_two: int = 0


class SyscallRule(Record):
    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[SeccompArg, ...] = ()


class Seccomp(Record):
    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    listener_path: str = ""
    syscalls: tuple[SyscallRule, ...] = ()


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


# ---------------------------------------------------------------- parsing helpers


def _fail(path: str, msg: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {path.lstrip('.') or '(top level)'}: {msg}")


def _obj(v: Any, path: str) -> dict:
    if not isinstance(v, dict):
        raise _fail(path, f"expected an object, got {type(v).__name__}")
    return v


def _get(d: dict, key: str, kind: type | tuple, path: str, default: Any = None) -> Any:
    v = d.get(key)
    if v is None:
        return default
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(f"{path}.{key}", f"expected an integer, got {v!r}")
    elif kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(f"{path}.{key}", f"expected a number, got {v!r}")
    elif not isinstance(v, kind):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _fail(f"{path}.{key}", f"expected {want}, got {type(v).__name__}")
    return v


def _uint(d: dict, key: str, path: str, default: int | None = None) -> int | None:
    v = _get(d, key, int, path)
    if v is None:
        return default
    if v < 0:
        raise _fail(f"{path}.{key}", f"must not be negative, got {v}")
    return v


def _strs(d: dict, key: str, path: str) -> tuple[str, ...]:
    v = _get(d, key, list, path, [])
    for i, s in enumerate(v):
        if not isinstance(s, str):
            raise _fail(f"{path}.{key}[{i}]", f"expected a string, got {s!r}")
    return tuple(v)


def _list(d: dict, key: str, path: str) -> list[tuple[str, dict]]:
    v = _get(d, key, list, path, [])
    return [(f"{path}.{key}[{i}]", _obj(x, f"{path}.{key}[{i}]")) for i, x in enumerate(v)]


def _str_map(d: dict, key: str, path: str) -> tuple[tuple[str, str], ...]:
    v = _obj(d.get(key) or {}, f"{path}.{key}")
    for k, x in v.items():
        if not isinstance(x, str):
            raise _fail(f"{path}.{key}.{k}", f"expected a string, got {x!r}")
    return tuple(v.items())


def _abs(p: str, path: str) -> str:
    if not p.startswith("/"):
        raise _fail(path, f"must be an absolute path, got {p!r}")
    return p


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


def _dev_num(d: dict, key: str, path: str) -> int | None:
    v = _get(d, key, int, path)
    if v is not None and v < -1:
        raise _fail(f"{path}.{key}", f"invalid device number {v}")
    return None if v is None or v == -1 else v


def parse_resources(d: dict, path: str = "linux.resources") -> Resources:
    rules = []
    for p, r in _list(d, "devices", path):
        kind = _get(r, "type", str, p, "a") or "a"
        if kind not in ("a", "c", "b"):
            raise _fail(f"{p}.type", f"must be a, c or b, got {kind!r}")
        access = _get(r, "access", str, p, "rwm") or "rwm"
        if not set(access) <= set("rwm"):
            raise _fail(f"{p}.access", f"must be made of r, w, m; got {access!r}")
        allow = _get(r, "allow", bool, p)
        if allow is None:
            raise _fail(f"{p}.allow", "is required")
        rules.append(DeviceRule(allow, kind, _dev_num(r, "major", p), _dev_num(r, "minor", p), access))
    mem = cpu = pids = bio = None
    if d.get("memory") is not None:
        m, p = _obj(d["memory"], f"{path}.memory"), f"{path}.memory"
        ints = {}
        for key, attr in (("limit", "limit"), ("reservation", "reservation"), ("swap", "swap"),
                          ("kernel", "kernel"), ("kernelTCP", "kernel_tcp")):
            v = _get(m, key, int, p)
            if v is not None and v < -1:
                raise _fail(f"{p}.{key}", f"must be -1 (unlimited) or a byte count, got {v}")
            ints[attr] = v
        sw = _uint(m, "swappiness", p)
        if sw is not None and sw > 100:
            raise _fail(f"{p}.swappiness", f"must be within 0..100, got {sw}")
        if ints["limit"] is not None and ints["swap"] not in (None, -1) and ints["limit"] > 0 \
                and ints["swap"] < ints["limit"]:
            raise _fail(f"{p}.swap", "memory+swap limit must not be below the memory limit")
        mem = Memory(**ints, swappiness=sw,
                     disable_oom_killer=_get(m, "disableOOMKiller", bool, p),
                     use_hierarchy=_get(m, "useHierarchy", bool, p),
                     check_before_update=_get(m, "checkBeforeUpdate", bool, p))
    if d.get("cpu") is not None:
        c, p = _obj(d["cpu"], f"{path}.cpu"), f"{path}.cpu"
        quota = _get(c, "quota", int, p)
        if quota is not None and quota < -1:
            raise _fail(f"{p}.quota", f"must be -1 (unlimited) or microseconds, got {quota}")
        period = _uint(c, "period", p)
        if period is not None and period and not 1000 <= period <= 1_000_000:
            raise _fail(f"{p}.period", f"must be within 1000..1000000 microseconds, got {period}")
        cpu = Cpu(shares=_uint(c, "shares", p), quota=quota, burst=_uint(c, "burst", p),
                  period=period, realtime_runtime=_get(c, "realtimeRuntime", int, p),
                  realtime_period=_uint(c, "realtimePeriod", p), cpus=_get(c, "cpus", str, p, ""),
                  mems=_get(c, "mems", str, p, ""), idle=_get(c, "idle", int, p))
    if d.get("pids") is not None:
        pd, p = _obj(d["pids"], f"{path}.pids"), f"{path}.pids"
        lim = _get(pd, "limit", int, p)
        if lim is None:
            raise _fail(f"{p}.limit", "is required")
        pids = Pids(lim)
    if d.get("blockIO") is not None:
        b, p = _obj(d["blockIO"], f"{path}.blockIO"), f"{path}.blockIO"

        def throttles(key: str) -> tuple[ThrottleDevice, ...]:
            return tuple(ThrottleDevice(_uint(t, "major", tp, 0), _uint(t, "minor", tp, 0),
                                        _uint(t, "rate", tp, 0)) for tp, t in _list(b, key, p))
        weight = _uint(b, "weight", p)
        if weight is not None and weight and not 10 <= weight <= 1000:
            raise _fail(f"{p}.weight", f"must be within 10..1000, got {weight}")
        bio = BlockIO(
            weight=weight, leaf_weight=_uint(b, "leafWeight", p),
            weight_device=tuple(WeightDevice(_uint(w, "major", wp, 0), _uint(w, "minor", wp, 0),
                                             _uint(w, "weight", wp), _uint(w, "leafWeight", wp))
                                for wp, w in _list(b, "weightDevice", p)),
            throttle_read_bps_device=throttles("throttleReadBpsDevice"),
            throttle_write_bps_device=throttles("throttleWriteBpsDevice"),
            throttle_read_iops_device=throttles("throttleReadIOPSDevice"),
            throttle_write_iops_device=throttles("throttleWriteIOPSDevice"),
        )
    huge = tuple(HugepageLimit(_get(h, "pageSize", str, hp, ""), _uint(h, "limit", hp, 0))
                 for hp, h in _list(d, "hugepageLimits", path))
    unified = _str_map(d, "unified", path)
    for k, _v in unified:
        if "/" in k or k.startswith("."):
            raise _fail(f"{path}.unified.{k}", "must name a file in the container's cgroup")
    return Resources(devices=tuple(rules), memory=mem, cpu=cpu, pids=pids, block_io=bio,
                     hugepage_limits=huge, unified=unified)


def parse_seccomp(d: dict, path: str = "linux.seccomp") -> Seccomp:
    default = _get(d, "defaultAction", str, path, "")
    if default not in SECCOMP_ACTIONS:
        raise _fail(f"{path}.defaultAction", f"unknown seccomp action {default!r}")
    flags = _strs(d, "flags", path)
    for i, f in enumerate(flags):
        if f not in SECCOMP_FLAGS:
            raise _fail(f"{path}.flags[{i}]", f"unknown seccomp flag {f!r}")
    rules = []
    for p, s in _list(d, "syscalls", path):
        names = _strs(s, "names", p)
        if not names:
            raise _fail(f"{p}.names", "must name at least one syscall")
        action = _get(s, "action", str, p, "")
        if action not in SECCOMP_ACTIONS:
            raise _fail(f"{p}.action", f"unknown seccomp action {action!r}")
        args = []
        for ap, a in _list(s, "args", p):
            op = _get(a, "op", str, ap, "")
            if op not in SECCOMP_OPS:
                raise _fail(f"{ap}.op", f"unknown comparison {op!r}")
            idx = _uint(a, "index", ap, 0)
            if idx > 5:
                raise _fail(f"{ap}.index", f"syscalls have 6 arguments (0..5), got {idx}")
            args.append(SeccompArg(idx, _uint(a, "value", ap, 0), op, _uint(a, "valueTwo", ap, 0)))
        rules.append(SyscallRule(names, action, _uint(s, "errnoRet", p), tuple(args)))
    if default == "SCMP_ACT_NOTIFY" or any(r.action == "SCMP_ACT_NOTIFY" for r in rules):
        if not d.get("listenerPath"):
            raise _fail(f"{path}.listenerPath", "is required with SCMP_ACT_NOTIFY")
    return Seccomp(default_action=default, default_errno_ret=_uint(d, "defaultErrnoRet", path),
                   architectures=_strs(d, "architectures", path), flags=flags,
                   listener_path=_get(d, "listenerPath", str, path, ""), syscalls=tuple(rules))


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
