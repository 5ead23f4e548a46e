"""File-tree helpers of the snapshotters: an independent copy (``cp -a --reflink=auto``), removal
that refuses to descend into mounts, and disk usage.

Why not ``shutil.copytree``: it calls the copy function on device nodes and fifos (reading a char
device, or blocking forever on a fifo), breaks hard links into separate files, and does not keep
ownership. Why not ``os.link``: a vfs snapshot must be independent of its parent; a hard link
would let a container's write change every image that shares the file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat

from dockyard.errors import FailedPrecondition, InvalidArgument
from dockyard.snapshot.apply import mounts_under

#: ioctl(dst, FICLONE, src): share the extents copy-on-write (btrfs, xfs with reflink).
FICLONE = 0x40049409
_CHUNK = 1 << 30
#: errnos meaning "this filesystem cannot set this attribute here": skipped, as ``cp -a`` does.
_XATTR_SKIP = (errno.EPERM, errno.ENOTSUP, errno.EINVAL, errno.ENODATA, errno.EACCES)


def copy_tree(src: str, dst: str) -> None:
    """Copy the directory ``src`` to ``dst`` like ``cp -a --reflink=auto``.

    Keeps file types (regular, directory, symlink, char/block devices, fifos, sockets), hard links
    within the tree, owners, modes (setuid bits included: set after the chown that clears them),
    xattrs (``trusted.*`` as root, e.g. overlay whiteout markers), and times. File data is cloned
    where the filesystem can (FICLONE), else copied in the kernel (copy_file_range), else read and
    written. ``dst`` must not exist, or be an empty directory (its attributes are replaced).
    """
    st = os.lstat(src)
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"copy {src}: not a directory")
    if os.path.lexists(dst):
        if not os.path.isdir(dst) or os.path.islink(dst) or os.listdir(dst):
            raise InvalidArgument(f"copy {src} to {dst}: the destination exists and is not an empty directory")
    else:
        os.mkdir(dst, 0o700)
    _copy_dir(src, dst, st, {})


def _copy_dir(src: str, dst: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> None:
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        s, d = entry.path, os.path.join(dst, entry.name)
        est = entry.stat(follow_symlinks=False)
        mode = est.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(d, 0o700)
            _copy_dir(s, d, est, links)
            continue
        if est.st_nlink > 1:
            key = (est.st_dev, est.st_ino)
            first = links.get(key)
            if first is not None:
                os.link(first, d, follow_symlinks=False)
                continue
            links[key] = d
        if stat.S_ISREG(mode):
            _copy_file(s, d)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            os.mknod(d, stat.S_IFMT(mode) | 0o600, est.st_rdev)
        else:
            raise InvalidArgument(f"copy {s}: unsupported file type {stat.S_IFMT(mode):#o}")
        _copy_meta(s, d, est)
    _copy_meta(src, dst, st)  # last: adding entries changed the directory's times


def _copy_file(src: str, dst: str) -> None:
    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.ioctl(dfd, FICLONE, sfd)
                return
            except OSError:
                pass
            try:
                while os.copy_file_range(sfd, dfd, _CHUNK):
                    pass
                return
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
            os.lseek(sfd, 0, os.SEEK_SET)
            os.lseek(dfd, 0, os.SEEK_SET)
            os.ftruncate(dfd, 0)
            while chunk := os.read(sfd, 1 << 20):
                os.write(dfd, chunk)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    """Owner, then xattrs, then mode (chown clears setuid/setgid), then times."""
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as e:
        if e.errno not in _XATTR_SKIP:
            raise
        names = []
    for name in names:
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError as e:
            if e.errno not in _XATTR_SKIP:
                raise
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def remove_tree(path: str) -> None:
    """Remove ``path`` and everything in it; absent is fine.

    Refuses (``FailedPrecondition``) while anything is mounted at or below it: removing through a
    mount would delete the mounted filesystem's files (a container's rootfs, a bind-mounted host
    directory) rather than the snapshot's.
    """
    if not os.path.lexists(path):
        return
    mounted = mounts_under(path)
    if mounted:
        raise FailedPrecondition(f"remove {path}: {mounted[0]} is still mounted")
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    shutil.rmtree(path)


def disk_usage(path: str) -> int:
    """Bytes allocated to the tree at ``path`` (st_blocks × 512), each inode counted once, not
    following symlinks or crossing into other filesystems."""
    try:
        root = os.lstat(path)
    except FileNotFoundError:
        return 0
    seen: set[int] = {root.st_ino}
    total = root.st_blocks * 512
    stack = [path] if stat.S_ISDIR(root.st_mode) else []
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                if st.st_dev != root.st_dev or st.st_ino in seen:
                    continue
                seen.add(st.st_ino)
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return total
