"""metadata.Database: schema and migrations, transactions, and each repository's contract."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading

import pytest

from dockyard import errors
from dockyard.metadata import Database, ImageRecord, LayerRecord, db as dbmod
from dockyard.oci.digest import Digest
from dockyard.record import replace


def dg(n: int | str) -> Digest:
    return Digest.of_bytes(str(n).encode())


def raw(hexstart: str) -> Digest:
    return Digest("sha256", (hexstart + "0" * 64)[:64])


@pytest.fixture
def db(tmp_path):
    d = Database(str(tmp_path / "dockyard.db"))
    yield d
    d.close()


def image(n: int = 1, layers: int = 2, snapshots: tuple[int | None, ...] = (), **kw) -> ImageRecord:
    ls = tuple(LayerRecord(dg(f"diff{n}.{i}"), dg(f"blob{n}.{i}"), 100 + i,
                           "application/vnd.oci.image.layer.v1.tar+gzip",
                           snapshots[i] if i < len(snapshots) else None) for i in range(layers))
    fields = dict(id=dg(f"config{n}"), manifest_digest=dg(f"manifest{n}"),
                  manifest_media_type="application/vnd.oci.image.manifest.v1+json", config_size=321,
                  created="2024-01-02T03:04:05Z", architecture="amd64", os="linux", size=4096,
                  layers=ls)
    fields.update(kw)
    return ImageRecord(**fields)


# ---------------------------------------------------------------------------------------------
# the file, pragmas and migrations

def test_open_creates_a_private_wal_database_at_the_current_schema(tmp_path, db):
    assert stat.S_IMODE(os.stat(db.path).st_mode) == 0o600
    assert db.schema_version == dbmod.SCHEMA_VERSION
    assert db._query("PRAGMA journal_mode")[0][0] == "wal"
    assert db._query("PRAGMA foreign_keys")[0][0] == 1
    assert db._query("PRAGMA synchronous")[0][0] == 2  # FULL
    assert db._query("PRAGMA busy_timeout")[0][0] == 5000
    tables = {r[0] for r in db._query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"images", "tags", "image_layers", "snapshots", "leases", "lease_resources",
            "containers"} <= tables
    assert db.check() == []


def test_reopen_keeps_data_and_does_not_migrate_again(tmp_path, db):
    db.leases.create("keep")
    db.close()
    again = Database(str(tmp_path / "dockyard.db"))
    assert again.leases.get("keep") is not None
    assert again.schema_version == dbmod.SCHEMA_VERSION
    again.close()


def test_migrations_apply_only_the_missing_steps(tmp_path, monkeypatch, db):
    db.leases.create("old")
    db.close()
    v2 = ("CREATE TABLE extra (x INTEGER) STRICT",)
    monkeypatch.setattr(dbmod, "MIGRATIONS", dbmod.MIGRATIONS + (v2,))
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", len(dbmod.MIGRATIONS))
    d = Database(str(tmp_path / "dockyard.db"))
    assert d.schema_version == dbmod.SCHEMA_VERSION
    assert d._query("SELECT count(*) FROM extra") == [(0,)]
    assert d.leases.get("old") is not None
    d.close()


def test_a_newer_schema_is_refused(tmp_path, db):
    db.close()
    c = sqlite3.connect(str(tmp_path / "dockyard.db"))
    c.execute(f"PRAGMA user_version = {dbmod.SCHEMA_VERSION + 5}")
    c.close()
    with pytest.raises(errors.FailedPrecondition, match="newer than this dockyard"):
        Database(str(tmp_path / "dockyard.db"))


def test_foreign_keys_are_enforced_by_sqlite_itself(db):
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        with db.transaction():
            db._exec("INSERT INTO tags (name, image_id) VALUES ('x', 'sha256:nope')")
    with pytest.raises(sqlite3.IntegrityError):
        with db.transaction():
            db._exec("INSERT INTO snapshots (chain_id, diff_id, state, created) "
                     "VALUES ('c', 'd', 'bogus', 0)")


# ---------------------------------------------------------------------------------------------
# transactions

def test_transaction_rolls_back_on_error(db):
    with pytest.raises(ZeroDivisionError):
        with db.transaction():
            db.leases.create("a")
            1 / 0
    assert db.leases.get("a") is None


def test_nested_transaction_is_a_savepoint(db):
    with db.transaction():
        db.leases.create("outer")
        with pytest.raises(errors.AlreadyExists):
            db.leases.create("outer")  # the inner failure rolls back only its savepoint
        db.leases.create("second")
    assert {lease.id for lease in db.leases.all()} == {"outer", "second"}


def test_writes_outside_a_transaction_are_a_bug(db):
    with pytest.raises(RuntimeError, match="outside a transaction"):
        db._exec("DELETE FROM leases")


def test_a_second_connection_waits_for_the_write_lock_then_fails_cleanly(tmp_path, db):
    other = Database(str(tmp_path / "dockyard.db"), busy_timeout=0.2)
    with db.transaction():
        with pytest.raises(errors.Unavailable, match="locked"):
            with other.transaction():
                pass
    with other.transaction():  # free again
        other.leases.create("b")
    other.close()
    assert db.leases.get("b") is not None


def test_threads_share_one_database(db):
    def work(k: int) -> None:
        for i in range(20):
            db.leases.create(f"t{k}-{i}")
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(db.leases.all()) == 80


# ---------------------------------------------------------------------------------------------
# snapshots (the API another package codes against)

def test_snapshot_lifecycle(db):
    base = db.snapshots.add("chain-a", None, "diff-a")
    assert (base.state, base.size, base.parent_id) == ("incomplete", 0, None)
    assert db.snapshots.get(base.id) == base
    assert db.snapshots.get_by_chain("chain-a") == base
    assert db.snapshots.get_by_chain("nope") is None and db.snapshots.get(999) is None
    child = db.snapshots.add("chain-b", base.id, "diff-b")
    assert db.snapshots.children(base.id) == [child]
    assert db.snapshots.incomplete() == [child, base]  # children first
    db.snapshots.mark_complete(base.id, 1234)
    got = db.snapshots.get(base.id)
    assert (got.state, got.size) == ("complete", 1234)
    assert db.snapshots.incomplete() == [child]
    assert [s.id for s in db.snapshots.all()] == [base.id, child.id]
    with pytest.raises(errors.AlreadyExists):
        db.snapshots.add("chain-a", None, "diff-a")
    with pytest.raises(errors.NotFound):
        db.snapshots.add("chain-c", 999, "diff-c")
    with pytest.raises(errors.NotFound):
        db.snapshots.mark_complete(999, 1)


def test_snapshot_remove_refuses_parents_and_image_layers(db):
    base = db.snapshots.add("chain-a", None, "d")
    child = db.snapshots.add("chain-b", base.id, "d2")
    with pytest.raises(errors.Conflict, match="children"):
        db.snapshots.remove(base.id)
    db.images.add(image(1, layers=1, snapshots=(child.id,)))
    with pytest.raises(errors.Conflict, match="layer of image"):
        db.snapshots.remove(child.id)
    db.images.delete(dg("config1"))
    assert db.snapshots.unreferenced() == []  # child still incomplete
    db.snapshots.remove(child.id)
    db.snapshots.remove(base.id)
    assert db.snapshots.all() == []
    with pytest.raises(errors.NotFound):
        db.snapshots.remove(base.id)


def test_snapshot_ids_are_never_reused(db):
    a = db.snapshots.add("a", None, "d")
    b = db.snapshots.add("b", None, "d")
    db.snapshots.remove(b.id)
    c = db.snapshots.add("c", None, "d")
    assert c.id > b.id > a.id >= 1


# ---------------------------------------------------------------------------------------------
# images and tags

def test_add_image_with_layers_and_tags(db):
    s = db.snapshots.add("c0", None, "d")
    img = image(1, snapshots=(s.id,))
    assert db.images.add(img, ["docker.io/library/a:1", "docker.io/library/a:latest"]) is True
    got = db.images.get(img.id)
    assert got.layers == img.layers and got.added_at > 0
    assert got == replace(img, added_at=got.added_at)
    assert db.images.get(str(img.id)) == got
    assert db.tags.tags_of(img.id) == ["docker.io/library/a:1", "docker.io/library/a:latest"]
    assert db.images.refs(img.id).tags == ("docker.io/library/a:1", "docker.io/library/a:latest")
    with pytest.raises(errors.AlreadyExists):
        db.images.add(img)
    assert db.images.add(img, ["docker.io/library/a:2"], exist_ok=True) is False
    assert "docker.io/library/a:2" in db.tags.tags_of(img.id)


def test_add_image_is_atomic(db):
    bad = image(1, snapshots=(None, 424242))
    with pytest.raises(errors.NotFound, match="no snapshot"):
        db.images.add(bad, ["docker.io/library/a:1"])
    assert db.images.get(bad.id) is None
    assert db.tags.get("docker.io/library/a:1") is None
    assert db._query("SELECT count(*) FROM image_layers") == [(0,)]
    with pytest.raises(errors.InvalidArgument):
        db.images.add(image(2), ["bad tag"])
    assert db.images.list() == []


def test_resolve_by_prefix(db):
    a = image(1, id=raw("abc1"))
    b = image(2, id=raw("abc2"))
    db.images.add(a)
    db.images.add(b)
    assert db.images.resolve("abc1").id == a.id
    assert db.images.resolve("sha256:abc2").id == b.id
    assert db.images.resolve(str(a.id)).id == a.id
    with pytest.raises(errors.Conflict, match="ambiguous"):
        db.images.resolve("abc")
    for missing in ("abd", "ABC1", "abc%", "abc*", "", "sha256:", "md5:abc"):
        with pytest.raises(errors.NotFound):
            db.images.resolve(missing)


def test_list_newest_first_with_layers(db):
    db.images.add(image(1, added_at=100.0))
    db.images.add(image(2, layers=3, added_at=200.0))
    listed = db.images.list()
    assert [i.id for i in listed] == [dg("config2"), dg("config1")]
    assert [len(i.layers) for i in listed] == [3, 2]


def test_delete_rules(db):
    img = image(1)
    db.images.add(img, ["docker.io/library/a:1"])
    with pytest.raises(errors.Conflict, match="referenced by tags"):
        db.images.delete(img.id)
    db.containers.add("c1" * 32, "web", img.id)
    with pytest.raises(errors.Conflict, match="used by container"):
        db.images.delete(img.id, untag=True)
    with pytest.raises(sqlite3.IntegrityError):  # and the schema agrees
        with db.transaction():
            db._exec("DELETE FROM tags")
            db._exec("DELETE FROM images")
    db.containers.delete("c1" * 32)
    assert db.images.delete(img.id, untag=True) == ("docker.io/library/a:1",)
    assert db.images.get(img.id) is None and db.tags.all() == []
    assert db._query("SELECT count(*) FROM image_layers") == [(0,)]
    with pytest.raises(errors.NotFound):
        db.images.delete(img.id)


def test_dangling_refcounts_roots_and_layer_snapshots(db):
    shared = LayerRecord(dg("shared-diff"), dg("shared-blob"), 7, "t")
    a = image(1, layers=1)
    a = replace(a, layers=(shared,) + a.layers)
    b = replace(image(2, layers=0), layers=(shared,))
    db.images.add(a, ["docker.io/library/a:1"])
    db.images.add(b)
    assert [i.id for i in db.images.dangling()] == [b.id]
    counts = db.images.layer_refcounts()
    assert counts[shared.blob_digest] == 2 and counts[dg("blob1.0")] == 1
    assert db.images.blob_roots() == {a.id, b.id, a.manifest_digest, b.manifest_digest,
                                      shared.blob_digest, dg("blob1.0")}
    s = db.snapshots.add("c", None, "d")
    db.images.set_layer_snapshot(b.id, 0, s.id)
    assert db.images.get(b.id).layers[0].snapshot_id == s.id
    with pytest.raises(errors.NotFound):
        db.images.set_layer_snapshot(b.id, 5, s.id)
    with pytest.raises(errors.NotFound):
        db.images.set_layer_snapshot(b.id, 0, 9999)


def test_tags_set_move_remove(db):
    db.images.add(image(1))
    db.images.add(image(2))
    name = "docker.io/library/x:latest"
    assert db.tags.set(name, dg("config1")) is None
    assert db.tags.set(name, dg("config1")) is None  # no move
    assert db.tags.set(name, dg("config2")) == dg("config1")
    assert db.tags.get(name) == dg("config2")
    assert [t.name for t in db.tags.all()] == [name]
    assert db.tags.remove(name) == dg("config2")
    with pytest.raises(errors.NotFound):
        db.tags.remove(name)
    with pytest.raises(errors.NotFound, match="no such image"):
        db.tags.set(name, dg("config9"))
    for bad in ("", "a b", "a\nb", "x" * 5000):
        with pytest.raises(errors.InvalidArgument):
            db.tags.set(bad, dg("config1"))
    with pytest.raises(errors.InvalidArgument):
        db.tags.set("ok", "sha256:../../etc")


# ---------------------------------------------------------------------------------------------
# leases and containers

def test_leases(db):
    lease = db.leases.create("pull-1", ttl=10, labels={"ref": "busybox"}, now=1000.0)
    assert lease.expires_at == 1010.0 and lease.labels == (("ref", "busybox"),)
    assert db.leases.get("pull-1") == lease
    forever = db.leases.create(ttl=None)
    assert forever.expires_at is None and len(forever.id) == 32
    with pytest.raises(errors.AlreadyExists):
        db.leases.create("pull-1")
    db.leases.add_resource("pull-1", "blob", str(dg(1)))
    db.leases.add_resource("pull-1", "blob", str(dg(1)))  # idempotent
    db.leases.add_resource("pull-1", "ingest", "ref-1")
    assert [(r.kind, r.key) for r in db.leases.resources("pull-1")] == [("blob", str(dg(1))),
                                                                       ("ingest", "ref-1")]
    assert db.leases.leased("blob", now=1005.0) == {str(dg(1))}
    assert db.leases.leased("blob", now=1010.0) == set()  # expired: protects nothing
    assert [x.id for x in db.leases.expired(now=1010.0)] == ["pull-1"]
    assert lease.expired(1010.0) and not forever.expired(1e12)
    db.leases.renew("pull-1", 100, now=1010.0)
    assert db.leases.leased("ingest", now=1050.0) == {"ref-1"}
    db.leases.remove_resource("pull-1", "ingest", "ref-1")
    assert db.leases.leased("ingest", now=1050.0) == set()
    assert db.leases.delete_expired(now=2000.0) == ["pull-1"]
    assert db._query("SELECT count(*) FROM lease_resources") == [(0,)]  # cascade
    with pytest.raises(errors.NotFound):
        db.leases.add_resource("pull-1", "blob", "x")
    with pytest.raises(errors.InvalidArgument):
        db.leases.add_resource(forever.id, "volume", "x")
    with pytest.raises(errors.NotFound):
        db.leases.delete("pull-1")
    with pytest.raises(errors.NotFound):
        db.leases.renew("pull-1", 1)


def test_temporary_lease_is_deleted_even_on_error(db):
    with pytest.raises(KeyError):
        with db.leases.temporary(ttl=60) as lease:
            db.leases.add_resource(lease.id, "blob", "b")
            raise KeyError
    assert db.leases.all() == []


def test_containers(db):
    db.images.add(image(1))
    c = db.containers.add("abc", "web", dg("config1"), state='{"status": "created"}', created=5.0)
    assert db.containers.get("abc") == c and db.containers.all() == [c]
    assert db.containers.uses_image(dg("config1")) == ["abc"]
    assert db.images.refs(dg("config1")).containers == ("abc",)
    with pytest.raises(errors.AlreadyExists):
        db.containers.add("def", "web", dg("config1"))
    with pytest.raises(errors.NotFound, match="no such image"):
        db.containers.add("ghi", "other", dg("config7"))
    with pytest.raises(errors.InvalidArgument):
        db.containers.add("", "x", dg("config1"))
    db.containers.delete("abc")
    assert db.containers.get("abc") is None
    with pytest.raises(errors.NotFound):
        db.containers.delete("abc")
