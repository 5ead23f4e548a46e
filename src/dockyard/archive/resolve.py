"""Resolving layer paths inside a root directory, one component at a time, with directory fds.

This is what openat2(RESOLVE_IN_ROOT) does in the kernel, done in userspace with ``*at`` calls so it
can also create missing parents: symlinks met on the way are read and followed *textually*, an
absolute target restarts at the root, ``..`` at the root stays at the root, and every directory is
opened with ``O_NOFOLLOW|O_DIRECTORY`` from its parent's fd. No path ever leaves the root, whatever
the links in it say (checklist 11-13). The final component of a member is never resolved here: the
extractor handles it with ``*at`` calls relative to the parent fd and never follows it.

The walk is race-free against the layer (the only writer of the tree during extraction); it does not
defend against another process changing the tree concurrently, which the snapshot's owner prevents.

Resolved parents are cached (fds by cleaned path); any removal or new symlink clears the cache, since
only those can change what an existing path resolves to. Cleared fds are closed by ``release()``
between members, so an fd a handler holds stays valid while it works.
"""

from __future__ import annotations

import os
import stat

from dockyard.archive.names import Refused

_MAX_LINKS = 40  # the kernel's MAXSYMLINKS
_CACHE_MAX = 256
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Root:
    """An open root directory; ``dir(parts)`` gives an fd of the directory ``parts`` resolves to.

    ``created`` collects ``(st_dev, st_ino)`` of the directories this object made (implicit parents),
    so the extractor can tell this layer's entries from older ones.
    """

    def __init__(self, path: str | os.PathLike[str], *, dir_mode: int = 0o755) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        st = os.fstat(self.fd)
        self._id = (st.st_dev, st.st_ino)
        self.dev = st.st_dev
        self.dir_mode = dir_mode
        self.created: set[tuple[int, int]] = set()
        self._cache: dict[tuple[str, ...], int] = {}
        self._retired: list[int] = []

    def close(self) -> None:
        self.invalidate()
        self.release()
        os.close(self.fd)

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def invalidate(self) -> None:
        """Forget resolutions. Their fds stay open until ``release()``: a caller may still hold one."""
        self._retired.extend(self._cache.values())
        self._cache.clear()

    def release(self) -> None:
        """Close the fds of forgotten resolutions (call between members, when none is in use)."""
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()

    def dir(self, parts: tuple[str, ...], *, create: bool) -> int:
        """The fd (O_PATH, owned by the cache: do not close) of directory ``parts``.

        Missing directories are made (mode ``dir_mode``) when ``create``; otherwise, as for a
        component that exists but is not a directory, ``Refused`` is raised.
        """
        if not parts:
            return self.fd
        fd = self._cache.get(parts)
        if fd is not None:
            return fd
        start = len(parts) - 1
        while start > 0 and parts[:start] not in self._cache:
            start -= 1
        base = self._cache[parts[:start]] if start else self.fd
        fd = self._walk(base, list(parts[start:]), parts, create)
        if len(self._cache) >= _CACHE_MAX:
            self.invalidate()
        self._cache[parts] = fd
        return fd

    def _walk(self, base: int, todo: list[str], parts: tuple[str, ...], create: bool) -> int:
        todo.reverse()  # a stack: the next component is at the end
        cur = base  # never closed here: the root's or a cached fd
        opened: list[int] = []
        hops = 0
        try:
            while todo:
                comp = todo.pop()
                if comp == "" or comp == ".":
                    continue
                if comp == "..":
                    if cur != self.fd and not self._is_root(cur):
                        cur = self._open(opened, "..", cur)
                    continue
                try:
                    st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    if not create:
                        raise Refused(f"{'/'.join(parts)}: no such directory") from None
                    os.mkdir(comp, self.dir_mode, dir_fd=cur)
                    cur = self._open(opened, comp, cur)
                    st = os.fstat(cur)
                    self.created.add((st.st_dev, st.st_ino))
                    continue
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > _MAX_LINKS:
                        raise Refused(f"{'/'.join(parts)}: too many levels of symbolic links")
                    target = os.readlink(comp, dir_fd=cur)
                    if target.startswith("/"):
                        cur = self.fd
                    todo.extend(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise Refused(f"{'/'.join(parts)}: {comp!r} is not a directory")
                cur = self._open(opened, comp, cur)
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        if cur == base or cur == self.fd:  # resolved back to the root or the base: own a new fd
            cur = os.open(".", _DIR_FLAGS, dir_fd=cur)
        else:
            opened.remove(cur)
        for fd in opened:
            os.close(fd)
        return cur

    @staticmethod
    def _open(opened: list[int], name: str, dir_fd: int) -> int:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        opened.append(fd)
        return fd

    def _is_root(self, fd: int) -> bool:
        st = os.fstat(fd)
        return (st.st_dev, st.st_ino) == self._id


def open_dir_fd(parent: int, name: str) -> int:
    """A readable fd of the directory ``name`` in ``parent``; never follows a symlink."""
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)


def remove_entry(parent: int, name: str) -> bool:
    """Remove ``name`` (a whole tree if it is a directory) without following symlinks.

    Returns False when there was nothing to remove.
    """
    import shutil

    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)
    return True
