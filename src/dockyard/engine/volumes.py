"""``VolumeService``: Docker's volumes with the ``local`` driver.

A volume is a row in the database (``metadata.volumes``) and a directory ``Store.volume(name)``
whose ``_data`` containers bind-mount. Volumes created with ``-o type=… device=… o=…`` (tmpfs,
bind, any filesystem mount(8) can do) get that mount on ``_data`` lazily, when the first container
needs it, and lose it when the last one lets go (``mount_for_container`` / ``unmount_if_unused``,
refcounted by container id; after a daemon restart the engine calls ``mount_for_container`` again
for each running container, which finds the mount in place and only counts it).

Every method runs on the store's thread (SQLite), like ``ImageService``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import time

from dockyard.engine import volume_rules as rules
from dockyard.errors import Conflict, InvalidArgument, KernelError, NotFound
from dockyard.metadata.records import VolumeRecord
from dockyard.metadata.volumes import in_use_message
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from dockyard.kernel.syscalls import Syscalls
    from dockyard.metadata.db import Database
    from dockyard.metadata.volumes import VolumeRepo
    from dockyard.store import Store

    Pairs = Mapping[str, str] | Iterable[tuple[str, str]] | None
    Filters = Mapping[str, Sequence[str]] | None


class Volume(Record):
    """A volume as the API shows it (``api.volumes.volume_json`` renders Docker's JSON)."""

    name: str
    driver: str
    mountpoint: str
    created_at: str                                # RFC 3339, UTC, "Z"
    labels: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    scope: str = "local"
    anonymous: bool = False


class VolumeUsage(Record):
    """For ``system df``: bytes under ``_data`` and how many containers mount the volume."""

    size: int
    ref_count: int


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def mounts_under(path: str) -> list[str]:
    """Mount points at ``path`` or below it, deepest first (as they must be unmounted)."""
    from dockyard.snapshot.apply import mounts_under as listed

    return sorted(listed(path), key=len, reverse=True)


class VolumeService:
    def __init__(self, store: Store, db: Database, *, sys: Syscalls | None = None) -> None:
        self.store = store
        self.db = db
        self._sys = sys
        self._active: dict[str, set[str]] = {}  # volume → ids of containers holding its mount

    @property
    def sys(self) -> Syscalls:
        if self._sys is None:
            from dockyard.kernel.syscalls import LibcSyscalls
            self._sys = LibcSyscalls()
        return self._sys

    # ------------------------------------------------------------------ records

    def _volume(self, rec: VolumeRecord) -> Volume:
        return Volume(rec.name, rec.driver, self.store.volume_data(rec.name), rfc3339(rec.created),
                      rec.labels, rec.options, "local", rec.anonymous)

    def _record(self, name: str) -> VolumeRecord:
        rec = self.db.volumes.get(name) if isinstance(name, str) and name else None
        if rec is None:
            raise NotFound(f"get {name}: no such volume")
        return rec

    @property
    def repo(self) -> VolumeRepo:
        """The volume rows (``attach``, ``users``, ``mounts_of`` …): ``db.volumes``."""
        return self.db.volumes

    def mountpoint(self, name: str) -> str:
        return self.store.volume_data(name)

    # ------------------------------------------------------------------ create, get, list

    def create(self, name: str = "", driver: str = "local", labels: Pairs = (),
               options: Pairs = (), *, anonymous: bool = False) -> Volume:
        """A new volume; an existing one of that name and driver is returned as it is (Docker is
        idempotent). An empty name makes an anonymous volume (64 hex characters, labelled
        ``com.docker.volume.anonymous``); ``anonymous=True`` insists on that."""
        if anonymous and name:
            raise InvalidArgument(f"create {name}: an anonymous volume takes no name")
        driver = driver or rules.LOCAL_DRIVER
        anonymous = not name
        if anonymous:
            name = secrets.token_hex(32)
        rules.check_name(name)
        if driver != rules.LOCAL_DRIVER:
            raise NotFound(f"create {name}: error looking up volume plugin {driver}: plugin "
                           f'"{driver}" not found')
        label_pairs = rules.pairs(labels, "label")
        option_pairs = rules.pairs(options, "option")
        existing = self.db.volumes.get(name)
        if existing is not None:
            if existing.driver != driver:
                raise Conflict(f"create {name}: volume name must be unique: driver "
                               f"'{existing.driver}' already has volume '{name}'")
            return self._volume(existing)
        rules.check_local_options(name, option_pairs)
        if anonymous:
            label_pairs = rules.pairs([*label_pairs, (rules.ANONYMOUS_LABEL, "")], "label")
        os.makedirs(self.store.volumes, mode=0o701, exist_ok=True)
        os.makedirs(self.store.volume(name), mode=0o701, exist_ok=True)
        os.makedirs(self.store.volume_data(name), mode=0o755, exist_ok=True)
        rec = self.db.volumes.add(VolumeRecord(name, driver, time.time(), label_pairs,
                                               option_pairs, anonymous))
        return self._volume(rec)

    def get(self, name: str) -> Volume:
        return self._volume(self._record(name))

    def list(self, filters: Filters = None) -> list[Volume]:
        """Docker's filters: ``name`` (regex), ``driver``, ``label`` (key or key=value),
        ``dangling`` (true: no container uses it)."""
        f = rules.ListFilter.parse(filters)
        used = self.db.volumes.ref_counts()
        return [self._volume(r) for r in self.db.volumes.all() if f.matches(r, r.name in used)]

    def usage(self, name: str) -> VolumeUsage:
        self._record(name)
        return VolumeUsage(_tree_size(self.store.volume_data(name)),
                           len(self.db.volumes.users(name)))

    def df(self) -> list[tuple[Volume, VolumeUsage]]:
        """Every volume with its usage, for ``system df`` (render with ``api.volumes.volume_json(v,
        usage)``, which adds Docker's ``UsageData``)."""
        counts = self.db.volumes.ref_counts()
        return [(self._volume(r), VolumeUsage(_tree_size(self.store.volume_data(r.name)),
                                              counts.get(r.name, 0)))
                for r in self.db.volumes.all()]

    # ------------------------------------------------------------------ remove, prune

    def remove(self, name: str, force: bool = False) -> None:
        """Docker's ``volume rm``: 404 if absent (ignored with ``force``), 409 while a container
        uses it (even with ``force``, as Docker). Unmounts the driver's mount, removes the data."""
        rec = self.db.volumes.get(name) if name else None
        if rec is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        users = self.db.volumes.users(name)
        if users:
            raise Conflict(in_use_message(name, users))
        self._active.pop(name, None)
        self._unmount_all(name)
        trash = self._to_trash(name)
        self.db.volumes.delete(name)
        if trash:
            shutil.rmtree(trash, ignore_errors=True)

    def prune(self, filters: Filters = None) -> tuple[list[str], int]:
        """Remove unused volumes: anonymous ones only, unless the ``all=true`` filter (Docker 23+;
        the API layer passes ``all`` for clients older than 1.42). ``label``/``label!`` filters.
        Returns the names removed and the bytes freed."""
        f = rules.PruneFilter.parse(filters)
        used = self.db.volumes.ref_counts()
        deleted, reclaimed = [], 0
        for rec in self.db.volumes.all():
            if rec.name in used or not f.matches(rec):
                continue
            size = _tree_size(self.store.volume_data(rec.name))
            try:
                self.remove(rec.name)
            except (Conflict, NotFound):
                continue  # taken or removed meanwhile
            deleted.append(rec.name)
            reclaimed += size
        return deleted, reclaimed

    def anonymous_of(self, container_id: str) -> list[str]:
        """The anonymous volumes the container mounts: what ``rm -v``/``--rm`` remove once the
        container's row is gone (ask before deleting it: the rows cascade)."""
        return [n for n, _ in self.db.volumes.mounts_of(container_id)
                if (r := self.db.volumes.get(n)) is not None and r.anonymous]

    def remove_anonymous(self, names: Iterable[str]) -> list[str]:
        """Remove those of ``names`` that are anonymous and unused (another container may still
        mount one through ``--volumes-from``: it stays, as in Docker). Returns the removed."""
        removed = []
        for name in names:
            rec = self.db.volumes.get(name)
            if rec is None or not rec.anonymous:
                continue
            try:
                self.remove(name)
            except Conflict:
                continue
            removed.append(name)
        return removed

    def _to_trash(self, name: str) -> str | None:
        """Move the volume's directory to ``tmp/`` (one rename: a crash never leaves half a
        volume under its name); the caller deletes it once the row is gone."""
        path = self.store.volume(name)
        left = mounts_under(path)
        if left:
            raise Conflict(f"remove {name}: {left[0]} is still mounted")
        os.makedirs(self.store.tmp, mode=0o711, exist_ok=True)
        trash = f"{self.store.tmp}/volume-rm-{secrets.token_hex(8)}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return None
        return trash

    # ------------------------------------------------------------------ use by containers

    def mount_for_container(self, name: str, container_id: str = "") -> str:
        """The host directory to bind into a container for this volume. The local driver's mount
        (``-o type/device/o``) is made on ``_data`` when its first user comes; ``container_id``
        is the reference counted (idempotent per container; pass it: callers that leave it ""
        share one reference)."""
        rec = self._record(name)
        data = self.store.volume_data(name)
        os.makedirs(data, mode=0o755, exist_ok=True)  # a crash may have lost it
        mount = rules.check_local_options(name, rec.options)
        if mount is not None and not mounts_under(data):
            self._mount(name, mount, data)
        self._active.setdefault(name, set()).add(container_id)
        return data

    def unmount_if_unused(self, name: str, container_id: str = "") -> bool:
        """Drop ``container_id``'s reference; unmount the driver's mount when none is left.
        Returns whether it unmounted."""
        holders = self._active.get(name)
        if holders is not None:
            holders.discard(container_id)
            if holders:
                return False
            del self._active[name]
        rec = self.db.volumes.get(name)
        if rec is None or not rec.options:
            return False
        return self._unmount_all(name)

    def sweep_mounts(self) -> list[str]:
        """Unmount the driver's mounts no container holds (after a restart, once the running
        containers were re-adopted with ``mount_for_container``). Returns the volumes unmounted."""
        done = []
        for rec in self.db.volumes.all():
            if rec.options and not self._active.get(rec.name) and self._unmount_all(rec.name):
                done.append(rec.name)
        return done

    def recover(self) -> None:
        """At daemon start: finish removals a crash interrupted (their directories wait in
        ``tmp/volume-rm-*``, already renamed away from the volume's name)."""
        try:
            names = os.listdir(self.store.tmp)
        except FileNotFoundError:
            return
        for n in names:
            if n.startswith("volume-rm-") and not mounts_under(f"{self.store.tmp}/{n}"):
                shutil.rmtree(f"{self.store.tmp}/{n}", ignore_errors=True)

    def _mount(self, name: str, m: rules.LocalMount, data: str) -> None:
        from dockyard.kernel import syscalls as k

        flags = m.flags
        try:
            if m.bind:
                self.sys.mount(m.source, data, None, flags & (k.MS_BIND | k.MS_REC), None)
                extra = flags & ~(k.MS_BIND | k.MS_REC)
                if extra:  # bind ignores other flags: apply them by a remount of the bind
                    try:
                        self.sys.mount(None, data, None, k.MS_REMOUNT | k.MS_BIND | extra, None)
                    except BaseException:
                        self.sys.umount2(data, k.MNT_DETACH)
                        raise
            else:
                self.sys.mount(m.source, data, m.fstype, flags, m.data or None)
        except KernelError as e:
            raise KernelError(f"mount volume {name}: failed to mount local volume: {e.operation}",
                              e.errno) from None

    def _unmount_all(self, name: str) -> bool:
        from dockyard.kernel import syscalls as k

        targets = mounts_under(self.store.volume(name))
        for target in targets:
            try:
                self.sys.umount2(target, k.MNT_DETACH)
            except KernelError as e:
                raise KernelError(f"unmount volume {name}: {e.operation}", e.errno) from None
        return bool(targets)

    # ------------------------------------------------------------------ copy-up

    def copy_up(self, name: str, image_rootfs_dir: str, path_in_image: str, *,
                nocopy: bool = False) -> bool:
        """Seed the volume from the image's directory ``path_in_image`` (resolved inside
        ``image_rootfs_dir``) if its data is empty, as Docker does on a volume's first mount.
        Call after ``mount_for_container`` (a tmpfs volume is seeded in its tmpfs). Returns
        whether anything was copied; a missing or non-directory path copies nothing."""
        from dockyard.engine.volume_copy import copy_into_empty, open_in_root

        self._record(name)
        if nocopy:
            return False
        if not path_in_image.startswith("/"):
            raise InvalidArgument(f"copy image content into volume {name}: {path_in_image!r} is "
                                  "not an absolute path")
        src = open_in_root(image_rootfs_dir, path_in_image, self.sys)
        if src is None:
            return False
        try:
            return copy_into_empty(src, self.store.volume_data(name))
        finally:
            os.close(src)


def _tree_size(path: str) -> int:
    """Bytes of the files under ``path`` (each inode once; symlinks not followed), as Docker's
    ``directory.Size``."""
    total, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
