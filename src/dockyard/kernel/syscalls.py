"""The only place that talks to libc through ctypes.

``Syscalls`` is the seam: ``LibcSyscalls`` calls the kernel, ``RecordingSyscalls`` records the calls
for unit tests of plans. Every failure raises ``KernelError`` naming the operation and its operands.
Python 3.11 has no ``os.unshare``/``os.setns``/``pivot_root``/``openat2``, hence ctypes.
"""

from __future__ import annotations

import ctypes
import os

from dockyard.errors import KernelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object

# clone flags (linux/sched.h)
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS, "cgroup": CLONE_NEWCGROUP, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER, "pid": CLONE_NEWPID, "network": CLONE_NEWNET, "time": CLONE_NEWTIME,
}
# names under /proc/<pid>/ns/
NAMESPACE_FILES = {
    "mount": "mnt", "cgroup": "cgroup", "uts": "uts", "ipc": "ipc", "user": "user",
    "pid": "pid", "network": "net", "time": "time",
}

# mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

# prctl options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# openat2 resolve flags (linux/openat2.h)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

CLOSE_RANGE_CLOEXEC = 1 << 2

# the new mount API (linux/mount.h): fsopen/fsconfig/fsmount/move_mount
AT_FDCWD = -100
FSOPEN_CLOEXEC = 0x01
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x01
MOUNT_ATTR_RDONLY = 0x01
MOUNT_ATTR_NOSUID = 0x02
MOUNT_ATTR_NODEV = 0x04
MOUNT_ATTR_NOEXEC = 0x08
MOVE_MOUNT_F_EMPTY_PATH = 0x04

_NR = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91},
}
_NR_COMMON = {"openat2": 437, "close_range": 436, "pidfd_open": 434,
              "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432}
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class CapSets:
    """The three per-thread capability sets as 64-bit masks."""

    __slots__ = ("effective", "permitted", "inheritable")

    def __init__(self, effective: int, permitted: int, inheritable: int) -> None:
        self.effective, self.permitted, self.inheritable = effective, permitted, inheritable

    def __repr__(self) -> str:
        return f"CapSets(eff={self.effective:#x}, prm={self.permitted:#x}, inh={self.inheritable:#x})"


class Syscalls(Protocol):
    def unshare(self, flags: int) -> None: ...
    def setns(self, fd: int, nstype: int) -> None: ...
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None) -> None: ...
    def umount2(self, target: str, flags: int) -> None: ...
    def pivot_root(self, new_root: str, put_old: str) -> None: ...
    def sethostname(self, name: str) -> None: ...
    def setdomainname(self, name: str) -> None: ...
    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int: ...
    def capget(self) -> CapSets: ...
    def capset(self, caps: CapSets) -> None: ...
    def openat2(self, dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int: ...
    def close_range(self, first: int, last: int, flags: int) -> None: ...
    def fsopen(self, fstype: str, flags: int) -> int: ...
    def fsconfig(self, fd: int, cmd: int, key: str | None, value: str | None, aux: int) -> None: ...
    def fsmount(self, fd: int, flags: int, attr_flags: int) -> int: ...
    def move_mount(self, from_dfd: int, from_path: str, to_dfd: int, to_path: str, flags: int) -> None: ...
    def close(self, fd: int) -> None: ...
    def syncfs(self, fd: int) -> None: ...


class LibcSyscalls:
    """The real thing. One instance per process; cheap to create."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long
        self._libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                     ctypes.c_ulong, ctypes.c_char_p]
        self._libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                     ctypes.c_ulong, ctypes.c_ulong]
        arch = os.uname().machine
        self._nr = {**_NR_COMMON, **_NR.get(arch, _NR["x86_64"])}

    def _check(self, rc: int, operation: str) -> int:
        if rc < 0:
            raise KernelError(operation, ctypes.get_errno())
        return rc

    def unshare(self, flags: int) -> None:
        self._check(self._libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")

    def setns(self, fd: int, nstype: int) -> None:
        self._check(self._libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns(fd {fd}, {nstype:#x})")

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None) -> None:
        rc = self._libc.mount(source.encode() if source is not None else None, target.encode(),
                              fstype.encode() if fstype is not None else None, flags,
                              data.encode() if data else None)
        if rc < 0:
            what = f"mount {fstype or ''} {source or ''} on {target}".replace("  ", " ")
            raise KernelError(f"{what} (flags {flags:#x}{', ' + data if data else ''})", ctypes.get_errno())

    def umount2(self, target: str, flags: int) -> None:
        self._check(self._libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        rc = self._libc.syscall(ctypes.c_long(self._nr["pivot_root"]), new_root.encode(), put_old.encode())
        self._check(rc, f"pivot_root {new_root} {put_old}")

    def sethostname(self, name: str) -> None:
        b = name.encode()
        self._check(self._libc.sethostname(b, ctypes.c_size_t(len(b))), f"sethostname {name!r}")

    def setdomainname(self, name: str) -> None:
        b = name.encode()
        self._check(self._libc.setdomainname(b, ctypes.c_size_t(len(b))), f"setdomainname {name!r}")

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        return self._check(self._libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option}, {arg2})")

    def capget(self) -> CapSets:
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        self._check(self._libc.syscall(ctypes.c_long(self._nr["capget"]), ctypes.byref(hdr), data), "capget")
        return CapSets(data[0].effective | data[1].effective << 32,
                       data[0].permitted | data[1].permitted << 32,
                       data[0].inheritable | data[1].inheritable << 32)

    def capset(self, caps: CapSets) -> None:
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        m = 0xFFFFFFFF
        data[0] = _CapData(caps.effective & m, caps.permitted & m, caps.inheritable & m)
        data[1] = _CapData(caps.effective >> 32, caps.permitted >> 32, caps.inheritable >> 32)
        self._check(self._libc.syscall(ctypes.c_long(self._nr["capset"]), ctypes.byref(hdr), data),
                    f"capset {caps!r}")

    def openat2(self, dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
        how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
        rc = self._libc.syscall(ctypes.c_long(self._nr["openat2"]), ctypes.c_int(dirfd), path.encode(),
                                ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        return self._check(rc, f"open {path}")

    def close_range(self, first: int, last: int, flags: int) -> None:
        rc = self._libc.syscall(ctypes.c_long(self._nr["close_range"]), ctypes.c_uint(first),
                                ctypes.c_uint(last), ctypes.c_uint(flags))
        self._check(rc, f"close_range({first}, {last})")

    # -- the new mount API (Linux 5.2+; overlayfs takes "lowerdir+" since 6.8)
    def fsopen(self, fstype: str, flags: int) -> int:
        rc = self._libc.syscall(ctypes.c_long(self._nr["fsopen"]), fstype.encode(), ctypes.c_uint(flags))
        return self._check(rc, f"fsopen {fstype}")

    def fsconfig(self, fd: int, cmd: int, key: str | None, value: str | None, aux: int) -> None:
        rc = self._libc.syscall(ctypes.c_long(self._nr["fsconfig"]), ctypes.c_int(fd), ctypes.c_uint(cmd),
                                key.encode() if key is not None else None,
                                value.encode() if value is not None else None, ctypes.c_int(aux))
        if rc < 0:
            err = ctypes.get_errno()
            what = "create" if cmd == FSCONFIG_CMD_CREATE else f"{key}={value}" if value is not None else key
            log = _fs_context_log(fd)
            raise KernelError(f"fsconfig {what}{' (' + log + ')' if log else ''}", err)

    def fsmount(self, fd: int, flags: int, attr_flags: int) -> int:
        rc = self._libc.syscall(ctypes.c_long(self._nr["fsmount"]), ctypes.c_int(fd), ctypes.c_uint(flags),
                                ctypes.c_uint(attr_flags))
        return self._check(rc, f"fsmount (attrs {attr_flags:#x})")

    def move_mount(self, from_dfd: int, from_path: str, to_dfd: int, to_path: str, flags: int) -> None:
        rc = self._libc.syscall(ctypes.c_long(self._nr["move_mount"]), ctypes.c_int(from_dfd),
                                from_path.encode(), ctypes.c_int(to_dfd), to_path.encode(), ctypes.c_uint(flags))
        self._check(rc, f"move_mount to {to_path}")

    def close(self, fd: int) -> None:
        os.close(fd)

    def syncfs(self, fd: int) -> None:
        """Flush the one filesystem holding ``fd`` (cheaper than sync(2), which flushes all)."""
        self._check(self._libc.syncfs(ctypes.c_int(fd)), f"syncfs (fd {fd})")


def _fs_context_log(fd: int) -> str:
    """The messages a filesystem context queued for userspace (``e overlayfs: ...``), joined."""
    msgs = []
    for _ in range(8):
        try:
            msgs.append(os.read(fd, 1024).decode(errors="replace").strip())
        except OSError:  # ENODATA: no more messages
            break
    return "; ".join(m for m in msgs if m)


class RecordingSyscalls:
    """A fake for unit tests: records every call, touches nothing; ``openat2`` returns fake fds."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self._next_fd = 1000
        self.caps = CapSets(0, 0, 0)

    def _rec(self, *call: object) -> None:
        self.calls.append(call)

    def unshare(self, flags: int) -> None:
        self._rec("unshare", flags)

    def setns(self, fd: int, nstype: int) -> None:
        self._rec("setns", fd, nstype)

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None) -> None:
        self._rec("mount", source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int) -> None:
        self._rec("umount2", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._rec("pivot_root", new_root, put_old)

    def sethostname(self, name: str) -> None:
        self._rec("sethostname", name)

    def setdomainname(self, name: str) -> None:
        self._rec("setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        self._rec("prctl", option, arg2, arg3, arg4, arg5)
        return 0

    def capget(self) -> CapSets:
        return self.caps

    def capset(self, caps: CapSets) -> None:
        self._rec("capset", caps.effective, caps.permitted, caps.inheritable)
        self.caps = caps

    def openat2(self, dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
        self._next_fd += 1
        self._rec("openat2", dirfd, path, flags, resolve)
        return self._next_fd

    def close_range(self, first: int, last: int, flags: int) -> None:
        self._rec("close_range", first, last, flags)

    def fsopen(self, fstype: str, flags: int) -> int:
        self._next_fd += 1
        self._rec("fsopen", fstype, flags)
        return self._next_fd

    def fsconfig(self, fd: int, cmd: int, key: str | None, value: str | None, aux: int) -> None:
        self._rec("fsconfig", fd, cmd, key, value, aux)

    def fsmount(self, fd: int, flags: int, attr_flags: int) -> int:
        self._next_fd += 1
        self._rec("fsmount", fd, flags, attr_flags)
        return self._next_fd

    def move_mount(self, from_dfd: int, from_path: str, to_dfd: int, to_path: str, flags: int) -> None:
        self._rec("move_mount", from_dfd, from_path, to_dfd, to_path, flags)

    def close(self, fd: int) -> None:
        self._rec("close", fd)

    def syncfs(self, fd: int) -> None:
        self._rec("syncfs", fd)
