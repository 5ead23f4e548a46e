"""The container side of create/run/exec: code that runs in forked children of the runtime.

Process tree of ``create``::

    runtime (P, host namespaces) ── fork ──> stage 1 (joins/unshares namespaces) ── fork ──> init
                                                 exits once init exists                 (PID 1)

Stage 1 exists because a new PID namespace only applies to children of the process that unshared
it. It places itself in the container's cgroups first, so everything after is accounted. Init builds
the rootfs, reports ``ready`` to P over a pipe ``Channel``, waits to be started, then
finalizes the process (user, capabilities, seccomp last) and execs. From the first fork on, the
children are non-dumpable: a container process cannot open /proc/<pid>/exe of the runtime's
interpreter (CVE-2019-5736) or its fds; execve resets that for the container's own program.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import struct

from dockyard import leanjson as json
from dockyard.errors import DockyardError, FailedPrecondition, InvalidArgument, KernelError
from dockyard.kernel import syscalls as k
from dockyard.record import Record
from dockyard.runtime import capabilities as caps_mod

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.kernel.syscalls import Syscalls
    from dockyard.oci.runtime_spec import Hook, IDMapping, Process
    from dockyard.runtime.seccomp import CompiledFilter
    from dockyard.runtime.plan import RootfsPlan

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# setns order: the user namespace first (it owns the others), the mount namespace last (it
# changes our root, and the other /proc/<pid>/ns paths must still resolve when opened).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class Launch(Record):
    """What the children need to know; built and validated by the runtime before forking."""

    mode: str  # "create", "run" or "exec"
    container_id: str
    bundle: str
    annotations: tuple[tuple[str, str], ...]
    process: Process
    seccomp: CompiledFilter | None  # compiled by the runtime before forking
    preserve_fds: int
    join: tuple[tuple[str, str], ...]  # (type, path) in JOIN_ORDER
    unshare_flags: int  # without CLONE_NEWUSER
    new_userns: bool
    uid_mappings: tuple[IDMapping, ...]
    gid_mappings: tuple[IDMapping, ...]
    plan: RootfsPlan | None  # None for exec
    hostname: str
    domainname: str
    new_netns: bool
    create_container_hooks: tuple[Hook, ...]
    start_container_hooks: tuple[Hook, ...]
    want_runtime_hooks: bool  # ask P to run prestart/createRuntime hooks before pivot_root
    cgroup_procs: tuple[str, ...]  # cgroup.procs files to join
    cgroup_paths: tuple[tuple[str, str], ...]
    cgroupns: bool
    console_fd: int  # socket to send the pty master on, or -1
    fifo_fd: int  # create: init blocks reading this until `start`, or -1


# ------------------------------------------------------------------ sync channel


class Channel:
    """Two-way messages (one JSON object a line) over two pipes.

    Pipes, not a socketpair: importing ``socket`` costs ~3 ms at every runtime start. Both fds are
    CLOEXEC, so the end a child keeps closes at its execve: EOF tells the runtime the exec happened.
    """

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self._buf = b""

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a_read, b_write = os.pipe()
        b_read, a_write = os.pipe()
        return cls(a_read, a_write), cls(b_read, b_write)

    def fileno(self) -> int:
        return self.wfd

    def send(self, **msg: object) -> None:
        os.write(self.wfd, json.dumps(msg).encode() + b"\n")

    def recv(self) -> dict:
        while b"\n" not in self._buf:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                return {}
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rfd = self.wfd = -1


def send(ch: Channel, **msg: object) -> None:
    ch.send(**msg)


def recv(ch: Channel) -> dict:
    return ch.recv()


# ------------------------------------------------------------------ helpers


def _bring_up_loopback() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    import _socket  # the C module: socket.py's enums cost ~3 ms to import

    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s.fileno(), siocgifflags, ifr))[1]
        fcntl.ioctl(s.fileno(), siocsifflags, struct.pack("16sh14x", b"lo", flags | iff_up))
    finally:
        s.close()


def lookup_executable(process: Process) -> str:
    """Resolve args[0] in the current root with the process's PATH, as execvp would."""
    name = process.args[0]
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(process.cwd, name)
        if not os.path.exists(path):
            raise InvalidArgument(f'exec: "{name}": stat {name}: no such file or directory')
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise InvalidArgument(f'exec: "{name}": permission denied')  # runc's words
        return path
    env_path = DEFAULT_PATH
    for e in process.env:
        if e.startswith("PATH="):
            env_path = e[5:]
    for d in env_path.split(":"):
        cand = f"{d or '.'}/{name}"
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise InvalidArgument(f'exec: "{name}": executable file not found in $PATH')


def _set_rlimits(process: Process) -> None:
    if not process.rlimits:
        return
    for r in process.rlimits:
        which = getattr(resource, r.type, None)
        if which is None:
            raise InvalidArgument(f"process.rlimits: {r.type} is not supported on this kernel")
        cur_soft, cur_hard = resource.getrlimit(which)
        try:
            resource.setrlimit(which, (r.soft, r.hard))
        except (ValueError, OSError):
            raise InvalidArgument(
                f"process.rlimits: {r.type} soft={r.soft} hard={r.hard} cannot be set "
                f"(the runtime's hard limit is {cur_hard} and raising it needs CAP_SYS_RESOURCE)") from None


def _check_rlimits(process: Process) -> None:
    """Before ``ready``: a hard limit above ours that we may not raise fails ``create`` (runc sets
    rlimits during create), not the start. Only hard limits are raised here; nothing is lowered."""
    for r in process.rlimits:
        which = getattr(resource, r.type, None)
        if which is None:
            continue  # _set_rlimits reports it
        cur_soft, cur_hard = resource.getrlimit(which)
        if cur_hard != resource.RLIM_INFINITY and r.hard > cur_hard:
            try:
                resource.setrlimit(which, (cur_soft, r.hard))
            except (ValueError, OverflowError, OSError):
                raise InvalidArgument(
                    f"process.rlimits: {r.type} soft={r.soft} hard={r.hard} cannot be set (the "
                    f"runtime's hard limit is {cur_hard} and raising it needs CAP_SYS_RESOURCE)") from None


def _set_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise KernelError(f"process.oomScoreAdj: write {value} to /proc/self/oom_score_adj"
                          " (lowering it needs CAP_SYS_RESOURCE)", e.errno or errno.EIO) from None


def _passwd_home(uid: int) -> str:
    """``uid``'s home in the container's /etc/passwd, or "/" (runc's default for HOME)."""
    try:
        with open("/etc/passwd", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5]
    except OSError:
        pass
    return "/"


def _switch_user(process: Process) -> None:
    u = process.user
    try:
        os.setgroups(list(u.additional_gids))
    except PermissionError:
        if u.additional_gids:
            raise
    os.setresgid(u.gid, u.gid, u.gid)
    os.setresuid(u.uid, u.uid, u.uid)


def finalize_and_exec(sys: Syscalls, launch: Launch, path: str, keep_fd: int = -1) -> None:
    """Last steps before execve, in runc's order; seccomp is loaded last when NNP is set.

    Every fd but stdio, the preserved ones and ``keep_fd`` (a CLOEXEC socket whose EOF tells the
    runtime the exec happened) is closed *before* chdir to the process's cwd, so no host
    directory can be reached through a leaked fd (CVE-2024-21626).
    """
    process = launch.process
    _set_rlimits(process)
    _set_oom_score_adj(process.oom_score_adj)
    filt = launch.seccomp
    if filt is not None and not process.no_new_privileges:
        # Without NNP, loading a filter needs CAP_SYS_ADMIN: do it before capabilities drop.
        filt.load(no_new_privileges=False)
    # Only stdio and preserved fds survive exec.
    first_closed = 3 + launch.preserve_fds
    if keep_fd >= first_closed:
        if keep_fd > first_closed:
            sys.close_range(first_closed, keep_fd - 1, 0)
        sys.close_range(keep_fd + 1, 0xFFFFFFFF, 0)
    else:
        sys.close_range(first_closed, 0xFFFFFFFF, 0)
    for fd in range(3, first_closed):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    caps = process.capabilities
    if caps is not None:
        caps_mod.drop_bounding(sys, caps)
        sys.prctl(k.PR_SET_KEEPCAPS, 1)
    home = _passwd_home(process.user.uid)  # read before the switch, as runc does
    _switch_user(process)
    if caps is not None:
        sys.prctl(k.PR_SET_KEEPCAPS, 0)
        caps_mod.apply(sys, caps)
    if process.user.umask is not None:
        os.umask(process.user.umask)
    elif launch.mode != "exec":
        os.umask(0o022)  # runc's default for the container's init; exec keeps the caller's
    try:
        os.chdir(process.cwd)
    except OSError as e:
        raise KernelError(f"chdir to cwd {process.cwd!r} (process.cwd)", e.errno or errno.EIO) from None
    if not os.getcwd().startswith("/"):  # "(unreachable)/...": a cwd outside our root
        raise FailedPrecondition(f"cwd {process.cwd!r} is outside the container root")
    if process.no_new_privileges:
        sys.prctl(k.PR_SET_NO_NEW_PRIVS, 1)
        if filt is not None:
            filt.load(no_new_privileges=True)
    env = dict(e.split("=", 1) for e in process.env)
    if not env.get("HOME"):
        env["HOME"] = home  # as runc: an unset or empty HOME becomes the user's home
    # Python ignores SIGPIPE and SIGXFSZ, and an ignored disposition survives execve: restore
    # the defaults the container's program expects (`yes | head` must end).
    import _signal

    for signum in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(signum, _signal.SIG_DFL)
    os.execve(path, list(process.args), env)


# ------------------------------------------------------------------ stage 1


def _preload(launch: Launch) -> None:
    """Import now what the init imports lazily: once root in a new user namespace, the
    interpreter's own files (e.g. under a 0700 /root) may be unreadable to the mapped uid."""
    if launch.new_netns:
        import _socket  # noqa: F401 - _bring_up_loopback
    if launch.process.terminal:
        from dockyard.runtime import terminal  # noqa: F401 - imports socket, termios
    if launch.plan is None:
        return
    if launch.create_container_hooks or launch.start_container_hooks:
        import subprocess  # noqa: F401 - run_hooks
    if any(m.copy_up for m in launch.plan.mounts):
        import shutil  # noqa: F401 - tmpcopyup


def stage1(sys: Syscalls, launch: Launch, sync: Channel) -> int:
    """Runs in the first child: cgroups, namespaces, then forks the init. Returns an exit code."""
    sys.prctl(k.PR_SET_DUMPABLE, 0)
    _preload(launch)
    for procs in launch.cgroup_procs:
        with open(procs, "w") as f:
            f.write("0")
    fds = [(kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)) for kind, path in launch.join]
    for kind, fd in fds:
        sys.setns(fd, k.NAMESPACE_FLAGS[kind])
        os.close(fd)
    if launch.new_userns:
        sys.unshare(k.CLONE_NEWUSER)
        send(sync, map=os.getpid())
        if recv(sync).get("mapped") is not True:
            return 1
    if launch.new_userns or any(kind == "user" for kind, _ in launch.join):
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if launch.unshare_flags:
        sys.unshare(launch.unshare_flags)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _child_main(sys, launch, sync)
        except BaseException as e:  # noqa: BLE001 - report anything to the runtime, then die
            _report(sync, e)
        finally:
            os._exit(code)
    send(sync, pid=pid)
    return 0


def spawn(sys: Syscalls, launch: Launch, *, subreaper: bool) -> tuple[int, Channel]:
    """Fork stage 1 for ``launch``; return its pid and the runtime's end of the channel.

    With ``subreaper`` the runtime adopts the init (or exec'd process) when stage 1 exits, to
    wait for it in the foreground.
    """
    parent, child = Channel.pair()
    if subreaper:
        sys.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            parent.close()
            code = stage1(sys, launch, child)
        except BaseException as e:  # noqa: BLE001 - report anything to the runtime, then die
            _report(child, e)
        finally:
            os._exit(code)
    child.close()
    return pid, parent


def _report(sync: Channel, e: BaseException) -> None:
    if isinstance(e, DockyardError):
        msg = str(e)
    elif isinstance(e, OSError):
        msg = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    else:
        msg = f"{type(e).__name__}: {e}"
    if os.environ.get("DOCKYARD_RUNTIME_DEBUG"):
        import traceback

        msg += "\n" + "".join(traceback.format_exception(e))
    try:
        send(sync, error=msg)
    except OSError:
        os.write(2, f"dockyard-runtime init: {msg}\n".encode())


def _child_main(sys: Syscalls, launch: Launch, sync: Channel) -> int:
    if launch.mode == "exec":
        return _exec_child(sys, launch, sync)
    return _init(sys, launch, sync)


# ------------------------------------------------------------------ init (create / run)


def _init(sys: Syscalls, launch: Launch, sync: Channel) -> int:
    # Everything imported after pivot_root would be looked up in the container: import it now.
    from dockyard.runtime import rootfs
    from dockyard.runtime.hooks import run_hooks, state_document

    if launch.process.terminal:
        from dockyard.runtime import terminal

    if launch.start_container_hooks:
        import subprocess  # noqa: F401 - used by run_hooks after pivot_root

    plan = launch.plan
    assert plan is not None
    process = launch.process
    os.setsid()
    rootfs.prepare(sys, plan, userns=launch.new_userns, cgroup_paths=dict(launch.cgroup_paths),
                   cgroupns=launch.cgroupns)
    if launch.hostname:
        sys.sethostname(launch.hostname)
    if launch.domainname:
        sys.setdomainname(launch.domainname)
    if launch.new_netns:
        _bring_up_loopback()
    if launch.want_runtime_hooks:
        send(sync, hooks="createRuntime")
        if recv(sync).get("ok") is not True:
            return 1
    host_pid = 0
    if launch.create_container_hooks or launch.start_container_hooks:
        send(sync, whoami=True)
        host_pid = int(recv(sync).get("pid", 0))
        doc = state_document(launch.container_id, "creating", host_pid, launch.bundle, launch.annotations)
        run_hooks("createContainer", launch.create_container_hooks, doc)
    rootfs.pivot(sys, plan)
    try:  # as runc: a missing cwd is made, in the new root, before it may turn read-only
        os.makedirs(process.cwd, 0o755, exist_ok=True)
    except OSError as e:
        raise KernelError(f"mkdir cwd {process.cwd!r} (process.cwd)", e.errno or errno.EIO) from None
    if process.terminal:
        master, slave = terminal.open_pty()
        rootfs.bind_console(sys, slave)
        if process.console_size:
            terminal.set_size(master, process.console_size.height, process.console_size.width)
        terminal.send_master_fd(launch.console_fd, master)
        os.close(master)
        os.close(launch.console_fd)
        terminal.become_controlling(slave)
    rootfs.finish(sys, plan)
    path = lookup_executable(process)
    _check_rlimits(process)
    send(sync, ready=True)
    if launch.mode == "create":
        sync.close()
        # As runc's init, hold none of the caller's fds but stdio and --preserve-fds while created:
        # a caller that reads a pipe it passed to `create` must see EOF when `create` exits.
        first, keep = 3 + launch.preserve_fds, launch.fifo_fd
        if keep > first:
            sys.close_range(first, keep - 1, 0)
        sys.close_range(max(first, keep + 1), 0xFFFFFFFF, 0)
        if os.read(launch.fifo_fd, 1) != b"0":
            return 1
        os.close(launch.fifo_fd)
    else:
        if recv(sync).get("start") is not True:
            return 1
        sync.close()
    if launch.start_container_hooks:
        doc = state_document(launch.container_id, "created", host_pid, launch.bundle, launch.annotations)
        run_hooks("startContainer", launch.start_container_hooks, doc)
    try:
        finalize_and_exec(sys, launch, path)
    except BaseException as e:  # noqa: BLE001 - nobody listens any more: tell the container's stderr
        os.write(2, f"dockyard-runtime: {e}\n".encode())
        return 127 if isinstance(e, FileNotFoundError) else 126
    return 1  # not reached


# ------------------------------------------------------------------ exec


def _exec_child(sys: Syscalls, launch: Launch, sync: Channel) -> int:
    """A process joining a running container. ``sync`` is CLOEXEC: EOF tells P the exec happened."""
    process = launch.process
    if process.terminal:
        from dockyard.runtime import terminal  # already imported by the runtime before the fork

        master, slave = terminal.open_pty()
        if process.console_size:
            terminal.set_size(master, process.console_size.height, process.console_size.width)
        terminal.send_master_fd(launch.console_fd, master)
        os.close(master)
        os.close(launch.console_fd)
        terminal.become_controlling(slave)
    path = lookup_executable(process)
    finalize_and_exec(sys, launch, path, keep_fd=sync.fileno())
    return 1  # not reached
