"""OCI / Docker schema 2 formats: parsing at the trust boundary, media types, platform selection
and round trips. Documents are written here in the shape registries serve."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from dockyard import errors
from dockyard.oci import image_spec as spec
from dockyard.oci.digest import Digest
from dockyard.oci.image_config import parse_image_config
from dockyard.oci.image_spec import (
    Index, Manifest, Platform, parse_any, parse_index, parse_manifest, parse_platform,
    platform_from_machine, platform_matches, select_manifest)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pretty(obj) -> bytes:
    """Docker's registry serves manifests indented with three spaces."""
    return json.dumps(obj, indent=3).encode()


# an image config as a blob that descriptors point at (its parsing is tested in test_image_config)
CONFIG_BYTES = pretty({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                       "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]}})
LAYER1 = b"\x1f\x8b layer one (gzip bytes stand-in)"
LAYER2 = b"\x28\xb5\x2f\xfd layer two (zstd bytes stand-in)"


def docker_manifest(**overrides) -> dict:
    doc = {
        "schemaVersion": 2,
        "mediaType": spec.DOCKER_MANIFEST,
        "config": {"mediaType": spec.DOCKER_CONFIG, "size": len(CONFIG_BYTES), "digest": sha(CONFIG_BYTES)},
        "layers": [
            {"mediaType": spec.DOCKER_LAYER_GZIP, "size": len(LAYER1), "digest": sha(LAYER1)},
            {"mediaType": spec.DOCKER_LAYER_GZIP, "size": len(LAYER2), "digest": sha(LAYER2)},
        ],
    }
    doc.update(overrides)
    return doc


def oci_manifest(**overrides) -> dict:
    doc = {
        "schemaVersion": 2,
        "mediaType": spec.OCI_MANIFEST,
        "config": {"mediaType": spec.OCI_CONFIG, "size": len(CONFIG_BYTES), "digest": sha(CONFIG_BYTES)},
        "layers": [
            {"mediaType": spec.OCI_LAYER_GZIP, "size": len(LAYER1), "digest": sha(LAYER1)},
            {"mediaType": spec.OCI_LAYER_ZSTD, "size": len(LAYER2), "digest": sha(LAYER2),
             "annotations": {"org.opencontainers.image.title": "two.tar.zst"}},
        ],
        "annotations": {"org.opencontainers.image.created": "2024-05-01T10:11:12Z",
                        "org.opencontainers.image.base.name": "docker.io/library/alpine:3.19"},
    }
    doc.update(overrides)
    return doc


def entry(arch: str, variant: str = "", os_name: str = "linux", n: int = 0,
          media_type: str = spec.OCI_MANIFEST, **extra) -> dict:
    body = f"{os_name}/{arch}/{variant}/{n}".encode()
    e = {"mediaType": media_type, "size": len(body), "digest": sha(body),
         "platform": {"architecture": arch, "os": os_name}}
    if variant:
        e["platform"]["variant"] = variant
    e.update(extra)
    return e


def index_doc(*entries, media_type: str = spec.OCI_INDEX) -> dict:
    return {"schemaVersion": 2, "mediaType": media_type, "manifests": list(entries)}


def load_index(*entries) -> Index:
    return parse_index(pretty(index_doc(*entries)))


# ---------------------------------------------------------------- manifests


def test_docker_schema2_manifest():
    data = pretty(docker_manifest())
    m = parse_manifest(data, expected=Digest.parse(sha(data)), media_type=spec.DOCKER_MANIFEST)
    assert m.schema_version == 2 and m.media_type == spec.DOCKER_MANIFEST
    assert m.config.media_type == spec.DOCKER_CONFIG
    assert m.config.digest == Digest.parse(sha(CONFIG_BYTES)) and m.config.size == len(CONFIG_BYTES)
    assert [x.digest for x in m.layers] == [Digest.parse(sha(LAYER1)), Digest.parse(sha(LAYER2))]
    assert all(spec.layer_compression(x.media_type) == "gzip" for x in m.layers)


def test_oci_manifest_with_annotations_and_zstd():
    m = parse_manifest(pretty(oci_manifest()))
    assert m.media_type == spec.OCI_MANIFEST
    assert dict(m.annotations)["org.opencontainers.image.base.name"] == "docker.io/library/alpine:3.19"
    assert m.layers[1].annotation("org.opencontainers.image.title") == "two.tar.zst"
    assert spec.layer_compression(m.layers[1].media_type) == "zstd"


def test_oci_manifest_without_media_type_field_takes_the_claimed_or_default_type():
    doc = oci_manifest()
    del doc["mediaType"]
    assert parse_manifest(pretty(doc)).media_type == spec.OCI_MANIFEST
    claimed = parse_manifest(pretty(doc), media_type=spec.OCI_MANIFEST + "; charset=utf-8")
    assert claimed.media_type == spec.OCI_MANIFEST


@pytest.mark.parametrize("generic", ["application/json", "text/plain; charset=utf-8",
                                     "application/octet-stream", ""])
def test_generic_content_type_claims_nothing(generic):
    assert parse_manifest(pretty(docker_manifest()), media_type=generic).media_type == spec.DOCKER_MANIFEST
    assert isinstance(parse_any(pretty(index_doc()), media_type=generic), Index)


def test_empty_layer_list_is_an_image_without_layers():
    m = parse_manifest(pretty(oci_manifest(layers=[])))
    assert m.layers == ()


# ---------------------------------------------------------------- digest and size, before parsing


def test_digest_verified_over_exact_bytes():
    data = pretty(docker_manifest())
    other = json.dumps(docker_manifest()).encode()  # same JSON, different bytes
    with pytest.raises(errors.InvalidArgument) as e:
        parse_manifest(other, expected=Digest.parse(sha(data)))
    assert f"expected {sha(data)}, got {sha(other)}" in str(e.value)


def test_digest_checked_before_parsing():
    garbage = b"{not json at all"
    wrong = Digest.parse("sha256:" + "0" * 64)
    with pytest.raises(errors.InvalidArgument, match="digest mismatch"):
        parse_manifest(garbage, expected=wrong)
    with pytest.raises(errors.InvalidArgument, match="invalid JSON"):
        parse_manifest(garbage, expected=Digest.parse(sha(garbage)))
    with pytest.raises(errors.InvalidArgument, match="digest mismatch"):
        parse_image_config(garbage, expected=wrong)
    with pytest.raises(errors.InvalidArgument, match="digest mismatch"):
        parse_index(garbage, expected=wrong)


def test_sha512_expected_digest():
    data = pretty(docker_manifest())
    d = Digest("sha512", hashlib.sha512(data).hexdigest())
    assert parse_manifest(data, expected=d).media_type == spec.DOCKER_MANIFEST


@pytest.mark.parametrize("parse", [parse_manifest, parse_index, parse_image_config,
                                   lambda data, **kw: parse_any(data, **kw)])
def test_size_limit_before_digest_and_parse(parse):
    big = b" " * spec.MAX_DOCUMENT_SIZE + b"{}"
    with pytest.raises(errors.InvalidArgument, match=r"more than the limit of 4194304 bytes"):
        parse(big, expected=Digest.parse("sha256:" + "0" * 64))


def test_exactly_at_the_limit_is_parsed():
    data = pretty(docker_manifest())
    data = data + b" " * (spec.MAX_DOCUMENT_SIZE - len(data))
    assert parse_manifest(data).media_type == spec.DOCKER_MANIFEST


@pytest.mark.parametrize("data,fragment", [
    (pretty(docker_manifest()) + b"{}", "invalid JSON"),  # extra JSON around the payload
    (b'{"schemaVersion": 2, "schemaVersion": 1}', "duplicate key 'schemaVersion'"),
    (b'{"schemaVersion": NaN}', "NaN is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
    (b"[]", "expected a JSON object, got list"),
    ("{}".encode("utf-16"), "invalid JSON"),
    (b'{"a": "\xff"}', "invalid JSON"),
    (b"", "invalid JSON"),
])
def test_strict_json(data, fragment):
    with pytest.raises(errors.InvalidArgument, match=fragment):
        parse_manifest(data)


def test_not_bytes():
    with pytest.raises(errors.InvalidArgument, match="expected bytes"):
        parse_manifest("{}")  # type: ignore[arg-type]


# ---------------------------------------------------------------- media types


def test_document_type_contradicting_the_claimed_type():
    with pytest.raises(errors.InvalidArgument) as e:
        parse_manifest(pretty(oci_manifest()), media_type=spec.DOCKER_MANIFEST)
    assert spec.OCI_MANIFEST in str(e.value) and spec.DOCKER_MANIFEST in str(e.value)


def test_index_is_not_a_manifest():
    with pytest.raises(errors.InvalidArgument, match="index.v1.json' is not a manifest media type"):
        parse_manifest(pretty(index_doc(entry("amd64"))))
    untyped = index_doc(entry("amd64"))
    del untyped["mediaType"]
    with pytest.raises(errors.InvalidArgument, match="is this an index"):
        parse_manifest(pretty(untyped))
    with pytest.raises(errors.InvalidArgument, match="not a manifest media type"):
        parse_manifest(pretty(oci_manifest(mediaType=spec.OCI_INDEX)))
    with pytest.raises(errors.InvalidArgument, match="served as .*config.* not a manifest media type"):
        parse_manifest(b"not parsed", media_type=spec.OCI_CONFIG)
    with pytest.raises(errors.InvalidArgument, match="served as .*manifest.* not an index media type"):
        parse_index(b"not parsed", media_type=spec.DOCKER_MANIFEST)
    untyped = oci_manifest()
    del untyped["mediaType"]
    with pytest.raises(errors.InvalidArgument, match="is this a manifest"):
        parse_index(pretty(untyped))


def test_schema_version_must_be_2():
    with pytest.raises(errors.InvalidArgument, match="schemaVersion: must be 2"):
        parse_manifest(pretty(oci_manifest(schemaVersion=3)))
    doc = oci_manifest()
    del doc["schemaVersion"]
    with pytest.raises(errors.InvalidArgument, match="schemaVersion: must be 2"):
        parse_manifest(pretty(doc))


def test_config_descriptor_must_be_a_config_type():
    doc = oci_manifest()
    doc["config"]["mediaType"] = spec.OCI_LAYER_GZIP
    with pytest.raises(errors.InvalidArgument, match=r"config.mediaType: .* is not an image config media type"):
        parse_manifest(pretty(doc))


def test_config_served_as_a_layer():
    doc = oci_manifest()
    doc["layers"][1]["mediaType"] = spec.OCI_CONFIG
    with pytest.raises(errors.InvalidArgument, match=r"layers\[1\].mediaType: .* is an image config, not a layer"):
        parse_manifest(pretty(doc))


@pytest.mark.parametrize("media_type", [
    "application/vnd.oci.image.layer.v1.tar+encrypted",
    "application/vnd.example.unknown",
    "application/octet-stream",
])
def test_unknown_layer_types_refused(media_type):
    doc = oci_manifest()
    doc["layers"][0]["mediaType"] = media_type
    with pytest.raises(errors.InvalidArgument, match=r"layers\[0\].mediaType: .* not a known layer media type"):
        parse_manifest(pretty(doc))


def test_foreign_and_nondistributable_layers_accepted():
    doc = docker_manifest()
    doc["layers"][0].update(mediaType=spec.DOCKER_FOREIGN_LAYER_GZIP,
                            urls=["https://go.microsoft.com/fwlink/?linkid=0"])
    doc["layers"][1]["mediaType"] = spec.OCI_LAYER_NONDIST_ZSTD
    m = parse_manifest(pretty(doc))
    assert spec.is_foreign_layer(m.layers[0].media_type) and spec.is_foreign_layer(m.layers[1].media_type)
    assert m.layers[0].urls == ("https://go.microsoft.com/fwlink/?linkid=0",)
    assert not spec.is_foreign_layer(spec.OCI_LAYER_GZIP)


def test_layer_compression_of_a_non_layer():
    with pytest.raises(errors.InvalidArgument, match="not a layer media type"):
        spec.layer_compression(spec.OCI_CONFIG)
    assert spec.layer_compression(spec.OCI_LAYER) == "" and spec.layer_compression(spec.DOCKER_LAYER) == ""


def test_non_http_urls_refused():
    doc = docker_manifest()
    doc["layers"][0].update(mediaType=spec.DOCKER_FOREIGN_LAYER_GZIP, urls=["file:///etc/shadow"])
    with pytest.raises(errors.InvalidArgument, match=r"urls\[0\]: only http and https"):
        parse_manifest(pretty(doc))


def test_artifacts_mode_accepts_any_types():
    doc = oci_manifest(artifactType="application/vnd.example.sbom+json")
    doc["config"] = {"mediaType": spec.OCI_EMPTY, "size": 2, "digest": sha(b"{}"), "data": "e30="}
    doc["layers"] = [{"mediaType": "application/spdx+json", "size": 3, "digest": sha(b"abc")}]
    with pytest.raises(errors.InvalidArgument):
        parse_manifest(pretty(doc))
    m = parse_manifest(pretty(doc), artifacts=True)
    assert m.artifact_type == "application/vnd.example.sbom+json" and m.config.data == b"{}"


@pytest.mark.parametrize("field,value,fragment", [
    ("mediaType", "not a media type", "invalid media type"),
    ("mediaType", None, "mediaType: is required"),
    ("digest", "sha256:../../etc/passwd", "digest: invalid digest"),
    ("digest", "sha256:" + "A" * 64, "lowercase hex"),
    ("digest", None, "digest: is required"),
    ("size", -1, "non-negative 64-bit size"),
    ("size", None, "non-negative 64-bit size"),
    ("size", 2**63, "non-negative 64-bit size"),
    ("size", "12", "expected an integer"),
    ("size", True, "expected an integer"),
    ("annotations", {"k": 1}, "annotations.k: expected a string"),
    ("urls", "https://x", "expected list"),
    ("platform", {"os": "linux"}, "os and architecture are required"),
])
def test_descriptor_fields(field, value, fragment):
    doc = oci_manifest()
    if value is None:
        del doc["layers"][0][field]
    else:
        doc["layers"][0][field] = value
    with pytest.raises(errors.InvalidArgument) as e:
        parse_manifest(pretty(doc))
    assert fragment in str(e.value) and "manifest: layers[0]" in str(e.value)


def test_descriptor_data_must_match():
    ok = {"mediaType": spec.OCI_CONFIG, "size": len(CONFIG_BYTES), "digest": sha(CONFIG_BYTES),
          "data": base64.b64encode(CONFIG_BYTES).decode()}
    assert parse_manifest(pretty(oci_manifest(config=ok))).config.data == CONFIG_BYTES
    lying = dict(ok, data=base64.b64encode(CONFIG_BYTES.replace(b"amd64", b"arm64")).decode())
    with pytest.raises(errors.InvalidArgument, match=r"config.data: does not match the digest: expected sha256:"):
        parse_manifest(pretty(oci_manifest(config=lying)))
    short = dict(ok, data=base64.b64encode(CONFIG_BYTES[:-1]).decode())
    with pytest.raises(errors.InvalidArgument, match="but size says"):
        parse_manifest(pretty(oci_manifest(config=short)))
    with pytest.raises(errors.InvalidArgument, match="not valid base64"):
        parse_manifest(pretty(oci_manifest(config=dict(ok, data="!!not base64!!"))))


# ---------------------------------------------------------------- schema 1


SCHEMA1 = {"schemaVersion": 1, "name": "library/busybox", "tag": "latest", "architecture": "amd64",
           "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
           "history": [{"v1Compatibility": "{}"}],
           "signatures": [{"header": {"alg": "ES256"}, "signature": "x", "protected": "y"}]}


@pytest.mark.parametrize("call", [
    lambda: parse_manifest(pretty(SCHEMA1)),
    lambda: parse_manifest(pretty(SCHEMA1), media_type=spec.DOCKER_SCHEMA1_SIGNED),
    lambda: parse_manifest(b"not even json", media_type=spec.DOCKER_SCHEMA1_MANIFEST),
    lambda: parse_manifest(pretty(dict(SCHEMA1, mediaType=spec.DOCKER_SCHEMA1_MANIFEST))),
    lambda: parse_any(pretty(SCHEMA1)),
    lambda: parse_any(pretty(SCHEMA1), media_type=spec.DOCKER_SCHEMA1_SIGNED),
    lambda: parse_index(pretty(SCHEMA1)),
])
def test_schema1_refused_with_advice(call):
    with pytest.raises(errors.InvalidArgument) as e:
        call()
    assert "schema 1 is not supported" in str(e.value) and "re-push the image" in str(e.value)


# ---------------------------------------------------------------- index and parse_any


def test_docker_manifest_list():
    doc = index_doc(entry("amd64", media_type=spec.DOCKER_MANIFEST),
                    entry("arm", "v7", media_type=spec.DOCKER_MANIFEST),
                    media_type=spec.DOCKER_MANIFEST_LIST)
    data = pretty(doc)
    idx = parse_index(data, expected=Digest.parse(sha(data)), media_type=spec.DOCKER_MANIFEST_LIST)
    assert idx.media_type == spec.DOCKER_MANIFEST_LIST
    assert [str(m.platform) for m in idx.manifests] == ["linux/amd64", "linux/arm/v7"]


def test_index_keeps_unknown_entries_and_needs_manifests():
    idx = load_index(entry("amd64"), {"mediaType": "application/vnd.example.thing", "size": 1,
                                      "digest": sha(b"x")})
    assert idx.manifests[1].media_type == "application/vnd.example.thing"
    with pytest.raises(errors.InvalidArgument, match="manifests: is required"):
        parse_index(pretty({"schemaVersion": 2, "mediaType": spec.OCI_INDEX}))
    with pytest.raises(errors.InvalidArgument, match=r"index: manifests\[0\].digest"):
        parse_index(pretty(index_doc(dict(entry("amd64"), digest="sha256:xyz"))))


def test_parse_any_dispatch():
    idx_doc, man_doc = index_doc(entry("amd64")), oci_manifest()
    assert isinstance(parse_any(pretty(idx_doc)), Index)
    assert isinstance(parse_any(pretty(man_doc)), Manifest)
    assert isinstance(parse_any(pretty(docker_manifest()), None, spec.DOCKER_MANIFEST), Manifest)
    for doc in (idx_doc, man_doc):
        del doc["mediaType"]
    assert isinstance(parse_any(pretty(idx_doc)), Index)  # told apart by shape
    assert isinstance(parse_any(pretty(man_doc)), Manifest)
    assert isinstance(parse_any(pretty(idx_doc), media_type=spec.OCI_INDEX), Index)
    data = pretty(man_doc)
    assert isinstance(parse_any(data, Digest.parse(sha(data))), Manifest)
    with pytest.raises(errors.InvalidArgument, match="digest mismatch"):
        parse_any(data, Digest.parse(sha(b"other")))


@pytest.mark.parametrize("doc,media_type,fragment", [
    ({"schemaVersion": 2, "manifests": [], "layers": []}, None, "ambiguous"),
    ({"schemaVersion": 2}, None, "neither a manifest"),
    ({"schemaVersion": 2, "mediaType": spec.OCI_CONFIG}, None, "unsupported media type"),
    (oci_manifest(), "text/html", "served as .text/html."),
    (oci_manifest(), spec.OCI_INDEX, "it was served as"),
])
def test_parse_any_refusals(doc, media_type, fragment):
    with pytest.raises(errors.InvalidArgument, match=fragment):
        parse_any(pretty(doc), media_type=media_type)


# ---------------------------------------------------------------- platforms


@pytest.mark.parametrize("machine,want", [
    ("x86_64", "linux/amd64"), ("aarch64", "linux/arm64/v8"), ("armv7l", "linux/arm/v7"),
    ("armv6l", "linux/arm/v6"), ("armv5tel", "linux/arm/v5"), ("i686", "linux/386"),
    ("ppc64le", "linux/ppc64le"), ("s390x", "linux/s390x"), ("riscv64", "linux/riscv64"),
    ("loongarch64", "linux/loong64"),
])
def test_platform_from_machine(machine, want):
    assert str(platform_from_machine(machine)) == want


def test_current_platform_is_linux():
    p = spec.current_platform()
    assert p.os == "linux" and p.architecture


@pytest.mark.parametrize("text,want", [
    ("linux/amd64", "linux/amd64"), ("linux/x86_64", "linux/amd64"), ("linux/amd64/v1", "linux/amd64"),
    ("linux/arm64", "linux/arm64/v8"), ("linux/aarch64", "linux/arm64/v8"), ("linux/arm/7", "linux/arm/v7"),
    ("linux/arm", "linux/arm/v7"), ("arm64", "linux/arm64/v8"), ("linux/amd64/v3", "linux/amd64/v3"),
])
def test_parse_platform(text, want):
    assert str(parse_platform(text)) == want


@pytest.mark.parametrize("text", ["", "linux/", "a/b/c/d", "/amd64"])
def test_parse_platform_invalid(text):
    with pytest.raises(errors.InvalidArgument, match="invalid platform"):
        parse_platform(text)


@pytest.mark.parametrize("image,host,ok", [
    (Platform("linux", "amd64"), Platform("linux", "amd64"), True),
    (Platform("linux", "amd64"), Platform("linux", "x86_64"), True),
    (Platform("linux", "arm64"), Platform("linux", "arm64", "v8"), True),
    (Platform("linux", "arm64", "v8"), Platform("linux", "aarch64"), True),
    (Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7"), True),
    (Platform("linux", "arm", "v7"), Platform("linux", "arm", "v6"), False),
    (Platform("linux", "arm"), Platform("linux", "arm", "v7"), True),
    (Platform("linux", "amd64", "v2"), Platform("linux", "amd64", "v3"), True),
    (Platform("linux", "amd64", "v3"), Platform("linux", "amd64"), False),
    (Platform("linux", "arm64"), Platform("linux", "amd64"), False),
    (Platform("windows", "amd64"), Platform("linux", "amd64"), False),
    (Platform("Linux", "AMD64"), Platform("linux", "amd64"), True),
    (Platform("unknown", "unknown"), Platform("linux", "amd64"), False),
])
def test_platform_matches(image, host, ok):
    assert platform_matches(image, host) is ok


ATTESTATION = entry("unknown", os_name="unknown", annotations={
    "vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": sha(b"x")})


def test_select_for_amd64_skips_attestations():
    idx = load_index(ATTESTATION, entry("arm64", "v8"), entry("amd64"), entry("arm", "v7"))
    assert str(select_manifest(idx, Platform("linux", "amd64")).platform) == "linux/amd64"


def test_select_arm64_without_variant_matches_v8():
    idx = load_index(entry("amd64"), entry("arm64"))
    assert select_manifest(idx, platform_from_machine("aarch64")).platform == Platform("linux", "arm64")


def test_select_prefers_exact_variant_then_newest_older():
    idx = load_index(entry("arm", "v5"), entry("arm", "v6"), entry("arm", "v7"), entry("arm64", "v8"))
    assert select_manifest(idx, Platform("linux", "arm", "v7")).platform.variant == "v7"
    assert select_manifest(idx, Platform("linux", "arm", "v6")).platform.variant == "v6"
    older = load_index(entry("arm", "v5"), entry("arm", "v6"))
    assert select_manifest(older, Platform("linux", "arm", "v7")).platform.variant == "v6"


def test_select_first_of_equal_matches():
    idx = load_index(entry("amd64", n=1), entry("amd64", n=2))
    assert select_manifest(idx, Platform("linux", "amd64")) == idx.manifests[0]


def test_select_entry_without_platform_only_as_fallback():
    bare = entry("amd64", n=9)
    del bare["platform"]
    assert select_manifest(load_index(bare), Platform("linux", "s390x")).platform is None
    idx = load_index(bare, entry("s390x"))
    assert select_manifest(idx, Platform("linux", "s390x")).platform == Platform("linux", "s390x")


def test_select_ignores_non_manifest_entries():
    idx = load_index(entry("amd64", media_type="application/vnd.example.thing"), entry("amd64", n=1))
    assert select_manifest(idx, Platform("linux", "amd64")) == idx.manifests[1]


def test_select_not_found_names_wanted_and_available():
    idx = load_index(ATTESTATION, entry("amd64"), entry("arm", "v7"), entry("arm64", "v8"))
    with pytest.raises(errors.NotFound) as e:
        select_manifest(idx, Platform("linux", "arm", "v6"))
    msg = str(e.value)
    assert "no matching manifest for linux/arm/v6" in msg
    assert "available: linux/amd64, linux/arm/v7, linux/arm64/v8" in msg
    assert "unknown" not in msg
    with pytest.raises(errors.NotFound, match="available: none"):
        select_manifest(load_index(), Platform("linux", "amd64"))


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("doc", [docker_manifest(), oci_manifest()], ids=["docker", "oci"])
def test_manifest_round_trip(doc):
    m = parse_manifest(pretty(doc))
    out = m.to_json()
    assert parse_manifest(out, expected=Digest.parse(sha(out))) == m
    assert out == parse_manifest(out).to_json()  # deterministic, canonical
    assert b" " not in out and b"\n" not in out
    assert json.loads(out) == {**doc}  # nothing lost, nothing invented


def test_manifest_round_trip_with_subject_and_data():
    subject = {"mediaType": spec.OCI_MANIFEST, "size": 3, "digest": sha(b"abc")}
    cfg = {"mediaType": spec.OCI_CONFIG, "size": len(CONFIG_BYTES), "digest": sha(CONFIG_BYTES),
           "data": base64.b64encode(CONFIG_BYTES).decode()}
    m = parse_manifest(pretty(oci_manifest(subject=subject, config=cfg)))
    assert m.subject is not None and parse_manifest(m.to_json()) == m


def test_index_round_trip():
    doc = index_doc(entry("amd64"), entry("arm64", "v8", annotations={"a": "b"}),
                    dict(entry("windows", os_name="windows"),
                         platform={"os": "windows", "architecture": "amd64",
                                   "os.version": "10.0.20348.2340", "os.features": ["win32k"]}),
                    ATTESTATION)
    doc["annotations"] = {"org.opencontainers.image.ref.name": "1.0"}
    idx = parse_index(pretty(doc))
    assert idx.manifests[2].platform.os_version == "10.0.20348.2340"
    assert parse_index(idx.to_json()) == idx
    assert json.loads(idx.to_json()) == doc
