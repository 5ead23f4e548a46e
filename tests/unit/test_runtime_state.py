"""runtime/state.py: the status state machine, ids, the --root state directory, status derivation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dockyard import leanjson
from dockyard.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from dockyard.record import replace
from dockyard.runtime import state as st
from dockyard.runtime.state import (
    CREATED,
    CREATING,
    PAUSED,
    RUNNING,
    STOPPED,
    ContainerState,
    StateDir,
    check_transition,
    derive_status,
    proc_start_time,
    validate_id,
    write_atomic,
)

ALL = (CREATING, CREATED, RUNNING, PAUSED, STOPPED)
ALLOWED = {
    (CREATING, CREATED), (CREATING, STOPPED),
    (CREATED, RUNNING), (CREATED, STOPPED),
    (RUNNING, PAUSED), (RUNNING, STOPPED),
    (PAUSED, RUNNING), (PAUSED, STOPPED),
}


def make_state(cid: str = "c1", **kw) -> ContainerState:
    values = dict(
        id=cid, bundle="/b", rootfs="/b/rootfs", pid=0, start_time=0,
        created="2024-01-02T03:04:05.000000006Z", owner="root",
        annotations=(("org.example/a", "1"), ("b", "two")),
        cgroup_paths=(("memory", "/sys/fs/cgroup/memory/x"), ("pids", "/sys/fs/cgroup/pids/x")),
        cgroup_version="v1", cgroup_created=(("memory", "/sys/fs/cgroup/memory/x"),),
        namespaces=(("pid", ""), ("network", "/var/run/netns/n")),
        config='{"ociVersion": "1.2.0"}', status=CREATING,
    )
    values.update(kw)
    return ContainerState(**values)


def alive(cid: str = "c1", **kw) -> ContainerState:
    """A state whose init is this test process (certainly alive, same start time)."""
    return make_state(cid, pid=os.getpid(), start_time=proc_start_time(os.getpid()), **kw)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ------------------------------------------------------------------ transitions


@pytest.mark.parametrize("current, target", sorted(ALLOWED))
def test_allowed_transitions(current, target):
    check_transition(current, target, "c1")


@pytest.mark.parametrize("current, target",
                         sorted((a, b) for a in ALL for b in ALL if (a, b) not in ALLOWED))
def test_forbidden_transitions(current, target):
    with pytest.raises(FailedPrecondition) as exc:
        check_transition(current, target, "web1")
    assert str(exc.value) == f"container web1 is {current}: cannot move to {target}"


def test_stopped_is_final():
    assert st.TRANSITIONS[STOPPED] == frozenset()


# ------------------------------------------------------------------ ids


@pytest.mark.parametrize("cid", ["a", "web-1", "A_b.c+d", "0123456789abcdef" * 4, "...x", "x.."])
def test_valid_ids(cid):
    validate_id(cid)


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "/abs", "a b", "tab\t", "é", "a:b", "a\nb"])
def test_invalid_ids(cid):
    with pytest.raises(InvalidArgument) as exc:
        validate_id(cid)
    assert repr(cid) in str(exc.value) and "invalid container id" in str(exc.value)


def test_state_dir_paths_validate_the_id(tmp_path):
    states = StateDir(str(tmp_path))
    assert states.state_file("c1") == f"{tmp_path}/c1/state.json"
    assert states.fifo("c1") == f"{tmp_path}/c1/exec.fifo"
    with pytest.raises(InvalidArgument):
        states.dir("../escape")


# ------------------------------------------------------------------ StateDir


def test_reserve_save_load(tmp_path):
    states = StateDir(str(tmp_path / "root"))  # created on first reserve
    d = states.reserve("c1")
    assert d == f"{tmp_path}/root/c1" and os.path.isdir(d)
    s = alive(status=RUNNING)
    states.save(s)
    assert states.load("c1") == s


def test_reserve_twice_is_already_exists(tmp_path):
    states = StateDir(str(tmp_path))
    states.reserve("c1")
    with pytest.raises(AlreadyExists, match="container with id c1 already exists"):
        states.reserve("c1")


def test_load_missing_is_not_found(tmp_path):
    states = StateDir(str(tmp_path))
    with pytest.raises(NotFound, match="container nope does not exist"):
        states.load("nope")
    states.reserve("half")  # reserved but never saved
    with pytest.raises(NotFound):
        states.load("half")


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"id": "c1"}', b"\xff\xfe"])
def test_unreadable_state_is_failed_precondition(tmp_path, content):
    states = StateDir(str(tmp_path))
    states.reserve("c1")
    (tmp_path / "c1" / "state.json").write_bytes(content)
    with pytest.raises(FailedPrecondition) as exc:
        states.load("c1")
    assert "c1" in str(exc.value) and "unreadable" in str(exc.value)
    assert f"{tmp_path}/c1/state.json" in str(exc.value)


@pytest.mark.parametrize("content", [b"null", b"[]"])
def test_state_that_is_not_an_object_is_failed_precondition(tmp_path, content):
    states = StateDir(str(tmp_path))
    states.reserve("c1")
    (tmp_path / "c1" / "state.json").write_bytes(content)
    with pytest.raises(FailedPrecondition):
        states.load("c1")


def test_ids_lists_only_saved_containers_sorted(tmp_path):
    states = StateDir(str(tmp_path))
    assert StateDir(str(tmp_path / "missing")).ids() == []
    for cid in ("zeta", "alpha", "mid"):
        states.reserve(cid)
        states.save(make_state(cid))
    states.reserve("reserved-only")
    (tmp_path / "stray-file").write_text("x")
    assert states.ids() == ["alpha", "mid", "zeta"]


def test_remove(tmp_path):
    states = StateDir(str(tmp_path))
    states.reserve("c1")
    states.save(make_state("c1"))
    os.mkfifo(states.fifo("c1"))
    states.remove("c1")
    assert not (tmp_path / "c1").exists()
    assert states.ids() == []
    states.remove("c1")  # already gone: not an error
    with pytest.raises(NotFound):
        states.load("c1")


def test_save_overwrites(tmp_path):
    states = StateDir(str(tmp_path))
    states.reserve("c1")
    states.save(make_state("c1"))
    states.save(make_state("c1", status=STOPPED, pid=42))
    got = states.load("c1")
    assert (got.status, got.pid) == (STOPPED, 42)
    assert sorted(os.listdir(tmp_path / "c1")) == ["state.json"]


# ------------------------------------------------------------------ write_atomic


@pytest.mark.parametrize("durable", [True, False])
def test_write_atomic(tmp_path, durable):
    target = tmp_path / "pid"
    target.write_text("old")
    write_atomic(str(target), b"1234\n", durable=durable)
    assert target.read_bytes() == b"1234\n"
    assert os.listdir(tmp_path) == ["pid"]  # no temporary file left behind
    write_atomic(str(tmp_path / "new"), b"")
    assert (tmp_path / "new").read_bytes() == b""
    assert sorted(os.listdir(tmp_path)) == ["new", "pid"]


def test_write_atomic_into_missing_directory_fails_cleanly(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(str(tmp_path / "nodir" / "f"), b"x")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ derive_status


def test_proc_start_time():
    me = proc_start_time(os.getpid())
    assert isinstance(me, int) and me > 0
    assert proc_start_time(os.getpid()) == me
    assert proc_start_time(dead_pid()) is None


def test_creating_while_pid_is_zero(tmp_path):
    assert derive_status(StateDir(str(tmp_path)), make_state(status=CREATING, pid=0)) == CREATING


def test_creating_with_a_dead_init_is_stopped(tmp_path):
    s = make_state(status=CREATING, pid=dead_pid(), start_time=1)
    assert derive_status(StateDir(str(tmp_path)), s) == STOPPED


@pytest.mark.parametrize("persisted", [CREATED, RUNNING, PAUSED])
def test_pid_zero_outside_creating_is_stopped(tmp_path, persisted):
    assert derive_status(StateDir(str(tmp_path)), make_state(status=persisted, pid=0)) == STOPPED


def test_dead_pid_is_stopped(tmp_path):
    s = make_state(status=RUNNING, pid=dead_pid(), start_time=12345)
    assert derive_status(StateDir(str(tmp_path)), s) == STOPPED


def test_reused_pid_is_stopped(tmp_path):
    s = replace(alive(status=RUNNING), start_time=proc_start_time(os.getpid()) + 1)
    assert derive_status(StateDir(str(tmp_path)), s) == STOPPED


def test_alive_with_fifo_is_created(tmp_path):
    states = StateDir(str(tmp_path))
    states.reserve("c1")
    os.mkfifo(states.fifo("c1"))
    assert derive_status(states, alive(status=CREATED)) == CREATED
    # The init's pid is recorded while create still runs: "creating" until create saves
    # "created", and "stopped" if that init died meanwhile.
    assert derive_status(states, alive(status=CREATING)) == CREATING
    dead = replace(alive(status=CREATING), start_time=proc_start_time(os.getpid()) + 1)
    assert derive_status(states, dead) == STOPPED
    # run (no fifo protocol): a leftover fifo does not make it "created"
    assert derive_status(states, alive(status=RUNNING, use_fifo=False)) == RUNNING


def test_alive_without_fifo_is_running_or_paused(tmp_path):
    states = StateDir(str(tmp_path))
    states.reserve("c1")
    s = alive(status=CREATED)
    assert derive_status(states, s) == RUNNING
    assert derive_status(states, s, frozen=False) == RUNNING
    assert derive_status(states, s, frozen=True) == PAUSED
    assert derive_status(states, replace(s, status=PAUSED)) == RUNNING  # facts, not the record


def test_init_alive():
    assert st.init_alive(alive())
    assert not st.init_alive(make_state(pid=0))


# ------------------------------------------------------------------ (de)serialization


def test_to_json_shape():
    s = alive(status=RUNNING)
    d = s.to_json()
    assert d["annotations"] == {"org.example/a": "1", "b": "two"}
    assert d["cgroup_paths"]["pids"] == "/sys/fs/cgroup/pids/x"
    assert d["namespaces"] == {"pid": "", "network": "/var/run/netns/n"}
    assert d["pid"] == os.getpid() and d["status"] == RUNNING and d["use_fifo"] is True
    assert set(d) == {"id", "bundle", "rootfs", "pid", "start_time", "created", "owner", "annotations",
                      "cgroup_paths", "cgroup_version", "cgroup_created", "namespaces", "config",
                      "status", "use_fifo"}


@pytest.mark.parametrize("state", [
    make_state(),
    make_state(annotations=(), cgroup_paths=(), cgroup_created=(), namespaces=(), use_fifo=False,
               cgroup_version="v2", owner=""),
    make_state(config='{"process": {"args": ["sh", "-c", "echo \\"é\\""]}}', pid=7, start_time=99),
])
def test_json_round_trip(state):
    assert ContainerState.from_json(state.to_json()) == state
    assert ContainerState.from_json(leanjson.loads(leanjson.dumps(state.to_json()))) == state


def test_from_json_defaults_for_older_files():
    d = make_state().to_json()
    for key in ("owner", "annotations", "cgroup_paths", "cgroup_version", "cgroup_created",
                "namespaces", "use_fifo"):
        del d[key]
    s = ContainerState.from_json(d)
    assert (s.owner, s.annotations, s.cgroup_version, s.use_fifo) == ("", (), "v1", True)


def test_now_rfc3339():
    t = st.now_rfc3339()
    assert len(t) == len("2024-01-02T03:04:05.123456789Z") and t.endswith("Z") and t[10] == "T"
