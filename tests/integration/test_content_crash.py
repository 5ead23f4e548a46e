"""Crash safety of the content store and the metadata database (checklist 38; issue 3 acceptance 4).

A forked child does the work and is SIGKILLed part-way; the parent then plays the restarted
daemon and checks the store. Kill points come from three sources:

- a line tracer in the child (``sys.settrace`` limited to dockyard's own package files) that
  SIGKILLs at the k-th executed line: every step of open/write/commit/migrate/transaction,
  with no hook in product code;
- random byte offsets of a blob write;
- the parent killing at random times a child that commits transactions in a loop (this reaches
  inside SQLite's own COMMIT).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import traceback

import dockyard.content
import dockyard.metadata
import dockyard.metadata.containers
import dockyard.metadata.images
import dockyard.metadata.leases
import dockyard.metadata.snapshots  # noqa: F401 - imported here so no child counts import lines
from dockyard.content import ContentStore, Protected
from dockyard.metadata import Database, ImageRecord, LayerRecord
from dockyard.metadata.gc import collect_garbage, missing_content
from dockyard.oci.digest import Digest
from dockyard.store import Store

CONTENT = os.path.dirname(dockyard.content.__file__) + os.sep
METADATA = os.path.dirname(dockyard.metadata.__file__) + os.sep
CHUNK = 64 * 1024


# ---------------------------------------------------------------------------------------------
# the child

def _arm(kill_at: int, prefixes: tuple[str, ...]):
    """Count executed lines in files under ``prefixes``; SIGKILL this process at line ``kill_at``."""
    count = 0

    def local(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
            if count == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return local

    def calls(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(prefixes) else None

    sys.settrace(calls)
    return lambda: count


def run_child(fn, *, kill_at: int = 0, prefixes: tuple[str, ...] = ()) -> int | None:
    """Run ``fn`` in a forked child. None if it was SIGKILLed, else the number of traced lines."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            counted = _arm(kill_at, prefixes)
            fn()
            sys.settrace(None)
            os.write(w, str(counted()).encode())
        except BaseException:
            sys.settrace(None)
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return None
    assert os.WEXITSTATUS(status) == 0, "the child failed (traceback above)"
    return int(out)


def kill_points(total: int, *, tail: int, spread: int, seed: int) -> list[int]:
    """Every one of the last ``tail`` lines (the commit) plus ``spread`` random earlier ones."""
    rng = random.Random(seed)
    head = range(1, max(2, total - tail))
    return sorted(set(rng.sample(head, min(spread, len(head)))) | set(range(max(1, total - tail), total + 1)))


# ---------------------------------------------------------------------------------------------
# checks shared by the tests

def blob_files(store: Store) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(store.blobs) for f in fs)


def assert_blobs_whole(store: Store, allowed: set[Digest]) -> None:
    """Nothing partial under blobs/: every file there is a whole, verified, expected blob."""
    assert set(blob_files(store)) <= {store.blob(d) for d in allowed}
    report = ContentStore(store).verify()
    assert report.clean, report


def payload(n: int, size: int) -> tuple[bytes, Digest]:
    data = random.Random(n).randbytes(size)
    return data, Digest.of_bytes(data)


# ---------------------------------------------------------------------------------------------
# content: killed at every step of a write

def test_blob_write_killed_at_traced_points_resumes_or_is_collected(tmp_path):
    data, d = payload(1, 1 << 20)
    ref = f"sha256-{d.hex}"

    def write(root: str):
        def go():
            cs = ContentStore(Store(root))
            w = cs.writer(ref, expected=d, size=len(data))
            for i in range(0, len(data), CHUNK):
                w.write(data[i:i + CHUNK])
            w.commit()
        return go

    dry = Store(str(tmp_path / "dry"))
    dry.ensure()
    total = run_child(write(dry.root), prefixes=(CONTENT,))
    assert total and total > 100
    points = kill_points(total, tail=60, spread=40, seed=7)
    assert len(points) >= 20
    outcomes = {"resumed": 0, "collected": 0, "already committed": 0}
    for k in points:
        store = Store(str(tmp_path / f"k{k}"))
        store.ensure()
        assert run_child(write(store.root), kill_at=k, prefixes=(CONTENT,)) is None, k
        assert_blobs_whole(store, {d})
        cs = ContentStore(store)
        if cs.exists(d):
            outcomes["already committed"] += 1
            # a leftover ingest dir (killed after the rename) goes at once, whatever its age
            cs.gc(lambda: Protected(frozenset({d})))
        elif k % 2:  # restart and resume
            with cs.writer(ref, expected=d, size=len(data)) as w:
                assert 0 <= w.offset <= len(data)
                w.write(data[w.offset:])
                assert w.commit() == d
            outcomes["resumed"] += 1
        else:  # restart and collect the abandoned ingest
            report = cs.gc(lambda: Protected(), ingest_grace=0)
            assert report.blobs_removed == ()
            outcomes["collected"] += 1
        assert cs.ingests() == [] and os.listdir(store.ingests) == []
        assert_blobs_whole(store, {d})
    assert all(outcomes.values()), outcomes


def test_blob_write_killed_at_random_byte_offsets_resumes_exactly_there(tmp_path):
    data, d = payload(2, 777_777)
    ref = "pull-layer"
    rng = random.Random(11)
    offsets = sorted({0, len(data), *rng.sample(range(1, len(data)), 22)})
    for n, offset in enumerate(offsets):
        store = Store(str(tmp_path / f"o{n}"))
        store.ensure()

        def write_then_die():
            cs = ContentStore(store)
            w = cs.writer(ref, expected=d, size=len(data))
            pos = 0
            while pos < offset:
                step = min(rng.randint(1, 100_000), offset - pos)
                w.write(data[pos:pos + step])
                pos += step
            os.kill(os.getpid(), signal.SIGKILL)

        assert run_child(write_then_die) is None
        assert blob_files(store) == []
        cs = ContentStore(store)
        [status] = cs.ingests()
        assert (status.offset, status.total, status.expected) == (offset, len(data), d)
        with cs.writer(ref) as w:
            assert w.offset == offset
            w.write(data[offset:])
            assert w.commit() == d
        assert cs.ingests() == []
        assert_blobs_whole(store, {d})


# ---------------------------------------------------------------------------------------------
# metadata: an image is whole or absent

def image_record(n: int, snapshot_ids: tuple[int, ...] = ()) -> ImageRecord:
    layers = tuple(LayerRecord(Digest.of_bytes(f"diff{n}.{i}".encode()),
                               Digest.of_bytes(f"blob{n}.{i}".encode()), 10 + i, "t",
                               snapshot_ids[i] if i < len(snapshot_ids) else None)
                   for i in range(3))
    return ImageRecord(Digest.of_bytes(f"config{n}".encode()), Digest.of_bytes(f"manifest{n}".encode()),
                       "m", 2, "2024-01-01T00:00:00Z", "amd64", "linux", 33, layers)


def add_image_with_snapshots(path: str, n: int) -> None:
    db = Database(path)
    with db.transaction():
        parent = None
        ids = []
        for i in range(3):
            s = db.snapshots.add(f"chain{n}.{i}", parent, f"diff{n}.{i}")
            db.snapshots.mark_complete(s.id, 100)
            parent = s.id
            ids.append(s.id)
        db.images.add(image_record(n, tuple(ids)), [f"docker.io/library/i{n}:a", f"docker.io/library/i{n}:b"])
    db.close()


def assert_images_whole(db: Database) -> list[ImageRecord]:
    assert db.check() == []
    images = db.images.list()
    for img in images:
        n = int(db.tags.tags_of(img.id)[0].split("/i")[1].split(":")[0])
        assert db.tags.tags_of(img.id) == [f"docker.io/library/i{n}:a", f"docker.io/library/i{n}:b"]
        assert [la.blob_digest for la in img.layers] == [la.blob_digest for la in image_record(n).layers]
        assert all(db.snapshots.get(la.snapshot_id).state == "complete" for la in img.layers
                   if la.snapshot_id is not None)
    return images


def test_transaction_killed_at_traced_points_leaves_the_image_whole_or_absent(tmp_path):
    dry = str(tmp_path / "dry.db")
    total = run_child(lambda: add_image_with_snapshots(dry, 1), prefixes=(METADATA,))
    assert total and total > 50
    points = kill_points(total, tail=total, spread=0, seed=0)  # every line, including the migration
    seen = set()
    for k in points:
        path = str(tmp_path / f"k{k}.db")
        assert run_child(lambda: add_image_with_snapshots(path, 1), kill_at=k, prefixes=(METADATA,)) is None
        db = Database(path)  # reopening also finishes a migration the kill interrupted
        images = assert_images_whole(db)
        snapshots = db.snapshots.all()
        assert (len(images), len(snapshots)) in ((0, 0), (1, 3))
        seen.add(len(images))
        db.close()
    assert seen == {0, 1}


def test_transactions_killed_at_random_times_by_the_parent(tmp_path):
    path = str(tmp_path / "loop.db")
    Database(path).close()
    rng = random.Random(5)
    for _ in range(24):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                db = Database(path)
                n = len(db.images.list())
                os.write(w, b"1")
                while True:
                    db.images.add(image_record(n), [f"docker.io/library/i{n}:a",
                                                    f"docker.io/library/i{n}:b"])
                    n += 1
            finally:
                os._exit(1)
        os.close(w)
        assert os.read(r, 1) == b"1"
        os.close(r)
        time.sleep(rng.uniform(0, 0.05))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        db = Database(path)
        images = assert_images_whole(db)
        numbers = sorted(int(db.tags.tags_of(i.id)[0].split("/i")[1].split(":")[0]) for i in images)
        assert numbers == list(range(len(numbers)))  # committed in order, none lost in between
        db.close()
    assert len(numbers) > 24


# ---------------------------------------------------------------------------------------------
# a whole pull: lease, blobs, image row, lease deleted

def test_pull_killed_anywhere_leaves_no_partial_image(tmp_path):
    blobs = [payload(10 + i, 200_000) for i in range(2)]
    config, manifest = b'{"config": true}', b'{"manifest": true}'

    def pull(root: str):
        def go():
            store = Store(root)
            cs = ContentStore(store)
            db = Database(store.db)
            with db.leases.temporary(ttl=3600) as lease:
                for data, d in blobs:
                    db.leases.add_resource(lease.id, "blob", str(d))
                    db.leases.add_resource(lease.id, "ingest", f"sha256-{d.hex}")
                    w = cs.writer(f"sha256-{d.hex}", expected=d, size=len(data))
                    for i in range(0, len(data), CHUNK):
                        w.write(data[i:i + CHUNK])
                    w.commit()
                protect = lambda d: db.leases.add_resource(lease.id, "blob", str(d))  # noqa: E731
                cfg = cs.write_bytes(config, on_digest=protect)
                man = cs.write_bytes(manifest, on_digest=protect)
                layers = tuple(LayerRecord(d, d, len(data), "t") for data, d in blobs)
                db.images.add(ImageRecord(cfg, man, "m", len(config), "", "amd64", "linux", 1, layers),
                              ["docker.io/library/pulled:latest"])
            db.close()
        return go

    dry = Store(str(tmp_path / "dry"))
    dry.ensure()
    total = run_child(pull(dry.root), prefixes=(CONTENT, METADATA))
    assert total and total > 100
    every = {d for _, d in blobs} | {Digest.of_bytes(config), Digest.of_bytes(manifest)}
    points = kill_points(total, tail=80, spread=40, seed=3)
    assert len(points) >= 20
    seen = set()
    for k in points:
        store = Store(str(tmp_path / f"k{k}"))
        store.ensure()
        assert run_child(pull(store.root), kill_at=k, prefixes=(CONTENT, METADATA)) is None
        assert_blobs_whole(store, every)
        # restart: the crashed pull's lease expires, GC runs
        db = Database(store.db)
        cs = ContentStore(store)
        collect_garbage(db, cs, ingest_grace=0, now=time.time() + 7200)
        assert db.check() == [] and db.leases.all() == []
        assert missing_content(db, cs) == []
        images = db.images.list()
        if images:
            assert db.tags.tags_of(images[0].id) == ["docker.io/library/pulled:latest"]
            assert {b.digest for b in cs.walk()} == every
        else:
            assert blob_files(store) == []
        assert cs.ingests() == [] and os.listdir(store.ingests) == []
        assert cs.verify().clean
        seen.add(len(images))
        db.close()
    assert seen == {0, 1}

