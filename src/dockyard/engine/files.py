"""A container's files, on paths the caller provides: stat, archive (``docker cp`` both ways),
export, and the change list of ``docker diff``.

Every path from a request is resolved *inside* the rootfs (DESIGN §5): ``_resolve`` walks it one
component at a time from directory fds of ``archive.resolve.Root`` (``O_NOFOLLOW``, ``*at`` calls),
reading symlinks textually, an absolute target restarting at the rootfs and ``..`` stopping there.
Trees are walked the same way (each directory opened with ``O_NOFOLLOW`` from its parent's fd, each
file opened ``O_NOFOLLOW``), so a container that swaps a directory for a symlink to ``/etc`` while
``docker cp`` runs makes it read or write nothing of the host. The rootfs mount must be held by the
caller for the duration (``ContainerService.files_view``).

Docker's shapes (moby ``daemon/archive*.go``, ``pkg/archive``):
- the path is taken as absolute in the container; its parent is resolved, its last component is
  not (``docker cp c:/link -`` gives the link itself) unless the path ends in ``/`` or ``/.``;
- a directory ``/x/d`` archives as ``d/``, ``d/...``; ``/x/d/.`` as ``./``, ``./...`` (contents);
- ``X-Docker-Container-Path-Stat``: base64 of ``{"name","size","mode","mtime","linkTarget"}``
  with Go ``os.FileMode`` bits and the link fully evaluated inside the rootfs;
- PUT: the path (its last link followed) must be a directory; ownership as in the archive, or the
  container's user with ``copyUIDGID``; ``noOverwriteDirNonDir`` refuses replacing a directory by
  a non-directory and vice versa; a read-only rootfs is refused.
- changes: Docker's kinds 0 Modified, 1 Added, 2 Deleted, in walk order, the parent of an added
  or deleted entry listed as modified.

Deviations, on purpose: whiteout names (``.wh.*``) and device nodes in a PUT archive are refused (the
upper dir would turn them into deletions on commit, and a device node grants access); sockets are
skipped in archives; mount points below the archived path are not descended into; an opaque
directory (``rm -rf d; mkdir d``) is "modified" and its lower contents "deleted" is not listed
(Docker lists the directory as deleted). Volumes and bind mounts are not overlaid on the rootfs
here: ``docker cp`` to or from a volume's path sees the rootfs below it (Docker mounts them).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import posixpath
import stat
import tarfile
import time

from dockyard.archive.names import OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX, Refused, clean_name
from dockyard.archive.resolve import Root
from dockyard.errors import DockyardError, InvalidArgument, KernelError, NotFound
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Sequence
    from typing import BinaryIO

CHUNK = 1 << 20
_MAX_LINKS = 40
_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

# Go's os.FileMode type bits
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHARDEV = 1 << 21
GO_STICKY = 1 << 20

MODIFIED, ADDED, DELETED = 0, 1, 2

#: What the engine and the runtime put into every container (mount points, Docker's init layer):
#: left out of ``docker diff`` by default, as Docker's init layer keeps them out.
ENGINE_PATHS = frozenset({"/.dockerenv", "/dev", "/proc", "/sys", "/etc/hosts", "/etc/hostname",
                          "/etc/resolv.conf", "/etc/mtab"})


class ReadOnly(DockyardError):
    """Docker's 403 for a PUT into a read-only rootfs."""

    http_status = 403


class PathStat(Record):
    name: str
    size: int
    mode: int          # Go os.FileMode bits
    mtime: str         # RFC 3339 with nanoseconds, UTC
    link_target: str = ""

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & GO_DIR)


class Change(Record):
    path: str          # absolute in the container
    kind: int          # MODIFIED, ADDED, DELETED


# ---------------------------------------------------------------------------------------- paths

def go_file_mode(st_mode: int) -> int:
    """Go's ``os.FileMode`` of a ``st_mode``."""
    mode = st_mode & 0o777
    fmt = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFBLK: GO_DEVICE,
             stat.S_IFCHR: GO_DEVICE | GO_CHARDEV, stat.S_IFIFO: GO_PIPE,
             stat.S_IFSOCK: GO_SOCKET}.get(fmt, 0)
    if st_mode & stat.S_ISUID:
        mode |= GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_STICKY
    return mode


def rfc3339_ns(ns: int) -> str:
    """Go's ``time.Time`` JSON (RFC 3339, nanoseconds with trailing zeros trimmed) in UTC."""
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def docker_path_stat_header(st: PathStat) -> str:
    """The value of ``X-Docker-Container-Path-Stat``."""
    obj = {"name": st.name, "size": st.size, "mode": st.mode, "mtime": st.mtime,
           "linkTarget": st.link_target}
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def absolute_path(path: str) -> str:
    """Docker's ``PreserveTrailingDotOrSeparator(Join("/", path), path)``."""
    if not path:
        raise InvalidArgument("path must not be empty")
    if "\x00" in path:
        raise InvalidArgument(f"path {path!r}: contains a NUL byte")
    clean = posixpath.normpath("/" + path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if path.endswith("/.") or path == ".":
        return clean.rstrip("/") + "/."
    if path.endswith("/") and clean != "/":
        return clean + "/"
    return clean


def _parts(abs_path: str) -> tuple[str, ...]:
    return tuple(p for p in abs_path.split("/") if p and p != ".")


def _missing(path: str, container: str) -> NotFound:
    where = f" in container {container}" if container else ""
    return NotFound(f"Could not find the file {path}{where}")


def _resolve(root: Root, parts: Sequence[str], *, follow_last: bool) -> tuple[str, ...]:
    """``parts`` resolved in the rootfs: every symlink met read and followed textually (the last
    one only when ``follow_last``). A missing component ends the walk: the rest is appended as
    written (``..`` applied lexically), as Docker's ``FollowSymlinkInScope`` does."""
    todo = list(reversed(parts))
    out: list[str] = []
    hops = 0
    while todo:
        comp = todo.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if out:
                out.pop()
            continue
        last = not any(c not in ("", ".") for c in todo)
        try:
            dfd = root.dir(tuple(out), create=False)
            st = os.stat(comp, dir_fd=dfd, follow_symlinks=False)
        except (Refused, FileNotFoundError, NotADirectoryError):
            out.append(comp)
            for rest in reversed(todo):
                if rest == "..":
                    if out:
                        out.pop()
                elif rest not in ("", "."):
                    out.append(rest)
            return tuple(out)
        if stat.S_ISLNK(st.st_mode) and (follow_last or not last):
            hops += 1
            if hops > _MAX_LINKS:
                raise InvalidArgument(f"resolve /{'/'.join(parts)}: too many levels of symbolic links")
            target = os.readlink(comp, dir_fd=dfd)
            if target.startswith("/"):
                out = []
            todo.extend(reversed(target.split("/")))
            continue
        out.append(comp)
    return tuple(out)


class _Located(Record):
    abs_path: str
    resolved: tuple[str, ...]   # in-root components of the entry (its last link not followed)
    st: os.stat_result


def _locate(root: Root, path: str, container: str) -> _Located:
    abs_path = absolute_path(path)
    parts = _parts(abs_path)
    follow = abs_path.endswith("/") or abs_path.endswith("/.") or not parts
    resolved = _resolve(root, parts, follow_last=follow)
    try:
        st = _lstat(root, resolved)
    except (Refused, FileNotFoundError, NotADirectoryError):
        raise _missing(path, container) from None
    if follow and parts and not stat.S_ISDIR(st.st_mode):
        raise _missing(path, container)  # "/file/": ENOTDIR, as lstat would say
    return _Located(abs_path, resolved, st)


def _lstat(root: Root, resolved: tuple[str, ...]) -> os.stat_result:
    if not resolved:
        return os.fstat(root.fd)
    return os.stat(resolved[-1], dir_fd=root.dir(resolved[:-1], create=False), follow_symlinks=False)


def _base(abs_path: str) -> str:
    """Go's ``filepath.Base``: trailing slashes dropped, ``/`` for the root."""
    stripped = abs_path.rstrip("/")
    return stripped.rsplit("/", 1)[-1] if stripped else "/"


def _path_stat(root: Root, loc: _Located) -> PathStat:
    link = ""
    if stat.S_ISLNK(loc.st.st_mode):
        link = "/" + "/".join(_resolve(root, _parts(loc.abs_path), follow_last=True))
    return PathStat(name=_base(loc.abs_path), size=loc.st.st_size, mode=go_file_mode(loc.st.st_mode),
                    mtime=rfc3339_ns(loc.st.st_mtime_ns), link_target=link)


def stat_path(rootfs: str, path: str, *, container: str = "") -> PathStat:
    """``HEAD /containers/{id}/archive?path=``: the entry at ``path`` (its last link not followed).
    ``NotFound`` in Docker's words when it does not exist; ``container`` names it in the message."""
    with Root(rootfs) as root:
        return _path_stat(root, _locate(root, path, container))


# ---------------------------------------------------------------------------------------- archives

class _TarOut:
    """Tar bytes gathered into chunks of about ``CHUNK`` for the caller's stream."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.links: dict[tuple[int, int], str] = {}

    def take(self) -> bytes:
        data = bytes(self.buf)
        self.buf.clear()
        return data


def _xattrs(path: str) -> dict[str, str]:
    from dockyard.archive.writer import read_xattrs

    return {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in read_xattrs(path)}


def _entry(out: _TarOut, dfd: int, name: str, arcname: str, st: os.stat_result) -> Iterator[bytes]:
    """The tar member of ``name`` in directory ``dfd`` (header, then data for a regular file)."""
    fmt = stat.S_IFMT(st.st_mode)
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = st.st_mtime_ns // 1_000_000_000
    fd = -1
    if fmt != stat.S_IFDIR and st.st_nlink > 1:
        first = out.links.setdefault((st.st_dev, st.st_ino), arcname)
        if first != arcname:
            info.type, info.linkname = tarfile.LNKTYPE, first
            out.buf += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            return
    if fmt == stat.S_IFREG:
        try:
            fd = os.open(name, _FILE_READ, dir_fd=dfd)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
                return  # removed, or swapped for a link or a socket, since we listed it
            raise KernelError(f"archive {arcname!r}: open", e.errno or errno.EIO) from None
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):  # swapped meanwhile
            os.close(fd)
            return
        info.type, info.size = tarfile.REGTYPE, fst.st_size
        info.pax_headers = _xattrs(f"/proc/self/fd/{fd}")
    else:
        info.pax_headers = _xattrs(f"/proc/self/fd/{dfd}/{name}")
        if fmt == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
        elif fmt == stat.S_IFLNK:
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dfd)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            info.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif fmt == stat.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets: tar cannot hold them (Docker skips them too)
    out.buf += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if fd < 0:
        return
    try:
        left = info.size
        while left:
            data = os.read(fd, min(CHUNK, left))
            if not data:  # the file shrank while we read it: pad, as the header promised
                data = bytes(min(CHUNK, left))
            left -= len(data)
            out.buf += data
            if len(out.buf) >= CHUNK:
                yield out.take()
        if info.size % 512:
            out.buf += bytes(512 - info.size % 512)
    finally:
        os.close(fd)


def _tree(out: _TarOut, top_fd: int, prefix: str) -> Iterator[bytes]:
    """Every entry below the open directory ``top_fd``, depth first in byte order of names, named
    ``prefix + relative path``. Directories on another device (mount points) are not entered."""
    dev = os.fstat(top_fd).st_dev
    stack: list[tuple[int, str, Iterator[str]]] = [(top_fd, prefix, iter(_names(top_fd)))]
    try:
        while stack:
            dfd, base, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                if dfd != top_fd:
                    os.close(dfd)
                continue
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we walk
            arcname = base + name
            yield from _entry(out, dfd, name, arcname, st)
            if len(out.buf) >= CHUNK:
                yield out.take()
            if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
                try:
                    child = os.open(name, _DIR_READ, dir_fd=dfd)
                except OSError:  # replaced by a non-directory (or a link) meanwhile: not entered
                    continue
                stack.append((child, arcname + "/", iter(_names(child))))
    finally:
        for dfd, _, _ in stack:
            if dfd != top_fd:
                os.close(dfd)


def _names(where: int | str) -> list[str]:
    with os.scandir(where) as it:
        names = [e.name for e in it]
    names.sort(key=lambda n: n.encode("utf-8", "surrogateescape"))
    return names


def _finish(out: _TarOut) -> Iterator[bytes]:
    out.buf += bytes(1024)  # two zero blocks end the archive
    yield out.take()


def _open_dir(root: Root, resolved: tuple[str, ...]) -> int:
    if not resolved:
        return os.open(".", _DIR_READ, dir_fd=root.fd)
    return os.open(resolved[-1], _DIR_READ, dir_fd=root.dir(resolved[:-1], create=False))


def archive_path(rootfs: str, path: str, *, container: str = "") -> tuple[PathStat, Iterator[bytes]]:
    """``GET /containers/{id}/archive?path=``: the stat (for the header, before any byte) and a
    generator of the tar's chunks. The generator holds fds until exhausted or closed."""
    root = Root(rootfs)
    try:
        loc = _locate(root, path, container)
        pstat = _path_stat(root, loc)
    except BaseException:
        root.close()
        raise
    return pstat, _archive_chunks(root, loc, pstat)


def _archive_chunks(root: Root, loc: _Located, pstat: PathStat) -> Iterator[bytes]:
    out = _TarOut()
    try:
        if stat.S_ISDIR(loc.st.st_mode):
            contents = loc.abs_path.endswith("/.") or not loc.resolved
            top = "." if contents else pstat.name
            dfd = _open_dir(root, loc.resolved)
            try:
                yield from _entry(out, dfd, ".", top, os.fstat(dfd))
                yield from _tree(out, dfd, top + "/")
            finally:
                os.close(dfd)
        else:
            parent = root.dir(loc.resolved[:-1], create=False)
            yield from _entry(out, parent, loc.resolved[-1], pstat.name, loc.st)
        yield from _finish(out)
    finally:
        root.close()


def export_rootfs(rootfs: str) -> Iterator[bytes]:
    """``docker export``: the whole filesystem as a tar (names ``bin/``, ``etc/passwd``, no root
    entry), streamed in chunks."""
    dfd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    out = _TarOut()
    try:
        yield from _tree(out, dfd, "")
        yield from _finish(out)
    finally:
        os.close(dfd)


# ---------------------------------------------------------------------------------------- extract

def extract_to(rootfs: str, path: str, stream: BinaryIO, *, no_overwrite_dir_non_dir: bool = False,
               copy_uid_gid: bool = False, user: str = "", read_only: bool = False,
               container: str = "") -> int:
    """``PUT /containers/{id}/archive?path=``: extract ``stream`` (a tar, any compression) into the
    directory ``path`` (its last link followed inside the rootfs). Returns the members extracted.

    Ownership as in the archive; with ``copy_uid_gid`` and a container ``user``, that user's uid
    and gid (looked up in the rootfs's own passwd/group). Errors: ``NotFound`` (no such path),
    ``InvalidArgument`` ("extraction point is not a directory", a refused member), ``ReadOnly``.
    """
    from dockyard.archive.compression import LayerStream, Limits
    from dockyard.archive.extract import _Extractor
    from dockyard.archive.reader import members, open_tar

    with Root(rootfs) as root:
        abs_path = absolute_path(path)
        dest = _resolve(root, _parts(abs_path), follow_last=True)
        try:
            st = _lstat(root, dest)
        except (Refused, FileNotFoundError, NotADirectoryError):
            raise _missing(path, container) from None
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument("extraction point is not a directory")
        if read_only:
            raise ReadOnly("container rootfs is marked read-only")
        owner = None
        if copy_uid_gid and user:
            from dockyard.image.bundle import resolve_user

            u = resolve_user(rootfs, user)
            owner = (u.uid, u.gid)
        limits = Limits()
        layer = LayerStream(stream, limits)
        x = _Extractor(root, limits, "overlay", "refuse", True, False)
        count = 0
        try:
            tar = open_tar(layer, limits)
            try:
                for m in members(tar, limits):
                    name = _put_name(root, dest, m, limits, no_overwrite_dir_non_dir)
                    if name is None:
                        continue
                    m.name = name
                    if m.islnk():
                        m.linkname = "/".join((*dest, *_clean(m.linkname, limits)))
                    if owner is not None:
                        m.uid, m.gid = owner
                    x.member(tar, m)
                    root.release()
                    count += 1
            finally:
                tar.close()
            x.finish()
            layer.drain()
        finally:
            layer.close()
    return count


def _clean(name: str, limits: object) -> tuple[str, ...]:
    try:
        return clean_name(name, max_path=limits.max_path_bytes,  # type: ignore[attr-defined]
                          max_component=limits.max_name_bytes)  # type: ignore[attr-defined]
    except Refused as e:
        raise InvalidArgument(f"extract {name!r}: {e}") from None


def _put_name(root: Root, dest: tuple[str, ...], m: tarfile.TarInfo, limits: object,
              no_overwrite: bool) -> str | None:
    """The member's name below ``dest``, None to skip it (the archive's ``.``); refusals raise."""
    parts = _clean(m.name, limits)
    if not parts:
        return None  # Docker skips "." when the destination is a directory
    bad = next((p for p in parts if p.startswith(WHITEOUT_PREFIX)), None)
    if bad is not None:
        raise InvalidArgument(f"extract {m.name!r}: the name {bad!r} is reserved for layer whiteouts")
    if m.ischr() or m.isblk():
        raise InvalidArgument(f"extract {m.name!r}: device nodes cannot be copied into a container")
    if no_overwrite:
        try:
            st = _lstat(root, (*dest, *parts))
        except (Refused, FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode) and not m.isdir():
            raise InvalidArgument(f"cannot overwrite directory \"/{'/'.join((*dest, *parts))}\" "
                                  f"with non-directory {m.name!r}")
        if st is not None and not stat.S_ISDIR(st.st_mode) and m.isdir():
            raise InvalidArgument(f"cannot overwrite non-directory \"/{'/'.join((*dest, *parts))}\" "
                                  f"with directory {m.name!r}")
    return "/".join((*dest, *parts))


# ---------------------------------------------------------------------------------------- changes

def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(where: str | int) -> bool:
    """Overlay's opaque mark on a directory (a path, never followed, or an open fd)."""
    try:
        if isinstance(where, int):
            return os.getxattr(where, OVERLAY_OPAQUE_XATTR) == b"y"
        return os.getxattr(where, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def lower_stat(lower_dirs: Sequence[str], parts: Sequence[str]) -> os.stat_result | None:
    """The entry at ``parts`` in the merged view of overlay lower dirs (top-most first), or None.

    Whiteouts hide, an opaque directory hides what is below it, a non-directory hides a directory
    of a lower layer. Only ``lstat`` is used: no link is followed."""
    for layer in lower_dirs:
        cur = os.fspath(layer)
        stop = False
        for i, comp in enumerate(parts):
            cur = os.path.join(cur, comp)
            try:
                st = os.lstat(cur)
            except (FileNotFoundError, NotADirectoryError):
                break
            if _is_whiteout(st):
                return None
            if i == len(parts) - 1:
                return st
            if not stat.S_ISDIR(st.st_mode):
                return None
            if _opaque(cur):
                stop = True
        if stop:
            return None
    return None


def changes(upper_dir: str, lower_dirs: Sequence[str], *,
            exclude: Collection[str] = ()) -> list[Change]:
    """``docker diff`` from a container's overlay upper dir and its image's lower dirs (top-most
    first), in Docker's order (depth first, names in byte order). ``exclude``: absolute paths
    (with their subtrees) the engine made itself (mount points of /etc/hosts, /dev, ...), left out
    as Docker's init layer leaves them out.

    The upper dir is walked with directory fds opened ``O_NOFOLLOW`` (a running container can
    swap a directory for a link while we walk; we must not list the link's target); the lower
    dirs are the image's snapshots, which no container writes."""
    out: list[Change] = []
    changed_dirs: set[str] = set()
    holders = {p.rsplit("/", i)[0] for p in exclude for i in range(1, p.count("/"))}
    top = os.open(upper_dir, _DIR_READ)
    # (dir fd, container path, lower hidden below here, names left)
    stack: list[tuple[int, str, bool, Iterator[str]]] = [(top, "", False, iter(_names(top)))]
    try:
        while stack:
            dfd, rel, hidden, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            path = f"{rel}/{name}"
            if path in exclude:
                continue
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                child = os.open(name, _DIR_READ, dir_fd=dfd) if stat.S_ISDIR(st.st_mode) else -1
            except (FileNotFoundError, NotADirectoryError, OSError):
                continue  # removed or swapped while we walk
            is_dir = child >= 0
            opaque = is_dir and _opaque(child)
            if _is_whiteout(st):
                kind = DELETED
            else:
                lower = None if hidden else lower_stat(lower_dirs, path[1:].split("/"))
                if lower is None:
                    kind = ADDED
                elif (is_dir and stat.S_ISDIR(lower.st_mode) and not opaque
                      and st.st_mode == lower.st_mode
                      and ((st.st_size == lower.st_size
                            and st.st_mtime_ns // 1000 == lower.st_mtime_ns // 1000)
                           or (path in holders
                               and (st.st_uid, st.st_gid) == (lower.st_uid, lower.st_gid)))):
                    kind = -1  # the directory only holds changes (or engine mount points)
                else:
                    kind = MODIFIED
            if kind != -1:
                if is_dir:
                    changed_dirs.add(path)
                if kind in (ADDED, DELETED) and rel and rel not in changed_dirs:
                    out.append(Change(rel, MODIFIED))
                    changed_dirs.add(rel)
                out.append(Change(path, kind))
            if is_dir:
                stack.append((child, path, hidden or opaque or kind == ADDED, iter(_names(child))))
    finally:
        for dfd, *_ in stack:
            os.close(dfd)
    return out
