"""The overlay snapshotter: each layer unpacked once into ``snapshots/<n>/fs``, shared by every
image and container above it; a container's rootfs is an overlay of the chain's layers plus the
container's own upper and work dirs.

A new snapshot starts empty and the caller unpacks only its layer into it, whiteouts in overlay
form (0/0 char devices; ``trusted.overlay.opaque=y`` on opaque dirs). At commit a short link
``snapshots/l/<base36 n> -> ../<n>/fs`` is made for the ``links`` mount strategy (see
``snapshot.mounts`` for why ``lowerdir+`` is preferred and when links are needed).
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument
from dockyard.snapshot import apply
from dockyard.snapshot.base import SnapshotterBase, check_dir_path
from dockyard.snapshot.apply import overlay_supported  # noqa: F401 - re-exported: the driver's probe
from dockyard.snapshot.mounts import LINKS, LOWERDIR_PLUS, STRATEGIES, Lower, overlay_mounts, short_link_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.kernel.syscalls import Syscalls
    from dockyard.snapshot.base import SnapshotRecordLike, SnapshotRepo
    from dockyard.snapshot.mounts import MountSpec
    from dockyard.store import Store


class Snapshotter(SnapshotterBase):
    """Overlay snapshots. ``strategy``: ``"lowerdir+"`` or ``"links"``; None probes the kernel
    once per process (``lowerdir+`` on Linux 6.8+, else ``links``)."""

    whiteout_mode = "overlay"
    driver = "overlay"
    independent_layers = True  # each layer is its own directory, filled from its own blob

    def __init__(self, store: Store, repo: SnapshotRepo, sys: Syscalls | None = None, *,
                 strategy: str | None = None) -> None:
        super().__init__(store, repo, sys)
        if strategy is not None and strategy not in STRATEGIES:
            raise InvalidArgument(f"unknown overlay mount strategy {strategy!r}: use one of {STRATEGIES}")
        self._strategy = strategy

    @property
    def strategy(self) -> str:
        if self._strategy is None:
            self._strategy = LOWERDIR_PLUS if apply.lowerdir_plus_supported(self.sys) else LINKS
        return self._strategy

    # -- reading
    def lowerdirs(self, chain_id: str) -> list[str]:
        """The ``fs`` directories of the chain, top layer first (overlay's lowerdir order)."""
        return [self.store.snapshot_fs(rec.id) for rec in self.chain(chain_id)]

    def container_mounts(self, chain_id: str | None, upper: str | None, work: str | None, *,
                         readonly: bool = False) -> list[MountSpec]:
        """The mounts of a rootfs: the chain's layers under ``upper``/``work`` (absolute, made by
        ``prepare_container``). Pure: reads metadata, touches no file and no mount.

        ``readonly``: the image's layers alone, no upper (``image diff``, export): a read-only bind
        mount of a single layer, an overlay of lowers for more. ``chain_id`` None: an image with
        no layers (``FROM scratch``): the rootfs is ``upper`` itself, bind-mounted.
        """
        recs = self.chain(chain_id) if chain_id else []
        lowers = [Lower(self.store.snapshot_fs(r.id), short_link_name(r.id)) for r in recs]
        return overlay_mounts(lowers, upper, work, readonly=readonly, strategy=self.strategy,
                              links_dir=self.store.snapshot_links)

    # -- containers
    def prepare_container(self, chain_id: str | None, upper: str, work: str | None) -> None:
        """Make a container's empty ``upper`` and ``work`` dirs. The upper dir is the merged root
        directory, so it takes the owner and mode of the top layer's root (else 0755 root)."""
        check_dir_path("upper dir", upper)
        check_dir_path("work dir", work or "")
        recs = self.chain(chain_id) if chain_id else []
        os.makedirs(upper, mode=0o755, exist_ok=True)
        os.makedirs(work or "", mode=0o700, exist_ok=True)
        if recs:
            st = os.stat(self.store.snapshot_fs(recs[0].id))
            os.chown(upper, st.st_uid, st.st_gid)
            os.chmod(upper, st.st_mode & 0o7777)

    # -- hooks of the layer lifecycle
    def _populate(self, fs: str, parent: SnapshotRecordLike | None) -> None:
        os.mkdir(fs, 0o755)

    def _before_commit(self, rec: SnapshotRecordLike) -> None:
        """The short link, made before the record says complete: a crash in between leaves an
        incomplete record whose removal takes the link along."""
        link = self.store.snapshot_link(short_link_name(rec.id))
        want = os.path.relpath(self.store.snapshot_fs(rec.id), self.store.snapshot_links)
        os.makedirs(self.store.snapshot_links, mode=0o711, exist_ok=True)
        try:
            if os.readlink(link) == want:
                return
            os.unlink(link)
        except FileNotFoundError:
            pass
        except OSError:  # not a symlink: someone else's file in our directory
            raise InvalidArgument(f"commit snapshot {rec.chain_id}: {link} exists and is not a link") from None
        tmp = f"{link}.tmp{os.getpid()}"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(want, tmp)
        os.replace(tmp, link)

    def _remove_extra(self, snapshot_id: int) -> None:
        try:
            os.unlink(self.store.snapshot_link(short_link_name(snapshot_id)))
        except FileNotFoundError:
            pass

    def _cleanup_extra(self, records: list[SnapshotRecordLike], known: set[int]) -> list[str]:
        """Remove links (and temporary link names) that point at no recorded snapshot; re-make
        the link of a complete snapshot if it is missing (the link is not fsync'ed at commit: after
        a power loss the record may say complete while the link never reached the disk)."""
        for rec in records:
            if rec.state == "complete" and not os.path.islink(self.store.snapshot_link(short_link_name(rec.id))):
                self._before_commit(rec)
        removed: list[str] = []
        try:
            names = os.listdir(self.store.snapshot_links)
        except FileNotFoundError:
            return removed
        wanted = {short_link_name(n) for n in known}
        for name in names:
            if name in wanted:
                continue
            path = f"{self.store.snapshot_links}/{name}"
            if os.path.islink(path):
                os.unlink(path)
                removed.append(path)
        return removed
