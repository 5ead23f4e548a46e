"""An OCI bundle for a container of an image: the seed of the engine's "run" path (DESIGN §3).

    create_bundle(svc, image, dir, container_id=...) ─▶ dir/
        upper/, work/     the container's own layer (snapshotter.prepare_container)
        rootfs/           overlay of the image's layers + upper (snapshotter.container_mounts)
        config.json       oci.spec_builder.build_spec(image config, run options)
    remove_bundle(svc, bundle)  unmounts rootfs and deletes dir

The container's writes land in ``upper/``; the image's snapshots are lower layers and never change.
``dir`` is then runnable by dockyard-runtime or runc (``run --bundle dir id``).

What needs the container's files happens here, on the mounted rootfs, never on host paths:
the user is looked up in the rootfs's ``/etc/passwd`` and ``/etc/group`` (``resolve_user``, opened
with openat2 ``RESOLVE_IN_ROOT``, so a symlinked ``/etc/passwd`` resolves inside the rootfs), and the
working directory is created if missing (an in-root walk that never follows a link out), as
dockerd does at start.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat

from dockyard.errors import AlreadyExists, InvalidArgument, NotFound
from dockyard.oci.spec_builder import (
    ID_MAX, ResolvedUser, RunOptions, build_spec, parse_id, stop_signal)
from dockyard.record import Record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from dockyard.image.service import ImageService
    from dockyard.kernel.syscalls import Syscalls

#: runc's container id grammar.
_ID_RE = re.compile(r"[\w+.-]{1,128}\Z", re.ASCII)
#: /etc/passwd and /etc/group larger than this are refused rather than read into memory.
MAX_ACCOUNT_FILE = 16 * 1024 * 1024


class Bundle(Record):
    """A prepared container: ``path`` is the bundle (pass as ``--bundle``)."""

    path: str
    id: str
    image_id: str
    rootfs: str
    upper: str
    work: str
    stop_signal: int  # docker stop's first signal (the spec has no field for it)


class _Entry(Record):
    name: str
    id: int
    gid: int = 0  # passwd: the primary group
    members: tuple[str, ...] = ()  # group: the member list


# ---------------------------------------------------------------- users


def resolve_user(rootfs: str, user: str, group_add: Sequence[str] = (), *,
                 sys: Syscalls | None = None) -> ResolvedUser:
    """Docker's ``--user`` lookup (runc's ``user.GetExecUser``) in the rootfs's own files.

    ``user``: ``""`` (root), ``name``, ``uid``, each optionally ``:group`` / ``:gid``. A name
    must exist in ``/etc/passwd`` (``/etc/group``); a number that has no entry is used as is (uid
    without entry: gid 0). Without an explicit group the supplementary groups are those listing the
    user as a member. ``additional_gids``: the primary gid, those groups, then ``group_add``
    (names resolved in ``/etc/group``). Unknown names and ids outside 0..2^31-1 raise
    ``InvalidArgument``; nothing ever falls back to root. Missing files count as empty.
    """
    name_part, colon, group_part = user.partition(":")
    if not name_part:
        if colon:
            raise InvalidArgument(f"user {user!r}: empty user")
        name_part = "0"
    uid_num = parse_id(name_part, "user", user)
    gid_num = parse_id(group_part, "group", user) if colon else None
    passwd, bad_passwd = _read_entries(rootfs, "etc/passwd", sys)
    entry = next((e for e in passwd if (e.id == uid_num if uid_num is not None
                                        else e.name == name_part)), None)
    if entry is None:
        if uid_num is None:
            if name_part in bad_passwd:
                raise InvalidArgument(f"unable to find user {name_part}: its entry in /etc/passwd "
                                      f"is malformed (line {bad_passwd[name_part]})")
            raise InvalidArgument(f"unable to find user {name_part}: no matching entries in "
                                  "passwd file")
        uid, gid, name = uid_num, 0, ""
    else:
        uid, gid, name = entry.id, entry.gid, entry.name
    groups: list[_Entry] = []
    bad_group: dict[str, int] = {}
    supplementary: list[int] = []
    if colon or group_add or name:
        groups, bad_group = _read_entries(rootfs, "etc/group", sys)
    if colon:
        gid = _group_id(groups, bad_group, group_part, gid_num)
    elif name and groups:
        supplementary = [g.id for g in groups if name in g.members]
    extra = []
    for g in group_add:
        extra.append(_group_id(groups, bad_group, g, parse_id(g, "group", g)))
    additional: list[int] = []
    for g in (gid, *supplementary, *extra):
        if g not in additional:
            additional.append(g)
    return ResolvedUser(uid, gid, tuple(additional))


def _group_id(groups: list[_Entry], bad: dict[str, int], text: str, num: int | None) -> int:
    for g in groups:
        if (g.id == num) if num is not None else (g.name == text):
            return g.id
    if num is not None:
        return num
    if text in bad:
        raise InvalidArgument(f"unable to find group {text}: its entry in /etc/group is malformed "
                              f"(line {bad[text]})")
    raise InvalidArgument(f"unable to find group {text}: no matching entries in group file")


def _read_entries(rootfs: str, rel: str, sys: Syscalls | None) -> tuple[list[_Entry], dict[str, int]]:
    """Parsed ``etc/passwd`` or ``etc/group`` of ``rootfs`` and the names of malformed lines.

    A line whose id is not a number in range is skipped (runc would read it as 0: root), and
    remembered by name so that an error can say why the name was not found.
    """
    data = read_in_root(rootfs, rel, sys=sys)
    is_passwd = rel.endswith("passwd")
    entries: list[_Entry] = []
    bad: dict[str, int] = {}
    for lineno, raw in enumerate(data.decode("utf-8", "replace").split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        name = fields[0]
        try:
            if is_passwd:
                uid, gid = _field_id(fields, 2), _field_id(fields, 3)
                entries.append(_Entry(name, uid, gid))
            else:
                gid = _field_id(fields, 2)
                members = tuple(m.strip() for m in fields[3].split(",") if m.strip()) \
                    if len(fields) > 3 else ()
                entries.append(_Entry(name, gid, gid, members))
        except ValueError:
            bad.setdefault(name, lineno)
    return entries, bad


def _field_id(fields: list[str], i: int) -> int:
    text = fields[i] if i < len(fields) else ""
    if not (text.isascii() and text.isdigit()) or int(text) > ID_MAX:
        raise ValueError(text)
    return int(text)


def read_in_root(rootfs: str, rel: str, *, sys: Syscalls | None = None,
                 limit: int = MAX_ACCOUNT_FILE) -> bytes:
    """The bytes of the regular file ``rel`` inside ``rootfs``, resolved as the container would
    (openat2 ``RESOLVE_IN_ROOT``: symlinks and ``..`` cannot leave the rootfs; no magic links).
    A missing file (or a dangling link) reads as empty; anything but a regular file is refused."""
    from dockyard.errors import KernelError
    from dockyard.kernel import syscalls as k

    if sys is None:
        sys = k.LibcSyscalls()
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = sys.openat2(root_fd, rel, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                             0, k.RESOLVE_IN_ROOT | k.RESOLVE_NO_MAGICLINKS)
        except KernelError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return b""
            raise
    finally:
        os.close(root_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgument(f"read /{rel} in {rootfs}: not a regular file")
        if st.st_size > limit:
            raise InvalidArgument(f"read /{rel} in {rootfs}: {st.st_size} bytes, more than "
                                  f"{limit}")
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 16):
            total += len(chunk)
            if total > limit:
                raise InvalidArgument(f"read /{rel} in {rootfs}: more than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def make_workdir(rootfs: str, cwd: str) -> None:
    """Create ``cwd`` inside the rootfs if it is missing (root-owned 0755, as dockerd does),
    following the rootfs's own links inside it only."""
    from dockyard.archive.names import Refused
    from dockyard.archive.resolve import Root

    parts = tuple(p for p in cwd.split("/") if p)
    if not parts:
        return
    with Root(rootfs) as root:
        try:
            root.dir(parts, create=True)
        except Refused as e:
            raise InvalidArgument(f"working directory {cwd}: {e}") from None


# ---------------------------------------------------------------- bundles


def create_bundle(svc: ImageService, image_name_or_id: str, bundle_dir: str, *,
                  container_id: str, args: Sequence[str] | None = None,
                  opts: RunOptions | None = None) -> Bundle:
    """Prepare ``bundle_dir`` (absent or empty) for container ``container_id`` of the image.

    ``args`` replaces the image's Cmd (``docker run IMAGE args...``). On any failure everything
    made here is undone (mount, directories) and the error is raised.

    The caller records the container (``db.containers``) so that ``rmi`` refuses the image while
    the bundle exists: its snapshots are the rootfs's lower layers.
    """
    if not _ID_RE.match(container_id or "") or container_id in (".", ".."):
        raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits, "
                              "'_', '+', '-', '.' (at most 128)")
    opts = opts or RunOptions()
    opts = replace(opts, container_id=container_id,
                   cmd=tuple(args) if args is not None else opts.cmd)
    image = svc.resolve(image_name_or_id)
    config = svc.config(image)
    chain = svc.unpack(image) or None
    path = os.path.realpath(bundle_dir)
    if os.path.lexists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise AlreadyExists(f"create bundle {path}: exists and is not an empty directory")
    made_dir = not os.path.exists(path)
    os.makedirs(path, mode=0o711, exist_ok=True)
    upper, work, rootfs = f"{path}/upper", f"{path}/work", f"{path}/rootfs"
    mounted = False
    try:
        svc.snapshotter.prepare_container(chain, upper, work)  # type: ignore[attr-defined]
        os.mkdir(rootfs, 0o755)
        specs = svc.snapshotter.container_mounts(chain, upper, work)  # type: ignore[attr-defined]
        svc.snapshotter.mount(specs, rootfs)
        mounted = True
        user = resolve_user(rootfs, config.config.user if opts.user is None else opts.user,
                            opts.group_add)
        spec = build_spec(config, replace(opts, rootfs="rootfs"), user=user)
        make_workdir(rootfs, spec["process"]["cwd"])
        _write_json(f"{path}/config.json", spec)
        return Bundle(path=path, id=container_id, image_id=str(image.id), rootfs=rootfs,
                      upper=upper, work=work, stop_signal=stop_signal(config, opts))
    except BaseException:
        if mounted:
            try:
                svc.snapshotter.unmount(rootfs, detach=True)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
        _remove_contents(path, made_dir)
        raise


def remove_bundle(svc: ImageService, bundle: Bundle, *, detach: bool = False) -> None:
    """Unmount the rootfs and delete the bundle directory. A busy rootfs raises (EBUSY) unless
    ``detach``; the directory is never deleted through a mount (``remove_tree`` refuses)."""
    from dockyard.snapshot.apply import mounts_under
    from dockyard.snapshot.fsutil import remove_tree

    if not os.path.isdir(bundle.path):
        raise NotFound(f"remove bundle {bundle.path}: no such directory")
    for _ in range(8):  # a mount may be stacked on the rootfs more than once
        if bundle.rootfs not in mounts_under(bundle.rootfs):
            break
        svc.snapshotter.unmount(bundle.rootfs, detach=detach)
    remove_tree(bundle.path)


def mount_rootfs(svc: ImageService, image_id: str, bundle_dir: str) -> bool:
    """Mount ``bundle_dir/rootfs`` (the image's layers + the bundle's upper) if it is not
    mounted; True if it mounted now. The engine unmounts a container's rootfs while it is
    stopped, as dockerd does, and mounts it again to start it."""
    from dockyard.snapshot.apply import mounts_under

    rootfs = f"{bundle_dir}/rootfs"
    if rootfs in mounts_under(rootfs):
        return False
    chain = svc.unpack(svc.resolve(image_id)) or None
    specs = svc.snapshotter.container_mounts(chain, f"{bundle_dir}/upper",  # type: ignore[attr-defined]
                                             f"{bundle_dir}/work")
    os.makedirs(rootfs, mode=0o755, exist_ok=True)
    svc.snapshotter.mount(specs, rootfs)
    return True


def unmount_rootfs(svc: ImageService, bundle_dir: str) -> None:
    """Unmount ``bundle_dir/rootfs`` (every mount stacked on it; lazily if busy)."""
    from dockyard.snapshot.apply import mounts_under

    rootfs = f"{bundle_dir}/rootfs"
    for _ in range(8):
        if rootfs not in mounts_under(rootfs):
            return
        svc.snapshotter.unmount(rootfs, detach=True)


def _remove_contents(path: str, whole: bool) -> None:
    from dockyard.snapshot.fsutil import remove_tree

    if whole:
        remove_tree(path)
        return
    for name in os.listdir(path):
        remove_tree(f"{path}/{name}")


def _write_json(path: str, obj: object) -> None:
    """Temporary name, fsync, rename, fsync the directory: config.json is whole or absent."""
    tmp = f"{path}.tmp"
    data = (json.dumps(obj, indent=2) + "\n").encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
