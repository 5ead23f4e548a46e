"""Digests are validated before any path is built; Store is the one place paths come from."""

import hashlib

import pytest

from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest
from dockyard.store import Store

GOOD = "sha256:" + "a" * 64


@pytest.mark.parametrize("text", [
    "sha256:../../x", "sha256:" + "A" * 64, "SHA256:" + "a" * 64, "sha256:" + "a" * 63,
    "sha256:" + "a" * 65, "md5:" + "a" * 32, "sha256" + "a" * 64, "", "sha256:", ":" + "a" * 64,
    "sha256:" + "g" * 64, "sha512:" + "a" * 64, "sha256:" + "a" * 63 + "/",
])
def test_malformed_digests_are_refused_before_any_path(text):
    with pytest.raises(InvalidArgument, match="invalid digest"):
        Digest.parse(text)


def test_digest_round_trip_and_hashing():
    d = Digest.parse(GOOD)
    assert str(d) == GOOD and d.short == "a" * 12
    assert Digest.parse("sha512:" + "b" * 128).algorithm == "sha512"
    assert str(Digest.of_bytes(b"x")) == "sha256:" + hashlib.sha256(b"x").hexdigest()
    h = Digest.of_bytes(b"").hasher()
    h.update(b"abc")
    assert Digest.of_hasher(h) == Digest.of_bytes(b"abc")


def test_store_paths(tmp_path):
    s = Store(str(tmp_path))
    d = Digest.parse(GOOD)
    assert s.blob(d) == f"{tmp_path}/content/blobs/sha256/{'a' * 64}"
    assert s.snapshot_fs(7) == f"{tmp_path}/snapshots/7/fs"
    assert s.snapshot_work(7) == f"{tmp_path}/snapshots/7/work"
    assert s.container("abc") == f"{tmp_path}/containers/abc"
    assert s.volume_data("vol_1") == f"{tmp_path}/volumes/vol_1/_data"
    s.ensure()
    for sub in ("content/blobs", "content/ingest", "snapshots/l", "tmp", "containers", "volumes"):
        assert (tmp_path / sub).is_dir()


@pytest.mark.parametrize("call", [
    lambda s: s.ingest("../x"), lambda s: s.ingest("a/b"), lambda s: s.ingest(""),
    lambda s: s.container(".."), lambda s: s.volume_data("a/../../etc"), lambda s: s.snapshot(0),
    lambda s: s.snapshot(-1), lambda s: s.snapshot(True), lambda s: s.snapshot_link("x" * 40),
])
def test_store_refuses_names_that_could_leave_the_root(tmp_path, call):
    with pytest.raises(InvalidArgument):
        call(Store(str(tmp_path)))
