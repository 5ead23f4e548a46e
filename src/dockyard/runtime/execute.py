"""``exec`` (a new process in a running container) and the foreground wait of ``run``/``exec``."""

from __future__ import annotations

import _signal as signal  # the C module: signal.py's enums cost ~2 ms to import
import os

from dockyard import leanjson as json
from dockyard.errors import DockyardError, FailedPrecondition, InvalidArgument
from dockyard.kernel import syscalls as k
from dockyard.oci.runtime_spec import parse_spec
from dockyard.runtime import state as st
from dockyard.runtime.init import JOIN_ORDER, Launch, recv, spawn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.kernel.syscalls import Syscalls
    from dockyard.oci.runtime_spec import Process

_FORWARDED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGCONT", "SIGTSTP",
              "SIGTTIN", "SIGTTOU", "SIGPIPE", "SIGALRM", "SIGWINCH")


def wait_foreground(pid: int, master: int = -1) -> int:
    """Forward signals to ``pid``, relay the pty if any, reap; return a shell-style exit code."""
    status: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if signum == signal.SIGWINCH and master >= 0:
            return  # the copy loop resizes the pty
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for name in _FORWARDED:
        signal.signal(getattr(signal, name), forward)

    def reap(block: bool) -> bool:
        while not status:
            try:
                got, ws = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return True
            if got == 0:
                return False
            if got == pid:
                status.append(ws)
        return True

    if master >= 0:
        from dockyard.runtime.terminal import copy_loop

        copy_loop(master, lambda: reap(False))
        os.close(master)
    reap(True)
    if not status:
        return 255
    return os.waitstatus_to_exitcode(status[0]) if os.waitstatus_to_exitcode(status[0]) >= 0 \
        else 128 - os.waitstatus_to_exitcode(status[0])


def exec_process(sys: Syscalls, states: st.StateDir, container_id: str, process: Process, *,
                 detach: bool, pid_file: str = "", console_socket: str = "", preserve_fds: int = 0) -> int:
    from dockyard.runtime import capabilities

    if process.terminal:
        from dockyard.runtime import terminal  # noqa: F401 - the child cannot import after setns

    cur = states.load(container_id)
    from dockyard.runtime.commands import current_status

    status = current_status(states, cur)
    if status == st.PAUSED:
        raise FailedPrecondition(f"cannot exec in a paused container {container_id}")
    if status not in (st.RUNNING, st.CREATED):
        raise FailedPrecondition(f"cannot exec in a {status} container {container_id}")
    if process.capabilities is not None:
        capabilities.check(process.capabilities)
    if process.terminal and detach and not console_socket:
        raise InvalidArgument("exec -t --detach needs --console-socket")
    if console_socket and not process.terminal:
        raise InvalidArgument("--console-socket given but the process has no terminal")
    spec = parse_spec(json.loads(cur.config))
    seccomp_filter = None
    if spec.linux.seccomp is not None:
        from dockyard.runtime import seccomp

        seccomp_filter = seccomp.compile_filter(spec.linux.seccomp)
    kinds = dict(cur.namespaces)
    own = {}
    for kind in kinds:
        try:
            own[kind] = os.stat(f"/proc/self/ns/{k.NAMESPACE_FILES[kind]}").st_ino
        except OSError:
            own[kind] = None
    join = []
    for kind in JOIN_ORDER:
        if kind in kinds:
            path = f"/proc/{cur.pid}/ns/{k.NAMESPACE_FILES[kind]}"
            try:
                if os.stat(path).st_ino == own[kind]:
                    continue  # already ours: setns to the same user namespace fails (EINVAL)
            except OSError:
                raise FailedPrecondition(f"container {container_id} is not running") from None
            join.append((kind, path))
    cg_paths = dict(cur.cgroup_paths)
    console_fd = -1
    parent_c = None
    if console_socket:
        from dockyard.runtime.terminal import connect_console_socket

        console_fd = connect_console_socket(console_socket).detach()
    elif process.terminal:
        import socket

        parent_c, child_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        console_fd = child_c.detach()
    launch = Launch(
        mode="exec", container_id=container_id, bundle=cur.bundle, annotations=cur.annotations,
        process=process, seccomp=seccomp_filter, preserve_fds=preserve_fds, join=tuple(join),
        unshare_flags=0, new_userns=False, uid_mappings=(), gid_mappings=(), plan=None,
        hostname="", domainname="", new_netns=False, create_container_hooks=(),
        start_container_hooks=(), want_runtime_hooks=False,
        cgroup_procs=tuple(f"{p}/cgroup.procs" for p in dict.fromkeys(cg_paths.values())),
        cgroup_paths=tuple(cg_paths.items()), cgroupns=False, console_fd=console_fd, fifo_fd=-1,
    )
    pid1, parent = spawn(sys, launch, subreaper=not detach)
    if console_fd >= 0:
        os.close(console_fd)
    proc_pid = 0
    try:
        while True:
            msg = recv(parent)
            if not msg:
                break  # every copy of the child end closed: the exec happened (CLOEXEC)
            if "error" in msg:
                raise DockyardError(f"exec in container {container_id}: {msg['error']}")
            if "pid" in msg:
                proc_pid = int(msg["pid"])
                os.waitpid(pid1, 0)
                pid1 = 0
    except BaseException:
        if proc_pid:
            try:
                os.kill(proc_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(proc_pid, 0)
            except ChildProcessError:
                pass
        raise
    finally:
        parent.close()
        if pid1:
            os.waitpid(pid1, 0)
    if not proc_pid:
        raise DockyardError(f"exec in container {container_id}: the process did not start")
    if pid_file:
        st.write_atomic(os.path.abspath(pid_file), str(proc_pid).encode(), durable=False)
    master = -1
    if parent_c is not None:
        from dockyard.runtime.terminal import recv_master

        master = recv_master(parent_c)
        parent_c.close()
    if detach:
        return 0
    return wait_foreground(proc_pid, master)
