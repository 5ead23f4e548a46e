"""OCI ``linux.resources`` → ordered cgroup file writes (pure: no I/O).

v1 writes are ``(controller, filename, value)``; v2 writes are ``(filename, value)``. The order of
the list is the order of the writes: it matters (cpu.cfs_period_us before cpu.cfs_quota_us, the
devices deny-all before the allow rules, memory/memsw depending on the current limits — see
:func:`order_v1_memory`).

Zero means "not set" for the byte, share, period and weight fields, and -1 means "unlimited",
as in runc: a config.json produced by docker carries explicit zeros for unset limits.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeGuard

    from dockyard.oci.runtime_spec import DeviceRule, Resources

from dockyard.errors import InvalidArgument

# Kernel files hold "unlimited" as a page-rounded 2**63-1; anything this large means no limit.
UNLIMITED_THRESHOLD = 1 << 62

_MEM = "memory.limit_in_bytes"
_MEMSW = "memory.memsw.limit_in_bytes"


def _set(v: int | None) -> TypeGuard[int]:
    return v is not None and v != 0


def _limit(v: int) -> str:
    """A byte/count limit as v2 writes it: -1 (or any negative) is "max"."""
    return "max" if v < 0 else str(v)


def _page_size(size: str) -> str:
    if not size or not size.isalnum():
        raise InvalidArgument(f"hugepage limit: invalid page size {size!r} (expected e.g. 2MB)")
    return size


def device_rule(rule: DeviceRule) -> str:
    """A device rule in the devices.allow/deny syntax: ``c 1:3 rwm``, ``a *:* rwm``."""
    major = "*" if rule.major is None else str(rule.major)
    minor = "*" if rule.minor is None else str(rule.minor)
    return f"{rule.type} {major}:{minor} {rule.access}"


def is_deny_all(rule: DeviceRule) -> bool:
    return not rule.allow and rule.type == "a" and rule.major is None and rule.minor is None


def v1_device_writes(rules: tuple[DeviceRule, ...]) -> list[tuple[str, str, str]]:
    """runc's order: a leading deny-all becomes ``a`` in devices.deny, then every other rule in
    order (an allow-only list sorted, as runc writes it)."""
    out: list[tuple[str, str, str]] = []
    rest = rules
    if rules and is_deny_all(rules[0]):
        out.append(("devices", "devices.deny", "a"))
        rest = rules[1:]
        if all(r.allow and r.type != "a" for r in rest):
            # runc's devices emulator writes an allow list sorted by (major, minor, type), "*"
            # first; the kernel lists devices.list in write order.
            rest = tuple(sorted(rest, key=lambda r: (-1 if r.major is None else r.major,
                                                     -1 if r.minor is None else r.minor, r.type)))
    for r in rest:
        out.append(("devices", "devices.allow" if r.allow else "devices.deny", device_rule(r)))
    return out


def v1_writes(res: Resources, *, update: bool = False) -> list[tuple[str, str, str]]:
    """Writes for cgroup v1. ``update`` leaves out device rules (they only change at create, as
    with ``runc update``: rewriting them would deny every device for a moment)."""
    if res.unified:
        raise InvalidArgument("linux.resources.unified: needs cgroup v2; this host uses cgroup v1")
    out: list[tuple[str, str, str]] = []
    cpu = res.cpu
    if cpu is not None:
        if cpu.cpus:
            out.append(("cpuset", "cpuset.cpus", cpu.cpus))
        if cpu.mems:
            out.append(("cpuset", "cpuset.mems", cpu.mems))
    if not update:
        out.extend(v1_device_writes(res.devices))
    mem = res.memory
    if mem is not None:
        swap = mem.swap
        if mem.limit == -1 and not _set(swap):
            swap = -1  # unlimited memory and unset swap: lift both (runc)
        if _set(mem.limit):
            out.append(("memory", _MEM, str(mem.limit)))
        if _set(swap):
            out.append(("memory", _MEMSW, str(swap)))
        if _set(mem.reservation):
            out.append(("memory", "memory.soft_limit_in_bytes", str(mem.reservation)))
        if _set(mem.kernel_tcp):
            out.append(("memory", "memory.kmem.tcp.limit_in_bytes", str(mem.kernel_tcp)))
        if mem.swappiness is not None:
            out.append(("memory", "memory.swappiness", str(mem.swappiness)))
        if mem.disable_oom_killer is not None:
            out.append(("memory", "memory.oom_control", "1" if mem.disable_oom_killer else "0"))
    if cpu is not None:
        if _set(cpu.shares):
            out.append(("cpu", "cpu.shares", str(cpu.shares)))
        if _set(cpu.period):
            out.append(("cpu", "cpu.cfs_period_us", str(cpu.period)))
        if _set(cpu.quota):
            out.append(("cpu", "cpu.cfs_quota_us", str(cpu.quota)))
        if cpu.burst is not None:
            out.append(("cpu", "cpu.cfs_burst_us", str(cpu.burst)))
        if _set(cpu.realtime_period):
            out.append(("cpu", "cpu.rt_period_us", str(cpu.realtime_period)))
        if _set(cpu.realtime_runtime):
            out.append(("cpu", "cpu.rt_runtime_us", str(cpu.realtime_runtime)))
        if cpu.idle is not None:
            out.append(("cpu", "cpu.idle", str(cpu.idle)))
    if res.pids is not None:
        out.append(("pids", "pids.max", "max" if res.pids.limit <= 0 else str(res.pids.limit)))
    bio = res.block_io
    if bio is not None:
        if _set(bio.weight):
            out.append(("blkio", "blkio.weight", str(bio.weight)))
        if _set(bio.leaf_weight):
            out.append(("blkio", "blkio.leaf_weight", str(bio.leaf_weight)))
        for wd in bio.weight_device:
            if _set(wd.weight):
                out.append(("blkio", "blkio.weight_device", f"{wd.major}:{wd.minor} {wd.weight}"))
            if _set(wd.leaf_weight):
                out.append(("blkio", "blkio.leaf_weight_device",
                            f"{wd.major}:{wd.minor} {wd.leaf_weight}"))
        for fname, devs in (("read_bps_device", bio.throttle_read_bps_device),
                            ("write_bps_device", bio.throttle_write_bps_device),
                            ("read_iops_device", bio.throttle_read_iops_device),
                            ("write_iops_device", bio.throttle_write_iops_device)):
            for t in devs:
                out.append(("blkio", f"blkio.throttle.{fname}", f"{t.major}:{t.minor} {t.rate}"))
    for h in res.hugepage_limits:
        out.append(("hugetlb", f"hugetlb.{_page_size(h.page_size)}.limit_in_bytes", str(h.limit)))
    return out


def v1_update_writes(res: Resources) -> list[tuple[str, str, str]]:
    """Writes for ``update`` on v1: the same conversion without device rules."""
    return v1_writes(res, update=True)


def _eff(v: int) -> int:
    """A v1 memory value for comparison: -1 and the kernel's huge "unlimited" are infinite."""
    return 1 << 64 if v < 0 or v >= UNLIMITED_THRESHOLD else v


def memsw_first(new_limit: int | None, new_memsw: int | None,
                current_limit: int, current_memsw: int) -> bool:
    """Whether memory.memsw.limit_in_bytes must be written before memory.limit_in_bytes.

    The kernel keeps limit <= memsw at every moment. Writing the limit first fails when it rises
    above the current memsw; writing memsw first fails when it drops below the current limit.
    Limit first is preferred (it is right for a fresh cgroup, where memsw is unlimited).
    """
    if new_memsw is None:
        return False
    if new_limit is None or _eff(new_limit) <= _eff(current_memsw):
        return False
    return True


def order_v1_memory(writes: list[tuple[str, str, str]], current_limit: int,
                    current_memsw: int) -> list[tuple[str, str, str]]:
    """``writes`` with the memory.limit_in_bytes / memsw pair in the order the current values allow."""
    idx = {w[1]: i for i, w in enumerate(writes) if w[0] == "memory" and w[1] in (_MEM, _MEMSW)}
    if len(idx) != 2:
        return list(writes)
    i, j = idx[_MEM], idx[_MEMSW]
    new_limit, new_memsw = int(writes[i][2]), int(writes[j][2])
    if memsw_first(new_limit, new_memsw, current_limit, current_memsw) != (j < i):
        out = list(writes)
        out[i], out[j] = out[j], out[i]
        return out
    return list(writes)


# ---------------------------------------------------------------- cgroup v2


def cpu_shares_to_weight(shares: int) -> int:
    """runc's mapping of v1 cpu.shares (2..262144) onto v2 cpu.weight (1..10000)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """runc's mapping of v1 blkio.weight (10..1000) onto v2 io.weight (1..10000)."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap: int | None, limit: int | None) -> int | None:
    """OCI memory.swap (memory+swap, as in v1) → v2 memory.swap.max (swap alone); -1 = max.

    None means "leave memory.swap.max alone". Mirrors runc's ConvertMemorySwapToCgroupV2Value.
    """
    swap = swap or 0
    limit = limit or 0
    if limit == -1 and swap == 0:
        return -1
    if swap == -1:
        return -1
    if swap == 0:
        return None
    if limit in (0, -1):
        raise InvalidArgument("linux.resources.memory.swap: cannot set a swap limit without a memory limit")
    if swap < limit:
        raise InvalidArgument(f"linux.resources.memory.swap: memory+swap limit {swap} is below "
                              f"the memory limit {limit}")
    return swap - limit


def v2_writes(res: Resources) -> list[tuple[str, str]]:
    """Writes for cgroup v2. Device rules are not part of it (v2 needs an eBPF program)."""
    out: list[tuple[str, str]] = []
    cpu = res.cpu
    if cpu is not None:
        if cpu.cpus:
            out.append(("cpuset.cpus", cpu.cpus))
        if cpu.mems:
            out.append(("cpuset.mems", cpu.mems))
    mem = res.memory
    if mem is not None:
        swap = swap_to_v2(mem.swap, mem.limit)
        if _set(mem.limit):
            out.append(("memory.max", _limit(mem.limit)))
        if swap is not None:
            out.append(("memory.swap.max", _limit(swap)))
        if _set(mem.reservation):
            out.append(("memory.low", _limit(mem.reservation)))
    if cpu is not None:
        if _set(cpu.shares):
            out.append(("cpu.weight", str(cpu_shares_to_weight(cpu.shares))))
        if _set(cpu.quota) or _set(cpu.period):
            value = str(cpu.quota) if cpu.quota is not None and cpu.quota > 0 else "max"
            if _set(cpu.period):
                value += f" {cpu.period}"
            out.append(("cpu.max", value))
        if cpu.burst is not None:
            out.append(("cpu.max.burst", str(cpu.burst)))
        if cpu.idle is not None:
            out.append(("cpu.idle", str(cpu.idle)))
        if _set(cpu.realtime_period) or _set(cpu.realtime_runtime):
            raise InvalidArgument("linux.resources.cpu: realtimeRuntime/realtimePeriod are not "
                                  "supported by cgroup v2")
    if res.pids is not None:
        out.append(("pids.max", "max" if res.pids.limit <= 0 else str(res.pids.limit)))
    bio = res.block_io
    if bio is not None:
        if _set(bio.weight):
            out.append(("io.weight", str(blkio_weight_to_io_weight(bio.weight))))
        for wd in bio.weight_device:
            if _set(wd.weight):
                out.append(("io.weight",
                            f"{wd.major}:{wd.minor} {blkio_weight_to_io_weight(wd.weight)}"))
        for key, devs in (("rbps", bio.throttle_read_bps_device),
                          ("wbps", bio.throttle_write_bps_device),
                          ("riops", bio.throttle_read_iops_device),
                          ("wiops", bio.throttle_write_iops_device)):
            for t in devs:
                out.append(("io.max", f"{t.major}:{t.minor} {key}={t.rate if t.rate else 'max'}"))
    for h in res.hugepage_limits:
        out.append((f"hugetlb.{_page_size(h.page_size)}.max", str(h.limit)))
    for key, value in res.unified:
        if not key or "/" in key or key.startswith("."):
            raise InvalidArgument(f"linux.resources.unified.{key}: must name a file in the cgroup")
        out.append((key, value))
    return out


def v2_update_writes(res: Resources) -> list[tuple[str, str]]:
    """Writes for ``update`` on v2 (the same conversion; v2 has no device files)."""
    return v2_writes(res)


def v2_controllers(writes: list[tuple[str, str]]) -> list[str]:
    """The controllers the v2 writes touch (``memory.max`` → ``memory``), in first-use order."""
    out: list[str] = []
    for fname, _ in writes:
        ctrl = fname.split(".", 1)[0]
        if ctrl != "cgroup" and ctrl not in out:
            out.append(ctrl)
    return out
