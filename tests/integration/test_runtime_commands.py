"""dockyard-runtime's other commands on the real kernel: list, ps, pause/resume, update, features,
spec, and the global --log/--log-format, --debug, --version and --systemd-cgroup.

No test asserts a duration: waits poll with deadlines.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from runtime_util import SLEEP, alive, assert_nothing_left, listed_ids, one_line_error, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


# --------------------------------------------------------------------------------------------------
# list, ps


def test_list(runtime, make_bundle):
    running = make_bundle(SLEEP)
    created = make_bundle(SLEEP)
    runtime.run("run", "--detach", "--bundle", running.path, running.id)
    runtime.run("create", "--bundle", created.path, created.id)

    table = runtime.run("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    rows = {ln.split()[0]: ln.split() for ln in table[1:]}
    assert set(rows) == {running.id, created.id}
    assert rows[running.id][2] == "running"
    assert rows[created.id][2] == "created"
    assert rows[running.id][1] == str(runtime.state(running.id)["pid"])
    assert rows[running.id][3] == str(running.path)

    assert sorted(listed_ids(runtime)) == sorted([running.id, created.id])

    docs = json.loads(runtime.run("list", "--format", "json").stdout)
    by_id = {d["id"]: d for d in docs}
    assert set(by_id) == {running.id, created.id}
    assert by_id[running.id]["status"] == "running"
    assert by_id[created.id]["status"] == "created"
    assert by_id[created.id]["pid"] == runtime.state(created.id)["pid"]


def test_list_empty(runtime):
    assert runtime.run("list", "-q").stdout == ""
    assert json.loads(runtime.run("list", "--format", "json").stdout) in ([], None)


def test_ps(runtime, make_bundle):
    b = make_bundle(SLEEP)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    pid = runtime.state(b.id)["pid"]

    assert json.loads(runtime.run("ps", "--format", "json", b.id).stdout) == [pid]

    table = runtime.run("ps", b.id).stdout.splitlines()
    assert "PID" in table[0].split()
    assert len(table) == 2
    assert str(pid) in table[1].split()
    assert "sleep 1000" in table[1]


# --------------------------------------------------------------------------------------------------
# pause / resume


def test_pause_freezes_and_resume_thaws(runtime, make_bundle):
    loop = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; done"
    b = make_bundle(["sh", "-c", loop], private_rootfs=True)
    counter = b.rootfs / "tmp" / "count"

    def count() -> int:
        try:
            return int(counter.read_text())
        except (OSError, ValueError):
            return 0

    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    wait_for(lambda: count() > 0, "the counter to start")

    runtime.run("pause", b.id)
    assert runtime.state(b.id)["status"] == "paused"
    freezer = f"/sys/fs/cgroup/freezer/dockyard-test/{b.id}/freezer.state"
    if os.path.exists(freezer):
        with open(freezer) as f:
            assert f.read().strip() == "FROZEN"
    frozen_at = count()
    time.sleep(0.3)  # not a timing assertion: a frozen loop can never advance
    assert count() == frozen_at, "the counter advanced while paused"
    assert runtime.state(b.id)["status"] == "paused"

    again = runtime.run("pause", b.id, check=False)
    assert again.returncode == 1

    runtime.run("resume", b.id)
    assert runtime.state(b.id)["status"] == "running"
    wait_for(lambda: count() > frozen_at, "the counter to advance after resume")

    not_paused = runtime.run("resume", b.id, check=False)
    assert not_paused.returncode == 1
    assert "not paused" in one_line_error(not_paused)


def test_delete_force_of_a_paused_container(runtime, make_bundle):
    b = make_bundle(SLEEP)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    pid = runtime.state(b.id)["pid"]
    runtime.run("pause", b.id)
    runtime.run("delete", "--force", b.id)
    assert not alive(pid)
    assert_nothing_left(runtime, b.id)


# --------------------------------------------------------------------------------------------------
# update


def _cgroupns_bundle(make_bundle):
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    return make_bundle(SLEEP, linux={"namespaces": namespaces})


def _read_inside(runtime, cid: str, *files: str) -> list[str]:
    out = runtime.run("exec", cid, "cat", *(f"/sys/fs/cgroup/{f}" for f in files)).stdout
    return out.split()


def test_update_memory_and_pids_seen_inside(runtime, make_bundle):
    b = _cgroupns_bundle(make_bundle)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    runtime.run("update", "--memory", "64m", "--pids-limit", "50", b.id)
    assert _read_inside(runtime, b.id, "memory/memory.limit_in_bytes", "pids/pids.max") == [
        str(64 << 20), "50"]
    # the host sees the same files
    with open(f"/sys/fs/cgroup/memory/dockyard-test/{b.id}/memory.limit_in_bytes") as f:
        assert f.read().strip() == str(64 << 20)


def test_update_cpu_quota(runtime, make_bundle):
    b = _cgroupns_bundle(make_bundle)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    runtime.run("update", "--cpu-period", "100000", "--cpu-quota", "20000", b.id)
    assert _read_inside(runtime, b.id, "cpu/cpu.cfs_period_us", "cpu/cpu.cfs_quota_us") == [
        "100000", "20000"]


def test_update_resources_file(runtime, make_bundle, tmp_path):
    b = _cgroupns_bundle(make_bundle)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    res = tmp_path / "resources.json"
    res.write_text(json.dumps({"memory": {"limit": 96 << 20}, "pids": {"limit": 77},
                               "cpu": {"period": 100000, "quota": 50000}}))
    runtime.run("update", "-r", res, b.id)
    got = _read_inside(runtime, b.id, "memory/memory.limit_in_bytes", "pids/pids.max",
                       "cpu/cpu.cfs_quota_us")
    assert got == [str(96 << 20), "77", "50000"]


def test_update_stopped_container_fails(runtime, make_bundle):
    b = make_bundle(["true"])
    runtime.run("create", "--bundle", b.path, b.id)
    runtime.run("start", b.id)
    runtime.wait_status(b.id, "stopped")
    proc = runtime.run("update", "--memory", "64m", b.id, check=False)
    assert proc.returncode == 1
    assert "stopped" in one_line_error(proc)


def test_update_bad_value_fails(runtime, make_bundle):
    b = make_bundle(SLEEP)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    proc = runtime.run("update", "--memory", "lots", b.id, check=False)
    assert proc.returncode == 1
    assert "memory" in one_line_error(proc)


# --------------------------------------------------------------------------------------------------
# features, spec


def test_features(runtime):
    doc = json.loads(runtime.run("features").stdout)
    assert doc["ociVersionMax"].startswith("1.")
    assert doc["ociVersionMin"].startswith("1.")
    namespaces = doc["linux"]["namespaces"]
    assert {"pid", "network", "ipc", "uts", "mount", "user", "cgroup"} <= set(namespaces)
    assert set(doc["hooks"]) >= {"prestart", "createRuntime", "createContainer", "startContainer",
                                 "poststart", "poststop"}


def test_spec_writes_config_and_refuses_to_overwrite(runtime, tmp_path):
    bundle = tmp_path / "specbundle"
    bundle.mkdir()
    runtime.run("spec", "--bundle", bundle)
    config = json.loads((bundle / "config.json").read_text())
    assert config["ociVersion"].startswith("1.")
    assert config["process"]["args"]
    assert config["root"]["path"] == "rootfs"
    assert {n["type"] for n in config["linux"]["namespaces"]} >= {"pid", "mount"}

    (bundle / "config.json").write_text("{}\n")
    proc = runtime.run("spec", "--bundle", bundle, check=False)
    assert proc.returncode == 1
    assert "exists" in one_line_error(proc)
    assert (bundle / "config.json").read_text() == "{}\n"

    proc = runtime.run("spec", cwd=bundle, check=False)  # the default bundle is the cwd
    assert proc.returncode == 1
    assert "exists" in one_line_error(proc)


def test_spec_in_the_current_directory(runtime, tmp_path):
    runtime.run("spec", cwd=tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["process"]


# --------------------------------------------------------------------------------------------------
# --log, --log-format, --systemd-cgroup


def _bad_namespace_bundle(make_bundle):
    return make_bundle(SLEEP, linux={"namespaces": [{"type": "bogus"}]})


def test_log_json_on_failed_create(runtime, make_bundle, tmp_path):
    b = _bad_namespace_bundle(make_bundle)
    log = tmp_path / "runtime.log"
    proc = runtime.run("--log", log, "--log-format", "json", "create", "--bundle", b.path, b.id,
                       check=False)
    assert proc.returncode == 1
    entries = [json.loads(ln) for ln in log.read_text().splitlines()]
    errors = [e for e in entries if e.get("level") == "error"]
    assert errors, entries
    assert "linux.namespaces" in errors[-1]["msg"]
    assert "bogus" in errors[-1]["msg"]
    assert errors[-1].get("time")


def test_log_text_on_failed_create(runtime, make_bundle, tmp_path):
    b = _bad_namespace_bundle(make_bundle)
    log = tmp_path / "runtime.log"
    proc = runtime.run("--log", log, "--log-format", "text", "create", "--bundle", b.path, b.id,
                       check=False)
    assert proc.returncode == 1
    text = log.read_text()
    assert "level=error" in text
    assert "msg=" in text and "linux.namespaces" in text


def test_bad_log_format_rejected(runtime):
    proc = runtime.run("--log-format", "xml", "list", check=False)
    assert proc.returncode == 1
    assert "log-format" in proc.stderr


def test_debug_flag(runtime, make_bundle):
    b = make_bundle(SLEEP)
    runtime.run("--debug", "run", "--detach", "--bundle", b.path, b.id)
    assert runtime.run("--debug", "state", b.id).returncode == 0
    bad = _bad_namespace_bundle(make_bundle)
    proc = runtime.run("--debug", "create", "--bundle", bad.path, bad.id, check=False)
    assert proc.returncode == 1
    assert "linux.namespaces" in proc.stderr
    assert_nothing_left(runtime, bad.id)


def test_version(runtime):
    out = runtime.run("--version").stdout
    assert "dockyard-runtime version" in out
    assert "spec: 1." in out


def test_systemd_cgroup_is_a_clear_error(runtime, make_bundle):
    b = make_bundle(SLEEP)
    proc = runtime.run("--systemd-cgroup", "create", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == 1
    assert "systemd" in one_line_error(proc)
    assert_nothing_left(runtime, b.id)
