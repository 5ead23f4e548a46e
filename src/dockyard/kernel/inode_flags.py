"""Where ext2/3/4 put a new directory's inodes: unpacked layers in block groups of their own.

ext4's Orlov allocator puts a new directory in (or next to) its parent's block group, and a file
in its directory's group, unless the parent carries FS_TOPDIR_FL (``chattr +T``, "the top of
directory hierarchies"): then the new directory goes to the group with the fewest directories
among those with more free inodes and blocks than average. Unpacked layers are such independent
hierarchies, and where they go matters on an ext4 without a journal (this machine's root): there
the allocator does not reuse an inode freed less than one to six minutes ago, and finds that out
by one buffer lookup per free inode, scanning from the group's first inode again for every new
file (``recently_deleted()``, fs/ext4/ialloc.c). Unpacking a layer into the group an ``rmi`` just
emptied costs quadratic system time: bench/images' 5 layers (4455 files) took 1.2-1.6 s of it
there and 0.15 s in a group of their own. The flag alone does not avoid that group (once emptied
it has the fewest directories again); image/staging.py keeps an empty directory there for a while,
so the allocator passes on. With a journal the flag only spreads the trees. Other filesystems
have no such flag: the ioctl fails there and nothing changes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

#: linux/fs.h: FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (the kernel reads and writes an int) and the
#: flag itself.
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000
#: no inode flags here (tmpfs, overlay, ...), or not this one (xfs, btrfs), or not allowed
_UNSUPPORTED = (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM, errno.EACCES)


def inode_flags(path: str) -> int | None:
    """``lsattr``'s flags of the directory ``path``; None where the filesystem has none."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        buf = fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))
    except OSError as e:
        if e.errno in _UNSUPPORTED:
            return None
        raise
    finally:
        os.close(fd)
    return struct.unpack_from("=i", buf)[0] & 0xFFFFFFFF


def spread_subtrees(path: str) -> bool:
    """Mark the directory ``path`` a top of hierarchies (``chattr +T``), once; whether it is.

    Best effort: a filesystem without the flag is not an error (see the module docstring)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = struct.unpack_from("=i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8)))[0]
        if flags & FS_TOPDIR_FL:
            return True
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("=iI", flags | FS_TOPDIR_FL, 0))
        return True
    except OSError as e:
        if e.errno in _UNSUPPORTED:
            return False
        raise
    finally:
        os.close(fd)
