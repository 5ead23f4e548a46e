"""Pure planning: an OCI spec in, the ordered filesystem steps of a container's rootfs out.

Nothing here touches the kernel; ``rootfs.py`` applies the steps through ``kernel.Syscalls``.
Steps follow runc's order (libcontainer/rootfs_linux.go): mounts in spec order, then /dev, then
pivot_root, then sysctls, read-only paths, masked paths, the read-only root.
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument
from dockyard.kernel import syscalls as k
from dockyard.oci.runtime_spec import Device, Mount, Spec
from dockyard.record import Record

# mount(8) option -> (clear?, flag). runc's table (libcontainer/specconv).
_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "acl": (False, 0), "async": (True, k.MS_SYNCHRONOUS), "atime": (True, k.MS_NOATIME),
    "bind": (False, k.MS_BIND), "defaults": (False, 0), "dev": (True, k.MS_NODEV),
    "diratime": (True, k.MS_NODIRATIME), "dirsync": (False, k.MS_DIRSYNC), "exec": (True, k.MS_NOEXEC),
    "iversion": (False, 1 << 23), "lazytime": (False, k.MS_LAZYTIME), "loud": (True, k.MS_SILENT),
    "mand": (False, k.MS_MANDLOCK), "noatime": (False, k.MS_NOATIME), "nodev": (False, k.MS_NODEV),
    "nodiratime": (False, k.MS_NODIRATIME), "noexec": (False, k.MS_NOEXEC),
    "noiversion": (True, 1 << 23), "nolazytime": (True, k.MS_LAZYTIME), "nomand": (True, k.MS_MANDLOCK),
    "norelatime": (True, k.MS_RELATIME), "nostrictatime": (True, k.MS_STRICTATIME),
    "nosuid": (False, k.MS_NOSUID), "nosymfollow": (False, k.MS_NOSYMFOLLOW),
    "rbind": (False, k.MS_BIND | k.MS_REC), "relatime": (False, k.MS_RELATIME),
    "remount": (False, k.MS_REMOUNT), "ro": (False, k.MS_RDONLY), "rw": (True, k.MS_RDONLY),
    "silent": (False, k.MS_SILENT), "strictatime": (False, k.MS_STRICTATIME),
    "suid": (True, k.MS_NOSUID), "sync": (False, k.MS_SYNCHRONOUS), "symfollow": (True, k.MS_NOSYMFOLLOW),
}
_PROPAGATION: dict[str, int] = {
    "private": k.MS_PRIVATE, "rprivate": k.MS_PRIVATE | k.MS_REC, "shared": k.MS_SHARED,
    "rshared": k.MS_SHARED | k.MS_REC, "slave": k.MS_SLAVE, "rslave": k.MS_SLAVE | k.MS_REC,
    "unbindable": k.MS_UNBINDABLE, "runbindable": k.MS_UNBINDABLE | k.MS_REC,
}
# Flags that a bind remount can change; others (propagation, MS_REC) are not remount flags.
_REMOUNT_MASK = (k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC | k.MS_NOATIME
                 | k.MS_NODIRATIME | k.MS_RELATIME | k.MS_STRICTATIME | k.MS_NOSYMFOLLOW)

# The devices every container gets (OCI runtime-spec "Default Devices").
DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
)


class MountStep(Record):
    """One mount, already translated to mount(2) arguments."""

    source: str
    destination: str  # absolute, inside the rootfs
    fstype: str
    flags: int = 0
    data: str = ""
    propagation: int = 0  # applied after the mount, per propagation option, in order
    bind: bool = False
    readonly_remount: bool = False  # a bind mount whose flags need MS_REMOUNT to take effect
    copy_up: bool = False  # runc's "tmpcopyup": copy the destination's content into the tmpfs
    no_symlink: bool = False  # refuse if the destination is a symlink (proc, sysfs, /dev)


class DeviceStep(Record):
    device: Device
    bind_from_host: bool  # in a user namespace mknod is denied: bind the host node instead


class RootfsPlan(Record):
    rootfs: str
    mounts: tuple[MountStep, ...]
    devices: tuple[DeviceStep, ...]
    dev_symlinks: tuple[tuple[str, str], ...]
    setup_dev: bool  # /dev is ours (not a bind of the host's): populate it
    ptmx_link: bool
    console: bool
    root_propagation: int
    pivot: bool
    sysctl: tuple[tuple[str, str], ...]
    readonly_paths: tuple[str, ...]
    masked_paths: tuple[str, ...]
    readonly_root: bool
    rootfs_propagation: int


def parse_options(options: tuple[str, ...], where: str) -> tuple[int, int, str, bool, tuple[int, ...]]:
    """Mount options -> (flags, cleared, data, copy_up, propagation flags in order)."""
    flags = cleared = 0
    data: list[str] = []
    props: list[int] = []
    copy_up = False
    for opt in options:
        if opt in _FLAG_OPTIONS:
            clear, flag = _FLAG_OPTIONS[opt]
            if clear:
                flags &= ~flag
                cleared |= flag
            else:
                flags |= flag
        elif opt in _PROPAGATION:
            props.append(_PROPAGATION[opt])
        elif opt == "tmpcopyup":
            copy_up = True
        elif opt in ("idmap", "ridmap"):
            raise InvalidArgument(f"config.json: {where}: option {opt!r} (id-mapped mounts) is not supported")
        elif opt:
            data.append(opt)
    return flags, cleared, ",".join(data), copy_up, tuple(props)


def mount_step(m: Mount, where: str, bundle: str = "") -> MountStep:
    flags, _cleared, data, copy_up, props = parse_options(m.options, where)
    fstype = m.type or ("bind" if flags & k.MS_BIND else "")
    is_bind = bool(flags & k.MS_BIND) or fstype == "bind"
    if is_bind:
        flags |= k.MS_BIND
        if not m.source:
            raise InvalidArgument(f"config.json: {where}.source: a bind mount needs a source")
        if not m.source.startswith("/"):
            if not bundle:
                raise InvalidArgument(f"config.json: {where}.source: must be absolute, got {m.source!r}")
            # runtime-spec: a bind source is absolute or relative to the bundle.
            m = Mount(m.destination, m.type, f"{bundle.rstrip('/')}/{m.source}", m.options)
    elif not fstype:
        raise InvalidArgument(f"config.json: {where}.type: is required for a non-bind mount")
    if copy_up and fstype != "tmpfs":
        raise InvalidArgument(f"config.json: {where}.options: tmpcopyup is only valid for tmpfs")
    return MountStep(
        source=m.source or fstype, destination=m.destination, fstype="" if is_bind else fstype,
        flags=flags, data=data, propagation=props[-1] if props else 0, bind=is_bind,
        readonly_remount=is_bind and bool(flags & _REMOUNT_MASK), copy_up=copy_up,
        no_symlink=m.destination in ("/proc", "/sys", "/dev") or fstype in ("proc", "sysfs"),
    )


def remount_flags(step: MountStep) -> int:
    return k.MS_BIND | k.MS_REMOUNT | (step.flags & _REMOUNT_MASK)


def _check_sysctl(spec: Spec) -> None:
    """Sysctls must belong to a namespace the container owns (runc's validation)."""
    lx = spec.linux
    for key, _value in lx.sysctl:
        where = f"config.json: linux.sysctl.{key}"
        if not key or ".." in key or "/" in key or key.startswith("."):
            raise InvalidArgument(f"{where}: invalid name")
        if key.startswith(("kernel.msg", "kernel.sem", "kernel.shm")) or key.startswith("fs.mqueue."):
            if lx.namespace("ipc") is None:
                raise InvalidArgument(f"{where}: needs a private ipc namespace")
        elif key.startswith("net."):
            if lx.namespace("network") is None:
                raise InvalidArgument(f"{where}: needs a private network namespace")
        elif key == "kernel.domainname":
            if lx.namespace("uts") is None:
                raise InvalidArgument(f"{where}: needs a private uts namespace")
        elif key == "kernel.hostname":
            raise InvalidArgument(f"{where}: set the hostname field of the spec instead")
        else:
            raise InvalidArgument(f"{where}: not namespaced; refusing to change the host's value")


def rootfs_plan(spec: Spec, rootfs: str, *, no_pivot: bool = False, bundle: str = "") -> RootfsPlan:
    """Everything the init does to build the container's filesystem view, in order."""
    lx = spec.linux
    if lx.namespace("mount") is None or lx.namespace("mount").path:  # type: ignore[union-attr]
        raise InvalidArgument("config.json: linux.namespaces: a new mount namespace is required")
    if spec.hostname and lx.namespace("uts") is None:
        raise InvalidArgument("config.json: hostname: setting it needs a private uts namespace")
    if spec.domainname and lx.namespace("uts") is None:
        raise InvalidArgument("config.json: domainname: setting it needs a private uts namespace")
    _check_sysctl(spec)
    mounts = tuple(mount_step(m, f"mounts[{i}]", bundle or os.path.dirname(rootfs))
                   for i, m in enumerate(spec.mounts))
    dev_mount = next((m for m in mounts if m.destination == "/dev"), None)
    setup_dev = dev_mount is None or not dev_mount.bind
    userns = lx.namespace("user") is not None
    devices: list[DeviceStep] = []
    if setup_dev:
        seen = set()
        for d in lx.devices + DEFAULT_DEVICES:  # spec devices override the defaults
            if d.path in seen:
                continue
            seen.add(d.path)
            devices.append(DeviceStep(d, bind_from_host=userns))
    has_pts = any(m.destination == "/dev/pts" for m in mounts)
    propagation = _PROPAGATION.get(lx.rootfs_propagation, 0)
    return RootfsPlan(
        rootfs=rootfs, mounts=mounts, devices=tuple(devices),
        dev_symlinks=DEV_SYMLINKS if setup_dev else (), setup_dev=setup_dev,
        ptmx_link=setup_dev and has_pts,
        console=bool(spec.process and spec.process.terminal),
        root_propagation=propagation or (k.MS_SLAVE | k.MS_REC), pivot=not no_pivot,
        sysctl=lx.sysctl, readonly_paths=lx.readonly_paths, masked_paths=lx.masked_paths,
        readonly_root=bool(spec.root and spec.root.readonly), rootfs_propagation=propagation,
    )
