"""The per-container monitor: conmon (Debian's 2.1.x) holds the container's stdio, writes its log
and records its exit code, so a container outlives the daemon (DESIGN §1).

Why conmon and not a Python process: a monitor lives as long as its container; conmon costs ~2 MB
of memory, a CPython process ~10 MB. conmon speaks the runtime's (runc's) command line, so the
daemon can pick dockyard-runtime or runc.

What the daemon and conmon exchange (conmon ``--api-version 1``):

    daemon ──spawn──▶ conmon ─fork─▶ conmon (monitor; the first one exits at once, after writing
                                       --conmon-pidfile) ──▶ ``RUNTIME [--root R] create --bundle B
                                       --pid-file P [--console-socket S] ID``
    sync pipe (env _OCI_SYNCPIPE): ``{"data": <init pid>}`` once the container is created, or
                                   ``{"data": -1, "message": "<runtime stderr>"}`` on failure
    files in the monitor dir M (= the bundle): ``attach`` (SOCK_SEQPACKET: each packet from conmon
    is one byte 2=stdout/3=stderr + data; packets to it are stdin), ``ctl`` (FIFO: ``"1 H W\\n"``
    resize, ``"2 0 0\\n"`` reopen the log), the log file (CRI "k8s-file" format), and in the exit
    dir a file named by the container id holding the exit code (its mtime is the exit time).

The daemon watches the monitor's pid with a pidfd: readable when conmon exits, i.e. when the
container has exited and its exit file is written. A daemon that restarts finds running
monitors again through ``conmon.pid`` (and checks the pid still is that conmon: pids are reused).
"""

from __future__ import annotations

import asyncio
import os

from dockyard.errors import DockyardError, Unavailable
from dockyard.leanjson import loads
from dockyard.record import Record

CONMON = "/usr/bin/conmon"
#: How long the runtime may take to create a container before the start counts as failed.
CREATE_TIMEOUT = 60.0


class MonitorPaths(Record):
    """Where a container's monitor keeps its files: ``dir`` is the bundle (conmon's
    ``--full-attach`` puts ``attach`` and ``ctl`` there), the exit file lives in ``exit_dir``."""

    dir: str
    id: str
    log: str
    exit_dir: str

    @property
    def pidfile(self) -> str:
        return f"{self.dir}/init.pid"

    @property
    def conmon_pidfile(self) -> str:
        return f"{self.dir}/conmon.pid"

    @property
    def attach(self) -> str:
        return f"{self.dir}/attach"

    @property
    def ctl(self) -> str:
        return f"{self.dir}/ctl"

    @property
    def oom_file(self) -> str:
        """Made by conmon when the kernel OOM-killed a process of the container."""
        return f"{self.dir}/oom"

    @property
    def exit_file(self) -> str:
        return f"{self.exit_dir}/{self.id}"


class Launch(Record):
    """What one conmon start needs."""

    paths: MonitorPaths
    runtime: str  # path of the OCI runtime executable
    runtime_args: tuple[str, ...] = ()  # global flags before the command (--root ...)
    name: str = ""
    tty: bool = False
    stdin: bool = False
    leave_stdin_open: bool = False
    log_driver: str = "k8s-file"  # or "none"
    log_size_max: int = 0  # conmon's own ceiling (0: none); the daemon rotates below it
    conmon: str = CONMON


class ExitStatus(Record):
    code: int
    finished_at: float  # the exit file's mtime: when conmon recorded the exit


class MonitorError(DockyardError):
    """The runtime could not create the container; ``message`` is what the runtime said."""

    http_status = 500


def conmon_argv(launch: Launch) -> list[str]:
    p = launch.paths
    argv = [launch.conmon, "--api-version", "1", "-c", p.id, "-u", p.id, "-r", launch.runtime,
            "-b", p.dir, "-p", p.pidfile, "-n", launch.name or p.id, "--exit-dir", p.exit_dir,
            "--full-attach", "--socket-dir-path", p.dir, "--conmon-pidfile", p.conmon_pidfile,
            "--log-level", "error", "--no-sync-log", "--persist-dir", p.dir]
    if launch.log_driver == "none":
        argv += ["-l", "none:"]
    else:
        argv += ["-l", f"k8s-file:{p.log}"]
        if launch.log_size_max > 0:
            argv += ["--log-size-max", str(launch.log_size_max)]
    if launch.tty:
        argv.append("-t")
    if launch.stdin:
        argv.append("-i")
        if launch.leave_stdin_open:
            argv.append("--leave-stdin-open")
    for a in launch.runtime_args:
        argv += ["--runtime-arg", a]
    return argv


async def start_monitor(launch: Launch) -> tuple[int, int]:
    """Spawn conmon and wait until the runtime created the container (its init waits for
    ``start``). Returns ``(conmon pid, init pid)``; raises ``MonitorError`` with the runtime's
    message if create failed (conmon has then exited)."""
    p = launch.paths
    for f in (p.exit_file, p.pidfile, p.conmon_pidfile, p.oom_file):
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
    r, w = os.pipe2(os.O_CLOEXEC)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "_OCI_SYNCPIPE": str(w)}
    try:
        proc = await asyncio.create_subprocess_exec(
            *conmon_argv(launch), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
            pass_fds=(w,), start_new_session=True, cwd=p.dir)  # conmon writes files by cwd
    except OSError as e:
        os.close(r)
        os.close(w)
        raise Unavailable(f"start monitor {launch.conmon} for container {p.id}: {e}") from None
    os.close(w)
    try:
        data = await asyncio.wait_for(_read_all(r), CREATE_TIMEOUT)
        # the first conmon exits once the monitor is forked; its stderr has conmon's own errors
        err = (await proc.stderr.read()).decode(errors="replace").strip() if proc.stderr else ""
        await proc.wait()
    except asyncio.TimeoutError:
        raise MonitorError(f"start container {p.id}: the runtime did not create it within "
                           f"{CREATE_TIMEOUT:.0f}s") from None
    finally:
        os.close(r)
    message = ""
    pid = -1
    for line in data.decode(errors="replace").splitlines():
        try:
            msg = loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict):
            pid = int(msg.get("data", -1))
            message = str(msg.get("message", "")).strip()
            break
    if pid <= 0:
        raise MonitorError(_runtime_message(message or err) or
                           f"start container {p.id}: the monitor exited without creating it")
    return read_pid(p.conmon_pidfile), pid


async def _read_all(fd: int) -> bytes:
    """Everything conmon writes on the sync pipe up to its first message (one line)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    chunks: list[bytes] = []

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        if chunk:
            chunks.append(chunk)
        if (not chunk or b"\n" in chunk) and not fut.done():
            fut.set_result(None)

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        await fut
    finally:
        loop.remove_reader(fd)
    return b"".join(chunks)


def _runtime_message(text: str) -> str:
    """The runtime's last meaningful line: its error, without conmon's and the runtime's
    prefixes (dockyard-runtime and runc log ``level=error msg="..."`` or plain lines)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[-1]
    marker = 'msg="'
    if marker in line:
        line = line.split(marker, 1)[1].rsplit('"', 1)[0]
    return line


def read_pid(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def monitor_alive(pid: int, container_id: str, conmon: str = CONMON) -> bool:
    """True if ``pid`` is a live (not zombie) conmon for this container."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in (b"Z", b"X"):
        return False
    return os.path.basename(argv[0]) == os.path.basename(conmon).encode() and \
        container_id.encode() in argv


def exit_status(paths: MonitorPaths) -> ExitStatus | None:
    """The exit code conmon recorded, or None if there is none (the monitor died first)."""
    try:
        with open(paths.exit_file) as f:
            text = f.read().strip()
        mtime = os.stat(paths.exit_file).st_mtime
    except OSError:
        return None
    try:
        code = int(text)
    except ValueError:
        return None
    return ExitStatus(code=code if code >= 0 else 255, finished_at=mtime)


def send_ctl(paths: MonitorPaths, kind: int, height: int = 0, width: int = 0) -> bool:
    """Write one control message to the monitor (1: resize the tty, 2: reopen the log).
    False when no monitor listens (the container is not running)."""
    try:
        fd = os.open(paths.ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.write(fd, f"{kind} {height} {width}\n".encode())
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class Watch:
    """Calls ``on_exit`` once when process ``pid`` exits (a pidfd on the event loop).
    The daemon is the monitors' subreaper, so an exited monitor that is its child is reaped."""

    def __init__(self, pid: int, on_exit) -> None:  # noqa: ANN001
        self.pid = pid
        self._loop = asyncio.get_running_loop()
        self._on_exit = on_exit
        self._fd: int | None = None
        self.fired = False
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._loop.call_soon(self._fire)
            return
        self._loop.add_reader(self._fd, self._fire)

    def _fire(self) -> None:
        self.close()
        self.fired = True
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        cb, self._on_exit = self._on_exit, None
        if cb is not None:
            cb()

    def close(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
