"""runc's default ``config.json`` (``spec``), the device rules every container gets, ``features``."""

from __future__ import annotations

from dockyard.oci.runtime_spec import (CAPABILITIES, HOOK_KINDS, NAMESPACE_TYPES, DeviceRule,
                                       Resources)
from dockyard.record import replace

VERSION = "0.1.0"
SPEC_VERSION = "1.2.0"

# Allowed on top of the spec's device rules, as runc does (libcontainer/specconv AllowedDevices):
# mknod of anything, the default devices, ptys and tun.
ALLOWED_DEVICES = (
    DeviceRule(True, "c", None, None, "m"), DeviceRule(True, "b", None, None, "m"),
    DeviceRule(True, "c", 1, 3, "rwm"), DeviceRule(True, "c", 1, 8, "rwm"),
    DeviceRule(True, "c", 1, 7, "rwm"), DeviceRule(True, "c", 5, 0, "rwm"),
    DeviceRule(True, "c", 1, 5, "rwm"), DeviceRule(True, "c", 1, 9, "rwm"),
    DeviceRule(True, "c", 136, None, "rwm"), DeviceRule(True, "c", 5, 2, "rwm"),
    DeviceRule(True, "c", 10, 200, "rwm"),
)


def effective_resources(resources: Resources | None, devices: tuple = ()) -> Resources:
    """The spec's resources plus allow rules for default devices and ``linux.devices``."""
    res = resources or Resources()
    extra = tuple(DeviceRule(True, d.type if d.type in "cb" else "c", d.major, d.minor, "rwm")
                  for d in devices if d.type != "p")
    return replace(res, devices=res.devices + ALLOWED_DEVICES + extra)


def default_spec(rootless: bool = False) -> dict:
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    spec: dict = {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "dockyard",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    if rootless:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
        del spec["linux"]["resources"]
    return spec


def features() -> dict:
    """``features``: what this runtime implements (runtime-spec features.md)."""
    from dockyard.runtime import seccomp
    from dockyard.runtime.plan import _FLAG_OPTIONS, _PROPAGATION

    seccomp_features = seccomp.features()
    annotations = {"org.opencontainers.runc.version": "1.1.5-compatible",
                   "io.dockyard.runtime.version": VERSION}
    annotations.update(seccomp_features.pop("annotations", {}) or {})
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted(set(_FLAG_OPTIONS) | set(_PROPAGATION) | {"tmpcopyup"}),
        "linux": {
            "namespaces": [n for n in NAMESPACE_TYPES],
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": seccomp_features,
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": annotations,
    }
