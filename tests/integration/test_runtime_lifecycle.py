"""dockyard-runtime's lifecycle on the real kernel, asserted as a user sees it.

create/start/state/kill/delete, run (foreground, --detach, --keep), the create/start split,
--preserve-fds, --no-pivot, and config errors that must fail cleanly. The other commands are in
test_runtime_commands.py; exec, hooks and terminals in test_runtime_exec.py, test_runtime_hooks.py
and test_runtime_terminal.py.

No test asserts a duration: waits poll with deadlines.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from helpers import REMOVE, default_spec
from runtime_util import (
    SLEEP,
    alive,
    assert_nothing_left,
    catches,
    cgroup_dirs,
    listed_ids,
    one_line_error,
    output_on_fd3,
    wait_for,
    wait_running,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

# A shell that exits 0 on SIGTERM (PID 1 of a pid namespace ignores signals it has no handler for).
TERM_TRAP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]


# --------------------------------------------------------------------------------------------------
# create / start / state / kill / delete


def test_create_start_kill_delete(runtime, make_bundle, tmp_path):
    b = make_bundle(SLEEP)
    pid_file = tmp_path / "init.pid"
    runtime.run("create", "--bundle", b.path, "--pid-file", pid_file, b.id)

    st = runtime.state(b.id)
    assert st["status"] == "created"
    assert st["id"] == b.id
    assert st["bundle"] == str(b.path)
    assert st["pid"] > 0
    assert pid_file.read_text().strip() == str(st["pid"])
    assert alive(st["pid"])
    init = st["pid"]

    runtime.run("start", b.id)
    st = runtime.state(b.id)
    assert st["status"] == "running"
    assert st["pid"] == init

    runtime.run("kill", b.id, "KILL")
    st = runtime.wait_status(b.id, "stopped")
    assert st["pid"] == 0
    assert not alive(init)

    runtime.run("delete", b.id)
    assert_nothing_left(runtime, b.id)
    gone = runtime.run("state", b.id, check=False)
    assert gone.returncode == 1
    assert "does not exist" in gone.stderr


@pytest.mark.parametrize("sig", ["SIGTERM", "TERM", "15", "term"])
def test_kill_signal_spellings(runtime, make_bundle, sig):
    b = make_bundle(TERM_TRAP)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    pid = runtime.state(b.id)["pid"]
    wait_for(lambda: catches(pid, signal.SIGTERM), "the container's TERM trap")
    runtime.run("kill", b.id, sig)
    runtime.wait_status(b.id, "stopped")
    runtime.run("delete", b.id)
    assert_nothing_left(runtime, b.id)


def test_kill_default_signal_is_term(runtime, make_bundle):
    b = make_bundle(TERM_TRAP)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    pid = runtime.state(b.id)["pid"]
    wait_for(lambda: catches(pid, signal.SIGTERM), "the container's TERM trap")
    runtime.run("kill", b.id)
    runtime.wait_status(b.id, "stopped")


def test_kill_all(runtime, make_bundle, tmp_path):
    b = make_bundle(SLEEP)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    init = runtime.state(b.id)["pid"]
    pid_file = tmp_path / "exec.pid"
    runtime.run("exec", "--detach", "--pid-file", pid_file, b.id, "sleep", "999")
    extra = int(pid_file.read_text())
    assert sorted(json.loads(runtime.run("ps", "--format", "json", b.id).stdout)) == sorted(
        [init, extra])

    runtime.run("kill", "--all", b.id, "KILL")
    runtime.wait_status(b.id, "stopped")
    wait_for(lambda: not alive(extra), "the exec'd process to die")
    assert json.loads(runtime.run("ps", "--format", "json", b.id).stdout) == []


def test_kill_unknown_signal_rejected(runtime, make_bundle):
    b = make_bundle(SLEEP)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    proc = runtime.run("kill", b.id, "SIGNOPE", check=False)
    assert proc.returncode == 1
    assert "SIGNOPE" in one_line_error(proc)
    assert runtime.state(b.id)["status"] == "running"


def test_kill_stopped_container_fails(runtime, make_bundle):
    b = make_bundle(["true"])
    runtime.run("create", "--bundle", b.path, b.id)
    runtime.run("start", b.id)
    runtime.wait_status(b.id, "stopped")
    proc = runtime.run("kill", b.id, "KILL", check=False)
    assert proc.returncode == 1
    assert "not running" in proc.stderr


def test_status_is_derived_when_the_process_exits_by_itself(runtime, make_bundle):
    b = make_bundle(["true"])
    runtime.run("create", "--bundle", b.path, b.id)
    runtime.run("start", b.id)
    st = runtime.wait_status(b.id, "stopped")
    assert st["pid"] == 0
    runtime.run("delete", b.id)
    assert_nothing_left(runtime, b.id)


def test_status_is_derived_when_the_init_is_killed_behind_the_runtimes_back(runtime, make_bundle):
    b = make_bundle(SLEEP)
    runtime.run("create", "--bundle", b.path, b.id)
    os.kill(runtime.state(b.id)["pid"], signal.SIGKILL)
    runtime.wait_status(b.id, "stopped")
    proc = runtime.run("start", b.id, check=False)
    assert proc.returncode == 1
    assert "stopped" in proc.stderr
    runtime.run("delete", b.id)
    assert_nothing_left(runtime, b.id)


def test_start_twice_fails(runtime, make_bundle):
    b = make_bundle(SLEEP)
    runtime.run("create", "--bundle", b.path, b.id)
    runtime.run("start", b.id)
    proc = runtime.run("start", b.id, check=False)
    assert proc.returncode == 1
    assert "not created" in proc.stderr
    assert runtime.state(b.id)["status"] == "running"


def test_delete_running_needs_force(runtime, make_bundle):
    b = make_bundle(SLEEP)
    runtime.run("run", "--detach", "--bundle", b.path, b.id)
    pid = runtime.state(b.id)["pid"]

    proc = runtime.run("delete", b.id, check=False)
    assert proc.returncode == 1
    msg = one_line_error(proc)
    assert b.id in msg and "running" in msg and "not stopped" in msg
    assert runtime.state(b.id)["status"] == "running"
    assert alive(pid)

    runtime.run("delete", "--force", b.id)
    assert not alive(pid)
    assert_nothing_left(runtime, b.id)


def test_delete_force_of_a_created_container(runtime, make_bundle):
    b = make_bundle(SLEEP)
    runtime.run("create", "--bundle", b.path, b.id)
    pid = runtime.state(b.id)["pid"]
    runtime.run("delete", "-f", b.id)
    assert not alive(pid)
    assert_nothing_left(runtime, b.id)


def test_delete_missing_id(runtime):
    missing = "dy-no-such-container"
    assert runtime.run("delete", "--force", missing).returncode == 0
    proc = runtime.run("delete", missing, check=False)
    assert proc.returncode == 1
    assert "does not exist" in one_line_error(proc)


def test_duplicate_id_fails_and_leaves_the_first_intact(runtime, make_bundle):
    first = make_bundle(SLEEP)
    second = make_bundle(["true"], id=first.id)
    runtime.run("create", "--bundle", first.path, first.id)
    before = runtime.state(first.id)

    proc = runtime.run("create", "--bundle", second.path, first.id, check=False)
    assert proc.returncode == 1
    assert "already exists" in one_line_error(proc)

    after = runtime.state(first.id)
    assert after == before
    assert alive(before["pid"])
    assert cgroup_dirs(first.id), "the first container's cgroup was removed"
    runtime.run("start", first.id)
    assert runtime.state(first.id)["status"] == "running"


@pytest.mark.parametrize("bad", ["a/b", "..", "has space", "semi;colon", "../../escape"])
def test_invalid_id_rejected(runtime, make_bundle, bad):
    b = make_bundle(SLEEP)
    proc = runtime.run("create", "--bundle", b.path, bad, check=False)
    assert proc.returncode == 1
    assert "invalid container id" in one_line_error(proc)
    assert runtime.containers() == []
    assert listed_ids(runtime) == []


# --------------------------------------------------------------------------------------------------
# run


@pytest.mark.parametrize("code", [0, 3, 42])
def test_run_returns_the_exit_code(any_runtime, make_bundle, code):
    b = make_bundle(["sh", "-c", f"exit {code}"])
    proc = any_runtime.run("run", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == code, proc.stderr


def test_run_passes_stdout_and_stderr(runtime, make_bundle):
    b = make_bundle(["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"])
    proc = runtime.run("run", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == 3
    assert proc.stdout == "to-stdout\n"
    assert proc.stderr == "to-stderr\n"


def test_run_passes_stdin(runtime, make_bundle):
    b = make_bundle(["sh", "-c", "cat; echo end"])
    proc = runtime.run("run", "--bundle", b.path, b.id, input="line one\nline two\n")
    assert proc.stdout == "line one\nline two\nend\n"


def test_run_exit_137_when_the_process_kills_itself(any_runtime, make_bundle):
    # Without its own pid namespace the shell is not a namespace init, so SIGKILL from itself works
    # (an init ignores signals from inside its namespace: `kill -9 $$` there is a no-op, as in runc).
    namespaces = [{"type": t} for t in ("network", "ipc", "uts", "mount")]
    b = make_bundle(["sh", "-c", "kill -9 $$; exit 5"], linux={"namespaces": namespaces})
    proc = any_runtime.run("run", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == 137, proc.stderr


def test_run_exit_137_when_killed_from_outside(runtime, make_bundle, tmp_path):
    b = make_bundle(SLEEP)
    with open(tmp_path / "run.out", "w+") as out:
        fg = runtime.popen("run", "--bundle", b.path, b.id, stdout=out, stderr=out)
        try:
            wait_running(runtime, b.id)
            runtime.run("kill", b.id, "KILL")
            assert fg.wait(timeout=30) == 137
        finally:
            if fg.poll() is None:
                fg.kill()
                fg.wait(timeout=10)
    assert_nothing_left(runtime, b.id)


def test_run_forwards_signals_to_the_container(runtime, make_bundle, tmp_path):
    b = make_bundle(["sh", "-c", "trap 'echo got-term; exit 9' TERM; while :; do sleep 0.05; done"])
    with open(tmp_path / "run.out", "w+") as out:
        fg = runtime.popen("run", "--bundle", b.path, b.id, stdout=out, stderr=out)
        try:
            pid = wait_running(runtime, b.id)["pid"]
            wait_for(lambda: catches(pid, signal.SIGTERM), "the container's TERM trap")
            fg.send_signal(signal.SIGTERM)
            assert fg.wait(timeout=30) == 9
        finally:
            if fg.poll() is None:
                fg.kill()
                fg.wait(timeout=10)
        out.seek(0)
        assert "got-term" in out.read()


def test_run_detach(runtime, make_bundle):
    b = make_bundle(SLEEP)
    proc = runtime.run("run", "--detach", "--bundle", b.path, b.id)
    assert proc.stdout == ""
    st = runtime.state(b.id)
    assert st["status"] == "running"
    assert alive(st["pid"])
    assert b.id in listed_ids(runtime)


def test_run_deletes_the_container_afterwards(runtime, make_bundle):
    b = make_bundle(["true"])
    runtime.run("run", "--bundle", b.path, b.id)
    assert_nothing_left(runtime, b.id)


def test_run_keep(runtime, make_bundle):
    b = make_bundle(["sh", "-c", "exit 4"])
    proc = runtime.run("run", "--keep", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == 4
    assert b.id in listed_ids(runtime)
    assert runtime.state(b.id)["status"] == "stopped"
    runtime.run("delete", b.id)
    assert_nothing_left(runtime, b.id)


def test_process_does_not_run_before_start(runtime, make_bundle):
    b = make_bundle(["sh", "-c", "echo started > /tmp/marker"], private_rootfs=True)
    marker = b.rootfs / "tmp" / "marker"
    runtime.run("create", "--bundle", b.path, b.id)
    assert runtime.state(b.id)["status"] == "created"
    assert not marker.exists(), "the process ran before start"

    runtime.run("start", b.id)
    wait_for(lambda: marker.exists() and marker.read_text() == "started\n", "the marker file")
    runtime.wait_status(b.id, "stopped")


# --------------------------------------------------------------------------------------------------
# --preserve-fds, --no-pivot


def test_preserve_fds(runtime, make_bundle):
    b = make_bundle(["sh", "-c", "echo via-fd3 > /proc/self/fd/3"])
    proc, out = output_on_fd3(runtime, "run", "--preserve-fds", "1", "--bundle", b.path, b.id)
    assert proc.returncode == 0, proc.stderr
    assert out == b"via-fd3\n"


def test_without_preserve_fds_the_extra_fd_is_closed(runtime, make_bundle):
    b = make_bundle(["sh", "-c", "test -e /proc/self/fd/3 && echo fd3-open; exit 0"])
    r, w = os.pipe()
    try:
        proc = runtime.run("run", "--bundle", b.path, b.id, close_fds=False,
                           preexec_fn=lambda: os.dup2(w, 3))
        assert "fd3-open" not in proc.stdout
    finally:
        os.close(r)
        os.close(w)


def test_no_pivot(runtime, make_bundle, tmp_path):
    outside = tmp_path / "host-only"
    outside.write_text("x")
    b = make_bundle(["sh", "-c", f"ls /bin/busybox; test -e {outside} && echo host-visible; "
                                 "cat /etc/passwd | head -1"])
    proc = runtime.run("run", "--no-pivot", "--bundle", b.path, b.id)
    assert proc.stdout.splitlines() == ["/bin/busybox", "root:x:0:0:root:/root:/bin/sh"]
    assert_nothing_left(runtime, b.id)


# --------------------------------------------------------------------------------------------------
# config errors: one line naming the field, nothing left behind


def _mounts_plus(extra: dict) -> list[dict]:
    return default_spec()["mounts"] + [extra]


CONFIG_ERRORS = {
    "unknown-namespace": ({"linux": {"namespaces": [{"type": "pid"}, {"type": "bogus"}]}},
                          "linux.namespaces"),
    "duplicate-namespace": ({"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"},
                                                      {"type": "pid"}]}}, "linux.namespaces"),
    "namespace-path-missing": (
        {"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                                  {"type": "network", "path": "/nonexistent/netns"}]}},
        "/nonexistent/netns"),
    "bad-mount-option": (
        {"mounts": _mounts_plus({"destination": "/bad", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["no-such-option"]})}, "/bad"),
    "relative-cwd": ({"process": {"cwd": "relative"}}, "process.cwd"),
    "negative-uid": ({"process": {"user": {"uid": -5, "gid": 0}}}, "process.user.uid"),
    "bad-memory-limit": ({"linux": {"resources": {"memory": {"limit": "lots"}}}},
                         "linux.resources.memory.limit"),
    "unknown-capability": (
        {"process": {"capabilities": {"bounding": ["CAP_KILL", "CAP_BOGUS"]}}}, "process.capabilities"),
    "unknown-rlimit": (
        {"process": {"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}}, "process.rlimits"),
    "rlimit-soft-above-hard": (
        {"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 10}]}},
        "process.rlimits"),
    "missing-root": ({"root": REMOVE}, "root"),
    "root-path-not-found": ({"root": {"path": "/nonexistent/rootfs"}}, "root.path"),
    "missing-args": ({"process": {"args": []}}, "process.args"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_error_fails_cleanly(runtime, make_bundle, case):
    overrides, field = CONFIG_ERRORS[case]
    b = make_bundle(SLEEP, **overrides)
    proc = runtime.run("create", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert field in line, line
    assert "Traceback" not in proc.stderr
    assert_nothing_left(runtime, b.id)


def test_relative_mount_destination_is_under_the_root(runtime, make_bundle):
    """As runc: a relative destination is taken relative to / (runc warns; it is not an error)."""
    b = make_bundle(["sh", "-c", "grep ' /rel/dir ' /proc/self/mountinfo | wc -l"],
                    mounts=_mounts_plus({"destination": "rel/dir", "type": "tmpfs",
                                         "source": "tmpfs"}))
    assert runtime.run("run", "--bundle", b.path, b.id).stdout.strip() == "1"


def test_missing_config_json(runtime, tmp_path):
    proc = runtime.run("create", "--bundle", tmp_path, "dy-no-config", check=False)
    assert proc.returncode == 1
    assert "config.json" in one_line_error(proc)
    assert runtime.containers() == []


def test_invalid_json_config(runtime, make_bundle):
    b = make_bundle(SLEEP)
    (b.path / "config.json").write_text('{"ociVersion": "1.0.2", "process": {not json}')
    proc = runtime.run("create", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "config.json" in line and "invalid JSON" in line
    assert_nothing_left(runtime, b.id)


def test_missing_executable_fails_create(runtime, make_bundle):
    b = make_bundle(["/no/such/program"])
    proc = runtime.run("create", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == 1
    assert "/no/such/program" in one_line_error(proc)
    assert_nothing_left(runtime, b.id)
