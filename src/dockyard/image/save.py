"""``save``: images into a docker-archive or an OCI image layout tar, streamed to ``out``.

docker-archive (what ``docker load`` and ``podman load`` read; docker 24/25's layout)::

    blobs/sha256/<diff hex>    each layer once, as an *uncompressed* tar (docker load wants tars)
    <config hex>.json          the config, byte for byte (its digest is the image id)
    manifest.json              [{"Config", "RepoTags", "Layers"}]
    repositories               {"name": {"tag": "<top layer hex>"}} (legacy, still written)

A compressed layer blob is decompressed into a temporary file under the store's ``tmp/`` first:
a tar header needs the member's size before its bytes, and the uncompressed size is only known at
the end. The diff id is checked on the way (it is the member's name).

OCI layout (what ``skopeo copy oci-archive:`` and containerd read; blobs as stored)::

    oci-layout                 {"imageLayoutVersion": "1.0.0"}
    index.json                 one entry per tag (or one untagged), annotated as containerd does:
                               org.opencontainers.image.ref.name = the tag,
                               io.containerd.image.name = the full name
    blobs/sha256/<hex>         configs and layers byte for byte; OCI manifests as stored, docker
                               schema 2 manifests said in OCI media types (``oci_manifest``)

Members are written with fixed times and owners, so saving the same images twice gives the same
bytes. Nothing is read whole into memory but manifests and configs.
"""

from __future__ import annotations

import json
import tarfile

from dockyard.errors import InvalidArgument
from dockyard.oci import image_spec as spec
from dockyard.oci.digest import Digest
from dockyard.oci.reference import parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import BinaryIO

    from dockyard.image.service import ImageService
    from dockyard.metadata.records import ImageRecord, LayerRecord

FORMATS = ("docker", "oci")
CHUNK = 1 << 20


class _Writer:
    """A stream-mode tar on ``out`` with deterministic headers; each path written once."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                                copybufsize=CHUNK)
        self.written: set[str] = set()

    def _info(self, path: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.size, info.type, info.mtime = size, kind, 0
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def dir(self, path: str) -> None:
        if path not in self.written:
            self.written.add(path)
            self.tar.addfile(self._info(path, 0, tarfile.DIRTYPE))

    def small(self, path: str, data: bytes) -> None:
        import io

        if path not in self.written:
            self.written.add(path)
            self.tar.addfile(self._info(path, len(data)), io.BytesIO(data))

    def stream(self, path: str, src: BinaryIO, size: int) -> None:
        if path not in self.written:
            self.written.add(path)
            self.tar.addfile(self._info(path, size), src)

    def close(self) -> None:
        self.tar.close()


def save_archive(svc: ImageService, names: Sequence[str], out: BinaryIO, *,
                 fmt: str = "docker") -> None:
    if fmt not in FORMATS:
        raise InvalidArgument(f"save: unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not names:
        raise InvalidArgument("save: no image named")
    selected = svc.images_for_save(names)
    w = _Writer(out)
    if fmt == "docker":
        _docker(svc, selected, w)
    else:
        _oci(svc, selected, w)
    w.close()


# ---------------------------------------------------------------------------- docker-archive


def _docker(svc: ImageService, selected: list[tuple[ImageRecord, list[str]]], w: _Writer) -> None:
    from dockyard.image.service import familiar

    entries = []
    repositories: dict[str, dict[str, str]] = {}
    w.dir("blobs")
    w.dir("blobs/sha256")
    for image, tags in selected:
        layers = []
        for layer in image.layers:
            path = f"blobs/sha256/{layer.diff_id.hex}"
            if path not in w.written:
                _layer_tar(svc, layer, path, w)
            layers.append(path)
        config = f"{image.id.hex}.json"
        w.small(config, svc.config_bytes(image))
        repo_tags = [familiar(t) for t in tags]
        entries.append({"Config": config, "RepoTags": repo_tags or None, "Layers": layers})
        top = image.layers[-1].diff_id.hex if image.layers else image.id.hex
        for t in tags:
            ref = parse_reference(t)
            repositories.setdefault(ref.familiar_name(), {})[ref.tag] = top
    w.small("manifest.json", json.dumps(entries, separators=(",", ":")).encode())
    if repositories:
        w.small("repositories", json.dumps(repositories, separators=(",", ":")).encode())


def _layer_tar(svc: ImageService, layer: LayerRecord, path: str, w: _Writer) -> None:
    """The layer's uncompressed tar as ``path``: the blob itself when it is one, else a
    decompressed copy in a temporary file (removed when closed, even by a crash: unlinked)."""
    import tempfile

    from dockyard.archive.compression import CHUNK as LCHUNK, LayerStream

    with svc.content.open(layer.blob_digest) as blob:
        if layer.blob_digest == layer.diff_id:
            w.stream(path, blob, svc.content.info(layer.blob_digest).size)
            return
        with tempfile.TemporaryFile(dir=svc.store.tmp) as tmp:
            stream = LayerStream(blob)
            try:
                while chunk := stream.read(LCHUNK):
                    tmp.write(chunk)
                stream.drain()
            finally:
                stream.close()
            if stream.diff_id != layer.diff_id:
                raise InvalidArgument(f"save: layer {layer.blob_digest} decompresses to "
                                      f"{stream.diff_id}, the image says {layer.diff_id}")
            size = tmp.tell()
            tmp.seek(0)
            w.stream(path, tmp, size)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- OCI layout


def _oci(svc: ImageService, selected: list[tuple[ImageRecord, list[str]]], w: _Writer) -> None:
    w.small("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    w.dir("blobs")
    w.dir("blobs/sha256")
    manifests: list[dict] = []
    for image, tags in selected:
        manifest = svc.content.read_bytes(image.manifest_digest)
        media_type = image.manifest_media_type
        for layer in image.layers:
            _blob(svc, layer.blob_digest, w)
        _blob(svc, image.id, w)
        if media_type == spec.DOCKER_MANIFEST:
            manifest, media_type = oci_manifest(manifest, image.manifest_digest), spec.OCI_MANIFEST
            w.small(f"blobs/sha256/{Digest.of_bytes(manifest).hex}", manifest)
        else:
            _blob(svc, image.manifest_digest, w)
        base = {"mediaType": media_type, "digest": str(Digest.of_bytes(manifest)),
                "size": len(manifest)}
        if not tags:
            manifests.append(base)
        for t in tags:
            ref = parse_reference(t)
            manifests.append({**base, "annotations": {
                "io.containerd.image.name": ref.string(),
                "org.opencontainers.image.ref.name": ref.tag}})
    index = {"schemaVersion": 2, "mediaType": spec.OCI_INDEX, "manifests": manifests}
    w.small("index.json", json.dumps(index, separators=(",", ":")).encode())


_OCI_LAYER_TYPES = {
    spec.DOCKER_LAYER: spec.OCI_LAYER, spec.DOCKER_LAYER_GZIP: spec.OCI_LAYER_GZIP,
    spec.DOCKER_LAYER_ZSTD: spec.OCI_LAYER_ZSTD, spec.DOCKER_FOREIGN_LAYER: spec.OCI_LAYER_NONDIST,
    spec.DOCKER_FOREIGN_LAYER_GZIP: spec.OCI_LAYER_NONDIST_GZIP,
}


def oci_manifest(data: bytes, digest: Digest) -> bytes:
    """A docker schema 2 manifest said in OCI media types (same config bytes, same layer blobs).

    Why: readers of OCI layouts look entries up by ref.name among OCI manifests and indexes only
    (containers/image skips any other media type), so a layout listing docker manifests is one
    skopeo and podman cannot read. The image id (the config's digest) does not change."""
    from dockyard.record import replace

    m = spec.parse_manifest(data, expected=digest, media_type=spec.DOCKER_MANIFEST)
    config = replace(m.config, media_type=spec.OCI_CONFIG)
    layers = tuple(replace(la, media_type=_OCI_LAYER_TYPES.get(la.media_type, la.media_type))
                   for la in m.layers)
    return replace(m, media_type=spec.OCI_MANIFEST, config=config, layers=layers).to_json()


def _blob(svc: ImageService, digest: Digest, w: _Writer) -> None:
    path = f"blobs/{digest.algorithm}/{digest.hex}"
    if path in w.written:
        return
    with svc.content.open(digest) as f:
        w.stream(path, f, svc.content.info(digest).size)
