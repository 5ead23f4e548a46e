"""What every snapshotter shares: the layer lifecycle, keyed by chain id, recorded in metadata.

    prepare_layer(chain, parent, diff) ─▶ LayerTarget ─▶ (caller unpacks into target.path)
        ├─ commit_layer(target, size)  → "complete": usable as a parent and in mounts
        └─ abort_layer(target)         → directory and record gone

A record is added ("incomplete") *before* its directory is made, and marked complete only after
the caller's unpack finished, so after a crash every half-made snapshot is an incomplete record or
a numbered directory without a record; ``cleanup_incomplete`` (run at start) removes both
(security checklist item 39). Removal goes the other way: the record first, then the files, so a
crash leaves an orphan directory (collected) and never a complete record without its files.

Drivers (``overlay.Snapshotter``, ``vfs.VfsSnapshotter``) differ in how a new snapshot starts
(empty, or a copy of its parent), how the caller applies whiteouts (``whiteout_mode``), and how a
container's rootfs is shown (``prepare_container``, ``container_mounts``).
"""

from __future__ import annotations

import os
import threading

from dockyard.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound
from dockyard.record import Record
from dockyard.snapshot import apply
from dockyard.snapshot.fsutil import disk_usage, remove_tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    from dockyard.kernel.syscalls import Syscalls
    from dockyard.snapshot.mounts import MountSpec
    from dockyard.store import Store
else:
    Protocol = object

#: Deeper chains are refused: overlayfs stacks at most 500 lowers, and a loop in corrupt parent
#: links must not spin forever.
MAX_DEPTH = 500


class SnapshotRecordLike(Protocol):
    """The fields of ``metadata.db.SnapshotRecord`` the snapshotter reads."""

    id: int
    chain_id: str
    parent_id: int | None
    diff_id: str
    state: str  # "incomplete" | "complete"
    size: int
    created: float


class SnapshotRepo(Protocol):
    """``metadata.db.Database(path).snapshots``; tests use ``tests/unit/snapshot_fakes.py``."""

    def get_by_chain(self, chain_id: str) -> SnapshotRecordLike | None: ...
    def get(self, id: int) -> SnapshotRecordLike | None: ...
    def add(self, chain_id: str, parent_id: int | None, diff_id: str) -> SnapshotRecordLike: ...
    def mark_complete(self, id: int, size: int) -> None: ...
    def incomplete(self) -> list[SnapshotRecordLike]: ...
    def remove(self, id: int) -> None: ...
    def children(self, id: int) -> list[SnapshotRecordLike]: ...
    def all(self) -> list[SnapshotRecordLike]: ...


class LayerTarget(Record):
    """Where the caller unpacks one layer, and how.

    ``existing``: the chain was already complete; there is nothing to unpack and commit/abort are
    no-ops. ``whiteout_mode``: ``"overlay"`` (whiteouts become 0/0 char devices, opaque dirs get
    ``trusted.overlay.opaque=y``) or ``"delete"`` (whiteouts delete from the copy of the parent).
    """

    id: int
    chain_id: str
    parent_id: int | None
    diff_id: str
    path: str
    whiteout_mode: str
    existing: bool = False


class Cleanup(Record):
    """What ``cleanup_incomplete`` removed (snapshot numbers and paths) and what it had to keep."""

    removed: tuple[int, ...] = ()
    orphans: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()


class SnapshotterBase:
    whiteout_mode = "overlay"
    driver = ""
    independent_layers = False  # _populate never reads the parent: layers may be unpacked at once

    def __init__(self, store: Store, repo: SnapshotRepo, sys: Syscalls | None = None) -> None:
        self.store = store
        self.repo = repo
        if sys is None:
            from dockyard.kernel.syscalls import LibcSyscalls

            sys = LibcSyscalls()
        self.sys = sys
        self._lock = threading.Lock()
        self._active: set[int] = set()  # prepared in this process, not yet committed or aborted

    # -- the layer lifecycle
    def prepare_layer(self, chain_id: str, parent_chain_id: str | None, diff_id: str, *,
                      parent_target: LayerTarget | None = None) -> LayerTarget:
        """Start the snapshot ``chain_id`` = ``parent_chain_id`` + the layer ``diff_id``.

        A complete snapshot of that chain is returned as is (``existing=True``): each layer is
        unpacked once. An incomplete one left by a failed or crashed unpack is removed and redone;
        one being unpacked by this process right now is a ``Conflict``.

        The parent must be complete, or be ``parent_target``: a layer the caller itself prepared
        and unpacked and will commit together with this one (``commit_layers``).
        """
        _check_id("chain id", chain_id)
        _check_id("diff id", diff_id)
        rec = self.repo.get_by_chain(chain_id)
        if rec is not None and rec.state == "complete":
            return self._target(rec, existing=True)
        parent = None
        if parent_chain_id:
            parent = self.repo.get_by_chain(parent_chain_id)
            if parent is None:
                raise NotFound(f"prepare snapshot {chain_id}: no parent snapshot {parent_chain_id}")
            if parent.state != "complete" and not self._own_pending(parent, parent_target):
                raise FailedPrecondition(f"prepare snapshot {chain_id}: parent {parent_chain_id} "
                                         "is not complete")
        with self._lock:
            if rec is not None:
                if rec.id in self._active:
                    raise Conflict(f"prepare snapshot {chain_id}: it is being unpacked (snapshot {rec.id})")
                self._discard(rec)
            try:
                rec = self.repo.add(chain_id, parent.id if parent else None, diff_id)
            except AlreadyExists:
                again = self.repo.get_by_chain(chain_id)
                if again is not None and again.state == "complete":
                    return self._target(again, existing=True)
                raise Conflict(f"prepare snapshot {chain_id}: another unpack of it is in progress") from None
            self._active.add(rec.id)
        try:
            remove_tree(self.store.snapshot(rec.id))  # a crashed removal's leftover, same number
            os.makedirs(os.path.dirname(self.store.snapshot(rec.id)), mode=0o711, exist_ok=True)
            os.mkdir(self.store.snapshot(rec.id), 0o700)
            self._populate(self.store.snapshot_fs(rec.id), parent)
        except BaseException:
            try:
                self._discard(rec)
            finally:
                with self._lock:
                    self._active.discard(rec.id)
            raise
        return self._target(rec, existing=False)

    def commit_layer(self, target: LayerTarget, size: int, *, sync: bool = True) -> None:
        """Mark the unpacked snapshot complete (``size``: the layer's unpacked bytes).

        ``sync``: flush the snapshot's filesystem (syncfs) first, so a power loss cannot leave a
        record saying complete over files that never reached the disk. A caller that commits many
        layers at once may pass False for all but the last.
        """
        if target.existing:
            return
        rec = self.repo.get(target.id)
        if rec is None or rec.chain_id != target.chain_id:
            raise NotFound(f"commit snapshot {target.chain_id}: it was removed (snapshot {target.id})")
        if rec.state == "complete":
            return
        self._before_commit(rec)
        if sync:
            fd = os.open(target.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self.sys.syncfs(fd)
            finally:
                os.close(fd)
        self.repo.mark_complete(rec.id, int(size))
        with self._lock:
            self._active.discard(rec.id)

    def commit_layers(self, done: Sequence[tuple[LayerTarget, int]]) -> None:
        """Commit unpacked layers (bottom first, each with its size) with one syncfs for all:
        every layer's files reach the disk before any of them is marked complete."""
        new = []
        for target, size in done:
            if target.existing:
                continue
            rec = self.repo.get(target.id)
            if rec is None or rec.chain_id != target.chain_id:
                raise NotFound(f"commit snapshot {target.chain_id}: it was removed (snapshot {target.id})")
            if rec.state != "complete":
                self._before_commit(rec)
                new.append((rec, size))
        if not new:
            return
        fd = os.open(self.store.snapshot(new[0][0].id), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.sys.syncfs(fd)  # one filesystem: all snapshots live under store.snapshots
        finally:
            os.close(fd)
        for rec, size in new:
            self.repo.mark_complete(rec.id, int(size))
            with self._lock:
                self._active.discard(rec.id)

    def _own_pending(self, parent: SnapshotRecordLike, target: LayerTarget | None) -> bool:
        """``parent`` is ``target``, prepared by this process and neither committed nor aborted."""
        if target is None or target.existing or target.id != parent.id or target.chain_id != parent.chain_id:
            return False
        with self._lock:
            return parent.id in self._active

    def abort_layer(self, target: LayerTarget) -> None:
        """Drop a prepared snapshot: its files and its record. A no-op for ``existing`` targets."""
        if target.existing:
            return
        rec = self.repo.get(target.id)
        if rec is not None and rec.chain_id == target.chain_id and rec.state != "complete":
            self._discard(rec)
        with self._lock:
            self._active.discard(target.id)

    def remove(self, chain_id: str) -> None:
        """Remove a complete or incomplete snapshot. ``Conflict`` while a snapshot above it or an
        image uses it (the metadata repository enforces both)."""
        rec = self._get(chain_id)
        if rec.id in self._active:
            raise Conflict(f"remove snapshot {chain_id}: it is being unpacked; abort it instead")
        children = self.repo.children(rec.id)
        if children:
            raise Conflict(f"remove snapshot {chain_id}: {len(children)} snapshot(s) depend on it, "
                           f"e.g. {children[0].chain_id}")
        self.repo.remove(rec.id)
        self._remove_files(rec.id)
        with self._lock:
            self._active.discard(rec.id)

    def cleanup_incomplete(self) -> Cleanup:
        """At start: remove incomplete snapshots, numbered directories without a record, and
        short links that point at no snapshot (and re-make missing links of complete ones).
        Snapshots this process is unpacking are kept."""
        removed: list[int] = []
        kept: list[str] = []
        for rec in self.repo.incomplete():
            if rec.id in self._active:
                continue
            try:
                self._discard(rec)
                removed.append(rec.id)
            except (Conflict, FailedPrecondition) as e:
                kept.append(f"snapshot {rec.id} ({rec.chain_id}): {e}")
        records = self.repo.all()
        known = {r.id for r in records} | self._active
        orphans: list[str] = []
        try:
            names = os.listdir(self.store.snapshots)
        except FileNotFoundError:
            names = []
        for name in names:
            if not name.isdigit() or name != str(int(name)) or int(name) < 1 or int(name) in known:
                continue
            path = self.store.snapshot(int(name))
            try:
                remove_tree(path)
                orphans.append(path)
            except FailedPrecondition as e:
                kept.append(str(e))
        orphans += self._cleanup_extra(records, known)
        return Cleanup(tuple(removed), tuple(orphans), tuple(kept))

    # -- reading
    def chain(self, chain_id: str) -> list[SnapshotRecordLike]:
        """The complete snapshots of a chain, top first. NotFound / FailedPrecondition otherwise."""
        out = []
        rec: SnapshotRecordLike | None = self._get(chain_id)
        while rec is not None:
            if rec.state != "complete":
                raise FailedPrecondition(f"snapshot {rec.chain_id} is incomplete (its unpack did not finish)")
            out.append(rec)
            if len(out) > MAX_DEPTH:
                raise FailedPrecondition(f"snapshot {chain_id}: more than {MAX_DEPTH} layers (or a loop)")
            if rec.parent_id is None:
                break
            parent_id = rec.parent_id
            rec = self.repo.get(parent_id)
            if rec is None:
                raise NotFound(f"snapshot {chain_id}: parent snapshot {parent_id} is missing")
        return out

    def usage(self, chain_id: str) -> int:
        """Bytes on disk of this snapshot's own directory (not its parents')."""
        return disk_usage(self.store.snapshot(self._get(chain_id).id))

    def exists(self, chain_id: str) -> bool:
        rec = self.repo.get_by_chain(chain_id)
        return rec is not None and rec.state == "complete"

    # -- applying mounts (computed by container_mounts)
    def mount(self, specs: Sequence[MountSpec], target: str) -> None:
        apply.mount_specs(self.sys, specs, target)

    def unmount(self, target: str, *, detach: bool = False) -> None:
        apply.unmount(self.sys, target, detach=detach)

    # -- driver hooks
    def _populate(self, fs: str, parent: SnapshotRecordLike | None) -> None:
        raise NotImplementedError

    def _before_commit(self, rec: SnapshotRecordLike) -> None:
        pass

    def _remove_extra(self, snapshot_id: int) -> None:
        pass

    def _cleanup_extra(self, records: list[SnapshotRecordLike], known: set[int]) -> list[str]:
        return []

    # -- helpers
    def _get(self, chain_id: str) -> SnapshotRecordLike:
        rec = self.repo.get_by_chain(chain_id)
        if rec is None:
            raise NotFound(f"no such snapshot: {chain_id}")
        return rec

    def _target(self, rec: SnapshotRecordLike, *, existing: bool) -> LayerTarget:
        return LayerTarget(rec.id, rec.chain_id, rec.parent_id, rec.diff_id,
                           self.store.snapshot_fs(rec.id), self.whiteout_mode, existing)

    def _discard(self, rec: SnapshotRecordLike) -> None:
        """Files first, then the record: for a snapshot that was never complete, a crash in between
        leaves an incomplete record, which the next start removes again."""
        self._remove_files(rec.id)
        self.repo.remove(rec.id)

    def _remove_files(self, snapshot_id: int) -> None:
        self._remove_extra(snapshot_id)
        remove_tree(self.store.snapshot(snapshot_id))


def _check_id(what: str, value: str) -> None:
    if not isinstance(value, str) or not value or len(value) > 200 or any(c in value for c in "\0\n"):
        raise InvalidArgument(f"invalid snapshot {what} {value!r}")


def check_dir_path(what: str, path: str) -> str:
    if not isinstance(path, str) or not os.path.isabs(path):
        raise InvalidArgument(f"{what} must be an absolute path, not {path!r}")
    return path
