"""Apply ``MountSpec``s through ``kernel.Syscalls``, and probe what the kernel supports.

This is the one impure step of the snapshotter's mounts: everything it mounts was computed by
``snapshot.mounts``. Unit tests pass ``RecordingSyscalls`` and assert on the calls.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import threading

from dockyard.errors import KernelError
from dockyard.kernel import syscalls as k
from dockyard.snapshot.mounts import MountSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from dockyard.kernel.syscalls import Syscalls

#: Serializes this process's working-directory changes (see ``_in_directory``).
_CWD_LOCK = threading.Lock()
_overlay_cache: dict[str, bool] = {}
_lowerdir_plus_cache: list[bool] = []


def mount_specs(sys: Syscalls, specs: Sequence[MountSpec], target: str) -> None:
    """Mount every spec on ``target`` (absolute), in order. A failure undoes the ones made."""
    if not target.startswith("/"):
        raise ValueError(f"mount target must be absolute: {target!r}")
    done = 0
    try:
        for spec in specs:
            _mount_one(sys, spec, target)
            done += 1
    except BaseException:
        for _ in range(done):
            try:
                sys.umount2(target, k.MNT_DETACH)
            except KernelError:
                pass
        raise


def unmount(sys: Syscalls, target: str, *, detach: bool = False) -> None:
    """Unmount ``target`` once (every spec list of the snapshotter is one mount per target).

    ``detach`` (MNT_DETACH) lets a busy mount go once its last user does; the default fails with
    EBUSY instead, so callers notice what still uses it.
    """
    sys.umount2(target, k.MNT_DETACH if detach else 0)


def _mount_one(sys: Syscalls, spec: MountSpec, target: str) -> None:
    if spec.type == "bind":
        flags = k.MS_BIND | (k.MS_REC if "rbind" in spec.options else 0)
        sys.mount(spec.source, target, None, flags, None)
        if spec.readonly:  # a bind mount ignores MS_RDONLY until remounted
            try:
                sys.mount(None, target, None, k.MS_REMOUNT | k.MS_BIND | k.MS_RDONLY, None)
            except BaseException:
                sys.umount2(target, k.MNT_DETACH)
                raise
    elif spec.type == "overlay" and spec.lowerdirs:
        _mount_new_api(sys, spec, target)
    elif spec.type == "overlay":
        flags = k.MS_RDONLY if spec.readonly else 0
        if spec.cwd:
            with _in_directory(spec.cwd):
                sys.mount(spec.source, target, "overlay", flags, spec.data)
        else:
            sys.mount(spec.source, target, "overlay", flags, spec.data)
    else:
        raise ValueError(f"unknown mount type {spec.type!r}")


def _mount_new_api(sys: Syscalls, spec: MountSpec, target: str) -> None:
    """fsopen → one ``lowerdir+`` per layer (top first) → the other options → create → fsmount →
    move_mount onto ``target``. Both fds are closed before returning: an open mount fd would keep
    the mount busy (umount fails with EBUSY)."""
    fd = sys.fsopen(spec.type, k.FSOPEN_CLOEXEC)
    try:
        for lower in spec.lowerdirs:
            sys.fsconfig(fd, k.FSCONFIG_SET_STRING, "lowerdir+", lower, 0)
        for option in spec.options:
            if option in ("ro", "bind", "rbind"):
                continue
            key, sep, value = option.partition("=")
            if sep:
                sys.fsconfig(fd, k.FSCONFIG_SET_STRING, key, value, 0)
            else:
                sys.fsconfig(fd, k.FSCONFIG_SET_FLAG, key, None, 0)
        sys.fsconfig(fd, k.FSCONFIG_CMD_CREATE, None, None, 0)
        mfd = sys.fsmount(fd, k.FSMOUNT_CLOEXEC, k.MOUNT_ATTR_RDONLY if spec.readonly else 0)
    finally:
        sys.close(fd)
    try:
        sys.move_mount(mfd, "", k.AT_FDCWD, target, k.MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        sys.close(mfd)


class _in_directory:
    """Run a block with the process's working directory at ``path``, then restore it.

    Only the ``links`` strategy on kernels without ``lowerdir+`` needs it (relative ``lowerdir=``
    paths). The working directory is process-wide: the lock serializes dockyard's own changes, and
    dockyard builds no relative paths anywhere else (``Store`` makes its root absolute), so the
    short window cannot misdirect another thread. Docker instead mounts from a re-exec'd child; a
    fork from a threaded daemon would not be cheaper or safer, and this path is the fallback.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._old = -1

    def __enter__(self) -> None:
        _CWD_LOCK.acquire()
        try:
            self._old = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            os.chdir(self.path)
        except BaseException:
            if self._old >= 0:
                os.close(self._old)
            _CWD_LOCK.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            os.fchdir(self._old)
        finally:
            os.close(self._old)
            _CWD_LOCK.release()


# --------------------------------------------------------------------------------------------------
# probes

def overlay_supported(root: str, sys: Syscalls | None = None) -> bool:
    """Whether an overlay with an upper dir mounts on the filesystem of ``root`` (a store root).

    A real mount is the only reliable test: overlayfs may be absent, or the filesystem unfit as an
    upper (no xattrs, itself an overlay). The probe mounts under ``<root>/tmp`` and removes
    everything it made; the answer is cached per process and root.
    """
    from dockyard.store import Store

    key = os.path.realpath(root)
    real = sys is None or isinstance(sys, k.LibcSyscalls)  # a fake's answer is not cached
    if real and key in _overlay_cache:
        return _overlay_cache[key]
    sys = sys or k.LibcSyscalls()
    tmp = Store(root).tmp
    os.makedirs(tmp, mode=0o711, exist_ok=True)
    _remove_stale_probes(tmp, sys)
    probe = f"{tmp}/overlay-probe-{os.getpid()}-{secrets.token_hex(4)}"
    dirs = {name: f"{probe}/{name}" for name in ("lower1", "lower2", "upper", "work", "merged")}
    for d in dirs.values():
        os.makedirs(d)
    ok = False
    try:
        with open(f"{dirs['lower2']}/f", "w") as f:
            f.write("x")
        data = (f"lowerdir={dirs['lower1']}:{dirs['lower2']},upperdir={dirs['upper']},"
                f"workdir={dirs['work']},index=off")
        try:
            sys.mount("overlay", dirs["merged"], "overlay", 0, data)
        except KernelError:
            ok = False
        else:
            try:
                ok = os.path.exists(f"{dirs['merged']}/f")
            finally:
                sys.umount2(dirs["merged"], k.MNT_DETACH)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if real:
        _overlay_cache[key] = ok
    return ok


def _remove_stale_probes(tmp: str, sys: Syscalls) -> None:
    """Probes left by a process killed mid-probe (its pid is gone): unmount, then remove."""
    try:
        names = os.listdir(tmp)
    except FileNotFoundError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) != 4 or parts[:2] != ["overlay", "probe"] or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # alive (or a reused pid): not ours to touch
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        merged = f"{tmp}/{name}/merged"
        try:
            sys.umount2(merged, k.MNT_DETACH)
        except (KernelError, OSError):
            pass  # not mounted
        if not os.path.ismount(merged):
            shutil.rmtree(f"{tmp}/{name}", ignore_errors=True)


def lowerdir_plus_supported(sys: Syscalls | None = None) -> bool:
    """Whether overlayfs takes ``fsconfig(..., "lowerdir+", path)`` (Linux 6.8+). Cached per process.

    No mount is made: an fs context is opened, one lower added and the context dropped. Older
    kernels answer EINVAL (unknown parameter); kernels without the new mount API ENOSYS.
    """
    real = sys is None or isinstance(sys, k.LibcSyscalls)  # a fake's answer is not cached
    if real and _lowerdir_plus_cache:
        return _lowerdir_plus_cache[0]
    sys = sys or k.LibcSyscalls()
    try:
        fd = sys.fsopen("overlay", k.FSOPEN_CLOEXEC)
    except KernelError:
        ok = False
    else:
        try:
            sys.fsconfig(fd, k.FSCONFIG_SET_STRING, "lowerdir+", "/", 0)
            ok = True
        except KernelError as e:
            if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            ok = False
        finally:
            sys.close(fd)
    if real:
        _lowerdir_plus_cache[:] = [ok]
    return ok


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace (from /proc/self/mountinfo)."""
    prefix = path.rstrip("/") + "/"
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = _unescape(line.split()[4])
                if point == path.rstrip("/") or point.startswith(prefix):
                    found.append(point)
    except OSError:
        pass
    return found


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal ``\\ooo``."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)

