"""The test helpers themselves: runc's default spec, deep-merge, bundles, ids, the leak filter."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import (
    REMOVE,
    SESSION_TAG,
    Runtime,
    deep_merge,
    default_spec,
    make_bundle,
    new_objects,
    unique_id,
)


def test_default_spec_has_runc_shape():
    spec = default_spec()
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    assert [m["destination"] for m in spec["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]
    assert spec["process"]["capabilities"]["bounding"] == [
        "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert spec["process"]["noNewPrivileges"] is True


def test_default_spec_is_a_fresh_copy():
    a = default_spec()
    a["linux"]["namespaces"].clear()
    assert default_spec()["linux"]["namespaces"]


@pytest.mark.skipif(not shutil.which("runc"), reason="runc not installed")
def test_default_spec_equals_runc_spec(tmp_path):
    subprocess.run(["runc", "spec", "--bundle", str(tmp_path)], check=True)
    assert json.loads((tmp_path / "config.json").read_text()) == default_spec()


def test_deep_merge_merges_maps_replaces_lists_and_removes():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 4, "e": {"f": 1}}
    out = deep_merge(base, {"a": {"c": [3], "x": {"y": 1}}, "d": REMOVE, "e": 5})
    assert out == {"a": {"b": 1, "c": [3], "x": {"y": 1}}, "e": 5}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 4, "e": {"f": 1}}  # untouched


def test_deep_merge_does_not_share_override_objects():
    override = {"l": [1]}
    out = deep_merge({}, override)
    out["l"].append(2)
    assert override == {"l": [1]}


def test_unique_id_carries_session_tag():
    a, b = unique_id(), unique_id()
    assert a != b and len(a) == 12 and a.startswith("dy" + SESSION_TAG)


def test_make_bundle_shared_rootfs_and_overrides(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    b = make_bundle(tmp_path / "b", rootfs, ["sh", "-c", "exit 3"], hostname="h",
                    linux={"resources": {"memory": {"limit": 1 << 26}}})
    written = json.loads((b.path / "config.json").read_text())
    assert written == b.config
    assert written["process"]["args"] == ["sh", "-c", "exit 3"]
    assert written["process"]["terminal"] is False
    assert written["root"] == {"path": str(rootfs), "readonly": True}
    assert written["hostname"] == "h"
    assert written["linux"]["cgroupsPath"] == f"/dockyard-test/{b.id}"
    assert written["linux"]["resources"] == {
        "devices": [{"allow": False, "access": "rwm"}], "memory": {"limit": 1 << 26}}
    assert written["linux"]["namespaces"]  # the default survives the merge


def test_make_bundle_private_rootfs_is_a_writable_copy(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "sh").symlink_to("busybox")
    b = make_bundle(tmp_path / "b", rootfs, private_rootfs=True)
    assert b.rootfs == b.path / "rootfs" and b.config["root"]["readonly"] is False
    assert (b.rootfs / "bin" / "sh").is_symlink()
    b2 = b.rewrite(process={"args": ["true"]}, hostname=REMOVE)
    assert "hostname" not in json.loads((b.path / "config.json").read_text())
    assert b2.config["process"]["args"] == ["true"]


def test_runtime_runs_with_root_and_reports_failures(tmp_path):
    rt = Runtime("/bin/echo", tmp_path / "state")
    assert rt.run("list").stdout == f"--root {tmp_path / 'state'} list\n"
    with pytest.raises(subprocess.CalledProcessError, match="exited 1"):
        Runtime("/bin/false", tmp_path).run("x")
    assert Runtime("/bin/false", tmp_path).run("x", check=False).returncode == 1


def test_leak_filter_reports_only_new_objects_of_this_session(tmp_path):
    base = str(tmp_path)
    mine, theirs = unique_id(), "dy" + ("0000" if SESSION_TAG != "0000" else "ffff") + "abcdef"
    before = {"cgroups": {"/sys/fs/cgroup/memory/old"}}
    now = {"cgroups": {"/sys/fs/cgroup/memory/old",
                       f"/sys/fs/cgroup/memory/dockyard-test/{mine}",
                       f"/sys/fs/cgroup/memory/dockyard-test/{theirs}",
                       "/sys/fs/cgroup/memory/dockyard-test"},
           "mounts": {"/tmp/pytest-of-root/pytest-99999/x/rootfs (from overlay)"},
           "veths": set()}
    leaks = new_objects(before, base, snapshot=lambda _: now, settle=0)
    assert leaks == {"cgroups": {f"/sys/fs/cgroup/memory/dockyard-test/{mine}"}}


def test_leak_check_waits_for_objects_to_go(tmp_path):
    snapshots = iter([{"netns": {"x"}}, {"netns": set()}])
    assert new_objects({}, str(tmp_path), snapshot=lambda _: next(snapshots), settle=5) == {}
