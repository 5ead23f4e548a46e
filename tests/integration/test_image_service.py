"""The image service on the real kernel (root): layers unpacked once and shared (base -> child ->
grandchild), tag/rmi semantics, inspect and history shapes, read-only mounts, save -> load round
trips in both formats, the archive layouts of docker (< 25 and 25+), podman and skopeo, and
crafted bad archives that must fail with a clear error and record nothing.

The builders at the top (``make_layer``, ``make_image``, ``tar_bytes``) are imported by
``test_image_load_crash.py``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pytest

from dockyard.archive import Entry, write_layer
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.image.service import ImageService, LayerBlob
from dockyard.metadata.gc import missing_content
from dockyard.oci import image_spec as spec
from dockyard.oci.digest import Digest
from dockyard.oci.image_spec import current_platform
from dockyard.oci.reference import parse_normalized

ARCH = current_platform().architecture


# ---------------------------------------------------------------------------------------------
# builders


def make_layer(svc: ImageService, lease: str, files: dict[str, bytes | None], *,
               compression: str | None = "gzip") -> tuple[LayerBlob, Digest]:
    """A layer blob of ``files`` (path -> content; None: a whiteout of that path)."""
    entries = []
    for path, data in files.items():
        if data is None:
            head, _, base = path.rpartition("/")
            entries.append(Entry(f"{head}/.wh.{base}" if head else f".wh.{base}", data=b""))
        else:
            entries.append(Entry(path, size=len(data), data=data, mode=0o644, mtime=1))
    dirs = {p.rsplit("/", 1)[0] for p in files if "/" in p}
    entries += [Entry(d, "dir", mode=0o755, mtime=1) for d in dirs]
    buf = io.BytesIO()
    written = write_layer(entries, buf, compression=compression)
    digest = svc.write_blob(lease, buf.getvalue())
    media = spec.OCI_LAYER_GZIP if compression == "gzip" else spec.OCI_LAYER
    return LayerBlob(digest, written.size, media), written.diff_id


def config_bytes(diff_ids: list[Digest], *, history: list[dict] | None = None,
                 config: dict | None = None, created: str = "2024-01-02T03:04:05Z") -> bytes:
    doc = {"architecture": ARCH, "os": "linux", "created": created,
           "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
           "config": config or {"Cmd": ["/bin/sh"]}}
    if history is not None:
        doc["history"] = history
    return json.dumps(doc).encode()


def manifest_bytes(config: bytes, layers: list[LayerBlob]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": spec.OCI_MANIFEST,
        "config": {"mediaType": spec.OCI_CONFIG, "digest": str(Digest.of_bytes(config)),
                   "size": len(config)},
        "layers": [{"mediaType": la.media_type, "digest": str(la.digest), "size": la.size}
                   for la in layers]}).encode()


def make_image(svc: ImageService, layers: list[tuple[LayerBlob, Digest]], tags: list[str] = (),
               **config_kw):
    with svc.lease() as lease:
        cfg = config_bytes([d for _, d in layers], **config_kw)
        man = manifest_bytes(cfg, [b for b, _ in layers])
        svc.write_blob(lease, cfg)
        svc.write_blob(lease, man)
        return svc.add_image(manifest=man, manifest_media_type=spec.OCI_MANIFEST, config=cfg,
                             layers=[b for b, _ in layers],
                             tags=[parse_normalized(t) for t in tags])


def layer_in(svc: ImageService, files: dict[str, bytes | None], **kw) -> tuple[LayerBlob, Digest]:
    with svc.lease() as lease:
        return make_layer(svc, lease, files, **kw)


BASE = {"bin/tool": b"base tool", "etc/os-release": b"base", "etc/gone": b"to be deleted"}
CHILD = {"etc/os-release": b"child", "app/run": b"child app"}
GRANDCHILD = {"etc/gone": None, "app/data": b"grandchild data"}


def family(svc: ImageService):
    """base -> child -> grandchild, sharing layers."""
    l0, l1, l2 = layer_in(svc, BASE), layer_in(svc, CHILD), layer_in(svc, GRANDCHILD)
    hist = [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD base /"},
            {"created": "2024-01-01T00:00:01Z", "created_by": "CMD [\"/bin/sh\"]", "empty_layer": True}]
    base = make_image(svc, [l0], ["base:1"], history=hist)
    hist += [{"created": "2024-01-02T00:00:00Z", "created_by": "COPY app /app"}]
    child = make_image(svc, [l0, l1], ["child:1"], history=hist, created="2024-01-02T00:00:00Z")
    hist += [{"created": "2024-01-03T00:00:00Z", "created_by": "RUN rm /etc/gone",
              "comment": "grand"}]
    grand = make_image(svc, [l0, l1, l2], ["grandchild:1"], history=hist,
                       created="2024-01-03T00:00:00Z",
                       config={"Cmd": ["run"], "Entrypoint": ["/app/run"], "Env": ["A=1"],
                               "WorkingDir": "/app", "User": "1000", "ExposedPorts": {"80/tcp": {}},
                               "Volumes": {"/data": {}}, "Labels": {"k": "v"},
                               "StopSignal": "SIGINT",
                               "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}})
    return base, child, grand


def tar_bytes(members: list[tuple], *, gz: bool = False) -> bytes:
    """A tar of ("file", name, data) / ("sym", name, target) / ("dir", name) members, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, *rest in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(rest[0])
                tar.addfile(info, io.BytesIO(rest[0]))
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, rest[0]
                tar.addfile(info)
            else:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
    data = buf.getvalue()
    return gzip.compress(data) if gz else data


def tar_members(data: bytes) -> list[tuple]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            if m.isdir():
                out.append(("dir", m.name))
            elif m.issym():
                out.append(("sym", m.name, m.linkname))
            else:
                out.append(("file", m.name, tar.extractfile(m).read()))
    return out


def saved(svc: ImageService, names: list[str], fmt: str) -> bytes:
    buf = io.BytesIO()
    svc.save(names, buf, fmt=fmt)
    return buf.getvalue()


def snapshot_dirs(svc: ImageService) -> list[str]:
    return sorted(n for n in os.listdir(svc.store.snapshots) if n.isdigit())


def blob_count(svc: ImageService) -> int:
    return sum(1 for _ in svc.content.walk())


def assert_consistent(svc: ImageService) -> None:
    assert svc.content.verify().clean
    assert missing_content(svc.db, svc.content) == []
    assert svc.db.snapshots.incomplete() == []
    assert svc.db.check() == []
    assert snapshot_dirs(svc) == sorted(str(s.id) for s in svc.db.snapshots.all())


@pytest.fixture
def svc(tmp_path):
    s = ImageService.open(str(tmp_path / "root"))
    yield s
    s.close()


@pytest.fixture
def other(tmp_path):
    s = ImageService.open(str(tmp_path / "other"))
    yield s
    s.close()


# ---------------------------------------------------------------------------------------------
# layers are shared


def test_chain_shares_layers_on_disk(svc):
    base, child, grand = family(svc)
    assert [la.snapshot_id for la in child.layers[:1]] == [la.snapshot_id for la in base.layers]
    assert [la.snapshot_id for la in grand.layers[:2]] == [la.snapshot_id for la in child.layers]
    assert len(snapshot_dirs(svc)) == 3  # three layers, each unpacked once
    assert blob_count(svc) == 3 + 3 + 3  # 3 layer blobs, 3 configs, 3 manifests
    assert svc.unpack(grand) == str(svc.db.snapshots.get(grand.layers[-1].snapshot_id).chain_id)
    assert len(snapshot_dirs(svc)) == 3
    assert grand.size == sum(len(v) for v in (*BASE.values(), *CHILD.values(), b"grandchild data"))
    assert_consistent(svc)


def test_mount_readonly_shows_the_merged_tree(svc, tmp_path):
    _, _, grand = family(svc)
    target = tmp_path / "view"
    target.mkdir()
    svc.mount_readonly(grand, str(target))
    try:
        assert (target / "bin/tool").read_bytes() == b"base tool"
        assert (target / "etc/os-release").read_bytes() == b"child"
        assert (target / "app/data").read_bytes() == b"grandchild data"
        assert not (target / "etc/gone").exists()
        with pytest.raises(OSError):
            (target / "new").write_text("x")
    finally:
        svc.unmount(str(target))


def test_add_image_refuses_a_layer_that_is_not_what_the_config_says(svc):
    before = svc.db.snapshots.all()
    l0, l1 = layer_in(svc, BASE), layer_in(svc, CHILD)
    wrong = (l1[0], Digest.of_bytes(b"not the diff id"))
    with pytest.raises(InvalidArgument, match=r"layer 1 .*diff id mismatch"):
        make_image(svc, [l0, wrong], ["bad:1"])
    assert svc.list() == [] and svc.db.snapshots.all() == before  # layer 0's snapshot removed
    assert_consistent(svc)


def test_snapshots_no_image_uses_are_pruned_unless_leased(svc):
    l0, l1 = layer_in(svc, BASE), layer_in(svc, CHILD)
    cfg = config_bytes([l0[1], l1[1]])
    man = manifest_bytes(cfg, [l0[0], l1[0]])
    with svc.lease() as lease:  # unpacked, never recorded: what a crash before the row leaves
        svc.prepare(manifest=man, manifest_media_type=spec.OCI_MANIFEST, config=cfg,
                    layers=[l0[0], l1[0]], tags=(), lease=lease)
        assert svc.remove_unused_snapshots() == []  # the lease holds them
    assert len(svc.remove_unused_snapshots()) == 2
    assert snapshot_dirs(svc) == [] and svc.db.snapshots.all() == []
    make_image(svc, [l0], ["keep:1"])
    assert svc.remove_unused_snapshots() == [] and len(snapshot_dirs(svc)) == 1


# ---------------------------------------------------------------------------------------------
# names: resolve, tag, rmi


def test_resolve_by_id_prefix_name_and_digest(svc):
    base, child, _ = family(svc)
    for text in (str(base.id), base.id.hex, base.id.hex[:12], f"sha256:{base.id.hex[:10]}",
                 "base:1", "docker.io/library/base:1", f"base@{base.manifest_digest}"):
        assert svc.resolve(text).id == base.id, text
    for text in ("base", "nope:1", "0" * 64, "zz"):
        with pytest.raises(NotFound, match=f"No such image: {text}"):
            svc.resolve(text)


def test_tag_moves_and_the_old_image_becomes_dangling(svc):
    base, child, _ = family(svc)
    svc.tag("base:1", "myrepo")  # :latest added
    svc.tag(child.id.hex[:12], "localhost:5000/x/y:2")
    assert svc.inspect("myrepo:latest")["Id"] == str(base.id)
    assert svc.resolve("localhost:5000/x/y:2").id == child.id
    svc.tag("child:1", "base:1")  # moves
    assert svc.resolve("base:1").id == child.id
    assert [s.repo_tags for s in svc.list() if s.id == base.id] == [("myrepo:latest",)]
    with pytest.raises(InvalidArgument):
        svc.tag("base:1", "Bad Name")


def test_rmi_semantics(svc):
    base, child, grand = family(svc)
    svc.tag("grandchild:1", "grandchild:2")
    # by tag with another tag left: untag only
    assert svc.remove("grandchild:2") == [("Untagged", "grandchild:2")]
    svc.tag("grandchild:1", "other/repo:x")
    # by id with tags in two repositories: refused without force
    with pytest.raises(Conflict, match="must be forced.*multiple repositories"):
        svc.remove(grand.id.hex[:12])
    out = svc.remove(grand.id.hex[:12], force=True)
    assert out[:3] == [("Untagged", "grandchild:1"), ("Untagged", "other/repo:x"),
                       ("Deleted", str(grand.id))]
    assert len(out) == 4  # + the grandchild's own layer; the shared ones stay
    assert len(snapshot_dirs(svc)) == 2
    # a container uses child: by tag refused, forced untag only
    svc.db.containers.add("c" * 64, "web", child.id)
    with pytest.raises(Conflict, match='unable to remove repository reference "child:1".*cccccccccccc'):
        svc.remove("child:1")
    assert svc.remove("child:1", force=True) == [("Untagged", "child:1")]
    assert svc.resolve(str(child.id)).id == child.id  # kept, dangling
    with pytest.raises(Conflict, match="cccccccccccc"):
        svc.remove(str(child.id), force=True)
    svc.db.containers.delete("c" * 64)
    # by id, untagged: deleted with its own layer (the base layer is still used by base)
    out = svc.remove(str(child.id))
    assert out[0] == ("Deleted", str(child.id)) and len(out) == 2
    # no_prune keeps the snapshot
    assert svc.remove("base:1", no_prune=True) == [("Untagged", "base:1"), ("Deleted", str(base.id))]
    assert len(snapshot_dirs(svc)) == 1
    assert svc.list() == []
    with pytest.raises(NotFound):
        svc.remove("base:1")
    assert_consistent(svc)


def test_list_filters(svc):
    base, child, grand = family(svc)
    svc.remove("child:1")  # child was the only tag: deleted
    svc.tag("base:1", "base:2")
    svc.db.tags.remove("docker.io/library/grandchild:1")
    rows = svc.list()
    assert [r.id for r in rows] == [grand.id, base.id]  # newest first
    assert rows[1].repo_tags == ("base:1", "base:2")
    assert rows[1].repo_digests == (f"base@{base.manifest_digest}",)
    assert [r.id for r in svc.list(dangling=True)] == [grand.id]
    assert [r.id for r in svc.list(dangling=False)] == [base.id]
    assert [r.repo_tags for r in svc.list(reference="base:2")] == [("base:2",)]
    assert [r.id for r in svc.list(reference="ba*")] == [base.id]
    assert rows[1].size == base.size and rows[1].containers == 0


# ---------------------------------------------------------------------------------------------
# inspect and history


def test_inspect_shape(svc):
    _, _, grand = family(svc)
    doc = svc.inspect("grandchild:1")
    assert list(doc) == ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created",
                         "DockerVersion", "Author", "Config", "Architecture", "Os", "Size",
                         "VirtualSize", "GraphDriver", "RootFS", "Metadata"]
    assert doc["Id"] == str(grand.id) and doc["RepoTags"] == ["grandchild:1"]
    c = doc["Config"]
    assert c["Cmd"] == ["run"] and c["Entrypoint"] == ["/app/run"] and c["Env"] == ["A=1"]
    assert c["WorkingDir"] == "/app" and c["User"] == "1000"
    assert c["ExposedPorts"] == {"80/tcp": {}} and c["Volumes"] == {"/data": {}}
    assert c["Labels"] == {"k": "v"} and c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 1000000000}
    assert c["OnBuild"] is None and c["AttachStdin"] is False and c["Image"] == ""
    assert doc["RootFS"] == {"Type": "layers", "Layers": [str(la.diff_id) for la in grand.layers]}
    assert doc["Created"] == "2024-01-03T00:00:00Z" and doc["Os"] == "linux"
    assert doc["Size"] == grand.size
    assert doc["GraphDriver"]["Name"] in ("overlay2", "vfs")
    base_doc = svc.inspect("base:1")
    assert base_doc["Config"]["Env"] is None and "ExposedPorts" not in base_doc["Config"]
    json.dumps(doc)  # serializable as is


def test_history_shape(svc):
    base, _, grand = family(svc)
    rows = svc.history("grandchild:1")
    assert [r.id for r in rows] == [str(grand.id), "<missing>", "<missing>", "<missing>"]
    assert [r.created_by for r in rows] == ["RUN rm /etc/gone", "COPY app /app",
                                            'CMD ["/bin/sh"]', "ADD base /"]
    assert rows[0].comment == "grand" and rows[2].empty_layer and rows[2].size == 0
    assert rows[1].size == len(CHILD["etc/os-release"]) + len(CHILD["app/run"])
    assert rows[3].size == sum(len(v) for v in BASE.values())
    assert [r.id for r in svc.history("base:1")] == [str(base.id), "<missing>"]


# ---------------------------------------------------------------------------------------------
# save -> load


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_save_load_round_trip(svc, other, tmp_path, fmt):
    base, child, grand = family(svc)
    svc.tag("base:1", "registry.example:5000/team/base:v2")
    data = saved(svc, ["grandchild:1", "base"], fmt)
    if fmt == "docker":
        names = [m[1] for m in tar_members(data)]
        assert "manifest.json" in names and "repositories" in names
        assert f"{grand.id.hex}.json" in names
        assert {f"blobs/sha256/{la.diff_id.hex}" for la in grand.layers} <= set(names)
        entries = json.loads(dict((m[1], m[2]) for m in tar_members(data) if m[0] == "file")
                             ["manifest.json"])
        assert entries[0]["RepoTags"] == ["grandchild:1"] and entries[1]["RepoTags"] == ["base:1"]
    else:
        files = dict((m[1], m[2]) for m in tar_members(data) if m[0] == "file")
        index = json.loads(files["index.json"])
        assert index["manifests"][0]["annotations"] == {
            "io.containerd.image.name": "docker.io/library/grandchild:1",
            "org.opencontainers.image.ref.name": "1"}
        assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert saved(svc, ["grandchild:1", "base"], fmt) == data  # deterministic
    lines = other.load(io.BytesIO(data))
    assert lines == ["Loaded image: grandchild:1", "Loaded image: base:1"]
    assert {s.id: s.repo_tags for s in other.list()} == {grand.id: ("grandchild:1",),
                                                        base.id: ("base:1",)}
    assert other.inspect("grandchild:1")["RootFS"] == svc.inspect("grandchild:1")["RootFS"]
    assert other.history("grandchild:1") == svc.history("grandchild:1")
    assert len(snapshot_dirs(other)) == 3
    target = tmp_path / "view"
    target.mkdir()
    other.mount_readonly(other.resolve("grandchild:1"), str(target))
    try:
        assert (target / "app/data").read_bytes() == b"grandchild data"
        assert not (target / "etc/gone").exists()
    finally:
        other.unmount(str(target))
    # a second load changes nothing; by id: untagged
    assert other.load(io.BytesIO(data)) == lines
    by_id = saved(svc, [child.id.hex], fmt)
    assert other.load(io.BytesIO(by_id)) == [f"Loaded image ID: {child.id}"]
    assert_consistent(other)


def test_load_gzip_archive_and_moved_tag(svc, other):
    base, child, _ = family(svc)
    make_image(other, [layer_in(other, {"x": b"x"})], ["base:1"])
    data = gzip.compress(saved(svc, ["base:1"], "docker"))
    lines = other.load(io.BytesIO(data))
    assert lines[0].startswith("The image base:1 already exists, renaming the old one with ID")
    assert lines[1:] == ["Loaded image: base:1"]
    assert other.resolve("base:1").id == base.id
    assert len(other.list(dangling=True)) == 1


def _blobs_of(svc, image) -> dict[str, bytes]:
    return {str(la.blob_digest): svc.content.read_bytes(la.blob_digest, limit=1 << 30)
            for la in image.layers}


def test_load_legacy_docker_archive_with_symlinked_layer_and_manifest_last(svc, other):
    """docker < 25: <id>/layer.tar, repeated layers as symlinks, manifest.json written last."""
    l0 = layer_in(svc, BASE, compression=None)
    img = make_image(svc, [l0, l0], ["twice:1"])  # the same layer twice
    cfg = svc.content.read_bytes(img.id)
    layer = svc.content.read_bytes(l0[0].digest)
    members = [("dir", "aaaa"), ("file", "aaaa/VERSION", b"1.0"), ("file", "aaaa/json", b"{}"),
               ("file", "aaaa/layer.tar", layer), ("dir", "bbbb"),
               ("sym", "bbbb/layer.tar", "../aaaa/layer.tar"),
               ("file", f"{img.id.hex}.json", cfg),
               ("file", "repositories", b'{"twice":{"1":"bbbb"}}'),
               ("file", "manifest.json", json.dumps([{
                   "Config": f"{img.id.hex}.json", "RepoTags": ["twice:1"],
                   "Layers": ["aaaa/layer.tar", "bbbb/layer.tar"]}]).encode())]
    assert other.load(io.BytesIO(tar_bytes(members))) == ["Loaded image: twice:1"]
    loaded = other.resolve("twice:1")
    assert loaded.id == img.id
    m = other.manifest(loaded)
    assert m.media_type == spec.DOCKER_MANIFEST
    assert [la.media_type for la in m.layers] == [spec.DOCKER_LAYER] * 2
    assert_consistent(other)
    # saved as an OCI layout, the docker manifest is said in OCI media types (skopeo reads
    # only those); the config, hence the image id, is the same
    files = {n[1]: n[2] for n in tar_members(saved(other, ["twice:1"], "oci")) if n[0] == "file"}
    [entry] = json.loads(files["index.json"])["manifests"]
    assert entry["mediaType"] == spec.OCI_MANIFEST
    oci = spec.parse_manifest(files["blobs/sha256/" + entry["digest"].split(":")[1]])
    assert oci.config.media_type == spec.OCI_CONFIG and oci.config.digest == img.id
    assert [la.media_type for la in oci.layers] == [spec.OCI_LAYER] * 2
    assert svc.load(io.BytesIO(tar_bytes([("file", k, v) for k, v in files.items()]))) == \
        ["Loaded image: twice:1"]


def test_load_docker_archive_with_compressed_layers(svc, other):
    """podman-style names (<diff hex>.tar), layers gzip-compressed inside the archive."""
    l0, l1 = layer_in(svc, BASE), layer_in(svc, CHILD)
    img = make_image(svc, [l0, l1], ["gz:1"])
    members = [("file", f"{d.hex}.tar", svc.content.read_bytes(b.digest)) for b, d in (l0, l1)]
    members += [("file", f"{img.id.hex}.json", svc.content.read_bytes(img.id)),
                ("file", "manifest.json", json.dumps([{
                    "Config": f"{img.id.hex}.json", "RepoTags": ["localhost/gz:1"],
                    "Layers": [f"{l0[1].hex}.tar", f"{l1[1].hex}.tar"]}]).encode())]
    assert other.load(io.BytesIO(tar_bytes(members))) == ["Loaded image: localhost/gz:1"]
    m = other.manifest(other.resolve("localhost/gz:1"))
    assert [la.media_type for la in m.layers] == [spec.DOCKER_LAYER_GZIP] * 2
    assert [la.digest for la in m.layers] == [l0[0].digest, l1[0].digest]


def test_load_docker25_archive_keeps_its_oci_manifest(svc, other):
    """docker 25+: manifest.json and an OCI index side by side; the OCI manifest is kept."""
    l0 = layer_in(svc, BASE, compression=None)
    img = make_image(svc, [l0], ["d25:1"])
    cfg = svc.content.read_bytes(img.id)
    man = svc.content.read_bytes(img.manifest_digest)
    members = [("file", "blobs/sha256/" + img.id.hex, cfg),
               ("file", "blobs/sha256/" + l0[0].digest.hex, svc.content.read_bytes(l0[0].digest)),
               ("file", "blobs/sha256/" + img.manifest_digest.hex, man),
               ("file", "index.json", json.dumps({"schemaVersion": 2, "manifests": [{
                   "mediaType": spec.OCI_MANIFEST, "digest": str(img.manifest_digest),
                   "size": len(man), "annotations": {
                       "io.containerd.image.name": "docker.io/library/d25:1",
                       "org.opencontainers.image.ref.name": "1"}}]}).encode()),
               ("file", "manifest.json", json.dumps([{
                   "Config": "blobs/sha256/" + img.id.hex, "RepoTags": ["d25:1"],
                   "Layers": ["blobs/sha256/" + l0[0].digest.hex]}]).encode()),
               ("file", "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    assert other.load(io.BytesIO(tar_bytes(members))) == ["Loaded image: d25:1"]
    assert other.resolve("d25:1").manifest_digest == img.manifest_digest


def _oci_archive(svc, img, annotations: dict | None, *, nested: bool = False) -> bytes:
    man = svc.content.read_bytes(img.manifest_digest)
    members = [("file", "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    for d in [img.id, *(la.blob_digest for la in img.layers)]:
        members.append(("file", f"blobs/sha256/{d.hex}", svc.content.read_bytes(d, limit=1 << 30)))
    members.append(("file", f"blobs/sha256/{img.manifest_digest.hex}", man))
    top = {"mediaType": spec.OCI_MANIFEST, "digest": str(img.manifest_digest), "size": len(man)}
    if nested:
        other_arch = "arm64" if ARCH != "arm64" else "amd64"
        sub = json.dumps({"schemaVersion": 2, "mediaType": spec.OCI_INDEX, "manifests": [
            {**top, "digest": "sha256:" + "1" * 64, "platform": {"os": "linux",
                                                                "architecture": other_arch}},
            {**top, "platform": {"os": "linux", "architecture": ARCH}},
            {**top, "digest": "sha256:" + "2" * 64,
             "platform": {"os": "unknown", "architecture": "unknown"}}]}).encode()
        d = Digest.of_bytes(sub)
        members.append(("file", f"blobs/sha256/{d.hex}", sub))
        top = {"mediaType": spec.OCI_INDEX, "digest": str(d), "size": len(sub)}
    if annotations:
        top["annotations"] = annotations
    members.append(("file", "index.json", json.dumps(
        {"schemaVersion": 2, "mediaType": spec.OCI_INDEX, "manifests": [top]}).encode()))
    return tar_bytes(members)


@pytest.mark.parametrize("annotations, expected", [
    ({"org.opencontainers.image.ref.name": "docker.io/library/pod:1"}, "pod:1"),  # podman save
    ({"org.opencontainers.image.ref.name": "localhost/pod:2"}, "localhost/pod:2"),
    ({"org.opencontainers.image.ref.name": "sko:3"}, "sko:3"),  # skopeo oci-archive:x.tar:sko:3
    ({"org.opencontainers.image.ref.name": "latest"}, None),  # a tag alone names nothing
    ({"org.opencontainers.image.ref.name": "4",
      "io.containerd.image.name": "docker.io/user/ctr:4"}, "user/ctr:4"),  # containerd, docker 25
    (None, None),
])
def test_load_oci_layout_names(svc, other, annotations, expected):
    img = make_image(svc, [layer_in(svc, BASE)])
    lines = other.load(io.BytesIO(_oci_archive(svc, img, annotations)))
    if expected is None:
        assert lines == [f"Loaded image ID: {img.id}"]
    else:
        assert lines == [f"Loaded image: {expected}"]
        assert other.resolve(expected).id == img.id


def test_load_oci_nested_index_selects_this_platform(svc, other):
    img = make_image(svc, [layer_in(svc, BASE)])
    data = _oci_archive(svc, img, {"org.opencontainers.image.ref.name": "multi:1"}, nested=True)
    assert other.load(io.BytesIO(data)) == ["Loaded image: multi:1"]
    assert other.resolve("multi:1").id == img.id


# ---------------------------------------------------------------------------------------------
# bad archives: a clear error, nothing recorded


def _bad(name: str, members: list[tuple]) -> list[tuple]:
    return [m for m in members if m[1] != name]


def _replace(name: str, members: list[tuple], data: bytes) -> list[tuple]:
    return [(m[0], m[1], data) if m[1] == name else m for m in members]


def _manifest_json(members, fn) -> list[tuple]:
    out = []
    for m in members:
        if m[1] == "manifest.json":
            doc = json.loads(m[2])
            fn(doc)
            m = ("file", "manifest.json", json.dumps(doc).encode())
        out.append(m)
    return out


def bad_archives(svc) -> dict[str, tuple[bytes, str]]:
    base, child, grand = family(svc)
    docker = tar_members(saved(svc, ["grandchild:1"], "docker"))
    oci = tar_members(saved(svc, ["grandchild:1"], "oci"))
    layer = f"blobs/sha256/{grand.layers[2].diff_id.hex}"
    oci_layer = f"blobs/sha256/{grand.layers[1].blob_digest.hex}"
    good = tar_bytes(docker)
    other_layer = tar_members(saved(svc, ["base:1"], "docker"))
    first = [m for m in other_layer if m[1].startswith("blobs/sha256/") and m[0] == "file"][0][2]
    return {
        "missing docker layer": (tar_bytes(_bad(layer, docker)), "is missing from the archive"),
        "missing oci layer": (tar_bytes(_bad(oci_layer, oci)), "is missing from the archive"),
        "oci blob digest mismatch": (tar_bytes(_replace(oci_layer, oci, b"x" * 100)),
                                     "digest mismatch"),
        "docker layer diff mismatch": (tar_bytes(_manifest_json(
            [("file", "l2/layer.tar", first) if m[1] == layer else m for m in docker],
            lambda d: d[0]["Layers"].__setitem__(2, "l2/layer.tar"))), "layer 2 .*diff id mismatch"),
        "traversal member": (tar_bytes(docker + [("file", "../evil", b"x")]),
                             "'../evil' contains '..'"),
        "absolute member": (tar_bytes([("file", "/etc/evil", b"x")] + docker),
                            "absolute path"),
        "manifest.json outside": (tar_bytes(_manifest_json(docker, lambda d: d[0].update(
            Config="../../etc/passwd"))), "outside the archive"),
        "manifest.json absent path": (tar_bytes(_manifest_json(docker, lambda d: d[0].update(
            Config="nope.json"))), "missing from the archive"),
        "symlink outside": (tar_bytes(docker + [("sym", "x/layer.tar", "../../etc/passwd")]),
                            "outside the archive"),
        "truncated gzip": (gzip.compress(good)[: len(gzip.compress(good)) // 2],
                           "truncated or corrupt"),
        "truncated tar": (good[: len(good) // 2 + 7], "truncat|corrupt"),
        "not an image archive": (tar_bytes([("file", "hello.txt", b"hi")]),
                                 "neither a docker archive"),
        "bad manifest.json": (tar_bytes(_replace("manifest.json", docker, b"{")), "invalid JSON"),
    }


def test_bad_archives_fail_clearly_and_record_nothing(svc, other):
    kept = make_image(other, [layer_in(other, {"keep": b"k"})], ["keep:1"])
    before = (other.list(), other.db.snapshots.all(), other.db.tags.all())
    for name, (data, message) in bad_archives(svc).items():
        with pytest.raises(InvalidArgument, match=message):
            other.load(io.BytesIO(data))
        assert (other.list(), other.db.snapshots.all(), other.db.tags.all()) == before, name
        assert other.db.leases.all() == [], name
        assert_consistent(other)
    assert other.resolve("keep:1").id == kept.id


def test_save_unknown_names_and_formats(svc):
    family(svc)
    with pytest.raises(NotFound):
        saved(svc, ["nope:1"], "docker")
    with pytest.raises(InvalidArgument):
        saved(svc, ["base:1"], "tarball")
