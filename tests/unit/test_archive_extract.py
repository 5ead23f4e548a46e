"""Layer extraction against crafted tars: security checklist items 10-18, one or more tests each.

Every tar is built in memory with ``tarfile``. A sentinel directory *outside* the destination holds a
file whose mode, owner, mtime, link count and content are compared before and after each hostile
layer: nothing outside dest may change. Tests needing CAP_MKNOD, CAP_CHOWN or trusted.* xattrs skip
when not run as root.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import stat
import sys
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.archive import Limits, LayerStream, detect_compression, discard_partial, extract_layer
from dockyard.archive.compression import _ZstdFrames
from dockyard.errors import InvalidArgument

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (mknod, chown, trusted.* xattrs)")


# --------------------------------------------------------------------------------------------------
# helpers

def member(name: str, type: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.size = len(data) if type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    ti.mode = attrs.pop("mode", 0o755 if type == tarfile.DIRTYPE else 0o644)
    ti.mtime = attrs.pop("mtime", 1_600_000_000)
    pax = attrs.pop("pax", None)
    for k, v in attrs.items():
        setattr(ti, k, v)
    if pax:
        ti.pax_headers = pax
    return ti, data


def d(name: str, **kw): return member(name, tarfile.DIRTYPE, **kw)
def f(name: str, data: bytes = b"x", **kw): return member(name, tarfile.REGTYPE, data, **kw)
def sym(name: str, target: str, **kw): return member(name, tarfile.SYMTYPE, linkname=target, **kw)
def hard(name: str, target: str, **kw): return member(name, tarfile.LNKTYPE, linkname=target, **kw)


def tar_bytes(*members, format=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=format) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if ti.size else None)
    return buf.getvalue()


def gz(b: bytes) -> bytes:
    return gzip.compress(b, mtime=0)


def zst(b: bytes, **kw) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(**kw).compress(b)


class Outside:
    """A directory next to dest with a sentinel file; ``unchanged()`` compares everything."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "outside"
        self.dir.mkdir()
        self.file = self.dir / "sentinel"
        self.file.write_bytes(b"host data")
        os.chmod(self.file, 0o600)
        os.utime(self.file, (1000, 1000))
        self.before = self._snap()

    def _snap(self):
        out = {}
        for p in [self.dir, *sorted(self.dir.rglob("*"))]:
            st = os.lstat(p)
            out[str(p)] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_mtime_ns,
                           p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        return out

    def unchanged(self) -> bool:
        return self._snap() == self.before


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    p = tmp_path / "dest"
    p.mkdir()
    return p


@pytest.fixture
def outside(tmp_path: Path) -> Outside:
    return Outside(tmp_path)


def extract(data: bytes, dest: Path, **kw):
    return extract_layer(io.BytesIO(data), dest, **kw)


def refused(data: bytes, dest: Path, match: str, **kw) -> str:
    with pytest.raises(InvalidArgument, match=match) as ei:
        extract(data, dest, **kw)
    return str(ei.value)


# --------------------------------------------------------------------------------------------------
# 10: ../ entries, absolute names, NUL, long names

@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "./../evil", "a/b/../../../evil"])
def test_dotdot_escape_refused_naming_member(dest, outside, name):
    msg = refused(tar_bytes(d("a"), f(name, b"pwned")), dest, "escapes the layer root")
    assert repr(name) in msg
    assert not (dest.parent / "evil").exists() and outside.unchanged()


def test_dotdot_inside_is_cleaned(dest):
    extract(tar_bytes(d("a"), f("a/../b", b"1"), f("./c/./d/../e", b"2")), dest)
    assert (dest / "b").read_bytes() == b"1" and (dest / "c" / "e").read_bytes() == b"2"


def test_absolute_name_is_confined(dest, outside):
    """Docker strips the leading '/': an absolute name lands inside dest, never at the host path."""
    name = str(outside.file)
    extract(tar_bytes(f(name, b"pwned", mode=0o4777)), dest)
    assert (dest / name.lstrip("/")).read_bytes() == b"pwned"
    assert outside.unchanged()


def test_nul_in_name_refused(dest):
    bad = tarfile.TarInfo("x")
    bad.pax_headers = {"path": "a\x00b"}
    refused(tar_bytes((bad, b"")), dest, "NUL")
    assert list(dest.iterdir()) == []


def test_nul_in_link_target_refused(dest):
    # ustar fields end at a NUL; a PAX record can carry one
    refused(tar_bytes(f("t"), hard("h", "t", pax={"linkpath": "t\x00x"})), dest, "NUL")
    refused(tar_bytes(sym("s", "a", pax={"linkpath": "a\x00b"})), dest, "NUL")


def test_too_long_names_refused(dest):
    long_path = "/".join(["d" * 200] * 25)  # 5024 bytes > PATH_MAX
    refused(tar_bytes(f(long_path)), dest, "longer than 4096")
    refused(tar_bytes(f("x" * 256)), dest, "component longer than 255")
    refused(tar_bytes(sym("s", "y" * 5000)), dest, "symlink target")
    refused(tar_bytes(f("t"), hard("h", "z" * 256)), dest, "hardlink target has a component")


# --------------------------------------------------------------------------------------------------
# 11: symlink escape then write through it

def test_symlink_to_absolute_host_dir_then_write_lands_inside(dest, outside):
    layer = tar_bytes(sym("a", str(outside.dir)), f("a/sentinel", b"pwned"), f("a/new", b"new"))
    extract(layer, dest)
    inside = dest / str(outside.dir).lstrip("/")
    assert (inside / "sentinel").read_bytes() == b"pwned" and (inside / "new").read_bytes() == b"new"
    assert os.readlink(dest / "a") == str(outside.dir)  # stored as is
    assert outside.unchanged()


def test_symlink_relative_escape_is_clamped_at_root(dest, outside):
    layer = tar_bytes(d("x"), sym("x/up", "../../../../../../.."), f("x/up/outside/sentinel", b"pwned"))
    extract(layer, dest)
    assert (dest / "outside" / "sentinel").read_bytes() == b"pwned"
    assert outside.unchanged()


def test_member_replacing_symlink_never_writes_through_it(dest, outside):
    layer = tar_bytes(sym("s", str(outside.file)), f("s", b"pwned", mode=0o777))
    extract(layer, dest)
    assert not (dest / "s").is_symlink() and (dest / "s").read_bytes() == b"pwned"
    assert outside.unchanged()


def test_symlink_loop_refused(dest):
    refused(tar_bytes(sym("a", "b"), sym("b", "a"), f("a/x")), dest, "too many levels")


def test_file_under_a_file_refused(dest):
    refused(tar_bytes(f("a"), f("a/b")), dest, "not a directory")


# --------------------------------------------------------------------------------------------------
# 12: hardlinks

@pytest.mark.parametrize("target", ["../outside/sentinel", "a/../../outside/sentinel"])
def test_hardlink_dotdot_target_refused(dest, outside, target):
    msg = refused(tar_bytes(d("a"), hard("h", target)), dest, "escapes the layer root")
    assert "'h'" in msg and outside.unchanged()


def test_hardlink_absolute_host_target_not_linked(dest, outside):
    """/tmp/.../sentinel is read as dest/tmp/.../sentinel, which does not exist: refused."""
    refused(tar_bytes(hard("h", str(outside.file))), dest, "does not exist in the layer")
    assert outside.unchanged() and os.stat(outside.file).st_nlink == 1


def test_hardlink_to_symlink_links_the_symlink(dest, outside):
    layer = tar_bytes(sym("s", str(outside.file)), hard("h", "s"))
    extract(layer, dest)
    st_h, st_s = os.lstat(dest / "h"), os.lstat(dest / "s")
    assert stat.S_ISLNK(st_h.st_mode) and st_h.st_ino == st_s.st_ino
    assert os.stat(outside.file).st_nlink == 1 and outside.unchanged()


def test_hardlink_through_symlinked_parent_stays_inside(dest, outside):
    layer = tar_bytes(sym("p", str(outside.dir)), hard("h", "p/sentinel"))
    refused(layer, dest, "does not exist in the layer")
    assert os.stat(outside.file).st_nlink == 1 and outside.unchanged()


def test_deferred_link_attack(dest, outside):
    """A hardlink made while 'sub' was a directory; 'sub' then becomes a symlink out of the root."""
    layer = tar_bytes(d("sub"), f("sub/f", b"inner"), hard("hl", "sub/f"),
                      sym("sub", str(outside.dir)), f("sub/sentinel", b"pwned", mode=0o4777),
                      hard("hl2", "sub/sentinel"), f("hl", b"rewritten"))
    extract(layer, dest)
    inside = dest / str(outside.dir).lstrip("/")
    assert (inside / "sentinel").read_bytes() == b"pwned"
    assert os.stat(dest / "hl2").st_ino == os.stat(inside / "sentinel").st_ino
    assert (dest / "hl").read_bytes() == b"rewritten"
    assert outside.unchanged() and os.stat(outside.file).st_nlink == 1


def test_hardlink_to_missing_or_directory_refused(dest):
    refused(tar_bytes(hard("h", "nope")), dest, "does not exist")
    refused(tar_bytes(d("dir"), hard("h", "dir")), dest, "is a directory")
    refused(tar_bytes(hard("h", "/")), dest, "layer root")
    refused(tar_bytes(f("h"), hard("h", "h")), dest, "itself")


def test_hardlink_metadata_does_not_rechmod_target(dest):
    extract(tar_bytes(f("t", mode=0o600), hard("h", "t", mode=0o4777)), dest)
    assert stat.S_IMODE(os.stat(dest / "t").st_mode) == 0o600


# --------------------------------------------------------------------------------------------------
# 13: chmod/chown/utime entries aimed at paths resolving outside

def test_metadata_entries_through_symlinks_leave_host_untouched(dest, outside):
    layer = tar_bytes(
        sym("esc", str(outside.file)), d("esc", mode=0o777, mtime=5),              # symlink -> dir
        sym("escd", str(outside.dir)), d("escd", mode=0o777, uid=1234, gid=1234, mtime=5),
        sym("ln", str(outside.file)), f("ln", b"", mode=0o4777, uid=4321, mtime=5),
        sym("pd", str(outside.dir)), d("pd/", mode=0o700, mtime=7), d("pd/sentinel", mode=0o777),
        d(".", mode=0o700, mtime=3))
    extract(layer, dest, chown=ROOT)
    assert outside.unchanged()
    assert stat.S_ISDIR(os.lstat(dest / "esc").st_mode) and stat.S_ISDIR(os.lstat(dest / "escd").st_mode)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700 and os.stat(dest).st_mtime == 3


@pytest.mark.parametrize("mode", ["delete", "overlay"])
def test_whiteouts_and_deletes_through_symlinks_stay_inside(dest, outside, mode):
    if mode == "overlay" and not ROOT:
        pytest.skip("overlay whiteouts need CAP_MKNOD")
    layer = tar_bytes(sym("l", str(outside.dir)), f("l/.wh.sentinel"), d("l/.wh..wh..opq"))
    extract(layer, dest, whiteout_mode=mode)
    assert outside.unchanged()
    if mode == "overlay":
        assert stat.S_ISCHR(os.lstat(dest / str(outside.file).lstrip("/")).st_mode)


# --------------------------------------------------------------------------------------------------
# 14: devices, FIFOs, setuid bits, xattrs

def dev(name: str, major: int, minor: int, kind=tarfile.CHRTYPE, **kw):
    return member(name, kind, devmajor=major, devminor=minor, **kw)


def test_device_policy_refuse_and_skip(dest):
    layer = tar_bytes(d("dev"), dev("dev/null", 1, 3), dev("dev/sda", 8, 0, tarfile.BLKTYPE))
    msg = refused(layer, dest, "refused by the device policy", device_policy="refuse")
    assert "'dev/null'" in msg and "char device 1:3" in msg
    discard_partial(dest)
    dest.mkdir()
    r = extract(layer, dest, device_policy="skip")
    assert r.skipped == 2 and not os.path.lexists(dest / "dev" / "null")


@needs_root
def test_device_policy_create(dest):
    layer = tar_bytes(d("dev"), dev("dev/null", 1, 3, mode=0o666), dev("dev/ptmx", 5, 2, mode=0o666),
                      dev("dev/loop0", 7, 0, tarfile.BLKTYPE, mode=0o660, gid=6))
    extract(layer, dest)
    st = os.lstat(dest / "dev" / "ptmx")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 5 and os.minor(st.st_rdev) == 2
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(dest / "dev" / "loop0")
    assert stat.S_ISBLK(st.st_mode) and st.st_gid == 6 and stat.S_IMODE(st.st_mode) == 0o660


def test_fifo_always_created(dest):
    extract(tar_bytes(member("p", tarfile.FIFOTYPE, mode=0o640)), dest, device_policy="refuse")
    st = os.lstat(dest / "p")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640


def test_setuid_setgid_sticky_kept(dest):
    extract(tar_bytes(f("suid", mode=0o4755), f("sgid", mode=0o2755), d("tmp", mode=0o1777),
                      d("shared", mode=0o2775)), dest)
    assert stat.S_IMODE(os.stat(dest / "suid").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(dest / "sgid").st_mode) == 0o2755
    assert stat.S_IMODE(os.stat(dest / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(dest / "shared").st_mode) == 0o2775


@needs_root
def test_setuid_survives_chown(dest):
    extract(tar_bytes(f("suid", mode=0o6755, uid=1000, gid=1000), d("d", uid=7, gid=8),
                      sym("l", "suid", uid=9, gid=9)), dest)
    st = os.stat(dest / "suid")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o6755)
    assert (os.stat(dest / "d").st_uid, os.lstat(dest / "l").st_uid) == (7, 9)


def test_user_xattr_kept_overlay_xattrs_dropped(dest):
    pax = {"SCHILY.xattr.user.note": "v\udcff1", "SCHILY.xattr.trusted.overlay.opaque": "y",
           "SCHILY.xattr.security.selinux": "system_u:object_r:etc_t:s0"}
    r = extract(tar_bytes(f("x", pax=pax), d("dir", pax={"SCHILY.xattr.user.d": "1"})), dest)
    assert os.getxattr(dest / "x", "user.note") == b"v\xff1"
    assert os.getxattr(dest / "dir", "user.d") == b"1"
    assert r.dropped_xattrs == 2
    for name in ("trusted.overlay.opaque", "security.selinux"):
        with pytest.raises(OSError):
            os.getxattr(dest / "x", name)


@needs_root
def test_security_capability_kept_after_chown(dest):
    # VFS_CAP_REVISION_2 with cap_net_raw (13) permitted+effective: what ping carries
    cap = (0x02000001).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)
    pax = {"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")}
    extract(tar_bytes(f("ping", b"\x7fELF", mode=0o755, uid=0, gid=0, pax=pax)), dest)
    assert os.getxattr(dest / "ping", "security.capability") == cap


def test_xattr_failure_is_an_error_unless_best_effort(dest):
    # user.* xattrs are not allowed on symlinks: EPERM
    layer = tar_bytes(sym("l", "x", pax={"SCHILY.xattr.user.a": "1"}))
    refused(layer, dest, "setting xattr user.a")
    discard_partial(dest)
    dest.mkdir()
    assert extract(layer, dest, best_effort_xattrs=True).dropped_xattrs == 1


# --------------------------------------------------------------------------------------------------
# 15: whiteouts

@needs_root
def test_overlay_whiteouts_created_inside(dest):
    layer = tar_bytes(d("etc"), f("etc/.wh.passwd"), d("var"), f("var/.wh..wh..opq"), f("var/new"),
                      f("/abs/.wh.gone"))
    extract(layer, dest)
    st = os.lstat(dest / "etc" / "passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "var", "trusted.overlay.opaque") == b"y"
    assert stat.S_ISCHR(os.lstat(dest / "abs" / "gone").st_mode)
    assert not os.path.lexists(dest / "etc" / ".wh.passwd")


@pytest.mark.parametrize("name", ["../.wh.x", "a/../../.wh.x"])
def test_whiteout_escaping_refused(dest, outside, name):
    refused(tar_bytes(f(name)), dest, "escapes the layer root", whiteout_mode="delete")
    assert outside.unchanged()


@pytest.mark.parametrize("name", [".wh..", ".wh.", "a/.wh.."])
def test_whiteout_naming_nothing_refused(dest, name):
    refused(tar_bytes(d("a"), f(name)), dest, "does not name an entry", whiteout_mode="delete")


def test_delete_mode_whiteouts(dest):
    lower = tar_bytes(d("a"), f("a/keep"), f("a/gone"), d("b"), f("b/old"), d("b/sub"), f("b/sub/old2"),
                      d("c"), f("c/old"), f("top"))
    extract(lower, dest, whiteout_mode="delete")
    upper = tar_bytes(f("a/.wh.gone"), f(".wh.top"), f(".wh.never-existed"),
                      d("b"), f("b/.wh..wh..opq"), f("b/new"),          # marker before children
                      d("c"), f("c/new"), d("c/sub"), f("c/.wh..wh..opq"))  # marker after children
    extract(upper, dest, whiteout_mode="delete")
    tree = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert tree == ["a", "a/keep", "b", "b/new", "c", "c/new", "c/sub"]


def test_aufs_metadata_skipped(dest):
    r = extract(tar_bytes(d(".wh..wh.plnk"), f(".wh..wh.plnk/123.4"), f("ok")), dest)
    assert [p.name for p in dest.iterdir()] == ["ok"] and r.skipped == 2


# --------------------------------------------------------------------------------------------------
# 16: bombs and counts

def test_gzip_bomb_stopped_at_limit(dest):
    bomb = gz(tar_bytes(f("zeros", bytes(8 << 20))))
    assert len(bomb) < 64 << 10
    msg = refused(bomb, dest, "exceeds the limit", limits=Limits(max_uncompressed_bytes=1 << 20))
    assert "layer member 'zeros'" in msg


def test_zstd_bomb_stopped_at_limit(dest):
    bomb = zst(tar_bytes(f("zeros", bytes(8 << 20))))
    refused(bomb, dest, "exceeds the limit", limits=Limits(max_uncompressed_bytes=1 << 20))


def test_too_many_entries(dest):
    layer = gz(tar_bytes(*[f(f"f{i}") for i in range(50)]))
    refused(layer, dest, "more than 10 entries", limits=Limits(max_entries=10))
    assert len(list(dest.iterdir())) <= 10


def test_huge_pax_header_refused(dest):
    ti, data = f("x")
    ti.pax_headers = {"comment": "c" * 5000}
    refused(tar_bytes((ti, data)), dest, "extended header", limits=Limits(max_header_bytes=4096))


def test_sparse_member_refused(dest):
    ti, _ = f("s", b"")
    ti.type = tarfile.GNUTYPE_SPARSE
    refused(tar_bytes((ti, b""), format=tarfile.GNU_FORMAT), dest, "sparse")


def test_deadline(dest):
    layer = tar_bytes(*[f(f"f{i}") for i in range(20)])
    refused(layer, dest, "took longer", limits=Limits(max_seconds=0.0))


# --------------------------------------------------------------------------------------------------
# 17: truncated, corrupt, looping

def _timed_refusal(data: bytes, dest: Path, match: str) -> None:
    t0 = time.monotonic()
    refused(data, dest, match)
    assert time.monotonic() - t0 < 5


def test_truncated_gzip(dest):
    layer = gz(tar_bytes(f("a", os.urandom(200_000)), f("b", b"x" * 1000)))
    for cut in (len(layer) // 2, len(layer) - 4, 12):
        discard_partial(dest)
        dest.mkdir()
        _timed_refusal(layer[:cut], dest, "corrupt or truncated gzip")


def test_corrupt_gzip(dest):
    layer = bytearray(gz(tar_bytes(f("a", os.urandom(100_000)))))
    layer[len(layer) // 2] ^= 0xFF
    _timed_refusal(bytes(layer), dest, "corrupt or truncated gzip")


@pytest.mark.parametrize("checksum", [True, False])
def test_truncated_zstd(dest, checksum):
    layer = zst(tar_bytes(f("a", os.urandom(200_000)), f("b", b"x" * 1000)), write_checksum=checksum)
    for cut in (len(layer) // 2, len(layer) - 1, 5):
        discard_partial(dest)
        dest.mkdir()
        _timed_refusal(layer[:cut], dest, "corrupt or truncated zstd")


def test_truncated_plain_tar_inside_data(dest):
    layer = tar_bytes(f("a", os.urandom(10_000)))
    _timed_refusal(layer[:5000], dest, "member 'a'")


def test_truncated_plain_tar_inside_header(dest):
    layer = tar_bytes(f("a", b"1"), f("b", b"2"))
    _timed_refusal(layer[:1024 + 100], dest, "truncated inside the header")


def test_corrupt_header_mid_archive_is_not_a_silent_end(dest):
    layer = bytearray(tar_bytes(f("a", b"1"), f("b", b"2")))
    layer[1024 + 10] ^= 0xFF  # second header's name: checksum no longer matches
    _timed_refusal(bytes(layer), dest, "invalid tar header at offset 1024")


def test_negative_size_refused_without_looping(dest):
    ti = tarfile.TarInfo("neg")
    ti.size = -512
    header = ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    _timed_refusal(tar_bytes(f("ok")) [:512 * 2] + header + bytes(1024), dest, "negative size")


def test_negative_pax_size_refused_without_looping(dest):
    _timed_refusal(tar_bytes(f("ok"), f("neg", b"", pax={"size": "-1024"})), dest, "negative size")


def test_garbage_is_not_a_tar(dest):
    _timed_refusal(os.urandom(4096), dest, "not a tar|invalid tar header")


# --------------------------------------------------------------------------------------------------
# 18: legitimate oddities still extract

def test_kaniko_absolute_hardlinks(dest):
    layer = tar_bytes(d("usr"), d("usr/bin"), f("usr/bin/python3.11", b"ELF", mode=0o755),
                      hard("usr/bin/python3", "/usr/bin/python3.11"),
                      hard("/usr/bin/python", "/usr/bin/python3.11"))
    extract(layer, dest)
    ino = os.stat(dest / "usr/bin/python3.11").st_ino
    assert os.stat(dest / "usr/bin/python3").st_ino == ino == os.stat(dest / "usr/bin/python").st_ino


@needs_root
def test_dev_ptmx_symlink_and_device(dest):
    layer = tar_bytes(d("dev"), sym("dev/ptmx", "pts/ptmx"), d("dev/pts"), dev("dev/pts/ptmx", 5, 2, mode=0o666),
                      dev("dev/console", 5, 1, mode=0o600))
    extract(layer, dest)
    assert os.readlink(dest / "dev/ptmx") == "pts/ptmx"
    assert os.lstat(dest / "dev/pts/ptmx").st_rdev == os.makedev(5, 2)


def test_read_only_dir_gets_children_and_times(dest):
    layer = tar_bytes(d("ro", mode=0o555, mtime=1234), f("ro/a", b"1", mtime=99), d("ro/sub", mode=0o500, mtime=55),
                      f("ro/sub/b", b"2"))
    extract(layer, dest)
    assert (dest / "ro/sub/b").read_bytes() == b"2"
    assert stat.S_IMODE(os.stat(dest / "ro").st_mode) == 0o555 and os.stat(dest / "ro").st_mtime == 1234
    assert os.stat(dest / "ro/sub").st_mtime == 55 and os.stat(dest / "ro/a").st_mtime == 99
    os.chmod(dest / "ro", 0o755)
    os.chmod(dest / "ro/sub", 0o755)


def test_replacements_later_member_wins(dest):
    layer = tar_bytes(f("x", b"old"), f("x", b"new"), d("dir"), f("dir/child"), f("dir", b"now a file"),
                      f("file"), d("file"), f("file/inner"), sym("s", "x"), f("s", b"plain"))
    extract(layer, dest)
    assert (dest / "x").read_bytes() == b"new" and (dest / "dir").read_bytes() == b"now a file"
    assert (dest / "file/inner").exists() and (dest / "s").read_bytes() == b"plain"


def test_existing_directory_kept_for_dir_member(dest):
    extract(tar_bytes(d("a"), f("a/one")), dest)
    extract(tar_bytes(d("a", mode=0o700), f("a/two")), dest, whiteout_mode="delete")
    assert sorted(p.name for p in (dest / "a").iterdir()) == ["one", "two"]
    assert stat.S_IMODE(os.stat(dest / "a").st_mode) == 0o700


def test_implicit_parents_and_root_entry(dest):
    extract(tar_bytes(d("./"), f("deep/er/file", b"1"), d("/")), dest)
    assert (dest / "deep/er/file").read_bytes() == b"1"


def test_empty_layers(dest):
    for tar, blob in [(b"", b""), (bytes(1024),) * 2, (tar_bytes(), gz(tar_bytes())), (b"", zst(b""))]:
        r = extract(blob, dest)
        assert r.entries == 0 and r.diff_id.hex == hashlib.sha256(tar).hexdigest()


def test_unicode_and_non_utf8_names(dest):
    raw = "caf\udce9"  # b"caf\xe9": not UTF-8
    extract(tar_bytes(f("日本/ファイル", b"1"), f(raw, b"2")), dest)
    assert (dest / "日本/ファイル").read_bytes() == b"1"
    assert os.path.exists(os.path.join(os.fsencode(dest), b"caf\xe9"))


@pytest.mark.parametrize("compress", ["gzip", "zstd", "bzip2", "xz", "none"])
def test_result_digests_and_sizes(dest, compress):
    import bz2
    import lzma

    tar = tar_bytes(d("a"), f("a/b", b"hello"), f("c", b"world!"))
    blob = {"gzip": gz, "zstd": zst, "bzip2": bz2.compress, "xz": lzma.compress, "none": lambda b: b}[compress](tar)
    r = extract(blob, dest)
    assert r.compression == compress and r.entries == 3 and r.size == 11 and r.tar_size == len(tar)
    assert r.diff_id.hex == hashlib.sha256(tar).hexdigest()
    assert r.digest.hex == hashlib.sha256(blob).hexdigest()


def test_bad_options_refused(dest):
    with pytest.raises(InvalidArgument, match="whiteout_mode"):
        extract(b"", dest, whiteout_mode="aufs")
    with pytest.raises(InvalidArgument, match="device_policy"):
        extract(b"", dest, device_policy="maybe")


def test_discard_partial_removes_tree_without_following_links(dest, outside):
    with pytest.raises(InvalidArgument):
        extract(tar_bytes(sym("l", str(outside.dir)), d("ro", mode=0o500), f("ro/x"), f("../bad")), dest)
    discard_partial(dest)
    assert not dest.exists() and outside.unchanged()


# --------------------------------------------------------------------------------------------------
# the layer stream

def test_detect_compression():
    assert detect_compression(b"\x1f\x8b\x08") == "gzip"
    assert detect_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert detect_compression(b"BZh9") == "bzip2"
    assert detect_compression(b"\xfd7zXZ\x00") == "xz"
    assert detect_compression(b"etc/\x00") == "none" and detect_compression(b"") == "none"


def test_zstd_frame_tracker_knows_every_truncation():
    frames = zst(b"a" * 5000, write_checksum=True) + b"\x50\x2a\x4d\x18\x03\x00\x00\x00abc" + zst(b"")
    whole = _ZstdFrames()
    whole.feed(frames)
    assert whole.complete and whole.frames == 3
    boundaries = {len(zst(b"a" * 5000, write_checksum=True)), len(frames) - len(zst(b""))}
    for cut in range(1, len(frames)):
        t = _ZstdFrames()
        for i in range(cut):  # byte by byte
            t.feed(frames[i:i + 1])
        assert t.complete == (cut in boundaries), cut


def test_stream_needs_size_and_drain():
    s = LayerStream(io.BytesIO(gz(b"abc")))
    with pytest.raises(ValueError):
        s.read(-1)
    with pytest.raises(ValueError):
        s.diff_id
    assert s.read(10) == b"abc"
    s.drain()
    assert s.diff_id.hex == hashlib.sha256(b"abc").hexdigest()


def test_source_errors_are_not_blamed_on_the_layer():
    class Broken(io.RawIOBase):
        def readable(self): return True
        def readinto(self, b): raise OSError(errno.EIO, "disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        LayerStream(Broken()).read(10)


def test_gzip_without_isal(dest, monkeypatch):
    monkeypatch.setitem(sys.modules, "isal", None)
    layer = gz(tar_bytes(f("a", b"1")))
    r = extract(layer, dest)
    assert r.compression == "gzip" and (dest / "a").read_bytes() == b"1"
    with pytest.raises(InvalidArgument, match="corrupt or truncated gzip"):
        extract(layer[: len(layer) // 2], dest)
