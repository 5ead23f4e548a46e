"""Layers into snapshots: each layer unpacked once per chain id, and snapshots removed again when
nothing uses them.

Why chain ids: a layer's files depend on the layers below it only through overlay (or, for vfs,
through the copy of the parent), so the snapshot for layer *n* is shared by every image whose
first *n* layers are the same; the chain id names exactly that prefix.

An unpack streams the blob from the content store through ``archive.extract_layer`` (validated,
confined; whiteouts in the snapshotter's form) and checks the diff id of what it extracted against
the image config *before* marking the snapshot complete: a layer that is not what the config
says never becomes usable. Any failure aborts the snapshot in progress, and the snapshots this
call completed are removed again (top down), so a failed unpack leaves nothing behind.
"""

from __future__ import annotations

from dockyard.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from dockyard.oci.digest import Digest
from dockyard.oci.image_config import chain_ids
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from dockyard.image.service import ImageService
    from dockyard.metadata.records import ImageRecord


class Unpacked(Record):
    chain_id: str
    snapshot_id: int
    size: int  # bytes of file content in this layer (docker's layer size)
    new: bool  # made by this call


def unpack_layers(svc: ImageService, blobs: Sequence[Digest], diff_ids: Sequence[Digest], *,
                  lease: str | None = None) -> list[Unpacked]:
    """Unpack ``blobs`` (bottom first) whose diff ids the config lists as ``diff_ids``.

    Each chain id is named under ``lease`` before its snapshot is prepared, so a concurrent
    ``rmi`` or prune leaves it alone until the caller recorded the image.
    """
    from dockyard.archive import extract_layer

    if len(blobs) != len(diff_ids):
        raise InvalidArgument(f"unpack: {len(blobs)} layers but {len(diff_ids)} diff ids")
    snapshotter = svc.snapshotter
    out: list[Unpacked] = []
    parent: str | None = None
    try:
        for i, (blob, diff, chain) in enumerate(zip(blobs, diff_ids, chain_ids(diff_ids))):
            if lease is not None:
                svc.db.leases.add_resource(lease, "snapshot", str(chain))
            target = snapshotter.prepare_layer(str(chain), parent, str(diff))
            if target.existing:
                rec = snapshotter.repo.get(target.id)
                out.append(Unpacked(target.chain_id, target.id, rec.size if rec else 0, False))
                parent = target.chain_id
                continue
            try:
                with svc.content.open(blob) as f:
                    result = extract_layer(f, target.path, whiteout_mode=target.whiteout_mode,
                                           device_policy="create")
                if result.digest != blob:
                    raise InvalidArgument(f"layer {i} ({blob}): the blob read back as "
                                          f"{result.digest}: the content store is corrupt")
                if result.diff_id != diff:
                    raise InvalidArgument(f"layer {i} ({blob}): diff id mismatch: the image "
                                          f"config says {diff}, the layer's tar is {result.diff_id}")
                snapshotter.commit_layer(target, result.size)
            except InvalidArgument as e:
                snapshotter.abort_layer(target)
                msg = str(e)
                if not msg.startswith(f"layer {i} "):
                    msg = f"layer {i} ({blob}): {msg}"
                raise InvalidArgument(msg) from None
            except BaseException:
                snapshotter.abort_layer(target)
                raise
            out.append(Unpacked(target.chain_id, target.id, result.size, True))
            parent = target.chain_id
    except BaseException:
        remove_snapshots(svc, [u.chain_id for u in out if u.new], own_lease=lease)
        raise
    return out


def image_chains(image: ImageRecord) -> list[str]:
    """The chain ids of the image's layers, bottom first."""
    return [str(c) for c in chain_ids([la.diff_id for la in image.layers])]


def remove_snapshots(svc: ImageService, chains: Sequence[str], *,
                     own_lease: str | None = None) -> list[str]:
    """Remove the snapshots of ``chains`` (bottom first), top down, while nothing uses them: no
    image layer, no snapshot above (the repository refuses both), no live lease but
    ``own_lease``. Stops at the first one still in use (what is below it is its parent).
    Returns the chain ids removed."""
    held = _leased_by_others(svc, own_lease)
    removed: list[str] = []
    for chain in reversed(list(chains)):
        if chain in held:
            break
        try:
            svc.snapshotter.remove(chain)
        except NotFound:
            continue
        except (Conflict, FailedPrecondition):
            break
        removed.append(chain)
    return removed


def _leased_by_others(svc: ImageService, own_lease: str | None) -> set[str]:
    """Chain ids a live lease other than ``own_lease`` names (few leases live at a time)."""
    import time

    now = time.time()
    out: set[str] = set()
    for lease in svc.db.leases.all():
        if lease.id == own_lease or lease.expired(now):
            continue
        out.update(r.key for r in svc.db.leases.resources(lease.id) if r.kind == "snapshot")
    return out


def remove_unused_snapshots(svc: ImageService) -> list[str]:
    """Remove every complete snapshot that no image, no snapshot above and no live lease uses
    (left by a crash between an unpack and the image's row, or by ``rmi --no-prune``); top down,
    repeated until nothing more goes. Returns the chain ids removed."""
    removed: list[str] = []
    while True:
        held = _leased_by_others(svc, None)
        batch = [s for s in svc.db.snapshots.unreferenced() if s.chain_id not in held]
        progress = False
        for snap in batch:
            try:
                svc.snapshotter.remove(snap.chain_id)
            except (NotFound, Conflict, FailedPrecondition):
                continue
            removed.append(snap.chain_id)
            progress = True
        if not progress:
            return removed
