"""Crash safety of ``load`` (issue 3, acceptance item 4).

A forked child opens the service and loads a multi-layer archive; it is SIGKILLed part-way,
at the k-th line executed in dockyard's image, content, metadata, snapshot and archive packages
(a line tracer, no hook in product code: ``test_content_crash.run_child``) or after the k-th
byte of the archive was read. The parent then plays the restarted daemon: it reopens the service
(which cleans up at open) and checks what ``system check`` checks:

- every blob verifies (``content.verify()``), no image row names a missing blob;
- no incomplete snapshot, no snapshot directory without a record;
- no partial image: either nothing is listed, or the whole image with all its tags;
- a second load succeeds and shares what the first one finished (three snapshots, not more);
- once the crashed load's lease has expired, GC leaves exactly the image's blobs.
"""

from __future__ import annotations

import io
import os
import random
import signal
import time

import pytest

import dockyard.archive
import dockyard.content
import dockyard.image.inspect
import dockyard.image.load
import dockyard.image.save
import dockyard.image.unpack
import dockyard.metadata
import dockyard.snapshot
import dockyard.snapshot.overlay
import dockyard.snapshot.vfs  # noqa: F401 - imported here so no child counts import lines
from dockyard.image.service import ImageService
from dockyard.metadata.gc import collect_garbage, missing_content
from test_content_crash import kill_points, run_child
from test_image_service import BASE, CHILD, GRANDCHILD, layer_in, make_image, saved

PREFIXES = tuple(os.path.dirname(m.__file__) + os.sep for m in (
    dockyard.image.load, dockyard.content, dockyard.metadata, dockyard.snapshot, dockyard.archive))
TAGS = ("crash:1", "crash:2")


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """The same three-layer image (two tags) as a docker archive and an OCI layout."""
    root = tmp_path_factory.mktemp("source")
    with ImageService.open(str(root / "root")) as svc:
        layers = [layer_in(svc, files) for files in (BASE, CHILD, GRANDCHILD)]
        image = make_image(svc, layers, list(TAGS))
        out = {}
        for fmt in ("docker", "oci"):
            path = root / f"image-{fmt}.tar"
            path.write_bytes(saved(svc, list(TAGS), fmt))
            out[fmt] = str(path)
        # the blobs a loaded copy keeps: docker's archive has uncompressed layers
        return image.id, out


def _load(root: str, archive: str, *, die_after: int | None = None):
    def go():
        with ImageService.open(root) as svc, open(archive, "rb") as f:
            svc.load(_DyingReader(f, die_after) if die_after is not None else f)
    return go


class _DyingReader(io.RawIOBase):
    """SIGKILLs its process once ``limit`` bytes were handed out."""

    def __init__(self, f, limit: int) -> None:
        self._f, self._left = f, limit

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
        b = self._f.read(self._left if n is None or n < 0 else min(n, self._left))
        self._left -= len(b)
        return b

    def readable(self) -> bool:
        return True


def check_after_crash(root: str, archive: str, image_id) -> int:
    """The restarted service's view: consistent, whole or absent, and a retry works.
    Returns the number of images the crashed load had recorded (0 or 1)."""
    with ImageService.open(root) as svc:
        assert svc.content.verify().clean
        assert missing_content(svc.db, svc.content) == []
        assert svc.db.snapshots.incomplete() == []
        assert svc.db.check() == []
        on_disk = sorted(n for n in os.listdir(svc.store.snapshots) if n.isdigit())
        assert on_disk == sorted(str(s.id) for s in svc.db.snapshots.all())
        listed = svc.list()
        assert listed == [] or [(s.id, s.repo_tags) for s in listed] == [(image_id, TAGS)]
        recorded = len(listed)
        with open(archive, "rb") as f:
            assert svc.load(f) == [f"Loaded image: {t}" for t in TAGS]
        assert [(s.id, s.repo_tags) for s in svc.list()] == [(image_id, TAGS)]
        assert len(svc.db.snapshots.all()) == 3
        # the crashed load's lease expires; GC keeps exactly what the image needs
        collect_garbage(svc.db, svc.content, ingest_grace=0, now=time.time() + 3 * 86400)
        assert svc.db.leases.all() == []
        image = svc.resolve(TAGS[0])
        needed = {image.id, image.manifest_digest, *(la.blob_digest for la in image.layers)}
        assert {b.digest for b in svc.content.walk()} == needed
        assert svc.content.ingests() == [] and os.listdir(svc.store.ingests) == []
        assert svc.content.verify().clean and missing_content(svc.db, svc.content) == []
    return recorded


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_load_killed_at_traced_lines(tmp_path, archives, fmt):
    image_id, paths = archives
    dry = str(tmp_path / "dry")
    total = run_child(_load(dry, paths[fmt]), prefixes=PREFIXES)
    assert total and total > 500
    points = kill_points(total, tail=80, spread=60, seed=17 if fmt == "docker" else 23)
    assert len(points) >= 20
    seen = set()
    for k in points:
        root = str(tmp_path / f"k{k}")
        assert run_child(_load(root, paths[fmt]), kill_at=k, prefixes=PREFIXES) is None, k
        seen.add(check_after_crash(root, paths[fmt], image_id))
    assert seen == {0, 1}  # killed before and after the image was recorded


def test_load_killed_at_byte_offsets_of_a_gzip_stream(tmp_path, archives):
    import gzip

    image_id, paths = archives
    with open(paths["oci"], "rb") as f:
        data = gzip.compress(f.read())
    archive = str(tmp_path / "image.tar.gz")
    with open(archive, "wb") as f:
        f.write(data)
    rng = random.Random(5)
    for n, offset in enumerate(sorted({0, 1, 10, *rng.sample(range(11, len(data)), 8)})):
        root = str(tmp_path / f"o{n}")
        assert run_child(_load(root, archive, die_after=offset)) is None, offset
        assert check_after_crash(root, archive, image_id) == 0
