"""Deterministic layer writing: the same tree (or the same entries) gives byte-identical blobs.

Why it matters: the builder's cache and ``docker push`` dedup compare digests; a layer written twice
from the same content must hash the same. Hence:
- entries sorted by path in byte order of components (``names.sort_key``), independent of the
  locale and of the order a directory lists;
- headers normalized: PAX format (tarfile adds PAX records only where ustar cannot hold a value),
  ``uname``/``gname`` empty (ids are numeric, as in the image config), integer mtimes (optionally
  one fixed ``mtime`` for every entry, for reproducible builds), device numbers, xattrs as
  ``SCHILY.xattr.*`` records in name order, filtered by ``names.xattr_allowed``; no atime/ctime;
- hardlinks within the tree written once as a file, then as links to the first path;
- gzip without timestamp or file name; zstd single-threaded (``compression.open_compressor``).
Sockets are skipped (tar cannot hold them). Streaming: files are copied in chunks, nothing is held.
"""

from __future__ import annotations

import os
import stat
import tarfile

from dockyard.archive.compression import CHUNK, NONE, HashingWriter, open_compressor
from dockyard.archive.names import sort_key, xattr_allowed
from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Callable, Iterable, Iterator

KINDS = ("file", "dir", "symlink", "hardlink", "char", "block", "fifo")
_TAR_TYPE = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
             "fifo": tarfile.FIFOTYPE}


class Entry(Record):
    """One member to write. ``path`` is relative, ``/``-separated, without leading or trailing ``/``.

    Regular-file content comes from ``source`` (a host path, opened without following symlinks) or
    ``data`` (small inline content); ``size`` must match it. ``linkname`` is the symlink target or
    the hardlink's first path. ``xattrs`` are ``(name, value)`` pairs.
    """

    path: str
    kind: str = "file"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()
    source: str | None = None
    data: bytes | None = None


class WrittenLayer(Record):
    digest: Digest       # of the blob as written (compressed)
    diff_id: Digest      # of the uncompressed tar
    size: int            # blob bytes
    tar_size: int
    compression: str
    entries: int


def kind_of(mode: int) -> str | None:
    """The entry kind of an ``st_mode``; None for sockets (not representable in tar)."""
    fmt = stat.S_IFMT(mode)
    return {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFCHR: "char",
            stat.S_IFBLK: "block", stat.S_IFIFO: "fifo"}.get(fmt)


def read_xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    """The xattrs of ``path`` (not followed) that may go into a layer, sorted by name."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:  # filesystems without xattr support
        return ()
    out = []
    for name in sorted(names):
        if xattr_allowed(name):
            try:
                out.append((name, os.getxattr(path, name, follow_symlinks=False)))
            except OSError:
                continue
    return tuple(out)


def entry_from_stat(rel: str, full: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> Entry | None:
    """The entry for ``full`` (stat ``st``), or a hardlink entry if its inode was seen at another path."""
    kind = kind_of(st.st_mode)
    if kind is None:
        return None
    common = dict(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime))
    if kind != "dir" and st.st_nlink > 1:
        first = links.setdefault((st.st_dev, st.st_ino), rel)
        if first != rel:
            return Entry(rel, "hardlink", linkname=first, **common)  # type: ignore[arg-type]
    xattrs = read_xattrs(full)
    if kind == "file":
        return Entry(rel, "file", size=st.st_size, source=full, xattrs=xattrs, **common)  # type: ignore[arg-type]
    if kind == "symlink":
        return Entry(rel, "symlink", linkname=os.readlink(full), xattrs=xattrs, **common)  # type: ignore[arg-type]
    if kind in ("char", "block"):
        return Entry(rel, kind, devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev),
                     xattrs=xattrs, **common)  # type: ignore[arg-type]
    return Entry(rel, kind, xattrs=xattrs, **common)  # type: ignore[arg-type]


def walk_tree(root: str | os.PathLike[str], rename: Callable[[str, os.stat_result], str] | None = None,
              ) -> Iterator[tuple[str, str, os.stat_result]]:
    """``(relative path, full path, lstat)`` of everything under ``root`` in ``sort_key`` order.

    Depth first, a directory right before its subtree; symlinks are never followed. ``rename`` maps
    a non-directory's name to the name it is written under (and sorted by), e.g. overlay whiteouts
    to ``.wh.name``. Iterative, so a deep tree made inside a container cannot exhaust the
    interpreter's recursion limit.
    """
    base = os.fspath(root)
    stack = [("", base, _children(base, rename))]
    while stack:
        rel_dir, full_dir, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            continue
        out_name, name, st = child
        rel = f"{rel_dir}/{out_name}" if rel_dir else out_name
        full = os.path.join(full_dir, name)
        yield rel, full, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((rel, full, _children(full, rename)))


def _children(path: str, rename: Callable[[str, os.stat_result], str] | None,
              ) -> Iterator[tuple[str, str, os.stat_result]]:
    with os.scandir(path) as it:
        names = [e.name for e in it]
    kids = []
    for name in names:
        st = os.lstat(os.path.join(path, name))
        out = rename(name, st) if rename is not None and not stat.S_ISDIR(st.st_mode) else name
        kids.append((out.encode("utf-8", "surrogateescape"), out, name, st))
    kids.sort(key=lambda k: k[0])
    return iter([(out, name, st) for _, out, name, st in kids])


def tree_entries(root: str | os.PathLike[str]) -> Iterator[Entry]:
    """Every entry under ``root`` (not ``root`` itself) in ``sort_key`` order; sockets skipped."""
    links: dict[tuple[int, int], str] = {}
    for rel, full, st in walk_tree(root):
        entry = entry_from_stat(rel, full, st, links)
        if entry is not None:
            yield entry


def write_layer(source: str | os.PathLike[str] | Iterable[Entry], out: BinaryIO, *,
                compression: str | None = "gzip", mtime: int | None = None,
                level: int | None = None) -> WrittenLayer:
    """Write a layer of ``source`` (a directory, or entries in any order) to ``out``.

    ``compression`` is "gzip", "zstd" or None; ``mtime`` replaces every entry's mtime when given.
    Returns the blob digest and the diff_id computed while writing.
    """
    if isinstance(source, (str, os.PathLike)):
        entries: Iterable[Entry] = tree_entries(source)
    else:
        entries = sorted(source, key=lambda e: sort_key(e.path))
    return write_sorted(entries, out, compression=compression, mtime=mtime, level=level)


def write_sorted(entries: Iterable[Entry], out: BinaryIO, *, compression: str | None = "gzip",
                 mtime: int | None = None, level: int | None = None) -> WrittenLayer:
    """``write_layer`` for entries already in ``sort_key`` order (streamed, not re-sorted)."""
    kind = compression or NONE
    blob = HashingWriter(out)
    compressor = open_compressor(kind, blob, level)
    tar_side = HashingWriter(compressor)
    count = 0
    tar = tarfile.open(fileobj=tar_side, mode="w|", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                       encoding="utf-8", errors="surrogateescape", copybufsize=CHUNK)
    try:
        for entry in entries:
            _add(tar, entry, mtime)
            count += 1
    finally:
        tar.close()
        if compressor is not blob:
            compressor.close()
    return WrittenLayer(digest=Digest.of_hasher(blob.hasher), diff_id=Digest.of_hasher(tar_side.hasher),
                        size=blob.size, tar_size=tar_side.size, compression=kind, entries=count)


def _add(tar: tarfile.TarFile, e: Entry, mtime: int | None) -> None:
    if e.kind not in _TAR_TYPE:
        raise InvalidArgument(f"layer entry {e.path!r}: unknown kind {e.kind!r}")
    if not e.path or e.path.startswith("/") or "\x00" in e.path:
        raise InvalidArgument(f"layer entry {e.path!r}: path must be relative and non-empty")
    info = tarfile.TarInfo(e.path)
    info.type = _TAR_TYPE[e.kind]
    info.mode = e.mode & 0o7777
    info.uid, info.gid = e.uid, e.gid
    info.uname = info.gname = ""
    info.mtime = int(e.mtime if mtime is None else mtime)
    info.linkname = e.linkname
    info.devmajor, info.devminor = e.devmajor, e.devminor
    info.pax_headers = {f"SCHILY.xattr.{name}": value.decode("utf-8", "surrogateescape")
                        for name, value in sorted(e.xattrs) if xattr_allowed(name)}
    if e.kind != "file":
        tar.addfile(info)
        return
    info.size = e.size
    if e.data is not None:
        import io

        if len(e.data) != e.size:
            raise InvalidArgument(f"layer entry {e.path!r}: size {e.size} but {len(e.data)} bytes of data")
        tar.addfile(info, io.BytesIO(e.data))
    elif e.source is not None:
        fd = os.open(e.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb", buffering=0) as f:
            tar.addfile(info, f)
    elif e.size:
        raise InvalidArgument(f"layer entry {e.path!r}: a file of {e.size} bytes without content")
    else:
        tar.addfile(info)
