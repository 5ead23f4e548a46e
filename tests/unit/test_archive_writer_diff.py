"""Deterministic layer writing, round trips through extraction, overlay upper-dir diffs, tree diffs."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.archive import (Entry, diff_trees, diff_upper, extract_layer, tree_entries, upper_entries,
                              write_layer)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (mknod, chown, trusted.* xattrs)")


def make_tree(base: Path, order: int = 1) -> Path:
    """A small tree with every kind of entry; ``order=-1`` creates it in another order (same content)."""
    base.mkdir()
    groups = [
        lambda: ((base / "etc").mkdir(), (base / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")),
        lambda: ((base / "bin").mkdir(), (base / "bin/busybox").write_bytes(b"\x7fELF" + bytes(70_000)),
                 (base / "bin/sh").symlink_to("busybox")),
        lambda: (base / "b-sibling").write_text("sorts after bin/ by component, before it by string\n"),
        lambda: (base / "empty").mkdir(),
        lambda: os.mkfifo(base / "fifo"),
        lambda: (base / "ünïcode").write_text("u"),
    ]
    if order == -1:
        for i in range(5):  # shift inode numbers too
            (base / f"tmp{i}").write_text("")
        groups.reverse()
    for group in groups:
        group()
    for i in range(5 if order == -1 else 0):
        (base / f"tmp{i}").unlink()
    os.link(base / "bin/busybox", base / "bin/ls")
    os.chmod(base / "bin/busybox", 0o4755)
    os.setxattr(base / "etc/passwd", "user.origin", b"test\x00\xff")
    for p in [*base.rglob("*"), base]:
        os.utime(p, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    return base


def layer_bytes(src, **kw) -> tuple[bytes, object]:
    out = io.BytesIO()
    written = write_layer(src, out, **kw)
    return out.getvalue(), written


def tar_members(blob: bytes) -> list[tarfile.TarInfo]:
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        blob = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as t:
        return t.getmembers()


# --------------------------------------------------------------------------------------------------
# determinism

@pytest.mark.parametrize("compression", ["gzip", "zstd", None])
def test_same_tree_same_bytes(tmp_path, compression):
    tree = make_tree(tmp_path / "t")
    one, w1 = layer_bytes(tree, compression=compression)
    two, w2 = layer_bytes(tree, compression=compression)
    assert one == two and w1 == w2
    assert w1.digest.hex == hashlib.sha256(one).hexdigest()  # type: ignore[attr-defined]
    other = make_tree(tmp_path / "t2", order=-1)  # different inodes and creation order
    assert layer_bytes(other, compression=compression)[0] == one


def test_gzip_bytes_do_not_depend_on_the_cpu_count(tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "t")
    (tree / "big").write_bytes(os.urandom(1 << 20) * 3)  # several of isal's 1 MiB thread blocks
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    one, _ = layer_bytes(tree)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert layer_bytes(tree)[0] == one


def test_fixed_mtime_and_normalized_headers(tmp_path):
    tree = make_tree(tmp_path / "t")
    blob, w = layer_bytes(tree, mtime=0)
    os.utime(tree / "etc/passwd", (5, 5))
    assert layer_bytes(tree, mtime=0)[0] == blob
    assert blob[3] & 0x08 == 0 and blob[4:8] == b"\0\0\0\0"  # gzip: no FNAME, no timestamp
    members = tar_members(blob)
    assert [m.name for m in members] == [
        "b-sibling", "bin", "bin/busybox", "bin/ls", "bin/sh", "empty", "etc", "etc/passwd", "fifo", "ünïcode"]
    assert all(m.mtime == 0 and m.uname == "" and m.gname == "" for m in members)
    by = {m.name: m for m in members}
    assert by["bin/ls"].islnk() and by["bin/ls"].linkname == "bin/busybox"
    assert by["bin/busybox"].mode == 0o4755 and by["fifo"].isfifo() and by["bin/sh"].linkname == "busybox"
    assert by["etc/passwd"].pax_headers["SCHILY.xattr.user.origin"].encode("utf-8", "surrogateescape") == b"test\x00\xff"
    assert w.entries == len(members) and w.compression == "gzip"  # type: ignore[attr-defined]
    assert w.diff_id.hex == hashlib.sha256(gzip.decompress(blob)).hexdigest()  # type: ignore[attr-defined]


def test_entries_in_any_order_give_the_same_layer():
    entries = [Entry("a/b", data=b"x", size=1), Entry("a", "dir", mode=0o755), Entry("a-b", data=b"", size=0),
               Entry("a/c", "symlink", linkname="b", mode=0o777), Entry("dev/null", "char", devmajor=1, devminor=3)]
    one, _ = layer_bytes(entries, compression=None)
    two, _ = layer_bytes(list(reversed(entries)), compression=None)
    assert one == two
    names = [m.name for m in tar_members(one)]
    assert names == ["a", "a/b", "a/c", "a-b", "dev/null"]
    with pytest.raises(errors.InvalidArgument, match="relative"):
        layer_bytes([Entry("/abs", data=b"", size=0)])
    with pytest.raises(errors.InvalidArgument, match="size 3"):
        layer_bytes([Entry("f", data=b"x", size=3)])


# --------------------------------------------------------------------------------------------------
# round trip

@pytest.mark.parametrize("compression", ["gzip", "zstd", None])
def test_extract_of_write_reproduces_the_tree(tmp_path, compression):
    tree = make_tree(tmp_path / "t")
    if ROOT:
        os.mknod(tree / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.chown(tree / "etc", 12, 34)
        for p in (tree / "null", tree):
            os.utime(p, (1_700_000_000, 1_700_000_000))
    blob, w = layer_bytes(tree, compression=compression)
    dest = tmp_path / "dest"
    dest.mkdir()
    r = extract_layer(io.BytesIO(blob), dest)
    assert (r.diff_id, r.digest) == (w.diff_id, w.digest)  # type: ignore[attr-defined]
    assert diff_trees(tree, dest, thorough=True) == []
    for p in tree.rglob("*"):
        q = dest / p.relative_to(tree)
        assert os.lstat(q).st_mtime_ns == os.lstat(p).st_mtime_ns, p
    assert os.stat(dest / "bin/ls").st_ino == os.stat(dest / "bin/busybox").st_ino
    assert os.getxattr(dest / "etc/passwd", "user.origin") == b"test\x00\xff"
    assert layer_bytes(dest, compression=compression)[0] == blob  # and back again


# --------------------------------------------------------------------------------------------------
# overlay upper dirs

@needs_root
def test_diff_upper_whiteouts_and_opaque(tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "etc").mkdir()
    (upper / "etc/hosts").write_text("changed\n")
    os.mknod(upper / "etc/gone", stat.S_IFCHR, 0)  # overlay whiteout
    (upper / "var").mkdir()
    os.setxattr(upper / "var", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "var", "trusted.overlay.origin", b"\x00junk")
    (upper / "var/-first").write_text("sorts before the opaque marker by bytes\n")
    (upper / "var/new").write_text("n\n")
    os.mknod(upper / "dev-null", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a real device stays one
    out = io.BytesIO()
    diff_upper(upper, [], out, compression="zstd")
    members = tar_members(out.getvalue())
    assert [m.name for m in members] == ["dev-null", "etc", "etc/.wh.gone", "etc/hosts", "var",
                                         "var/.wh..wh..opq", "var/-first", "var/new"]
    by = {m.name: m for m in members}
    assert by["etc/.wh.gone"].isreg() and by["etc/.wh.gone"].size == 0
    assert by["dev-null"].ischr() and (by["dev-null"].devmajor, by["dev-null"].devminor) == (1, 3)
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in members for k in m.pax_headers)

    # applied onto a copy of the lower in delete mode, the layer gives the merged view
    lower = tmp_path / "lower"
    for rel in ("etc/hosts", "etc/gone", "etc/kept", "var/old/deep", "var/old2"):
        (lower / rel).parent.mkdir(parents=True, exist_ok=True)
        (lower / rel).write_text(rel)
    extract_layer(io.BytesIO(out.getvalue()), lower, whiteout_mode="delete")
    tree = sorted(str(p.relative_to(lower)) for p in lower.rglob("*"))
    assert tree == ["dev-null", "etc", "etc/hosts", "etc/kept", "var", "var/-first", "var/new"]
    assert (lower / "etc/hosts").read_text() == "changed\n"


@needs_root
def test_diff_upper_metacopy_reads_lower_data(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "bin").mkdir(parents=True)
    (lower / "bin/tool").write_bytes(b"real content")
    (upper / "bin").mkdir(parents=True)
    (upper / "bin/tool").write_bytes(b"")
    os.truncate(upper / "bin/tool", 12)  # metacopy: right size, no data
    os.setxattr(upper / "bin/tool", "trusted.overlay.metacopy", b"")
    os.chmod(upper / "bin/tool", 0o4711)
    entries = list(upper_entries(upper, [lower]))
    assert entries[-1].source == str(lower / "bin/tool")
    out = io.BytesIO()
    diff_upper(upper, [lower], out, compression=None)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as t:
        assert t.extractfile("bin/tool").read() == b"real content"  # type: ignore[union-attr]
        assert t.getmember("bin/tool").mode == 0o4711


@needs_root
def test_diff_upper_refuses_redirected_dirs(tmp_path):
    upper = tmp_path / "upper"
    (upper / "renamed").mkdir(parents=True)
    os.setxattr(upper / "renamed", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(errors.NotImplemented, match="redirect_dir"):
        diff_upper(upper, [], io.BytesIO())


def test_tree_entries_skip_sockets(tmp_path):
    import socket

    (tmp_path / "t").mkdir()
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(tmp_path / "t/sock"))
        (tmp_path / "t/f").write_text("x")
        assert [e.path for e in tree_entries(tmp_path / "t")] == ["f"]
    finally:
        s.close()


# --------------------------------------------------------------------------------------------------
# diff_trees

def test_diff_trees_categories(tmp_path):
    old = make_tree(tmp_path / "old")
    new = make_tree(tmp_path / "new", order=-1)
    assert diff_trees(old, new, thorough=True) == []

    (new / "etc/passwd").write_text("ROOT:x:0:0::/root:/bin/sh\n")       # same size, new content
    os.utime(new / "etc", ns=(os.lstat(old / "etc").st_mtime_ns,) * 2)
    os.utime(new / "b-sibling", (1, 1))                                  # mtime only: not a change
    os.chmod(new / "bin/busybox", 0o755)                                 # mode
    (new / "bin/sh").unlink()
    (new / "bin/sh").symlink_to("ls")                                    # symlink target
    shutil.rmtree(new / "empty")
    (new / "empty").write_text("was a dir\n")                            # type change
    (new / "added/deep").mkdir(parents=True)
    (new / "added/deep/f").write_text("12345")
    os.unlink(new / "fifo")
    shutil.rmtree(new / "etc")                                           # subtree deleted ...
    (new / "etc").mkdir()                                                # ... dir comes back empty
    os.utime(new / "etc", (5, 5))

    changes = {c.path: c for c in diff_trees(old, new)}
    assert {p: c.action for p, c in changes.items()} == {
        "/added": "added", "/added/deep": "added", "/added/deep/f": "added",
        "/bin/busybox": "changed", "/bin/ls": "changed", "/bin/sh": "changed",  # ls: same inode
        "/empty": "changed", "/etc/passwd": "deleted", "/fifo": "deleted"}
    assert changes["/added/deep/f"].info.size == 5 and changes["/added/deep/f"].info.kind == "file"
    assert changes["/bin/busybox"].old.mode == 0o4755 and changes["/bin/busybox"].new.mode == 0o755  # type: ignore[union-attr]
    assert changes["/empty"].old.kind == "dir" and changes["/empty"].new.kind == "file"  # type: ignore[union-attr]
    assert list(changes) == sorted(changes, key=lambda p: p.split("/"))


def test_diff_trees_content_check(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "f").write_text("aaaa")
    (new / "f").write_text("bbbb")
    os.utime(old / "f", (7, 7))
    os.utime(new / "f", (7, 7))
    assert diff_trees(old, new) == []  # same size and mtime: the quick check trusts it
    assert [c.action for c in diff_trees(old, new, thorough=True)] == ["changed"]
    os.utime(new / "f", (8, 8))
    assert [c.path for c in diff_trees(old, new)] == ["/f"]
    (new / "f").write_text("aaaa")
    assert diff_trees(old, new) == []  # mtime differs, content equal


@needs_root
def test_diff_trees_owner_and_device(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    for base in (old, new):
        (base / "f").write_text("x")
        os.mknod(base / "dev", stat.S_IFCHR, os.makedev(1, 3))
    os.chown(new / "f", 1000, 1000)
    os.unlink(new / "dev")
    os.mknod(new / "dev", stat.S_IFCHR, os.makedev(1, 5))
    assert sorted(c.path for c in diff_trees(old, new)) == ["/dev", "/f"]
