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

``staged`` (``load``): a layer already extracted into a staging directory while the archive was
read (``image/staging.py``) is adopted by one rename into its prepared snapshot, after the same
checks (blob digest, diff id against the config); a mismatch is refused like an extracted one.
"""

from __future__ import annotations

from dockyard.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from dockyard.oci.digest import Digest
from dockyard.oci.image_config import chain_ids
from dockyard.record import Record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import BinaryIO, Callable

    from dockyard.image.service import ImageService
    from dockyard.image.staging import StagedLayer
    from dockyard.metadata.records import ImageRecord
    from dockyard.snapshot.base import LayerTarget


class Unpacked(Record):
    chain_id: str
    snapshot_id: int
    size: int  # bytes of file content in this layer (docker's layer size)
    new: bool  # made by this call


def unpack_layers(svc: ImageService, blobs: Sequence[Digest], diff_ids: Sequence[Digest], *,
                  lease: str | None = None,
                  staged: Callable[[Digest], StagedLayer | None] | None = None) -> list[Unpacked]:
    """Unpack ``blobs`` (bottom first) whose diff ids the config lists as ``diff_ids``.

    Each chain id is named under ``lease`` before its snapshot is prepared, so a concurrent
    ``rmi`` or prune leaves it alone until the caller recorded the image.

    The snapshots are prepared one by one (database access stays on this thread), the layers are
    extracted (on two threads when the snapshotter's layers are independent directories), and all
    new snapshots are committed together: one syncfs, then each marked complete, bottom first.
    ``staged`` gives a blob's tree extracted beforehand (only asked when the layers are
    independent), or None.
    """
    if len(blobs) != len(diff_ids):
        raise InvalidArgument(f"unpack: {len(blobs)} layers but {len(diff_ids)} diff ids")
    snapshotter = svc.snapshotter
    parallel = snapshotter.independent_layers
    out: list[Unpacked] = []
    pending: list[tuple[int, Digest, Digest, LayerTarget]] = []  # prepared, to extract
    committed: list[tuple[int, LayerTarget]] = []  # prepared, filled from a staged tree
    sizes: dict[int, int] = {}
    parent: str | None = None
    parent_target: LayerTarget | None = None
    try:
        for i, (blob, diff, chain) in enumerate(zip(blobs, diff_ids, chain_ids(diff_ids))):
            if lease is not None:
                svc.db.leases.add_resource(lease, "snapshot", str(chain))
            target = snapshotter.prepare_layer(str(chain), parent, str(diff),
                                               parent_target=parent_target)
            if target.existing:
                rec = snapshotter.repo.get(target.id)
                out.append(Unpacked(target.chain_id, target.id, rec.size if rec else 0, False))
                parent, parent_target = target.chain_id, None
                continue
            out.append(Unpacked(target.chain_id, target.id, 0, True))
            parent, parent_target = target.chain_id, target
            tree = staged(blob) if staged is not None and parallel else None
            if tree is not None:
                committed.append((i, target))
                sizes[i] = _adopt(tree, i, blob, diff, target)
                continue
            pending.append((i, blob, diff, target))
            if not parallel:  # the next layer's snapshot starts as a copy of this one
                sizes[i] = _extract(svc.content.open(blob), i, blob, diff, target)
        if parallel and pending:
            files = [svc.content.open(blob) for _, blob, _, _ in pending]
            if len(pending) == 1:
                i, blob, diff, target = pending[0]
                sizes[i] = _extract(files[0], i, blob, diff, target)
            else:
                _extract_all(pending, files, sizes)
        out = [replace(u, size=sizes[i]) if u.new else u for i, u in enumerate(out)]
        # Every new layer's files reach the disk (one syncfs) before any is marked complete.
        snapshotter.commit_layers([(target, sizes[i]) for i, target in
                                   _in_order(committed, pending)])
    except BaseException:
        # top down; a no-op for ones already complete
        for _, target in reversed(_in_order(committed, pending)):
            try:
                snapshotter.abort_layer(target)
            except Exception:  # noqa: BLE001 - left incomplete: the next start removes it
                pass
        remove_snapshots(svc, [u.chain_id for u in out if u.new], own_lease=lease)
        raise
    return out


def _extract(f: BinaryIO, i: int, blob: Digest, diff: Digest, target: LayerTarget) -> int:
    """Extract one layer from its open blob ``f`` (closed here) into ``target`` and check both
    digests; returns the layer's size. Touches only files, never the database."""
    from dockyard.archive import extract_layer

    try:
        with f:
            result = extract_layer(f, target.path, whiteout_mode=target.whiteout_mode,
                                   device_policy="create")
        if result.digest != blob:
            raise InvalidArgument(f"layer {i} ({blob}): the blob read back as "
                                  f"{result.digest}: the content store is corrupt")
        if result.diff_id != diff:
            raise InvalidArgument(f"layer {i} ({blob}): diff id mismatch: the image "
                                  f"config says {diff}, the layer's tar is {result.diff_id}")
    except InvalidArgument as e:
        msg = str(e)
        if not msg.startswith(f"layer {i} "):
            msg = f"layer {i} ({blob}): {msg}"
        raise InvalidArgument(msg) from None
    return result.size


def _in_order(committed: list[tuple[int, LayerTarget]],
              pending: list[tuple[int, Digest, Digest, LayerTarget]]) -> list[tuple[int, LayerTarget]]:
    """Every prepared layer, bottom first."""
    return sorted(committed + [(i, target) for i, _, _, target in pending], key=lambda it: it[0])


def _adopt(tree: StagedLayer, i: int, blob: Digest, diff: Digest, target: LayerTarget) -> int:
    """Move a staged tree into the prepared (empty) snapshot ``target``; its size. The tree is
    removed if its digests are not the blob's and the config's."""
    import os

    from dockyard.archive.extract import discard_partial

    try:
        if tree.digest != blob:
            raise InvalidArgument(f"layer {i} ({blob}): the blob read back as {tree.digest}: "
                                  "the content store is corrupt")
        if tree.diff_id != diff:
            raise InvalidArgument(f"layer {i} ({blob}): diff id mismatch: the image config says "
                                  f"{diff}, the layer's tar is {tree.diff_id}")
        os.rmdir(target.path)  # made empty by prepare_layer
        os.rename(tree.path, target.path)
    except BaseException:
        discard_partial(tree.path)
        raise
    return tree.size


def _extract_all(pending: Sequence[tuple[int, Digest, Digest, LayerTarget]],
                 files: Sequence[BinaryIO], sizes: dict[int, int]) -> None:
    """Extract independent layers on two threads (file syscalls, sha256 and decompression release
    the GIL). Every thread has finished before this returns or raises; the first failure in layer
    order is raised."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="unpack")
    futures = {}
    failed = True
    try:
        for k, ((i, blob, diff, target), f) in enumerate(zip(pending, files)):
            futures[k] = pool.submit(_extract, f, i, blob, diff, target)
        failed = False
    finally:
        interrupted: BaseException | None = None
        while True:  # the caller removes the snapshots only after every thread stopped
            try:
                pool.shutdown(wait=True, cancel_futures=failed)
                break
            except BaseException as e:  # e.g. KeyboardInterrupt while waiting
                failed, interrupted = True, interrupted or e
        for k, f in enumerate(files):  # a blob whose extract never ran is closed here
            fut = futures.get(k)
            if fut is None or fut.cancelled():
                f.close()
        if interrupted is not None:
            raise interrupted
    for k, (i, _, _, _) in enumerate(pending):
        sizes[i] = futures[k].result()


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
