"""``load``: images from a docker-archive or an OCI image layout tar (plain or gzip), streamed.

The tar is read once, front to back, whatever the order of its members (``manifest.json`` is
often last). Small metadata (``manifest.json``, ``index.json``, ``oci-layout``, ``repositories``,
``*.json``) is kept in memory, bounded; every other member goes straight into a content-store
writer keyed by its path, hashed on the way, never held in memory. Members named
``blobs/<alg>/<hex>`` are written with that digest expected, so a blob whose bytes do not match
its name fails at its commit. Once the tar ends, the names are resolved:

- docker-archive (``manifest.json``: ``[{Config, RepoTags, Layers}]``): layers are
  ``<id>/layer.tar`` (docker < 25, repeated layers as symlinks), ``<diff hex>.tar`` (podman) or
  ``blobs/sha256/<hex>`` (docker 25+). The archive has no manifest, so one is built (docker
  schema 2, layer media type by the compression found), unless the archive also holds the OCI
  manifest of that config (docker 25+ writes both): then that one is kept.
- OCI layout (``oci-layout``, ``index.json``): each entry of the index is an image; a nested
  index (multi-platform) resolves to this machine's platform (bounded depth). Names come from
  ``io.containerd.image.name`` (the full name, containerd and docker 25+), else from
  ``org.opencontainers.image.ref.name`` when it is a reference (podman writes
  ``docker.io/library/x:tag``, skopeo ``name:tag`` as given); a ref.name that is a tag alone
  (``latest``: skopeo ``oci-archive:x.tar:latest``, docker's tag annotation) names nothing by
  itself: the image loads untagged.

Everything happens under one lease: images are checked and unpacked first, then recorded in one
transaction, so any error records nothing (the blobs stay for GC; snapshots made are removed).
"""

from __future__ import annotations

import contextlib
import json
import secrets

from dockyard.archive.compression import NONE, detect_compression
from dockyard.errors import DockyardError, InvalidArgument, NotFound
from dockyard.image.load_input import MemberData, open_input, plain_file
from dockyard.image.staging import Stager
from dockyard.oci import image_spec as spec
from dockyard.oci.digest import Digest
from dockyard.oci.reference import Reference, parse_normalized, parse_reference
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import tarfile
    from collections.abc import Callable
    from typing import BinaryIO

    from dockyard.image.service import ImageService, LayerBlob, Prepared
    from dockyard.image.staging import Feed

CHUNK = 1 << 20
SMALL_LIMIT = spec.MAX_DOCUMENT_SIZE  # one metadata member in memory
SPOOL_LIMIT = 64 << 20  # all of them together
MAX_MEMBERS = 100_000
MAX_LINK_HOPS = 16
MAX_INDEX_DEPTH = 4
_META_NAMES = frozenset({"manifest.json", "index.json", "oci-layout", "repositories", "json",
                         "VERSION"})
_LAYER_TYPE = {NONE: spec.DOCKER_LAYER, "gzip": spec.DOCKER_LAYER_GZIP,
               "zstd": spec.DOCKER_LAYER_ZSTD}
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"


def _fail(msg: str) -> InvalidArgument:
    return InvalidArgument(f"load: {msg}")


class Blob(Record):
    """A member of the archive now in the content store."""

    digest: Digest
    size: int
    compression: str  # of its first bytes: "gzip", "zstd", "none", ...


class Image(Record):
    """One image found in the archive, ready for ``ImageService.prepare``."""

    manifest: bytes
    media_type: str
    config: bytes
    layers: tuple[LayerBlob, ...]
    tags: tuple[Reference, ...]


# ---------------------------------------------------------------------------- names


def clean_path(name: str, what: str) -> str:
    """A member name or a path the archive's JSON names, relative to the archive root.

    ``./`` and empty components vanish; an absolute path or ``..`` anywhere is refused: such a
    name was made to reach outside the archive (tar tools would write it outside the target)."""
    if not isinstance(name, str) or not name or "\x00" in name or len(name) > 4096:
        raise _fail(f"{what} {name!r}: not a valid path")
    if name.startswith("/"):
        raise _fail(f"{what} {name!r} is an absolute path: it points outside the archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _fail(f"{what} {name!r} contains '..': it points outside the archive")
    return "/".join(parts)


def _digest_of_path(path: str) -> Digest | None:
    """``blobs/sha256/<hex>`` -> the digest its name promises (None for other paths)."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "blobs":
        return None
    try:
        return Digest.parse(f"{parts[1]}:{parts[2]}")
    except InvalidArgument:
        return None


def _progress(feed: Feed | None, n: int) -> None:
    if feed is not None:
        feed.wrote(n)


def _may_be_layer(head: bytes, compression: str) -> bool:
    """Worth extracting before the manifest says what it is: compressed, or a tar (ustar or GNU
    magic in its first header); anything else is unpacked, if it is a layer, the ordinary way."""
    return compression in ("gzip", "zstd") or (compression == NONE and head[257:262] == b"ustar")


def _is_meta(path: str, size: int) -> bool:
    base = path.rsplit("/", 1)[-1]
    return size <= SMALL_LIMIT and _digest_of_path(path) is None and (
        base in _META_NAMES or base.endswith(".json"))


# ---------------------------------------------------------------------------- the archive


class Archive:
    """What the tar held: small members by path, blobs (in the content store) by path, links."""

    def __init__(self, svc: ImageService, lease: str, stager: Stager | None = None) -> None:
        self.svc = svc
        self.lease = lease
        self.stager = stager  # extracts layer blobs as soon as they are committed
        self.small: dict[str, bytes] = {}
        self.blobs: dict[str, Blob] = {}
        self.links: dict[str, str] = {}  # path -> target path (archive-relative)
        self._spooled = 0
        self._ref = f"load-{secrets.token_hex(6)}"
        self._n = 0

    # -- reading the tar
    def read(self, stream: BinaryIO) -> None:
        from dockyard.archive.compression import Limits
        from dockyard.archive.reader import Forward, members, open_tar

        limits = Limits(max_entries=MAX_MEMBERS)
        fd = plain_file(stream)
        src, dec = (stream, None) if fd is not None else open_input(stream)
        fwd = None if fd is not None else Forward(src)
        try:
            tar = open_tar(src if fwd is None else fwd, limits, seekable=True)  # type: ignore[arg-type]
            try:
                for m in members(tar, limits):
                    self._member(m, MemberData(fd, fwd, m.offset_data, m.size, m.name))
            finally:
                tar.close()
        except InvalidArgument as e:
            msg = str(e)
            if msg.startswith("load:"):
                raise
            msg = msg.replace("layer: corrupt tar stream", "the archive is truncated or corrupt: "
                              "its tar stream breaks", 1)
            raise _fail(msg.replace("layer: ", "archive: ", 1)) from None
        except DockyardError:
            raise  # a failing disk or database: not the archive's fault
        except (EOFError, OSError, ValueError) as e:
            raise _fail(f"the archive is truncated or corrupt: {e}") from None
        except Exception as e:  # zlib/isal/zstd errors have their own classes
            if type(e).__module__.split(".")[0] in ("zlib", "isal", "zstandard", "lzma", "_lzma"):
                raise _fail(f"the archive is truncated or corrupt: {e}") from None
            raise
        finally:
            if dec is not None:
                dec.close()  # type: ignore[attr-defined]
        if not self.small and not self.blobs:
            raise _fail("the archive is empty")

    def _member(self, m: tarfile.TarInfo, f: MemberData) -> None:
        path = clean_path(m.name, "archive member")
        if m.isdir() or not path:
            return
        if path in self.small or path in self.blobs or path in self.links:
            raise _fail(f"archive member {path!r} appears twice")
        if m.issym():
            base = path.rsplit("/", 1)[0] if "/" in path else ""
            target = m.linkname if m.linkname.startswith("/") else f"{base}/{m.linkname}"
            self.links[path] = self._normalize_link(target, path)
            return
        if m.islnk():
            self.links[path] = clean_path(m.linkname, f"hard link {path!r} to")
            return
        if not m.isreg():
            return  # devices, fifos: nothing an image archive needs
        if _is_meta(path, m.size):
            self._spooled += m.size
            if self._spooled > SPOOL_LIMIT:
                raise _fail(f"more than {SPOOL_LIMIT} bytes of metadata members")
            data = f.read(m.size)
            if len(data) != m.size:
                raise _fail(f"the archive is truncated inside {path!r}")
            self.small[path] = data
            return
        self.blobs[path] = self._ingest(f, m.size, _digest_of_path(path), path)

    def _normalize_link(self, target: str, path: str) -> str:
        if target.startswith("/"):
            raise _fail(f"symlink {path!r} points outside the archive ({target!r})")
        parts: list[str] = []
        for p in target.split("/"):
            if p in ("", "."):
                continue
            if p == "..":
                if not parts:
                    raise _fail(f"symlink {path!r} points outside the archive")
                parts.pop()
            else:
                parts.append(p)
        return "/".join(parts)

    def _ingest(self, src: BinaryIO, size: int, expected: Digest | None, path: str) -> Blob:
        """Copy one member into the content store (under the lease); its digest and compression."""
        svc = self.svc
        head = src.read(min(size, 512))
        compression = detect_compression(head[:6])
        if expected is not None:
            svc.protect(self.lease, expected)
            if svc.content.exists(expected) and svc.content.info(expected).size == size:
                return Blob(expected, size, compression)  # the tar skips the rest of the member
        self._n += 1
        ref = f"{self._ref}-{self._n}"
        feed = None
        try:
            with svc.content.writer(ref, expected=expected, size=size) as w:
                if self.stager is not None and w.offset == 0 and _may_be_layer(head, compression):
                    # extracted on a worker while it is written here (image/staging.py)
                    feed = self.stager.start(svc.store.ingest_data(ref), size)
                w.write(head)
                _progress(feed, len(head))
                while buf := src.read(CHUNK):
                    w.write(buf)
                    _progress(feed, len(buf))
                digest = w.commit(on_digest=lambda d: svc.protect(self.lease, d))
        except BaseException as e:
            if feed is not None:
                self.stager.abandon(feed)  # type: ignore[union-attr]
            if isinstance(e, InvalidArgument):
                raise _fail(f"archive member {path!r}: {e}") from None
            raise
        if feed is not None:
            self.stager.committed(feed, digest)  # type: ignore[union-attr]
        return Blob(digest, size, compression)

    # -- resolving names
    def resolve(self, name: str, what: str) -> str:
        """The member a path of the archive's JSON names (links followed); must exist."""
        path = clean_path(name, what)
        for _ in range(MAX_LINK_HOPS):
            if path in self.small or path in self.blobs:
                return path
            if path not in self.links:
                raise _fail(f"{what} {name!r} is missing from the archive")
            path = self.links[path]
        raise _fail(f"{what} {name!r}: too many levels of links")

    def blob(self, path: str) -> Blob:
        """The member at ``path`` as a content-store blob (a small member is written now)."""
        if path not in self.blobs:
            data = self.small[path]
            d = self.svc.write_blob(self.lease, data)
            self.blobs[path] = Blob(d, len(data), detect_compression(data[:6]))
        return self.blobs[path]

    def data(self, path: str) -> bytes:
        if path in self.small:
            return self.small[path]
        return self.svc.content.read_bytes(self.blobs[path].digest)

    def blob_data(self, digest: Digest, what: str) -> bytes:
        """A small blob of an OCI layout (index, manifest, config), which must be in it."""
        path = f"blobs/{digest.algorithm}/{digest.hex}"
        if path not in self.blobs and path not in self.small and path not in self.links:
            raise _fail(f"{what} {digest} is missing from the archive")
        return self.data(self.resolve(path, what))


# ---------------------------------------------------------------------------- formats


def _json(data: bytes, what: str) -> object:
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as e:
        raise _fail(f"{what}: invalid JSON: {e}") from None


def docker_images(arc: Archive) -> list[Image]:
    """The images of ``manifest.json``."""
    from dockyard.image.service import LayerBlob
    from dockyard.oci.image_config import parse_image_config

    entries = _json(arc.small["manifest.json"], "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise _fail("manifest.json: expected a non-empty list of images")
    known = _oci_manifests_by_config(arc) if "index.json" in arc.small else {}
    out = []
    for i, e in enumerate(entries):
        what = f"manifest.json[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("Config"), str) \
                or not isinstance(e.get("Layers"), list):
            raise _fail(f"{what}: expected an object with Config and Layers")
        config = arc.data(arc.resolve(e["Config"], f"{what}.Config"))
        cfg_digest = Digest.of_bytes(config)
        cfg = parse_image_config(config)
        layer_paths = [arc.resolve(p, f"{what}.Layers[{j}]") if isinstance(p, str)
                       else clean_path(p, f"{what}.Layers[{j}]") for j, p in enumerate(e["Layers"])]
        if len(layer_paths) != len(cfg.rootfs.diff_ids):
            raise _fail(f"{what}: {len(layer_paths)} layers but the config lists "
                        f"{len(cfg.rootfs.diff_ids)} diff_ids")
        blobs = [arc.blob(p) for p in layer_paths]
        tags = []
        for t in e.get("RepoTags") or ():
            if not isinstance(t, str):
                raise _fail(f"{what}.RepoTags: {t!r} is not a string")
            tags.append(parse_normalized(t))
        kept = known.get(cfg_digest)
        if kept is not None and [d.digest for d in kept[1].layers] == [b.digest for b in blobs]:
            manifest, m = kept
            layers = tuple(LayerBlob(d.digest, d.size, d.media_type) for d in m.layers)
            out.append(Image(manifest, m.media_type, config, layers, tuple(tags)))
            continue
        arc.svc.write_blob(arc.lease, config)
        layers = tuple(LayerBlob(b.digest, b.size, _LAYER_TYPE.get(b.compression, spec.DOCKER_LAYER))
                       for b in blobs)
        manifest = build_manifest(config, layers)
        arc.svc.write_blob(arc.lease, manifest)
        out.append(Image(manifest, spec.DOCKER_MANIFEST, config, layers, tuple(tags)))
    return out


def build_manifest(config: bytes, layers: tuple[LayerBlob, ...]) -> bytes:
    """A docker schema 2 manifest for a config and its layers, in docker's key order (stable
    bytes: the same image loaded twice gets the same manifest digest)."""
    doc = {"schemaVersion": 2, "mediaType": spec.DOCKER_MANIFEST,
           "config": {"mediaType": spec.DOCKER_CONFIG, "size": len(config),
                      "digest": str(Digest.of_bytes(config))},
           "layers": [{"mediaType": la.media_type, "size": la.size, "digest": str(la.digest)}
                      for la in layers]}
    return json.dumps(doc, separators=(",", ":")).encode()


def _oci_manifests_by_config(arc: Archive) -> dict[Digest, tuple[bytes, spec.Manifest]]:
    """Docker 25+ writes an OCI index beside manifest.json: its manifests, by config digest."""
    out: dict[Digest, tuple[bytes, spec.Manifest]] = {}
    try:
        index = spec.parse_index(arc.small["index.json"])
    except InvalidArgument:
        return out
    for desc in index.manifests:
        if desc.media_type not in spec.MANIFEST_TYPES:
            continue
        try:
            data = arc.blob_data(desc.digest, "manifest")
            m = spec.parse_manifest(data, expected=desc.digest, media_type=desc.media_type)
        except (InvalidArgument, NotFound):
            continue
        out[m.config.digest] = (data, m)
    return out


def names_of(annotations: dict[str, str]) -> list[Reference]:
    """The name an index entry gives its image (see the module docstring for the rules)."""
    for key in (NAME_ANNOTATION, REF_ANNOTATION):
        text = annotations.get(key, "")
        if not text or (key == REF_ANNOTATION and ":" not in text and "/" not in text):
            continue  # a tag alone names nothing
        try:
            ref = parse_reference(text)
        except InvalidArgument:
            continue
        if ref.digest is None or ref.tag:
            return [ref.with_default_tag().with_digest(None)]
    return []


def oci_images(arc: Archive) -> list[Image]:
    """The images of ``index.json`` (one per manifest; entries naming the same one merge)."""
    layout = arc.small.get("oci-layout")
    if layout is not None:
        doc = _json(layout, "oci-layout")
        version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise _fail(f"oci-layout: unsupported imageLayoutVersion {version!r}")
    try:
        index = spec.parse_index(arc.small["index.json"])
    except InvalidArgument as e:
        raise _fail(f"index.json: {e}") from None
    found: dict[Digest, tuple[spec.Descriptor, list[Reference]]] = {}
    skipped: list[str] = []
    for desc in index.manifests:
        chosen = _select(arc, desc, 0, skipped)
        if chosen is None:
            continue
        entry = found.setdefault(chosen.digest, (chosen, []))
        for ref in names_of(dict(desc.annotations)):
            if ref not in entry[1]:
                entry[1].append(ref)
    if not found:
        why = f" (skipped: {', '.join(skipped)})" if skipped else ""
        raise _fail(f"index.json lists no image for this platform{why}")
    return [_oci_image(arc, desc, tuple(refs)) for desc, refs in found.values()]


def _select(arc: Archive, desc: spec.Descriptor, depth: int, skipped: list[str]
            ) -> spec.Descriptor | None:
    """The image manifest an index entry leads to on this machine (None: not for it)."""
    from dockyard.oci.platform import current_platform, platform_matches

    if desc.media_type in spec.INDEX_TYPES:
        if depth >= MAX_INDEX_DEPTH:
            raise _fail(f"index {desc.digest}: indexes nested more than {MAX_INDEX_DEPTH} deep")
        try:
            sub = spec.parse_index(arc.blob_data(desc.digest, "index"), expected=desc.digest,
                                   media_type=desc.media_type)
            chosen = spec.select_manifest(sub)
        except NotFound as e:
            skipped.append(str(e))
            return None
        except InvalidArgument as e:
            raise _fail(f"index {desc.digest}: {e}") from None
        return _select(arc, chosen, depth + 1, skipped)
    if desc.media_type not in spec.MANIFEST_TYPES:
        skipped.append(f"{desc.digest} ({desc.media_type})")
        return None
    if desc.platform is not None and not platform_matches(desc.platform, current_platform()):
        skipped.append(f"{desc.digest} ({desc.platform})")
        return None
    return desc


def _oci_image(arc: Archive, desc: spec.Descriptor, tags: tuple[Reference, ...]) -> Image:
    from dockyard.image.service import LayerBlob

    try:
        data = arc.blob_data(desc.digest, "manifest")
        m = spec.parse_manifest(data, expected=desc.digest, media_type=desc.media_type)
        config = arc.blob_data(m.config.digest, "config")
    except InvalidArgument as e:
        msg = str(e)
        raise (e if msg.startswith("load:") else _fail(f"manifest {desc.digest}: {msg}")) from None
    layers = []
    for i, la in enumerate(m.layers):
        path = f"blobs/{la.digest.algorithm}/{la.digest.hex}"
        if path in arc.blobs or path in arc.links:
            blob = arc.blob(arc.resolve(path, f"layer {i}"))
        elif arc.svc.content.exists(la.digest):  # already here from an earlier load or pull
            arc.svc.protect(arc.lease, la.digest)
            info = arc.svc.content.info(la.digest)
            blob = Blob(la.digest, info.size, "")
        else:
            raise _fail(f"manifest {desc.digest}: layer {i} ({la.digest}) is missing from the "
                        "archive")
        if blob.size != la.size:
            raise _fail(f"manifest {desc.digest}: layer {i} ({la.digest}) has {blob.size} bytes, "
                        f"the manifest says {la.size}")
        layers.append(LayerBlob(la.digest, la.size, la.media_type))
    return Image(data, m.media_type, config, tuple(layers), tags)


# ---------------------------------------------------------------------------- the whole load


def load_archive(svc: ImageService, stream: BinaryIO,
                 read: Callable[[], None] | None = None) -> list[str]:
    """Load every image of the archive, or none; docker's output lines. ``read`` is called once
    the archive has been read to its end: the daemon closes its spool of the upload there, so the
    final syncfs does not write the spool's pages back (an unlinked file's dirty pages are dropped
    when it is closed; ~0.2 s for a 215 MB archive)."""
    from dockyard.image.service import familiar

    with svc.lease() as lease, _stager(svc) as stager:
        arc = Archive(svc, lease, stager)
        arc.read(stream)
        if read is not None:
            read()
        if "manifest.json" in arc.small:
            images = docker_images(arc)
        elif "index.json" in arc.small:
            images = oci_images(arc)
        else:
            raise _fail("neither a docker archive (manifest.json) nor an OCI image layout "
                        "(index.json)")
        prepared: list[Prepared] = []
        staged: list[list[str]] = []  # chains unpacked from staged trees, per image
        try:
            for image in images:
                try:
                    if stager is not None:
                        staged.append(_unpack_staged(svc, image, lease, stager))
                    prepared.append(svc.prepare(manifest=image.manifest,
                                                manifest_media_type=image.media_type,
                                                config=image.config, layers=image.layers,
                                                tags=image.tags, lease=lease))
                except InvalidArgument as e:
                    what = ", ".join(familiar(t.string()) for t in image.tags) or \
                        str(Digest.of_bytes(image.config))
                    raise _fail(f"image {what}: {e}") from None
            moved = svc.record(prepared, lease)
        except BaseException:
            svc.discard(prepared, lease)
            _remove_staged(svc, staged, lease)
            raise
    lines = [f"The image {familiar(name)} already exists, renaming the old one with ID {old} "
             "to empty string" for name, old in moved]
    for p in prepared:
        if p.tags:
            lines.extend(f"Loaded image: {familiar(t)}" for t in p.tags)
        else:
            lines.append(f"Loaded image ID: {p.record.id}")
    return lines


def _stager(svc: ImageService) -> contextlib.AbstractContextManager[Stager | None]:
    """Layers extracted while the archive is read, when the snapshotter's layers are
    independent (overlay); else nothing (vfs copies the parent first: unpacked after the read)."""
    if not svc.snapshotter.independent_layers:
        return contextlib.nullcontext()
    return Stager(svc)


def _unpack_staged(svc: ImageService, image: Image, lease: str, stager: Stager) -> list[str]:
    """Unpack the image's layers, adopting the trees staged while reading, before
    ``svc.prepare`` (which then finds every snapshot complete). The cheap checks of ``prepare``
    come first, so a bad manifest or config is refused before any snapshot is made. Returns the
    chain ids made (bottom first), to remove if the load fails later."""
    from dockyard.image.unpack import unpack_layers
    from dockyard.oci.image_config import parse_image_config, validate_image

    m = spec.parse_manifest(image.manifest, media_type=image.media_type)
    cfg = parse_image_config(image.config, expected=m.config.digest,
                             media_type=m.config.media_type)
    validate_image(m, cfg)
    if [(la.digest, la.size) for la in image.layers] != [(d.digest, d.size) for d in m.layers]:
        return []  # prepare refuses it
    for la in image.layers:
        svc.protect(lease, la.digest)
        if not svc.content.exists(la.digest) or svc.content.info(la.digest).size != la.size:
            return []  # prepare refuses it
    unpacked = unpack_layers(svc, [la.digest for la in image.layers], cfg.rootfs.diff_ids,
                             lease=lease, staged=stager.take)
    return [u.chain_id for u in unpacked if u.new]


def _remove_staged(svc: ImageService, staged: list[list[str]], lease: str) -> None:
    from dockyard.image.unpack import remove_snapshots

    for chains in reversed(staged):
        remove_snapshots(svc, chains, own_lease=lease)
