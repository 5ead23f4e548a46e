"""Pure rules of Docker's volumes: names, the ``local`` driver's options, list and prune filters.

Kept apart from the service so they are unit-tested without a store, a database or root.
"""

from __future__ import annotations

import re

from dockyard.errors import InvalidArgument
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from dockyard.metadata.records import VolumeRecord

NAME_RE = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")
LOCAL_DRIVER = "local"
#: Docker marks the volumes it makes for a container (``-v /data``, an image's VOLUME) with this
#: label; ``volume prune`` without ``all=true`` removes only those (Docker 23+, API 1.42+).
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
#: The ``-o`` keys of Docker's local driver (``size`` needs XFS project quotas: refused here).
LOCAL_OPTIONS = ("type", "device", "o")
_MANDATORY = (("device", "type"), ("type", "device"), ("o", "device"))
LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("all", "label", "label!")

# mount(2) flags (linux/mount.h); this module is pure, so not imported from kernel/
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS = 1, 2, 4, 8, 16
MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC = 32, 64, 128
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24

# name → (clear, set): like moby/sys/mount's table; anything else goes to the fs as data
_FLAGS: dict[str, tuple[int, int]] = {
    "defaults": (0, 0), "rw": (MS_RDONLY, 0), "ro": (0, MS_RDONLY),
    "suid": (MS_NOSUID, 0), "nosuid": (0, MS_NOSUID), "dev": (MS_NODEV, 0),
    "nodev": (0, MS_NODEV), "exec": (MS_NOEXEC, 0), "noexec": (0, MS_NOEXEC),
    "sync": (0, MS_SYNCHRONOUS), "async": (MS_SYNCHRONOUS, 0), "dirsync": (0, MS_DIRSYNC),
    "mand": (0, MS_MANDLOCK), "nomand": (MS_MANDLOCK, 0),
    "atime": (MS_NOATIME, 0), "noatime": (0, MS_NOATIME),
    "diratime": (MS_NODIRATIME, 0), "nodiratime": (0, MS_NODIRATIME),
    "relatime": (0, MS_RELATIME), "norelatime": (MS_RELATIME, 0),
    "strictatime": (0, MS_STRICTATIME), "nostrictatime": (MS_STRICTATIME, 0),
    "bind": (0, MS_BIND), "rbind": (0, MS_BIND | MS_REC),
}
_PROPAGATION = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave",
                          "unbindable", "runbindable"})


class LocalMount(Record):
    """What the local driver mounts on a volume's ``_data`` while a container uses it."""

    source: str     # the ``device`` option
    fstype: str     # the ``type`` option ("none" for a bind)
    flags: int      # MS_* from ``o``
    data: str       # the rest of ``o``, for the filesystem

    @property
    def bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def check_name(name: str) -> str:
    """Docker's rule for a local volume name, with Docker's message."""
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 255:
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path")
    return name


def pairs(values: Mapping[str, str] | Iterable[tuple[str, str]] | None, what: str
          ) -> tuple[tuple[str, str], ...]:
    """Labels or options as sorted ``(key, value)`` pairs; a key given twice keeps the last."""
    if values is None:
        return ()
    items = values.items() if hasattr(values, "items") else values
    out: dict[str, str] = {}
    for k, v in items:  # type: ignore[misc]
        if not isinstance(k, str) or not isinstance(v, str) or not k:
            raise InvalidArgument(f"invalid volume {what} {k!r}={v!r}: keys and values are "
                                  "strings, keys not empty")
        out[k] = v
    return tuple(sorted(out.items()))


def check_local_options(name: str, options: Sequence[tuple[str, str]]) -> LocalMount | None:
    """Validate the local driver's ``-o`` options (Docker's texts); the mount they ask for, if any."""
    opts = dict(options)
    for key in opts:
        if key == "size":
            raise InvalidArgument(f"create {name}: quota size requested but no quota support")
        if key not in LOCAL_OPTIONS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}"')
    for key, needs in _MANDATORY:
        if key in opts and needs not in opts:
            raise InvalidArgument(f'create {name}: missing required option: "{needs}"')
    if not opts:
        return None
    flags, data = parse_mount_options(opts.get("o", ""), name)
    mount = LocalMount(opts["device"], opts["type"], flags, data)
    if mount.bind and not mount.source.startswith("/"):
        raise InvalidArgument(f"create {name}: the device of a bind volume must be an absolute "
                              f"path, not {mount.source!r}")
    return mount


def parse_mount_options(text: str, name: str = "") -> tuple[int, str]:
    """``o=`` as mount(8) reads it: flags it knows, the rest as the filesystem's data."""
    flags, data = 0, []
    for opt in filter(None, text.split(",")):
        if opt == "remount":
            raise InvalidArgument(f"create {name}: mount option 'remount' is not allowed")
        if opt in _PROPAGATION:
            continue  # the volume's mount is private to the daemon's namespace anyway
        change = _FLAGS.get(opt)
        if change is None:
            data.append(opt)
        else:
            flags = (flags & ~change[0]) | change[1]
    return flags, ",".join(data)


# ------------------------------------------------------------------------------ filters

def _bool_value(key: str, values: Sequence[str]) -> bool | None:
    if not values:
        return None
    if len(set(v.lower() for v in values)) > 1:
        raise InvalidArgument(f"invalid filter '{key}': give one value")
    v = values[0].lower()
    if v not in ("true", "1", "false", "0"):
        raise InvalidArgument(f"invalid filter '{key}={values[0]}'")
    return v in ("true", "1")


def _check_keys(filters: Mapping[str, Sequence[str]], accepted: Sequence[str]) -> None:
    for key in sorted(filters):
        if key not in accepted:
            raise InvalidArgument(f"invalid filter '{key}'")


def labels_match(wanted: Sequence[str], labels: Sequence[tuple[str, str]]) -> bool:
    """Docker's ``label`` filter: every ``key`` present, every ``key=value`` equal."""
    have = dict(labels)
    for w in wanted:
        key, eq, value = w.partition("=")
        if key not in have or (eq and have[key] != value):
            return False
    return True


def _regex_any(patterns: Sequence[str], text: str) -> bool:
    for p in patterns:
        try:
            if re.search(p, text):
                return True
        except re.error:
            continue  # Docker: a pattern that does not compile matches nothing
    return False


class ListFilter(Record):
    """``volume ls --filter``: name (regex search), driver, label, dangling."""

    names: tuple[str, ...] = ()
    drivers: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    dangling: bool | None = None

    @classmethod
    def parse(cls, filters: Mapping[str, Sequence[str]] | None) -> ListFilter:
        filters = filters or {}
        _check_keys(filters, LIST_FILTERS)
        return cls(tuple(filters.get("name", ())), tuple(filters.get("driver", ())),
                   tuple(filters.get("label", ())),
                   _bool_value("dangling", filters.get("dangling", ())))

    def matches(self, v: VolumeRecord, in_use: bool) -> bool:
        if self.names and not _regex_any(self.names, v.name):
            return False
        if self.drivers and v.driver not in self.drivers:
            return False
        if self.labels and not labels_match(self.labels, v.labels):
            return False
        return self.dangling is None or self.dangling != in_use


class PruneFilter(Record):
    """``volume prune --filter``: label, label!, all (without it only anonymous volumes go)."""

    all: bool = False
    labels: tuple[str, ...] = ()
    not_labels: tuple[str, ...] = ()

    @classmethod
    def parse(cls, filters: Mapping[str, Sequence[str]] | None) -> PruneFilter:
        filters = filters or {}
        _check_keys(filters, PRUNE_FILTERS)
        return cls(bool(_bool_value("all", filters.get("all", ()))),
                   tuple(filters.get("label", ())), tuple(filters.get("label!", ())))

    def matches(self, v: VolumeRecord) -> bool:
        if not self.all and not v.anonymous:
            return False
        if self.labels and not labels_match(self.labels, v.labels):
            return False
        return not (self.not_labels and labels_match(self.not_labels, v.labels))
