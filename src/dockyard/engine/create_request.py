"""``POST /containers/create``: the JSON body (Docker Engine API v1.45) as a typed
:class:`CreateRequest`, checked the way dockerd checks it.

The body is a ``ContainerConfig`` at the top level plus ``HostConfig`` and ``NetworkingConfig``.
Keys match case-insensitively and ``null`` means "absent", as in Go's decoder. Everything the
engine acts on becomes a typed field: the spec-shaping options in :class:`RunOptions` (``run``;
``container_id`` is left for the engine), mounts as :class:`MountRequest` records, the rest on the
request itself. ``config`` and ``host_config`` are the normalized Docker-shaped objects the engine
shows verbatim in ``GET /containers/{id}/json`` (Docker's defaults filled in, see
:mod:`dockyard.engine.create_inspect`); nothing should read them to decide anything.

What is not decided here: merging with the image (the spec builder does), resolving
``container:<x>`` modes and ``VolumesFrom`` (the engine), ``No command specified`` (the spec
builder, after the merge), whether bind sources exist.
"""

from __future__ import annotations

import re

from dockyard import errors
from dockyard.engine.create_inspect import present_config, present_host_config
from dockyard.engine.create_mounts import MountRequest, parse_mounts
from dockyard.engine.host_config import (
    DeviceMapping,
    LogConfig,
    PortBinding,
    PortSpec,
    RestartPolicy,
    ThrottleDevice,
    WeightDevice,
    check_resources,
    check_sysctls,
    parse_cgroup_rules,
    parse_devices,
    parse_dns,
    parse_exposed_ports,
    parse_extra_hosts,
    parse_log,
    parse_port_bindings,
    parse_restart,
    parse_security,
    parse_throttles,
    parse_weight_devices,
)
from dockyard.engine.request_fields import Fields
from dockyard.errors import InvalidArgument
from dockyard.oci.spec_builder import (
    DEFAULT_SHM_SIZE,
    ULIMIT_NAMES,
    RunOptions,
    Ulimit,
    capabilities,
    parse_signal,
)
from dockyard.record import Record

__all__ = [
    "CreateRequest", "DeviceMapping", "EndpointRequest", "HealthConfig", "LogConfig",
    "MountRequest", "PortBinding", "PortSpec", "RestartPolicy", "ThrottleDevice", "WeightDevice",
    "parse_create", "validate_name",
]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_MS_NS = 1_000_000


class HealthConfig(Record):
    """``Config.Healthcheck``. ``test`` is the command to run (``CMD-SHELL`` already wrapped in
    ``Config.Shell`` or ``/bin/sh -c``); ``()`` with ``disabled`` False means "the image's test"
    (the other fields still override the image's). Durations in seconds, 0 = the default (or the
    image's). ``docker_test`` is ``Test`` as sent (``("CMD-SHELL", "cmd")``)."""

    test: tuple[str, ...] = ()
    kind: str = ""  # "CMD" | "CMD-SHELL" | "NONE" | "" (inherit)
    interval: float = 0.0
    timeout: float = 0.0
    start_period: float = 0.0
    start_interval: float = 0.0
    retries: int = 0
    disabled: bool = False
    docker_test: tuple[str, ...] = ()

    def to_engine(self) -> Any:
        """The same check as ``dockyard.engine.health.HealthConfig`` (what its ``merge`` with
        the image's check and its monitor take)."""
        from dockyard.engine.health import HealthConfig as EngineHealth

        return EngineHealth(test=self.docker_test, interval=self.interval, timeout=self.timeout,
                            start_period=self.start_period, start_interval=self.start_interval,
                            retries=self.retries)


class EndpointRequest(Record):
    """One ``NetworkingConfig.EndpointsConfig`` entry, kept for the network service."""

    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str = ""
    ipv6_address: str = ""
    mac_address: str = ""
    links: tuple[str, ...] = ()
    driver_options: tuple[tuple[str, str], ...] = ()


class CreateRequest(Record):
    name: str = ""  # without the leading "/"; "" = the engine picks one
    image: str = ""  # as the client wrote it
    run: RunOptions = RunOptions()
    mounts: tuple[MountRequest, ...] = ()
    restart: RestartPolicy = RestartPolicy()
    auto_remove: bool = False
    log: LogConfig = LogConfig()
    healthcheck: HealthConfig | None = None  # None: the image's
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    stop_timeout: int | None = None
    init: bool = False
    shell: tuple[str, ...] = ()
    # namespaces the engine resolves ("container:<x>" stays verbatim)
    network_mode: str = "default"
    pid_mode: str = ""
    ipc_mode: str = "private"
    uts_mode: str = ""
    cgroupns_mode: str = "host"
    # kept for the network service
    network_disabled: bool = False
    mac_address: str = ""
    extra_hosts: tuple[str, ...] = ()  # "name:ip", ip may be "host-gateway"
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    exposed_ports: tuple[PortSpec, ...] = ()
    port_bindings: tuple[PortBinding, ...] = ()
    publish_all_ports: bool = False
    links: tuple[str, ...] = ()
    endpoints: tuple[EndpointRequest, ...] = ()
    # devices and block I/O (RunOptions has no fields for them yet)
    devices: tuple[DeviceMapping, ...] = ()
    device_cgroup_rules: tuple[str, ...] = ()
    device_read_bps: tuple[ThrottleDevice, ...] = ()
    device_write_bps: tuple[ThrottleDevice, ...] = ()
    device_read_iops: tuple[ThrottleDevice, ...] = ()
    device_write_iops: tuple[ThrottleDevice, ...] = ()
    blkio_weight: int = 0
    blkio_weight_devices: tuple[WeightDevice, ...] = ()
    memory_swappiness: int | None = None  # None / -1: the kernel's
    # security (the security layer turns these into RunOptions.seccomp)
    seccomp_unconfined: bool = False
    seccomp_profile: str = ""
    masked_paths: tuple[str, ...] | None = None  # None: Docker's defaults
    readonly_paths: tuple[str, ...] | None = None
    volumes_from: tuple[str, ...] = ()  # "container[:ro|rw]"
    runtime: str = ""  # HostConfig.Runtime; "" = the daemon's default
    warnings: tuple[str, ...] = ()  # for the create response's Warnings
    # the presentation edge: GET /containers/{id}/json shows these verbatim
    config: dict = None  # type: ignore[assignment]  # always set by parse_create
    host_config: dict = None  # type: ignore[assignment]


def validate_name(name: str) -> str:
    """Docker's container name rule; returns the name without its leading ``/``."""
    if not NAME.fullmatch(name):
        raise InvalidArgument(f"Invalid container name ({name}), only "
                              "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def parse_create(body: bytes | str | dict, *, name: str = "", api_version: str = "1.45",
                 default_cgroupns: str = "host") -> CreateRequest:
    """The create request ``body`` (JSON text or the decoded object) for container ``name``
    (the ``?name=`` query, may be empty). ``default_cgroupns`` is what an empty CgroupnsMode
    means on this host (Docker: ``host`` on cgroups v1, ``private`` on v2)."""
    top = Fields(_decode(body), "")
    if name:
        name = validate_name(name)
    image = top.string("Image")
    if not image:
        raise InvalidArgument("Config.Image: no image specified")
    host = top.obj("HostConfig")
    version = _version(api_version)
    warnings: list[str] = []

    entrypoint = top.str_slice("Entrypoint")
    cmd = top.str_slice("Cmd")
    env = top.strings("Env") or ()
    for i, e in enumerate(env):
        key = e.split("=", 1)[0]
        if not key or "\0" in e:
            raise InvalidArgument(f"Config.Env[{i}]: invalid environment variable {e!r}: "
                                  "expected KEY=value")
    working_dir = top.string("WorkingDir")
    if working_dir and not working_dir.startswith("/"):
        raise InvalidArgument(f"the working directory '{working_dir}' is invalid, it needs to "
                              "be an absolute path")
    hostname = top.string("Hostname")
    if len(hostname.encode()) > 64 or "\0" in hostname or "/" in hostname:
        raise InvalidArgument(f"Config.Hostname: invalid hostname {hostname!r}: at most 64 "
                              "bytes, no '/'")
    stop_signal = top.string("StopSignal")
    if stop_signal:
        parse_signal(stop_signal)
    stop_timeout = top.opt_integer("StopTimeout", minimum=-1)
    labels = top.string_map("Labels") or ()
    shell = top.strings("Shell") or ()
    volumes = top.keys_of("Volumes") or ()

    # namespaces
    network_mode = host.string("NetworkMode") or "default"
    pid_mode = _mode(host, "PidMode", ("", "host"), container=True)
    ipc_mode = _mode(host, "IpcMode", ("", "private", "shareable", "host", "none"),
                     container=True) or "private"
    if ipc_mode == "none":
        raise errors.NotImplemented(
            "HostConfig.IpcMode 'none' (no /dev/shm) is not supported by "
            "dockyard yet")
    uts_mode = _mode(host, "UTSMode", ("", "host"))
    cgroupns_mode = _mode(host, "CgroupnsMode", ("", "host", "private")) or default_cgroupns
    userns = host.string("UsernsMode")
    if userns not in ("", "host"):
        raise errors.NotImplemented(
            f"HostConfig.UsernsMode {userns!r}: user namespaces are not "
            "supported by dockyard")
    if host.string("Cgroup"):
        raise errors.NotImplemented(
            "HostConfig.Cgroup: joining another container's cgroup is not "
            "supported by dockyard")
    isolation = host.string("Isolation")
    if isolation not in ("", "default"):
        raise InvalidArgument(f"Invalid isolation: {isolation!r} - linux only supports "
                              "'default'")
    if network_mode.startswith("container:") and not network_mode[10:]:
        raise InvalidArgument("HostConfig.NetworkMode: 'container:' needs a container name or "
                              "id")

    # network-facing, kept typed for the network service
    extra_hosts = parse_extra_hosts(host)
    dns = parse_dns(host)
    dns_search = host.strings("DnsSearch") or ()
    dns_options = host.strings("DnsOptions") or ()
    exposed = parse_exposed_ports(top.keys_of("ExposedPorts") or ())
    bindings = parse_port_bindings(host)
    publish_all = host.boolean("PublishAllPorts")
    links = host.strings("Links") or ()
    endpoints = _endpoints(top.obj("NetworkingConfig"))
    network_disabled = top.boolean("NetworkDisabled")
    mac = top.string("MacAddress") if version < (1, 44) else ""
    mac = mac or next((e.mac_address for e in endpoints if e.mac_address), "")
    _check_network_conflicts(network_mode, uts_mode, hostname, host, dns, dns_search,
                             dns_options, extra_hosts, bindings, publish_all, exposed, mac,
                             links)
    if network_mode == "host" and (bindings or publish_all):
        warnings.append("Published ports are discarded when using host network mode")
        bindings, publish_all = (), False

    # resources and security
    check_resources(host)
    security = parse_security(host.strings("SecurityOpt") or ())
    cap_add = host.strings("CapAdd") or ()
    cap_drop = host.strings("CapDrop") or ()
    capabilities(RunOptions(cap_add=cap_add, cap_drop=cap_drop))  # unknown names raise
    ulimits = tuple(_ulimit(u) for u in host.objects("Ulimits"))
    if len({u.name for u in ulimits}) != len(ulimits):
        raise InvalidArgument("HostConfig.Ulimits: a ulimit is given twice")
    sysctls = host.string_map("Sysctls") or ()
    check_sysctls(sysctls, network_mode=network_mode, ipc_mode=ipc_mode, uts_mode=uts_mode)
    if host.objects("DeviceRequests"):
        raise errors.NotImplemented(
            "HostConfig.DeviceRequests: device requests (GPUs) are not "
            "supported by dockyard")
    if host.string_map("StorageOpt"):
        raise errors.NotImplemented(
            "HostConfig.StorageOpt: storage options (a per-container size) are not supported by "
            "dockyard's overlay snapshotter")
    volume_driver = host.string("VolumeDriver")
    if volume_driver not in ("", "local"):
        raise errors.NotImplemented(
            f"HostConfig.VolumeDriver {volume_driver!r}: dockyard has only "
            "the local volume driver")
    for key in ("KernelMemory", "KernelMemoryTCP", "CpuCount", "CpuPercent", "IOMaximumIOps",
                "IOMaximumBandwidth"):
        if host.integer(key, minimum=0):
            warnings.append(f"HostConfig.{key} is not supported on Linux and was ignored")
    cgroup_parent = host.string("CgroupParent")
    if ".." in cgroup_parent.split("/"):
        raise InvalidArgument(f"HostConfig.CgroupParent {cgroup_parent!r}: '..' is not allowed")
    console = host.raw("ConsoleSize")
    console_size = _console_size(host) if console is not None else None

    restart = parse_restart(host)
    auto_remove = host.boolean("AutoRemove")
    if auto_remove and restart.name != "no":
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")

    mounts = parse_mounts(host, volumes)
    pids = host.opt_integer("PidsLimit") or 0
    shm = host.opt_integer("ShmSize") or DEFAULT_SHM_SIZE
    swappiness = host.opt_integer("MemorySwappiness")
    run = RunOptions(
        entrypoint=entrypoint, cmd=cmd, env=env,
        user=top.string("User") or None,
        group_add=host.strings("GroupAdd") or (),
        working_dir=working_dir, hostname=hostname, domainname=top.string("Domainname"),
        tty=top.boolean("Tty"), console_size=console_size,
        read_only=host.boolean("ReadonlyRootfs"),
        network="host" if network_mode == "host" and not network_disabled else "none",
        pid="host" if pid_mode == "host" else "",
        ipc=ipc_mode if ipc_mode in ("private", "shareable", "host") else "",
        uts=uts_mode, cgroupns=cgroupns_mode,
        **({"cgroup_parent": cgroup_parent} if cgroup_parent else {}),
        memory=host.integer("Memory"), memory_swap=host.integer("MemorySwap"),
        memory_reservation=host.integer("MemoryReservation"),
        oom_kill_disable=bool(host.opt_boolean("OomKillDisable")),
        nano_cpus=host.integer("NanoCpus"), cpu_shares=host.integer("CpuShares"),
        cpu_period=host.integer("CpuPeriod"), cpu_quota=host.integer("CpuQuota"),
        cpuset_cpus=host.string("CpusetCpus"), cpuset_mems=host.string("CpusetMems"),
        pids_limit=pids if pids > 0 else 0,
        privileged=host.boolean("Privileged"), cap_add=cap_add, cap_drop=cap_drop,
        no_new_privileges=security.no_new_privileges,
        ulimits=ulimits, oom_score_adj=host.integer("OomScoreAdj"), stop_signal=stop_signal,
        shm_size=shm, sysctls=sysctls,
        annotations=host.string_map("Annotations") or (),
    )
    masked = () if security.unmask_system_paths else host.strings("MaskedPaths")
    readonly = () if security.unmask_system_paths else host.strings("ReadonlyPaths")
    log = parse_log(host)
    host_config = present_host_config(host, privileged=run.privileged, overrides={
        "LogConfig": {"Type": log.type, "Config": dict(log.options)},
        "NetworkMode": network_mode,
        "PortBindings": _raw_object(host, "PortBindings") if bindings else {},
        "PublishAllPorts": publish_all,
        "RestartPolicy": {"Name": restart.name, "MaximumRetryCount": restart.max_retries},
        "CgroupnsMode": cgroupns_mode, "IpcMode": ipc_mode, "ShmSize": shm,
        "MemorySwappiness": None if swappiness in (None, -1) else swappiness,
        "OomKillDisable": run.oom_kill_disable,
        "PidsLimit": run.pids_limit or None,
        **({"MaskedPaths": [], "ReadonlyPaths": []} if security.unmask_system_paths else {}),
    })
    return CreateRequest(
        name=name, image=image, run=run, mounts=mounts, restart=restart,
        auto_remove=auto_remove, log=log,
        healthcheck=_healthcheck(top, shell, version),
        tty=run.tty, open_stdin=top.boolean("OpenStdin"), stdin_once=top.boolean("StdinOnce"),
        attach_stdin=top.boolean("AttachStdin"), attach_stdout=top.boolean("AttachStdout"),
        attach_stderr=top.boolean("AttachStderr"), labels=labels, stop_timeout=stop_timeout,
        init=bool(host.opt_boolean("Init")), shell=shell,
        network_mode=network_mode, pid_mode=pid_mode, ipc_mode=ipc_mode, uts_mode=uts_mode,
        cgroupns_mode=cgroupns_mode, network_disabled=network_disabled,
        mac_address=mac, extra_hosts=extra_hosts, dns=dns, dns_search=dns_search,
        dns_options=dns_options, exposed_ports=exposed, port_bindings=bindings,
        publish_all_ports=publish_all, links=links, endpoints=endpoints,
        devices=parse_devices(host), device_cgroup_rules=parse_cgroup_rules(host),
        device_read_bps=parse_throttles(host, "BlkioDeviceReadBps"),
        device_write_bps=parse_throttles(host, "BlkioDeviceWriteBps"),
        device_read_iops=parse_throttles(host, "BlkioDeviceReadIOps"),
        device_write_iops=parse_throttles(host, "BlkioDeviceWriteIOps"),
        blkio_weight=host.integer("BlkioWeight"), blkio_weight_devices=parse_weight_devices(host),
        memory_swappiness=None if swappiness in (None, -1) else swappiness,
        seccomp_unconfined=security.seccomp_unconfined,
        seccomp_profile=security.seccomp_profile, masked_paths=masked, readonly_paths=readonly,
        volumes_from=_volumes_from(host), runtime=host.string("Runtime"),
        warnings=tuple(warnings),
        config=present_config(top, version),
        host_config=host_config,
    )


# ---------------------------------------------------------------- pieces


def _decode(body: bytes | str | dict) -> dict:
    if isinstance(body, dict):
        return body
    import json

    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument("invalid JSON body: not UTF-8") from None
    if not body.strip():
        raise InvalidArgument("invalid JSON body: empty (the container config is required)")
    try:
        data = json.loads(body)
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON body: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid JSON body: expected an object with the container config")
    return data


def _raw_object(fields: Fields, key: str) -> dict:
    raw = fields.raw(key)
    return raw if isinstance(raw, dict) else {}


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.lstrip("v").partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise InvalidArgument(f"invalid API version {text!r}")
    return int(major), int(minor)


def _mode(host: Fields, key: str, allowed: tuple[str, ...], *, container: bool = False) -> str:
    value = host.string(key)
    if value in allowed:
        return value
    if container and value.startswith("container:") and value[10:]:
        return value
    choices = [repr(a) for a in allowed if a] + (["'container:<name|id>'"] if container else [])
    raise InvalidArgument(f"HostConfig.{key}: invalid mode {value!r}: use one of "
                          f"{', '.join(choices)}")


def _check_network_conflicts(network_mode: str, uts_mode: str, hostname: str, host: Fields,
                             dns: tuple, dns_search: tuple, dns_options: tuple,
                             extra_hosts: tuple, bindings: tuple, publish_all: bool,
                             exposed: tuple, mac: str, links: tuple) -> None:
    """dockerd's ``runconfig`` conflicts (each a 400)."""
    if uts_mode == "host" and hostname:
        raise InvalidArgument("conflicting options: hostname and the UTS mode")
    if network_mode == "host" and links:
        raise InvalidArgument("conflicting options: host type networking can't be used with "
                              "links. This would result in undefined behavior")
    if not network_mode.startswith("container:"):
        if network_mode == "host" and mac:
            raise InvalidArgument("conflicting options: mac-address and the network mode")
        return
    if hostname:
        raise InvalidArgument("conflicting options: hostname and the network mode")
    if dns or dns_search or dns_options:
        raise InvalidArgument("conflicting options: dns and the network mode")
    if extra_hosts:
        raise InvalidArgument("conflicting options: custom host-to-IP mapping and the network "
                              "mode")
    if bindings or publish_all:
        raise InvalidArgument("conflicting options: port publishing and the container type "
                              "network mode")
    if exposed:
        raise InvalidArgument("conflicting options: port exposing and the container type "
                              "network mode")
    if mac:
        raise InvalidArgument("conflicting options: mac-address and the network mode")
    if links:
        raise InvalidArgument("conflicting options: container type network can't be used "
                              "with links. This would result in undefined behavior")


def _ulimit(u: Fields) -> Ulimit:
    name = u.string("Name")
    soft = u.integer("Soft", minimum=-1)
    hard = u.integer("Hard", minimum=-1)
    if name not in ULIMIT_NAMES:
        raise InvalidArgument(f"{u.path}: invalid ulimit type: {name!r}")
    if soft > hard and hard != -1:  # -1: unlimited (RLIM_INFINITY)
        raise InvalidArgument(f"{u.path}: ulimit soft limit must be less than or equal to hard "
                              f"limit: {soft} > {hard}")
    return Ulimit(name, soft, hard)


def _console_size(host: Fields) -> tuple[int, int] | None:
    raw = host.raw("ConsoleSize")
    if (not isinstance(raw, list) or len(raw) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 65536
                       for n in raw)):
        raise host.bad("ConsoleSize", raw, "[height, width]")
    return (raw[0], raw[1]) if raw[0] or raw[1] else None


def _volumes_from(host: Fields) -> tuple[str, ...]:
    out = host.strings("VolumesFrom") or ()
    for spec in out:
        ref, colon, mode = spec.partition(":")
        if not ref or (colon and mode not in ("ro", "rw", "z", "Z", "ro,z", "ro,Z", "rw,z",
                                               "rw,Z", "z,ro", "Z,ro", "z,rw", "Z,rw")):
            raise InvalidArgument(f"HostConfig.VolumesFrom: invalid volumes-from {spec!r}: "
                                  "expected container[:ro|rw]")
    return out


def _endpoints(net: Fields) -> tuple[EndpointRequest, ...]:
    raw = net.raw("EndpointsConfig")
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise net.bad("EndpointsConfig", raw, "an object")
    configs = net.obj("EndpointsConfig")
    out = []
    for network in raw:
        e = configs.obj(network)
        ipam = e.obj("IPAMConfig")
        out.append(EndpointRequest(
            network, aliases=e.strings("Aliases") or (),
            ipv4_address=ipam.string("IPv4Address"), ipv6_address=ipam.string("IPv6Address"),
            mac_address=e.string("MacAddress"), links=e.strings("Links") or (),
            driver_options=e.string_map("DriverOpts") or ()))
    return tuple(out)


def _healthcheck(top: Fields, shell: tuple[str, ...],
                 version: tuple[int, int]) -> HealthConfig | None:
    if top.raw("Healthcheck") is None:
        return None
    h = top.obj("Healthcheck")
    test = h.strings("Test") or ()
    durations = {}
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        ns = h.integer(key)
        if key == "StartInterval" and version < (1, 44):
            ns = 0  # dockerd ignores it from older clients
        if ns != 0 and ns < _MS_NS:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
        durations[key] = ns / 1e9
    retries = h.integer("Retries")
    if retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    kind = test[0] if test else ""
    if kind == "NONE":
        argv: tuple[str, ...] = ()
    elif kind == "CMD":
        argv = test[1:]
        if not argv or not argv[0]:
            raise InvalidArgument("Config.Healthcheck.Test: CMD needs a command to run")
    elif kind == "CMD-SHELL":
        if len(test) != 2 or not test[1]:
            raise InvalidArgument("Config.Healthcheck.Test: CMD-SHELL takes one command string")
        argv = (*(shell or ("/bin/sh", "-c")), test[1])
    elif kind:
        raise InvalidArgument(f"Config.Healthcheck.Test: unknown test type {kind!r}: use "
                              "NONE, CMD or CMD-SHELL")
    else:
        argv = ()
    return HealthConfig(argv, kind, durations["Interval"], durations["Timeout"],
                        durations["StartPeriod"], durations["StartInterval"], retries,
                        disabled=kind == "NONE", docker_test=test)
