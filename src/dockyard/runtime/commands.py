"""The runtime's other verbs: state, kill, delete, list, ps, pause, resume, update."""

from __future__ import annotations

import _signal as signal  # the C module: signal.py's enums cost ~2 ms to import
import os
import time

from dockyard import leanjson as json
from dockyard.errors import DockyardError, FailedPrecondition, InvalidArgument, NotFound
from dockyard.record import replace
from dockyard.runtime import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.oci.runtime_spec import Resources


def current_status(states: st.StateDir, cur: st.ContainerState) -> str:
    status = st.derive_status(states, cur)
    if status == st.RUNNING:
        try:
            if st.open_cgroup(cur).is_frozen():
                return st.PAUSED
        except (OSError, DockyardError):
            pass
    return status


def state_document(states: st.StateDir, cur: st.ContainerState) -> dict:
    status = current_status(states, cur)
    doc = {
        "ociVersion": st.OCI_VERSION, "id": cur.id,
        "pid": cur.pid if status != st.STOPPED else 0, "status": status,
        "bundle": cur.bundle, "rootfs": cur.rootfs, "created": cur.created, "owner": cur.owner,
    }
    if cur.annotations:
        doc["annotations"] = dict(cur.annotations)
    return doc


def parse_signal(text: str) -> int:
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if not 0 < n < 65:
            raise InvalidArgument(f"invalid signal {text!r}")
        return n
    if not t.startswith("SIG"):
        t = "SIG" + t
    value = getattr(signal, t, None) if not t.startswith("SIG_") else None
    if not isinstance(value, int):
        raise InvalidArgument(f"unknown signal {text!r}")
    return value


def kill(states: st.StateDir, container_id: str, sig: int, all_processes: bool = False) -> None:
    cur = states.load(container_id)
    status = current_status(states, cur)
    if all_processes:
        cg = st.open_cgroup(cur)
        if status == st.PAUSED and sig == signal.SIGKILL:
            cg.kill_all(sig)
            cg.thaw()
        else:
            cg.kill_all(sig)
        return
    if status == st.STOPPED or cur.pid <= 0:  # pid 0 ("creating"): os.kill(0) is our own group
        raise FailedPrecondition(f"container {container_id} is not running")
    try:
        os.kill(cur.pid, sig)
    except ProcessLookupError:
        raise FailedPrecondition(f"container {container_id} is not running") from None


def _wait_gone(cur: st.ContainerState, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while st.init_alive(cur):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def delete(states: st.StateDir, container_id: str, force: bool = False) -> None:
    try:
        cur = states.load(container_id)
    except NotFound:
        if os.path.isdir(states.dir(container_id)):
            # A create killed before its first state write left only the directory: remove it
            # (as runc does), or the id could never be used again.
            states.remove(container_id)
            return
        if force:
            return
        raise
    status = current_status(states, cur)
    if status in (st.RUNNING, st.PAUSED) and not force:
        raise FailedPrecondition(f"cannot delete container {container_id} that is not stopped: {status}")
    cg = st.open_cgroup(cur)
    if status != st.STOPPED and cur.pid > 0:  # pid 0 ("creating"): the cgroup kill below does it
        try:
            os.kill(cur.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if status == st.PAUSED:
            cg.thaw()
        if not _wait_gone(cur):
            raise DockyardError(f"delete {container_id}: init {cur.pid} did not die after SIGKILL")
    cg.destroy(kill=True)
    errors = []
    raw_hooks = json.loads(cur.config).get("hooks") or {}
    if raw_hooks.get("poststop"):
        from dockyard.oci.runtime_spec import parse_hooks
        from dockyard.runtime.hooks import run_hooks, state_document as hook_state

        try:
            doc = hook_state(cur.id, st.STOPPED, 0, cur.bundle, cur.annotations)
            run_hooks("poststop", parse_hooks(raw_hooks).poststop, doc)
        except DockyardError as e:
            errors.append(str(e))
    states.remove(container_id)
    if errors:  # the container is gone; the hook's failure is still worth a non-zero exit
        raise DockyardError(f"container {container_id} deleted, but {errors[0]}")


def list_states(states: st.StateDir) -> list[dict]:
    out = []
    for cid in states.ids():
        try:
            out.append(state_document(states, states.load(cid)))
        except DockyardError:
            continue
    return out


def format_list(docs: list[dict]) -> str:
    """runc's table (tabwriter minwidth 12, padding 3)."""
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[d["id"], str(d["pid"]), d["status"], d["bundle"], d["created"], d["owner"] or "root"]
             for d in docs]
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(6)]
    return "".join("".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + r[-1] + "\n" for r in rows)


def ps(states: st.StateDir, container_id: str, fmt: str, ps_args: list[str]) -> str:
    cur = states.load(container_id)
    pids = st.open_cgroup(cur).pids()
    if fmt == "json":
        return json.dumps(sorted(pids)) + "\n"
    if fmt != "table":
        raise InvalidArgument(f"invalid format {fmt!r}: use table or json")
    import subprocess

    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise DockyardError(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument("ps: the output has no PID column")
    col = header.index("PID")
    wanted = set(pids)
    keep = [lines[0]] + [ln for ln in lines[1:] if len(ln.split()) > col and ln.split()[col].isdigit()
                         and int(ln.split()[col]) in wanted]
    return "\n".join(keep) + "\n"


def pause(states: st.StateDir, container_id: str) -> None:
    cur = states.load(container_id)
    status = current_status(states, cur)
    st.check_transition(status, st.PAUSED, container_id)
    st.open_cgroup(cur).freeze()
    states.save(replace(cur, status=st.PAUSED))


def resume(states: st.StateDir, container_id: str) -> None:
    cur = states.load(container_id)
    status = current_status(states, cur)
    if status != st.PAUSED:
        raise FailedPrecondition(f"container {container_id} is {status}, not paused")
    st.open_cgroup(cur).thaw()
    states.save(replace(cur, status=st.RUNNING))


def update(states: st.StateDir, container_id: str, resources: Resources, raw: dict) -> None:
    """Apply new limits to the cgroup and record them in the saved config."""
    cur = states.load(container_id)
    if current_status(states, cur) == st.STOPPED:
        raise FailedPrecondition(f"container {container_id} is stopped: nothing to update")
    st.open_cgroup(cur).update(resources)
    config = json.loads(cur.config)
    linux = config.setdefault("linux", {})
    saved = linux.setdefault("resources", {})
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(saved.get(key), dict):
            saved[key].update(value)
        else:
            saved[key] = value
    states.save(replace(cur, config=json.dumps(config)))
