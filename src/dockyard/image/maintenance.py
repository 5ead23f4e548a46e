"""Store maintenance: ``image prune``, ``system df``, ``system check [--repair]``, and the garbage
collection they share.

GC (``collect``): snapshots no image layer, no child snapshot and no lease uses are removed (leaves
first, repeated until none is left), then content blobs no image and no lease needs (mark and sweep
in ``content.gc``). Prune reports what it freed by measuring before and after (blob bytes plus the
recorded sizes of snapshots), so the figure is right whether ``ImageService.remove`` collects
eagerly or leaves it to this pass.

``check`` verifies, without trusting any single record:
- the SQLite file (``integrity_check``, ``foreign_key_check``);
- every blob's bytes against its name (``ContentStore.verify``) and stray entries under ``blobs/``;
- every image: manifest and config blobs present, parsed with their digests checked, consistent with
  each other (``validate_image``) and with the layer rows; every layer blob present with its size;
  every layer's snapshot (by chain id) complete with its directory on disk;
- every tag names an existing image; every snapshot record is complete and has its directory.
``repair=True`` removes what cannot be trusted: broken images (their tags with them; an image a
container uses is kept and stays a problem), corrupt and stray blobs, incomplete snapshots, then
runs GC; the report lists each action and what remains (re-checked from scratch).
"""

from __future__ import annotations

import json
import os

from dockyard.errors import Conflict, DockyardError, FailedPrecondition, InvalidArgument, NotFound
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.image.service import ImageService
    from dockyard.metadata.records import ImageRecord
    from dockyard.oci.digest import Digest


class GcResult(Record):
    snapshots: int = 0
    snapshot_bytes: int = 0
    blobs: int = 0
    blob_bytes: int = 0


class PruneResult(Record):
    """``actions``: what ``rmi`` would print, ``("Untagged", "busybox:latest")``, ``("Deleted",
    "sha256:...")``; ``reclaimed``: bytes freed on disk (blobs and snapshots)."""

    actions: tuple[tuple[str, str], ...] = ()
    reclaimed: int = 0

    @property
    def deleted(self) -> tuple[str, ...]:
        return tuple(x for kind, x in self.actions if kind == "Deleted")


class DfRow(Record):
    """One row of ``system df``; sizes in bytes."""

    type: str
    total: int
    active: int
    size: int
    reclaimable: int


class CheckReport(Record):
    checked: tuple[tuple[str, int], ...] = ()
    problems: tuple[str, ...] = ()
    repairs: tuple[str, ...] = ()
    remaining: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.remaining


# --------------------------------------------------------------------------------------------------
# GC and prune

def collect(svc: ImageService) -> GcResult:
    """Remove unreferenced, unleased snapshots, then unreferenced, unleased blobs."""
    from dockyard.metadata.gc import collect_garbage

    leased = svc.db.leases.leased("snapshot")
    count = size = 0
    progress = True
    while progress:
        progress = False
        for rec in svc.db.snapshots.unreferenced():
            if rec.chain_id in leased:
                continue
            try:
                svc.snapshotter.remove(rec.chain_id)
            except (Conflict, FailedPrecondition, NotFound):
                continue
            count, size, progress = count + 1, size + rec.size, True
    report = collect_garbage(svc.db, svc.content)
    return GcResult(count, size, len(report.blobs_removed), report.bytes_freed)


def _footprint(svc: ImageService) -> int:
    return (sum(b.size for b in svc.content.walk())
            + sum(s.size for s in svc.db.snapshots.all()))


def prune(svc: ImageService, all: bool = False) -> PruneResult:  # noqa: A002 - docker's flag name
    """``docker image prune``: dangling images (``all``: every image no container uses), then GC."""
    before = _footprint(svc)
    candidates = [s for s in svc.list(all=True, dangling=None if all else True) if not s.containers]
    actions: list[tuple[str, str]] = []
    for summary in candidates:
        try:
            actions += svc.remove(str(summary.id), force=True)
        except NotFound:
            continue  # went with an earlier one
    collect(svc)
    return PruneResult(tuple(actions), max(0, before - _footprint(svc)))


# --------------------------------------------------------------------------------------------------
# system df

def _container_running(state: str) -> bool:
    try:
        d = json.loads(state or "{}")
    except ValueError:
        return False
    return isinstance(d, dict) and (d.get("Running") is True or d.get("Status") == "running")


def disk_usage(svc: ImageService) -> list[DfRow]:
    """``docker system df``: Images, Containers, Local Volumes, Build Cache (shared layers once)."""
    from dockyard.snapshot.fsutil import disk_usage as du

    snapshots = {s.id: s.size for s in svc.db.snapshots.all()}
    images = svc.db.images.list()
    containers = svc.db.containers.all()
    used_by = {str(c.image_id) for c in containers}

    def layer_keys(image: ImageRecord) -> dict[tuple[str, str], int]:
        out = {}
        for la in image.layers:
            if la.snapshot_id is not None and la.snapshot_id in snapshots:
                out[("s", str(la.snapshot_id))] = snapshots[la.snapshot_id]
            else:
                out[("b", str(la.blob_digest))] = la.blob_size
        return out

    all_layers: dict[tuple[str, str], int] = {}
    active_layers: dict[tuple[str, str], int] = {}
    for image in images:
        keys = layer_keys(image)
        all_layers.update(keys)
        if str(image.id) in used_by:
            active_layers.update(keys)
    total = sum(all_layers.values())
    rows = [DfRow("Images", len(images), sum(1 for i in images if str(i.id) in used_by), total,
                  total - sum(active_layers.values()))]
    c_size = c_reclaim = c_active = 0
    for c in containers:
        size = du(svc.store.container(c.id)) if _safe_id(c.id) else 0
        c_size += size
        if _container_running(c.state):
            c_active += 1
        else:
            c_reclaim += size
    rows.append(DfRow("Containers", len(containers), c_active, c_size, c_reclaim))
    volumes_dir = os.path.join(svc.store.root, "volumes")
    names = sorted(os.listdir(volumes_dir)) if os.path.isdir(volumes_dir) else []
    v_size = sum(du(os.path.join(volumes_dir, n)) for n in names)
    rows.append(DfRow("Local Volumes", len(names), 0, v_size, v_size))
    rows.append(DfRow("Build Cache", 0, 0, 0, 0))
    return rows


def _safe_id(container_id: str) -> bool:
    try:
        from dockyard.store import Store

        Store("/").container(container_id)
        return True
    except InvalidArgument:
        return False


# --------------------------------------------------------------------------------------------------
# system check

def _read_doc(svc: ImageService, digest: Digest, what: str, bad: set[Digest]) -> tuple[bytes | None, str]:
    if digest in bad:
        return None, f"{what} blob {digest} is corrupt (its bytes do not match its digest)"
    try:
        return svc.content.read_bytes(digest), ""
    except NotFound:
        return None, f"{what} blob {digest} is missing"
    except InvalidArgument as e:
        return None, f"{what} blob {digest}: {e}"


def image_problems(svc: ImageService, image: ImageRecord, bad: set[Digest]) -> list[str]:
    """What is wrong with one image record (empty when it is sound)."""
    from dockyard.oci.image_config import chain_ids, parse_image_config, validate_image
    from dockyard.oci.image_spec import parse_manifest

    out: list[str] = []
    manifest = config = None
    data, why = _read_doc(svc, image.manifest_digest, "manifest", bad)
    if data is not None:
        try:
            manifest = parse_manifest(data, expected=image.manifest_digest,
                                      media_type=image.manifest_media_type)
        except InvalidArgument as e:
            why = f"manifest {image.manifest_digest}: {e}"
    if why:
        out.append(why)
    data, why = _read_doc(svc, image.id, "config", bad)
    if data is not None:
        try:
            config = parse_image_config(data, expected=image.id)
        except InvalidArgument as e:
            why = f"config {image.id}: {e}"
    if why:
        out.append(why)
    if manifest is not None and config is not None:
        if manifest.config.digest != image.id:
            out.append(f"manifest names config {manifest.config.digest}, not the image id")
        try:
            validate_image(manifest, config)
        except InvalidArgument as e:
            out.append(str(e))
        if len(image.layers) != len(manifest.layers):
            out.append(f"{len(image.layers)} layer rows but the manifest has {len(manifest.layers)}")
        for i, (row, desc) in enumerate(zip(image.layers, manifest.layers)):
            if row.blob_digest != desc.digest:
                out.append(f"layer {i}: row names blob {row.blob_digest}, manifest {desc.digest}")
        for i, (row, diff) in enumerate(zip(image.layers, config.rootfs.diff_ids)):
            if row.diff_id != diff:
                out.append(f"layer {i}: row has diff id {row.diff_id}, config {diff}")
    for i, row in enumerate(image.layers):
        if row.blob_digest in bad:
            out.append(f"layer {i}: blob {row.blob_digest} is corrupt")
            continue
        try:
            size = svc.content.info(row.blob_digest).size
        except NotFound:
            out.append(f"layer {i}: blob {row.blob_digest} is missing")
            continue
        if size != row.blob_size:
            out.append(f"layer {i}: blob {row.blob_digest} has {size} bytes, expected {row.blob_size}")
    for i, chain in enumerate(chain_ids([row.diff_id for row in image.layers])):
        rec = svc.db.snapshots.get_by_chain(str(chain))
        if rec is None:
            out.append(f"layer {i}: no snapshot for chain {chain}")
        elif rec.state != "complete":
            out.append(f"layer {i}: snapshot {rec.id} is incomplete")
        elif not os.path.isdir(svc.store.snapshot_fs(rec.id)):
            out.append(f"layer {i}: snapshot {rec.id} has no directory {svc.store.snapshot_fs(rec.id)}")
    return out


def _scan(svc: ImageService) -> tuple[list[tuple[str, int]], list[str], dict[Digest, list[str]], object]:
    """(counts, problems, broken images -> their tags, the content verify report)."""
    problems = [f"database: {p}" for p in svc.db.check()]
    verify = svc.content.verify(repair=False)
    bad = set(verify.bad)
    problems += [f"blob {d}: content does not match its digest" for d in verify.bad]
    problems += [f"content: blobs/{s} is not a blob" for s in verify.stray]
    images = svc.db.images.list()
    tags: dict[str, list[str]] = {}
    all_tags = svc.db.tags.all()
    from dockyard.image.service import familiar

    for t in all_tags:
        tags.setdefault(str(t.image_id), []).append(familiar(t.name))
    broken: dict[Digest, list[str]] = {}
    for image in images:
        names = tags.get(str(image.id), [])
        label = f"image {image.id.short}" + (f" ({', '.join(names)})" if names else "")
        for why in image_problems(svc, image, bad):
            problems.append(f"{label}: {why}")
            broken[image.id] = names
    ids = {str(i.id) for i in images}
    problems += [f"tag {t.name}: no such image {t.image_id}" for t in all_tags
                 if str(t.image_id) not in ids]
    snapshots = svc.db.snapshots.all()
    for rec in snapshots:
        if rec.state != "complete":
            problems.append(f"snapshot {rec.id} ({rec.chain_id}): incomplete")
        elif not os.path.isdir(svc.store.snapshot_fs(rec.id)):
            problems.append(f"snapshot {rec.id} ({rec.chain_id}): directory missing")
    counts = [("blobs", verify.checked), ("images", len(images)), ("tags", len(all_tags)),
              ("snapshots", len(snapshots))]
    return counts, problems, broken, verify


def check(svc: ImageService, repair: bool = False) -> CheckReport:
    """Verify the store; with ``repair``, remove what is broken and re-check (module docstring)."""
    counts, problems, broken, verify = _scan(svc)
    if not repair or not problems:
        return CheckReport(tuple(counts), tuple(problems), (), tuple(problems))
    repairs: list[str] = []
    for image_id, names in broken.items():
        try:
            removed = svc.db.images.delete(image_id, untag=True)
        except (Conflict, DockyardError) as e:
            repairs.append(f"kept image {image_id.short}: {e}")
            continue
        untagged = f" (untagged {', '.join(names)})" if removed else ""
        repairs.append(f"removed image {image_id}{untagged}")
    if not verify.clean:  # type: ignore[attr-defined]
        fixed = svc.content.verify(repair=True)
        repairs += [f"removed corrupt blob {d}" for d in fixed.bad]
        repairs += [f"removed stray content/blobs/{s}" for s in fixed.stray]
    cleanup = svc.snapshotter.cleanup_incomplete()
    repairs += [f"removed incomplete snapshot {n}" for n in cleanup.removed]
    for rec in svc.db.snapshots.all():
        if rec.state == "complete" and not os.path.isdir(svc.store.snapshot_fs(rec.id)):
            try:
                svc.snapshotter.remove(rec.chain_id)
                repairs.append(f"removed snapshot {rec.id} (its directory was missing)")
            except (Conflict, FailedPrecondition, NotFound):
                pass
    gc = collect(svc)
    if gc.snapshots or gc.blobs:
        repairs.append(f"collected {gc.snapshots} unreferenced snapshot(s) and {gc.blobs} blob(s)")
    _, remaining, _, _ = _scan(svc)
    return CheckReport(tuple(counts), tuple(problems), tuple(repairs), tuple(remaining))
