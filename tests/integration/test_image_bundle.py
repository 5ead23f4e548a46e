"""Bundles from images on the real kernel (root): ``create_bundle`` + dockyard-runtime run the image,
the container's writes stay in its upper dir (the image's layer directories are checksummed before
and after), users and working directories are resolved inside the rootfs, failures leave nothing,
and ``remove_bundle`` leaves no mount.

Images: ``busybox:latest`` from ``image.bootstrap.bootstrap_busybox`` (the host's busybox-static),
and small hand-made images (``make_image``: tar layers written into the content store through the
service, then ``add_image``) for the user, link and working-directory cases.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from helpers import Runtime, runtime_binary, unique_id

from dockyard import errors
from dockyard.image.bootstrap import bootstrap_busybox
from dockyard.image.bundle import Bundle, create_bundle, remove_bundle, resolve_user
from dockyard.image.service import ImageService, LayerBlob
from dockyard.oci.digest import Digest
from dockyard.oci.spec_builder import RunOptions
from dockyard.snapshot.apply import mounts_under

HOST_BUSYBOX = Path("/bin/busybox")
pytestmark = pytest.mark.skipif(not HOST_BUSYBOX.exists(),
                                reason="needs host /bin/busybox (Debian package busybox-static)")
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def svc(store_root: Path):
    with ImageService.open(str(store_root)) as s:
        bootstrap_busybox(s)
        yield s


@pytest.fixture
def runtime(tmp_path: Path):
    rt = Runtime(runtime_binary("dockyard"), tmp_path / "runtime-state")
    yield rt
    rt.cleanup()


@pytest.fixture
def bundles(svc: ImageService, tmp_path: Path):
    """Factory: bundles(image, args, **opts) -> Bundle; every bundle is removed afterwards and the
    test's temp dir must then hold no mount."""
    made: list[Bundle] = []

    def make(image: str = "busybox", args=None, **kw) -> Bundle:
        b = create_bundle(svc, image, str(tmp_path / f"bundle{len(made)}"),
                          container_id=unique_id(), args=args,
                          opts=RunOptions(cgroup_parent="/dockyard-test", **kw))
        made.append(b)
        return b

    yield make
    for b in made:
        if os.path.isdir(b.path):
            remove_bundle(svc, b)
    assert mounts_under(str(tmp_path)) == []


def run(runtime: Runtime, b: Bundle, **kw):
    return runtime.run("run", "--bundle", b.path, b.id, check=False, **kw)


def tree_digest(root: str) -> str:
    """Names, types, owners, modes, sizes, mtimes, link targets, device numbers, xattrs and file
    contents of a directory tree (atime left out: reading changes it)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in ["."] + sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            h.update(f"{rel}\0{st.st_mode:o} {st.st_uid} {st.st_gid} {st.st_size} "
                     f"{st.st_mtime_ns} {st.st_rdev}\0".encode())
            for attr in sorted(os.listxattr(path, follow_symlinks=False)):
                h.update(attr.encode() + os.getxattr(path, attr, follow_symlinks=False))
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def layer_tar(entries: list[tuple]) -> bytes:
    """("dir", path, mode) | ("file", path, text, mode) | ("link", path, target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, path, *rest in entries:
            ti = tarfile.TarInfo(path)
            ti.mtime = 1_700_000_000
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, rest[0]
                tar.addfile(ti)
            elif kind == "file":
                data = rest[0].encode()
                ti.size, ti.mode = len(data), rest[1]
                tar.addfile(ti, io.BytesIO(data))
            else:
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, rest[0], 0o777
                tar.addfile(ti)
    return buf.getvalue()


def make_image(svc: ImageService, tag: str, layers: list[bytes], config: dict) -> str:
    """An OCI image of uncompressed ``layers`` with ``config`` as its container config."""
    from dockyard.oci.reference import parse_reference

    diff_ids = [str(Digest.of_bytes(t)) for t in layers]
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": config,
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    with svc.lease() as lease:
        blobs = [LayerBlob(svc.write_blob(lease, t), len(t), OCI_LAYER) for t in layers]
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": str(Digest.of_bytes(cfg)), "size": len(cfg)},
            "layers": [{"mediaType": OCI_LAYER, "digest": str(b.digest), "size": b.size}
                       for b in blobs]}).encode()
        svc.write_blob(lease, cfg)
        rec = svc.add_image(manifest=manifest, manifest_media_type=
                            "application/vnd.oci.image.manifest.v1+json", config=cfg,
                            layers=blobs, tags=[parse_reference(tag)])
    return str(rec.id)


def busybox_layer() -> bytes:
    """The host's busybox with sh, id, cat, env, pwd, ls, touch as links (a second tiny base)."""
    data = HOST_BUSYBOX.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755, 1
            tar.addfile(ti)
        ti = tarfile.TarInfo("bin/busybox")
        ti.size, ti.mode, ti.mtime = len(data), 0o755, 1
        tar.addfile(ti, io.BytesIO(data))
        for applet in ("sh", "id", "cat", "env", "pwd", "ls", "touch"):
            ti = tarfile.TarInfo(f"bin/{applet}")
            ti.type, ti.linkname, ti.mtime = tarfile.SYMTYPE, "busybox", 1
            tar.addfile(ti)
    return buf.getvalue()


@pytest.fixture(scope="module")
def app_image(svc: ImageService) -> str:
    """busybox + an ``app`` user (1000:1000, member of staff) whose /etc/passwd is a symlink
    climbing far above the root: it only resolves inside the rootfs. Entrypoint, env and a
    working directory that does not exist yet."""
    top = layer_tar([
        ("dir", "real", 0o755),
        ("file", "real/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                                "app:x:1000:1000::/home/app:/bin/sh\n"
                                "broken:x:notanumber:0::/:/bin/sh\n", 0o644),
        ("link", "etc/passwd", "../../../../../../../../../real/passwd"),
        ("file", "etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\n"
                              "wheel:x:10:root\n", 0o644),
        ("link", "escape", "../../../../../../../../../../tmp-escape-target"),
    ])
    return make_image(svc, "dockyard-test/app:1", [busybox_layer(), top], {
        "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["id; pwd; env"], "User": "app",
        "Env": ["PATH=/bin", "GREETING=hello"], "WorkingDir": "/srv/app"})


# ---------------------------------------------------------------- tests

def test_cat_passwd_and_exit_code(bundles, runtime: Runtime) -> None:
    b = bundles("busybox", ["cat", "/etc/passwd"])
    out = run(runtime, b)
    assert out.returncode == 0, out
    assert out.stdout.startswith("root:x:0:0:"), out
    assert "nobody:x:65534:" in out.stdout
    assert json.loads(Path(b.path, "config.json").read_text())["root"] == {"path": "rootfs"}
    b = bundles("busybox", ["sh", "-c", "exit 3"])
    assert run(runtime, b).returncode == 3


def test_writes_stay_in_the_upper_dir(svc: ImageService, bundles, runtime: Runtime) -> None:
    image = svc.resolve("busybox")
    chain = svc.unpack(image)
    layers = svc.snapshotter.lowerdirs(chain)  # type: ignore[attr-defined]
    before = [tree_digest(d) for d in layers]
    b = bundles("busybox", ["sh", "-c", "echo changed > /etc/passwd && rm /bin/ls && "
                            "mkdir -p /new/dir && echo data > /new/dir/f && chmod 600 /etc/group"])
    out = run(runtime, b)
    assert out.returncode == 0, out
    assert [tree_digest(d) for d in layers] == before
    assert Path(b.upper, "etc/passwd").read_text() == "changed\n"
    assert Path(b.upper, "new/dir/f").read_text() == "data\n"
    ls = os.lstat(Path(b.upper, "bin/ls"))  # an overlay whiteout
    assert stat.S_ISCHR(ls.st_mode) and ls.st_rdev == 0
    # a second container of the image sees the image, not the first one's changes
    b2 = bundles("busybox", ["sh", "-c", "head -1 /etc/passwd; ls /bin/ls; test -e /new"])
    out = run(runtime, b2)
    assert out.returncode == 1 and out.stdout == "root:x:0:0:root:/root:/bin/sh\n/bin/ls\n", out
    remove_bundle(svc, b)
    assert not os.path.exists(b.path)
    assert mounts_under(b.path) == []
    assert [tree_digest(d) for d in layers] == before


def test_image_config_user_env_workdir(bundles, runtime: Runtime, app_image: str,
                                       tmp_path: Path) -> None:
    b = bundles("dockyard-test/app:1")
    out = run(runtime, b)
    assert out.returncode == 0, out
    lines = out.stdout.splitlines()
    uid, gid, groups = lines[0].split()  # the kernel keeps supplementary groups sorted
    assert (uid, gid) == ("uid=1000(app)", "gid=1000(app)")
    assert sorted(groups.removeprefix("groups=").split(",")) == ["1000(app)", "50(staff)"]
    assert lines[1] == "/srv/app"  # created, as dockerd does
    env = set(lines[2:])
    assert {"PATH=/bin", "GREETING=hello", f"HOSTNAME={b.id}"} <= env
    assert os.path.isdir(Path(b.upper, "srv/app"))
    spec = json.loads(Path(b.path, "config.json").read_text())
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50]}
    assert spec["process"]["capabilities"] == {"bounding": spec["process"]["capabilities"]["bounding"]}


def test_user_options(bundles, runtime: Runtime, app_image: str) -> None:
    b = bundles(app_image, ["id"], user="root", group_add=("staff", "77"))
    out = run(runtime, b)
    assert out.stdout.split()[:2] == ["uid=0(root)", "gid=0(root)"], out
    assert "50(staff)" in out.stdout and "10(wheel)" in out.stdout and "77" in out.stdout
    b = bundles(app_image, ["id"], user="4242:50")  # numeric, no passwd entry: used as is
    assert run(runtime, b).stdout.split()[:2] == ["uid=4242", "gid=50(staff)"]


@pytest.mark.parametrize("user, match", [
    ("nosuchuser", "unable to find user nosuchuser: no matching entries"),
    ("broken", "malformed"),  # uid "notanumber": never read as 0
    ("app:nosuchgroup", "unable to find group nosuchgroup"),
    ("-1", "out of range"),
    ("4294967295", "out of range"),
])
def test_bad_user_refused_and_nothing_left(svc: ImageService, app_image: str, tmp_path: Path,
                                           user: str, match: str) -> None:
    target = tmp_path / "b"
    with pytest.raises(errors.InvalidArgument, match=match):
        create_bundle(svc, app_image, str(target), container_id=unique_id(), args=["id"],
                      opts=RunOptions(user=user))
    assert not target.exists()
    assert mounts_under(str(tmp_path)) == []


def test_links_resolve_inside_the_rootfs(svc: ImageService, bundles, app_image: str,
                                         tmp_path: Path) -> None:
    """/etc/passwd and the working directory are symlinks climbing out of the rootfs: both
    resolve inside it (the host's /real and tmp-escape-target are never touched)."""
    b = bundles(app_image, ["true"], working_dir="/escape/sub")
    assert resolve_user(b.rootfs, "app") .uid == 1000
    assert os.path.isdir(Path(b.upper, "tmp-escape-target/sub"))
    assert not os.path.exists("/tmp-escape-target") and not os.path.exists("/real")
    with pytest.raises(errors.InvalidArgument, match="not a directory"):
        create_bundle(svc, app_image, str(tmp_path / "x"), container_id=unique_id(),
                      args=["true"], opts=RunOptions(working_dir="/etc/group/sub"))
    assert not (tmp_path / "x").exists()


def test_read_only_rootfs(bundles, runtime: Runtime) -> None:
    b = bundles("busybox", ["sh", "-c", "touch /x 2>/dev/null; echo $?; echo ok > /tmp/t"],
                read_only=True)
    out = run(runtime, b)
    assert out.stdout.splitlines()[0] != "0", out
    assert out.returncode != 0  # /tmp is part of the read-only root too
    assert not os.path.exists(Path(b.upper, "x"))


def test_existing_directory_refused(svc: ImageService, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full/keep").write_text("mine")
    with pytest.raises(errors.AlreadyExists):
        create_bundle(svc, "busybox", str(tmp_path / "full"), container_id=unique_id())
    assert (tmp_path / "full/keep").read_text() == "mine"
    with pytest.raises(errors.NotFound):
        create_bundle(svc, "nosuchimage", str(tmp_path / "y"), container_id=unique_id())
    with pytest.raises(errors.InvalidArgument, match="invalid container id"):
        create_bundle(svc, "busybox", str(tmp_path / "z"), container_id="../x")
    with pytest.raises(errors.InvalidArgument, match="No command specified"):
        create_bundle(svc, "busybox", str(tmp_path / "z"), container_id=unique_id(),
                      opts=RunOptions(entrypoint=("",)))
    assert not (tmp_path / "z").exists()
    assert mounts_under(str(tmp_path)) == []


def test_vfs_driver(tmp_path: Path, runtime: Runtime) -> None:
    """The same bundle on the vfs snapshotter (a copy of the chain bind-mounted)."""
    from dockyard.content import ContentStore
    from dockyard.metadata import Database
    from dockyard.snapshot import open_snapshotter
    from dockyard.store import Store

    store = Store(str(tmp_path / "vfs-store"))
    store.ensure()
    db = Database(store.db)
    try:
        svc = ImageService(store, db, ContentStore(store),
                           open_snapshotter(store, db.snapshots, driver="vfs"))
        make_image(svc, "tiny:1", [busybox_layer()], {"Cmd": ["sh", "-c", "echo vfs; exit 4"]})
        layer = svc.snapshotter.lowerdirs(svc.unpack(svc.resolve("tiny:1")))[0]  # type: ignore[attr-defined]
        before = tree_digest(layer)
        b = create_bundle(svc, "tiny:1", str(tmp_path / "b"), container_id=unique_id(),
                          opts=RunOptions(cgroup_parent="/dockyard-test"))
        try:
            out = run(runtime, b)
            assert (out.returncode, out.stdout) == (4, "vfs\n"), out
            assert tree_digest(layer) == before
        finally:
            remove_bundle(svc, b)
        assert mounts_under(str(tmp_path)) == []
    finally:
        db.close()


def test_workdir_in_proc_is_confined(bundles, runtime: Runtime) -> None:
    """Checklist item 21: a WorkingDir of /proc/self/fd/N never lands on an fd inherited from the
    host (there is none to land on), and /proc/1/root is the container's own root."""
    out = run(runtime, bundles("busybox", ["pwd"], working_dir="/proc/self/fd/7"))
    assert out.returncode != 0 and "cwd" in out.stderr, out
    out = run(runtime, bundles("busybox", ["sh", "-c", "pwd; head -1 /etc/passwd"],
                               working_dir="/proc/1/root"))
    assert (out.returncode, out.stdout) == (0, "/\nroot:x:0:0:root:/root:/bin/sh\n"), out
