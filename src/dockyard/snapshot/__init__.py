"""Snapshots: layer chains unpacked on disk, and the mounts that show them as a rootfs.

    mounts.py   pure: MountSpec, overlay_mounts() (lowerdir+ or short links), short_link_name()
    apply.py    MountSpecs applied through kernel.Syscalls; probes (overlay, lowerdir+)
    base.py     the layer lifecycle shared by drivers (prepare/commit/abort/remove/cleanup)
    overlay.py  Snapshotter: one directory per layer, overlay-mounted
    vfs.py      VfsSnapshotter: one full copy per chain, bind-mounted (fallback)
    fsutil.py   copy_tree (cp -a --reflink=auto), remove_tree (refuses mounts), disk_usage

This module stays light: importing ``dockyard.snapshot.mounts`` must not pull in the kernel layer.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.kernel.syscalls import Syscalls
    from dockyard.snapshot.base import SnapshotRepo, SnapshotterBase
    from dockyard.store import Store

DRIVERS = ("auto", "overlay", "vfs")


def open_snapshotter(store: Store, repo: SnapshotRepo, sys: Syscalls | None = None, *,
                     driver: str = "auto", strategy: str | None = None) -> SnapshotterBase:
    """The snapshotter for ``store``: ``overlay`` where a probe mount works (``auto``), else ``vfs``.

    The daemon's wiring calls this once, then ``cleanup_incomplete()`` before serving.
    """
    from dockyard.errors import InvalidArgument
    from dockyard.snapshot.apply import overlay_supported

    if driver not in DRIVERS:
        raise InvalidArgument(f"unknown snapshot driver {driver!r}: use one of {DRIVERS}")
    if driver == "auto":
        driver = "overlay" if overlay_supported(store.root, sys) else "vfs"
    if driver == "overlay":
        from dockyard.snapshot.overlay import Snapshotter

        return Snapshotter(store, repo, sys, strategy=strategy)
    from dockyard.snapshot.vfs import VfsSnapshotter

    return VfsSnapshotter(store, repo, sys)
