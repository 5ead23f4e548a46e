"""content.ContentStore: verified, resumable ingest; reads; GC (with leases and races); verify."""

from __future__ import annotations

import errno
import io
import os
import stat
import threading

import pytest

from dockyard import errors
from dockyard.content import ContentStore, Protected
from dockyard.content import ingest as ingest_mod
from dockyard.metadata import Database, ImageRecord, LayerRecord
from dockyard.metadata.gc import collect_garbage, content_protected, missing_content
from dockyard.oci.digest import Digest
from dockyard.store import Store


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "root"))
    s.ensure()
    return s


@pytest.fixture
def cs(store) -> ContentStore:
    return ContentStore(store)


def blob(n: int = 1, size: int = 300_000) -> tuple[bytes, Digest]:
    data = (f"blob-{n}-".encode() * (size // 6 + 1))[:size]
    return data, Digest.of_bytes(data)


def blob_files(store: Store) -> list[str]:
    out = []
    for dirpath, _, files in os.walk(store.blobs):
        out += [os.path.join(dirpath, f) for f in files]
    return out


def nothing(protect: set[Digest] = frozenset()):  # type: ignore[assignment]
    return lambda: Protected(frozenset(protect))


class Endless(io.RawIOBase):
    """A stream that never ends, counting what was read from it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = 65536 if n < 0 else n
        self.read_bytes += n
        return b"x" * n


# ---------------------------------------------------------------------------------------------
# writing

def test_write_commit_read(cs, store):
    data, d = blob()
    with cs.writer("r1", expected=d, size=len(data)) as w:
        for i in range(0, len(data), 7000):
            w.write(data[i:i + 7000])
        assert w.offset == len(data) and w.digest() == d
        assert w.commit() == d
    assert cs.exists(d)
    assert cs.info(d).size == len(data)
    with cs.open(d) as f:
        assert f.read() == data
    assert [b.digest for b in cs.walk()] == [d]
    assert stat.S_IMODE(os.stat(store.blob(d)).st_mode) == 0o444
    assert cs.ingests() == [] and not os.path.exists(store.ingest("r1"))
    assert cs.read_bytes(d, limit=len(data)) == data
    with pytest.raises(errors.InvalidArgument, match="larger than"):
        cs.read_bytes(d, limit=10)


def test_digest_mismatch_stores_nothing(cs, store):
    data, _ = blob()
    wrong = Digest.of_bytes(b"other")
    w = cs.writer("r1", expected=wrong, size=len(data))
    w.write(data)
    with pytest.raises(errors.InvalidArgument) as e:
        w.commit()
    assert str(wrong) in str(e.value) and str(Digest.of_bytes(data)) in str(e.value)
    assert blob_files(store) == [] and cs.ingests() == []
    assert not os.path.exists(store.ingest("r1"))


def test_short_stream_is_rejected(cs, store):
    data, d = blob()
    w = cs.writer("r1", expected=d, size=len(data))
    w.write(data[:-1])
    with pytest.raises(errors.InvalidArgument, match="size mismatch"):
        w.commit()
    assert blob_files(store) == [] and cs.ingests() == []


def test_size_overflow_stops_at_size_plus_one(cs, store):
    src = Endless()
    w = cs.writer("r1", size=1000)
    with pytest.raises(errors.InvalidArgument, match="more data than the expected size 1000"):
        w.copy_from(src, chunk=300)
    assert src.read_bytes == 1001  # 300+300+300+101: never more than size+1
    assert cs.ingests() == [] and blob_files(store) == []
    w2 = cs.writer("r2", size=10)
    with pytest.raises(errors.InvalidArgument):
        w2.write(b"x" * 11)  # nothing of it is written
    assert cs.ingests() == []


def test_commit_of_a_blob_already_present_drops_the_ingest(cs, store):
    data, d = blob()
    cs.write_bytes(data, expected=d)
    w = cs.writer("again", expected=d, size=len(data))
    w.write(data)
    assert w.commit() == d
    assert blob_files(store) == [store.blob(d)] and cs.ingests() == []


def test_commit_without_expectations_and_sha512(cs):
    data, _ = blob()
    w = cs.writer("free")
    w.write(data)
    assert w.commit() == Digest.of_bytes(data)
    d512 = Digest.of_bytes(data, "sha512")
    w = cs.writer("five12")
    w.write(data)
    assert w.commit(expected=d512) == d512  # rehashed with the expected algorithm
    assert cs.exists(d512)


def test_on_digest_runs_before_the_blob_is_visible(cs, store):
    data, d = blob()
    seen = []
    w = cs.writer("r", size=len(data))
    w.write(data)
    w.commit(on_digest=lambda x: seen.append((x, os.path.exists(store.blob(x)))))
    assert seen == [(d, False)]


def test_resume_continues_at_the_offset(cs, store):
    data, d = blob(size=2_500_000)
    w = cs.writer("pull-x", expected=d, size=len(data))
    w.write(data[:1_234_567])
    w.close()
    st = cs.ingests()
    assert [(s.ref, s.offset, s.total, s.expected) for s in st] == [("pull-x", 1_234_567, len(data), d)]
    w = cs.writer("pull-x")  # expectations come from the ingest's info
    assert (w.offset, w.expected, w.total) == (1_234_567, d, len(data))
    w.write(data[w.offset:])
    assert w.commit() == d
    with cs.open(d) as f:
        assert f.read() == data


def test_resume_for_other_content_starts_over(cs):
    data, d = blob(1)
    w = cs.writer("r", expected=d, size=len(data))
    w.write(data[:1000])
    w.close()
    other, od = blob(2, size=500)
    w = cs.writer("r", expected=od, size=len(other))
    assert w.offset == 0
    w.write(other)
    assert w.commit() == od


def test_ingest_helper_resumes_a_seekable_source(cs):
    data, d = blob(size=100_000)
    w = cs.writer(f"sha256-{d.hex}", expected=d, size=len(data))
    w.write(data[:40_000])
    w.close()
    src = io.BytesIO(data)
    assert cs.ingest(src, expected=d, size=len(data)) == d
    assert cs.exists(d)


def test_one_writer_per_ref(cs):
    w = cs.writer("r")
    with pytest.raises(errors.Unavailable, match="being written"):
        cs.writer("r")
    with pytest.raises(errors.Unavailable):
        cs.abort("r")
    w.close()
    cs.writer("r").abort()
    with pytest.raises(errors.NotFound):
        cs.abort("r")


def test_closed_writer_refuses_writes(cs):
    w = cs.writer("r")
    w.close()
    with pytest.raises(errors.FailedPrecondition):
        w.write(b"x")
    with pytest.raises(errors.FailedPrecondition):
        w.commit()


@pytest.mark.parametrize("ref", ["../x", "a/b", "", ".", "..", "sha256:abc", "x" * 300])
def test_bad_refs_never_reach_a_path(cs, ref):
    with pytest.raises(errors.InvalidArgument):
        cs.writer(ref)


def test_bad_size_is_refused(cs):
    for size in (-1, "10", True):
        with pytest.raises(errors.InvalidArgument):
            cs.writer("r", size=size)  # type: ignore[arg-type]
    assert cs.ingests() == [] or all(s.offset == 0 for s in cs.ingests())


def test_disk_full_removes_the_ingest(cs, monkeypatch):
    w = cs.writer("r")
    w.write(b"some")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(ingest_mod.os, "write", full)
    with pytest.raises(errors.KernelError, match="No space left"):
        w.write(b"more")
    monkeypatch.undo()
    assert cs.ingests() == []


def test_missing_blob_errors(cs):
    d = Digest.of_bytes(b"absent")
    assert not cs.exists(d)
    for op in (cs.info, cs.open, cs.delete):
        with pytest.raises(errors.NotFound):
            op(d)


def test_delete(cs, store):
    d = cs.write_bytes(b"bye")
    cs.delete(d)
    assert not cs.exists(d) and blob_files(store) == []


# ---------------------------------------------------------------------------------------------
# garbage collection

def test_gc_sweeps_what_is_not_protected(cs):
    keep = cs.write_bytes(b"keep")
    drop = cs.write_bytes(b"drop")
    report = cs.gc(nothing({keep}))
    assert report.blobs_removed == (drop,) and report.bytes_freed == 4
    assert cs.exists(keep) and not cs.exists(drop)


def test_gc_collects_stale_ingests_only(cs, store):
    old = cs.writer("old")
    old.write(b"partial")
    old.close()
    leased = cs.writer("leased")
    leased.write(b"partial")
    leased.close()
    active = cs.writer("active")
    active.write(b"partial")
    # a crash between mkdir and the info file leaves a bare directory
    os.mkdir(store.ingest("bare"))
    assert cs.gc(lambda: Protected(ingests=frozenset({"leased"})), ingest_grace=3600).ingests_removed == ()
    report = cs.gc(lambda: Protected(ingests=frozenset({"leased"})), ingest_grace=0)
    assert set(report.ingests_removed) == {"old", "bare"}
    assert {s.ref for s in cs.ingests()} == {"leased", "active"}
    active.write(b"still fine")
    assert active.commit() == Digest.of_bytes(b"partialstill fine")


def test_gc_spares_blobs_committed_or_relied_on_while_it_marks(cs):
    orphan = cs.write_bytes(b"orphan")  # present before GC, unreferenced
    data, d = blob(3)

    def marks_then_a_pull_happens() -> Protected:
        # between the mark and the sweep: a pull relies on the orphan and commits a new blob
        assert cs.exists(orphan)
        w = cs.writer("pull", expected=d, size=len(data))
        w.write(data)
        w.commit()
        return Protected()

    report = cs.gc(marks_then_a_pull_happens)
    assert report.blobs_removed == ()
    assert cs.exists(orphan) and cs.exists(d)
    assert cs.gc(nothing()).blobs_removed != ()  # next round, unprotected, they go


def test_gc_is_not_reentrant(cs):
    def nested() -> Protected:
        with pytest.raises(errors.Unavailable, match="already running"):
            cs.gc(nothing())
        return Protected()
    cs.gc(nested)


def test_gc_with_the_database(cs, store, tmp_path):
    db = Database(store.db)
    layer = cs.write_bytes(b"layer")
    config = cs.write_bytes(b"{}")
    manifest = cs.write_bytes(b"{\"m\": 1}")
    leased = cs.write_bytes(b"in flight")
    expired = cs.write_bytes(b"crashed pull")
    garbage = cs.write_bytes(b"garbage")
    db.images.add(ImageRecord(config, manifest, "m", 2, "", "amd64", "linux", 5,
                              (LayerRecord(Digest.of_bytes(b"diff"), layer, 5, "t"),)))
    live = db.leases.create(ttl=3600)
    db.leases.add_resource(live.id, "blob", str(leased))
    db.leases.add_resource(live.id, "blob", "not-a-digest")
    dead = db.leases.create(ttl=1, now=0.0)
    db.leases.add_resource(dead.id, "blob", str(expired))
    p = content_protected(db)
    assert p.blobs == {layer, config, manifest, leased}
    report = collect_garbage(db, cs)
    assert set(report.blobs_removed) == {expired, garbage}
    assert db.leases.get(dead.id) is None and db.leases.get(live.id) is not None
    assert missing_content(db, cs) == []
    cs.delete(layer)
    assert missing_content(db, cs) == [(config, layer)]
    db.close()


# ---------------------------------------------------------------------------------------------
# verify

def test_verify_and_repair(cs, store):
    good = cs.write_bytes(b"good")
    bad = cs.write_bytes(b"bad!")
    os.chmod(store.blob(bad), 0o644)
    with open(store.blob(bad), "r+b") as f:
        f.write(b"BAD")
    with open(f"{store.blobs}/sha256/not-a-digest", "wb"):
        pass
    os.mkdir(f"{store.blobs}/md5")
    os.mkdir(f"{store.blobs}/sha256/{'0' * 64}")
    report = cs.verify()
    assert report.checked == 2 and report.bad == (bad,) and not report.clean
    assert set(report.stray) == {"md5", "sha256/not-a-digest", f"sha256/{'0' * 64}"}
    assert cs.exists(bad)  # only reported
    repaired = cs.verify(repair=True)
    assert repaired.repaired and repaired.bad == (bad,)
    assert not cs.exists(bad) and cs.exists(good)
    assert cs.verify().clean and cs.verify().checked == 1


def test_gc_running_alongside_pulls_never_loses_a_blob(cs, store):
    """Checklist 45, for real: a GC thread loops while pulls follow the lease protocol."""
    db = Database(store.db)
    stop = threading.Event()
    rounds = [0]

    def gc_loop() -> None:
        while not stop.is_set():
            collect_garbage(db, cs, ingest_grace=0)
            rounds[0] += 1

    t = threading.Thread(target=gc_loop)
    t.start()
    try:
        for n in range(40):
            garbage = cs.write_bytes(f"garbage {n}".encode())
            with db.leases.temporary(ttl=600) as lease:
                data, d = blob(n, size=50_000)
                db.leases.add_resource(lease.id, "blob", str(d))
                db.leases.add_resource(lease.id, "ingest", f"layer-{n}")
                with cs.writer(f"layer-{n}", expected=d, size=len(data)) as w:
                    for i in range(0, len(data), 9000):
                        w.write(data[i:i + 9000])
                    w.commit()
                protect = lambda x: db.leases.add_resource(lease.id, "blob", str(x))  # noqa: E731
                cfg = cs.write_bytes(f'{{"n": {n}}}'.encode(), on_digest=protect)
                man = cs.write_bytes(f'{{"m": {n}}}'.encode(), on_digest=protect)
                assert cs.exists(d) and cs.exists(cfg) and cs.exists(man)
                db.images.add(ImageRecord(cfg, man, "m", 8, "", "amd64", "linux", 1,
                                          (LayerRecord(d, d, len(data), "t"),)))
            assert missing_content(db, cs) == []
    finally:
        stop.set()
        t.join()
    assert rounds[0] > 0
    collect_garbage(db, cs, ingest_grace=0)
    assert missing_content(db, cs) == []
    assert not cs.exists(garbage)
    assert len(list(cs.walk())) == 40 * 3 and cs.ingests() == []
    db.close()


def test_gc_removes_an_ingest_whose_blob_was_committed_before_a_crash(cs, store):
    data, d = blob()
    w = cs.writer("r", expected=d, size=len(data))
    w.write(data)
    os.fsync(w._fd)
    cs._publish(store.ingest_data("r"), d)  # the rename happened; the process died before cleanup
    w.close()
    assert [s.ref for s in cs.ingests()] == ["r"]
    assert cs.gc(nothing({d})).ingests_removed == ("r",)  # at once, not after the grace period
    assert cs.exists(d) and cs.verify().clean


def test_resume_with_more_bytes_than_the_size_starts_over(cs):
    w = cs.writer("r")
    w.write(b"0123456789")
    w.close()
    w = cs.writer("r", size=4)
    assert w.offset == 0
    w.write(b"abcd")
    assert w.commit() == Digest.of_bytes(b"abcd")


def test_disk_full_when_opening_an_ingest(cs, monkeypatch):
    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(ingest_mod, "write_atomic", full)
    with pytest.raises(errors.KernelError, match="open ingest .*No space left"):
        cs.writer("r")
    monkeypatch.undo()
    assert cs.ingests() == [] and os.listdir(cs.store.ingests) == []
    cs.writer("r").abort()  # the ref was released


def test_database_side_files_are_private(store):
    db = Database(store.db)
    db.leases.create("x")
    for suffix in ("", "-wal", "-shm"):
        assert stat.S_IMODE(os.stat(store.db + suffix).st_mode) == 0o600, suffix
    db.close()


def test_a_closed_writer_cannot_remove_the_next_writers_ingest(cs):
    old = cs.writer("r")
    old.write(b"abc")
    old.close()
    new = cs.writer("r")
    old.abort()  # late, stale handle: must not touch the ingest the new writer holds
    new.write(b"def")
    assert new.commit() == Digest.of_bytes(b"abcdef")
