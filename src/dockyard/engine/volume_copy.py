"""Docker's copy-up: an image's content at a mount destination seeds a new, empty volume.

Why fds all the way down: the source is an image (untrusted). Its path is resolved with openat2
``RESOLVE_IN_ROOT`` (a symlink or ``..`` on the way stays inside the rootfs), and below it every
entry is opened with ``O_NOFOLLOW`` relative to its parent's fd: symlinks are copied as links and
never followed, so no host file is read. The destination is the volume's own fresh directory,
written the same way (``O_EXCL``, ``*at`` calls), so nothing outside it is written either.
What is copied: regular files (sparse-unaware), directories, symlinks, hard links (as links),
devices, fifos and sockets; owner, mode, timestamps, and xattrs where the filesystems allow.
"""

from __future__ import annotations

import errno
import os
import stat

from dockyard.errors import KernelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.kernel.syscalls import Syscalls

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


def open_in_root(rootfs: str, path: str, sys: Syscalls) -> int | None:
    """A readable fd of directory ``path`` resolved inside ``rootfs``; None when it is missing
    or not a directory (Docker then copies nothing)."""
    from dockyard.kernel import syscalls as k

    rel = path.lstrip("/") or "."
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return sys.openat2(root_fd, rel, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, 0,
                           k.RESOLVE_IN_ROOT | k.RESOLVE_NO_MAGICLINKS)
    except KernelError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise
    finally:
        os.close(root_fd)


def copy_into_empty(src_fd: int, dest: str) -> bool:
    """Copy the tree of ``src_fd`` into directory ``dest`` if ``dest`` is empty; ``dest`` takes the
    source directory's owner, mode, xattrs and times (as Docker does). Returns whether it copied."""
    dst_fd = os.open(dest, _DIR)
    try:
        if os.listdir(dst_fd):
            return False
        _Copier(dst_fd).tree(src_fd, dst_fd, "")
        _metadata(src_fd, dst_fd, os.fstat(src_fd))
        return True
    finally:
        os.close(dst_fd)


def _xattrs(src: int | str, dst: int | str, follow: bool = True) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=follow)
    except OSError:
        return
    for key in names:
        try:
            os.setxattr(dst, key, os.getxattr(src, key, follow_symlinks=follow),
                        follow_symlinks=follow)
        except OSError:
            continue  # not supported there, or not allowed (trusted.*, security.*): as cp -a


def _metadata(src_fd: int, dst_fd: int, st: os.stat_result) -> None:
    os.fchown(dst_fd, st.st_uid, st.st_gid)
    os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))  # after chown, which clears set-id bits
    _xattrs(src_fd, dst_fd)
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))


class _Copier:
    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd  # the destination root: hard links name their first copy from it
        self.links: dict[tuple[int, int], str] = {}

    def tree(self, src: int, dst: int, prefix: str) -> None:
        for name in sorted(os.listdir(src)):
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            rel = f"{prefix}{name}"
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                first = self.links.get((st.st_dev, st.st_ino))
                if first is not None:
                    os.link(first, name, src_dir_fd=self.root_fd, dst_dir_fd=dst,
                            follow_symlinks=False)
                    continue
                self.links[(st.st_dev, st.st_ino)] = rel
            if stat.S_ISDIR(st.st_mode):
                self._dir(src, dst, name, rel)
            elif stat.S_ISREG(st.st_mode):
                self._file(src, dst, name)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst,
                         follow_symlinks=False)
            else:  # device, fifo, socket: made, never opened
                os.mknod(name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=dst)
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
                os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst)
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst,
                         follow_symlinks=False)

    def _dir(self, src: int, dst: int, name: str, rel: str) -> None:
        sfd = os.open(name, _DIR, dir_fd=src)
        try:
            os.mkdir(name, 0o700, dir_fd=dst)
            dfd = os.open(name, _DIR, dir_fd=dst)
            try:
                self.tree(sfd, dfd, f"{rel}/")
                _metadata(sfd, dfd, os.fstat(sfd))  # times last: children changed them
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def _file(self, src: int, dst: int, name: str) -> None:
        sfd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                      dir_fd=src)
        try:
            st = os.fstat(sfd)
            if not stat.S_ISREG(st.st_mode):  # swapped since the lstat: skip, never block
                return
            dfd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600, dir_fd=dst)
            try:
                _copy_bytes(sfd, dfd)
                _metadata(sfd, dfd, st)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)


def _copy_bytes(sfd: int, dfd: int) -> None:
    try:
        while os.copy_file_range(sfd, dfd, _CHUNK):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    os.lseek(sfd, 0, os.SEEK_SET)
    os.lseek(dfd, 0, os.SEEK_SET)
    os.ftruncate(dfd, 0)
    while chunk := os.read(sfd, _CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dfd, view):]
