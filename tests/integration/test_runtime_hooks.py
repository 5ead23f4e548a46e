"""OCI hooks run by dockyard-runtime on the real kernel: order, state on stdin, namespaces, failures.

Each hook is a small shell script that appends ``<kind> <status> <pid> <hostname>`` to a log and
keeps the state JSON it read. Host-side hooks use the host's /bin/sh; the startContainer hook runs
after pivot_root, so its script lives inside the (private) rootfs and writes through a bind mount.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from helpers import default_spec
from runtime_util import alive, assert_nothing_left, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

HOOK_SCRIPT = r"""#!/bin/sh
# usage: hook.sh KIND LOGDIR  (the OCI state JSON arrives on stdin)
state=$(cat)
printf '%s\n' "$state" > "$2/$1.json"
status=$(printf '%s' "$state" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
pid=$(printf '%s' "$state" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
echo "$1 ${status:-none} ${pid:-0} $(hostname)" >> "$2/log"
"""
HOOK_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


@pytest.fixture
def hooked(make_bundle, tmp_path):
    """Factory: a bundle with a logging hook of every kind; returns (bundle, logdir)."""

    def make(args=None):
        logdir = tmp_path / "hooklog"
        logdir.mkdir()
        host_script = tmp_path / "hook.sh"
        host_script.write_text(HOOK_SCRIPT)
        host_script.chmod(0o755)
        mounts = default_spec()["mounts"] + [
            {"destination": "/hooklog", "type": "bind", "source": str(logdir),
             "options": ["rbind", "rw"]}]
        b = make_bundle(args or ["sleep", "1000"], private_rootfs=True, mounts=mounts)
        inner = b.rootfs / "hook.sh"  # the startContainer hook's path resolves in the container
        inner.write_text(HOOK_SCRIPT)
        inner.chmod(0o755)
        (b.rootfs / "hooklog").mkdir()

        def hook(kind: str, path: str, log: str) -> list[dict]:
            return [{"path": path, "args": ["hook.sh", kind, log], "env": HOOK_ENV}]

        hooks = {kind: hook(kind, str(host_script), str(logdir)) for kind in KINDS}
        hooks["startContainer"] = hook("startContainer", "/hook.sh", "/hooklog")
        return b.rewrite(hooks=hooks), logdir

    return make


def log_lines(logdir) -> list[list[str]]:
    try:
        return [ln.split() for ln in (logdir / "log").read_text().splitlines()]
    except FileNotFoundError:
        return []


def test_hooks_fire_in_order_with_the_state(runtime, hooked):
    b, logdir = hooked()
    host = socket.gethostname()
    assert host != b.id

    runtime.run("create", "--bundle", b.path, b.id)
    pid = runtime.state(b.id)["pid"]
    assert log_lines(logdir) == [
        ["prestart", "creating", str(pid), host],
        ["createRuntime", "creating", str(pid), host],
        ["createContainer", "creating", str(pid), b.id],  # in the container's uts namespace
    ]

    runtime.run("start", b.id)
    wait_for(lambda: len(log_lines(logdir)) >= 5, "startContainer and poststart")
    assert log_lines(logdir)[3:] == [
        ["startContainer", "created", str(pid), b.id],  # inside the container, after pivot_root
        ["poststart", "running", str(pid), host],
    ]

    runtime.run("delete", "--force", b.id)
    assert log_lines(logdir)[5:] == [["poststop", "stopped", "0", host]]

    for kind in KINDS:
        state = json.loads((logdir / f"{kind}.json").read_text())
        assert state["id"] == b.id, kind
        assert state["bundle"] == str(b.path), kind
        assert state["ociVersion"].startswith("1."), kind
        if kind != "poststop":
            assert state["pid"] == pid, kind
    assert_nothing_left(runtime, b.id)


def test_hooks_with_run(runtime, hooked):
    b, logdir = hooked(["sh", "-c", "echo program >> /hooklog/log"])
    runtime.run("run", "--bundle", b.path, b.id)
    kinds = [line[0] for line in log_lines(logdir)]
    # poststart races the program's exit: check the order of everything else
    assert [k for k in kinds if k != "poststart"] == [
        "prestart", "createRuntime", "createContainer", "startContainer", "program", "poststop"]
    assert "poststart" in kinds
    assert kinds.index("poststart") > kinds.index("startContainer")
    assert kinds.index("poststart") < kinds.index("poststop")
    assert_nothing_left(runtime, b.id)


def test_poststop_runs_at_delete_of_a_stopped_container(runtime, hooked):
    b, logdir = hooked(["true"])
    runtime.run("create", "--bundle", b.path, b.id)
    runtime.run("start", b.id)
    runtime.wait_status(b.id, "stopped")
    assert "poststop" not in [line[0] for line in log_lines(logdir)]
    runtime.run("delete", b.id)
    assert log_lines(logdir)[-1][:2] == ["poststop", "stopped"]


def _one_hook(make_bundle, kind: str, args: list[str], timeout: int | None = None):
    hook = {"path": "/bin/sh", "args": ["sh", "-c", *args], "env": HOOK_ENV}
    if timeout is not None:
        hook["timeout"] = timeout
    return make_bundle(["sleep", "1000"], hooks={kind: [hook]})


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_leaves_nothing(runtime, make_bundle, kind):
    b = _one_hook(make_bundle, kind, ["echo hook-said-no >&2; exit 4"])
    proc = runtime.run("create", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == 1
    msg = proc.stderr
    assert kind in msg, msg
    assert "/bin/sh" in msg and "4" in msg and "hook-said-no" in msg
    assert_nothing_left(runtime, b.id)


def test_hook_timeout(runtime, make_bundle, tmp_path):
    pid_file = tmp_path / "hook.pid"
    b = _one_hook(make_bundle, "createRuntime", [f"echo $$ > {pid_file}; exec sleep 60"], timeout=1)
    proc = runtime.run("create", "--bundle", b.path, b.id, check=False, timeout=60)
    assert proc.returncode == 1
    assert "createRuntime" in proc.stderr and "timed out" in proc.stderr
    assert_nothing_left(runtime, b.id)
    hook_pid = int(pid_file.read_text())
    wait_for(lambda: not alive(hook_pid), "the timed-out hook to be killed")


def test_hook_timeout_kills_what_the_hook_started(runtime, make_bundle, tmp_path):
    """The hook runs in a session of its own: a timeout ends its children too, not only it."""
    pid_file = tmp_path / "child.pid"
    b = _one_hook(make_bundle, "prestart", [f"sleep 60 & echo $! > {pid_file}; wait"], timeout=1)
    proc = runtime.run("create", "--bundle", b.path, b.id, check=False, timeout=60)
    assert proc.returncode == 1 and "timed out" in proc.stderr
    assert_nothing_left(runtime, b.id)
    child_pid = int(pid_file.read_text())
    wait_for(lambda: not alive(child_pid), "the hook's child to be killed with it")


def test_failing_poststop_hook_still_deletes(runtime, make_bundle):
    b = _one_hook(make_bundle, "poststop", ["exit 3"])
    runtime.run("create", "--bundle", b.path, b.id)
    proc = runtime.run("delete", "--force", b.id, check=False)
    assert "poststop" in proc.stderr
    assert_nothing_left(runtime, b.id)


def test_hook_missing_binary(runtime, make_bundle):
    b = make_bundle(["sleep", "1000"], hooks={"prestart": [{"path": "/no/such/hook"}]})
    proc = runtime.run("create", "--bundle", b.path, b.id, check=False)
    assert proc.returncode == 1
    assert "prestart" in proc.stderr and "/no/such/hook" in proc.stderr
    assert_nothing_left(runtime, b.id)
