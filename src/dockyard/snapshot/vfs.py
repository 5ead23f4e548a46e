"""The vfs snapshotter: where overlay is unavailable (no overlayfs, or a store on a filesystem unfit
as an overlay upper, e.g. itself an overlay), each snapshot is a full, independent copy.

A new snapshot starts as a copy of its parent (``fsutil.copy_tree``: ``cp -a --reflink=auto``), and
the caller extracts its layer with ``whiteout_mode="delete"``: whiteouts delete from the copy, so
no overlay marker ever appears in a vfs tree. A container's rootfs is one more copy of the chain's
top snapshot, in the container's upper dir, bind-mounted on the target. Costly in space and time
(docker's and podman's vfs drivers are the same), but it works on any filesystem.
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument
from dockyard.snapshot.base import SnapshotterBase, check_dir_path
from dockyard.snapshot.fsutil import copy_tree
from dockyard.snapshot.mounts import MountSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.snapshot.base import SnapshotRecordLike


class VfsSnapshotter(SnapshotterBase):
    whiteout_mode = "delete"
    driver = "vfs"
    strategy = "copy"

    def lowerdirs(self, chain_id: str) -> list[str]:
        """One directory: the top snapshot already holds every layer of the chain."""
        return [self.store.snapshot_fs(self.chain(chain_id)[0].id)]

    def container_mounts(self, chain_id: str | None, upper: str | None, work: str | None, *,
                         readonly: bool = False) -> list[MountSpec]:
        """A bind mount of the container's copy (``upper``, filled by ``prepare_container``), or
        with ``readonly`` a read-only bind mount of the chain's top snapshot. Pure."""
        if readonly:
            if not chain_id:
                raise InvalidArgument("a read-only view needs at least one layer")
            return [MountSpec("bind", self.lowerdirs(chain_id)[0], ("bind", "ro"))]
        if chain_id:
            self.chain(chain_id)  # NotFound / incomplete, as the overlay driver reports them
        return [MountSpec("bind", check_dir_path("upper dir", upper or ""), ("bind",))]

    def prepare_container(self, chain_id: str | None, upper: str, work: str | None = None) -> None:
        """Copy the chain's top snapshot into ``upper`` (absent or empty); ``work`` is unused."""
        check_dir_path("upper dir", upper)
        os.makedirs(os.path.dirname(upper), mode=0o711, exist_ok=True)
        if chain_id:
            copy_tree(self.lowerdirs(chain_id)[0], upper)
        else:
            os.makedirs(upper, mode=0o755, exist_ok=True)

    def _populate(self, fs: str, parent: SnapshotRecordLike | None) -> None:
        if parent is None:
            os.mkdir(fs, 0o755)
        else:
            copy_tree(self.store.snapshot_fs(parent.id), fs)
