"""kernel.inode_flags: the store's snapshots/ and tmp/ are tops of directory hierarchies
(``chattr +T``), so each new snapshot or load staging tree gets inode groups of its own on
ext2/3/4."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from dockyard.store import Store
from dockyard.kernel.inode_flags import FS_TOPDIR_FL, inode_flags, spread_subtrees

SPREAD = ("snapshots", "tmp")


def _has_flags(path) -> bool:
    return inode_flags(str(path)) is not None and spread_subtrees(str(path))


@pytest.fixture
def ext_dir(tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    if not _has_flags(probe):
        pytest.skip(f"{tmp_path}: the filesystem has no FS_TOPDIR_FL")
    return tmp_path


def test_ensure_marks_the_stores_trees_and_keeps_other_flags(ext_dir):
    root = ext_dir / "root"
    root.mkdir()
    subprocess.run(["chattr", "+A", str(root)], check=True)  # noatime: a flag of its own
    store = Store(str(root))
    store.ensure()
    for name in SPREAD:
        assert inode_flags(str(root / name)) & FS_TOPDIR_FL, name
    flags = inode_flags(str(root))
    assert not flags & FS_TOPDIR_FL  # the root itself stays where its parent put it
    store.ensure()  # idempotent
    for name in SPREAD:
        assert inode_flags(str(root / name)) & FS_TOPDIR_FL, name
    assert "T" in subprocess.run(["lsattr", "-d", str(root / "snapshots")], check=True,
                                 capture_output=True, text=True).stdout.split()[0]
    assert "A" in subprocess.run(["lsattr", "-d", str(root)], check=True,
                                 capture_output=True, text=True).stdout.split()[0]


def _group_size(path) -> int | None:
    """Inodes per block group of the ext4 filesystem holding ``path`` (None if unknown)."""
    src = subprocess.run(["findmnt", "-no", "SOURCE", "-T", str(path)], capture_output=True,
                         text=True).stdout.strip()
    try:
        with open(f"/proc/fs/ext4/{os.path.basename(src)}/mb_groups") as f:
            groups = sum(1 for line in f if re.match(r"#\d+\s*:", line))
    except OSError:
        return None
    files = os.statvfs(str(path)).f_files
    return files // groups if groups and files % groups == 0 else None


def test_new_directories_under_a_marked_one_go_to_other_inode_groups(ext_dir):
    """What the flag is for: children of an unmarked directory share its inode group, children
    of a marked one are spread (ext4's Orlov allocator)."""
    ipg = _group_size(ext_dir)
    if ipg is None or os.statvfs(str(ext_dir)).f_files < 64 * ipg:
        pytest.skip("no ext4 inode group geometry to check against")
    plain, marked = ext_dir / "plain", ext_dir / "marked"
    plain.mkdir()
    marked.mkdir()
    assert spread_subtrees(str(marked))
    groups = {}
    for parent in (plain, marked):
        for i in range(8):
            (parent / f"tree-{i}").mkdir()
        groups[parent.name] = {(parent / f"tree-{i}").stat().st_ino // ipg for i in range(8)}
    assert len(groups["plain"]) <= 2, groups  # next to their parent
    assert len(groups["marked"]) >= 3, groups


def test_a_filesystem_without_the_flag_is_not_an_error(tmp_path):
    shm = "/dev/shm"
    if not os.path.isdir(shm):
        pytest.skip("no /dev/shm")
    import tempfile

    d = tempfile.mkdtemp(dir=shm, prefix="dockyard-topdir-")
    try:
        assert spread_subtrees(d) is False
        store = Store(f"{d}/root")
        store.ensure()  # a tmpfs root works as before
        assert os.path.isdir(store.snapshots)
    finally:
        subprocess.run(["rm", "-rf", d], check=True)
