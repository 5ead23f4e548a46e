"""The runtime side of ``create``, ``run`` and ``start``: validate, fork the init, record state.

Everything that can be refused is refused before the first fork (the spec, the rootfs plan, the
capabilities, the rlimits' shape), and every failure after it undoes what was made: the init is
killed, the cgroup removed, the state directory deleted. Nothing is left behind.
"""

from __future__ import annotations

import os
from _signal import SIGKILL  # the C module: signal.py's enums cost ~2 ms to import

from dockyard import leanjson as json
from dockyard.errors import DockyardError, InvalidArgument, NotFound
from dockyard.kernel import syscalls as k
from dockyard.oci.runtime_spec import Spec, parse_spec
from dockyard.record import replace
from dockyard.runtime import state as st
from dockyard.runtime.default_spec import effective_resources
from dockyard.runtime.init import JOIN_ORDER, Channel, Launch, recv, send, spawn
from dockyard.runtime.start import exe_id, wait_exec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from dockyard.kernel.syscalls import Syscalls
    from dockyard.runtime.cgroups.base import Cgroup


def load_spec(bundle: str) -> Spec:
    path = f"{bundle}/config.json"
    try:
        with open(path, "rb") as f:
            raw = json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"bundle {bundle}: config.json not found") from None
    except ValueError as e:
        raise InvalidArgument(f"config.json: invalid JSON in {path}: {e}") from None
    return parse_spec(raw)


def check_lsm(spec: Spec) -> None:
    """This kernel has no AppArmor or SELinux: a request for either is refused, never ignored."""
    p = spec.process
    if p and p.apparmor_profile and not os.path.exists("/sys/kernel/security/apparmor"):
        raise InvalidArgument(f"config.json: process.apparmorProfile: {p.apparmor_profile!r} requested "
                              "but AppArmor is not enabled in this kernel")
    label = (p.selinux_label if p else "") or spec.linux.mount_label
    if label and not os.path.exists("/sys/fs/selinux/enforce"):
        raise InvalidArgument(f"config.json: process.selinuxLabel/linux.mountLabel: {label!r} requested "
                              "but SELinux is not enabled in this kernel")


def cgroup_manager():  # -> Manager
    from dockyard.runtime.cgroups import open_manager

    return open_manager()


def _write_maps(pid: int, spec: Spec) -> None:
    for name, maps in (("uid_map", spec.linux.uid_mappings), ("gid_map", spec.linux.gid_mappings)):
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as e:
            raise InvalidArgument(f"config.json: linux.{'uid' if name[0] == 'u' else 'gid'}Mappings: "
                                  f"writing /proc/{pid}/{name} failed: {e.strerror}") from None


class Created:
    """A container whose init is waiting (to be started, or told ``start`` over ``sync``)."""

    def __init__(self, state: st.ContainerState, spec: Spec, sync: Channel | None,
                 console_master: int, cgroup: Cgroup) -> None:
        self.state, self.spec, self.sync = state, spec, sync
        self.console_master, self.cgroup = console_master, cgroup


def create(sys: Syscalls, states: st.StateDir, container_id: str, bundle: str, *, mode: str,
           pid_file: str = "", console_socket: str = "", no_pivot: bool = False,
           preserve_fds: int = 0, detach: bool = True) -> Created:
    """Create the container; in ``run`` mode the init waits on the returned ``sync`` channel."""
    from dockyard.runtime import capabilities
    from dockyard.runtime.plan import rootfs_plan

    st.validate_id(container_id)
    bundle = os.path.abspath(bundle)
    spec = load_spec(bundle)
    if spec.root is None:
        raise InvalidArgument("config.json: root: is required")
    if spec.process is None:
        raise InvalidArgument("config.json: process: is required to create a container")
    rootfs = spec.root.path if spec.root.path.startswith("/") else f"{bundle}/{spec.root.path}"
    if not os.path.isdir(rootfs):
        raise InvalidArgument(f"config.json: root.path: {rootfs} is not a directory")
    check_lsm(spec)
    process = spec.process
    if process.capabilities is not None:
        capabilities.check(process.capabilities)
    if process.terminal and not console_socket and mode == "create":
        raise InvalidArgument("process.terminal is true: create needs --console-socket")
    if process.terminal and not console_socket and mode == "run" and detach:
        raise InvalidArgument("cannot allocate a tty for a detached container without --console-socket")
    if console_socket and not process.terminal:
        raise InvalidArgument("--console-socket given but process.terminal is false")
    plan = rootfs_plan(spec, rootfs, no_pivot=no_pivot, bundle=bundle)
    lx = spec.linux
    join = tuple((n.type, n.path) for t in JOIN_ORDER for n in lx.namespaces if n.type == t and n.path)
    for kind, path in join:
        if not os.path.exists(path):
            raise InvalidArgument(f"config.json: linux.namespaces: {kind} namespace path {path} does not exist")
    cgroupns = any(n.type == "cgroup" and not n.path for n in lx.namespaces)
    unshare = 0
    for n in lx.namespaces:
        if not n.path and n.type != "user":
            unshare |= k.NAMESPACE_FLAGS[n.type]

    # Compiled here, before any fork: libseccomp is loaded from the host's filesystem, which the
    # init cannot see after pivot_root. The children inherit the compiled filter.
    seccomp_filter = None
    if lx.seccomp is not None:
        from dockyard.runtime import seccomp

        seccomp_filter = seccomp.compile_filter(lx.seccomp)
    states.reserve(container_id)
    cgroup = None
    init_pid = 0
    ok = False
    fifo_fd = console_fd = master = -1
    parent = None
    try:
        mgr = cgroup_manager()
        cgroup = mgr.create(lx.cgroups_path or f"/dockyard/{container_id}")
        cgroup.apply(effective_resources(lx.resources, lx.devices))
        cg_paths = cgroup.paths()
        base = st.ContainerState(
            id=container_id, bundle=bundle, rootfs=rootfs, pid=0, start_time=0,
            created=st.now_rfc3339(), owner="", annotations=spec.annotations,
            cgroup_paths=tuple(cg_paths.items()), cgroup_version=mgr.version,
            cgroup_created=tuple(cgroup.created().items()),
            namespaces=tuple((n.type, n.path) for n in lx.namespaces),
            config=json.dumps(_raw_config(bundle)), status=st.CREATING, use_fifo=mode == "create")
        states.save(base)
        if mode == "create":
            os.mkfifo(states.fifo(container_id), 0o600)
            fifo_fd = os.open(states.fifo(container_id), os.O_RDWR | os.O_CLOEXEC)
        if console_socket:
            from dockyard.runtime.terminal import connect_console_socket

            console_fd = connect_console_socket(console_socket).detach()
        elif process.terminal:  # foreground run -t: we are the console's other end
            import socket

            parent_c, child_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            console_fd = child_c.detach()
        launch = Launch(
            mode=mode, container_id=container_id, bundle=bundle, annotations=spec.annotations,
            process=process, seccomp=seccomp_filter, preserve_fds=preserve_fds, join=join,
            unshare_flags=unshare, new_userns=any(n.type == "user" and not n.path for n in lx.namespaces),
            uid_mappings=lx.uid_mappings, gid_mappings=lx.gid_mappings, plan=plan,
            hostname=spec.hostname, domainname=spec.domainname,
            new_netns=any(n.type == "network" and not n.path for n in lx.namespaces),
            create_container_hooks=spec.hooks.create_container,
            start_container_hooks=spec.hooks.start_container,
            want_runtime_hooks=bool(spec.hooks.prestart or spec.hooks.create_runtime),
            # Joining a v1 cgroup waits ~8 ms in the kernel (an RCU grace period). Without a
            # cgroup namespace (whose root must be the container's cgroup at unshare time), the
            # runtime moves the init itself while the init builds its rootfs: see _converse.
            cgroup_procs=tuple(f"{p}/cgroup.procs" for p in dict.fromkeys(cg_paths.values()))
            if cgroupns else (),
            cgroup_paths=tuple(cg_paths.items()),
            cgroupns=cgroupns,
            console_fd=console_fd, fifo_fd=fifo_fd,
        )
        pid1, parent = spawn(sys, launch, subreaper=mode == "run" and not detach)
        if console_fd >= 0:
            os.close(console_fd)
            console_fd = -1
        # The init's pid is recorded as soon as it is known, so that `delete --force` can end it
        # even if this process dies before the container is created.
        def record(pid: int) -> None:
            states.save(replace(base, pid=pid, start_time=st.proc_start_time(pid) or 0))

        init_pid = _converse(parent, pid1, spec, base, None if cgroupns else cgroup, record)
        start_time = st.proc_start_time(init_pid)
        if start_time is None:
            raise DockyardError(f"create {container_id}: the container's init exited during setup")
        if process.terminal and not console_socket:
            from dockyard.runtime.terminal import recv_master

            master = recv_master(parent_c)
            parent_c.close()
        created = replace(base, pid=init_pid, start_time=start_time, status=st.CREATED)
        states.save(created)
        if pid_file:
            st.write_atomic(os.path.abspath(pid_file), str(init_pid).encode(), durable=False)
        ok = True
        return Created(created, spec, parent if mode == "run" else None, master, cgroup)
    finally:
        if fifo_fd >= 0:
            os.close(fifo_fd)
        if not ok:
            if init_pid:
                try:
                    os.kill(init_pid, SIGKILL)
                except ProcessLookupError:
                    pass
            if parent is not None:
                parent.close()
            if cgroup is not None:
                cgroup.destroy(kill=True)
            states.remove(container_id)
        elif mode != "run" and parent is not None:
            parent.close()


def _raw_config(bundle: str) -> dict:
    with open(f"{bundle}/config.json", "rb") as f:
        return json.loads(f.read())


def _converse(sync: Channel, stage1_pid: int, spec: Spec, base: st.ContainerState,
              join: Cgroup | None, record: Callable[[int], None]) -> int:
    """Serve the children's requests until the init says ``ready``; return the init's host pid.

    With ``join``, the init is moved into that cgroup as soon as its pid is known; the init only
    forks (hooks) or execs after a later reply, so nothing of the container runs outside it.
    """
    from dockyard.runtime.hooks import run_hooks, state_document

    init_pid = 0
    early: list[dict] = []  # the init's requests that overtook stage 1's "pid" (it runs ahead)
    try:
        while True:
            msg = early.pop(0) if init_pid and early else recv(sync)
            if not msg:
                raise DockyardError(f"create {base.id}: the container's init exited during setup")
            if "error" in msg:
                raise DockyardError(str(msg["error"]))
            if not init_pid and ("whoami" in msg or "hooks" in msg or "ready" in msg):
                early.append(msg)  # answered once the pid is known (and the init in its cgroup)
                continue
            if "map" in msg:
                _write_maps(int(msg["map"]), spec)
                send(sync, mapped=True)
            elif "pid" in msg:
                init_pid = int(msg["pid"])
                record(init_pid)
                if join is not None:
                    join.add_pid(init_pid)
                os.waitpid(stage1_pid, 0)
                stage1_pid = 0
            elif "whoami" in msg:
                send(sync, pid=init_pid)
            elif "hooks" in msg:
                doc = state_document(base.id, st.CREATING, init_pid, base.bundle, base.annotations)
                run_hooks("prestart", spec.hooks.prestart, doc)
                run_hooks("createRuntime", spec.hooks.create_runtime, doc)
                send(sync, ok=True)
            elif msg.get("ready"):
                return init_pid
    except BaseException:
        if init_pid:
            try:
                os.kill(init_pid, SIGKILL)
            except ProcessLookupError:
                pass
        raise
    finally:
        if stage1_pid:
            os.waitpid(stage1_pid, 0)


def run_started(states: st.StateDir, created: Created, *, detach: bool, keep: bool,
                wait: Callable[[int, int], int]) -> int:
    """``run`` after create: release the init, then (unless detached) wait and delete."""
    from dockyard.runtime.commands import delete
    from dockyard.runtime.hooks import run_hooks, state_document

    cur = created.state
    assert created.sync is not None
    pre_exec = exe_id(cur.pid)  # not exec'd yet: the runtime's interpreter
    try:
        send(created.sync, start=True)
    finally:
        created.sync.close()
    try:
        doc = state_document(cur.id, st.RUNNING, cur.pid, cur.bundle, cur.annotations)
        if created.spec.hooks.poststart:
            wait_exec(cur.pid, pre_exec)
        run_hooks("poststart", created.spec.hooks.poststart, doc)
    except DockyardError:
        if not detach:
            delete(states, cur.id, force=True)
        raise
    if detach:
        return 0
    code = wait(cur.pid, created.console_master)
    if not keep:
        delete(states, cur.id, force=True)
    return code
