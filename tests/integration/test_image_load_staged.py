"""``load`` from a regular file (the daemon spools the upload to one): the archive is read by
offset (tarfile parses headers only), and each layer blob is extracted into a staging directory
as soon as it is committed (image/staging.py), then adopted into its snapshot. The same archives
and the same refusals as from a stream; nothing of a failed load stays, staging included."""

from __future__ import annotations

import fcntl
import io
import os

import pytest

from dockyard.errors import InvalidArgument
from dockyard.image import staging
from test_image_service import (GRANDCHILD, assert_consistent, bad_archives, family, layer_in,
                                make_image, saved, snapshot_dirs, tar_bytes, tar_members)
from test_image_service import other, svc  # noqa: F401 - fixtures


def staged_dirs(svc) -> list[str]:
    """Staging directories holding anything but a finished load's empty slots."""
    try:
        names = os.listdir(svc.store.tmp)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(staging.PREFIX)
                  and any(files or dirs for _, dirs, files in
                          list(os.walk(os.path.join(svc.store.tmp, n)))[1:]))


def load_file(svc, tmp_path, data: bytes, name: str = "archive.tar") -> list[str]:
    path = tmp_path / name
    path.write_bytes(data)
    with open(path, "rb") as f:
        return svc.load(f)


@pytest.fixture
def adopted(monkeypatch) -> list[str]:
    """Digests whose staged tree ``unpack_layers`` was handed (None results not counted)."""
    seen: list[str] = []
    take = staging.Stager.take

    def counting(self, digest):
        tree = take(self, digest)
        if tree is not None:
            seen.append(str(digest))
        return tree

    monkeypatch.setattr(staging.Stager, "take", counting)
    return seen


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_load_from_a_file_adopts_staged_layers(svc, other, tmp_path, adopted, fmt):
    base, child, grand = family(svc)
    data = saved(svc, ["grandchild:1", "base"], fmt)
    assert load_file(other, tmp_path, data) == ["Loaded image: grandchild:1", "Loaded image: base:1"]
    loaded = other.resolve("grandchild:1")
    assert sorted(adopted) == sorted(str(la.blob_digest) for la in loaded.layers)
    assert [la.diff_id for la in loaded.layers] == [la.diff_id for la in grand.layers]
    assert other.inspect("grandchild:1")["RootFS"] == svc.inspect("grandchild:1")["RootFS"]
    sizes = {s.repo_tags: s.size for s in other.list()}  # file bytes, from the staged extraction
    assert sizes == {s.repo_tags: s.size for s in svc.list() if s.repo_tags in sizes}
    target = tmp_path / "view"
    target.mkdir()
    other.mount_readonly(other.resolve("grandchild:1"), str(target))
    try:
        assert (target / "app/data").read_bytes() == GRANDCHILD["app/data"]
        assert (target / "etc/os-release").read_bytes() == b"child"
        assert not (target / "etc/gone").exists()  # the whiteout, staged as an overlay whiteout
    finally:
        other.unmount(str(target))
    assert len(snapshot_dirs(other)) == 3 and staged_dirs(other) == []
    # loaded again: every snapshot exists, the staged trees are dropped
    assert load_file(other, tmp_path, data, "again.tar")[0] == "Loaded image: grandchild:1"
    assert len(snapshot_dirs(other)) == 3 and staged_dirs(other) == []
    assert_consistent(other)


def test_gzip_layers_from_a_file_are_hashed_and_adopted(svc, other, tmp_path, adopted):
    layer = layer_in(svc, {"a": b"gz" * 5000}, compression="gzip")
    image = make_image(svc, [layer], ["gz:1"])
    data = saved(svc, ["gz:1"], "oci")  # OCI keeps the gzip blob
    assert load_file(other, tmp_path, data) == ["Loaded image: gz:1"]
    assert adopted == [str(image.layers[0].blob_digest)]
    assert other.resolve("gz:1").layers[0].diff_id == image.layers[0].diff_id
    assert_consistent(other)


def test_bad_archives_from_a_file_fail_the_same_and_leave_nothing(svc, other, tmp_path):
    kept = make_image(other, [layer_in(other, {"keep": b"k"})], ["keep:1"])
    before = (other.list(), other.db.snapshots.all(), other.db.tags.all())
    for name, (data, message) in bad_archives(svc).items():
        with pytest.raises(InvalidArgument, match=message):
            load_file(other, tmp_path, data, f"{name}.tar")
        assert (other.list(), other.db.snapshots.all(), other.db.tags.all()) == before, name
        assert other.db.leases.all() == [], name
        assert staged_dirs(other) == [], name
        assert_consistent(other)
    assert other.resolve("keep:1").id == kept.id


def test_truncated_member_in_a_file_names_it(svc, other, tmp_path):
    family(svc)
    data = saved(svc, ["base:1"], "docker")
    members = [m for m in tar_members(data)]
    big = max((m for m in members if m[0] == "file"), key=lambda m: len(m[2]))
    whole = tar_bytes(members)
    cut = whole.index(big[2]) + len(big[2]) // 2  # inside that member's data
    with pytest.raises(InvalidArgument, match="truncated|corrupt"):
        load_file(other, tmp_path, whole[:cut])
    assert other.list() == [] and snapshot_dirs(other) == [] and staged_dirs(other) == []
    assert_consistent(other)


def test_a_crashed_loads_staging_is_removed_by_the_next_load(svc, other, tmp_path):
    family(svc)
    os.makedirs(other.store.tmp, exist_ok=True)
    stale = os.path.join(other.store.tmp, "load-crashed")
    os.makedirs(os.path.join(stale, "1/fs/etc"))
    with open(os.path.join(stale, "1/fs/etc/f"), "w") as f:
        f.write("left by a killed load")  # young, but not empty
    held = os.path.join(other.store.tmp, "load-inprogress")
    os.makedirs(os.path.join(held, "1/fs"))
    with open(os.path.join(held, "1/fs/f"), "w") as f:
        f.write("being extracted")
    fd = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a load still running holds its directory
        other.load(io.BytesIO(saved(svc, ["base:1"], "docker")))
        assert staged_dirs(other) == ["load-inprogress"]
    finally:
        os.close(fd)
    other.load(io.BytesIO(saved(svc, ["base:1"], "oci")))
    assert staged_dirs(other) == []
    assert_consistent(other)


def _kept(svc) -> list[str]:
    return sorted(n for n in os.listdir(svc.store.tmp) if n.startswith(staging.PREFIX))


def test_a_finished_loads_empty_slots_stay_a_while_then_go(svc, other, tmp_path):
    """Each layer was extracted into ``load-*/<n>/fs``; the emptied ``<n>`` stay KEEP_EMPTY
    seconds (their block groups stay fuller than the emptiest, see image/staging.py)."""
    from dockyard.image.maintenance import prune
    from dockyard.kernel.inode_flags import FS_TOPDIR_FL, inode_flags

    family(svc)
    data = saved(svc, ["grandchild:1"], "docker")
    load_file(other, tmp_path, data)
    [first] = _kept(other)
    path = os.path.join(other.store.tmp, first)
    slots = os.listdir(path)
    assert len(slots) == 3 and all(os.listdir(os.path.join(path, n)) == [] for n in slots)
    flags = inode_flags(path)
    assert flags is None or flags & FS_TOPDIR_FL  # a top of hierarchies where there are flags
    other.remove("grandchild:1")
    prune(other, all=True)  # the blobs too: loaded again, every layer is staged again
    load_file(other, tmp_path, data, "again.tar")
    assert len(_kept(other)) == 2 and staged_dirs(other) == []
    old = staging.KEEP_EMPTY + 1
    os.utime(path, (os.stat(path).st_atime - old, os.stat(path).st_mtime - old))
    other.remove("grandchild:1")
    prune(other, all=True)
    load_file(other, tmp_path, data, "third.tar")
    kept = _kept(other)
    assert first not in kept and len(kept) == 2  # the old one went, the new ones stay
    assert_consistent(other)


def test_at_most_max_kept_empty_staging_dirs_stay(tmp_path):
    tmp = str(tmp_path)
    now = 1_000_000.0
    for i in range(staging.MAX_KEPT + 3):
        d = tmp_path / f"load-{i:03}"
        (d / "1").mkdir(parents=True)
        os.utime(d, (now - i, now - i))  # load-000 the newest
    (tmp_path / "other").mkdir()  # not a staging dir: never touched
    removed = staging.remove_stale(tmp, now=now)
    assert sorted(os.path.basename(p) for p in removed) == [
        f"load-{i:03}" for i in range(staging.MAX_KEPT, staging.MAX_KEPT + 3)]
    assert len(os.listdir(tmp)) == staging.MAX_KEPT + 1


def _layer(n: int) -> bytes:
    return tar_bytes([("dir", "d")] + [("file", f"d/f{i}", bytes([i]) * 3000) for i in range(n)])


def test_a_feed_is_extracted_behind_its_writer_and_handed_over_after_the_commit(svc, tmp_path):
    from dockyard.oci.digest import Digest

    data = _layer(20)
    path = tmp_path / "ingest-data"
    with staging.Stager(svc) as st, open(path, "wb", buffering=0) as w:
        feed = st.start(str(path), len(data))
        for i in range(0, len(data), 4096):  # the worker waits for each piece
            w.write(data[i:i + 4096])
            feed.wrote(len(data[i:i + 4096]))
        assert st.take(Digest.of_bytes(data)) is None  # not committed: nothing to hand over
        st.committed(feed, Digest.of_bytes(data))
        tree = st.take(Digest.of_bytes(data))
        assert tree is not None and tree.diff_id == tree.digest == Digest.of_bytes(data)
        assert sorted(os.listdir(os.path.join(tree.path, "d"))) == sorted(f"f{i}" for i in range(20))
        assert tree.size == 20 * 3000
    assert staged_dirs(svc) == []


def test_an_abandoned_feed_stops_its_worker_and_leaves_nothing(svc, tmp_path):
    from dockyard.oci.digest import Digest

    data = _layer(50)
    path = tmp_path / "ingest-data"
    with staging.Stager(svc) as st, open(path, "wb", buffering=0) as w:
        feed = st.start(str(path), len(data))
        w.write(data[:len(data) // 2])
        feed.wrote(len(data) // 2)  # the worker extracts what it can, then waits
        st.abandon(feed)  # the writer failed: the worker stops, its tree is dropped
        assert st.take(Digest.of_bytes(data)) is None
    assert staged_dirs(svc) == []


def test_the_input_can_be_released_once_read(svc, other, tmp_path, adopted):
    """The daemon closes its spool of the upload when the archive has been read (its unlinked
    pages are then dropped, not written back by the final syncfs): the load still completes from
    what the content store and the staging directories hold."""
    import tempfile

    base, child, grand = family(svc)
    data = saved(svc, ["grandchild:1"], "docker")
    calls = []
    with tempfile.TemporaryFile(dir=other.store.tmp) as spool:
        spool.write(data)
        spool.seek(0)

        def release() -> None:
            calls.append(spool.tell())
            spool.close()

        assert other.load(spool, release) == ["Loaded image: grandchild:1"]
        assert spool.closed
    assert len(calls) == 1
    assert [la.diff_id for la in other.resolve("grandchild:1").layers] == \
        [la.diff_id for la in grand.layers]
    assert len(adopted) == 3
    assert_consistent(other)
