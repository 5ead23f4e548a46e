"""``dockyard image diff A B``: files added, changed and deleted from image A to image B.

Both images are mounted read-only (``ImageService.mount_readonly``) on fresh directories under the
store's ``tmp/`` and compared with ``archive.diff_trees`` (git-like: content decides, an mtime alone
is no change). Mounts are undone in a ``finally``; the mount points are only ``rmdir``-ed, never
removed recursively, so a mount that could not be undone is never deleted through.

Rendering (``render_text``), one line per change, in path order::

    A /etc/new  (12B, -rw-r--r--)
    C /bin/x  (1.2MB → 1.3MB, -rwxr-xr-x)
    C /etc/motd  (20B, -rw-r--r-- → -rw-------)
    D /old
    A /bin/sh -> busybox  (7B, lrwxrwxrwx)

Sizes are shown for files and symlinks only (formatted by the caller: the CLI passes docker's
human sizes; this package does not import ``cli``). ``render_json`` gives the same as a JSON array of
``{"Path", "Kind", "Action", "Old", "New"}`` (``Kind`` is docker's container-diff code: 0 changed,
1 added, 2 deleted).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from dockyard.archive.diff import Change, FileInfo
    from dockyard.image.service import ImageService

_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK,
              "char": stat.S_IFCHR, "block": stat.S_IFBLK, "fifo": stat.S_IFIFO,
              "socket": stat.S_IFSOCK}
_LETTER = {"added": "A", "changed": "C", "deleted": "D"}
_KIND = {"changed": 0, "added": 1, "deleted": 2}


def image_diff(svc: ImageService, a: str, b: str, *, thorough: bool = False) -> list[Change]:
    """The changes from image ``a`` to image ``b`` (names or ids), parents before children."""
    from dockyard.archive.diff import diff_trees

    image_a, image_b = svc.resolve(a), svc.resolve(b)
    os.makedirs(svc.store.tmp, mode=0o711, exist_ok=True)
    base = tempfile.mkdtemp(prefix="diff-", dir=svc.store.tmp)
    old, new = os.path.join(base, "a"), os.path.join(base, "b")
    mounted: list[str] = []
    try:
        for image, target in ((image_a, old), (image_b, new)):
            os.mkdir(target, 0o700)
            svc.mount_readonly(image, target)
            mounted.append(target)
        return diff_trees(old, new, thorough=thorough)
    finally:
        errors = []
        for target in reversed(mounted):
            try:
                svc.unmount(target)
            except Exception as e:  # keep unmounting the other; report the first
                errors.append(e)
        for d in (new, old, base):
            try:
                os.rmdir(d)  # never recursive: a still-mounted image must not be deleted through
            except OSError:
                pass
        if errors:
            raise errors[0]


def mode_string(info: FileInfo) -> str:
    """``ls -l``'s mode column: ``-rwxr-xr-x``, ``drwxrwxrwt``, ``lrwxrwxrwx``."""
    return stat.filemode(_TYPE_BITS.get(info.kind, 0) | info.mode)


def _bytes(n: int) -> str:
    return f"{n}B"


def _sized(info: FileInfo) -> bool:
    return info.kind in ("file", "symlink")


def render_line(c: Change, size_text: Callable[[int], str] = _bytes) -> str:
    letter = _LETTER[c.action]
    if c.action == "deleted":
        return f"D {c.path}"
    new = c.new
    assert new is not None
    link = f" -> {new.linkname}" if new.kind == "symlink" else ""
    parts = []
    old = c.old if c.action == "changed" else None
    if _sized(new) or (old is not None and _sized(old)):
        sizes = [size_text(x.size) if _sized(x) else "-" for x in ((old, new) if old is not None else (new,))]
        parts.append(" → ".join(sizes) if len(sizes) == 2 and sizes[0] != sizes[1] else sizes[-1])
    modes = [mode_string(x) for x in ((old, new) if old is not None else (new,))]
    parts.append(" → ".join(modes) if len(modes) == 2 and modes[0] != modes[1] else modes[-1])
    if old is not None and (old.uid, old.gid) != (new.uid, new.gid):
        parts.append(f"{old.uid}:{old.gid} → {new.uid}:{new.gid}")
    return f"{letter} {c.path}{link}  ({', '.join(parts)})"


def render_text(changes: Sequence[Change], size_text: Callable[[int], str] = _bytes) -> str:
    """One line per change; ``size_text`` formats sizes (the CLI passes docker's human sizes)."""
    return "".join(render_line(c, size_text) + "\n" for c in changes)


def _info_obj(info: FileInfo | None) -> dict | None:
    if info is None:
        return None
    out: dict = {"Type": info.kind, "Mode": mode_string(info), "Size": info.size,
                 "Uid": info.uid, "Gid": info.gid}
    if info.linkname:
        out["Linkname"] = info.linkname
    if info.kind in ("char", "block"):
        out["Device"] = f"{info.devmajor}:{info.devminor}"
    return out


def render_json(changes: Sequence[Change]) -> str:
    return json.dumps([{"Path": c.path, "Kind": _KIND[c.action], "Action": c.action,
                        "Old": _info_obj(c.old), "New": _info_obj(c.new)} for c in changes],
                      indent=4, ensure_ascii=False) + "\n"
