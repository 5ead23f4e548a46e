"""The runtime process dies in the middle of `create`: what is left can always be cleaned up.

A createRuntime/prestart hook is a runtime child that runs while the init waits in the middle of
its setup; `kill -9 $PPID` from it kills the runtime at exactly that point.
"""

from __future__ import annotations

import json

import pytest
from runtime_util import alive, assert_nothing_left, cgroup_dirs, wait_for


def _killer_bundle(make_bundle, kind: str, pid_note: str, mode_args: list[str]):
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {pid_note}; kill -9 $PPID"]}
    return make_bundle(mode_args, hooks={kind: [hook]})


@pytest.mark.parametrize("kind", ["prestart", "createRuntime"])
@pytest.mark.parametrize("verb", ["create", "run"])
def test_runtime_killed_mid_create_leaves_a_deletable_container(runtime, make_bundle, tmp_path,
                                                                kind, verb):
    note = tmp_path / "state-seen-by-hook.json"
    b = _killer_bundle(make_bundle, kind, str(note), ["sleep", "1000"])
    proc = runtime.run(verb, "--bundle", b.path, b.id, check=False, timeout=60)
    assert proc.returncode == -9  # the hook killed it
    init_pid = json.loads(note.read_text())["pid"]
    assert init_pid > 0
    # With the runtime gone, the init reads EOF on its channel and ends by itself...
    wait_for(lambda: not alive(init_pid), "the orphaned init to exit")
    # ...and the container was recorded with its pid: it is listed, stopped, and deletable.
    assert b.id in runtime.run("list", "-q").stdout.split()
    assert runtime.state(b.id)["status"] == "stopped"
    assert cgroup_dirs(b.id), "its cgroup exists until delete"
    runtime.run("delete", b.id)
    assert_nothing_left(runtime, b.id)


def test_force_delete_of_a_container_whose_runtime_died_kills_its_processes(runtime, make_bundle,
                                                                           tmp_path):
    """Stage 1 and the init gone, the container's own processes (none yet) and cgroup must go."""
    note = tmp_path / "note.json"
    b = _killer_bundle(make_bundle, "createRuntime", str(note), ["sleep", "1000"])
    runtime.run("create", "--bundle", b.path, b.id, check=False, timeout=60)
    runtime.run("delete", "--force", b.id)
    assert_nothing_left(runtime, b.id)
    init_pid = json.loads(note.read_text())["pid"]
    wait_for(lambda: not alive(init_pid), "the init to be gone")
