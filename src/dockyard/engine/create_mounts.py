"""The mounts of ``POST /containers/create``, as typed :class:`MountRequest` records.

Four sources, in Docker's precedence: ``HostConfig.Binds`` (``-v src:dst[:opts]``),
``HostConfig.Mounts`` (``--mount``), ``HostConfig.Tmpfs`` (``--tmpfs``) and the anonymous volumes
of ``Config.Volumes`` whose path no other mount covers. Checked as dockerd checks them
(``volume/mounts/linux_parser.go``): absolute destinations, never ``/``, no destination twice
(``Duplicate mount point``), absolute bind sources, local-volume name grammar, well-formed tmpfs
options. Nothing here touches the host: whether a bind source exists is the engine's question
(``create_source`` says whether a missing one is created, as for ``-v``, or is an error, as for
``--mount type=bind``).
"""

from __future__ import annotations

import posixpath
import re

from dockyard import errors
from dockyard.engine.request_fields import Fields
from dockyard.errors import InvalidArgument
from dockyard.record import Record

VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")
#: Flags Docker's tmpfs accepts (``mount.ParseTmpfsOptions``), and the data keys tmpfs knows.
TMPFS_FLAGS = frozenset((
    "defaults", "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async",
    "dirsync", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
    "strictatime", "nostrictatime",
))
TMPFS_DATA = frozenset(("size", "mode", "nr_inodes", "nr_blocks", "uid", "gid", "mpol", "huge"))
#: dockerd mounts every tmpfs ``noexec,nosuid,nodev`` unless the user's options say otherwise.
TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")
_OPPOSITE = {"exec": "noexec", "suid": "nosuid", "dev": "nodev", "rw": "ro", "async": "sync",
             "atime": "noatime", "diratime": "nodiratime", "norelatime": "relatime",
             "nostrictatime": "strictatime"}
_OPPOSITE.update({v: k for k, v in list(_OPPOSITE.items())})
_KERNEL_SIZE = re.compile(r"([0-9]+)([kKmMgGtTpPeE]?)")
_SIZE_SHIFT = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
_BIND_MODES = {"rw": "rw", "ro": "rw", "z": "label", "Z": "label", "nocopy": "copy",
               "consistent": "consistency", "cached": "consistency", "delegated": "consistency",
               **{p: "propagation" for p in PROPAGATIONS}}


class MountRequest(Record):
    """One mount the container asked for.

    ``kind``: ``bind`` (``source`` is a host path), ``volume`` (``source`` a volume name, ``""``
    for an anonymous one) or ``tmpfs``. ``propagation`` ``""`` is Docker's default (rprivate).
    ``tmpfs_options`` are the options as given to mount(2) (defaults merged, size in bytes).
    ``origin`` says which request field it came from: ``binds``, ``mounts``, ``tmpfs`` or
    ``volumes``; ``mode`` is the raw option text of a ``Binds`` entry (``docker inspect`` shows it).
    """

    kind: str
    destination: str
    source: str = ""
    read_only: bool = False
    propagation: str = ""
    nocopy: bool = False
    tmpfs_size: int = 0  # bytes; 0: the kernel's default (half of RAM)
    tmpfs_mode: int | None = None
    tmpfs_options: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    driver: str = ""  # volumes: "" or "local"
    driver_options: tuple[tuple[str, str], ...] = ()
    subpath: str = ""  # volumes: mount only this directory of the volume
    non_recursive: bool = False  # binds: no rbind
    read_only_non_recursive: bool = False  # binds: only the top mount read-only (API 1.44+)
    read_only_force_recursive: bool = False  # binds: fail unless all submounts can be read-only
    create_mountpoint: bool = False  # BindOptions.CreateMountpoint as the client sent it
    create_source: bool = False  # binds: create a missing host directory (-v does, --mount not)
    origin: str = ""
    mode: str = ""


def parse_mounts(host: Fields, volumes: tuple[str, ...]) -> tuple[MountRequest, ...]:
    """Every mount of a create request; raises InvalidArgument naming the offending entry."""
    out: list[MountRequest] = []
    for i, spec in enumerate(host.strings("Binds") or ()):
        out.append(parse_bind(spec, f"{host.name('Binds')}[{i}]"))
    for m in host.objects("Mounts"):
        out.append(parse_mount(m))
    for dst, opts in host.string_map("Tmpfs") or ():
        out.append(parse_tmpfs(dst, opts, f"{host.name('Tmpfs')}[{dst!r}]"))
    seen: set[str] = set()
    for m in out:
        if m.destination in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.destination}")
        seen.add(m.destination)
    for dst in volumes:
        path = _destination(dst, f"Config.Volumes[{dst!r}]")
        if path not in seen:
            seen.add(path)
            out.append(MountRequest("volume", path, origin="volumes"))
    return tuple(out)


def _destination(dst: str, where: str) -> str:
    if not dst:
        raise InvalidArgument(f"{where}: invalid mount path: the destination must not be empty")
    if "\0" in dst:
        raise InvalidArgument(f"{where}: invalid mount path {dst!r}")
    if not dst.startswith("/"):
        raise InvalidArgument(f"{where}: invalid mount path: '{dst}' mount path must be absolute")
    path = "/" + posixpath.normpath(dst).lstrip("/")
    if path == "/":
        raise InvalidArgument(f"{where}: invalid specification: destination can't be '/'")
    return path


def _volume_name(name: str, where: str) -> str:
    if not VOLUME_NAME.fullmatch(name):
        raise InvalidArgument(
            f"{where}: {name!r} includes invalid characters for a local volume name, only "
            "\"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host "
            "directory, use absolute path")
    return name


def _bind_source(src: str, where: str) -> str:
    if "\0" in src or not src.startswith("/"):
        raise InvalidArgument(f"{where}: invalid bind source {src!r}: must be an absolute path")
    return "/" + posixpath.normpath(src).lstrip("/")


def parse_bind(spec: str, where: str = "HostConfig.Binds") -> MountRequest:
    """``-v`` syntax: ``/host:/ctr[:opts]``, ``name:/ctr[:opts]`` or ``/ctr`` (anonymous)."""
    parts = spec.split(":")
    if len(parts) > 3 or any(p == "" for p in parts):
        raise InvalidArgument(f"{where}: invalid volume specification: '{spec}'")
    if len(parts) == 1:
        return MountRequest("volume", _destination(parts[0], where), origin="binds")
    src, dst = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    destination = _destination(dst, where)
    seen: dict[str, str] = {}
    for opt in mode.split(",") if mode else ():
        group = _BIND_MODES.get(opt)
        if group is None or group in seen:
            raise InvalidArgument(f"{where}: invalid volume specification: '{spec}': "
                                  f"invalid mode: {mode}")
        seen[group] = opt
    read_only = seen.get("rw") == "ro"
    propagation = seen.get("propagation", "")
    if src.startswith("/"):
        if "copy" in seen:
            raise InvalidArgument(f"{where}: invalid volume specification: '{spec}': "
                                  "'nocopy' applies to volumes, not to bind mounts")
        return MountRequest("bind", destination, _bind_source(src, where), read_only,
                            propagation, create_mountpoint=True, create_source=True,
                            origin="binds", mode=mode)
    if propagation:
        raise InvalidArgument(f"{where}: invalid volume specification: '{spec}': propagation "
                              f"mode '{propagation}' applies to bind mounts, not to volumes")
    return MountRequest("volume", destination, _volume_name(src, where), read_only,
                        nocopy="copy" in seen, origin="binds", mode=mode)


def parse_mount(m: Fields) -> MountRequest:
    """One ``HostConfig.Mounts`` entry (``--mount``); Docker's ``validateMountConfig``."""
    kind = m.string("Type")
    where = f"{m.path}: invalid mount config for type \"{kind}\""
    target = m.string("Target")
    if not target:
        raise InvalidArgument(f"{where}: field Target must not be empty")
    destination = _destination(target, where)
    source = m.string("Source")
    read_only = m.boolean("ReadOnly")
    present = {k: m.raw(k) is not None for k in ("BindOptions", "VolumeOptions", "TmpfsOptions")}
    allowed = {"bind": "BindOptions", "volume": "VolumeOptions", "tmpfs": "TmpfsOptions"}.get(kind)
    if allowed is None:
        if kind in ("npipe", "cluster", "image"):
            raise errors.NotImplemented(
                f"{where}: mount type {kind!r} is not supported by dockyard")
        raise InvalidArgument(f"{where}: mount type unknown")
    for key, given in present.items():
        if given and key != allowed:
            raise InvalidArgument(f"{where}: field {key} must not be specified")
    if kind == "bind":
        if not source:
            raise InvalidArgument(f"{where}: field Source must not be empty")
        opts = m.obj("BindOptions")
        propagation = opts.string("Propagation")
        if propagation not in ("", *PROPAGATIONS):
            raise InvalidArgument(f"{where}: invalid propagation mode: {propagation}")
        create = opts.boolean("CreateMountpoint")
        ro_non_recursive = opts.boolean("ReadOnlyNonRecursive")
        ro_force = opts.boolean("ReadOnlyForceRecursive")
        if (ro_non_recursive or ro_force) and not read_only:
            raise InvalidArgument(f"{where}: BindOptions.ReadOnlyNonRecursive and "
                                  "ReadOnlyForceRecursive need ReadOnly")
        if ro_non_recursive and ro_force:
            raise InvalidArgument(f"{where}: BindOptions.ReadOnlyNonRecursive and "
                                  "ReadOnlyForceRecursive conflict")
        return MountRequest("bind", destination, _bind_source(source, where), read_only,
                            propagation, non_recursive=opts.boolean("NonRecursive"),
                            read_only_non_recursive=ro_non_recursive,
                            read_only_force_recursive=ro_force,
                            create_mountpoint=create, create_source=create, origin="mounts")
    if kind == "volume":
        if source:
            _volume_name(source, where)
        opts = m.obj("VolumeOptions")
        driver = opts.obj("DriverConfig")
        name = driver.string("Name")
        if name not in ("", "local"):
            raise errors.NotImplemented(
                f"{where}: volume driver {name!r} is not supported: dockyard "
                "has only the local driver")
        subpath = opts.string("Subpath")
        if subpath and (subpath.startswith("/") or posixpath.normpath(subpath).split("/")[0]
                        == ".."):
            raise InvalidArgument(f"{where}: subpath {subpath!r} must be a relative path "
                                  "within the volume")
        return MountRequest("volume", destination, source, read_only, nocopy=opts.boolean("NoCopy"),
                            labels=opts.string_map("Labels") or (), driver=name,
                            driver_options=driver.string_map("Options") or (),
                            subpath=subpath, origin="mounts")
    if source:
        raise InvalidArgument(f"{where}: field Source must not be specified")
    opts = m.obj("TmpfsOptions")
    size = opts.integer("SizeBytes", minimum=0)
    mode = opts.opt_integer("Mode", minimum=0, maximum=0o7777)
    data = []
    if read_only:
        data.append("ro")
    if size:
        data.append(f"size={size}")
    if mode is not None and mode:
        data.append(f"mode={mode:o}")
    return MountRequest("tmpfs", destination, "", read_only, tmpfs_size=size,
                        tmpfs_mode=mode or None, tmpfs_options=merge_tmpfs_options(data),
                        origin="mounts")


def parse_tmpfs(dst: str, text: str, where: str = "HostConfig.Tmpfs") -> MountRequest:
    """``--tmpfs /run:rw,noexec,size=64m``: the path and mount(2)-style options."""
    destination = _destination(dst, where)
    opts = [o for o in text.split(",") if o] if text else []
    size = 0
    mode = None
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq:
            if opt not in TMPFS_FLAGS:
                raise InvalidArgument(f"{where}: invalid tmpfs option {opt!r}")
            continue
        if key not in TMPFS_DATA:
            raise InvalidArgument(f"{where}: invalid tmpfs option {opt!r}")
        if key == "size":
            size = _tmpfs_size(value, where)
        elif key == "mode":
            if not re.fullmatch(r"[0-7]{1,4}", value):
                raise InvalidArgument(f"{where}: invalid tmpfs mode {value!r}: expected octal "
                                      "permissions such as 1777")
            mode = int(value, 8)
        elif key in ("uid", "gid", "nr_inodes", "nr_blocks"):
            if not _KERNEL_SIZE.fullmatch(value) or (key in ("uid", "gid")
                                                     and not value.isdigit()):
                raise InvalidArgument(f"{where}: invalid tmpfs option {opt!r}")
    return MountRequest("tmpfs", destination, "", "ro" in opts and "rw" not in opts,
                        tmpfs_size=size, tmpfs_mode=mode,
                        tmpfs_options=merge_tmpfs_options(opts), origin="tmpfs", mode=text)


def _tmpfs_size(value: str, where: str) -> int:
    """The kernel's tmpfs ``size=``: bytes with an optional k/m/g/t/p/e suffix, or ``N%`` of RAM
    (0 here: only the kernel knows the RAM)."""
    if value.endswith("%") and value[:-1].isdigit():
        return 0
    match = _KERNEL_SIZE.fullmatch(value)
    if not match:
        raise InvalidArgument(f"{where}: invalid tmpfs size {value!r}: expected bytes with an "
                              "optional k, m or g suffix (64m)")
    return int(match.group(1)) << _SIZE_SHIFT[match.group(2).lower()]


def merge_tmpfs_options(opts: list[str]) -> tuple[str, ...]:
    """dockerd's ``MergeTmpfsOptions`` over the defaults: a user flag replaces its opposite, a
    ``key=value`` replaces the same key; ``defaults`` and repeats disappear."""
    out: list[str] = list(TMPFS_DEFAULTS)
    for opt in opts:
        if opt == "defaults":
            continue
        key, eq, _ = opt.partition("=")
        if eq:
            out = [o for o in out if o.partition("=")[0] != key]
        else:
            out = [o for o in out if o not in (opt, _OPPOSITE.get(opt))]
        out.append(opt)
    return tuple(out)
