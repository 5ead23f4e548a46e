"""Image configs: parsing (fields, docker extensions, errors naming the field), the manifest/config
consistency check, chain ids, image ids and round trips."""

from __future__ import annotations

import hashlib
import json

import pytest

from dockyard import errors
from dockyard.oci import image_spec as spec
from dockyard.oci.digest import Digest
from dockyard.oci.image_config import (
    ContainerConfig, Healthcheck, History, ImageConfig, RootFS, chain_id, chain_ids, image_id,
    parse_image_config, validate_image)
from dockyard.oci.image_spec import (
    Descriptor, Index, Manifest, Platform, parse_index, parse_manifest, select_manifest)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pretty(obj) -> bytes:
    return json.dumps(obj, indent=3).encode()


CONFIG_DOC = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2024-05-01T10:11:12.123456789Z",
    "author": "someone@example.com",
    "config": {
        "User": "1000:1000",
        "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP_MODE=prod"],
        "Entrypoint": [],
        "Cmd": None,
        "Volumes": {"/data": {}, "/cache": {}},
        "WorkingDir": "/srv",
        "Labels": {"org.opencontainers.image.title": "demo", "maintainer": "x"},
        "StopSignal": "SIGQUIT",
        "Healthcheck": {"Test": ["CMD-SHELL", "wget -q -O- http://localhost:8080/ || exit 1"],
                        "Interval": 30_000_000_000, "Timeout": 5_000_000_000, "Retries": 3},
        "OnBuild": None,
        "Shell": ["/bin/ash", "-c"],
        "ArgsEscaped": True,
    },
    "rootfs": {"type": "layers", "diff_ids": [
        "sha256:" + "1" * 64, "sha256:" + "2" * 64]},
    "history": [
        {"created": "2024-05-01T10:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
        {"created": "2024-05-01T10:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]",
         "empty_layer": True},
        {"created": "2024-05-01T10:11:12Z", "created_by": "RUN /bin/sh -c apk add curl # buildkit",
         "comment": "buildkit.dockerfile.v0"},
    ],
    # docker leftovers a parser must tolerate
    "container_config": {"Cmd": ["/bin/sh"]},
    "docker_version": "24.0.7",
}
CONFIG_BYTES = pretty(CONFIG_DOC)


def manifest_with(layers: int) -> Manifest:
    config = Descriptor(spec.DOCKER_CONFIG, Digest.parse(sha(CONFIG_BYTES)), len(CONFIG_BYTES))
    return Manifest(2, spec.DOCKER_MANIFEST, config, tuple(
        Descriptor(spec.DOCKER_LAYER_GZIP, Digest.of_bytes(b"%d" % i), 1) for i in range(layers)))


# ---------------------------------------------------------------- image config


def test_image_config_fields():
    c = parse_image_config(CONFIG_BYTES, expected=Digest.parse(sha(CONFIG_BYTES)),
                           media_type=spec.DOCKER_CONFIG)
    assert (c.os, c.architecture, c.created) == ("linux", "amd64", "2024-05-01T10:11:12.123456789Z")
    cc = c.config
    assert cc.user == "1000:1000"
    assert cc.exposed_ports == ("53/udp", "8080/tcp")
    assert cc.env[1] == "APP_MODE=prod"
    assert cc.entrypoint == () and cc.cmd is None  # set-to-empty vs not set
    assert cc.volumes == ("/cache", "/data") and cc.working_dir == "/srv"
    assert dict(cc.labels)["org.opencontainers.image.title"] == "demo"
    assert cc.stop_signal == "SIGQUIT" and cc.shell == ("/bin/ash", "-c") and cc.on_build is None
    assert cc.args_escaped is True
    assert cc.healthcheck == Healthcheck(("CMD-SHELL", "wget -q -O- http://localhost:8080/ || exit 1"),
                                         interval=30_000_000_000, timeout=5_000_000_000, retries=3)
    assert c.rootfs.diff_ids == (Digest("sha256", "1" * 64), Digest("sha256", "2" * 64))
    assert [h.empty_layer for h in c.history] == [False, True, False]
    assert c.history[2].comment == "buildkit.dockerfile.v0"
    assert c.platform() == Platform("linux", "amd64")


def test_image_config_minimal_and_strslice():
    c = parse_image_config(b'{"architecture":"arm64","variant":"v8","os":"linux",'
                           b'"rootfs":{"type":"layers","diff_ids":[]},"config":{"Cmd":"/bin/sh"}}')
    assert c.config.cmd == ("/bin/sh",) and c.variant == "v8" and c.rootfs.diff_ids == ()
    assert c.config.healthcheck is None and c.history == ()


@pytest.mark.parametrize("patch,fragment", [
    ({"architecture": None}, "config: architecture: is required"),
    ({"os": ""}, "config: os: is required"),
    ({"rootfs": None}, "config: rootfs: is required"),
    ({"rootfs": {"type": "tarball", "diff_ids": []}}, "rootfs.type: must be 'layers'"),
    ({"rootfs": {"type": "layers", "diff_ids": ["sha256:nothex"]}}, r"rootfs.diff_ids\[0\]"),
    ({"rootfs": {"type": "layers", "diff_ids": [7]}}, r"rootfs.diff_ids\[0\]: expected a digest"),
    ({"config": {"Env": "A=1"}}, "config.Env: expected list"),
    ({"config": {"Env": ["A=1", 2]}}, r"config.Env\[1\]"),
    ({"config": {"Labels": {"a": None}}}, "config.Labels.a: expected a string"),
    ({"config": {"ExposedPorts": ["80/tcp"]}}, "config.ExposedPorts: expected an object"),
    ({"config": {"Healthcheck": {"Interval": -1}}}, "Healthcheck.Interval: must not be negative"),
    ({"config": {"Healthcheck": {"Retries": "3"}}}, "Healthcheck.Retries: expected an integer"),
    ({"config": []}, "config: config: expected an object"),
    ({"history": [{"empty_layer": "yes"}]}, r"history\[0\].empty_layer: expected bool"),
])
def test_image_config_errors_name_the_field(patch, fragment):
    doc = json.loads(CONFIG_BYTES)
    doc.update(patch)
    with pytest.raises(errors.InvalidArgument, match=fragment):
        parse_image_config(pretty(doc))


def test_image_config_claimed_type():
    with pytest.raises(errors.InvalidArgument, match="not an image config media type"):
        parse_image_config(CONFIG_BYTES, media_type=spec.OCI_LAYER_GZIP)


def test_validate_image():
    m = manifest_with(2)
    c = parse_image_config(CONFIG_BYTES)
    validate_image(m, c)
    one_layer = manifest_with(1)
    with pytest.raises(errors.InvalidArgument, match="the manifest has 1 layers but the config lists 2 diff_ids"):
        validate_image(one_layer, c)
    no_history = ImageConfig("amd64", "linux", RootFS("layers", c.rootfs.diff_ids))
    validate_image(m, no_history)
    too_much = ImageConfig("amd64", "linux", RootFS("layers", c.rootfs.diff_ids),
                           history=(History(), History(), History()))
    with pytest.raises(errors.InvalidArgument, match="3 non-empty entries"):
        validate_image(m, too_much)


# ---------------------------------------------------------------- identities


def test_chain_ids_computed_independently():
    diffs = [hashlib.sha256(f"layer {i}".encode()).hexdigest() for i in range(3)]
    c0 = "sha256:" + diffs[0]
    c1 = "sha256:" + hashlib.sha256(f"{c0} sha256:{diffs[1]}".encode()).hexdigest()
    c2 = "sha256:" + hashlib.sha256(f"{c1} sha256:{diffs[2]}".encode()).hexdigest()
    got = chain_ids([Digest("sha256", d) for d in diffs])
    assert [str(x) for x in got] == [c0, c1, c2]
    assert str(chain_id([Digest("sha256", d) for d in diffs])) == c2
    assert chain_ids([]) == () and chain_id([]) is None


def test_known_chain_id():
    # a fixed anchor: chain(a, b) = sha256("sha256:aaa… sha256:bbb…"), with the space
    a = Digest.parse("sha256:" + "a" * 64)
    b = Digest.parse("sha256:" + "b" * 64)
    assert chain_ids([a, b]) == (a, Digest.parse(
        "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c"))


def test_image_id_is_the_config_digest():
    assert str(image_id(CONFIG_BYTES)) == sha(CONFIG_BYTES)



# ---------------------------------------------------------------- round trips


def test_image_config_round_trip():
    c = parse_image_config(CONFIG_BYTES)
    out = c.to_json()
    assert parse_image_config(out) == c
    assert image_id(out) == Digest.parse(sha(out))
    back = json.loads(out)
    assert back["config"]["Entrypoint"] == [] and "Cmd" not in back["config"]
    assert back["config"]["ExposedPorts"] == {"53/udp": {}, "8080/tcp": {}}
    assert "container_config" not in back


def test_built_records_serialize():
    diff = Digest.of_bytes(b"layer")
    cfg = ImageConfig("amd64", "linux", RootFS("layers", (diff,)),
                      ContainerConfig(env=("PATH=/bin",), cmd=("sh",)),
                      history=(History(created_by="import"),))
    cfg_bytes = cfg.to_json()
    layer = Descriptor(spec.OCI_LAYER, diff, 5)
    m = Manifest(2, spec.OCI_MANIFEST, Descriptor(spec.OCI_CONFIG, image_id(cfg_bytes), len(cfg_bytes)),
                 (layer,))
    validate_image(m, parse_image_config(cfg_bytes))
    assert parse_manifest(m.to_json()) == m
    desc = Descriptor(spec.OCI_MANIFEST, Digest.of_bytes(m.to_json()), len(m.to_json()),
                      platform=Platform("linux", "amd64"))
    assert json.loads(desc.to_json())["platform"] == {"architecture": "amd64", "os": "linux"}
    idx = Index(2, spec.OCI_INDEX, (desc,))
    assert select_manifest(parse_index(idx.to_json()), Platform("linux", "amd64")) == desc
