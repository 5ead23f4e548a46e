"""Volumes without root: the repository's contract, Docker's name rule, the local driver's options,
list and prune filters, and the service's bookkeeping against a temp store (mounts faked)."""

from __future__ import annotations

import os
import re

import pytest

from dockyard import errors
from dockyard.engine import volume_rules as rules
from dockyard.engine.volumes import VolumeService
from dockyard.kernel.syscalls import RecordingSyscalls
from dockyard.metadata import Database
from dockyard.metadata.records import VolumeRecord
from dockyard.oci.digest import Digest
from dockyard.store import Store


@pytest.fixture
def db(tmp_path):
    d = Database(str(tmp_path / "dockyard.db"))
    yield d
    d.close()


def _container(db: Database, cid: str) -> None:
    """A container row needs an image row (RESTRICT)."""
    from dockyard.metadata import ImageRecord

    image = Digest.of_bytes(b"config")
    if db.images.get(image) is None:
        db.images.add(ImageRecord(image, Digest.of_bytes(b"manifest"),
                                  "application/vnd.oci.image.manifest.v1+json", 1, "", "amd64",
                                  "linux", 0))
    db.containers.add(cid, f"name-{cid}", image)


# ------------------------------------------------------------------ repository

def test_add_get_all_delete(db):
    rec = db.volumes.add(VolumeRecord("data", labels=(("a", "1"),), options=(("type", "tmpfs"),)))
    assert rec.created > 0
    assert db.volumes.get("data") == rec
    assert db.volumes.get("other") is None
    db.volumes.add(VolumeRecord("abc", anonymous=True))
    assert [v.name for v in db.volumes.all()] == ["abc", "data"]
    assert db.volumes.get("abc").anonymous is True
    db.volumes.delete("data")
    assert db.volumes.get("data") is None
    with pytest.raises(errors.NotFound, match="get data: no such volume"):
        db.volumes.delete("data")


def test_add_twice_is_already_exists(db):
    db.volumes.add(VolumeRecord("data"))
    with pytest.raises(errors.AlreadyExists):
        db.volumes.add(VolumeRecord("data"))


def test_attach_users_and_restrict(db):
    db.volumes.add(VolumeRecord("data"))
    _container(db, "c2")
    _container(db, "c1")
    db.volumes.attach("c2", "data", "/a")
    db.volumes.attach("c1", "data", "/b")
    db.volumes.attach("c1", "data", "/c")
    assert db.volumes.users("data") == ["c1", "c2"]
    assert db.volumes.mounts_of("c1") == [("data", "/b"), ("data", "/c")]
    assert db.volumes.ref_counts() == {"data": 2}
    with pytest.raises(errors.Conflict, match=re.escape("remove data: volume is in use - [c1, c2]")):
        db.volumes.delete("data")
    with pytest.raises(errors.AlreadyExists):
        db.volumes.attach("c1", "data", "/b")
    with pytest.raises(errors.NotFound, match="no such volume"):
        db.volumes.attach("c1", "nope", "/x")
    with pytest.raises(errors.NotFound, match="no such container"):
        db.volumes.attach("c9", "data", "/x")
    with pytest.raises(errors.InvalidArgument):
        db.volumes.attach("c1", "data", "relative")
    db.containers.delete("c2")  # CASCADE: its mounts go with it
    assert db.volumes.users("data") == ["c1"]
    db.volumes.detach("c1", "/b")
    assert db.volumes.mounts_of("c1") == [("data", "/c")]
    db.volumes.detach("c1")
    assert db.volumes.users("data") == []
    db.volumes.delete("data")


# ------------------------------------------------------------------ rules

@pytest.mark.parametrize("name", ["ab", "a1", "my_vol.1-x", "0" * 64, "A.b"])
def test_valid_names(name):
    assert rules.check_name(name) == name


@pytest.mark.parametrize("name", ["a", "_ab", ".ab", "-ab", "a/b", "/abs", "a b", "ä1", "a:b",
                                  "x" * 256, ""])
def test_invalid_names(name):
    with pytest.raises(errors.InvalidArgument, match="includes invalid characters"):
        rules.check_name(name)


def test_local_options():
    assert rules.check_local_options("v", ()) is None
    m = rules.check_local_options("v", (("type", "tmpfs"), ("device", "tmpfs"),
                                        ("o", "size=64m,uid=1000,noexec")))
    assert (m.fstype, m.source, m.data, m.flags) == ("tmpfs", "tmpfs", "size=64m,uid=1000",
                                                     rules.MS_NOEXEC)
    b = rules.check_local_options("v", (("type", "none"), ("o", "bind,ro"), ("device", "/srv")))
    assert b.bind and b.flags == rules.MS_BIND | rules.MS_RDONLY and b.data == ""
    with pytest.raises(errors.InvalidArgument, match='create v: invalid option: "foo"'):
        rules.check_local_options("v", (("foo", "1"),))
    with pytest.raises(errors.InvalidArgument, match='missing required option: "device"'):
        rules.check_local_options("v", (("type", "tmpfs"),))
    with pytest.raises(errors.InvalidArgument, match='missing required option: "device"'):
        rules.check_local_options("v", (("o", "size=1m"),))
    with pytest.raises(errors.InvalidArgument, match="absolute path"):
        rules.check_local_options("v", (("type", "none"), ("o", "bind"), ("device", "rel")))
    with pytest.raises(errors.InvalidArgument, match="quota"):
        rules.check_local_options("v", (("size", "1g"),))


def _rec(name, labels=(), anonymous=False, driver="local"):
    return VolumeRecord(name, driver, 1.0, tuple(sorted(labels)), (), anonymous)


def test_list_filter():
    a = _rec("alpha", [("env", "prod"), ("team", "x")])
    b = _rec("beta", [("env", "dev")])
    f = rules.ListFilter.parse({"label": ["env=prod"]})
    assert f.matches(a, False) and not f.matches(b, False)
    f = rules.ListFilter.parse({"label": ["env", "team"]})
    assert f.matches(a, False) and not f.matches(b, False)
    f = rules.ListFilter.parse({"name": ["^al"]})
    assert f.matches(a, False) and not f.matches(b, False)
    f = rules.ListFilter.parse({"name": ["et"]})  # a search, not a full match
    assert f.matches(b, False) and not f.matches(a, False)
    assert not rules.ListFilter.parse({"name": ["("]}).matches(a, False)
    f = rules.ListFilter.parse({"dangling": ["true"]})
    assert f.matches(a, False) and not f.matches(a, True)
    f = rules.ListFilter.parse({"dangling": ["0"]})
    assert f.matches(a, True) and not f.matches(a, False)
    assert not rules.ListFilter.parse({"driver": ["other"]}).matches(a, False)
    with pytest.raises(errors.InvalidArgument, match="invalid filter 'bogus'"):
        rules.ListFilter.parse({"bogus": ["1"]})
    with pytest.raises(errors.InvalidArgument, match="dangling=maybe"):
        rules.ListFilter.parse({"dangling": ["maybe"]})


def test_prune_filter():
    named = _rec("named", [("keep", "yes")])
    anon = _rec("0" * 64, [(rules.ANONYMOUS_LABEL, "")], anonymous=True)
    default = rules.PruneFilter.parse({})
    assert default.matches(anon) and not default.matches(named)
    every = rules.PruneFilter.parse({"all": ["true"]})
    assert every.matches(anon) and every.matches(named)
    keep = rules.PruneFilter.parse({"all": ["1"], "label!": ["keep"]})
    assert keep.matches(anon) and not keep.matches(named)
    only = rules.PruneFilter.parse({"all": ["true"], "label": ["keep=yes"]})
    assert only.matches(named) and not only.matches(anon)
    with pytest.raises(errors.InvalidArgument, match="invalid filter 'dangling'"):
        rules.PruneFilter.parse({"dangling": ["true"]})


# ------------------------------------------------------------------ service (no root)

@pytest.fixture
def svc(tmp_path, db):
    store = Store(str(tmp_path / "root"))
    store.ensure()
    return VolumeService(store, db, sys=RecordingSyscalls())


def test_create_named_anonymous_idempotent(svc):
    v = svc.create("web", labels={"a": "b"})
    assert v.mountpoint == svc.store.volume_data("web") == svc.mountpoint("web")
    assert os.path.isdir(v.mountpoint)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v.created_at)
    assert (v.labels, v.scope, v.anonymous) == ((("a", "b"),), "local", False)
    assert svc.create("web", labels={"other": "x"}) == v  # Docker: the existing one back
    anon = svc.create()
    assert re.fullmatch(r"[0-9a-f]{64}", anon.name) and anon.anonymous
    assert dict(anon.labels) == {rules.ANONYMOUS_LABEL: ""}
    with pytest.raises(errors.NotFound, match='plugin "nfs3" not found'):
        svc.create("x1", driver="nfs3")
    with pytest.raises(errors.InvalidArgument, match="invalid option"):
        svc.create("x2", options={"bogus": "1"})
    assert svc.db.volumes.get("x2") is None and not os.path.exists(svc.store.volume("x2"))


def test_remove_and_prune(svc):
    svc.create("keep")
    svc.create("used")
    anon = svc.create()
    with open(os.path.join(anon.mountpoint, "f"), "wb") as f:
        f.write(b"x" * 1000)
    _container(svc.db, "c1")
    svc.db.volumes.attach("c1", "used", "/data")
    with pytest.raises(errors.Conflict, match=re.escape("remove used: volume is in use - [c1]")):
        svc.remove("used", force=True)
    assert [v.name for v in svc.list({"dangling": ["false"]})] == ["used"]
    assert svc.usage(anon.name).size == 1000 and svc.usage("used").ref_count == 1
    assert svc.prune() == ([anon.name], 1000)
    assert not os.path.exists(svc.store.volume(anon.name))
    assert svc.prune({"all": ["true"]}) == (["keep"], 0)
    assert [v.name for v in svc.list()] == ["used"]
    with pytest.raises(errors.NotFound, match="get gone: no such volume"):
        svc.remove("gone")
    svc.remove("gone", force=True)


def test_anonymous_of_and_remove_anonymous(svc):
    named = svc.create("named")
    anon = svc.create()
    _container(svc.db, "c1")
    svc.db.volumes.attach("c1", named.name, "/n")
    svc.db.volumes.attach("c1", anon.name, "/a")
    names = svc.anonymous_of("c1")
    assert names == [anon.name]
    svc.db.containers.delete("c1")
    assert svc.remove_anonymous([named.name, *names]) == [anon.name]
    assert [v.name for v in svc.list()] == ["named"]


def test_tmpfs_mount_is_refcounted(svc):
    svc.create("t1", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    data = svc.mount_for_container("t1", "c1")
    calls = svc.sys.calls
    assert ("mount", "tmpfs", data, "tmpfs", 0, "size=1m") in calls
    plain = svc.create("plain")
    assert svc.mount_for_container("plain", "c1") == plain.mountpoint
    assert svc.unmount_if_unused("plain", "c1") is False
    n = len(calls)
    # the fake does not mount, so mountinfo shows nothing: unmounting finds no target
    assert svc.unmount_if_unused("t1", "c1") is False and len(calls) == n


def test_recover_finishes_interrupted_removals(svc):
    v = svc.create("kept")
    trash = os.path.join(svc.store.tmp, "volume-rm-0123")
    os.makedirs(os.path.join(trash, "_data", "sub"))
    other = os.path.join(svc.store.tmp, "load-1.tar")
    open(other, "w").close()
    svc.recover()
    assert not os.path.exists(trash) and os.path.exists(other)
    assert os.path.isdir(v.mountpoint)


def test_anonymous_flag_and_repo(svc):
    v = svc.create(anonymous=True)
    assert v.anonymous and svc.repo.get(v.name).anonymous
    with pytest.raises(errors.InvalidArgument, match="anonymous volume takes no name"):
        svc.create("named", anonymous=True)


def test_df_sizes_and_ref_counts(svc):
    a = svc.create("aa")
    svc.create("bb")
    with open(os.path.join(a.mountpoint, "f"), "wb") as f:
        f.write(b"y" * 300)
    os.link(os.path.join(a.mountpoint, "f"), os.path.join(a.mountpoint, "g"))  # counted once
    os.symlink("/etc/passwd", os.path.join(a.mountpoint, "l"))
    _container(svc.db, "c1")
    svc.db.volumes.attach("c1", "bb", "/b")
    rows = {v.name: u for v, u in svc.df()}
    assert rows["aa"].size == 300 + len("/etc/passwd") and rows["aa"].ref_count == 0
    assert rows["bb"].size == 0 and rows["bb"].ref_count == 1
    from dockyard.api.volumes import volume_json
    v, u = svc.df()[1]
    assert volume_json(v, u)["UsageData"] == {"RefCount": 1, "Size": 0}
