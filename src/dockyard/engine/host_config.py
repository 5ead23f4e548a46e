"""The typed pieces of a create request's ``HostConfig`` (and its ports): restart policy, log
configuration, security options, devices, block-I/O throttles, published ports, extra hosts.

Each ``parse_*`` takes the :class:`~dockyard.engine.request_fields.Fields` of the request and
raises ``InvalidArgument`` (400) with dockerd's wording where dockerd refuses, ``NotImplemented``
(501) where dockerd would act but this host or dockyard cannot (SELinux, AppArmor, GPUs).
"""

from __future__ import annotations

import ipaddress
import re

from dockyard import errors
from dockyard.engine.request_fields import Fields
from dockyard.engine.units import parse_size
from dockyard.errors import InvalidArgument
from dockyard.record import Record

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
#: Docker's drivers that all mean "dockyard's own file log", and "none".
LOG_DRIVERS = ("json-file", "k8s-file", "local", "none")
#: Options Docker's json-file driver accepts (local: a subset). Only the two rotation options act.
LOG_OPTIONS = frozenset(("max-size", "max-file", "compress", "labels", "labels-regex", "env",
                         "env-regex", "tag"))
DEFAULT_LOG_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_LOG_MAX_FILE = 3
PROTOCOLS = ("tcp", "udp", "sctp")
_CGROUP_RULE = re.compile(r"[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}")
_CPUSET = re.compile(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*")
#: Sysctls a container may set (runc: those in a namespace of its own); net.* needs its own
#: network namespace, the IPC ones their own IPC namespace, the UTS ones their own UTS namespace.
IPC_SYSCTLS = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                         "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                         "kernel.shm_rmid_forced"))
UTS_SYSCTLS = frozenset(("kernel.hostname", "kernel.domainname"))
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


class RestartPolicy(Record):
    name: str = "no"  # no | always | unless-stopped | on-failure
    max_retries: int = 0  # on-failure only; 0: no limit


class LogConfig(Record):
    """Where the container's output goes. ``json-file``, ``k8s-file`` and ``local`` all mean
    dockyard's rotated file log; ``none`` keeps nothing. ``max_size`` 0: never rotate."""

    type: str = "json-file"
    max_size: int = DEFAULT_LOG_MAX_SIZE
    max_file: int = DEFAULT_LOG_MAX_FILE
    options: tuple[tuple[str, str], ...] = ()  # LogConfig.Config as sent


class Security(Record):
    """What ``HostConfig.SecurityOpt`` asks for."""

    no_new_privileges: bool = False
    seccomp_unconfined: bool = False
    seccomp_profile: str = ""  # a JSON profile's text; "" = the default profile
    unmask_system_paths: bool = False  # systempaths=unconfined: nothing masked or read-only


class DeviceMapping(Record):
    """``--device /dev/fuse:/dev/fuse:rwm``."""

    path_on_host: str
    path_in_container: str
    cgroup_permissions: str = "rwm"


class ThrottleDevice(Record):
    """``--device-read-bps /dev/sda:1mb``: a block device and a rate (bytes or operations per s)."""

    path: str
    rate: int


class WeightDevice(Record):
    path: str
    weight: int


class PortSpec(Record):
    """``80/tcp``."""

    port: int
    proto: str = "tcp"


class PortBinding(Record):
    """``-p 127.0.0.1:8080-8081:80/tcp``. ``host_port`` 0: an ephemeral port;
    ``host_port_end`` = ``host_port`` unless a range was given."""

    port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0


# ---------------------------------------------------------------- restart, log


def parse_restart(host: Fields) -> RestartPolicy:
    policy = host.obj("RestartPolicy")
    name = policy.string("Name") or "no"
    retries = policy.integer("MaximumRetryCount")
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of "
                              "'no', 'always', 'on-failure', or 'unless-stopped'")
    if name == "on-failure":
        if retries < 0:
            raise InvalidArgument("invalid restart policy: maximum retry count cannot be "
                                  "negative")
    elif retries != 0:
        raise InvalidArgument(f"invalid restart policy: maximum retry count cannot be used "
                              f"with restart policy '{name}'")
    return RestartPolicy(name, retries)


def parse_log(host: Fields) -> LogConfig:
    log = host.obj("LogConfig")
    kind = log.string("Type") or "json-file"
    options = log.string_map("Config") or ()
    if kind not in LOG_DRIVERS:
        raise InvalidArgument(f"HostConfig.LogConfig.Type: logging driver '{kind}' is not "
                              f"supported: use one of {', '.join(LOG_DRIVERS)}")
    if kind == "none":  # dockerd ignores the options of "none"
        return LogConfig("none", 0, 0, options)
    opts = dict(options)
    for key in opts:
        if key not in LOG_OPTIONS:
            raise InvalidArgument(f"HostConfig.LogConfig.Config: unknown log opt '{key}' for "
                                  f"{kind} log driver")
    max_size = DEFAULT_LOG_MAX_SIZE
    if "max-size" in opts:
        text = opts["max-size"]
        if text == "-1":
            max_size = 0
        else:
            try:
                max_size = parse_size(text)
            except InvalidArgument:
                max_size = -1
            if max_size <= 0:
                raise InvalidArgument(f"HostConfig.LogConfig.Config: invalid max-size "
                                      f"{text!r}: expected a positive size such as 10m, or -1")
    max_file = DEFAULT_LOG_MAX_FILE
    if "max-file" in opts:
        text = opts["max-file"]
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise InvalidArgument(f"HostConfig.LogConfig.Config: invalid max-file {text!r}: "
                                  "expected a whole number of at least 1")
        max_file = int(text)
        if max_size == 0 and max_file > 1:
            raise InvalidArgument("HostConfig.LogConfig.Config: max-file can only be set if "
                                  "max-size is set")
    if max_size == 0:
        max_file = 1
    return LogConfig(kind, max_size, max_file, options)


# ---------------------------------------------------------------- security


def parse_security(opts: tuple[str, ...]) -> Security:
    """``no-new-privileges[:true|false]``, ``seccomp=unconfined|<profile JSON>``,
    ``systempaths=unconfined``; ``label=…`` and ``apparmor=…`` need an LSM this kernel does not
    run (``apparmor=unconfined`` and ``label=disable`` ask for nothing and are accepted)."""
    nnp = False
    unconfined = False
    unmask = False
    profile = ""
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")  # the legacy "label:..." spelling
        if key == "no-new-privileges":
            if not sep or value == "true":
                nnp = True
            elif value == "false":
                nnp = False
            else:
                raise InvalidArgument(f"HostConfig.SecurityOpt: invalid --security-opt "
                                      f"{opt!r}: no-new-privileges takes true or false")
        elif key == "seccomp" and sep:
            if value == "unconfined":
                unconfined, profile = True, ""
            elif value.lstrip().startswith("{"):
                unconfined, profile = False, value
            else:
                raise InvalidArgument(f"HostConfig.SecurityOpt: seccomp={value[:40]!r}: expected "
                                      "'unconfined' or the profile's JSON text (the client "
                                      "reads a profile file)")
        elif key == "apparmor" and sep:
            if value != "unconfined":
                raise errors.NotImplemented(
                    f"HostConfig.SecurityOpt {opt!r}: AppArmor is not enabled "
                    "on this kernel; only apparmor=unconfined is accepted")
        elif key == "label" and sep:
            if value != "disable":
                raise errors.NotImplemented(
                    f"HostConfig.SecurityOpt {opt!r}: SELinux is not enabled on this kernel, "
                    "so labels cannot be applied; only label=disable is accepted")
        elif key == "systempaths" and value == "unconfined":
            unmask = True  # what the docker CLI turns into empty Masked/ReadonlyPaths
        else:
            raise InvalidArgument(f"HostConfig.SecurityOpt: invalid --security-opt: {opt!r}")
    return Security(nnp, unconfined, profile, unmask)


# ---------------------------------------------------------------- resources


def check_resources(host: Fields) -> None:
    """dockerd's ``verifyPlatformContainerResources`` checks that need no host facts."""
    memory = host.integer("Memory", minimum=0)
    swap = host.integer("MemorySwap", minimum=-1)
    reservation = host.integer("MemoryReservation", minimum=0)
    mib6 = 6 * 1024 * 1024
    if 0 < memory < mib6:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if swap > 0 and memory == 0:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap "
                              "limit, see usage")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage")
    if 0 < reservation < mib6:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation "
                              "limit, see usage")
    swappiness = host.opt_integer("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidArgument(f"Invalid value: {swappiness}, valid memory swappiness range is "
                              "0-100")
    nano = host.integer("NanoCpus", minimum=0)
    period = host.integer("CpuPeriod", minimum=0)
    quota = host.integer("CpuQuota", minimum=-1)
    host.integer("CpuShares", minimum=0)
    if nano and (period or quota > 0):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period/Quota cannot both "
                              "be set")
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                              "than 1 second (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    for key in ("CpuRealtimePeriod", "CpuRealtimeRuntime"):
        if host.integer(key, minimum=0):
            raise errors.NotImplemented(
                f"HostConfig.{key}: real-time CPU scheduling is not supported "
                "by dockyard")
    for key, what in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        value = host.string(key)
        if value and not _CPUSET.fullmatch(value):
            raise InvalidArgument(f"Invalid value {value} for cpuset {what}")
    weight = host.integer("BlkioWeight", minimum=0, maximum=65535)
    if weight and not 10 <= weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    adj = host.integer("OomScoreAdj")
    if not -1000 <= adj <= 1000:
        raise InvalidArgument(f"Invalid value {adj}, range for oom score adj is [-1000, 1000]")
    shm = host.opt_integer("ShmSize")
    if shm is not None and shm < 0:
        raise InvalidArgument("SHM size can not be less than 0")


def check_sysctls(sysctls: tuple[tuple[str, str], ...], *, network_mode: str, ipc_mode: str,
                  uts_mode: str) -> None:
    """Only namespaced sysctls, and only when the container has that namespace to itself (runc
    refuses the rest at start; refusing at create gives the client a 400 instead of a dead
    container)."""
    for key, _ in sysctls:
        where = f"HostConfig.Sysctls: sysctl '{key}' is not allowed"
        if not key or "/" in key or ".." in key:
            raise InvalidArgument(f"HostConfig.Sysctls: invalid sysctl name {key!r}")
        if key.startswith("net."):
            if network_mode == "host" or network_mode.startswith("container:"):
                raise InvalidArgument(f"{where} with the network mode {network_mode!r}")
        elif key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if ipc_mode == "host" or ipc_mode.startswith("container:"):
                raise InvalidArgument(f"{where} with the IPC mode {ipc_mode!r}")
        elif key in UTS_SYSCTLS:
            if uts_mode == "host":
                raise InvalidArgument(f"{where} with the UTS mode 'host'")
        else:
            raise InvalidArgument(f"{where}: it is not namespaced (only net.*, fs.mqueue.*, the "
                                  "IPC kernel.* ones and kernel.hostname/domainname are)")


def parse_devices(host: Fields) -> tuple[DeviceMapping, ...]:
    out = []
    for d in host.objects("Devices"):
        src = d.string("PathOnHost")
        dst = d.string("PathInContainer") or src
        perms = d.string("CgroupPermissions") or "rwm"
        if not src.startswith("/"):
            raise InvalidArgument(f"{d.path}: device path on host {src!r} must be absolute")
        if not dst.startswith("/"):
            raise InvalidArgument(f"{d.path}: device path in container {dst!r} must be absolute")
        if not perms or set(perms) - set("rwm") or len(set(perms)) != len(perms):
            raise InvalidArgument(f"{d.path}: invalid device cgroup permissions {perms!r}: "
                                  "use r, w and m")
        out.append(DeviceMapping(src, dst, perms))
    return tuple(out)


def parse_cgroup_rules(host: Fields) -> tuple[str, ...]:
    rules = host.strings("DeviceCgroupRules") or ()
    for rule in rules:
        if not _CGROUP_RULE.fullmatch(rule):
            raise InvalidArgument(f"HostConfig.DeviceCgroupRules: invalid device cgroup rule "
                                  f"{rule!r}: expected 'c|b|a major:minor rwm'")
    return rules


def parse_throttles(host: Fields, key: str) -> tuple[ThrottleDevice, ...]:
    out = []
    for d in host.objects(key):
        path = d.string("Path")
        if not path.startswith("/"):
            raise InvalidArgument(f"{d.path}: device path {path!r} must be absolute")
        out.append(ThrottleDevice(path, d.integer("Rate", minimum=0)))
    return tuple(out)


def parse_weight_devices(host: Fields) -> tuple[WeightDevice, ...]:
    out = []
    for d in host.objects("BlkioWeightDevice"):
        path = d.string("Path")
        weight = d.integer("Weight", minimum=0)
        if not path.startswith("/"):
            raise InvalidArgument(f"{d.path}: device path {path!r} must be absolute")
        if not 10 <= weight <= 1000:
            raise InvalidArgument(f"{d.path}: Range of blkio weight is from 10 to 1000")
        out.append(WeightDevice(path, weight))
    return tuple(out)


# ---------------------------------------------------------------- network-facing


def parse_port(key: str, where: str) -> tuple[int, int, str]:
    """``"80"``, ``"80/udp"``, ``"8000-8010/tcp"`` -> (first, last, proto)."""
    port, _, proto = key.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"{where}: invalid protocol {proto!r} in port {key!r}: use tcp, "
                              "udp or sctp")
    first, last = _port_range(port, where, key)
    if first == 0:
        raise InvalidArgument(f"{where}: invalid port {key!r}: 0 is not a container port")
    return first, last, proto


def _port_range(text: str, where: str, key: str) -> tuple[int, int]:
    lo, dash, hi = text.partition("-")
    try:
        first = int(lo) if lo.isascii() and lo.isdigit() else -1
        last = (int(hi) if hi.isascii() and hi.isdigit() else -1) if dash else first
    except ValueError:  # pragma: no cover - isdigit guards
        first = last = -1
    if not (0 <= first <= 65535 and 0 <= last <= 65535 and first <= last):
        raise InvalidArgument(f"{where}: invalid port {key!r}")
    return first, last


def parse_exposed_ports(keys: tuple[str, ...]) -> tuple[PortSpec, ...]:
    out: list[PortSpec] = []
    for key in keys:
        first, last, proto = parse_port(key, "Config.ExposedPorts")
        for p in range(first, last + 1):
            spec = PortSpec(p, proto)
            if spec not in out:
                out.append(spec)
    return tuple(out)


def parse_port_bindings(host: Fields) -> tuple[PortBinding, ...]:
    raw = host.raw("PortBindings")
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise host.bad("PortBindings", raw, "an object")
    out = []
    for key in raw:
        where = f"{host.name('PortBindings')}[{key!r}]"
        first, last, proto = parse_port(key, where)
        for b in host.obj("PortBindings").objects(key):
            ip = b.string("HostIp")
            if ip:
                _ip(ip, b.path)
            hp = b.string("HostPort")
            hfirst, hlast = _port_range(hp, b.path, hp) if hp else (0, 0)
            if first != last:  # a container range maps onto an equally long host range
                if hp and hlast - hfirst != last - first:
                    raise InvalidArgument(f"{b.path}: host port range {hp!r} does not match "
                                          f"container port range {key!r}")
                for i, p in enumerate(range(first, last + 1)):
                    h = hfirst + i if hp else 0
                    out.append(PortBinding(p, proto, ip, h, h))
            else:
                out.append(PortBinding(first, proto, ip, hfirst, hlast))
    return tuple(out)


def _ip(text: str, where: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise InvalidArgument(f"{where}: invalid IP address {text!r}") from None


def parse_extra_hosts(host: Fields) -> tuple[str, ...]:
    """``name:ip`` or ``name=ip`` (ip may be IPv6, bracketed or not, or ``host-gateway``),
    normalized to ``name:ip``."""
    out = []
    for entry in host.strings("ExtraHosts") or ():
        eq = entry.find("=")
        colon = entry.find(":")
        sep = eq if eq != -1 and (colon == -1 or eq < colon) else colon
        name, addr = (entry[:sep], entry[sep + 1:]) if sep != -1 else (entry, "")
        where = f"HostConfig.ExtraHosts: invalid extra host {entry!r}"
        if not name or not addr or not _HOSTNAME.fullmatch(name):
            raise InvalidArgument(f"{where}: expected host:ip")
        if addr != "host-gateway":
            addr = _ip(addr, where)
        out.append(f"{name}:{addr}")
    return tuple(out)


def parse_dns(host: Fields) -> tuple[str, ...]:
    return tuple(_ip(s, f"HostConfig.Dns: invalid nameserver {s!r}")
                 for s in host.strings("Dns") or ())
