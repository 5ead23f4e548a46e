"""``docker exec``: a new process in a running container, through the OCI runtime's ``exec``.

    create: ``POST /containers/{id}/exec`` → an ``ExecSession`` (not started) in the registry
    start:  process spec (the container's ``config.json`` process + the exec's settings,
            ``engine/exec_request.py``) → a temp file → ``RUNTIME --root R exec --process F
            --pid-file P ID`` as a subprocess in the foreground: the runtime exits with the
            process's code (128+n for a signal). With a TTY: ``--console-socket S --detach``
            (runc honours the socket only when detached); the daemon, a subreaper, inherits the
            process and waits for it through a pidfd
    io:     without a TTY the runtime's stdio are pipes (the process inherits them); with one the
            runtime sends the pty master over the console socket (SCM_RIGHTS) and we pump it;
            the detach keys (ctrl-p,ctrl-q) end a TTY's stream, the process runs on
    exit:   exit code, ``exec_die`` event; the record stays until its container is removed or
            ``KEEP_EXITED`` seconds after it ended

Why the pid file: the runtime writes it only once the process runs, so "exited without a pid
file" tells a failed start (command not found: dockerd's exit code 126 and its ``OCI runtime
exec failed`` message) from a process that ran and failed. Until it is known, the runtime's
stderr (which is also the process's) is held back so its error text never reaches the client as
the process's stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
import time

from dockyard.engine.exec_request import (
    DEFAULT_DETACH_KEYS, DetachScanner, ExecConfig, detach_key_bytes, exec_env,
    parse_console_size, parse_exec_config, process_spec, start_error)
from dockyard.engine.create_opts import bounding_set
from dockyard.engine.exec_io import FdReader, wait_child, write_fd
from dockyard.errors import Conflict, DockyardError, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from dockyard.engine.container import Container

    Sink = Callable[[int, bytes], Awaitable[None]]

log = logging.getLogger("dockyard.engine.exec")

STDOUT, STDERR = 1, 2
#: dockerd's exit code for an exec whose process could not be started.
START_FAILED = 126
#: After the process exited, output still held by a background child is not waited for longer.
DRAIN_IDLE = 0.3
_POLL = 0.01
#: Seconds an ended exec can still be inspected (while its container exists).
KEEP_EXITED = 600.0


class ExecStartFailed(DockyardError):
    """The runtime could not start the process (dockerd: ``OCI runtime exec failed``)."""

    http_status = 500


def _new_id() -> str:
    return os.urandom(32).hex()


# ------------------------------------------------------------------ sessions


class ExecSession:
    """One exec instance; mutable while it runs."""

    def __init__(self, id: str, container: Container, config: ExecConfig) -> None:
        self.id = id
        self.container = container
        self.config = config
        self.running = False
        self.started = False
        self.exit_code: int | None = None
        self.ended_at = 0.0  # monotonic
        self.pid = 0
        self.master = -1
        self.master_ready = asyncio.Event()  # set once the pty master came (or never will)
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.tasks: set[asyncio.Task] = set()

    def to_docker_json(self) -> dict:
        cfg = self.config
        return {
            "CanRemove": False, "ContainerID": self.container.id,
            "DetachKeys": cfg.detach_keys, "ExitCode": self.exit_code, "ID": self.id,
            "OpenStderr": cfg.attach_stderr, "OpenStdin": cfg.attach_stdin,
            "OpenStdout": cfg.attach_stdout,
            "ProcessConfig": {"arguments": list(cfg.cmd[1:]), "entrypoint": cfg.cmd[0],
                              "privileged": cfg.privileged, "tty": cfg.tty,
                              **({"user": cfg.user} if cfg.user else {})},  # omitempty
            "Running": self.running, "Pid": self.pid}

    def spawn(self, coro: Awaitable[None]) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)


def _exec_ids(c: Container) -> list[str]:
    ids = getattr(c, "exec_ids", None)
    if ids is None:
        ids = c.exec_ids = []  # type: ignore[attr-defined]  # read by engine/views.py
    return ids


class ExecService:
    """The exec registry of one daemon; ``svc`` is the ``ContainerService``."""

    def __init__(self, svc) -> None:  # noqa: ANN001 - ContainerService (import cycle)
        self.svc = svc
        self.sessions: dict[str, ExecSession] = {}

    def _prune(self) -> None:
        """Ended sessions go with their container, or ``KEEP_EXITED`` seconds after they ended
        (dockerd's exec GC drops them 5-10 minutes after)."""
        now = time.monotonic()
        for eid, s in list(self.sessions.items()):
            if s.running:
                continue
            if self.svc.containers.get(s.container.id) is not s.container or \
                    (s.ended_at and now - s.ended_at > KEEP_EXITED):
                del self.sessions[eid]

    def get(self, exec_id: str) -> ExecSession:
        self._prune()
        s = self.sessions.get(exec_id)
        if s is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return s

    def create(self, ref: str, body: dict) -> ExecSession:
        c = self.svc.get(ref)
        cfg = parse_exec_config(body)
        _check_running(c)
        self._prune()
        s = ExecSession(_new_id(), c, cfg)
        self.sessions[s.id] = s
        _exec_ids(c).append(s.id)
        self.svc.publish(c, f"exec_create: {' '.join(cfg.cmd)}", execID=s.id)
        return s

    def inspect(self, exec_id: str) -> dict:
        return self.get(exec_id).to_docker_json()

    async def resize(self, exec_id: str, height: int, width: int) -> None:
        """TIOCSWINSZ on the exec's pty; as dockerd, a resize right after start waits (10 s at
        most) for the process to have its terminal."""
        s = self.get(exec_id)
        if not s.config.tty:
            return
        if not s.master_ready.is_set():
            try:
                await asyncio.wait_for(s.master_ready.wait(), 10)
            except asyncio.TimeoutError:
                raise Conflict(f"resize exec {exec_id}: timeout waiting for exec session "
                               "ready") from None
        if s.master >= 0:
            from dockyard.runtime.terminal import set_size

            try:
                set_size(s.master, height, width)
            except OSError as e:
                raise Conflict(f"resize exec {exec_id}: {e.strerror}") from None

    # -------------------------------------------------------------- start

    async def start(self, exec_id: str, *, detach: bool, output: Sink | None = None,
                    stdin: asyncio.Queue[bytes | None] | None = None,
                    console_size: tuple[int, int] | None = None) -> int | None:
        """Start the exec. Detached: returns once the process runs (None). Attached: pumps
        ``stdin`` to the process and its output to ``output(stream, data)`` until it exits and
        its output was sent; returns the exit code. A failed start raises ``ExecStartFailed``
        (the session's exit code is then 126)."""
        s = self.get(exec_id)
        c = s.container
        if s.exit_code is not None:
            raise Conflict(f"Error: Exec command {s.id} has already run")
        if s.started:
            raise Conflict(f"Error: Exec command {s.id} is already running")
        _check_running(c)
        s.started = s.running = True
        self.svc.publish(c, f"exec_start: {' '.join(s.config.cmd)}", execID=s.id)
        tmp = tempfile.mkdtemp(prefix="dockyard-exec-")
        try:
            proc_file = await self._write_process(s, tmp, console_size or s.config.console_size)
            run = _Run(self, s, tmp, proc_file, output=None if detach else output,
                       stdin=None if detach else stdin)
            await run.launch()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            self._finish(s, START_FAILED)
            raise
        finishing = asyncio.ensure_future(run.finish())
        s.tasks.add(finishing)  # runs on if the client goes away: the exit is still recorded
        finishing.add_done_callback(_retrieve)
        if detach:
            await run.decided
            if not run.decided.result():
                code = await s.done
                raise ExecStartFailed(run.error or f"exec failed with exit code {code}")
            return None
        detached = asyncio.ensure_future(run.detached.wait())
        try:
            await asyncio.wait({finishing, detached},
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            detached.cancel()
        if finishing.done():
            return finishing.result()
        return None  # the client typed the detach keys: the process runs on

    async def _write_process(self, s: ExecSession, tmp: str,
                             console_size: tuple[int, int] | None) -> str:
        from dockyard.leanjson import dumps, loads

        c = s.container
        bundle = self.svc.store.container(c.id)
        cfg = s.config

        def build() -> dict:
            with open(f"{bundle}/config.json", "rb") as f:
                base = (loads(f.read()).get("process") or {})
            user = None
            if cfg.user:
                from dockyard.image.bundle import resolve_user

                group_add = tuple(getattr(getattr(c.req, "run", None), "group_add", ()) or ())
                r = resolve_user(f"{bundle}/rootfs", cfg.user, group_add)
                user = (r.uid, r.gid, tuple(r.additional_gids))
            env = exec_env(list(base.get("env") or ()), cfg.env, tty=cfg.tty,
                           config_env=list(c.config.get("Env") or ()))
            return process_spec(base, cfg, env=env, user=user, console_size=console_size,
                                all_caps=bounding_set() if cfg.privileged else ())

        spec = await asyncio.get_running_loop().run_in_executor(None, build)
        path = f"{tmp}/process.json"
        with open(path, "w") as f:
            f.write(dumps(spec))
        return path

    def _finish(self, s: ExecSession, code: int) -> None:
        if s.exit_code is not None:
            return
        s.exit_code = code
        s.running = False
        s.ended_at = time.monotonic()
        s.master_ready.set()
        if s.master >= 0:
            os.close(s.master)
            s.master = -1
        ids = _exec_ids(s.container)
        if s.id in ids:
            ids.remove(s.id)
        self.svc.publish(s.container, "exec_die", execID=s.id, exitCode=str(code))
        if not s.done.done():
            s.done.set_result(code)


def execs_of(svc) -> ExecService:  # noqa: ANN001 - ContainerService
    """The container service's exec registry (``svc.execs``), made on first use."""
    execs = getattr(svc, "execs", None)
    if execs is None:
        execs = svc.execs = ExecService(svc)
    return execs


def _retrieve(task: asyncio.Future) -> None:
    """Done callback of a run nobody may await any more: log its failure."""
    if not task.cancelled() and task.exception() is not None:
        log.error("exec run failed: %s", task.exception())


def _check_running(c: Container) -> None:
    st = c.state.status
    if st == "paused":
        raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
    if st == "restarting":
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    if st != "running":
        raise Conflict(f"Container {c.id} is not running")


# ------------------------------------------------------------------ one run of the runtime


class _Run:
    """The runtime process of one exec start and the pumps around it.

    The runtime's stdio are pipes made here (not asyncio's): asyncio's ``Process.wait`` also
    waits for its pipes to close, which a background child of the exec can keep open forever.
    """

    def __init__(self, execs: ExecService, s: ExecSession, tmp: str, proc_file: str, *,
                 output: Sink | None, stdin: asyncio.Queue[bytes | None] | None) -> None:
        self.execs = execs
        self.s = s
        self.tmp = tmp
        self.proc_file = proc_file
        self.output = output
        self.stdin = stdin
        self.pid_file = f"{tmp}/pid"
        self.console = f"{tmp}/console.sock"
        self.proc: asyncio.subprocess.Process | None = None
        loop = asyncio.get_running_loop()
        self.decided: asyncio.Future[bool] = loop.create_future()  # True: the process runs
        self.exited = asyncio.Event()
        self.detached = asyncio.Event()  # the client typed the detach keys
        self.error = ""
        self._stderr = bytearray()
        self._listener: socket.socket | None = None
        self._stdin_w = -1
        self._out: FdReader | None = None
        self._err: FdReader | None = None

    async def launch(self) -> None:
        s, cfg = self.s, self.s.config
        rt = self.execs.svc.runtimes[s.container.runtime]
        args = ["exec", "--process", self.proc_file, "--pid-file", self.pid_file]
        if cfg.tty:
            lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            lst.bind(self.console)
            lst.listen(1)
            lst.setblocking(False)
            self._listener = lst
            # detached: runc honours --console-socket only then; the daemon (a subreaper)
            # inherits the process and waits for it itself
            args += ["--console-socket", self.console, "--detach"]
        args.append(s.container.id)
        attached = self.output is not None
        child: list[int] = []
        try:
            stdin: int = asyncio.subprocess.DEVNULL
            if attached and cfg.attach_stdin and not cfg.tty:
                stdin, self._stdin_w = os.pipe2(os.O_CLOEXEC)
                child.append(stdin)
                os.set_blocking(self._stdin_w, False)
            stdout: int = asyncio.subprocess.DEVNULL
            if attached and not cfg.tty:
                r, stdout = os.pipe2(os.O_CLOEXEC)
                child.append(stdout)
                self._out = FdReader(r)
            r, stderr = os.pipe2(os.O_CLOEXEC)
            child.append(stderr)
            self._err = FdReader(r)
            self.proc = await asyncio.create_subprocess_exec(
                *rt.argv(*args), stdin=stdin, stdout=stdout, stderr=stderr,
                start_new_session=True)
        except BaseException:
            self._close_fds()
            raise
        finally:
            for fd in child:
                os.close(fd)
        s.spawn(self._watch_start())

    def _close_fds(self) -> None:
        for reader in (self._out, self._err):
            if reader is not None:
                reader.close()
        if self._stdin_w >= 0:
            os.close(self._stdin_w)
            self._stdin_w = -1

    async def _watch_start(self) -> None:
        """Resolve ``decided`` when the pid file appears or the runtime exits without one."""
        proc = self.proc
        assert proc is not None
        while not os.path.exists(self.pid_file):
            if proc.returncode is not None or self.exited.is_set():
                if not os.path.exists(self.pid_file):
                    self.decided.set_result(False)
                    return
                break
            await asyncio.sleep(_POLL)
        try:
            with open(self.pid_file) as f:
                self.s.pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)  # the runtime has read and connected
        self.decided.set_result(True)

    # -------------------------------------------------------------- pumps

    async def _send(self, stream: int, data: bytes) -> None:
        if self.output is None or not data:
            return
        cfg = self.s.config
        if (stream == STDOUT and not cfg.attach_stdout) or \
                (stream == STDERR and not cfg.attach_stderr):
            return
        try:
            await self.output(stream, data)
        except (ConnectionError, RuntimeError):
            self.output = None  # the client went away; the process runs on

    async def _read_until_done(self, reader: FdReader,
                               handle: Callable[[bytes], Awaitable[None]]) -> None:
        """Read chunks until EOF; once the runtime exited, stop when nothing comes for a while
        (a background child may hold the output open)."""
        while True:
            try:
                data = await asyncio.wait_for(reader.read(), DRAIN_IDLE)
            except asyncio.TimeoutError:
                if self.exited.is_set():
                    return
                continue
            if not data:
                return
            await handle(data)

    async def _pump_stderr(self) -> None:
        assert self._err is not None
        tty = self.s.config.tty

        async def handle(data: bytes) -> None:
            if not tty and await self.decided:
                await self._send(STDERR, data)
            else:
                self._stderr += data[: 65536 - len(self._stderr)]

        await self._read_until_done(self._err, handle)

    async def _pump_stdin(self) -> None:
        q = self.stdin
        if q is None:
            return
        cfg = self.s.config
        scanner = DetachScanner(detach_key_bytes(cfg.detach_keys or DEFAULT_DETACH_KEYS)) \
            if cfg.tty else None
        while True:
            data = await q.get()
            if data is not None and scanner is not None and cfg.attach_stdin:
                data, typed = scanner.feed(data)
                if typed:
                    if data:
                        await self.s.master_ready.wait()
                        if self.s.master >= 0:
                            await write_fd(self.s.master, data)
                    self.output = None
                    self.detached.set()
                    return
            if data is None:
                if self._stdin_w >= 0:
                    os.close(self._stdin_w)
                    self._stdin_w = -1
                return
            if not cfg.attach_stdin:
                continue
            try:
                if cfg.tty:
                    await self.s.master_ready.wait()
                    if self.s.master < 0:
                        return
                    await write_fd(self.s.master, data)
                elif self._stdin_w >= 0:
                    await write_fd(self._stdin_w, data)
            except OSError:
                return  # the process closed its stdin or exited

    async def _receive_master(self) -> None:
        """Accept the runtime's connection on the console socket and take the pty master."""
        lst = self._listener
        assert lst is not None
        loop = asyncio.get_running_loop()
        try:
            conn, _ = await loop.sock_accept(lst)
        finally:
            lst.close()
        with conn:
            ready = loop.create_future()
            loop.add_reader(conn.fileno(), lambda: ready.done() or ready.set_result(None))
            try:
                await ready
            finally:
                loop.remove_reader(conn.fileno())
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        if fds:
            self.s.master = fds[0]

    async def _pump_master(self) -> None:
        recv = asyncio.ensure_future(self._receive_master())
        ended = asyncio.ensure_future(self.exited.wait())
        try:
            await asyncio.wait({recv, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not recv.done():  # the runtime exited: what it sent is already queued
                await asyncio.wait({recv}, timeout=1.0)
            if not recv.done():
                recv.cancel()
                return
            if recv.cancelled() or recv.exception() is not None:
                return
        finally:
            ended.cancel()
            self.s.master_ready.set()
        if self.s.master < 0:
            return
        reader = FdReader(self.s.master, owned=False)  # closed by the session's end
        try:
            await self._read_until_done(reader, lambda d: self._send(STDOUT, d))
        finally:
            reader.close()

    # -------------------------------------------------------------- end

    async def finish(self) -> int:
        """Pump until the process exited and its output was sent; record the exit."""
        proc = self.proc
        assert proc is not None
        pumps = [asyncio.ensure_future(self._pump_stderr())]
        if self._out is not None:
            out = self._out
            pumps.append(asyncio.ensure_future(
                self._read_until_done(out, lambda d: self._send(STDOUT, d))))
        if self._listener is not None:
            pumps.append(asyncio.ensure_future(self._pump_master()))
        feeder = asyncio.ensure_future(self._pump_stdin())
        try:
            rc = await proc.wait()
            if self.s.config.tty and rc == 0 and await self.decided:
                rc = await wait_child(self.s.pid)
            self.exited.set()
            await asyncio.gather(*pumps, return_exceptions=True)
            started = await self.decided
        except BaseException:
            for t in pumps:
                t.cancel()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            self.exited.set()
            raise
        finally:
            feeder.cancel()
            if self._listener is not None:
                self._listener.close()
            self._close_fds()
            shutil.rmtree(self.tmp, ignore_errors=True)
        code = rc if rc >= 0 else 128 - rc
        if not started:
            self.error = start_error(bytes(self._stderr).decode(errors="replace"),
                                     self.s.container.id)
            code = START_FAILED
            await self._send_error()
        self.execs._finish(self.s, code)
        return code

    async def _send_error(self) -> None:
        """dockerd writes a failed start's error on the stream (stdout) for the client."""
        out = self.output
        if out is not None:
            try:
                await out(STDOUT, (self.error + "\r\n").encode())
            except (ConnectionError, RuntimeError):
                pass


__all__ = ["DEFAULT_DETACH_KEYS", "DetachScanner", "ExecConfig", "ExecService", "ExecSession",
           "ExecStartFailed", "detach_key_bytes", "exec_env", "execs_of", "parse_console_size",
           "parse_exec_config", "process_spec", "start_error"]
