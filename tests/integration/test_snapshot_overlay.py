"""Snapshots on the real kernel (root): overlay views of hand-built layers (whiteouts, opaque dirs,
overrides), writes to the upper, 130 layers, read-only views, cleanup after a crash, and the vfs
fallback showing the same tree. Every mount is undone in a ``finally``; the session's leak check
fails the run if one is left."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))

from snapshot_fakes import FakeSnapshotRepo  # noqa: E402

from dockyard.errors import FailedPrecondition  # noqa: E402
from dockyard.kernel.syscalls import LibcSyscalls  # noqa: E402
from dockyard.snapshot import open_snapshotter  # noqa: E402
from dockyard.snapshot.apply import lowerdir_plus_supported, mounts_under, overlay_supported  # noqa: E402
from dockyard.snapshot.fsutil import copy_tree  # noqa: E402
from dockyard.snapshot.mounts import LINKS, LOWERDIR_PLUS  # noqa: E402
from dockyard.snapshot.overlay import Snapshotter  # noqa: E402
from dockyard.snapshot.vfs import VfsSnapshotter  # noqa: E402
from dockyard.store import Store  # noqa: E402

# A layer, as the unpacker would apply it: ("file", path, text) | ("dir", path) |
# ("whiteout", path) | ("opaque", dir).
LAYERS = [
    [("file", "bin/a", "a1"), ("file", "etc/conf", "1"), ("file", "dir/x", "x1"),
     ("file", "opq/old", "old"), ("file", "gone", "g"), ("file", "gonedir/f", "f")],
    [("file", "etc/conf", "2"), ("whiteout", "gone"), ("opaque", "opq"), ("file", "opq/new", "new"),
     ("file", "dir/y", "y2"), ("whiteout", "gonedir")],
    [("file", "l3", "three"), ("file", "dir/x", "x3"), ("whiteout", "dir/y"), ("dir", "empty")],
]
EXPECTED = {"bin/a": "a1", "etc/conf": "2", "dir/x": "x3", "opq/new": "new", "l3": "three",
            "empty/": None, "bin/": None, "etc/": None, "dir/": None, "opq/": None}


def apply_layer(root: str, ops: list[tuple], mode: str) -> None:
    """Write one layer into ``root``: overlay whiteouts, or ``delete`` mode into a parent's copy."""
    for op, rel, *rest in ops:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if op == "file":
            Path(path).write_text(rest[0])
        elif op == "dir":
            os.makedirs(path, exist_ok=True)
        elif op == "whiteout" and mode == "overlay":
            os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        elif op == "whiteout":
            if os.path.isdir(path) and not os.path.islink(path):
                import shutil
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
        elif op == "opaque" and mode == "overlay":
            os.makedirs(path, exist_ok=True)
            os.setxattr(path, "trusted.overlay.opaque", b"y")
        elif op == "opaque":
            import shutil
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(path)


def tree(root: str) -> dict[str, str | None]:
    """Relative path -> text for files, None for directories ("dir/")."""
    out: dict[str, str | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirnames:
            out[os.path.normpath(os.path.join(rel, d)) + "/"] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.normpath(os.path.join(rel, f))] = Path(p).read_text() if os.path.isfile(p) else "?"
    return out


def build(snap, layers: list[list[tuple]], prefix: str = "sha256:c") -> list[str]:
    chain, parent = [], None
    for i, ops in enumerate(layers):
        t = snap.prepare_layer(f"{prefix}{i}", parent, f"sha256:d{i}")
        apply_layer(t.path, ops, t.whiteout_mode)
        snap.commit_layer(t, 100)
        chain.append(t.chain_id)
        parent = t.chain_id
    return chain


@contextlib.contextmanager
def mounted(snap, specs, target: str):
    os.makedirs(target, exist_ok=True)
    snap.mount(specs, target)
    try:
        yield target
    finally:
        try:
            snap.unmount(target)
        finally:
            if mounts_under(target):
                snap.unmount(target, detach=True)
    assert target not in mounts_under(target)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(str(tmp_path / "root"))
    s.ensure()
    return s


@pytest.fixture(params=["fake", "sqlite"])
def repos(request: pytest.FixtureRequest, tmp_path: Path):
    """Factory: ``repos()`` opens the snapshot metadata again (as a restarted daemon would): the
    JSON-backed fake, or ``metadata.db.Database(...).snapshots``, the SQLite one."""
    opened = []

    def factory():
        if request.param == "fake":
            return FakeSnapshotRepo(str(tmp_path / "snapshots.json"))
        db = pytest.importorskip("dockyard.metadata.db").Database(str(tmp_path / "dockyard.db"))
        opened.append(db)
        return db.snapshots

    yield factory
    for db in opened:
        db.close()


@pytest.fixture
def repo(repos):
    return repos()


@pytest.fixture(autouse=True)
def _needs_overlay(tmp_path: Path) -> None:
    if not overlay_supported(str(tmp_path / "probe-root")):
        pytest.skip("overlayfs does not mount here")


def container_dirs(store: Store, name: str = "c1") -> tuple[str, str, str]:
    base = f"{store.root}/containers/{name}"
    return f"{base}/upper", f"{base}/work", f"{base}/rootfs"


# --------------------------------------------------------------------------------------------------

def test_probes() -> None:
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    assert lowerdir_plus_supported() is ((major, minor) >= (6, 8))


@pytest.mark.parametrize("strategy", [LOWERDIR_PLUS, LINKS])
def test_container_view_of_three_layers(store: Store, repo, strategy: str) -> None:
    snap = Snapshotter(store, repo, strategy=strategy)
    chain = build(snap, LAYERS)
    upper, work, rootfs = container_dirs(store)
    snap.prepare_container(chain[-1], upper, work)
    with mounted(snap, snap.container_mounts(chain[-1], upper, work), rootfs):
        assert tree(rootfs) == EXPECTED
        assert not os.path.lexists(f"{rootfs}/gone")          # whiteout hides a file
        assert not os.path.lexists(f"{rootfs}/gonedir")       # ... and a directory
        assert not os.path.lexists(f"{rootfs}/opq/old")       # opaque dir hides the lower's entries
        Path(rootfs, "new-file").write_text("written")
        Path(rootfs, "etc/conf").write_text("changed")
        os.unlink(f"{rootfs}/bin/a")
    assert os.listdir(rootfs) == []
    assert Path(upper, "new-file").read_text() == "written"
    assert Path(upper, "etc/conf").read_text() == "changed"       # copied up
    assert stat.S_ISCHR(os.lstat(f"{upper}/bin/a").st_mode)        # the delete is a whiteout
    assert Path(store.snapshot_fs(2), "etc/conf").read_text() == "2"  # layers never change
    assert Path(store.snapshot_fs(1), "bin/a").read_text() == "a1"


@pytest.mark.parametrize("strategy", [LOWERDIR_PLUS, LINKS])
def test_130_layers(store: Store, repo, strategy: str) -> None:
    layers = [[("file", "bottom.txt", "from the bottom"), ("file", "shared", "0")]]
    layers += [[("file", f"layer{i}", str(i)), ("file", "shared", str(i))] for i in range(1, 130)]
    snap = Snapshotter(store, repo, strategy=strategy)
    chain = build(snap, layers)
    assert len(snap.lowerdirs(chain[-1])) == 130
    upper, work, rootfs = container_dirs(store)
    snap.prepare_container(chain[-1], upper, work)
    (spec,) = snap.container_mounts(chain[-1], upper, work)
    if strategy == LINKS:
        assert spec.cwd == store.snapshot_links  # absolute paths would not fit one page
    with mounted(snap, [spec], rootfs):
        assert Path(rootfs, "bottom.txt").read_text() == "from the bottom"
        assert Path(rootfs, "shared").read_text() == "129"
        assert Path(rootfs, "layer64").read_text() == "64"
        assert len(os.listdir(rootfs)) == 131
    with mounted(snap, snap.container_mounts(chain[-1], None, None, readonly=True), rootfs):
        assert Path(rootfs, "bottom.txt").read_text() == "from the bottom"


def test_readonly_views(store: Store, repo) -> None:
    snap = Snapshotter(store, repo)
    chain = build(snap, LAYERS)
    target = f"{store.root}/tmp/view"
    with mounted(snap, snap.container_mounts(chain[0], None, None, readonly=True), target):
        assert Path(target, "gone").read_text() == "g"
        with pytest.raises(OSError) as e:
            Path(target, "w").write_text("x")
        assert e.value.errno == errno.EROFS
    with mounted(snap, snap.container_mounts(chain[-1], None, None, readonly=True), target):
        assert tree(target) == EXPECTED
        with pytest.raises(OSError) as e:
            Path(target, "w").write_text("x")
        assert e.value.errno == errno.EROFS


def test_each_layer_unpacked_once_and_shared(store: Store, repo) -> None:
    snap = Snapshotter(store, repo)
    base = build(snap, LAYERS[:1])
    again = snap.prepare_layer(base[0], None, "sha256:d0")
    assert again.existing and again.path == store.snapshot_fs(1)
    # two images on the same base: the base directory is one, both chains list it
    a = snap.prepare_layer("sha256:a", base[0], "sha256:da")
    snap.commit_layer(a, 0)
    b = snap.prepare_layer("sha256:b", base[0], "sha256:db")
    snap.commit_layer(b, 0)
    assert snap.lowerdirs("sha256:a")[-1] == snap.lowerdirs("sha256:b")[-1] == store.snapshot_fs(1)
    assert sorted(os.listdir(store.snapshots)) == ["1", "2", "3", "l"]


def test_usage(store: Store, repo) -> None:
    snap = Snapshotter(store, repo)
    t = snap.prepare_layer("sha256:big", None, "sha256:dbig")
    small = snap.usage("sha256:big")
    with open(f"{t.path}/blob", "wb") as f:
        f.write(os.urandom(1 << 20))
        os.fsync(f.fileno())
    snap.commit_layer(t, 1 << 20)
    assert snap.usage("sha256:big") >= small + (1 << 20)


def test_cleanup_removes_incomplete_and_orphans(store: Store, repos, repo) -> None:
    snap = Snapshotter(store, repo)
    chain = build(snap, LAYERS[:2])
    half = snap.prepare_layer("sha256:half", chain[-1], "sha256:dh")
    apply_layer(half.path, LAYERS[2], "overlay")
    orphan = f"{store.snapshots}/4242"
    os.makedirs(f"{orphan}/fs/deep/dir")
    restarted = Snapshotter(store, repos())
    result = restarted.cleanup_incomplete()
    assert result.removed == (half.id,) and store.snapshot(4242) in result.orphans
    assert not os.path.exists(store.snapshot(half.id)) and not os.path.exists(orphan)
    assert repo.get_by_chain("sha256:half") is None
    assert [r.chain_id for r in repo.all()] == chain
    assert restarted.prepare_layer("sha256:half", chain[-1], "sha256:dh").existing is False


def test_removal_never_deletes_through_a_mount(store: Store, repo) -> None:
    snap = Snapshotter(store, repo)
    base, top = build(snap, LAYERS[:2])
    view = snap.container_mounts(base, None, None, readonly=True)
    orphan_mnt = f"{store.snapshots}/99/fs"
    inside_top = f"{store.snapshot_fs(2)}/mnt"
    os.makedirs(orphan_mnt)
    with mounted(snap, view, orphan_mnt):
        result = snap.cleanup_incomplete()
        assert result.orphans == () and "still mounted" in result.kept[0]
        with mounted(snap, view, inside_top):
            with pytest.raises(FailedPrecondition, match="still mounted"):
                snap.remove(top)  # the record goes first; the files stay while mounted
            assert Path(store.snapshot_fs(1), "bin/a").read_text() == "a1"
            assert Path(inside_top, "bin/a").read_text() == "a1"
    assert not os.path.lexists(store.snapshot_link("2"))  # a link to no record is useless
    assert set(snap.cleanup_incomplete().orphans) == {store.snapshot(99), store.snapshot(2)}
    assert [r.chain_id for r in repo.all()] == [base]
    assert Path(store.snapshot_fs(1), "bin/a").read_text() == "a1"


def test_crash_mid_prepare_is_cleaned_at_next_start(store: Store, repos, repo) -> None:
    """A child process prepares a layer, writes half of it and is SIGKILLed; a new snapshotter on
    the same store and metadata removes the leftover at start and the layer can be redone."""
    (base,) = build(Snapshotter(store, repo), LAYERS[:1])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            snap = Snapshotter(store, repos())
            t = snap.prepare_layer("sha256:crash", base, "sha256:dcrash")
            apply_layer(t.path, LAYERS[1], t.whiteout_mode)
            os.write(w, str(t.id).encode())
            signal.pause()
        finally:
            os._exit(1)
    os.close(w)
    try:
        crashed_id = int(os.read(r, 32) or b"0")
    finally:
        os.close(r)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and crashed_id > 1
    assert repo.get(crashed_id).state == "incomplete" and os.path.isdir(store.snapshot_fs(crashed_id))
    snap = Snapshotter(store, repos())
    assert snap.cleanup_incomplete().removed == (crashed_id,)
    assert repo.get(crashed_id) is None and not os.path.exists(store.snapshot(crashed_id))
    t = snap.prepare_layer("sha256:crash", base, "sha256:dcrash")
    apply_layer(t.path, LAYERS[1], t.whiteout_mode)
    snap.commit_layer(t, 1)
    assert snap.exists("sha256:crash")


# --------------------------------------------------------------------------------------------------
# vfs

def test_vfs_gives_the_same_view(store: Store, repo, tmp_path: Path) -> None:
    overlay = Snapshotter(store, repo)
    o_chain = build(overlay, LAYERS, prefix="sha256:o")
    vstore = Store(str(tmp_path / "vfs-root"))
    vstore.ensure()
    vfs = VfsSnapshotter(vstore, FakeSnapshotRepo(str(tmp_path / "vfs.json")))
    v_chain = build(vfs, LAYERS, prefix="sha256:v")
    # every vfs snapshot is a full tree, without overlay markers
    assert tree(vstore.snapshot_fs(3)) == EXPECTED
    assert tree(vstore.snapshot_fs(1))["gone"] == "g"  # the parent's copy kept its file
    o_up, o_work, o_root = container_dirs(store)
    v_up, v_work, v_root = container_dirs(vstore)
    overlay.prepare_container(o_chain[-1], o_up, o_work)
    vfs.prepare_container(v_chain[-1], v_up, v_work)
    with mounted(overlay, overlay.container_mounts(o_chain[-1], o_up, o_work), o_root), \
            mounted(vfs, vfs.container_mounts(v_chain[-1], v_up, v_work), v_root):
        assert tree(v_root) == tree(o_root) == EXPECTED
        Path(v_root, "etc/conf").write_text("mine")
    assert Path(vstore.snapshot_fs(3), "etc/conf").read_text() == "2"  # the copy is independent
    with mounted(vfs, vfs.container_mounts(v_chain[-1], None, None, readonly=True), v_root):
        assert tree(v_root) == EXPECTED
        with pytest.raises(OSError):
            Path(v_root, "x").write_text("x")


def test_vfs_copy_keeps_owners_modes_devices_links_xattrs(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "suid").write_text("s")
    os.chown(src / "suid", 1234, 5678)
    os.chmod(src / "suid", 0o4755)
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(src / "wh", stat.S_IFCHR, os.makedev(0, 0))
    os.mkfifo(src / "fifo", 0o640)
    (src / "a").write_text("hard")
    os.link(src / "a", src / "b")
    os.symlink("/etc/passwd", src / "abs-link")
    os.lchown(src / "abs-link", 7, 8)
    (src / "d").mkdir(mode=0o700)
    os.setxattr(src / "d", "trusted.overlay.opaque", b"y")
    os.setxattr(src / "a", "user.note", b"kept")
    os.utime(src / "a", ns=(1_000_000_000, 2_000_000_000))
    copy_tree(str(src), str(dst))
    s, d = os.lstat(dst / "suid"), os.lstat(src / "suid")
    assert (s.st_uid, s.st_gid, s.st_mode) == (d.st_uid, d.st_gid, d.st_mode) == (1234, 5678, stat.S_IFREG | 0o4755)
    assert os.lstat(dst / "null").st_rdev == os.makedev(1, 3) and stat.S_ISCHR(os.lstat(dst / "null").st_mode)
    assert os.lstat(dst / "wh").st_rdev == 0 and stat.S_ISCHR(os.lstat(dst / "wh").st_mode)
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode) and stat.S_IMODE(os.lstat(dst / "fifo").st_mode) == 0o640
    assert os.lstat(dst / "a").st_ino == os.lstat(dst / "b").st_ino != os.lstat(src / "a").st_ino
    assert os.readlink(dst / "abs-link") == "/etc/passwd" and os.lstat(dst / "abs-link").st_uid == 7
    assert os.getxattr(dst / "d", "trusted.overlay.opaque") == b"y"
    assert stat.S_IMODE(os.lstat(dst / "d").st_mode) == 0o700
    assert os.getxattr(dst / "a", "user.note") == b"kept"
    assert os.lstat(dst / "a").st_mtime_ns == 2_000_000_000
    (dst / "a").write_text("changed")
    assert (src / "a").read_text() == "hard"


def test_open_snapshotter_picks_overlay(store: Store, repo) -> None:
    snap = open_snapshotter(store, repo, LibcSyscalls())
    assert isinstance(snap, Snapshotter) and snap.strategy == LOWERDIR_PLUS
    assert isinstance(open_snapshotter(store, repo, driver="vfs"), VfsSnapshotter)
