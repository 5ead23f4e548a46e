"""engine/runtime_cmd.py: dockyard-runtime's light verbs in the daemon give the same errors as the
runtime's process would (NotFound, Conflict), and a gone container deletes quietly."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from dockyard.daemon.config import own_runtime
from dockyard.engine import runtime_cmd
from dockyard.errors import Conflict, NotFound
from dockyard.runtime.state import ContainerState, StateDir


def _rt(root: str) -> runtime_cmd.Runtime:
    return runtime_cmd.Runtime(name="dockyard-runtime", path="/nonexistent", root=root,
                               inproc=True)


def _stopped(root: str, cid: str) -> None:
    """A container the runtime knows whose init is gone (pid of an exited child)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    states = StateDir(root)
    states.reserve(cid)
    states.save(ContainerState(id=cid, bundle="/b", rootfs="/b/r", pid=pid, start_time=1,
                               created="2026-01-01T00:00:00Z", owner="", annotations=(),
                               cgroup_paths=(), cgroup_version="1", cgroup_created=(),
                               namespaces=(), config="{}", status="running"))


def test_missing_container_errors_match_the_process(tmp_path):
    rt = _rt(str(tmp_path))
    with pytest.raises(NotFound, match="start container abc: container abc does not exist"):
        asyncio.run(runtime_cmd.start(rt, "abc"))
    with pytest.raises(NotFound):
        asyncio.run(runtime_cmd.kill(rt, "abc", 15))
    with pytest.raises(NotFound):
        asyncio.run(runtime_cmd.pause(rt, "abc"))
    asyncio.run(runtime_cmd.delete(rt, "abc"))  # gone already: fine


def test_kill_and_start_of_a_stopped_container_conflict_then_delete_forgets_it(tmp_path):
    rt = _rt(str(tmp_path))
    _stopped(str(tmp_path), "c1")
    with pytest.raises(Conflict, match="kill container c1: container c1 is not running"):
        asyncio.run(runtime_cmd.kill(rt, "c1", 15))
    with pytest.raises(Exception, match="start container c1: cannot start container c1: it is "
                                        "stopped"):
        asyncio.run(runtime_cmd.start(rt, "c1"))
    asyncio.run(runtime_cmd.delete(rt, "c1"))
    assert not os.path.exists(tmp_path / "c1")


def test_own_runtime_is_the_launcher_next_to_this_python():
    path = own_runtime()
    assert path == os.path.join(os.path.dirname(sys.executable), "dockyard-runtime")
    assert os.access(path, os.X_OK)
