"""The snapshotter's mounts, computed without root: options for 1, 2, 3 and 130 layers under both
strategies, the mount-data page limit, read-only views, and the exact calls made through
RecordingSyscalls. Also the layer lifecycle against the fake repository (no mount involved)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from snapshot_fakes import FakeSnapshotRepo  # noqa: E402

from dockyard.errors import Conflict, FailedPrecondition, InvalidArgument, KernelError, NotFound  # noqa: E402
from dockyard.kernel import syscalls as k  # noqa: E402
from dockyard.kernel.syscalls import RecordingSyscalls  # noqa: E402
from dockyard.snapshot import apply  # noqa: E402
from dockyard.snapshot.mounts import (  # noqa: E402
    FSCONFIG_VALUE_LIMIT, LINKS, LOWERDIR_PLUS, PAGE_LIMIT, Lower, MountSpec, data_size, overlay_mounts,
    short_link_name,
)
from dockyard.snapshot.overlay import Snapshotter  # noqa: E402
from dockyard.snapshot.vfs import VfsSnapshotter  # noqa: E402
from dockyard.store import Store  # noqa: E402

ROOT = "/var/lib/dockyard"
CID = "f" * 64
UPPER = f"{ROOT}/containers/{CID}/upper"
WORK = f"{ROOT}/containers/{CID}/work"
LINKS_DIR = f"{ROOT}/snapshots/l"


def lowers(n: int, first_id: int = 1) -> list[Lower]:
    """n layers, top first: ids first_id+n-1 ... first_id (the top is the newest)."""
    ids = range(first_id + n - 1, first_id - 1, -1)
    return [Lower(f"{ROOT}/snapshots/{i}/fs", short_link_name(i)) for i in ids]


# --------------------------------------------------------------------------------------------------
# short link names

@pytest.mark.parametrize("n, name", [(1, "1"), (9, "9"), (10, "a"), (35, "z"), (36, "10"),
                                     (1295, "zz"), (1296, "100")])
def test_short_link_name_is_base36(n: int, name: str) -> None:
    assert short_link_name(n) == name


@pytest.mark.parametrize("bad", [0, -1, True, "3"])
def test_short_link_name_rejects_non_positive(bad) -> None:
    with pytest.raises(InvalidArgument):
        short_link_name(bad)


# --------------------------------------------------------------------------------------------------
# lowerdir+ (new mount API)

@pytest.mark.parametrize("n", [1, 2, 3, 130])
def test_lowerdir_plus_lists_every_layer_top_first(n: int) -> None:
    (spec,) = overlay_mounts(lowers(n), UPPER, WORK, strategy=LOWERDIR_PLUS)
    assert spec.type == "overlay" and spec.source == "overlay" and spec.cwd == ""
    assert spec.lowerdirs == tuple(f"{ROOT}/snapshots/{i}/fs" for i in range(n, 0, -1))
    assert spec.options == ("index=off", f"upperdir={UPPER}", f"workdir={WORK}")
    assert not any(o.startswith("lowerdir=") for o in spec.options)
    assert not spec.readonly


def test_lowerdir_plus_has_no_page_limit() -> None:
    (spec,) = overlay_mounts(lowers(400), UPPER, WORK, strategy=LOWERDIR_PLUS)
    assert len(spec.lowerdirs) == 400
    assert sum(len(p) + 1 for p in spec.lowerdirs) > PAGE_LIMIT  # would never fit mount(2)


def test_lowerdir_plus_rejects_values_fsconfig_cannot_take() -> None:
    deep = "/" + "d" * (FSCONFIG_VALUE_LIMIT - 10) + "/snapshots/1/fs"
    with pytest.raises(InvalidArgument, match="fsconfig"):
        overlay_mounts([Lower(deep, "1")], UPPER, WORK, strategy=LOWERDIR_PLUS)


# --------------------------------------------------------------------------------------------------
# links (mount(2) with one page of data)

def test_links_three_layers_use_absolute_paths() -> None:
    (spec,) = overlay_mounts(lowers(3), UPPER, WORK, strategy=LINKS, links_dir=LINKS_DIR)
    assert spec.cwd == "" and spec.lowerdirs == ()
    assert spec.data == (f"lowerdir={ROOT}/snapshots/3/fs:{ROOT}/snapshots/2/fs:{ROOT}/snapshots/1/fs,"
                         f"index=off,upperdir={UPPER},workdir={WORK}")


@pytest.mark.parametrize("n", [1, 2])
def test_links_few_layers_fit_absolute(n: int) -> None:
    (spec,) = overlay_mounts(lowers(n), UPPER, WORK, strategy=LINKS, links_dir=LINKS_DIR)
    assert spec.cwd == ""
    assert spec.options[0] == "lowerdir=" + ":".join(lo.fs for lo in lowers(n))


def test_links_130_layers_switch_to_relative_short_links() -> None:
    absolute = len("lowerdir=" + ":".join(lo.fs for lo in lowers(130)))
    assert absolute > PAGE_LIMIT  # the reason for the links
    (spec,) = overlay_mounts(lowers(130), UPPER, WORK, strategy=LINKS, links_dir=LINKS_DIR)
    assert spec.cwd == LINKS_DIR
    lower_opt = spec.options[0]
    assert lower_opt == "lowerdir=" + ":".join(short_link_name(i) for i in range(130, 0, -1))
    assert "/" not in lower_opt  # names relative to cwd
    assert f"upperdir={UPPER}" in spec.options and f"workdir={WORK}" in spec.options
    assert data_size(spec) <= PAGE_LIMIT
    assert data_size(spec) == len(spec.data) + 1


def test_links_option_string_with_large_ids_still_fits() -> None:
    """Snapshot numbers in the millions (4-5 base-36 chars) and 200 layers."""
    (spec,) = overlay_mounts(lowers(200, first_id=5_000_000), UPPER, WORK, strategy=LINKS,
                             links_dir=LINKS_DIR)
    assert spec.cwd == LINKS_DIR and data_size(spec) <= PAGE_LIMIT


def test_links_too_many_layers_is_a_clear_error() -> None:
    with pytest.raises(InvalidArgument, match=r"1000 layers need \d+ bytes.*lowerdir\+"):
        overlay_mounts(lowers(1000, first_id=100_000), UPPER, WORK, strategy=LINKS, links_dir=LINKS_DIR)


# --------------------------------------------------------------------------------------------------
# read-only views, empty images, bad input

@pytest.mark.parametrize("strategy", [LOWERDIR_PLUS, LINKS])
def test_readonly_single_layer_is_a_readonly_bind_mount(strategy: str) -> None:
    specs = overlay_mounts(lowers(1), None, None, readonly=True, strategy=strategy, links_dir=LINKS_DIR)
    assert specs == [MountSpec("bind", f"{ROOT}/snapshots/1/fs", ("bind", "ro"))]
    assert specs[0].readonly and specs[0].data == ""


def test_readonly_layers_are_an_overlay_without_upper() -> None:
    (spec,) = overlay_mounts(lowers(3), UPPER, WORK, readonly=True, strategy=LOWERDIR_PLUS)
    assert spec.readonly and len(spec.lowerdirs) == 3
    assert not any(o.startswith(("upperdir=", "workdir=")) for o in spec.options)
    (spec,) = overlay_mounts(lowers(3), None, None, readonly=True, strategy=LINKS, links_dir=LINKS_DIR)
    assert spec.readonly and "upperdir" not in spec.data and spec.data.startswith("lowerdir=")


def test_readonly_130_layers_links() -> None:
    (spec,) = overlay_mounts(lowers(130), None, None, readonly=True, strategy=LINKS, links_dir=LINKS_DIR)
    assert spec.cwd == LINKS_DIR and spec.readonly and data_size(spec) <= PAGE_LIMIT


def test_no_layers() -> None:
    assert overlay_mounts([], UPPER, WORK) == [MountSpec("bind", UPPER, ("bind",))]
    with pytest.raises(InvalidArgument):
        overlay_mounts([], None, None, readonly=True)


@pytest.mark.parametrize("upper, work", [("relative/upper", WORK), (UPPER, "work"), (None, WORK),
                                         ("/a,b/upper", WORK), ("/a:b/upper", WORK), (UPPER, "/w\\x")])
def test_bad_upper_or_work(upper, work) -> None:
    with pytest.raises(InvalidArgument):
        overlay_mounts(lowers(2), upper, work)


def test_unknown_strategy() -> None:
    with pytest.raises(InvalidArgument):
        overlay_mounts(lowers(2), UPPER, WORK, strategy="chdir")


# --------------------------------------------------------------------------------------------------
# applying through RecordingSyscalls

T = "/run/x/rootfs"


def test_apply_lowerdir_plus_calls() -> None:
    rec = RecordingSyscalls()
    (spec,) = overlay_mounts(lowers(3), UPPER, WORK, strategy=LOWERDIR_PLUS)
    apply.mount_specs(rec, [spec], T)
    fd, mfd = 1001, 1002
    S = k.FSCONFIG_SET_STRING
    assert rec.calls == [
        ("fsopen", "overlay", k.FSOPEN_CLOEXEC),
        ("fsconfig", fd, S, "lowerdir+", f"{ROOT}/snapshots/3/fs", 0),
        ("fsconfig", fd, S, "lowerdir+", f"{ROOT}/snapshots/2/fs", 0),
        ("fsconfig", fd, S, "lowerdir+", f"{ROOT}/snapshots/1/fs", 0),
        ("fsconfig", fd, S, "index", "off", 0),
        ("fsconfig", fd, S, "upperdir", UPPER, 0),
        ("fsconfig", fd, S, "workdir", WORK, 0),
        ("fsconfig", fd, k.FSCONFIG_CMD_CREATE, None, None, 0),
        ("fsmount", fd, k.FSMOUNT_CLOEXEC, 0),
        ("close", fd),
        ("move_mount", mfd, "", k.AT_FDCWD, T, k.MOVE_MOUNT_F_EMPTY_PATH),
        ("close", mfd),  # an open mount fd would keep the mount busy
    ]


def test_apply_lowerdir_plus_readonly_sets_mount_attr() -> None:
    rec = RecordingSyscalls()
    apply.mount_specs(rec, overlay_mounts(lowers(2), None, None, readonly=True), T)
    assert ("fsmount", 1001, k.FSMOUNT_CLOEXEC, k.MOUNT_ATTR_RDONLY) in rec.calls
    assert not any(c[0] == "fsconfig" and c[3] in ("upperdir", "workdir", "ro") for c in rec.calls)


def test_apply_closes_fds_when_the_kernel_refuses() -> None:
    class Refusing(RecordingSyscalls):
        def fsconfig(self, fd, cmd, key, value, aux):
            super().fsconfig(fd, cmd, key, value, aux)
            if cmd == k.FSCONFIG_CMD_CREATE:
                raise KernelError("fsconfig create", 22)

    rec = Refusing()
    with pytest.raises(KernelError):
        apply.mount_specs(rec, overlay_mounts(lowers(2), UPPER, WORK), T)
    assert rec.calls[-1] == ("close", 1001)
    assert not any(c[0] in ("fsmount", "move_mount") for c in rec.calls)


def test_apply_readonly_bind_is_bind_then_remount() -> None:
    rec = RecordingSyscalls()
    apply.mount_specs(rec, overlay_mounts(lowers(1), None, None, readonly=True), T)
    src = f"{ROOT}/snapshots/1/fs"
    assert rec.calls == [("mount", src, T, None, k.MS_BIND, None),
                         ("mount", None, T, None, k.MS_REMOUNT | k.MS_BIND | k.MS_RDONLY, None)]


def test_apply_links_absolute_is_one_mount_call() -> None:
    rec = RecordingSyscalls()
    (spec,) = overlay_mounts(lowers(2), UPPER, WORK, strategy=LINKS, links_dir=LINKS_DIR)
    apply.mount_specs(rec, [spec], T)
    assert rec.calls == [("mount", "overlay", T, "overlay", 0, spec.data)]


def test_apply_links_relative_mounts_from_the_links_dir(tmp_path: Path) -> None:
    links = tmp_path / "l"
    links.mkdir()

    class Cwd(RecordingSyscalls):
        def mount(self, source, target, fstype, flags, data):
            super().mount(source, target, fstype, flags, data)
            self.cwd = os.getcwd()

    rec = Cwd()
    before = os.getcwd()
    (spec,) = overlay_mounts(lowers(130), UPPER, WORK, strategy=LINKS, links_dir=str(links))
    apply.mount_specs(rec, [spec], T)
    assert rec.cwd == str(links)
    assert os.getcwd() == before
    assert rec.calls == [("mount", "overlay", T, "overlay", 0, spec.data)]
    assert len(spec.data) < PAGE_LIMIT


def test_unmount_calls() -> None:
    rec = RecordingSyscalls()
    apply.unmount(rec, T)
    apply.unmount(rec, T, detach=True)
    assert rec.calls == [("umount2", T, 0), ("umount2", T, k.MNT_DETACH)]


def test_relative_target_refused() -> None:
    with pytest.raises(ValueError):
        apply.mount_specs(RecordingSyscalls(), overlay_mounts(lowers(2), UPPER, WORK), "rootfs")


def test_lowerdir_plus_probe_with_a_fake_is_not_cached() -> None:
    class Old(RecordingSyscalls):
        def fsconfig(self, fd, cmd, key, value, aux):
            raise KernelError("fsconfig lowerdir+", 22)

    assert apply.lowerdir_plus_supported(Old()) is False
    assert apply.lowerdir_plus_supported(RecordingSyscalls()) is True
    assert Snapshotter(Store("/nonexistent"), FakeSnapshotRepo(), Old()).strategy == LINKS


# --------------------------------------------------------------------------------------------------
# the Snapshotter: lifecycle with the fake repository, mounts computed from chain ids

@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(str(tmp_path / "root"))
    s.ensure()
    return s


def build_chain(snap, n: int, prefix: str = "c") -> list[str]:
    chain_ids, parent = [], None
    for i in range(n):
        t = snap.prepare_layer(f"{prefix}{i}", parent, f"diff{i}")
        Path(t.path, f"f{i}").write_text(str(i))
        snap.commit_layer(t, 1)
        chain_ids.append(t.chain_id)
        parent = t.chain_id
    return chain_ids


@pytest.mark.parametrize("strategy", [LOWERDIR_PLUS, LINKS])
def test_snapshotter_container_mounts_from_chain(store: Store, strategy: str) -> None:
    snap = Snapshotter(store, FakeSnapshotRepo(), RecordingSyscalls(), strategy=strategy)
    ids = build_chain(snap, 3)
    assert snap.lowerdirs(ids[-1]) == [store.snapshot_fs(n) for n in (3, 2, 1)]
    assert [os.readlink(store.snapshot_link(short_link_name(n))) for n in (1, 2, 3)] == \
        ["../1/fs", "../2/fs", "../3/fs"]
    assert [c[0] for c in snap.sys.calls] == ["syncfs"] * 3  # each commit flushed before marking
    up, wk = f"{store.root}/containers/x/upper", f"{store.root}/containers/x/work"
    specs = snap.container_mounts(ids[-1], up, wk)
    assert specs == overlay_mounts([Lower(store.snapshot_fs(n), short_link_name(n)) for n in (3, 2, 1)],
                                   up, wk, strategy=strategy, links_dir=store.snapshot_links)
    snap.mount(specs, "/mnt/x")
    snap.unmount("/mnt/x")
    assert snap.sys.calls[-1] == ("umount2", "/mnt/x", 0)


def test_prepare_is_idempotent_for_complete_chains(store: Store) -> None:
    repo = FakeSnapshotRepo()
    snap = Snapshotter(store, repo, RecordingSyscalls(), strategy=LOWERDIR_PLUS)
    (top,) = build_chain(snap, 1)
    again = snap.prepare_layer(top, None, "diff0")
    assert again.existing and again.id == 1 and Path(again.path, "f0").read_text() == "0"
    snap.abort_layer(again)  # a no-op for an existing snapshot
    assert repo.get(1).state == "complete" and os.path.exists(again.path)


def test_prepare_redoes_a_leftover_incomplete_one(store: Store) -> None:
    repo = FakeSnapshotRepo()
    first = Snapshotter(store, repo, RecordingSyscalls(), strategy=LOWERDIR_PLUS)
    t = first.prepare_layer("c0", None, "d0")
    Path(t.path, "half").write_text("x")
    with pytest.raises(Conflict):  # the same process is still unpacking it
        first.prepare_layer("c0", None, "d0")
    restarted = Snapshotter(store, repo, RecordingSyscalls(), strategy=LOWERDIR_PLUS)
    t2 = restarted.prepare_layer("c0", None, "d0")
    assert not t2.existing and t2.id != t.id and os.listdir(t2.path) == []
    assert not os.path.exists(store.snapshot(t.id)) and repo.get(t.id) is None


def test_prepare_needs_a_complete_parent(store: Store) -> None:
    snap = Snapshotter(store, FakeSnapshotRepo(), RecordingSyscalls(), strategy=LOWERDIR_PLUS)
    with pytest.raises(NotFound):
        snap.prepare_layer("c1", "nope", "d1")
    snap.prepare_layer("c0", None, "d0")
    with pytest.raises(FailedPrecondition):
        snap.prepare_layer("c1", "c0", "d1")
    with pytest.raises(FailedPrecondition):
        snap.lowerdirs("c0")


def test_abort_removes_dir_and_record(store: Store) -> None:
    repo = FakeSnapshotRepo()
    snap = Snapshotter(store, repo, RecordingSyscalls(), strategy=LOWERDIR_PLUS)
    t = snap.prepare_layer("c0", None, "d0")
    with pytest.raises(Conflict, match="being unpacked"):
        snap.remove("c0")
    snap.abort_layer(t)
    assert repo.all() == [] and not os.path.exists(store.snapshot(t.id))
    assert not snap.prepare_layer("c0", None, "d0").existing  # and it can be prepared again


def test_a_failed_prepare_leaves_nothing(store: Store) -> None:
    class Broken(Snapshotter):
        def _populate(self, fs, parent):
            os.mkdir(fs)
            raise OSError(28, "No space left on device")

    repo = FakeSnapshotRepo()
    snap = Broken(store, repo, RecordingSyscalls(), strategy=LOWERDIR_PLUS)
    with pytest.raises(OSError):
        snap.prepare_layer("c0", None, "d0")
    assert repo.all() == [] and os.listdir(store.snapshots) == ["l"] and snap._active == set()


def test_remove_refuses_children_and_images(store: Store) -> None:
    repo = FakeSnapshotRepo()
    snap = Snapshotter(store, repo, RecordingSyscalls(), strategy=LINKS)
    base, top = build_chain(snap, 2)
    with pytest.raises(Conflict, match="depend"):
        snap.remove(base)
    repo.images.add(2)
    with pytest.raises(Conflict):
        snap.remove(top)
    repo.images.clear()
    snap.remove(top)
    assert not os.path.exists(store.snapshot(2)) and not os.path.lexists(store.snapshot_link("2"))
    snap.remove(base)
    assert repo.all() == [] and os.listdir(store.snapshot_links) == []
    with pytest.raises(NotFound):
        snap.remove(base)


def test_cleanup_incomplete_orphans_and_dangling_links(store: Store) -> None:
    repo = FakeSnapshotRepo()
    snap = Snapshotter(store, repo, RecordingSyscalls(), strategy=LINKS)
    (done,) = build_chain(snap, 1)
    half = snap.prepare_layer("c1", done, "d1")
    os.makedirs(f"{store.snapshots}/77/fs")
    os.symlink("../77/fs", store.snapshot_link("25"))
    os.makedirs(f"{store.snapshots}/not-ours")
    result = Snapshotter(store, repo, RecordingSyscalls(), strategy=LINKS).cleanup_incomplete()
    assert result.removed == (half.id,)
    assert set(result.orphans) == {store.snapshot(77), store.snapshot_link("25")}
    assert sorted(os.listdir(store.snapshots)) == ["1", "l", "not-ours"]
    assert os.listdir(store.snapshot_links) == ["1"]
    assert [r.chain_id for r in repo.all()] == [done]
    os.unlink(store.snapshot_link("1"))  # a commit's link lost (power loss) is made again at start
    assert Snapshotter(store, repo, RecordingSyscalls(), strategy=LINKS).cleanup_incomplete().removed == ()
    assert os.readlink(store.snapshot_link("1")) == "../1/fs"


def test_vfs_mounts_are_binds(store: Store) -> None:
    snap = VfsSnapshotter(store, FakeSnapshotRepo(), RecordingSyscalls())
    ids = build_chain(snap, 3)
    assert sorted(os.listdir(store.snapshot_fs(3))) == ["f0", "f1", "f2"]  # each a full copy
    assert snap.lowerdirs(ids[-1]) == [store.snapshot_fs(3)]
    up = f"{store.root}/containers/x/upper"
    assert snap.container_mounts(ids[-1], up, None) == [MountSpec("bind", up, ("bind",))]
    assert snap.container_mounts(ids[-1], None, None, readonly=True) == \
        [MountSpec("bind", store.snapshot_fs(3), ("bind", "ro"))]
