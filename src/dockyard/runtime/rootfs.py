"""Apply a ``RootfsPlan`` inside the container's new mount namespace (runs in the init process).

Mount destinations are resolved *inside* the rootfs with openat2(RESOLVE_IN_ROOT): a symlink in the
image can never send a mount to the host (CVE-2021-30465 class). Missing destinations are created
with mkdirat/openat relative to an fd already resolved in the root. The kernel mounts onto
``/proc/self/fd/N`` of that fd, as runc does.
"""

from __future__ import annotations

import errno
import os
import stat

from dockyard.errors import InvalidArgument, KernelError
from dockyard.kernel import syscalls as k
from dockyard.runtime.plan import MountStep, RootfsPlan, remount_flags

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.kernel.syscalls import Syscalls

_ST_LOCKED = ((os.ST_NOSUID, k.MS_NOSUID), (os.ST_NODEV, k.MS_NODEV), (os.ST_NOEXEC, k.MS_NOEXEC),
              (os.ST_NOATIME, k.MS_NOATIME), (os.ST_NODIRATIME, k.MS_NODIRATIME),
              (os.ST_RELATIME, k.MS_RELATIME))


class Root:
    """An open rootfs directory and in-root path helpers."""

    def __init__(self, sys: Syscalls, path: str) -> None:
        self.sys = sys
        self.path = path
        self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def open(self, path: str, flags: int = os.O_PATH, *, no_symlinks: bool = False) -> int:
        resolve = k.RESOLVE_IN_ROOT | k.RESOLVE_NO_MAGICLINKS
        if no_symlinks:
            resolve |= k.RESOLVE_NO_SYMLINKS
        rel = path.lstrip("/") or "."
        try:
            return self.sys.openat2(self.fd, rel, flags, 0, resolve)
        except KernelError as e:
            if e.errno == errno.ELOOP and no_symlinks:
                raise InvalidArgument(f"rootfs {self.path}: {path} is a symlink; refusing to mount there") from None
            raise KernelError(f"open {path} in rootfs {self.path}", e.errno) from None

    def mkdir_all(self, path: str, mode: int = 0o755, _depth: int = 0) -> None:
        parts = [p for p in path.split("/") if p and p != "."]
        for i in range(len(parts)):
            if parts[i] == "..":
                continue  # RESOLVE_IN_ROOT clamps ".." at the root; nothing to create
            prefix = "/".join(parts[: i + 1])
            try:
                os.close(self.open(prefix, os.O_PATH | os.O_DIRECTORY))
                continue
            except KernelError as e:
                if e.errno != errno.ENOENT:
                    raise
            parent = self.open("/".join(parts[:i]), os.O_PATH | os.O_DIRECTORY)
            try:
                os.mkdir(parts[i], mode, dir_fd=parent)
            except FileExistsError:
                # A dangling symlink: create its target, resolved in the root as openat2 will.
                try:
                    link = os.readlink(parts[i], dir_fd=parent)
                except OSError:
                    link = ""  # not a symlink (made meanwhile): the next open reports any problem
                if link:
                    if _depth >= 40:
                        raise KernelError(f"mkdir {path} in rootfs {self.path}: too many symlinks",
                                          errno.ELOOP) from None
                    base = "" if link.startswith("/") else "/".join(parts[:i])
                    self.mkdir_all(f"{base}/{link}", mode, _depth + 1)
            finally:
                os.close(parent)

    def make_file(self, path: str, mode: int = 0o644) -> None:
        parent_path, _, name = path.rstrip("/").rpartition("/")
        self.mkdir_all(parent_path)
        parent = self.open(parent_path, os.O_PATH | os.O_DIRECTORY)
        try:
            fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
            os.close(fd)
        except OSError as e:
            if e.errno not in (errno.EISDIR, errno.ELOOP, errno.ETXTBSY, errno.EEXIST):
                raise KernelError(f"create {path} in rootfs {self.path}", e.errno or errno.EIO) from None
        finally:
            os.close(parent)

    def parent_fd(self, path: str) -> tuple[int, str]:
        parent_path, _, name = path.rstrip("/").rpartition("/")
        self.mkdir_all(parent_path)
        return self.open(parent_path, os.O_PATH | os.O_DIRECTORY), name


def _fdpath(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _locked_flags(path: str) -> int:
    """Flags the kernel will not let a remount clear (in a user namespace): keep them."""
    try:
        f = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(ms for st, ms in _ST_LOCKED if f & st)


def _do_mount(root: Root, step: MountStep, *, userns: bool, cgroup_paths: dict[str, str],
              cgroupns: bool) -> None:
    sys = root.sys
    if step.fstype == "cgroup" or step.fstype == "cgroup2":
        _mount_cgroup(root, step, cgroup_paths, cgroupns)
        return
    keep_mode = None
    if step.bind:
        if not os.path.exists(step.source):
            raise InvalidArgument(f"mount {step.source} on {step.destination}: source does not exist")
        if os.path.isdir(step.source):
            root.mkdir_all(step.destination)
        else:
            root.make_file(step.destination)
    else:
        if step.fstype == "tmpfs" and not any(o.startswith("mode=") for o in step.data.split(",")):
            try:  # as runc: a tmpfs on an existing directory without mode= gets its mode
                fd = root.open(step.destination, no_symlinks=step.no_symlink)
                keep_mode = stat.S_IMODE(os.fstat(fd).st_mode)
                os.close(fd)
            except (KernelError, InvalidArgument):
                pass
        root.mkdir_all(step.destination)
    fd = root.open(step.destination, no_symlinks=step.no_symlink)
    old_fd = -1
    try:
        target = _fdpath(fd)
        if step.copy_up:
            old_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if step.bind:
            sys.mount(step.source, target, None, step.flags & (k.MS_BIND | k.MS_REC), None)
        else:
            sys.mount(step.source, target, step.fstype, step.flags, step.data or None)
        if step.readonly_remount or step.propagation or step.copy_up or keep_mode is not None:
            # The fd still names the directory *under* the new mount: reopen to reach the mount.
            os.close(fd)
            fd = root.open(step.destination, no_symlinks=step.no_symlink)
            target = _fdpath(fd)
        if keep_mode is not None:
            os.chmod(target, keep_mode)
        if step.readonly_remount:
            flags = remount_flags(step)
            if userns:
                flags |= _locked_flags(target)
            sys.mount(None, target, None, flags, None)
        if step.propagation:
            sys.mount(None, target, None, step.propagation, None)
        if old_fd >= 0:
            import shutil  # only for tmpcopyup: keep it off the common path

            # The fd still refers to the directory under the new tmpfs.
            shutil.copytree(_fdpath(old_fd), target, symlinks=True, dirs_exist_ok=True)
    finally:
        os.close(fd)
        if old_fd >= 0:
            os.close(old_fd)


def host_cgroup_v1_mounts() -> list[tuple[str, str]]:
    """(mount point, super options controllers) of the v1 hierarchies visible now."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = post.split()
            if fields and fields[0] == "cgroup":
                opts = [o for o in fields[2].split(",") if o not in ("rw", "ro")]
                out.append((pre.split()[4], ",".join(opts)))
    return out


def _mount_cgroup(root: Root, step: MountStep, cgroup_paths: dict[str, str], cgroupns: bool) -> None:
    sys = root.sys
    flags = step.flags
    v1 = host_cgroup_v1_mounts()
    root.mkdir_all(step.destination)
    if not v1:  # cgroup v2
        fd = root.open(step.destination)
        try:
            if cgroupns:
                sys.mount("cgroup2", _fdpath(fd), "cgroup2", flags, None)
            else:
                src = cgroup_paths.get("") or next(iter(cgroup_paths.values()))
                sys.mount(src, _fdpath(fd), None, k.MS_BIND | k.MS_REC, None)
                os.close(fd)
                fd = root.open(step.destination)
                sys.mount(None, _fdpath(fd), None, k.MS_BIND | k.MS_REMOUNT | (flags & ~k.MS_REC), None)
        finally:
            os.close(fd)
        return
    fd = root.open(step.destination)
    try:
        sys.mount("tmpfs", _fdpath(fd), "tmpfs", flags & ~k.MS_RDONLY, "mode=755")
    finally:
        os.close(fd)
    for mountpoint, opts in v1:
        name = os.path.basename(mountpoint)
        dest = f"{step.destination}/{name}"
        root.mkdir_all(dest)
        sub = root.open(dest)
        try:
            if cgroupns:
                sys.mount("cgroup", _fdpath(sub), "cgroup", flags, opts)
            else:
                # keys are controllers and "name=systemd", as the super options name them
                src = next((cgroup_paths[o] for o in opts.split(",") if o in cgroup_paths),
                           None) or cgroup_paths.get(name)
                if src is None:
                    continue
                sys.mount(src, _fdpath(sub), None, k.MS_BIND | k.MS_REC, None)
                os.close(sub)
                sub = root.open(dest)  # now the bind mount itself
                sys.mount(None, _fdpath(sub), None, k.MS_BIND | k.MS_REMOUNT | (flags & ~k.MS_REC), None)
        finally:
            os.close(sub)
        if "," in name:  # co-mounted controllers (cpu,cpuacct): one link per controller
            parent, _ = root.parent_fd(dest)
            try:
                for ctrl in name.split(","):
                    try:
                        os.symlink(name, ctrl, dir_fd=parent)
                    except FileExistsError:
                        pass
            finally:
                os.close(parent)
    if flags & k.MS_RDONLY:
        fd = root.open(step.destination)
        try:
            sys.mount(None, _fdpath(fd), None, k.MS_BIND | k.MS_REMOUNT | (flags & ~k.MS_REC), None)
        finally:
            os.close(fd)


def _create_devices(root: Root, plan: RootfsPlan) -> None:
    old = os.umask(0)
    try:
        for step in plan.devices:
            d = step.device
            if step.bind_from_host:
                root.make_file(d.path, 0o000)
                fd = root.open(d.path, no_symlinks=True)
                try:
                    root.sys.mount(d.path, _fdpath(fd), None, k.MS_BIND, None)
                finally:
                    os.close(fd)
                continue
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.type]
            parent, name = root.parent_fd(d.path)
            try:
                try:
                    os.unlink(name, dir_fd=parent)
                except FileNotFoundError:
                    pass
                mode = (d.file_mode if d.file_mode is not None else 0o666) & 0o7777
                os.mknod(name, kind | mode, os.makedev(d.major, d.minor), dir_fd=parent)
                os.chown(name, d.uid or 0, d.gid or 0, dir_fd=parent, follow_symlinks=False)
            except OSError as e:
                raise KernelError(f"mknod {d.path} in rootfs {root.path}", e.errno or errno.EIO) from None
            finally:
                os.close(parent)
        for target, link in plan.dev_symlinks + ((("pts/ptmx", "/dev/ptmx"),) if plan.ptmx_link else ()):
            parent, name = root.parent_fd(link)
            try:
                try:
                    os.unlink(name, dir_fd=parent)
                except FileNotFoundError:
                    pass
                os.symlink(target, name, dir_fd=parent)
            finally:
                os.close(parent)
        if plan.console:
            root.make_file("/dev/console", 0o600)
    finally:
        os.umask(old)


def prepare(sys: Syscalls, plan: RootfsPlan, *, userns: bool, cgroup_paths: dict[str, str],
            cgroupns: bool) -> None:
    """Everything before pivot_root: propagation, the rootfs bind, mounts, /dev."""
    sys.mount(None, "/", None, plan.root_propagation, None)
    sys.mount(plan.rootfs, plan.rootfs, "bind", k.MS_BIND | k.MS_REC, None)
    if plan.root_propagation & k.MS_SHARED:
        # pivot_root refuses a new root whose parent mount is shared.
        sys.mount(None, plan.rootfs, None, k.MS_PRIVATE, None)
    root = Root(sys, plan.rootfs)
    try:
        for step in plan.mounts:
            try:
                _do_mount(root, step, userns=userns, cgroup_paths=cgroup_paths, cgroupns=cgroupns)
            except KernelError as e:  # the syscall names /proc/self/fd/N: say which mount it was
                raise KernelError(f"mounts: {step.destination}: {e.operation}", e.errno) from None
        if plan.setup_dev:
            _create_devices(root, plan)
    finally:
        root.close()


def bind_console(sys: Syscalls, slave_path: str) -> None:
    """After pivot: the pty slave appears as /dev/console."""
    sys.mount(slave_path, "/dev/console", None, k.MS_BIND, None)


def pivot(sys: Syscalls, plan: RootfsPlan) -> None:
    os.chdir(plan.rootfs)
    if not plan.pivot:
        sys.mount(plan.rootfs, "/", None, k.MS_MOVE, None)
        os.chroot(".")
        os.chdir("/")
        return
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        sys.pivot_root(".", ".")
        # The old root is now stacked under the new one at "."; detach it without propagating.
        os.fchdir(old_root)
        sys.mount(None, ".", None, k.MS_SLAVE | k.MS_REC, None)
        sys.umount2(".", k.MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")


def finish(sys: Syscalls, plan: RootfsPlan) -> None:
    """After pivot_root: sysctls, read-only and masked paths, the read-only root."""
    for key, value in plan.sysctl:
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise KernelError(f"write sysctl {key}={value} to {path}", e.errno or errno.EIO) from None
    for path in plan.readonly_paths:
        try:
            sys.mount(path, path, None, k.MS_BIND | k.MS_REC, None)
        except KernelError as e:
            if e.errno == errno.ENOENT:
                continue
            raise
        sys.mount(None, path, None,
                  k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | k.MS_REC | _locked_flags(path), None)
    for path in plan.masked_paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            sys.mount("tmpfs", path, "tmpfs", k.MS_RDONLY, None)
        else:
            sys.mount("/dev/null", path, None, k.MS_BIND, None)
    if plan.rootfs_propagation:
        sys.mount(None, "/", None, plan.rootfs_propagation, None)
    if plan.readonly_root:
        sys.mount(None, "/", None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY | _locked_flags("/"), None)
