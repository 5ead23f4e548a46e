"""Layers from overlay upper directories, and typed differences between two trees.

``diff_upper``: a container's (or a build step's) overlay upper dir *is* its change set, in overlay's
spelling; the layer spells it the OCI way: a 0/0 character device (overlay whiteout) becomes an
empty ``.wh.name`` file, a directory with ``trusted.overlay.opaque=y`` is followed by a
``.wh..wh..opq`` entry, overlay's own xattrs are dropped. A ``metacopy`` file's data lives in a lower
dir (``lower_dirs``, top-most first); a directory renamed with ``redirect_dir`` would need a merged
walk and is refused (snapshots are mounted with ``redirect_dir=off``, as Docker does).

``diff_trees``: what changed from one root filesystem to another, for ``dockyard image diff``.
Git-like: a file whose only difference is its mtime is *not* changed (content decides). The quick
check: differing type, mode bits, owner, size, symlink target or device numbers decide at once; equal
size and equal mtime count as unchanged without reading; equal size with differing mtimes compares
contents byte by byte (streamed; ``thorough=True`` compares every equal-size file). Directories
change by mode and owner only (their mtime moves whenever an entry does). xattrs are not compared.
"""

from __future__ import annotations

import os
import stat

from dockyard import errors
from dockyard.archive.compression import CHUNK
from dockyard.archive.names import OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX
from dockyard.archive.writer import Entry, WrittenLayer, entry_from_stat, kind_of, walk_tree, write_sorted
from dockyard.record import Record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator, Sequence

_REDIRECT = "trusted.overlay.redirect"
_METACOPY = "trusted.overlay.metacopy"


def _ovl_xattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def upper_entries(upper_dir: str | os.PathLike[str],
                  lower_dirs: Sequence[str | os.PathLike[str]] = ()) -> Iterator[Entry]:
    """The entries of a layer equivalent to ``upper_dir``, in ``names.sort_key`` order."""
    links: dict[tuple[int, int], str] = {}

    def rename(name: str, st: os.stat_result) -> str:
        return WHITEOUT_PREFIX + name if _is_whiteout(st) else name

    for rel, full, st in walk_tree(upper_dir, rename):
        if _is_whiteout(st):
            yield Entry(rel, "file", mode=0o600, uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime))
            continue
        if stat.S_ISDIR(st.st_mode) and _ovl_xattr(full, _REDIRECT) is not None:
            raise errors.NotImplemented(f"diff of {upper_dir}: directory {rel!r} was renamed with "
                                        f"overlay redirect_dir; mount with redirect_dir=off")
        entry = entry_from_stat(rel, full, st, links)
        if entry is None:
            continue
        if entry.kind == "file" and _ovl_xattr(full, _METACOPY) is not None:
            entry = replace(entry, source=_metacopy_source(rel, full, lower_dirs))
        yield entry
        if entry.kind == "dir" and _ovl_xattr(full, OVERLAY_OPAQUE_XATTR) == b"y":
            yield Entry(f"{rel}/{OPAQUE_MARKER}", "file", mode=stat.S_IMODE(st.st_mode) & 0o777,
                        uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime))


def _metacopy_source(rel: str, full: str, lower_dirs: Sequence[str | os.PathLike[str]]) -> str:
    """Where a metadata-only copy-up keeps its data: the redirect path, or the same path, in a lower."""
    redirect = _ovl_xattr(full, _REDIRECT)
    path = os.fsdecode(redirect).lstrip("/") if redirect and redirect.startswith(b"/") else rel
    for lower in lower_dirs:
        candidate = os.path.join(os.fspath(lower), path)
        try:
            if stat.S_ISREG(os.lstat(candidate).st_mode):
                return candidate
        except OSError:
            continue
    raise errors.FailedPrecondition(f"diff: metacopy file {rel!r} has no data in the lower dirs")


def diff_upper(upper_dir: str | os.PathLike[str], lower_dirs: Sequence[str | os.PathLike[str]],
               out: BinaryIO, *, compression: str | None = "gzip", mtime: int | None = None,
               level: int | None = None) -> WrittenLayer:
    """Write the layer of an overlay upper dir to ``out`` (deterministic, see ``writer``)."""
    return write_sorted(upper_entries(upper_dir, lower_dirs), out, compression=compression,
                        mtime=mtime, level=level)


# --------------------------------------------------------------------------------------------------
# diff_trees

class FileInfo(Record):
    kind: str               # file, dir, symlink, char, block, fifo, socket
    mode: int               # permission bits, setuid/setgid/sticky included
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0


class Change(Record):
    path: str               # absolute inside the image: "/etc/passwd"
    action: str             # "added", "changed" or "deleted"
    old: FileInfo | None
    new: FileInfo | None

    @property
    def info(self) -> FileInfo:
        """The entry as it is now (or was, for a deletion)."""
        return self.new if self.new is not None else self.old  # type: ignore[return-value]


def _info(full: str, st: os.stat_result) -> FileInfo:
    kind = kind_of(st.st_mode) or "socket"
    dev = kind in ("char", "block")
    return FileInfo(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                    st.st_size if kind in ("file", "symlink") else 0, st.st_mtime_ns,
                    os.readlink(full) if kind == "symlink" else "",
                    os.major(st.st_rdev) if dev else 0, os.minor(st.st_rdev) if dev else 0)


def _listing(path: str) -> dict[str, os.stat_result]:
    with os.scandir(path) as it:
        names = [e.name for e in it]
    return {n: os.lstat(os.path.join(path, n)) for n in names}


def _same_content(a: str, b: str) -> bool:
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        while True:
            ca, cb = fa.read(CHUNK), fb.read(CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def _changed(o: FileInfo, n: FileInfo, old_full: str, new_full: str, thorough: bool) -> bool:
    if (o.kind, o.mode, o.uid, o.gid) != (n.kind, n.mode, n.uid, n.gid):
        return True
    if o.kind == "dir":
        return False
    if (o.size, o.linkname, o.devmajor, o.devminor) != (n.size, n.linkname, n.devmajor, n.devminor):
        return True
    if o.kind != "file" or (o.mtime_ns == n.mtime_ns and not thorough):
        return False
    return not _same_content(old_full, new_full)


def diff_trees(old_dir: str | os.PathLike[str], new_dir: str | os.PathLike[str], *,
               thorough: bool = False) -> list[Change]:
    """Changes from ``old_dir`` to ``new_dir``, in path order, parents before children.

    Every entry of an added or deleted subtree is listed (with its size and mode), as git lists
    every file; a path whose type changed is "changed", and the subtree it had or has is listed as
    deleted or added.
    """
    changes: list[Change] = []
    stack: list[tuple[str, str | None, str | None]] = [("", os.fspath(old_dir), os.fspath(new_dir))]
    while stack:
        rel, old, new = stack.pop()
        olds = _listing(old) if old is not None else {}
        news = _listing(new) if new is not None else {}
        later: list[tuple[str, str | None, str | None]] = []
        for name in sorted(olds.keys() | news.keys(), key=lambda s: s.encode("utf-8", "surrogateescape")):
            path = f"{rel}/{name}"
            of = os.path.join(old, name) if name in olds else None  # type: ignore[arg-type]
            nf = os.path.join(new, name) if name in news else None  # type: ignore[arg-type]
            oi = _info(of, olds[name]) if of is not None else None
            ni = _info(nf, news[name]) if nf is not None else None
            if oi is None:
                changes.append(Change(path, "added", None, ni))
            elif ni is None:
                changes.append(Change(path, "deleted", oi, None))
            elif _changed(oi, ni, of, nf, thorough):  # type: ignore[arg-type]
                changes.append(Change(path, "changed", oi, ni))
            o_dir = of if oi is not None and oi.kind == "dir" else None
            n_dir = nf if ni is not None and ni.kind == "dir" else None
            if o_dir or n_dir:
                later.append((path, o_dir, n_dir))
        stack.extend(later)
    # path order by components: a directory's subtree right after it
    changes.sort(key=lambda c: tuple(p.encode("utf-8", "surrogateescape") for p in c.path.split("/")))
    return changes
