"""Layers on the real kernel: extracted whiteouts work in an overlay mount, and an upper dir diffed
into a layer reproduces the container's view.

Overlay mounts happen only inside ``unshare --mount --propagation private`` shells: the mount
namespace, and every mount in it, vanishes when the shell exits, whatever the test does.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.archive import diff_trees, diff_upper, extract_layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def tar_bytes(*members: tuple[str, bytes, bytes | None]) -> bytes:
    """Members as (name, type, data-or-None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, type_, data in members:
            ti = tarfile.TarInfo(name)
            ti.type = type_
            ti.mode = 0o755 if type_ == tarfile.DIRTYPE else 0o644
            ti.mtime = 1_700_000_000
            ti.size = len(data or b"")
            t.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


def in_mount_ns(script: str, cwd: Path) -> str:
    """Run ``script`` in a private mount namespace; return its stdout."""
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-euc", script],
                          cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def mounted_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


LOWER = tar_bytes(("a", tarfile.REGTYPE, b"lower a\n"), ("keep", tarfile.REGTYPE, b"kept\n"),
                  ("dir", tarfile.DIRTYPE, None), ("dir/old", tarfile.REGTYPE, b"old\n"),
                  ("dir/sub", tarfile.DIRTYPE, None), ("dir/sub/older", tarfile.REGTYPE, b"older\n"),
                  ("other", tarfile.DIRTYPE, None), ("other/x", tarfile.REGTYPE, b"x\n"))


def test_extracted_whiteouts_hide_lower_entries_in_a_real_overlay(tmp_path):
    lower, layer, merged = tmp_path / "lower", tmp_path / "layer", tmp_path / "merged"
    for p in (lower, layer, merged):
        p.mkdir()
    extract_layer(io.BytesIO(LOWER), lower)
    upper_tar = tar_bytes((".wh.a", tarfile.REGTYPE, None), ("dir", tarfile.DIRTYPE, None),
                          ("dir/.wh..wh..opq", tarfile.REGTYPE, None), ("dir/new", tarfile.REGTYPE, b"new\n"),
                          ("other/.wh.x", tarfile.REGTYPE, None), ("added", tarfile.REGTYPE, b"added\n"))
    extract_layer(io.BytesIO(upper_tar), layer)

    st = os.lstat(layer / "a")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # a real overlay whiteout
    assert os.getxattr(layer / "dir", "trusted.overlay.opaque") == b"y"

    out = in_mount_ns(f"mount -t overlay overlay -o lowerdir={layer}:{lower} {merged}\n"
                      f"cd {merged} && find . | sort && cat keep dir/new", tmp_path)
    assert out.split() == [".", "./added", "./dir", "./dir/new", "./keep", "./other", "kept", "new"]
    assert not mounted_under(merged) and not any(merged.iterdir())


def test_diff_of_a_real_upper_dir_reproduces_the_container_view(tmp_path):
    dirs = {n: tmp_path / n for n in ("lower", "upper", "work", "merged", "view", "layer2", "merged2",
                                      "view2", "vfs")}
    for p in dirs.values():
        p.mkdir()
    lower, upper, work, merged, view = (dirs[n] for n in ("lower", "upper", "work", "merged", "view"))
    extract_layer(io.BytesIO(LOWER), lower)
    in_mount_ns(f"mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {merged}\n"
                f"cd {merged}\n"
                "rm a\n"                                        # whiteout
                "rm -r dir && mkdir dir && echo fresh > dir/f\n"  # opaque directory
                "echo changed > keep && chmod 4711 keep\n"      # copy-up with new content and mode
                "mkdir -p new/deep && ln -s ../keep new/deep/l && mkfifo new/p\n"
                "ln keep other/hard\n"
                f"cp -a . {view}/", tmp_path)
    assert not mounted_under(merged)

    blob = io.BytesIO()
    written = diff_upper(upper, [lower], blob)
    names = _names(blob.getvalue())
    assert ".wh.a" in names and "dir/.wh..wh..opq" in names and "other/x" not in names

    # flattened (vfs): lower + the diff in delete mode == what the container saw
    vfs = dirs["vfs"]
    extract_layer(io.BytesIO(LOWER), vfs, whiteout_mode="delete")
    r = extract_layer(io.BytesIO(blob.getvalue()), vfs, whiteout_mode="delete")
    assert r.diff_id == written.diff_id
    assert diff_trees(view, vfs, thorough=True) == []

    # stacked (overlay): the diff as an overlay layer on the lower == what the container saw
    extract_layer(io.BytesIO(blob.getvalue()), dirs["layer2"])
    in_mount_ns(f"mount -t overlay overlay -o lowerdir={dirs['layer2']}:{lower} {dirs['merged2']}\n"
                f"cp -a {dirs['merged2']}/. {dirs['view2']}/", tmp_path)
    assert diff_trees(view, dirs["view2"], thorough=True) == []
    assert not mounted_under(dirs["merged2"])


def _names(blob: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as t:
        return t.getnames()
