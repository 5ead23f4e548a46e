"""``start``: release a created container's init (kept apart from create: a light import)."""

from __future__ import annotations

import os

from dockyard import leanjson as json
from dockyard.errors import DockyardError, FailedPrecondition
from dockyard.record import replace
from dockyard.runtime import state as st


def exe_id(pid: int) -> tuple[int, int] | None:
    try:
        s = os.stat(f"/proc/{pid}/exe")
    except OSError:
        return None
    return s.st_dev, s.st_ino


def wait_exec(pid: int, pre_exec: tuple[int, int] | None, timeout: float = 10.0) -> None:
    """Wait until the released init has exec'd the container's program (or died): poststart hooks
    run after the program started, so after the startContainer hooks (OCI lifecycle). Gives up
    after ``timeout`` (a program that is the interpreter's own file never looks exec'd)."""
    import time

    deadline = time.monotonic() + timeout
    while pre_exec is not None and exe_id(pid) == pre_exec and time.monotonic() < deadline:
        time.sleep(0.001)


def start(states: st.StateDir, container_id: str) -> st.ContainerState:
    """Release a created init: write to the fifo it is blocked on, then run poststart hooks."""
    cur = states.load(container_id)
    status = st.derive_status(states, cur)
    if status != st.CREATED:
        raise FailedPrecondition(f"cannot start container {container_id}: it is {status}, not created")
    fifo = states.fifo(container_id)
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        raise FailedPrecondition(f"cannot start container {container_id}: its init is gone") from None
    pre_exec = exe_id(cur.pid)  # not exec'd yet: the runtime's interpreter
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    os.unlink(fifo)  # from now on the derived status is "running": no state write needed
    running = replace(cur, status=st.RUNNING)
    raw_hooks = json.loads(cur.config).get("hooks") or {}
    if not raw_hooks.get("poststart"):
        return running
    from dockyard.oci.runtime_spec import parse_hooks
    from dockyard.runtime.hooks import run_hooks, state_document

    hooks = parse_hooks(raw_hooks)
    doc = state_document(cur.id, st.RUNNING, cur.pid, cur.bundle, cur.annotations)
    wait_exec(cur.pid, pre_exec)
    try:
        run_hooks("poststart", hooks.poststart, doc)
    except DockyardError as e:
        raise DockyardError(f"container {container_id} started, but {e}") from None
    return running
