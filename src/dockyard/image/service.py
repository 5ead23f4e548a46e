"""``ImageService``: the one entry point for images (the contract is in the API note; this module
implements it). It composes the pieces below it and owns the rules that join them:

    content/   blobs (manifest, config, layers), verified on the way in
    snapshot/  one unpacked snapshot per chain id, shared by every image above it
    metadata/  image rows with their layers and tags, leases, containers (for rmi)

Why an image is recorded only at the very end: the row is what makes an image visible and what
keeps its blobs from GC, so every check (digests, media types, diff ids) and every unpack happens
first, under a lease; then one transaction records the image, its layers and tags. A failure or a
crash before that transaction leaves blobs (collected later) and perhaps complete snapshots
(removed on failure, or pruned), never a half image. Snapshots an operation made are removed
again if it fails.

Beyond the fixed API, for the helpers that build images and for maintenance: ``protect``,
``write_blob``, ``ingest_blob`` (blobs under a lease), ``prepare``/``record``/``discard`` (the two
halves of ``add_image``, so several images record in one transaction), ``config_bytes``,
``tags_of``, ``images_for_save`` and ``remove_unused_snapshots`` (for ``image prune``).

Heavier work lives beside this module: ``unpack.py`` (layers into snapshots), ``load.py``
(docker-archive and OCI layout tars), ``save.py`` (writing them), ``inspect.py`` (docker's JSON
shapes for inspect, history and the image list).
"""

from __future__ import annotations

import contextlib

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.metadata.records import ImageRecord, LayerRecord
from dockyard.oci.digest import Digest
from dockyard.oci.image_config import ImageConfig, image_id, parse_image_config, validate_image
from dockyard.oci.image_spec import Manifest, parse_manifest
from dockyard.oci.reference import Reference, looks_like_id, parse_normalized, parse_reference
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import BinaryIO

    from dockyard.content import ContentStore
    from dockyard.image.unpack import Unpacked
    from dockyard.metadata import Database
    from dockyard.snapshot.base import SnapshotterBase
    from dockyard.store import Store
    from dockyard.store.lock import StoreLock

#: How long a lease of this service protects its content if the process dies holding it.
LEASE_TTL = 24 * 3600.0
_HEX = frozenset("0123456789abcdef")


class LayerBlob(Record):
    """A layer blob already committed in the content store."""

    digest: Digest
    size: int
    media_type: str


class ImageSummary(Record):
    """One row of ``dockyard images`` (docker's ``GET /images/json`` item)."""

    id: Digest
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    created: str
    size: int
    containers: int


class HistoryEntry(Record):
    """One row of ``dockyard history``, newest first."""

    id: str  # "sha256:..." for the top entry, "<missing>" for the others (as docker)
    created: str
    created_by: str
    size: int
    comment: str
    empty_layer: bool


class Prepared(Record):
    """An image checked and unpacked, not yet recorded (see ``ImageService.record``)."""

    record: ImageRecord
    tags: tuple[str, ...]  # full normalized names: docker.io/library/busybox:latest
    new_chains: tuple[str, ...]  # snapshots this operation made (removed again if it fails)


def familiar(name: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest`` (docker's short form)."""
    try:
        return parse_reference(name).familiar_string()
    except InvalidArgument:
        return name


def _tag_name(ref: Reference) -> str:
    if ref.digest is not None and not ref.tag:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {ref}")
    return ref.with_default_tag().with_digest(None).string()


class ImageService:
    def __init__(self, store: Store, db: Database, content: ContentStore,
                 snapshotter: SnapshotterBase, lock: StoreLock | None = None) -> None:
        self.store = store
        self.db = db
        self.content = content
        self.snapshotter = snapshotter
        self._lock = lock

    @classmethod
    def open(cls, root: str = "/var/lib/dockyard", *,
             lock_timeout: float | None = 10.0) -> ImageService:
        """Open the store at ``root``: take its flock for the service's lifetime, then clean up
        what a crash left (incomplete snapshots, expired leases)."""
        from dockyard.content import ContentStore
        from dockyard.metadata import Database
        from dockyard.snapshot import open_snapshotter
        from dockyard.store import Store
        from dockyard.store.lock import lock_store

        store = Store(root)
        store.ensure()
        lock = lock_store(store, timeout=lock_timeout)
        db = None
        try:
            db = Database(store.db)
            content = ContentStore(store)
            snapshotter = open_snapshotter(store, db.snapshots, driver="auto")
            snapshotter.cleanup_incomplete()
            db.leases.delete_expired()
            from dockyard.image.staging import remove_stale

            remove_stale(store.tmp)  # layers a crashed load was extracting
        except BaseException:
            if db is not None:
                db.close()
            lock.release()
            raise
        return cls(store, db, content, snapshotter, lock)

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ImageService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ leases and blobs

    @contextlib.contextmanager
    def lease(self) -> Iterator[str]:
        """A temporary lease id: blobs and snapshots named under it are safe from GC until the
        ``with`` block ends (by then ``add_image`` has recorded what must stay)."""
        with self.db.leases.temporary(ttl=LEASE_TTL, labels={"owner": "image"}) as rec:
            yield rec.id

    def protect(self, lease: str, digest: Digest) -> None:
        """Name a blob under ``lease`` (do it before committing or relying on the blob)."""
        self.db.leases.add_resource(lease, "blob", str(digest))

    def write_blob(self, lease: str, data: bytes) -> Digest:
        """Store a small blob (config, manifest) under ``lease``; return its digest."""
        return self.content.write_bytes(data, on_digest=lambda d: self.protect(lease, d))

    def ingest_blob(self, lease: str, src: BinaryIO, *, expected: Digest | None = None,
                    size: int | None = None) -> Digest:
        """Stream a blob (a layer) into the content store under ``lease``; return its digest."""
        if expected is not None:
            self.protect(lease, expected)
        return self.content.ingest(src, expected=expected, size=size,
                                   on_digest=lambda d: self.protect(lease, d))

    # ------------------------------------------------------------------ lookups

    def resolve(self, name_or_id: str) -> ImageRecord:
        """Docker's rules: a full id, ``sha256:<hex>``, a reference (normalized), name@digest
        (the manifest digest), or a unique id prefix. ``NotFound("No such image: X")``."""
        return self._lookup(name_or_id)[0]

    def _lookup(self, text: str) -> tuple[ImageRecord, str | None]:
        """The image, and the full tag name when ``text`` named it by tag."""
        if not isinstance(text, str) or not text:
            raise NotFound(f"No such image: {text}")
        if looks_like_id(text):
            image = self.db.images.get(text if text.startswith("sha256:") else f"sha256:{text}")
            if image is None:
                raise NotFound(f"No such image: {text}")
            return image, None
        try:
            ref: Reference | None = parse_reference(text)
        except InvalidArgument:
            ref = None
        if ref is not None and ref.digest is not None:
            found = self._by_manifest_digest(ref)
            if found is not None:
                return found, None
        elif ref is not None:
            name = ref.with_default_tag().string()
            target = self.db.tags.get(name)
            image = self.db.images.get(target) if target is not None else None
            if image is not None:
                return image, name
        algorithm, sep, prefix = text.partition(":")
        hexpart = prefix if sep else algorithm
        if (not sep or algorithm == "sha256") and hexpart and _HEX.issuperset(hexpart):
            try:
                return self.db.images.resolve(text), None
            except NotFound:
                pass
        raise NotFound(f"No such image: {text}")

    def _by_manifest_digest(self, ref: Reference) -> ImageRecord | None:
        """An image whose manifest is ``ref.digest``; one tagged in ``ref``'s repository first."""
        matches = [i for i in self.db.images.list() if i.manifest_digest == ref.digest]
        for image in matches:
            if any(t.rsplit(":", 1)[0] == ref.name() for t in self.db.tags.tags_of(image.id)):
                return image
        return matches[0] if matches else None

    def config(self, image: ImageRecord) -> ImageConfig:
        return parse_image_config(self.content.read_bytes(image.id), expected=image.id)

    def config_bytes(self, image: ImageRecord) -> bytes:
        return self.content.read_bytes(image.id)

    def manifest(self, image: ImageRecord) -> Manifest:
        data = self.content.read_bytes(image.manifest_digest)
        return parse_manifest(data, expected=image.manifest_digest,
                              media_type=image.manifest_media_type)

    def tags_of(self, image: ImageRecord) -> list[str]:
        """The image's tags, familiar form (``busybox:latest``), sorted."""
        return sorted(familiar(t) for t in self.db.tags.tags_of(image.id))

    # ------------------------------------------------------------------ adding images

    def add_image(self, *, manifest: bytes, manifest_media_type: str, config: bytes,
                  layers: Sequence[LayerBlob], tags: Sequence[Reference] = ()) -> ImageRecord:
        """Check, unpack and record one image whose blobs are in the content store (see the
        module docstring for why the row comes last). A tag naming another image moves."""
        with self.lease() as lease:
            prepared = self.prepare(manifest=manifest, manifest_media_type=manifest_media_type,
                                    config=config, layers=layers, tags=tags, lease=lease)
            self.record([prepared], lease)
        image = self.db.images.get(prepared.record.id)
        assert image is not None
        return image

    def prepare(self, *, manifest: bytes, manifest_media_type: str, config: bytes,
                layers: Sequence[LayerBlob], tags: Sequence[Reference], lease: str) -> Prepared:
        """Everything of ``add_image`` but the recording: checks, then unpack under ``lease``."""
        manifest = bytes(manifest)
        config = bytes(config)
        m = parse_manifest(manifest, media_type=manifest_media_type)
        cfg = parse_image_config(config, expected=m.config.digest, media_type=m.config.media_type)
        validate_image(m, cfg)
        names = tuple(_tag_name(t) for t in tags)
        if len(layers) != len(m.layers):
            raise InvalidArgument(f"add image: {len(layers)} layer blobs given, the manifest has "
                                  f"{len(m.layers)}")
        for i, (blob, desc) in enumerate(zip(layers, m.layers)):
            if blob.digest != desc.digest or blob.size != desc.size:
                raise InvalidArgument(f"add image: layer {i}: the manifest says {desc.digest} "
                                      f"({desc.size} bytes), given {blob.digest} ({blob.size} bytes)")
        manifest_digest = Digest.of_bytes(manifest)
        for what, data, digest in (("manifest", manifest, manifest_digest),
                                   ("config", config, m.config.digest)):
            self.protect(lease, digest)
            if not self.content.exists(digest):
                self.write_blob(lease, data)
        for i, blob in enumerate(layers):
            self.protect(lease, blob.digest)
            try:
                info = self.content.info(blob.digest)
            except NotFound:
                raise NotFound(f"add image: layer {i} ({blob.digest}) is not in the content "
                               "store") from None
            if info.size != blob.size:
                raise InvalidArgument(f"add image: layer {i} ({blob.digest}) has {info.size} "
                                      f"bytes, the manifest says {blob.size}")
        unpacked = self._unpack_layers([b.digest for b in layers], cfg.rootfs.diff_ids, lease)
        rec = ImageRecord(
            id=image_id(config), manifest_digest=manifest_digest,
            manifest_media_type=m.media_type, config_size=len(config), created=cfg.created,
            architecture=cfg.architecture, os=cfg.os, size=sum(u.size for u in unpacked),
            layers=tuple(LayerRecord(diff, blob.digest, blob.size, blob.media_type, u.snapshot_id)
                         for diff, blob, u in zip(cfg.rootfs.diff_ids, layers, unpacked)))
        return Prepared(rec, names, tuple(u.chain_id for u in unpacked if u.new))

    def record(self, prepared: Sequence[Prepared],
               lease: str | None = None) -> list[tuple[str, Digest]]:
        """Record prepared images in one transaction (all or none); return the tags that moved
        away from another image, with that image's id. On failure the snapshots the preparations
        made are removed again."""
        moved: list[tuple[str, Digest]] = []
        try:
            with self.db.transaction():
                for p in prepared:
                    for name in p.tags:
                        old = self.db.tags.get(name)
                        if old is not None and old != p.record.id:
                            moved.append((name, old))
                    self.db.images.add(p.record, p.tags, exist_ok=True)
        except BaseException:
            self.discard(prepared, lease)
            raise
        return moved

    def discard(self, prepared: Sequence[Prepared], lease: str | None = None) -> None:
        """Undo the unpacks of preparations that will not be recorded."""
        from dockyard.image.unpack import remove_snapshots

        for p in reversed(prepared):
            remove_snapshots(self, p.new_chains, own_lease=lease)

    def _unpack_layers(self, blobs: Sequence[Digest], diff_ids: Sequence[Digest],
                       lease: str | None) -> list[Unpacked]:
        from dockyard.image.unpack import unpack_layers

        return unpack_layers(self, blobs, diff_ids, lease=lease)

    def unpack(self, image: ImageRecord) -> str:
        """Make sure every layer of the image is unpacked; the top chain id ("" for none)."""
        if not image.layers:
            return ""
        with self.lease() as lease:
            unpacked = self._unpack_layers([la.blob_digest for la in image.layers],
                                           [la.diff_id for la in image.layers], lease)
            for idx, (layer, u) in enumerate(zip(image.layers, unpacked)):
                if layer.snapshot_id != u.snapshot_id:
                    self.db.images.set_layer_snapshot(image.id, idx, u.snapshot_id)
        return unpacked[-1].chain_id

    def remove_unused_snapshots(self) -> list[str]:
        """Snapshots no image uses (a crash after an unpack, ``rmi --no-prune``): removed,
        unless a live lease holds them. Returns their chain ids (for ``image prune``)."""
        from dockyard.image.unpack import remove_unused_snapshots

        return remove_unused_snapshots(self)

    # ------------------------------------------------------------------ names

    def tag(self, source: str, target: str) -> None:
        """``docker tag SOURCE TARGET``: the target gets ``:latest`` when it names no tag."""
        image = self.resolve(source)
        self.db.tags.set(_tag_name(parse_reference(target)), image.id)

    def remove(self, name_or_id: str, *, force: bool = False,
               no_prune: bool = False) -> list[tuple[str, str]]:
        """``docker rmi`` (moby's image_delete rules): by tag, untag, and delete the image when it
        was the last tag; by id, untag its tags and delete it (several tags need ``force``).
        A container using the image: Conflict, or with ``force`` untag only."""
        image, tag = self._lookup(name_or_id)
        tags = self.db.tags.tags_of(image.id)
        users = self.db.containers.uses_image(image.id)
        out: list[tuple[str, str]] = []
        if tag is not None:
            if users and not force and len(tags) == 1:
                raise Conflict(f'conflict: unable to remove repository reference "{name_or_id}" '
                               f"(must force) - container {users[0][:12]} is using its "
                               f"referenced image {image.id.short}")
            self.db.tags.remove(tag)
            out.append(("Untagged", familiar(tag)))
            if len(tags) > 1 or users:
                return out
        else:
            if users:
                if not force or not tags:
                    how = "must be forced" if tags else "cannot be forced"
                    raise Conflict(f"conflict: unable to delete {image.id.short} ({how}) - image "
                                   f"is being used by stopped container {users[0][:12]}")
                for t in tags:
                    self.db.tags.remove(t)
                    out.append(("Untagged", familiar(t)))
                return out
            if len(tags) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {image.id.short} (must be forced) - "
                               "image is referenced in multiple repositories")
        removed_tags = self.db.images.delete(image.id, untag=True)
        out.extend(("Untagged", familiar(t)) for t in removed_tags)
        out.append(("Deleted", str(image.id)))
        if not no_prune:
            from dockyard.image.unpack import image_chains, remove_snapshots

            for chain in remove_snapshots(self, image_chains(image)):
                out.append(("Deleted", chain))
        return out

    # ------------------------------------------------------------------ reading

    def list(self, *, all: bool = False, dangling: bool | None = None,
             reference: str | None = None) -> list[ImageSummary]:
        from dockyard.image.inspect import summaries

        return summaries(self, all=all, dangling=dangling, reference=reference)

    def history(self, name_or_id: str) -> list[HistoryEntry]:
        from dockyard.image.inspect import history

        return history(self, self.resolve(name_or_id))

    def inspect(self, name_or_id: str) -> dict:
        from dockyard.image.inspect import inspect_image

        return inspect_image(self, self.resolve(name_or_id))

    def mount_readonly(self, image: ImageRecord, target: str) -> None:
        """The image's rootfs, read-only, on ``target`` (unpacked first if it is not)."""
        chain = self.unpack(image)
        if not chain:
            raise InvalidArgument(f"image {image.id.short} has no layers: nothing to mount")
        specs = self.snapshotter.container_mounts(chain, None, None, readonly=True)  # type: ignore[attr-defined]
        self.snapshotter.mount(specs, target)

    def unmount(self, target: str) -> None:
        self.snapshotter.unmount(target)

    # ------------------------------------------------------------------ archives

    def load(self, stream: BinaryIO, read: Callable[[], None] | None = None) -> list[str]:
        """A docker-archive or OCI layout tar (plain or gzip): every image in it, or nothing
        (``read``: see ``load_archive``)."""
        from dockyard.image.load import load_archive

        return load_archive(self, stream, read)

    def save(self, names: Sequence[str], out: BinaryIO, *, fmt: str = "docker") -> None:
        """``docker save``: ``fmt`` "docker" (docker-archive) or "oci" (OCI image layout)."""
        from dockyard.image.save import save_archive

        save_archive(self, names, out, fmt=fmt)

    def images_for_save(self, names: Sequence[str]) -> list[tuple[ImageRecord, list[str]]]:
        """The images ``names`` select, each once, with the full tag names to write for it
        (docker: a tag saves that tag; a name alone saves every tag of the repository; an id
        saves no tag)."""
        out: dict[Digest, list[str]] = {}
        images: dict[Digest, ImageRecord] = {}
        for text in names:
            found: list[tuple[ImageRecord, str | None]] = []
            try:
                ref: Reference | None = parse_reference(text)
            except InvalidArgument:
                ref = None
            if ref is not None and ref.is_name_only() and not looks_like_id(text):
                prefix = ref.name() + ":"
                for t in self.db.tags.all():
                    if t.name.startswith(prefix):
                        image = self.db.images.get(t.image_id)
                        if image is not None:
                            found.append((image, t.name))
            if not found:
                found.append(self._lookup(text))
            for image, tag in found:
                images[image.id] = image
                tags = out.setdefault(image.id, [])
                if tag is not None and tag not in tags:
                    tags.append(tag)
        return [(images[d], tags) for d, tags in out.items()]


def normalized_tags(texts: Sequence[str]) -> list[Reference]:
    """Parse tag texts (``busybox``, ``user/x:1``) as docker does, ``:latest`` added."""
    return [parse_normalized(t) for t in texts]
