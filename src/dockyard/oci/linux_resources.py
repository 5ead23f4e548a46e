"""OCI runtime-spec ``linux.resources`` and ``linux.seccomp``: typed records and their parsers."""

from __future__ import annotations

from dockyard.oci._fields import _fail, _get, _list, _obj, _str_map, _strs, _uint
from dockyard.record import Record

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
