"""The ``Config`` and ``HostConfig`` objects of ``docker inspect`` for a freshly created container.

The presentation edge of a create request: the client's (already validated) values re-serialized
the way dockerd re-serializes its Go structs: every known key in Docker's order, ``omitempty``
keys left out when empty, unknown keys dropped, and the defaults dockerd fills in at create
(``RestartPolicy.Name`` ``no``, ``LogConfig.Type`` ``json-file``, ``ShmSize`` 64 MiB, ``IpcMode``
``private``, ``PidsLimit`` null for "unlimited", the default masked and read-only paths).
Merging with the image (Env, Cmd, Labels, ...) is the engine's.
"""

from __future__ import annotations

import copy

from dockyard.engine.request_fields import Fields
from dockyard.oci.spec_builder import MASKED_PATHS, READONLY_PATHS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_OMIT = object()  # an omitempty key: left out when the client sent nothing

#: ContainerConfig, in Docker's field order, with the value a missing key shows.
CONFIG_KEYS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", _OMIT), ("Tty", False),
    ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None),
    ("Healthcheck", _OMIT), ("ArgsEscaped", _OMIT), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("NetworkDisabled", _OMIT), ("MacAddress", _OMIT),
    ("OnBuild", None), ("Labels", {}), ("StopSignal", _OMIT), ("StopTimeout", _OMIT),
    ("Shell", _OMIT),
)
_EMPTY_LIST: list = []
#: HostConfig (with the embedded Resources), in Docker's field order.
HOST_CONFIG_KEYS: tuple[tuple[str, Any], ...] = (
    ("Binds", None), ("ContainerIDFile", ""), ("LogConfig", None), ("NetworkMode", "default"),
    ("PortBindings", {}), ("RestartPolicy", None), ("AutoRemove", False), ("VolumeDriver", ""),
    ("VolumesFrom", None), ("ConsoleSize", [0, 0]), ("Annotations", _OMIT), ("CapAdd", None),
    ("CapDrop", None), ("CgroupnsMode", ""), ("Dns", _EMPTY_LIST), ("DnsOptions", _EMPTY_LIST),
    ("DnsSearch", _EMPTY_LIST), ("ExtraHosts", None), ("GroupAdd", None), ("IpcMode", ""),
    ("Cgroup", ""), ("Links", None), ("OomScoreAdj", 0), ("PidMode", ""), ("Privileged", False),
    ("PublishAllPorts", False), ("ReadonlyRootfs", False), ("SecurityOpt", None),
    ("StorageOpt", _OMIT), ("Tmpfs", _OMIT), ("UTSMode", ""), ("UsernsMode", ""),
    ("ShmSize", 0), ("Sysctls", _OMIT), ("Runtime", _OMIT), ("Isolation", ""),
    ("CpuShares", 0), ("Memory", 0), ("NanoCpus", 0), ("CgroupParent", ""), ("BlkioWeight", 0),
    ("BlkioWeightDevice", _EMPTY_LIST), ("BlkioDeviceReadBps", _EMPTY_LIST),
    ("BlkioDeviceWriteBps", _EMPTY_LIST), ("BlkioDeviceReadIOps", _EMPTY_LIST),
    ("BlkioDeviceWriteIOps", _EMPTY_LIST), ("CpuPeriod", 0), ("CpuQuota", 0),
    ("CpuRealtimePeriod", 0), ("CpuRealtimeRuntime", 0), ("CpusetCpus", ""), ("CpusetMems", ""),
    ("Devices", _EMPTY_LIST), ("DeviceCgroupRules", None), ("DeviceRequests", None),
    ("MemoryReservation", 0), ("MemorySwap", 0), ("MemorySwappiness", None),
    ("OomKillDisable", False), ("PidsLimit", None), ("Ulimits", None), ("CpuCount", 0),
    ("CpuPercent", 0), ("IOMaximumIOps", 0), ("IOMaximumBandwidth", 0), ("Mounts", _OMIT),
    ("MaskedPaths", None), ("ReadonlyPaths", None), ("Init", _OMIT),
)
_HEALTH_KEYS = ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")


def _fill(fields: Fields, keys: tuple[tuple[str, Any], ...], overrides: dict) -> dict:
    out: dict = {}
    for key, default in keys:
        if key in overrides:
            value = overrides[key]
        else:
            value = fields.raw(key)
            if value is None:
                value = default
        if value is _OMIT or (value is None and default is _OMIT):
            continue
        out[key] = copy.deepcopy(value)  # the request's objects must not alias the record's
    return out


def present_config(top: Fields, version: tuple[int, int]) -> dict:
    """``Config`` of ``docker inspect`` before the image merge."""
    overrides: dict = {}
    for key in ("Cmd", "Entrypoint"):
        value = top.str_slice(key)
        overrides[key] = None if value is None else list(value)
    if top.raw("Healthcheck") is not None:
        h = top.obj("Healthcheck")
        health = {k: h.raw(k) for k in _HEALTH_KEYS if h.raw(k)}
        if version < (1, 44):
            health.pop("StartInterval", None)
        overrides["Healthcheck"] = health
    if version >= (1, 44):
        overrides["MacAddress"] = _OMIT  # deprecated: the endpoint's MacAddress counts
    for key in ("ExposedPorts", "Volumes"):
        raw = top.raw(key)
        if raw is not None:
            overrides[key] = {k: {} for k in raw}
    if not top.boolean("NetworkDisabled"):
        overrides["NetworkDisabled"] = _OMIT
    return _fill(top, CONFIG_KEYS, overrides)


def present_host_config(host: Fields, *, privileged: bool, overrides: dict) -> dict:
    """``HostConfig`` of ``docker inspect``. ``overrides``: the values the caller normalized
    (RestartPolicy, LogConfig, NetworkMode, IpcMode, CgroupnsMode, ShmSize, PortBindings, ...)."""
    values = dict(overrides)
    for key, default in (("MaskedPaths", MASKED_PATHS), ("ReadonlyPaths", READONLY_PATHS)):
        if key not in values and host.raw(key) is None:
            values[key] = None if privileged else list(default)
    return _fill(host, HOST_CONFIG_KEYS, values)
