"""Pure computation of a snapshot's mounts: layers in, ``MountSpec`` list out. No I/O, no kernel.

Why two strategies (``STRATEGIES``), and why ``lowerdir+`` is the default where it exists:

* mount(2) copies its option string from one page (4096 bytes, NUL included). 128+ layers of
  absolute paths (``/var/lib/dockyard/snapshots/1234/fs`` is 36 bytes) do not fit. Docker's
  overlay2 answers with short symlinks (``l/<short>``) *and* relative paths resolved from a
  working directory it enters in a re-exec'd child, which is both a length budget (it caps images at
  128 layers) and a process-wide ``chdir`` in a threaded daemon.
* Since Linux 6.8 the new mount API takes the lower layers one at a time:
  ``fsconfig(fd, FSCONFIG_SET_STRING, "lowerdir+", path)``. Each value is bounded (256 bytes), the
  stack is not (overlayfs allows 500 lowers), no working directory is involved, and the failure
  log of the filesystem context can be read back for the error message. So ``"lowerdir+"`` is what
  dockyard uses when the kernel has it (6.18 here), absolute paths, no links needed.
* ``"links"`` is the fallback for older kernels, docker's way: absolute paths when the option string
  fits the page (the common case: a few layers, no chdir), otherwise the short link names of
  ``snapshots/l/`` relative to that directory, with ``MountSpec.cwd`` telling the applier where to
  resolve them. A link name is derived from the snapshot number (base 36), so it is unique by
  construction, needs no column in the database, and 130 layers cost ~500 bytes.

A read-only view of a single layer cannot be an overlay (overlayfs wants two lowers when it has no
upper dir), so it is a read-only bind mount of the layer's directory.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

#: mount(2) copies at most one page of option data, the terminating NUL included.
PAGE_LIMIT = 4096
#: fsconfig(FSCONFIG_SET_STRING) copies at most 256 bytes of a value, the NUL included.
FSCONFIG_VALUE_LIMIT = 256
LOWERDIR_PLUS = "lowerdir+"
LINKS = "links"
STRATEGIES = (LOWERDIR_PLUS, LINKS)
#: Options that are mount flags, not filesystem data.
FLAG_WORDS = frozenset({"ro", "bind", "rbind"})
#: Always set: with index=on, a directory that was once an upper dir (or is shared between
#: mounts) can fail to mount later with ESTALE; docker and containerd turn it off as well.
BASE_OPTIONS = ("index=off",)
_OVERLAY_SPECIAL = frozenset(",:\\")


class MountSpec(Record):
    """One mount to make on a target directory; mirrors an OCI mount (type, source, options).

    ``lowerdirs`` is set only for the ``lowerdir+`` strategy: each path is appended with
    ``fsconfig(..., "lowerdir+", path)``, top layer first, and ``options`` holds no ``lowerdir=``.
    ``cwd`` is set only when ``options`` holds ``lowerdir=`` paths relative to that directory.
    """

    type: str                       # "overlay" or "bind"
    source: str                     # "overlay", or the directory a bind mount shows
    options: tuple[str, ...] = ()   # mount(8)-style words: "upperdir=/x", "index=off", "ro", "bind"
    lowerdirs: tuple[str, ...] = ()
    cwd: str = ""

    @property
    def data(self) -> str:
        """The mount(2) data string: every option that is not a flag word, comma-joined."""
        return ",".join(o for o in self.options if o not in FLAG_WORDS)

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


class Lower(Record):
    """One lower layer of a chain: its directory and its short link name under ``snapshots/l``."""

    fs: str
    link: str


def short_link_name(snapshot_id: int) -> str:
    """The ``snapshots/l/<name>`` of snapshot ``snapshot_id``: the number in base 36.

    Derived rather than random: snapshot numbers are unique, so the names are; a link removed and
    re-created for a reused number points at the same ``../<n>/fs`` anyway.
    """
    if not isinstance(snapshot_id, int) or isinstance(snapshot_id, bool) or snapshot_id < 1:
        raise InvalidArgument(f"invalid snapshot number {snapshot_id!r}")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    n = snapshot_id
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


def overlay_mounts(lowers: Sequence[Lower], upper: str | None, work: str | None, *,
                   readonly: bool = False, strategy: str = LOWERDIR_PLUS,
                   links_dir: str = "") -> list[MountSpec]:
    """The mounts that show ``lowers`` (top first) plus a writable ``upper``/``work``.

    ``readonly``: a view of the layers alone (``upper``/``work`` are ignored): a read-only bind
    mount of a single layer, an overlay of lowers only for two or more. With no layers at all (an
    image ``FROM scratch``) a writable rootfs is a bind mount of ``upper``.
    Raises ``InvalidArgument`` for relative paths, paths overlayfs cannot parse, and layer stacks
    that do not fit the kernel's limits for the chosen strategy.
    """
    if strategy not in STRATEGIES:
        raise InvalidArgument(f"unknown overlay mount strategy {strategy!r}: use one of {STRATEGIES}")
    for lower in lowers:
        _check_path("lower dir", lower.fs)
    if readonly:
        if not lowers:
            raise InvalidArgument("a read-only view needs at least one layer")
        if len(lowers) == 1:
            return [MountSpec("bind", lowers[0].fs, ("bind", "ro"))]
        upper = work = None
    else:
        if upper is None or work is None:
            raise InvalidArgument("a writable overlay needs both an upper and a work dir")
        _check_path("upper dir", upper)
        _check_path("work dir", work)
        if not lowers:
            return [MountSpec("bind", upper, ("bind",))]
    tail = [*BASE_OPTIONS]
    if upper is not None and work is not None:
        tail += [f"upperdir={upper}", f"workdir={work}"]
    flags = ("ro",) if readonly else ()
    if strategy == LOWERDIR_PLUS:
        return [_lowerdir_plus(lowers, tail, flags)]
    return [_links(lowers, tail, flags, links_dir)]


def _lowerdir_plus(lowers: Sequence[Lower], tail: list[str], flags: tuple[str, ...]) -> MountSpec:
    for value in [lo.fs for lo in lowers] + [t.split("=", 1)[1] for t in tail if "=" in t]:
        if len(value.encode()) >= FSCONFIG_VALUE_LIMIT:
            raise InvalidArgument(f"overlay path {value!r} is {len(value.encode())} bytes: fsconfig "
                                  f"takes values under {FSCONFIG_VALUE_LIMIT}; use a shorter --root")
    return MountSpec("overlay", "overlay", (*tail, *flags), lowerdirs=tuple(lo.fs for lo in lowers))


def _links(lowers: Sequence[Lower], tail: list[str], flags: tuple[str, ...], links_dir: str) -> MountSpec:
    absolute = ("lowerdir=" + ":".join(lo.fs for lo in lowers), *tail, *flags)
    spec = MountSpec("overlay", "overlay", absolute)
    if data_size(spec) <= PAGE_LIMIT:
        return spec
    if not links_dir.startswith("/"):
        raise InvalidArgument(f"links dir must be an absolute path, not {links_dir!r}")
    for lower in lowers:
        if not lower.link or "/" in lower.link or _OVERLAY_SPECIAL & set(lower.link):
            raise InvalidArgument(f"invalid short link name {lower.link!r}")
    spec = MountSpec("overlay", "overlay", ("lowerdir=" + ":".join(lo.link for lo in lowers), *tail,
                                            *flags), cwd=links_dir)
    size = data_size(spec)
    if size > PAGE_LIMIT:
        raise InvalidArgument(f"{len(lowers)} layers need {size} bytes of overlay mount options, more than "
                              f"the {PAGE_LIMIT}-byte page of mount(2); this kernel lacks lowerdir+ "
                              "(Linux 6.8+)")
    return spec


def data_size(spec: MountSpec) -> int:
    """Bytes mount(2) copies for ``spec``'s data, the terminating NUL included."""
    return len(spec.data.encode()) + 1


def _check_path(what: str, path: str) -> None:
    """Absolute (relative ones would resolve against the links dir), and free of the characters
    overlayfs splits its options on (``,`` ``:``) or escapes with (``\\``)."""
    if not path.startswith("/"):
        raise InvalidArgument(f"overlay {what} must be an absolute path, not {path!r}")
    bad = _OVERLAY_SPECIAL & set(path)
    if bad:
        raise InvalidArgument(f"overlay {what} {path!r} contains {''.join(sorted(bad))!r}, which "
                              "overlayfs cannot take in a path")
