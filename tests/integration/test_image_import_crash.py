"""Crash safety of ``import`` (issue 3, acceptance item 4; ``test_image_load_crash`` is the load half).

The input is a multi-MB filesystem tar (three 1.5 MB files, two dozen small ones, directories, a
symlink), imported as it is (stored re-compressed with gzip) and as a ``.tar.gz`` (stored as given).
A forked child opens the service and runs ``import_image``; it is SIGKILLed part-way:

- at the k-th line executed in dockyard's image, content, metadata, snapshot and archive packages
  (the line tracer of ``test_content_crash.run_child``, no hook in product code). A dry run finds
  the points: the first line of every dockyard function the import enters (the blob writer and its
  commit, config and manifest writes, each step of the unpack, ``mark_complete``, the recording
  transaction, the lease's deletion, ...; kept at least 40 lines apart), every transaction killed
  just before its BEGIN and just after its COMMIT (the lease, its resources, the snapshot rows, the
  image row and tag, the lease's deletion), the last 13 lines, and 6 random ones: about 90 points
  for each input;
- after the k-th byte of the input was read (nothing can be recorded before the end of input);
- through the real CLI and daemon: ``dockyard -H unix://S import FILE|- REF`` as a subprocess of a
  real ``dockyard daemon``: the CLI SIGKILLed while the daemon spools its stdin (held at 40 %), and
  the daemon SIGKILLed when a marker appears on disk (the layer blob committed, the snapshot
  directory created) or after a random delay once the ingest started, then restarted on the root.

After each kill the parent plays the restarted daemon: it reopens the service (which cleans up at
open) and asserts what ``dockyard system check`` asserts (``maintenance.check``: no problems), that
``content.verify()`` is clean, that no snapshot is incomplete or without its record, that the image
list holds nothing or the whole image with its tag, and that a second import succeeds (sharing the
snapshot the first one finished) and that once the crashed import's lease expires GC leaves exactly
the images' blobs and no ingest.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time

import pytest

import dockyard.archive
import dockyard.archive.compression
import dockyard.archive.extract
import dockyard.archive.reader
import dockyard.content
import dockyard.image.importer
import dockyard.image.inspect
import dockyard.image.maintenance
import dockyard.image.unpack
import dockyard.metadata
import dockyard.snapshot
import dockyard.snapshot.overlay
import dockyard.snapshot.vfs
import dockyard.store.lock  # noqa: F401 - imported here so no child counts import lines
from dockyard.image.importer import import_image
from dockyard.image.maintenance import check
from dockyard.image.service import ImageService
from dockyard.metadata.gc import collect_garbage, missing_content
from dockyard.oci.digest import Digest
from dockyard.store import Store
from test_content_crash import _arm, run_child
from daemon_util import CLI, Daemon
from test_image_load_crash import _DyingReader

PREFIXES = tuple(os.path.dirname(m.__file__) + os.sep for m in (
    dockyard.image.importer, dockyard.content, dockyard.metadata, dockyard.snapshot, dockyard.archive))
TAG = "crash:import"


class Input:
    def __init__(self, path: str, diff_id: Digest, blob: Digest, blob_size: int) -> None:
        self.path, self.diff_id, self.blob, self.blob_size = path, diff_id, blob, blob_size


def filesystem_tar() -> bytes:
    rng = random.Random(3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def add(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.type, ti.linkname = 1_700_000_000, kind, link
            ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            ti.size = len(data) if data is not None else 0
            t.addfile(ti, io.BytesIO(data) if data is not None else None)

        for d in ("etc", "usr", "usr/bin", "var"):
            add(d, kind=tarfile.DIRTYPE)
        for i in range(24):
            add(f"etc/f{i}.conf", f"line {i}\n".encode() * (i + 1))
        for i in range(3):
            add(f"usr/bin/big{i}", rng.randbytes(1_500_000))
        add("usr/bin/link", kind=tarfile.SYMTYPE, link="big0")
    return buf.getvalue()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Input]:
    """The tar and the tar.gz, each with the layer a whole import records (found by importing it
    once here, which also loads every lazily imported module before a child counts lines)."""
    base = tmp_path_factory.mktemp("import-input")
    data = filesystem_tar()
    assert len(data) > 4_000_000
    out = {}
    for name, raw in (("tar", data), ("tar.gz", gzip.compress(data, mtime=0))):
        path = str(base / f"rootfs.{name}")
        with open(path, "wb") as f:
            f.write(raw)
        with ImageService.open(str(base / f"ref-{name}")) as svc, open(path, "rb") as f:
            image = import_image(svc, f, ref=TAG)
        (layer,) = image.layers
        assert layer.diff_id == Digest.of_bytes(data)
        if name == "tar.gz":
            assert layer.blob_digest == Digest.of_bytes(raw)  # a gzip stream is stored as given
        out[name] = Input(path, layer.diff_id, layer.blob_digest, layer.blob_size)
    return out


def _import(root: str, path: str, *, die_after: int | None = None):
    def go():
        with ImageService.open(root) as svc, open(path, "rb") as f:
            import_image(svc, _DyingReader(f, die_after) if die_after is not None else f, ref=TAG)
    return go


def landmarks(fn) -> tuple[int, list[int], list[int]]:
    """A dry run of ``fn`` in a child, counting lines as ``run_child`` does. Returns the total;
    for each dockyard function it enters, the number of that function's first executed line; and
    the first line of every later call event of ``Database.transaction``: a new transaction
    (BEGIN on its 4th line) or one resumed after its body (COMMIT on its 3rd line, the 4th after it)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            firsts: dict[tuple[str, str], int] = {}
            transactions: list[int] = []
            counted = _arm(0, PREFIXES)
            inner = sys.gettrace()

            def calls(frame, event, arg):
                local = inner(frame, event, arg)
                if local is not None:
                    code = frame.f_code
                    if (code.co_filename, code.co_qualname) in firsts and \
                            code.co_qualname == "Database.transaction":
                        transactions.append(counted() + 1)
                    firsts.setdefault((code.co_filename, code.co_qualname), counted() + 1)
                return local

            sys.settrace(calls)
            fn()
            sys.settrace(None)
            os.write(w, json.dumps([counted(), sorted(firsts.values()), transactions]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    out = b""
    while chunk := os.read(r, 1 << 16):
        out += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    total, firsts, transactions = json.loads(out)
    return total, firsts, transactions


def assert_consistent(svc: ImageService, inp: Input) -> int:
    """What ``system check`` checks, and no partial image; the number of images listed."""
    report = check(svc)
    assert report.problems == () and report.ok, report.problems
    assert svc.content.verify().clean
    assert missing_content(svc.db, svc.content) == []
    assert svc.db.snapshots.incomplete() == []
    on_disk = sorted(n for n in os.listdir(svc.store.snapshots) if n.isdigit())
    assert on_disk == sorted(str(s.id) for s in svc.db.snapshots.all())
    listed = svc.list(all=True)
    for summary in listed:
        assert summary.repo_tags == (TAG,)
        image = svc.resolve(str(summary.id))
        assert [(la.diff_id, la.blob_digest, la.blob_size) for la in image.layers] == \
            [(inp.diff_id, inp.blob, inp.blob_size)]
        assert svc.config(image).comment == "Imported from -"
    assert len(listed) <= 1
    return len(listed)


def check_after_crash(root: str, inp: Input) -> int:
    """The restarted service's view: consistent, whole or absent, and a retry works. Returns the
    number of images the crashed import had recorded (0 or 1)."""
    with ImageService.open(root) as svc:
        recorded = assert_consistent(svc, inp)
        with open(inp.path, "rb") as f:
            image = import_image(svc, f, ref=TAG)
        assert svc.resolve(TAG).id == image.id
        assert [la.blob_digest for la in image.layers] == [inp.blob]
        assert len(svc.db.snapshots.all()) == 1  # the layer is unpacked once, shared
        assert check(svc).ok
        ids = {s.id for s in svc.list(all=True)}
        assert image.id in ids and len(ids) == 1 + recorded  # an earlier whole image goes dangling
        # the crashed import's lease expires; GC keeps exactly what the images need
        collect_garbage(svc.db, svc.content, ingest_grace=0, now=time.time() + 3 * 86400)
        assert svc.db.leases.all() == []
        needed = {d for i in svc.db.images.list()
                  for d in (i.id, i.manifest_digest, *(la.blob_digest for la in i.layers))}
        assert {b.digest for b in svc.content.walk()} == needed
        assert svc.content.ingests() == [] and os.listdir(svc.store.ingests) == []
        assert check(svc).ok and svc.content.verify().clean
    return recorded


# ---------------------------------------------------------------------------------------------
# in a forked child: traced lines and byte offsets

def spaced(points, gap: int) -> list[int]:
    kept: list[int] = []
    for k in sorted(points):
        if not kept or k - kept[-1] >= gap:
            kept.append(k)
    return kept


@pytest.mark.parametrize("kind", ["tar", "tar.gz"])
def test_import_killed_at_traced_lines(tmp_path, inputs, kind):
    inp = inputs[kind]
    total, entries, transactions = landmarks(_import(str(tmp_path / "dry"), inp.path))
    assert run_child(_import(str(tmp_path / "dry2"), inp.path), prefixes=PREFIXES) == total
    assert total > 5000 and len(entries) > 100 and len(transactions) > 10
    rng = random.Random(41 if kind == "tar" else 43)
    points = sorted(
        set(spaced(entries, 40))  # into the functions along the way, 40 lines apart at least
        # a transaction's 4th line: before BEGIN, or (resumed after its body) just after COMMIT
        | {k + 4 for k in transactions}
        | set(range(total - 12, total + 1))  # the lease's end, closing
        | set(rng.sample(range(2, total - 12), 6)))
    assert len(points) >= 60
    seen = []
    for k in points:
        root = str(tmp_path / f"k{k}")
        assert run_child(_import(root, inp.path), kill_at=k, prefixes=PREFIXES) is None, k
        seen.append(check_after_crash(root, inp))
    assert set(seen) == {0, 1}  # killed before and after the image was recorded


@pytest.mark.parametrize("kind", ["tar", "tar.gz"])
def test_import_killed_at_byte_offsets(tmp_path, inputs, kind):
    inp = inputs[kind]
    size = os.path.getsize(inp.path)
    rng = random.Random(7)
    offsets = sorted({0, 1, 6, 512, size - 1, size, *rng.sample(range(513, size - 1), 6)})
    for n, offset in enumerate(offsets):
        root = str(tmp_path / f"o{n}")
        assert run_child(_import(root, inp.path, die_after=offset)) is None, offset
        assert check_after_crash(root, inp) == 0, offset


# ---------------------------------------------------------------------------------------------
# the real CLI and the real daemon, killed from outside

def _wait_for(cond, proc: subprocess.Popen, timeout: float = 20.0) -> bool:
    """Poll ``cond`` until true (True) or the process exits (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if proc.poll() is not None:
            return cond()
        time.sleep(0.0002)
    raise AssertionError("timed out waiting for a marker")


def _kill(proc: subprocess.Popen) -> bool:
    """SIGKILL ``proc``; True when it was still running (a real kill, not a finished import)."""
    proc.send_signal(signal.SIGKILL)
    if proc.stdin is not None:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    proc.wait(timeout=20)
    return proc.returncode == -signal.SIGKILL


def cli_check_after_crash(d: Daemon, inp: Input) -> int:
    """With the daemon (re)started on the crashed root: ``system check`` exits 0 and clean,
    ``images -q`` lists nothing partial, a retry works; then, the daemon stopped, the store
    itself is clean."""
    if d.proc is None or d.proc.poll() is not None:
        d.restart()
    p = d.cli("system", "check", input=b"", check=False)
    assert p.returncode == 0 and p.stdout.decode().endswith("ok: no problems\n"), p
    ids = d.cli("images", "-q", "--no-trunc", input=b"").stdout.split()
    assert len(ids) <= 1
    for image_id in ids:
        (obj,) = json.loads(d.cli("image", "inspect", image_id.decode(), input=b"").stdout)
        assert obj["RepoTags"] == [TAG]
        assert obj["RootFS"]["Layers"] == [str(inp.diff_id)]
    new_id = d.cli("import", inp.path, TAG, input=b"").stdout.decode().strip()
    assert d.cli("images", "-q", "--no-trunc", TAG, input=b"").stdout.decode().split() == [new_id]
    p = d.cli("system", "check", input=b"", check=False)
    assert p.returncode == 0 and p.stdout.decode().endswith("ok: no problems\n"), p
    d.stop()
    assert os.listdir(Store(str(d.root)).tmp) == []  # no spooled upload left
    with ImageService.open(str(d.root)) as svc:
        assert check(svc).ok and svc.content.verify().clean
        assert svc.db.snapshots.incomplete() == [] and len(svc.db.snapshots.all()) == 1
    return len(ids)


def _start(d: Daemon, source: str) -> subprocess.Popen:
    # niced (the daemon is not), so the CLI's upload is the slow side of the race
    return subprocess.Popen([*CLI, "-H", d.host, "import", source, TAG],
                            stdin=subprocess.PIPE if source == "-" else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.nice(10))


def _ingesting(store: Store):
    return lambda: os.path.isdir(store.ingests) and bool(os.listdir(store.ingests))


def _snapshot_made(store: Store):
    return lambda: os.path.isdir(store.snapshots) and any(n.isdigit() for n in os.listdir(store.snapshots))


def _spooling(d: Daemon):
    """True once the daemon holds an upload: its open file under tmp/ (anonymous: look in /proc)."""
    tmp = str(Store(str(d.root)).tmp) + "/"

    def spooling() -> bool:
        try:
            fds = os.listdir(f"/proc/{d.pid}/fd")
        except OSError:
            return False
        for fd in fds:
            try:
                if os.readlink(f"/proc/{d.pid}/fd/{fd}").startswith(tmp):
                    return True
            except OSError:
                pass
        return False
    return spooling


def test_cli_import_killed_at_markers_and_random_times(tmp_path, inputs):
    kills = []

    # 1. the client dies mid-upload: the CLI streams its stdin, held at 40 % once the daemon spools
    #    it; the daemon sees a cut body, records nothing and keeps serving
    for kind in ("tar", "tar.gz"):
        inp = inputs[kind]
        d = Daemon(tmp_path / f"stdin-{kind}").start()
        try:
            proc = _start(d, "-")
            with open(inp.path, "rb") as f:
                data = f.read()
            assert proc.stdin is not None
            proc.stdin.write(data[:len(data) * 2 // 5])
            proc.stdin.flush()
            assert _wait_for(_spooling(d), proc)
            assert _kill(proc), f"stdin {kind}: the import ended on its own"
            kills.append(f"client at 40% of {kind}")
            deadline = time.monotonic() + 20
            while _spooling(d)():  # the daemon drops the cut upload
                assert time.monotonic() < deadline, "the daemon kept a cut upload"
                time.sleep(0.01)
            assert d.proc is not None and d.proc.poll() is None, "the daemon died with its client"
            assert cli_check_after_crash(d, inp) == 0
        finally:
            d.stop()

    # 2. the daemon dies once the layer blob is committed (config, manifest, unpack and record
    #    still to come), and 3. once the snapshot directory is made (the unpack under way); a
    #    marker seen too late (the import already over) is tried again on a fresh store
    markers = (("layer blob committed", "tar",
                lambda store, inp: lambda: os.path.exists(store.blob(inp.blob))),
               ("snapshot directory made", "tar", lambda store, inp: _snapshot_made(store)),
               ("snapshot directory made (gzip)", "tar.gz", lambda store, inp: _snapshot_made(store)))
    for n, (what, kind, marker) in enumerate(markers):
        inp = inputs[kind]
        for attempt in range(3):
            d = Daemon(tmp_path / f"marker{n}-{attempt}").start()
            try:
                proc = _start(d, inp.path)
                assert d.proc is not None
                assert _wait_for(marker(Store(str(d.root)), inp), d.proc)
                killed = d.proc.poll() is None
                d.kill9()
                proc.wait(timeout=20)
                if killed and proc.returncode != 0:  # the CLI saw its daemon go
                    assert proc.stderr is not None and proc.stderr.read(), what
                recorded = cli_check_after_crash(d, inp)
            finally:
                if proc.stderr is not None:
                    proc.stderr.close()
                d.stop()
            if killed and proc.returncode != 0:
                assert recorded == 0, what
                kills.append(what)
                break
        else:
            pytest.fail(f"{what}: the import ended before the kill three times")

    # 4. the daemon killed after random delays once the ingest started (it may also finish first)
    rng = random.Random(13)
    for n in range(4):
        inp = inputs[("tar", "tar.gz")[n % 2]]
        d = Daemon(tmp_path / f"delay{n}").start()
        try:
            proc = _start(d, inp.path)
            assert d.proc is not None
            _wait_for(_ingesting(Store(str(d.root))), d.proc)
            time.sleep(rng.uniform(0.0, 0.1))
            d.kill9()
            proc.wait(timeout=20)
            if proc.returncode != 0:
                kills.append(f"random delay {n}")
            cli_check_after_crash(d, inp)
        finally:
            if proc.stderr is not None:
                proc.stderr.close()
            d.stop()

    assert len(kills) >= 5, kills
