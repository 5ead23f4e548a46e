"""OCI image-spec and Docker schema 2 formats: media types, descriptors, manifests, indexes,
platforms. Pure: bytes in, typed records out (image configs are in ``image_config``).

The parsers are the trust boundary of a pull (security checklist items 1-9). Every parser:

1. refuses more than ``MAX_DOCUMENT_SIZE`` (4 MiB) bytes, before anything else;
2. verifies the digest over the exact received bytes when one is expected, *before* parsing;
3. decodes strict UTF-8 JSON: one object, no trailing data, no duplicate keys, no NaN, bounded
   nesting (duplicate keys are how two parsers get to disagree about one document);
4. checks media types: the type claimed by the transport (``media_type=``, a Content-Type or the
   parent descriptor's) must agree with the document's own ``mediaType``; a manifest's config
   must be a config type and its layers layer types; schema 1 is refused;
5. checks every descriptor: a valid digest, a non-negative size, http(s) ``urls`` only, and an
   embedded ``data`` field that matches both.

Errors are ``InvalidArgument("<document>: <field path>: <what is wrong>")``. Records serialize
back with ``to_json()``: canonical JSON (sorted keys, no whitespace) in the spec's key names, so
that ``parse(x.to_json()) == x``.
"""

from __future__ import annotations

import base64
import json

from dockyard import errors
from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest
from dockyard.oci.platform import (  # noqa: F401 - re-exported: part of the image spec's API
    Platform, variant_rank, current_platform, normalize_platform, parse_platform, platform_from_machine,
    platform_matches)
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

MAX_DOCUMENT_SIZE = 4 * 1024 * 1024

# ---------------------------------------------------------------- media types

OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"  # uncompressed (containerd's name)
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED})
# Layers whose blob may live outside the registry (``urls``); pushing them is restricted.
FOREIGN_LAYER_TYPES = frozenset({OCI_LAYER_NONDIST, OCI_LAYER_NONDIST_GZIP, OCI_LAYER_NONDIST_ZSTD,
                                 DOCKER_FOREIGN_LAYER, DOCKER_FOREIGN_LAYER_GZIP})
_COMPRESSION = {
    OCI_LAYER: "", OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: "", OCI_LAYER_NONDIST_GZIP: "gzip", OCI_LAYER_NONDIST_ZSTD: "zstd",
    DOCKER_LAYER: "", DOCKER_LAYER_GZIP: "gzip", DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_FOREIGN_LAYER: "", DOCKER_FOREIGN_LAYER_GZIP: "gzip",
}
LAYER_TYPES = frozenset(_COMPRESSION)


def is_foreign_layer(media_type: str) -> bool:
    return media_type in FOREIGN_LAYER_TYPES


def layer_compression(media_type: str) -> str:
    """``"gzip"``, ``"zstd"`` or ``""`` (plain tar) for a layer media type."""
    try:
        return _COMPRESSION[media_type]
    except KeyError:
        raise InvalidArgument(f"{media_type!r} is not a layer media type") from None


SCHEMA1_MESSAGE = ("Docker image manifest schema 1 is not supported: re-push the image with a "
                   "current client (docker, podman, skopeo) to convert it to schema 2 or OCI")

# ---------------------------------------------------------------- decoding helpers


def _fail(path: str, msg: str) -> InvalidArgument:
    doc, _, field = path.partition(".")
    return InvalidArgument(f"{doc}: {field or '(top level)'}: {msg}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_document(data: bytes, doc: str, expected: Digest | None = None,
                  limit: int = MAX_DOCUMENT_SIZE) -> dict:
    """Size check, digest check, then strict JSON decoding of one object (in that order)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgument(f"{doc}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > limit:
        raise InvalidArgument(f"{doc}: {len(data)} bytes is more than the limit of {limit} bytes")
    if expected is not None:
        h = expected.hasher()
        h.update(data)
        actual = Digest.of_hasher(h)
        if actual != expected:
            raise InvalidArgument(f"{doc}: digest mismatch: expected {expected}, got {actual}")
    try:
        d = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                       parse_constant=_no_constant)
    except RecursionError:
        raise InvalidArgument(f"{doc}: invalid JSON: nested too deeply") from None
    except ValueError as e:  # includes UnicodeDecodeError and json.JSONDecodeError
        raise InvalidArgument(f"{doc}: invalid JSON: {e}") from None
    if not isinstance(d, dict):
        raise InvalidArgument(f"{doc}: expected a JSON object, got {type(d).__name__}")
    return d


def _obj(v: Any, path: str) -> dict:
    if not isinstance(v, dict):
        raise _fail(path, f"expected an object, got {type(v).__name__}")
    return v


def _get(d: dict, key: str, kind: type, path: str, default: Any = None) -> Any:
    v = d.get(key)
    if v is None:
        return default
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(f"{path}.{key}", f"expected an integer, got {v!r}")
    elif not isinstance(v, kind):
        raise _fail(f"{path}.{key}", f"expected {kind.__name__}, got {type(v).__name__}")
    return v


def _strs(d: dict, key: str, path: str) -> tuple[str, ...] | None:
    """A list of strings; None when absent or null (some fields distinguish null from [])."""
    v = _get(d, key, list, path)
    if v is None:
        return None
    for i, s in enumerate(v):
        if not isinstance(s, str):
            raise _fail(f"{path}.{key}[{i}]", f"expected a string, got {s!r}")
    return tuple(v)


def _or_empty(d: dict, key: str) -> Any:
    """The value, or {} when absent or null (but not when ``[]``, ``""`` or 0: those are errors)."""
    v = d.get(key)
    return {} if v is None else v


def _str_map(d: dict, key: str, path: str) -> tuple[tuple[str, str], ...]:
    """A string-to-string map as key-sorted pairs (sorted, so that round trips compare equal)."""
    v = _obj(_or_empty(d, key), f"{path}.{key}")
    for k, x in v.items():
        if not isinstance(x, str):
            raise _fail(f"{path}.{key}.{k}", f"expected a string, got {x!r}")
    return tuple(sorted(v.items()))


_MEDIA_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz" "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789" "!#$&-^_.+")


def _check_media_type(mt: str, path: str) -> str:
    """RFC 6838 shape: ``type/subtype`` of restricted characters (``+suffix`` included)."""
    kind, slash, sub = mt.partition("/")
    if not (slash and kind and sub and len(mt) <= 255 and _MEDIA_TYPE_CHARS.issuperset(kind)
            and _MEDIA_TYPE_CHARS.issuperset(sub)):
        raise _fail(path, f"invalid media type {mt!r}")
    return mt


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


# ---------------------------------------------------------------- descriptors


class Descriptor(Record):
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    platform: Platform | None = None
    artifact_type: str = ""
    data: bytes | None = None

    def annotation(self, key: str, default: str = "") -> str:
        return dict(self.annotations).get(key, default)

    def to_obj(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_obj()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        return out

    def to_json(self) -> bytes:
        return canonical_json(self.to_obj())


def parse_platform_obj(d: dict, path: str) -> Platform:
    os_name = _get(d, "os", str, path, "")
    arch = _get(d, "architecture", str, path, "")
    if not os_name or not arch:
        raise _fail(path, "os and architecture are required")
    return Platform(os_name, arch, _get(d, "variant", str, path, ""),
                    _get(d, "os.version", str, path, ""), _strs(d, "os.features", path) or ())


def parse_descriptor(d: Any, path: str) -> Descriptor:
    d = _obj(d, path)
    mt = _get(d, "mediaType", str, path, "")
    if not mt:
        raise _fail(f"{path}.mediaType", "is required")
    _check_media_type(mt, f"{path}.mediaType")
    digest_text = _get(d, "digest", str, path, "")
    if not digest_text:
        raise _fail(f"{path}.digest", "is required")
    try:
        digest = Digest.parse(digest_text)
    except InvalidArgument as e:
        raise _fail(f"{path}.digest", str(e)) from None
    size = _get(d, "size", int, path)
    if size is None or not 0 <= size < 2**63:
        raise _fail(f"{path}.size", f"a non-negative 64-bit size is required, got {size!r}")
    urls = _strs(d, "urls", path) or ()
    for i, u in enumerate(urls):
        if not u.lower().startswith(("https://", "http://")):
            raise _fail(f"{path}.urls[{i}]", f"only http and https URLs are allowed, got {u!r}")
    platform = None
    if d.get("platform") is not None:
        platform = parse_platform_obj(_obj(d["platform"], f"{path}.platform"), f"{path}.platform")
    artifact_type = _get(d, "artifactType", str, path, "")
    if artifact_type:
        _check_media_type(artifact_type, f"{path}.artifactType")
    data = None
    if d.get("data") is not None:
        try:
            data = base64.b64decode(_get(d, "data", str, path), validate=True)
        except ValueError:
            raise _fail(f"{path}.data", "is not valid base64") from None
        if len(data) != size:
            raise _fail(f"{path}.data", f"has {len(data)} bytes but size says {size}")
        actual = Digest.of_bytes(data, digest.algorithm)
        if actual != digest:
            raise _fail(f"{path}.data",
                        f"does not match the digest: expected {digest}, got {actual}")
    return Descriptor(mt, digest, size, urls, _str_map(d, "annotations", path), platform,
                      artifact_type, data)


# ---------------------------------------------------------------- manifest and index


def _with_extras(out: dict, doc: Manifest | Index) -> dict:
    """The optional fields a manifest and an index share."""
    if doc.annotations:
        out["annotations"] = dict(doc.annotations)
    if doc.subject is not None:
        out["subject"] = doc.subject.to_obj()
    if doc.artifact_type:
        out["artifactType"] = doc.artifact_type
    return out


class Manifest(Record):
    schema_version: int
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    subject: Descriptor | None = None
    artifact_type: str = ""

    def to_obj(self) -> dict:
        out: dict = {"schemaVersion": self.schema_version, "mediaType": self.media_type,
                     "config": self.config.to_obj(), "layers": [x.to_obj() for x in self.layers]}
        return _with_extras(out, self)

    def to_json(self) -> bytes:
        return canonical_json(self.to_obj())


class Index(Record):
    schema_version: int
    media_type: str
    manifests: tuple[Descriptor, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    subject: Descriptor | None = None
    artifact_type: str = ""

    def to_obj(self) -> dict:
        out: dict = {"schemaVersion": self.schema_version, "mediaType": self.media_type,
                     "manifests": [x.to_obj() for x in self.manifests]}
        return _with_extras(out, self)

    def to_json(self) -> bytes:
        return canonical_json(self.to_obj())


# Content-Types some registries send for any document: they claim nothing.
_GENERIC_TYPES = frozenset({"application/json", "text/plain", "application/octet-stream"})


def _claimed(media_type: str | None) -> str:
    """The transport's media type without parameters (``; charset=utf-8``); "" if generic."""
    mt = (media_type or "").split(";", 1)[0].strip()
    return "" if mt in _GENERIC_TYPES else mt


def _document_type(d: dict, claimed: str, wanted: frozenset[str], default: str, doc: str) -> str:
    body = _get(d, "mediaType", str, doc, "")
    if claimed in SCHEMA1_TYPES or body in SCHEMA1_TYPES or d.get("schemaVersion") == 1:
        raise InvalidArgument(f"{doc}: {SCHEMA1_MESSAGE}")
    if claimed and body and claimed != body:
        raise _fail(f"{doc}.mediaType",
                    f"the document says {body!r} but it was served as {claimed!r}")
    mt = body or claimed or default
    if mt not in wanted:
        want, article = " or ".join(sorted(wanted)), "an" if doc == "index" else "a"
        raise _fail(f"{doc}.mediaType",
                    f"{mt!r} is not {article} {doc} media type (expected {want})")
    version = _get(d, "schemaVersion", int, doc)
    if version != 2:
        raise _fail(f"{doc}.schemaVersion", f"must be 2, got {version!r}")
    return mt


def _extras(d: dict, doc: str) -> tuple[tuple[tuple[str, str], ...], Descriptor | None, str]:
    """annotations, subject and artifactType: the optional fields of a manifest and an index."""
    subject = None
    if d.get("subject") is not None:
        subject = parse_descriptor(d["subject"], f"{doc}.subject")
    artifact_type = _get(d, "artifactType", str, doc, "")
    if artifact_type:
        _check_media_type(artifact_type, f"{doc}.artifactType")
    return _str_map(d, "annotations", doc), subject, artifact_type


def _manifest_from(d: dict, claimed: str, artifacts: bool) -> Manifest:
    doc = "manifest"
    mt = _document_type(d, claimed, MANIFEST_TYPES, OCI_MANIFEST, doc)
    if "manifests" in d:
        raise _fail(f"{doc}.manifests", "a manifest has no manifests field (is this an index?)")
    if d.get("config") is None:
        raise _fail(f"{doc}.config", "is required")
    config = parse_descriptor(d["config"], f"{doc}.config")
    if not artifacts and config.media_type not in CONFIG_TYPES:
        raise _fail(f"{doc}.config.mediaType",
                    f"{config.media_type!r} is not an image config media type")
    if d.get("layers") is None and not artifacts:
        raise _fail(f"{doc}.layers", "is required")
    layers = []
    for i, x in enumerate(_get(d, "layers", list, doc, [])):
        layer = parse_descriptor(x, f"{doc}.layers[{i}]")
        if not artifacts and layer.media_type not in LAYER_TYPES:
            why = ("is an image config, not a layer" if layer.media_type in CONFIG_TYPES
                   else "is not a known layer media type (tar, tar+gzip, tar+zstd, or a "
                        "foreign/nondistributable layer)")
            raise _fail(f"{doc}.layers[{i}].mediaType", f"{layer.media_type!r} {why}")
        layers.append(layer)
    return Manifest(2, mt, config, tuple(layers), *_extras(d, doc))


def _index_from(d: dict, claimed: str) -> Index:
    doc = "index"
    mt = _document_type(d, claimed, INDEX_TYPES, OCI_INDEX, doc)
    if "config" in d or "layers" in d:
        raise _fail(f"{doc}.{'config' if 'config' in d else 'layers'}",
                    "an index has no config or layers (is this a manifest?)")
    raw = _get(d, "manifests", list, doc)
    if raw is None:
        raise _fail(f"{doc}.manifests", "is required")
    # Entries of unknown media types are kept (the spec asks not to fail on them) but are never
    # selected: select_manifest only follows manifest and index types.
    manifests = tuple(parse_descriptor(x, f"{doc}.manifests[{i}]") for i, x in enumerate(raw))
    return Index(2, mt, manifests, *_extras(d, doc))


def _check_claimed(media_type: str, wanted: frozenset[str], doc: str) -> None:
    """Refuse, before reading the bytes, a document served as schema 1 or as another kind."""
    if media_type in SCHEMA1_TYPES:
        raise InvalidArgument(f"{doc}: {SCHEMA1_MESSAGE}")
    if media_type and media_type not in wanted:
        article = "an" if doc == "index" else "a"
        raise InvalidArgument(f"{doc}: served as {media_type!r}, which is not {article} {doc} "
                              f"media type (expected {' or '.join(sorted(wanted))})")


def parse_manifest(data: bytes, *, expected: Digest | None = None, media_type: str | None = None,
                   artifacts: bool = False) -> Manifest:
    """An image manifest (OCI or Docker schema 2) from its exact bytes.

    ``expected``: the digest the bytes must have (verified before parsing). ``media_type``: the
    type the transport claimed. ``artifacts=True`` (a registry storing anything) accepts any
    config and layer media types; the default accepts only runnable images.
    """
    claimed = _claimed(media_type)
    _check_claimed(claimed, MANIFEST_TYPES, "manifest")
    return _manifest_from(load_document(data, "manifest", expected), claimed, artifacts)


def parse_index(data: bytes, *, expected: Digest | None = None,
                media_type: str | None = None) -> Index:
    """An image index (OCI) or manifest list (Docker) from its exact bytes."""
    claimed = _claimed(media_type)
    _check_claimed(claimed, INDEX_TYPES, "index")
    return _index_from(load_document(data, "index", expected), claimed)


def parse_any(data: bytes, expected: Digest | None = None, media_type: str | None = None, *,
              artifacts: bool = False) -> Manifest | Index:
    """A manifest or an index, told apart by the claimed type, then the document's own
    ``mediaType``, then its shape (``manifests`` vs ``config``/``layers``; both is refused)."""
    claimed = _claimed(media_type)
    _check_claimed(claimed, MANIFEST_TYPES | INDEX_TYPES, "manifest")
    d = load_document(data, "manifest", expected)
    kind = claimed or _get(d, "mediaType", str, "manifest", "")
    if kind in INDEX_TYPES:
        return _index_from(d, claimed)
    if kind in MANIFEST_TYPES or kind in SCHEMA1_TYPES or d.get("schemaVersion") == 1:
        return _manifest_from(d, claimed, artifacts)
    if kind:
        raise _fail("manifest.mediaType", f"unsupported media type {kind!r}")
    has_index, has_manifest = "manifests" in d, "config" in d or "layers" in d
    if has_index and has_manifest:
        raise _fail("manifest", "ambiguous document: it has both manifests and config/layers")
    if has_index:
        return _index_from(d, claimed)
    if has_manifest:
        return _manifest_from(d, claimed, artifacts)
    raise _fail("manifest", "neither a manifest (config, layers) nor an index (manifests)")


# ---------------------------------------------------------------- platform selection


def _platforms(descs: Iterable[Descriptor]) -> list[str]:
    out = []
    for d in descs:
        p = d.platform
        if p is not None and p.os != "unknown" and str(p) not in out:
            out.append(str(p))
    return out


def select_manifest(index: Index, platform: Platform | None = None) -> Descriptor:
    """The entry of ``index`` to run on ``platform`` (default: this machine).

    Exact variant beats an older compatible one (a v7 host takes arm/v7 over arm/v6); among
    older variants the newest wins; an entry without a platform is taken only when nothing
    names one that matches. Entries that are neither manifests nor indexes (attestations are
    manifests with platform unknown/unknown, so they never match) are never chosen.
    Raises ``NotFound`` naming the wanted and the available platforms.
    """
    want = normalize_platform(platform or current_platform())
    best: Descriptor | None = None
    best_score: tuple = ()
    for desc in index.manifests:
        if desc.media_type not in MANIFEST_TYPES | INDEX_TYPES:
            continue
        if desc.platform is None:
            score: tuple = (0,)
        elif platform_matches(desc.platform, want):
            have = normalize_platform(desc.platform)
            exact = have.variant == want.variant
            score = (2 if exact else 1, variant_rank(have.architecture, have.variant) or ())
        else:
            continue
        if best is None or score > best_score:
            best, best_score = desc, score
    if best is None:
        available = ", ".join(_platforms(index.manifests)) or "none"
        raise errors.NotFound(f"no matching manifest for {want} in the manifest list entries "
                              f"(available: {available})")
    return best
