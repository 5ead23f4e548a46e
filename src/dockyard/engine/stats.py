"""Container stats: cgroup counters (v1 or v2) and the init's network counters, sampled into a
``StatsSample`` and rendered as Docker's stats JSON (API v1.45 ContainerStatsResponse).

Why the readers take roots and paths instead of finding them: the cgroup and /proc roots are
parameters (unit tests pass a temporary directory that mimics cgroupfs). Where the container's
cgroup lives is decided by the runtime's managers (``runtime/cgroups``): ``locate`` reuses their
path rules rather than re-deriving them.

What dockerd does, reproduced here: v1 reads cpuacct (usage, per-cpu, user/system ticks), cpu
(throttling), memory (usage, max usage, failcnt, limit, memory.stat), pids and blkio (the first
of bfq, cfq, throttle-recursive, throttle files that has entries); v2 reads cpu.stat, memory.*,
pids.* and io.stat ("read"/"write" entries). An unlimited memory limit reports the host's memory.
``to_docker_json`` renders a sample (Go's ``omitempty`` fields left out when zero, as dockerd's
encoder does); ``stats_stream`` is the /containers/{id}/stats loop.
"""

from __future__ import annotations

import asyncio
import os
import time

from dockyard.errors import InvalidArgument
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

DEFAULT_ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "/dockyard"

#: v1 blkio files by group, in libcontainer's order of preference; a group is used when its
#: first file has entries. (docker field, file)
_BLKIO_GROUPS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("io_serviced_recursive", "blkio.bfq.io_serviced_recursive"),
     ("io_service_bytes_recursive", "blkio.bfq.io_service_bytes_recursive")),
    (("sectors_recursive", "blkio.sectors_recursive"),
     ("io_service_time_recursive", "blkio.io_service_time_recursive"),
     ("io_wait_time_recursive", "blkio.io_wait_time_recursive"),
     ("io_merged_recursive", "blkio.io_merged_recursive"),
     ("io_queue_recursive", "blkio.io_queued_recursive"),
     ("io_time_recursive", "blkio.time_recursive"),
     ("io_serviced_recursive", "blkio.io_serviced_recursive"),
     ("io_service_bytes_recursive", "blkio.io_service_bytes_recursive")),
    (("io_serviced_recursive", "blkio.throttle.io_serviced_recursive"),
     ("io_service_bytes_recursive", "blkio.throttle.io_service_bytes_recursive")),
    (("io_serviced_recursive", "blkio.throttle.io_serviced"),
     ("io_service_bytes_recursive", "blkio.throttle.io_service_bytes")),
)
BLKIO_FIELDS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
                "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
                "io_time_recursive", "sectors_recursive")


class CgroupLocation(Record):
    """Where one container's cgroup is: v1 {controller: directory}, v2 {"": directory}."""

    version: str
    paths: Mapping[str, str]


class BlkioEntry(Record):
    major: int
    minor: int
    op: str
    value: int


class NetStats(Record):
    """One interface's counters from /proc/<pid>/net/dev."""

    name: str
    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


class StatsSample(Record):
    """Counters read at ``read_ns`` (unix ns). Limits: None = unlimited."""

    version: str
    read_ns: int
    cpu_total: int = 0
    cpu_percpu: tuple[int, ...] = ()
    cpu_kernel: int = 0
    cpu_user: int = 0
    throttle_periods: int = 0
    throttled_periods: int = 0
    throttled_time: int = 0
    system_usage: int = 0
    memory_usage: int = 0
    memory_max_usage: int = 0
    memory_failcnt: int = 0
    memory_limit: int | None = None
    memory_stats: Mapping[str, int] | None = None
    pids_current: int = 0
    pids_limit: int | None = None
    blkio: Mapping[str, tuple[BlkioEntry, ...]] = {}
    networks: tuple[NetStats, ...] | None = None


# ---------------------------------------------------------------------------- locating

def locate(container_id: str, *, root: str = DEFAULT_ROOT, parent: str = DEFAULT_PARENT
           ) -> CgroupLocation:
    """The cgroup the runtime gives a container created with ``cgroup_parent`` ``parent``
    (``linux.cgroupsPath`` = parent/id, resolved by the runtime's own manager)."""
    from dockyard.runtime.cgroups import open_manager

    manager = open_manager(root)
    path = parent.rstrip("/") + "/" + container_id
    return CgroupLocation(manager.version, manager.resolve(path))


def location_from_paths(paths: Mapping[str, str]) -> CgroupLocation:
    """A location from the runtime state's ``cgroup_paths`` (v2 stores its one path under "")."""
    return CgroupLocation("v2" if "" in paths else "v1", dict(paths))


def exists(loc: CgroupLocation) -> bool:
    """True when the cgroup's directories are there (the container is running)."""
    return any(os.path.isdir(p) for p in loc.paths.values())


# ---------------------------------------------------------------------------- file readers

def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
        return None
    except OSError:
        return None  # a cgroup removed between listing and reading: no counter


def _int(text: str | None) -> int:
    try:
        return int((text or "").split()[0])
    except (ValueError, IndexError):
        return 0


def _limit(text: str | None) -> int | None:
    """A limit file: None for absent, "max", or v1's huge "unlimited" (page-rounded INT64_MAX)."""
    if text is None or text.strip() in ("", "max"):
        return None
    v = _int(text)
    return None if v <= 0 or v >= (1 << 62) else v


def parse_kv(text: str | None) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.stat, cpuacct.stat, memory.events)."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        k, _, v = line.strip().partition(" ")
        try:
            out[k] = int(v.strip())
        except ValueError:
            pass
    return out


def parse_blkio_v1(text: str | None) -> tuple[BlkioEntry, ...]:
    """``8:0 Read 4096`` lines (``8:0 4096`` for time/sectors); the ``Total`` line is skipped."""
    out: list[BlkioEntry] = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] == "Total":
            continue
        major, colon, minor = fields[0].partition(":")
        if not colon:
            continue
        try:
            if len(fields) == 2:
                out.append(BlkioEntry(int(major), int(minor), "", int(fields[1])))
            else:
                out.append(BlkioEntry(int(major), int(minor), fields[1], int(fields[2])))
        except ValueError:
            continue
    return tuple(out)


def parse_io_stat_v2(text: str | None) -> tuple[BlkioEntry, ...]:
    """io.stat ``8:0 rbytes=1 wbytes=2 rios=..``: dockerd's "read"/"write" byte entries."""
    out: list[BlkioEntry] = []
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields:
            continue
        major, colon, minor = fields[0].partition(":")
        if not colon:
            continue
        kv = dict(f.partition("=")[::2] for f in fields[1:])
        try:
            out.append(BlkioEntry(int(major), int(minor), "read", int(kv.get("rbytes", "0"))))
            out.append(BlkioEntry(int(major), int(minor), "write", int(kv.get("wbytes", "0"))))
        except ValueError:
            continue
    return tuple(out)


def parse_net_dev(text: str | None) -> tuple[NetStats, ...]:
    """/proc/<pid>/net/dev without ``lo`` (docker leaves the loopback out)."""
    out: list[NetStats] = []
    for line in (text or "").splitlines()[2:]:
        name, colon, rest = line.partition(":")
        name = name.strip()
        if not colon or name == "lo":
            continue
        v = [_int(x) for x in rest.split()]
        if len(v) < 12:
            continue
        out.append(NetStats(name, rx_bytes=v[0], rx_packets=v[1], rx_errors=v[2],
                            rx_dropped=v[3], tx_bytes=v[8], tx_packets=v[9], tx_errors=v[10],
                            tx_dropped=v[11]))
    return tuple(out)


def clock_ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK") or 100
    except (ValueError, OSError):
        return 100


def read_system_cpu_usage(proc: str = "/proc", ticks: int | None = None) -> int:
    """dockerd's system_cpu_usage: the first 7 fields of /proc/stat's ``cpu`` line (user, nice,
    system, idle, iowait, irq, softirq) in clock ticks, as nanoseconds."""
    text = _read(proc.rstrip("/") + "/stat") or ""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            total = sum(_int(f) for f in fields[1:8])
            return total * 1_000_000_000 // (ticks or clock_ticks())
    return 0


def read_host_memory(proc: str = "/proc") -> int:
    """MemTotal in bytes (what docker reports as the limit of an unlimited container)."""
    for line in (_read(proc.rstrip("/") + "/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return _int(parts[1]) * (1024 if parts[-1] == "kB" else 1)
    return 0


def online_cpus() -> int:
    """CPUs the daemon may run on (dockerd: sched_getaffinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------- sampling

def _sample_v1(paths: Mapping[str, str], ticks: int) -> dict:
    kw: dict = {}
    acct = paths.get("cpuacct")
    if acct is not None:
        kw["cpu_total"] = _int(_read(acct + "/cpuacct.usage"))
        kw["cpu_percpu"] = tuple(_int(x) for x in (_read(acct + "/cpuacct.usage_percpu") or
                                                   "").split())
        st = parse_kv(_read(acct + "/cpuacct.stat"))
        kw["cpu_user"] = st.get("user", 0) * 1_000_000_000 // ticks
        kw["cpu_kernel"] = st.get("system", 0) * 1_000_000_000 // ticks
    cpu = paths.get("cpu")
    if cpu is not None:
        st = parse_kv(_read(cpu + "/cpu.stat"))
        kw["throttle_periods"] = st.get("nr_periods", 0)
        kw["throttled_periods"] = st.get("nr_throttled", 0)
        kw["throttled_time"] = st.get("throttled_time", 0)
    mem = paths.get("memory")
    if mem is not None:
        kw["memory_usage"] = _int(_read(mem + "/memory.usage_in_bytes"))
        kw["memory_max_usage"] = _int(_read(mem + "/memory.max_usage_in_bytes"))
        kw["memory_failcnt"] = _int(_read(mem + "/memory.failcnt"))
        kw["memory_limit"] = _limit(_read(mem + "/memory.limit_in_bytes"))
        kw["memory_stats"] = parse_kv(_read(mem + "/memory.stat"))
    pids = paths.get("pids")
    if pids is not None:
        kw["pids_current"] = _int(_read(pids + "/pids.current"))
        kw["pids_limit"] = _limit(_read(pids + "/pids.max"))
    blkio = paths.get("blkio")
    if blkio is not None:
        kw["blkio"] = _blkio_v1(blkio)
    return kw


def _blkio_v1(d: str) -> dict[str, tuple[BlkioEntry, ...]]:
    for group in _BLKIO_GROUPS:
        first = parse_blkio_v1(_read(d + "/" + group[0][1]))
        if not first:
            continue
        out = {group[0][0]: first}
        for field, fname in group[1:]:
            out[field] = parse_blkio_v1(_read(d + "/" + fname))
        return out
    return {}


def _sample_v2(d: str) -> dict:
    cpu = parse_kv(_read(d + "/cpu.stat"))
    events = parse_kv(_read(d + "/memory.events"))
    io = parse_io_stat_v2(_read(d + "/io.stat"))
    return {
        "cpu_total": cpu.get("usage_usec", 0) * 1000,
        "cpu_user": cpu.get("user_usec", 0) * 1000,
        "cpu_kernel": cpu.get("system_usec", 0) * 1000,
        "throttle_periods": cpu.get("nr_periods", 0),
        "throttled_periods": cpu.get("nr_throttled", 0),
        "throttled_time": cpu.get("throttled_usec", 0) * 1000,
        "memory_usage": _int(_read(d + "/memory.current")),
        "memory_failcnt": events.get("oom", 0),
        "memory_limit": _limit(_read(d + "/memory.max")),
        "memory_stats": parse_kv(_read(d + "/memory.stat")),
        "pids_current": _int(_read(d + "/pids.current")),
        "pids_limit": _limit(_read(d + "/pids.max")),
        "blkio": {"io_service_bytes_recursive": io} if io else {},
    }


def sample(cgroup: CgroupLocation, pid: int | None, *, now: float, proc: str = "/proc",
           system_usage: int | None = None, ticks: int | None = None,
           networks: bool = True) -> StatsSample:
    """Read every counter of ``cgroup`` now. ``pid`` (the container's init) gives the network
    counters of its namespace; pass ``networks=False`` for a host-network container (docker
    reports none there). ``system_usage`` defaults to :func:`read_system_cpu_usage`."""
    t = ticks or clock_ticks()
    if cgroup.version == "v2":
        kw = _sample_v2(cgroup.paths.get("", ""))
    else:
        kw = _sample_v1(cgroup.paths, t)
    if system_usage is None:
        system_usage = read_system_cpu_usage(proc, t)
    nets = None
    if networks and pid is not None and pid > 0:
        text = _read(f"{proc.rstrip('/')}/{pid}/net/dev")
        nets = parse_net_dev(text) if text is not None else None
    return StatsSample(cgroup.version, int(now * 1_000_000_000), system_usage=system_usage,
                       networks=nets, **kw)


# ---------------------------------------------------------------------------- Docker's JSON

ZERO_TIME = "0001-01-01T00:00:00Z"


def go_time(ns: int) -> str:
    """Go's RFC3339Nano in UTC: trailing zeros of the fraction dropped, no fraction when 0."""
    sec, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    digits = f"{frac:09d}".rstrip("0")
    return text + ("." + digits if digits else "") + "Z"


def _cpu_json(s: StatsSample | None, online: int) -> dict:
    if s is None:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    usage: dict = {"total_usage": s.cpu_total}
    if s.cpu_percpu:
        usage["percpu_usage"] = list(s.cpu_percpu)
    usage["usage_in_kernelmode"] = s.cpu_kernel
    usage["usage_in_usermode"] = s.cpu_user
    out: dict = {"cpu_usage": usage}
    if s.system_usage:
        out["system_cpu_usage"] = s.system_usage
    if online:
        out["online_cpus"] = online
    out["throttling_data"] = {"periods": s.throttle_periods,
                              "throttled_periods": s.throttled_periods,
                              "throttled_time": s.throttled_time}
    return out


def _memory_json(s: StatsSample, host_memory: int) -> dict:
    limit = s.memory_limit
    if host_memory > 0 and (limit is None or limit > host_memory):
        limit = host_memory
    out: dict = {}
    if s.memory_usage:
        out["usage"] = s.memory_usage
    if s.memory_max_usage:
        out["max_usage"] = s.memory_max_usage
    if s.memory_stats:
        out["stats"] = dict(s.memory_stats)
    if s.memory_failcnt:
        out["failcnt"] = s.memory_failcnt
    if limit:
        out["limit"] = limit
    return out


def _pids_json(s: StatsSample) -> dict:
    out: dict = {}
    if s.pids_current:
        out["current"] = s.pids_current
    if s.pids_limit:
        out["limit"] = s.pids_limit
    return out


def _blkio_json(s: StatsSample) -> dict:
    """v1: every list present (dockerd copies them, ``[]`` when empty); v2: only the bytes list,
    null when there are no devices, as dockerd's v2 conversion."""
    def entries(f: str) -> list[dict] | None:
        rows = s.blkio.get(f)
        if not rows and s.version != "v1":
            return None
        return [{"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}
                for e in rows or ()]

    return {f: entries(f) for f in BLKIO_FIELDS}


def _networks_json(nets: tuple[NetStats, ...]) -> dict:
    return {n.name: {"rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
                     "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped,
                     "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
                     "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped} for n in nets}


def empty_json(*, id: str, name: str) -> dict:  # noqa: A002 - docker's field name
    """What dockerd sends for a container that is not running: zero values, name and id."""
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {},
            "blkio_stats": {f: None for f in BLKIO_FIELDS}, "num_procs": 0,
            "storage_stats": {}, "cpu_stats": _cpu_json(None, 0),
            "precpu_stats": _cpu_json(None, 0), "memory_stats": {},
            "name": _slash(name), "id": id}


def _slash(name: str) -> str:
    return name if name.startswith("/") else "/" + name


def to_docker_json(sample: StatsSample, previous: StatsSample | None, *, id: str,  # noqa: A002
                   name: str, online_cpus: int, system_usage: int | None = None,
                   host_memory: int | None = None) -> dict:
    """One stats object in dockerd's shape and key order. ``previous`` fills ``preread`` and
    ``precpu_stats`` (zero when None, as in the first frame of a stream). ``system_usage``
    overrides the sample's; ``host_memory`` (default: /proc/meminfo) caps the limit."""
    if system_usage is not None:
        from dockyard.record import replace

        sample = replace(sample, system_usage=system_usage)
    mem = read_host_memory() if host_memory is None else host_memory
    out: dict = {
        "read": go_time(sample.read_ns),
        "preread": go_time(previous.read_ns) if previous is not None else ZERO_TIME,
        "pids_stats": _pids_json(sample),
        "blkio_stats": _blkio_json(sample),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_json(sample, online_cpus),
        "precpu_stats": _cpu_json(previous, online_cpus if previous is not None else 0),
        "memory_stats": _memory_json(sample, mem),
        "name": _slash(name),
        "id": id,
    }
    if sample.networks:
        out["networks"] = _networks_json(sample.networks)
    return out


# ---------------------------------------------------------------------------- the stream

def stats_stream(locate: Callable[[], CgroupLocation | None], *, id: str,  # noqa: A002
                 name: str, pid_of: Callable[[], int | None], interval: float = 1.0,
                 stream: bool = True, one_shot: bool = False, networks: bool = True,
                 proc: str = "/proc") -> AsyncIterator[dict]:
    """dockerd's /containers/{id}/stats: ``stream`` yields one object per ``interval`` (the
    first with empty ``precpu_stats``); ``stream=False`` samples twice ``interval`` apart and
    yields the second (so precpu is filled), unless ``one_shot`` (one sample, no wait).
    ``locate`` returning None (not running) gives dockerd's empty object (once when not
    streaming). Reads run in a thread (cgroupfs reads can block on a busy host), and so do
    ``locate`` and ``pid_of``: give them in-memory state, not the store.

    Checks its arguments at the call (``InvalidArgument`` before any response is started);
    the returned iterator does the sampling."""
    if stream and one_shot:
        raise InvalidArgument("cannot have stream=true and one-shot=true")
    return _stream(locate, id, name, pid_of, interval, stream, one_shot, networks, proc)


async def _stream(locate: Callable[[], CgroupLocation | None], id: str,  # noqa: A002
                  name: str, pid_of: Callable[[], int | None], interval: float, stream: bool,
                  one_shot: bool, networks: bool, proc: str) -> AsyncIterator[dict]:
    loop = asyncio.get_running_loop()
    host_memory = await loop.run_in_executor(None, read_host_memory, proc)
    cpus = online_cpus()
    previous: StatsSample | None = None
    skip_first = not stream and not one_shot

    def take() -> StatsSample | None:
        loc = locate()
        if loc is None or not exists(loc):
            return None
        return sample(loc, pid_of(), now=time.time(), proc=proc, networks=networks)

    while True:
        current = await loop.run_in_executor(None, take)
        if current is None:
            previous = None
            yield empty_json(id=id, name=name)
            if not stream:
                return
        else:
            frame = to_docker_json(current, previous, id=id, name=name, online_cpus=cpus,
                                   host_memory=host_memory)
            previous = current
            if skip_first:
                skip_first = False
            else:
                yield frame
                if not stream:
                    return
        await asyncio.sleep(interval)
