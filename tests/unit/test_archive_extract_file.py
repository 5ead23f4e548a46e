"""The same crafted layers as test_archive_extract.py (checklist items 10-18), extracted through
``extract_layer``'s file path: a plain tar in a regular file whose digest is known (a committed
blob, as ``load`` stages it) is read by offset, tarfile parsing only headers and the kernel copying
file data. Every test of that module runs again here with its ``extract`` helper going through a
real file; compressed layers still take the streaming path (they must be hashed)."""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path

import pytest

import test_archive_extract as base
from dockyard.archive import detect_compression, extract_layer
from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest
from test_archive_extract import *  # noqa: F401,F403 - every test, run again with the fixture below

_count = itertools.count()


@pytest.fixture(autouse=True)
def through_a_file(monkeypatch, tmp_path: Path) -> list[str]:
    """``extract`` writes the layer to a file and extracts it from there, digest given."""
    used: list[str] = []

    def extract(data: bytes, dest: Path, **kw):
        if detect_compression(data[:6]) != "none" or "compression" in kw:
            return extract_layer(io.BytesIO(data), dest, **kw)
        path = tmp_path / f"blob-{next(_count)}"
        path.write_bytes(data)
        with open(path, "rb") as f:
            used.append(str(path))
            return extract_layer(f, dest, verified=Digest.of_bytes(data), **kw)

    monkeypatch.setattr(base, "extract", extract)
    return used


def test_the_file_path_is_taken_and_reports_the_given_digest(dest, through_a_file):
    data = base.tar_bytes(base.d("dir"), base.f("dir/a", b"hello" * 1000), base.sym("l", "dir/a"))
    r = base.extract(data, dest)
    assert through_a_file, "the layer went through a file"
    assert (dest / "dir/a").read_bytes() == b"hello" * 1000
    assert os.readlink(dest / "l") == "dir/a"
    assert r.digest == r.diff_id == Digest.of_bytes(data)
    assert r.size == 5000 and r.tar_size == len(data) and r.compression == "none"


def test_a_file_not_at_its_start_or_not_a_file_streams(dest, tmp_path):
    data = base.tar_bytes(base.f("a", b"1"))
    path = tmp_path / "x.tar"
    path.write_bytes(b"junk" + data)
    with open(path, "rb") as f:
        f.seek(4)  # not at offset 0: the streaming path, which hashes what it reads
        r = extract_layer(f, dest, verified=Digest.of_bytes(b"anything"))
    assert r.digest == Digest.of_bytes(data)


def test_size_limit_checked_before_extracting(dest, tmp_path):
    data = base.tar_bytes(base.f("a", b"x" * 4096))
    path = tmp_path / "big.tar"
    path.write_bytes(data)
    with open(path, "rb") as f, pytest.raises(InvalidArgument, match="exceeds the limit"):
        extract_layer(f, dest, verified=Digest.of_bytes(data),
                      limits=base.Limits(max_uncompressed_bytes=1024))
    assert os.listdir(dest) == []
