"""Extracting a layer tar into a directory, one validated member at a time (never ``extractall``).

Every member name is cleaned (``names.clean_name``: a leading ``/`` is dropped, a ``..`` climbing
above the root is refused), its parent is resolved inside ``dest_dir`` by ``resolve.Root`` (symlinks
followed textually and clamped at the root, as in a chroot), and the entry itself is created with
``*at`` calls relative to that parent: ``O_CREAT|O_EXCL|O_NOFOLLOW`` for files, ``mkdirat``,
``symlinkat``, ``linkat`` without following, ``mknodat``. An existing entry of the same name is removed
first (a directory stays if the member is a directory), so nothing is ever written through an
existing symlink, and metadata (chown, chmod, xattrs, times) is applied through the fd of the entry we
just made or with ``AT_SYMLINK_NOFOLLOW``: no host file can be touched (checklist 10-13).

Policies (checklist 14, 15, 18):
- owners: uid/gid exactly as in the tar when ``chown`` (default: when running as root);
- modes: all 12 bits, setuid/setgid/sticky included; directories get their mode and times at the
  end, deepest first, so a read-only directory still receives its children;
- xattrs: ``SCHILY.xattr.*`` PAX records, filtered by ``names.xattr_allowed`` (security.capability and
  user.* kept; trusted.overlay.* and security.selinux dropped);
- devices: ``device_policy`` "create" (mknod; needs CAP_MKNOD), "skip" or "refuse" for character and
  block devices; FIFOs are always created (they grant nothing);
- hardlinks: the target is a cleaned name inside the root (kaniko's absolute ``/usr/bin/x`` is
  ``usr/bin/x``), must exist already and not be a directory; a link to a symlink links the symlink;
- whiteouts: ``whiteout_mode`` "overlay" turns ``.wh.name`` into a 0/0 character device and
  ``.wh..wh..opq`` into ``trusted.overlay.opaque=y`` on the directory (an overlay lower/upper dir);
  "delete" (vfs, flattening) removes the named entry, or the directory's entries that this layer did
  not create. Whiteouts are resolved like any name, so they only ever affect entries inside the root.
  AUFS metadata (``.wh..wh.*`` at the root) is skipped.

On any error the destination holds a partial layer: the caller removes it (``discard_partial``) and
never marks the snapshot complete. Bad input raises ``InvalidArgument`` naming the member and the
reason; a failing system call raises ``KernelError`` naming the member.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import Protocol

from dockyard.archive.compression import CHUNK, NONE, Limits, LayerStream, detect_compression
from dockyard.archive.names import (OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_META_PREFIX,
                                    WHITEOUT_PREFIX, Refused, clean_name, encoded_len, xattr_allowed)
from dockyard.archive.reader import Forward, members, open_tar
from dockyard.archive.resolve import Root, open_dir_fd, remove_entry
from dockyard.errors import InvalidArgument, KernelError
from dockyard.oci.digest import Digest
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

WHITEOUT_MODES = ("overlay", "delete")
DEVICE_POLICIES = ("create", "skip", "refuse")
_XATTR_PAX = "SCHILY.xattr."
_MAX_ID = (1 << 32) - 2  # (uid_t)-1 means "unchanged" to chown
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TYPES = frozenset(tarfile.REGULAR_TYPES) | {tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                                             tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE}


class ExtractResult(Record):
    diff_id: Digest         # sha256 of the uncompressed tar
    digest: Digest          # sha256 of the bytes read (the blob)
    compression: str
    size: int               # bytes of regular-file content written (what docker reports as layer size)
    tar_size: int
    entries: int            # members processed, whiteouts and skipped ones included
    skipped: int = 0        # members not materialized: devices under "skip", AUFS metadata
    dropped_xattrs: int = 0  # xattrs filtered by policy or, with best_effort_xattrs, refused by the fs


def extract_layer(stream: BinaryIO | LayerStream, dest_dir: str | os.PathLike[str], *,
                  limits: Limits = Limits(), whiteout_mode: str = "overlay",
                  device_policy: str = "create", chown: bool | None = None,
                  best_effort_xattrs: bool = False, compression: str | None = None,
                  verified: Digest | None = None) -> ExtractResult:
    """Extract one layer (gzip, zstd, bzip2, xz or plain tar, detected) into ``dest_dir``.

    ``dest_dir`` must exist. ``chown=None`` chowns when running as root. With
    ``best_effort_xattrs`` an xattr the filesystem refuses (EPERM, ENOTSUP) is counted, not fatal.
    The stream is read to its end, so the digests in the result cover the whole blob.

    ``verified``: ``stream`` is an open regular file (at offset 0) whose bytes are known to hash
    to this sha256 (a blob committed to the content store: hashed as it was written, immutable
    since). When it holds a plain tar, it is not hashed again (its diff id is that digest) and
    file data is copied by the kernel (``copy_file_range``) from the member's offset: tarfile
    only parses the headers. Every member passes the same validation as on the streaming path.
    """
    if whiteout_mode not in WHITEOUT_MODES:
        raise InvalidArgument(f"whiteout_mode {whiteout_mode!r}: expected one of {WHITEOUT_MODES}")
    if device_policy not in DEVICE_POLICIES:
        raise InvalidArgument(f"device_policy {device_policy!r}: expected one of {DEVICE_POLICIES}")
    if verified is not None and compression in (None, NONE) and _plain_file(stream):
        return extract_plain(FileSource(stream), dest_dir, lambda: verified, limits=limits,  # type: ignore[arg-type]
                             whiteout_mode=whiteout_mode, device_policy=device_policy,
                             chown=chown, best_effort_xattrs=best_effort_xattrs)
    layer = stream if isinstance(stream, LayerStream) else LayerStream(stream, limits, compression=compression)
    try:
        with Root(dest_dir) as root:
            x = _Extractor(root, limits, whiteout_mode, device_policy,
                           os.geteuid() == 0 if chown is None else chown, best_effort_xattrs)
            fwd = Forward(layer)  # headers through tarfile, file data read here (no copies)
            x.copy_data = lambda m, fd: _copy_stream(fwd, m.size, fd)
            tar = open_tar(fwd, limits, seekable=True)  # type: ignore[arg-type]
            try:
                for m in members(tar, limits):
                    layer.check_deadline()
                    x.member(tar, m)
                    root.release()
            finally:
                tar.close()
            x.finish()
        layer.drain()
    finally:
        if layer is not stream:
            layer.close()
    return ExtractResult(diff_id=layer.diff_id, digest=layer.digest, compression=layer.compression,
                         size=x.size, tar_size=layer.tar_size, entries=x.entries, skipped=x.skipped,
                         dropped_xattrs=x.dropped_xattrs)


def _plain_file(stream: object) -> bool:
    """``stream`` is a regular file at offset 0 that starts with no compression magic."""
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or stream.tell() != 0:  # type: ignore[attr-defined]
            return False
        return detect_compression(os.pread(fd, 6, 0)) == NONE
    except (AttributeError, OSError, ValueError):
        return False


class PlainSource(Protocol):
    """A plain tar whose bytes are known to hash to a given digest, readable by offset:
    ``read``/``tell``/``seek`` for tarfile's headers, ``copy`` for file data (raises ``Refused``
    when the data ends early), ``size`` the whole tar's bytes."""

    size: int

    def read(self, n: int) -> bytes: ...
    def tell(self) -> int: ...
    def seek(self, pos: int, whence: int = 0) -> int: ...
    def copy(self, offset: int, size: int, dst: int) -> None: ...


class FileSource:
    """``PlainSource`` over an open regular file (at offset 0)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.size = os.fstat(f.fileno()).st_size
        self.read, self.tell, self.seek = f.read, f.tell, f.seek  # type: ignore[method-assign]

    def copy(self, offset: int, size: int, dst: int) -> None:
        copy_range(self._f.fileno(), offset, size, dst)


def extract_plain(source: PlainSource, dest_dir: str | os.PathLike[str],
                  digest: Callable[[], Digest], *, limits: Limits = Limits(),
                  whiteout_mode: str = "overlay", device_policy: str = "create",
                  chown: bool | None = None, best_effort_xattrs: bool = False) -> ExtractResult:
    """``extract_layer`` for a plain tar read by offset (see ``verified`` there): tarfile parses
    the headers, ``source.copy`` moves file data (the kernel's ``copy_file_range`` for a file).
    ``digest()``, called once the tar has ended, is its sha256 (the blob's, which is also the
    diff id); it may wait for the writer of a blob still being written (``image/staging.py``)."""
    import time

    if whiteout_mode not in WHITEOUT_MODES:
        raise InvalidArgument(f"whiteout_mode {whiteout_mode!r}: expected one of {WHITEOUT_MODES}")
    if device_policy not in DEVICE_POLICIES:
        raise InvalidArgument(f"device_policy {device_policy!r}: expected one of {DEVICE_POLICIES}")
    if source.size > limits.max_uncompressed_bytes:
        raise InvalidArgument(f"layer: uncompressed size exceeds the limit of "
                              f"{limits.max_uncompressed_bytes} bytes (decompression bomb?)")
    deadline = None if limits.max_seconds is None else time.monotonic() + limits.max_seconds
    with Root(dest_dir) as root:
        x = _Extractor(root, limits, whiteout_mode, device_policy,
                       os.geteuid() == 0 if chown is None else chown, best_effort_xattrs)
        x.copy_data = lambda m, fd: source.copy(m.offset_data, m.size, fd)
        tar = open_tar(source, limits, seekable=True)  # type: ignore[arg-type]
        try:
            for m in members(tar, limits):
                if deadline is not None and time.monotonic() > deadline:
                    raise InvalidArgument(f"layer: took longer than {limits.max_seconds} s (limit)")
                x.member(tar, m)
                root.release()
        finally:
            tar.close()
        x.finish()
    d = digest()
    return ExtractResult(diff_id=d, digest=d, compression=NONE, size=x.size,
                         tar_size=source.size, entries=x.entries, skipped=x.skipped,
                         dropped_xattrs=x.dropped_xattrs)


def copy_range(src: int, offset: int, size: int, dst: int) -> None:
    """``size`` bytes of ``src`` from ``offset`` to ``dst``'s position, in the kernel
    (``copy_file_range``; by hand where it is not supported). ``Refused`` if ``src`` ends first."""
    while size:
        try:
            n = os.copy_file_range(src, dst, min(size, 1 << 30), offset)
        except OSError as e:
            if e.errno not in (18, 22, 38, 95):  # EXDEV, EINVAL, ENOSYS, EOPNOTSUPP: copy by hand
                raise
            n = _copy_pread(src, offset, min(size, CHUNK), dst)
        if n == 0:
            raise Refused("file data ends early")
        offset += n
        size -= n


def _copy_stream(src: Forward, size: int, dst: int) -> None:
    while size:
        chunk = src.read(min(CHUNK, size))
        if not chunk:
            raise Refused("file data ends early")
        size -= len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]


def _copy_pread(src: int, offset: int, size: int, dst: int) -> int:
    data = os.pread(src, size, offset)
    view = memoryview(data)
    while view:
        view = view[os.write(dst, view):]
    return len(data)


def discard_partial(dest_dir: str | os.PathLike[str]) -> None:
    """Remove a destination an extraction failed into: the whole tree, never following symlinks."""
    import shutil

    if os.path.lexists(dest_dir):
        shutil.rmtree(dest_dir)


def _ns(t: float) -> int:
    return t * 1_000_000_000 if isinstance(t, int) else int(round(t * 1e9))


class _Extractor:
    def __init__(self, root: Root, limits: Limits, whiteout_mode: str, device_policy: str,
                 chown: bool, best_effort_xattrs: bool) -> None:
        self.root = root
        self.limits = limits
        self.overlay = whiteout_mode == "overlay"
        self.device_policy = device_policy
        self.chown = chown
        self.best_effort = best_effort_xattrs
        self.size = self.entries = self.skipped = self.dropped_xattrs = 0
        # (dev, ino) -> (parts, mode, atime_ns, mtime_ns): directory metadata applied at the end
        self.dirs: dict[tuple[int, int], tuple[tuple[str, ...], int, int, int]] = {}
        # (dev, ino) of what this layer created: "delete" mode's opaque directories keep only these
        self.mine = root.created
        self.copy_data: Callable[[tarfile.TarInfo, int], None] | None = None  # else via tarfile

    # -- dispatch ------------------------------------------------------------------------------

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        self.entries += 1
        try:
            self._member(tar, m)
        except Refused as e:
            raise InvalidArgument(f"layer member {m.name!r}: {e}") from None
        except InvalidArgument as e:  # from the stream while reading this member's data
            raise InvalidArgument(f"layer member {m.name!r}: {str(e).removeprefix('layer: ')}") from None
        except tarfile.TarError as e:
            raise InvalidArgument(f"layer member {m.name!r}: corrupt tar data: {e}") from None
        except OSError as e:
            where = f" ({e.filename})" if e.filename else ""
            raise KernelError(f"extract layer member {m.name!r}{where}", e.errno or 5) from None

    def _member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        lim = self.limits
        parts = clean_name(m.name, max_path=lim.max_path_bytes, max_component=lim.max_name_bytes)
        if parts and parts[0].startswith(WHITEOUT_META_PREFIX) and parts != (OPAQUE_MARKER,):
            self.skipped += 1  # AUFS metadata (.wh..wh.plnk, .wh..wh.aufs)
            return
        if parts and parts[-1].startswith(WHITEOUT_PREFIX):
            return self._whiteout(parts)
        if m.type not in _TYPES:
            raise Refused(f"unsupported member type {m.type!r}")
        if not (0 <= m.uid <= _MAX_ID and 0 <= m.gid <= _MAX_ID):
            raise Refused(f"uid/gid {m.uid}/{m.gid} out of range")
        if not parts:
            if not m.isdir():
                raise Refused("the layer root can only be a directory")
            return self._dir_meta(self.root.fd, (), m)
        parent = self.root.dir(parts[:-1], create=True)
        leaf = parts[-1]
        if m.isdir():
            if not self._clear(parent, leaf, keep_dir=True):
                os.mkdir(leaf, 0o700, dir_fd=parent)
            fd = open_dir_fd(parent, leaf)
            try:
                self._dir_meta(fd, parts, m)
            finally:
                os.close(fd)
        elif m.isreg():
            self._file(tar, parent, leaf, m)
        elif m.issym():
            self._symlink(parent, leaf, m)
        elif m.islnk():
            self._hardlink(parent, leaf, parts, m)
        else:
            self._special(parent, leaf, m)

    # -- entries -------------------------------------------------------------------------------

    def _clear(self, parent: int, leaf: str, *, keep_dir: bool = False) -> bool:
        """Remove an existing ``leaf``; True if it is a directory that was kept."""
        try:
            st = os.stat(leaf, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if keep_dir and stat.S_ISDIR(st.st_mode):
            return True
        remove_entry(parent, leaf)
        self.root.invalidate()
        return False

    def _file(self, tar: tarfile.TarFile, parent: int, leaf: str, m: tarfile.TarInfo) -> None:
        self._clear(parent, leaf)
        fd = os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            if m.size and self.copy_data is not None:
                self.copy_data(m, fd)
                self.size += m.size
            elif m.size:
                src = tar.extractfile(m)
                assert src is not None
                left = m.size
                while left:
                    chunk = src.read(min(CHUNK, left))
                    if not chunk:
                        raise Refused("file data ends early")
                    left -= len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                self.size += m.size
            self._owner(m, fd=fd)
            os.fchmod(fd, m.mode & 0o7777)
            self._xattrs(m, fd=fd)
            os.utime(fd, ns=self._times(m))
            self._mine(os.fstat(fd))
        finally:
            os.close(fd)

    def _dir_meta(self, fd: int, parts: tuple[str, ...], m: tarfile.TarInfo) -> None:
        self._owner(m, fd=fd)
        self._xattrs(m, fd=fd)
        st = os.fstat(fd)
        self._mine(st)
        self.dirs[(st.st_dev, st.st_ino)] = (parts, m.mode & 0o7777, *self._times(m))

    def _symlink(self, parent: int, leaf: str, m: tarfile.TarInfo) -> None:
        target = m.linkname
        if not target:
            raise Refused("symlink with an empty target")
        if "\x00" in target or encoded_len(target) > self.limits.max_path_bytes:
            raise Refused(f"symlink target is longer than {self.limits.max_path_bytes} bytes or has a NUL")
        self._clear(parent, leaf)
        os.symlink(target, leaf, dir_fd=parent)  # stored as is: never followed while extracting
        self.root.invalidate()
        self._path_meta(parent, leaf, m, chmod=False)

    def _hardlink(self, parent: int, leaf: str, parts: tuple[str, ...], m: tarfile.TarInfo) -> None:
        lim = self.limits
        tparts = clean_name(m.linkname, max_path=lim.max_path_bytes, max_component=lim.max_name_bytes,
                            what="hardlink target")
        if not tparts:
            raise Refused("hardlink to the layer root")
        if tparts == parts:
            raise Refused("hardlink to itself")
        self._clear(parent, leaf)
        try:
            tparent = self.root.dir(tparts[:-1], create=False)
            st = os.stat(tparts[-1], dir_fd=tparent, follow_symlinks=False)
        except (Refused, FileNotFoundError):
            raise Refused(f"hardlink target {m.linkname!r} does not exist in the layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise Refused(f"hardlink target {m.linkname!r} is a directory")
        # linkat without AT_SYMLINK_FOLLOW: a link to a symlink is a second name of the symlink.
        os.link(tparts[-1], leaf, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)
        # A hardlink shares its target's inode: its header's metadata is not applied (it would
        # re-chmod the target); the target's own member carried it.

    def _special(self, parent: int, leaf: str, m: tarfile.TarInfo) -> None:
        if m.isfifo():
            self._clear(parent, leaf)
            os.mkfifo(leaf, 0o600, dir_fd=parent)
        else:
            kind = "char" if m.ischr() else "block"
            if self.device_policy == "refuse":
                raise Refused(f"{kind} device {m.devmajor}:{m.devminor} refused by the device policy")
            if self.device_policy == "skip":
                self.skipped += 1
                return
            self._clear(parent, leaf)
            ftype = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(leaf, ftype | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=parent)
        self._path_meta(parent, leaf, m, chmod=True)

    def _path_meta(self, parent: int, leaf: str, m: tarfile.TarInfo, *, chmod: bool) -> None:
        """Metadata for entries we cannot open (symlinks, devices, FIFOs): *at calls, no following."""
        if self.chown:
            os.chown(leaf, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)
        if chmod:
            os.chmod(leaf, m.mode & 0o7777, dir_fd=parent, follow_symlinks=False)
        self._xattrs(m, path=f"/proc/self/fd/{parent}/{leaf}")
        os.utime(leaf, ns=self._times(m), dir_fd=parent, follow_symlinks=False)
        self._mine(os.stat(leaf, dir_fd=parent, follow_symlinks=False))

    # -- metadata ------------------------------------------------------------------------------

    def _owner(self, m: tarfile.TarInfo, *, fd: int) -> None:
        if self.chown:
            os.fchown(fd, m.uid, m.gid)  # before chmod: chown clears setuid/setgid

    def _xattrs(self, m: tarfile.TarInfo, *, fd: int | None = None, path: str | None = None) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith(_XATTR_PAX):
                continue
            name = key[len(_XATTR_PAX):]
            if not xattr_allowed(name):
                self.dropped_xattrs += 1
                continue
            data = value.encode("utf-8", "surrogateescape")
            try:
                if fd is not None:
                    os.setxattr(fd, name, data)
                else:
                    os.setxattr(path, name, data, follow_symlinks=False)  # type: ignore[arg-type]
            except OSError as e:
                if not (self.best_effort and e.errno in (1, 95)):  # EPERM, EOPNOTSUPP
                    raise Refused(f"setting xattr {name}: {e.strerror}") from None
                self.dropped_xattrs += 1

    @staticmethod
    def _times(m: tarfile.TarInfo) -> tuple[int, int]:
        try:
            mtime = _ns(m.mtime)
            atime = _ns(float(m.pax_headers["atime"])) if "atime" in m.pax_headers else mtime
        except (ValueError, OverflowError):
            raise Refused("invalid timestamp") from None
        if not (-(1 << 62) < mtime < (1 << 62) and -(1 << 62) < atime < (1 << 62)):
            raise Refused("timestamp out of range")
        return atime, mtime

    def _mine(self, st: os.stat_result) -> None:
        if not self.overlay:
            self.mine.add((st.st_dev, st.st_ino))

    # -- whiteouts -----------------------------------------------------------------------------

    def _whiteout(self, parts: tuple[str, ...]) -> None:
        dir_parts, base = parts[:-1], parts[-1]
        if base == OPAQUE_MARKER:
            dfd = self.root.dir(dir_parts, create=True)
            if self.overlay:
                fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
                finally:
                    os.close(fd)
            else:
                self._prune(dfd)
            return
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", ".."):
            raise Refused("whiteout does not name an entry")
        if self.overlay:
            parent = self.root.dir(dir_parts, create=True)
            self._clear(parent, target)
            os.mknod(target, stat.S_IFCHR | 0o000, 0, dir_fd=parent)  # overlayfs' whiteout: 0/0
            return
        try:
            parent = self.root.dir(dir_parts, create=False)
        except Refused:
            return  # nothing there to delete
        if remove_entry(parent, target):
            self.root.invalidate()

    def _prune(self, dfd: int) -> None:
        """"delete" mode's opaque directory: remove every entry below it this layer did not make."""
        stack = [os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dfd)]
        removed = False
        try:
            while stack:
                fd = stack.pop()
                try:
                    with os.scandir(fd) as it:
                        names = [e.name for e in it]
                    for name in names:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        if (st.st_dev, st.st_ino) not in self.mine:
                            remove_entry(fd, name)
                            removed = True
                        elif stat.S_ISDIR(st.st_mode):
                            stack.append(open_dir_fd(fd, name))
                finally:
                    os.close(fd)
        finally:
            for fd in stack:
                os.close(fd)
            if removed:
                self.root.invalidate()

    # -- the end -------------------------------------------------------------------------------

    def finish(self) -> None:
        """Directory modes and times, deepest first; a directory replaced since is left alone."""
        for (dev, ino), (parts, mode, atime, mtime) in sorted(
                self.dirs.items(), key=lambda kv: len(kv[1][0]), reverse=True):
            try:
                if parts:
                    parent = self.root.dir(parts[:-1], create=False)
                    fd = open_dir_fd(parent, parts[-1])
                else:
                    fd = os.dup(self.root.fd)
            except (Refused, OSError):
                continue
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) == (dev, ino):
                    os.fchmod(fd, mode)
                    os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)
        self.root.release()
