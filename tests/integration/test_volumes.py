"""Volumes for real: the daemon's /volumes API driven by the docker CLI and raw HTTP, the local
driver's tmpfs and bind options mounted and unmounted on the real kernel, and copy-up from an image
tree that tries to escape with symlinks."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from daemon_util import Daemon, daemon_fixture

from dockyard import errors
from dockyard.engine.volumes import VolumeService, mounts_under
from dockyard.metadata import Database, ImageRecord
from dockyard.oci.digest import Digest
from dockyard.store import Store

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount)")
needs_docker = pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")

daemon = daemon_fixture(scope="module", busybox=False, name="daemon")


def _add_container(root: Path, cid: str) -> None:
    """A container row written straight into the daemon's database (WAL: the daemon sees it),
    standing in for the container API in these tests."""
    db = Database(str(root / "dockyard.db"))
    try:
        image = Digest.of_bytes(b"volumes-test-config")
        if db.images.get(image) is None:
            db.images.add(ImageRecord(image, Digest.of_bytes(b"m"),
                                      "application/vnd.oci.image.manifest.v1+json", 1, "",
                                      "amd64", "linux", 0))
        db.containers.add(cid, f"c-{cid[:12]}", image)
    finally:
        db.close()


def _with_db(root: Path, fn):
    db = Database(str(root / "dockyard.db"))
    try:
        return fn(db)
    finally:
        db.close()


# ------------------------------------------------------------------ docker CLI and API

@needs_docker
def test_docker_cli_create_ls_inspect_rm(daemon: Daemon) -> None:
    assert daemon.docker("volume", "create", "cli-data").stdout == "cli-data\n"
    assert daemon.docker("volume", "create", "cli-data").stdout == "cli-data\n"  # idempotent
    daemon.docker("volume", "create", "--label", "env=prod", "--label", "team",
                  "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=64m", "cli-tmp")
    anon = daemon.docker("volume", "create").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anon)

    ls = daemon.docker("volume", "ls").stdout.splitlines()
    assert ls[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert {tuple(line.split()) for line in ls[1:]} >= {("local", "cli-data"), ("local", "cli-tmp"),
                                                        ("local", anon)}
    q = daemon.docker("volume", "ls", "-q", "--filter", "label=env=prod").stdout.split()
    assert q == ["cli-tmp"]
    q = daemon.docker("volume", "ls", "-q", "-f", "name=^cli-d").stdout.split()
    assert q == ["cli-data"]
    fmt = daemon.docker("volume", "ls", "-f", "name=cli-tmp", "--format",
                        "{{.Name}} {{.Driver}} {{.Labels}}").stdout.strip()
    name, driver, labels = fmt.split(" ")  # the docker CLI joins a Go map: any order
    assert (name, driver) == ("cli-tmp", "local")
    assert sorted(labels.split(",")) == ["env=prod", "team="]

    [info] = json.loads(daemon.docker("volume", "inspect", "cli-tmp").stdout)
    assert info["Name"] == "cli-tmp" and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}
    assert info["Labels"] == {"env": "prod", "team": ""}
    assert info["Mountpoint"] == f"{daemon.root}/volumes/cli-tmp/_data"
    assert os.path.isdir(info["Mountpoint"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["CreatedAt"])
    mp = daemon.docker("volume", "inspect", "-f", "{{.Mountpoint}}", anon).stdout.strip()
    assert mp == f"{daemon.root}/volumes/{anon}/_data"

    out = daemon.docker("volume", "rm", "cli-data", "cli-tmp", anon).stdout.split()
    assert out == ["cli-data", "cli-tmp", anon]
    assert not (daemon.root / "volumes" / "cli-data").exists()
    rm = daemon.docker("volume", "rm", "cli-data", check=False)
    assert rm.returncode == 1
    assert rm.stderr.strip() == "Error response from daemon: get cli-data: no such volume"
    assert daemon.docker("volume", "rm", "-f", "cli-data").returncode == 0


@needs_docker
def test_docker_cli_refusals(daemon: Daemon) -> None:
    p = daemon.docker("volume", "create", "-o", "nosuch=1", "bad-opt", check=False)
    assert p.returncode == 1 and 'create bad-opt: invalid option: "nosuch"' in p.stderr
    p = daemon.docker("volume", "create", "-o", "type=tmpfs", "bad-opt", check=False)
    assert p.returncode == 1 and 'missing required option: "device"' in p.stderr
    p = daemon.docker("volume", "create", "a/b", check=False)
    assert p.returncode == 1 and "includes invalid characters for a local volume name" in p.stderr
    p = daemon.docker("volume", "create", "-d", "nfs9", "other", check=False)
    assert p.returncode == 1 and 'plugin "nfs9" not found' in p.stderr
    p = daemon.docker("volume", "inspect", "nothere", check=False)
    assert p.returncode == 1 and "get nothere: no such volume" in p.stderr
    p = daemon.docker("volume", "ls", "-f", "bogus=1", check=False)
    assert p.returncode == 1 and "invalid filter 'bogus'" in p.stderr
    assert "bad-opt" not in daemon.docker("volume", "ls", "-q").stdout


@needs_docker
def test_in_use_and_prune(daemon: Daemon) -> None:
    daemon.docker("volume", "create", "pr-named")
    daemon.docker("volume", "create", "--label", "keep=1", "pr-kept")
    daemon.docker("volume", "create", "pr-used")
    anon = daemon.docker("volume", "create").stdout.strip()
    Path(daemon.root, "volumes", anon, "_data", "blob").write_bytes(b"z" * 4096)
    cid = "c" * 64
    _add_container(daemon.root, cid)
    _with_db(daemon.root, lambda db: db.volumes.attach(cid, "pr-used", "/data"))

    p = daemon.docker("volume", "rm", "pr-used", check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == ("Error response from daemon: remove pr-used: volume is in use - "
                                f"[{cid}]")
    code, _, body = daemon.request("DELETE", "/v1.45/volumes/pr-used?force=1")
    assert code == 409 and json.loads(body)["message"].startswith("remove pr-used: volume is in")
    dangling = daemon.docker("volume", "ls", "-q", "-f", "dangling=false").stdout.split()
    assert dangling == ["pr-used"]

    out = daemon.docker("volume", "prune", "-f").stdout  # Docker 23+: anonymous ones only
    assert anon in out and "pr-named" not in out and "Total reclaimed space: 4.096kB" in out
    assert not (daemon.root / "volumes" / anon).exists()
    out = daemon.docker("volume", "prune", "-af", "--filter", "label!=keep").stdout
    assert "pr-named" in out and "pr-kept" not in out and "pr-used" not in out
    left = daemon.docker("volume", "ls", "-q").stdout.split()
    assert "pr-kept" in left and "pr-used" in left and "pr-named" not in left

    _with_db(daemon.root, lambda db: db.containers.delete(cid))
    daemon.docker("volume", "rm", "pr-used", "pr-kept")


def test_raw_api_shapes(daemon: Daemon) -> None:
    code, headers, body = daemon.request(
        "POST", "/v1.45/volumes/create",
        json.dumps({"Name": "api-v", "Driver": "local", "DriverOpts": {}, "Labels": {"x": "1"}})
        .encode(), {"Content-Type": "application/json"})
    assert code == 201 and headers["content-type"] == "application/json"
    v = json.loads(body)
    assert set(v) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert (v["Name"], v["Labels"], v["Options"]) == ("api-v", {"x": "1"}, {})

    listing = daemon.json("GET", '/volumes?filters={"name":{"api-v":true}}')
    assert listing["Warnings"] == [] and [x["Name"] for x in listing["Volumes"]] == ["api-v"]
    assert daemon.json("GET", "/v1.24/volumes/api-v")["Name"] == "api-v"

    code, _, body = daemon.request("GET", "/volumes/nope")
    assert code == 404 and json.loads(body) == {"message": "get nope: no such volume"}
    code, _, body = daemon.request("POST", "/volumes/create", b"{not json")
    assert code == 400

    anon = daemon.json("POST", "/volumes/create", {}, status=201)
    assert anon["Options"] is None and "com.docker.volume.anonymous" in anon["Labels"]

    # before API 1.42 prune takes every unused volume, named ones too
    pruned = daemon.json("POST", "/v1.41/volumes/prune")
    assert sorted(pruned["VolumesDeleted"]) == sorted(["api-v", anon["Name"]])
    assert pruned["SpaceReclaimed"] == 0
    code, _, body = daemon.request("DELETE", "/volumes/api-v")
    assert code == 404
    daemon.json("POST", "/volumes/create", {"Name": "api-w"}, status=201)
    code, _, body = daemon.request("DELETE", "/volumes/api-w")
    assert code == 204 and body == b""


def test_volumes_survive_a_restart(daemon: Daemon) -> None:
    daemon.json("POST", "/volumes/create", {"Name": "persist", "Labels": {"a": "b"}}, status=201)
    Path(daemon.root, "volumes", "persist", "_data", "f").write_text("kept")
    daemon.restart()
    v = daemon.json("GET", "/volumes/persist")
    assert v["Labels"] == {"a": "b"}
    assert Path(v["Mountpoint"], "f").read_text() == "kept"
    daemon.request("DELETE", "/volumes/persist")


# ------------------------------------------------------------------ local driver mounts

@pytest.fixture
def service(tmp_path: Path):
    store = Store(str(tmp_path / "root"))
    store.ensure()
    db = Database(store.db)
    svc = VolumeService(store, db)
    yield svc
    for v in svc.list():  # leave no mount behind, whatever the test did
        for target in mounts_under(store.volume(v.name)):
            subprocess.run(["umount", "-l", target], check=False)
    db.close()


def _mount_of(path: str) -> str | None:
    """The filesystem type mounted exactly at ``path``, if any."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == path:
                return right.split()[0]
    return None


@needs_root
def test_tmpfs_volume_mounted_while_used(service: VolumeService) -> None:
    service.create("tmp-v", options={"type": "tmpfs", "device": "tmpfs", "o": "size=4m,mode=0750"})
    data = service.mountpoint("tmp-v")
    assert _mount_of(data) is None  # lazily: not at create
    assert service.mount_for_container("tmp-v", "c1") == data
    assert _mount_of(data) == "tmpfs"
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o750
    assert service.mount_for_container("tmp-v", "c2") == data
    assert len(mounts_under(data)) == 1  # the second user shares the mount
    Path(data, "f").write_text("in tmpfs")
    with pytest.raises(OSError):
        Path(data, "big").write_bytes(b"x" * (5 << 20))  # size=4m is enforced
    assert service.unmount_if_unused("tmp-v", "c1") is False
    assert _mount_of(data) == "tmpfs"
    assert service.unmount_if_unused("tmp-v", "c2") is True
    assert _mount_of(data) is None and not Path(data, "f").exists()
    service.mount_for_container("tmp-v", "c3")
    service.remove("tmp-v")  # no container row uses it: removal unmounts first
    assert _mount_of(data) is None and not os.path.exists(service.store.volume("tmp-v"))


@needs_root
def test_bind_volume_keeps_host_data(service: VolumeService, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "keep").write_text("host file")
    service.create("bind-v", options={"type": "none", "o": "bind", "device": str(host)})
    data = service.mount_for_container("bind-v", "c1")
    assert Path(data, "keep").read_text() == "host file"
    Path(data, "new").write_text("from the container")
    service.remove("bind-v")  # unmounted before the data directory goes
    assert (host / "keep").read_text() == "host file"
    assert (host / "new").read_text() == "from the container"
    assert not mounts_under(str(host))

    service.create("bind-ro", options={"type": "none", "o": "bind,ro", "device": str(host)})
    data = service.mount_for_container("bind-ro", "c1")
    with pytest.raises(OSError):
        Path(data, "x").write_text("no")
    service.unmount_if_unused("bind-ro", "c1")
    assert _mount_of(data) is None

    service.create("bind-gone", options={"type": "none", "o": "bind",
                                         "device": str(tmp_path / "missing")})
    with pytest.raises(errors.KernelError, match="mount volume bind-gone: failed to mount"):
        service.mount_for_container("bind-gone", "c1")
    assert _mount_of(service.mountpoint("bind-gone")) is None


# ------------------------------------------------------------------ copy-up

def _image_tree(root: Path, outside: Path) -> None:
    """A small image rootfs whose /data holds every kind of entry and some escape attempts."""
    d = root / "data"
    (d / "sub").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "marker").write_text("image etc")
    (d / "file").write_bytes(b"hello\n")
    os.chown(d / "file", 1234, 5678)
    os.chmod(d / "file", 0o4751)  # after chown, which clears set-id bits
    os.utime(d / "file", ns=(1_000_000_000, 2_000_000_000))
    (d / "sub" / "deep").write_text("deep")
    os.link(d / "file", d / "hardlink")
    os.symlink("/etc", d / "abs-link")                 # copied as a link, not followed
    os.symlink(str(outside / "secret"), d / "host-link")
    os.mkfifo(d / "fifo", 0o640)
    os.chmod(d, 0o1777)
    os.chown(d, 42, 43)
    os.utime(d / "sub", ns=(3_000_000_000, 4_000_000_000))
    try:
        os.setxattr(d / "file", "user.note", b"kept")
    except OSError:
        pass
    os.symlink("/etc", root / "target")                 # ln -s /etc target
    os.symlink("../../../../../../etc", root / "climb")


@needs_root
def test_copy_up_copies_image_content(service: VolumeService, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    rootfs = tmp_path / "rootfs"
    _image_tree(rootfs, outside)
    v = service.create()
    assert service.copy_up(v.name, str(rootfs), "/data") is True
    dst = Path(v.mountpoint)
    st = os.stat(dst)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o1777, 42, 43)
    f = os.stat(dst / "file")
    assert (stat.S_IMODE(f.st_mode), f.st_uid, f.st_gid) == (0o4751, 1234, 5678)
    assert f.st_mtime_ns == 2_000_000_000 and (dst / "file").read_bytes() == b"hello\n"
    assert os.stat(dst / "hardlink").st_ino == f.st_ino
    assert os.stat(dst / "sub").st_mtime_ns == 4_000_000_000
    assert (dst / "sub" / "deep").read_text() == "deep"
    assert os.readlink(dst / "abs-link") == "/etc"
    assert os.readlink(dst / "host-link") == str(outside / "secret")
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
    try:
        assert os.getxattr(dst / "file", "user.note") == b"kept"
    except OSError:
        pass  # the temp filesystem has no user xattrs
    assert (outside / "secret").read_text() == "host secret"

    # a second copy into a volume that now has content does nothing
    (rootfs / "data" / "late").write_text("late")
    assert service.copy_up(v.name, str(rootfs), "/data") is False
    assert not (dst / "late").exists()
    # nocopy, a missing path and a file path copy nothing
    other = service.create()
    assert service.copy_up(other.name, str(rootfs), "/data", nocopy=True) is False
    assert service.copy_up(other.name, str(rootfs), "/missing") is False
    assert service.copy_up(other.name, str(rootfs), "/data/file") is False
    assert os.listdir(other.mountpoint) == []


@needs_root
@pytest.mark.parametrize("path", ["/target", "/climb", "/../../../../etc", "/data/abs-link"])
def test_copy_up_never_leaves_the_image_root(service: VolumeService, tmp_path: Path,
                                             path: str) -> None:
    """A path through ``ln -s /etc target`` (or ``..``) resolves to the image's /etc, not the
    host's: the volume gets the image's marker and no host file."""
    outside = tmp_path / "outside"
    outside.mkdir()
    rootfs = tmp_path / "rootfs"
    _image_tree(rootfs, outside)
    v = service.create()
    assert service.copy_up(v.name, str(rootfs), path) is True
    assert sorted(os.listdir(v.mountpoint)) == ["marker"]
    assert Path(v.mountpoint, "marker").read_text() == "image etc"
    assert not Path(v.mountpoint, "passwd").exists()


@needs_root
def test_copy_up_into_a_tmpfs_volume(service: VolumeService, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    _image_tree(rootfs, tmp_path)
    service.create("tmp-copy", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    data = service.mount_for_container("tmp-copy", "c1")
    assert service.copy_up("tmp-copy", str(rootfs), "/data/sub") is True
    assert Path(data, "deep").read_text() == "deep"
    assert service.unmount_if_unused("tmp-copy", "c1") is True
    assert os.listdir(data) == []  # the content lived in the tmpfs only


@needs_root
def test_restart_readopts_and_sweeps_mounts(service: VolumeService) -> None:
    """After a daemon restart (a new service on the same store), a running container's volume
    keeps its mount; a mount no container holds any more is swept."""
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    service.create("held", options=opts)
    service.create("orphan", options=opts)
    held = service.mount_for_container("held", "c1")
    orphan = service.mount_for_container("orphan", "c2")
    Path(held, "state").write_text("running")
    again = VolumeService(service.store, service.db)  # the restarted daemon's service
    assert again.mount_for_container("held", "c1") == held
    assert len(mounts_under(held)) == 1 and Path(held, "state").read_text() == "running"
    assert again.sweep_mounts() == ["orphan"]
    assert _mount_of(orphan) is None and _mount_of(held) == "tmpfs"
    assert again.unmount_if_unused("held", "c1") is True
    assert _mount_of(held) is None
