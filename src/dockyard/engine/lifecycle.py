"""Start, stop, kill, exit, restart policies, pause and wait: the moving parts of a container.

    start:  mount rootfs → network namespace → conmon (runtime create; the init waits) while
            the network is plumbed → attachers connect → runtime start → running; a pidfd on
            conmon tells the exit
    exit:   exit code from conmon's exit file → runtime delete, unmount and network teardown
            together → exited → waiters,
            ``die`` event → restart policy (back-off, ``restarting``) or ``--rm`` removal
    stop:   stop signal → wait ``-t`` seconds → SIGKILL → wait

Mixed into ``ContainerService`` (engine/service.py), which owns the registry and persistence.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from dockyard.engine.container import Container
from dockyard.engine.runtime_files import oom_killed, patch_namespaces
from dockyard.engine.monitor import (
    Launch, MonitorError, MonitorPaths, Watch, exit_status, monitor_alive, send_ctl, start_monitor)
from dockyard.errors import Conflict, DockyardError, InvalidArgument
from dockyard.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger("dockyard.engine")

SIGKILL = 9
DEFAULT_STOP_TIMEOUT = 10


class NotModified(DockyardError):
    """Docker answers 304 to starting a running or stopping a stopped container."""

    http_status = 304


def exec_exit_code(message: str) -> int:
    """dockerd's exit code for a start that failed in the runtime: 127 for a command that does
    not exist, 126 for one that cannot be executed, 128 otherwise."""
    m = message.lower()
    if "no such file" in m or "not found" in m:
        return 127
    if "permission denied" in m or "exec format error" in m or "is a directory" in m:
        return 126
    return 128


class Lifecycle:
    # provided by ContainerService
    containers: dict[str, Container]
    runtimes: dict[str, Any]
    store: Any
    images: Any
    exit_dir: str
    _closing: bool

    # ------------------------------------------------------------ helpers

    def paths(self, c: Container) -> MonitorPaths:
        d = self.store.container(c.id)
        return MonitorPaths(dir=d, id=c.id, log=f"{d}/ctr.log", exit_dir=self.exit_dir)

    def _tracker(self, c: Container) -> Any:
        from dockyard.engine.restart import RestartTracker

        t = getattr(c, "tracker", None)
        if t is None or t.policy != c.req.restart:
            t = RestartTracker(c.req.restart, c.restart_count)
            c.tracker = t  # type: ignore[attr-defined]
        return t

    def _scheduler(self) -> Any:
        from dockyard.engine.restart import RestartScheduler

        s = getattr(self, "_restart_scheduler", None)
        if s is None:
            s = self._restart_scheduler = RestartScheduler()
        return s

    def cancel_restart(self, c: Container) -> bool:
        return self._scheduler().cancel(c.id)

    def _mount_rootfs(self, c: Container) -> None:
        """(store thread) Mount the container's rootfs again if it is not mounted."""
        from dockyard.image.bundle import mount_rootfs

        mount_rootfs(self.images, c.image_id, self.store.container(c.id))

    def _unmount_rootfs(self, c: Container) -> None:
        from dockyard.image.bundle import unmount_rootfs

        unmount_rootfs(self.images, self.store.container(c.id))

    # ------------------------------------------------------------ start

    async def start(self, ref: str) -> None:
        c = self.get(ref)  # type: ignore[attr-defined]
        async with c.lock:
            if c.state.status in ("running", "paused"):
                raise NotModified(f"container {c.id} is already started")
            if c.state.status == "removing":
                raise Conflict(f"container {c.id} is marked for removal and cannot be started")
            self.cancel_restart(c)
            self._tracker(c).reset()
            c.restart_count = 0
            await self._start(c)

    async def _start(self, c: Container) -> None:
        await self.cleaned(c)
        rt = self.runtimes[c.runtime]
        paths = self.paths(c)
        await self.call(self._mount_rootfs, c)  # type: ignore[attr-defined]
        joins = self.namespace_joins(c.req)  # type: ignore[attr-defined]
        if joins:  # the target may have restarted since create: its namespaces are its pid's now
            await asyncio.get_running_loop().run_in_executor(
                None, patch_namespaces, f"{self.store.container(c.id)}/config.json", dict(joins))
        if os.path.isdir(f"{rt.root}/{c.id}"):
            from dockyard.engine import runtime_cmd

            await runtime_cmd.delete(rt, c.id)  # a leftover of an earlier run
        net = getattr(self, "net", None)
        plumbing: asyncio.Future[None] | None = None
        if net is not None:
            try:
                attachments = await net.prepare(c)
            except DockyardError as e:
                await self._start_failed(c, str(e))
                raise
            if attachments is not None:  # veths, ports, firewall: while the monitor starts
                plumbing = asyncio.ensure_future(net.plumb(c, attachments))
        req = c.req
        launch = Launch(paths=paths, runtime=rt.path, runtime_args=("--root", rt.root),
                        name=c.name, tty=req.tty, stdin=req.open_stdin,
                        # as dockerd: an attach ending closes stdin only without a TTY
                        leave_stdin_open=req.open_stdin and (req.tty or not req.stdin_once),
                        log_driver="none" if req.log.type == "none" else "k8s-file",
                        # no conmon ceiling: conmon 2.1.6 does not reset its byte count on
                        # the daemon's reopen, so a ceiling truncated the live ctr.log each time
                        # that many bytes had been written in all (lines lost); the daemon rotates
                        log_size_max=0)
        try:
            monitor_pid, pid = await start_monitor(launch)
        except BaseException as e:
            if plumbing is not None:  # settled (and undone by _start_failed) before going on
                (failed,) = await asyncio.gather(plumbing, return_exceptions=True)
                if isinstance(failed, DockyardError):  # its undo took the namespace away from
                    await self._start_failed(c, str(failed))  # the runtime: the cause is this
                    raise failed from None
            if not isinstance(e, MonitorError):
                raise
            await self._start_failed(c, str(e))
            if c.state.exit_code in (126, 127):  # the command: the client's mistake (400)
                raise InvalidArgument(str(e)) from None
            raise
        # watched from now on: the daemon is the monitors' subreaper and must reap each one
        starting = True
        c.watch = Watch(monitor_pid, lambda: None if starting else self._monitor_exited(c))
        try:
            if plumbing is not None:
                await plumbing
            await self._connect_attachers(c)
            from dockyard.engine import runtime_cmd

            await runtime_cmd.start(rt, c.id)
        except BaseException as e:
            from dockyard.engine import runtime_cmd

            try:
                await runtime_cmd.kill(rt, c.id, SIGKILL)
            except DockyardError:
                pass
            await self._start_failed(c, str(e))
            raise
        starting = False
        c.state = c.state.to("running", pid=pid, monitor_pid=monitor_pid, started_at=time.time(),
                             finished_at=0.0 if c.state.status == "created" else
                             c.state.finished_at, exit_code=0, error="", oom_killed=False,
                             manually_stopped=False)
        # before any await: an exit handled meanwhile publishes "die", which must come after
        self.publish(c, "start")  # type: ignore[attr-defined]
        self._start_health(c)
        self._start_log_rotation(c)
        if c.watch.fired:  # the monitor exited while the start finished: the exit counts
            self._monitor_exited(c)
        await self.persist(c)  # type: ignore[attr-defined]

    async def _start_failed(self, c: Container, message: str) -> None:
        """Undo a start: runtime state, network, rootfs mount; the container is exited with
        dockerd's code for the failure and the error in ``State.Error``."""
        from dockyard.engine import runtime_cmd

        net = getattr(self, "net", None)
        if net is not None:
            try:
                await net.teardown(c)
            except DockyardError:
                log.exception("start %s failed; network teardown failed too", c.id)

        try:
            await runtime_cmd.delete(self.runtimes[c.runtime], c.id)
        except DockyardError:
            log.exception("start %s failed; runtime delete failed too", c.id)
        try:
            await self.call(self._unmount_rootfs, c)  # type: ignore[attr-defined]
        except DockyardError:
            log.exception("start %s failed; unmount failed too", c.id)
        c.state = c.state.to("exited", pid=0, monitor_pid=0, exit_code=exec_exit_code(message),
                             error=message, finished_at=time.time())
        await self.persist(c)  # type: ignore[attr-defined]
        for started, _ in c.attach_waiters:
            if not started.done():
                started.set_exception(Conflict(f"container {c.id} did not start: {message}"))
        c.attach_waiters.clear()
        c.resolve_waiters(c.exit_waiters, c.state.exit_code)
        if c.req.auto_remove:  # docker run --rm of a command that cannot start: removed too
            asyncio.get_running_loop().create_task(self._auto_remove(c))

    async def _connect_attachers(self, c: Container) -> None:
        """Let attach requests waiting for this start connect to the monitor before the
        process runs, so no output is lost (``docker run`` attaches before it starts)."""
        waiters, c.attach_waiters = c.attach_waiters, []
        pending = []
        for started, connected in waiters:
            if not started.done():
                started.set_result(None)
                pending.append(connected)
        if pending:
            await asyncio.wait(pending, timeout=5)

    # ------------------------------------------------------------ exit

    def _monitor_exited(self, c: Container) -> None:
        c.watch = None
        asyncio.get_running_loop().create_task(self._handle_exit(c))

    async def _handle_exit(self, c: Container, *, from_adopt: bool = False) -> None:
        """Clean up (runtime delete, unmount and the network, together), then record the exit
        (``die``, waiters: as dockerd, a container reads as exited once it is fully stopped),
        persist, and apply the restart policy or ``--rm``. A start, removal or files view that
        comes meanwhile waits for the cleanup (``cleaned``)."""
        paths = self.paths(c)
        status = exit_status(paths)
        code = status.code if status is not None else 255
        finished = status.finished_at if status is not None else time.time()
        oom = oom_killed(c.id) or os.path.exists(paths.oom_file)
        if c.state.status not in ("running", "paused"):
            await self._cleanup_after_exit(c)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        c.cleaned = done  # type: ignore[attr-defined]
        try:
            await self._cleanup_after_exit(c)
        finally:
            done.set_result(None)
        error = "" if status is not None else "the container's monitor exited without an exit code"
        c.state = c.state.to("exited", pid=0, monitor_pid=0, exit_code=code, error=error,
                             finished_at=finished, oom_killed=oom)
        if oom:
            self.publish(c, "oom")  # type: ignore[attr-defined]
        self.publish(c, "die", exitCode=str(code))  # type: ignore[attr-defined]
        c.resolve_waiters(c.exit_waiters, code)
        if from_adopt or self._closing:
            await self.persist(c)  # type: ignore[attr-defined]
            return
        tracker = self._tracker(c)
        restart, delay = tracker.should_restart(
            code, manually_stopped=c.state.manually_stopped or c.stopping,
            run_seconds=finished - c.state.started_at)
        if restart and c.state.status == "exited":
            c.restart_count = tracker.restart_count
            c.state = c.state.to("restarting")
            await self.persist(c)  # type: ignore[attr-defined]
            self._scheduler().schedule(c.id, delay, lambda: self._policy_restart(c))
            return
        await self.persist(c)  # type: ignore[attr-defined]
        if c.req.auto_remove and not c.stopping:
            asyncio.get_running_loop().create_task(self._auto_remove(c))

    async def _cleanup_after_exit(self, c: Container) -> None:
        from dockyard.engine import runtime_cmd

        await self._stop_health(c)

        async def delete() -> None:
            try:
                await runtime_cmd.delete(self.runtimes[c.runtime], c.id)
            except DockyardError as e:
                log.error("container %s exited; runtime delete failed: %s", c.id, e)

        async def unmount() -> None:
            try:
                await self.call(self._unmount_rootfs, c)  # type: ignore[attr-defined]
            except DockyardError as e:
                log.error("container %s exited; unmounting its rootfs failed: %s", c.id, e)

        async def network() -> None:
            net = getattr(self, "net", None)
            if net is not None:
                try:
                    await net.teardown(c)
                except DockyardError as e:
                    log.error("container %s exited; network teardown failed: %s", c.id, e)

        await asyncio.gather(delete(), unmount(), network())

    @staticmethod
    async def cleaned(c: Container) -> None:
        """Wait until the cleanup after the container's last exit finished."""
        done = getattr(c, "cleaned", None)
        if done is not None and not done.done():
            await asyncio.shield(done)

    async def _auto_remove(self, c: Container) -> None:
        try:
            await self.remove(c.id, force=True, volumes=True)  # type: ignore[attr-defined]
        except DockyardError as e:
            if c.id in self.containers:
                log.error("auto-remove of container %s failed: %s", c.id, e)

    async def _policy_restart(self, c: Container) -> None:
        if c.id not in self.containers:
            return
        async with c.lock:
            if c.state.status != "restarting":
                return
            try:  # "restarting" until it runs: not "exited" with the next run's exit code 0
                await self._start(c)
            except DockyardError as e:
                log.error("restart of container %s failed: %s", c.id, e)
                return
            self.publish(c, "restart")  # type: ignore[attr-defined]

    # ------------------------------------------------------------ stop, kill, restart

    def _exit_future(self, c: Container) -> asyncio.Future[int]:
        f: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        c.exit_waiters.append(f)
        return f

    async def stop(self, ref: str, *, timeout: int | None = None, signal: int | None = None) -> None:
        c = self.get(ref)  # type: ignore[attr-defined]
        async with c.lock:
            await self._stop(c, timeout=timeout, signal=signal)

    async def _stop(self, c: Container, *, timeout: int | None, signal: int | None) -> None:
        if c.state.status == "restarting":
            self.cancel_restart(c)
            c.state = c.state.to("exited", manually_stopped=True)
            await self.persist(c)  # type: ignore[attr-defined]
            self.publish(c, "stop")  # type: ignore[attr-defined]
            return
        if not c.state.running:
            raise NotModified(f"container {c.id} is not running")
        if timeout is None:
            timeout = c.req.stop_timeout if c.req.stop_timeout is not None else DEFAULT_STOP_TIMEOUT
        sig = signal or c.stop_signal
        c.stopping = True
        try:
            done = self._exit_future(c)  # before any await: an exit meanwhile resolves it
            await self._mark_manually_stopped(c)
            await self._signal(c, sig)
            if c.state.status == "paused":
                await self._resume_quietly(c)
            try:
                await asyncio.wait_for(asyncio.shield(done), None if timeout < 0 else timeout)
            except asyncio.TimeoutError:
                await self._signal(c, SIGKILL)
                await done
            await self.cleaned(c)  # docker stop returns once the container is fully stopped
        finally:
            c.stopping = False
        self.publish(c, "stop")  # type: ignore[attr-defined]

    async def _mark_manually_stopped(self, c: Container) -> None:
        """Recorded before the signal, as dockerd does: if the daemon dies before it handles the
        exit, the next one must not apply a restart policy to the user's stop."""
        c.state = replace(c.state, manually_stopped=True)
        if c.req.restart.name not in ("", "no"):
            await self.persist(c)  # type: ignore[attr-defined]

    async def _signal(self, c: Container, sig: int) -> None:
        from dockyard.engine import runtime_cmd

        self.publish(c, "kill", signal=str(sig))  # type: ignore[attr-defined]
        try:
            await runtime_cmd.kill(self.runtimes[c.runtime], c.id, sig)
        except DockyardError as e:
            if c.state.running and monitor_alive(c.state.monitor_pid, c.id):
                raise
            log.debug("kill %s: %s (already exiting)", c.id, e)

    async def _resume_quietly(self, c: Container) -> None:
        from dockyard.engine import runtime_cmd

        try:
            await runtime_cmd.resume(self.runtimes[c.runtime], c.id)
        except DockyardError:
            pass

    async def _kill_and_wait(self, c: Container) -> None:
        if c.state.status == "restarting":
            self.cancel_restart(c)
            c.state = c.state.to("exited")
            return
        c.stopping = True
        try:
            done = self._exit_future(c)
            await self._signal(c, SIGKILL)
            if c.state.status == "paused":
                await self._resume_quietly(c)
            await done
        finally:
            c.stopping = False

    async def kill(self, ref: str, signal: int) -> None:
        c = self.get(ref)  # type: ignore[attr-defined]
        if not c.state.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if signal in (SIGKILL, c.stop_signal):
            await self._mark_manually_stopped(c)
        done = self._exit_future(c) if signal == SIGKILL else None
        await self._signal(c, signal)
        if c.state.status == "paused" and signal == SIGKILL:
            await self._resume_quietly(c)
        if done is not None:  # as dockerd: a SIGKILLed container is exited when kill answers
            try:
                await asyncio.wait_for(asyncio.shield(done), 2)
                await asyncio.wait_for(self.cleaned(c), 2)
            except asyncio.TimeoutError:
                pass

    async def restart(self, ref: str, *, timeout: int | None = None,
                      signal: int | None = None) -> None:
        c = self.get(ref)  # type: ignore[attr-defined]
        async with c.lock:
            if c.state.running or c.state.status == "restarting":
                await self._stop(c, timeout=timeout, signal=signal)
            self.cancel_restart(c)
            self._tracker(c).reset()
            c.restart_count = 0
            await self._start(c)
        self.publish(c, "restart")  # type: ignore[attr-defined]

    # ------------------------------------------------------------ pause, wait

    async def pause(self, ref: str) -> None:
        from dockyard.engine import runtime_cmd

        c = self.get(ref)  # type: ignore[attr-defined]
        async with c.lock:
            if c.state.status == "paused":
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status != "running":
                raise Conflict(f"Container {c.id} is not running")
            await runtime_cmd.pause(self.runtimes[c.runtime], c.id)
            c.state = c.state.to("paused")
            await self.persist(c)  # type: ignore[attr-defined]
        self.publish(c, "pause")  # type: ignore[attr-defined]

    async def unpause(self, ref: str) -> None:
        from dockyard.engine import runtime_cmd

        c = self.get(ref)  # type: ignore[attr-defined]
        async with c.lock:
            if c.state.status != "paused":
                raise Conflict(f"Container {c.id} is not paused")
            await runtime_cmd.resume(self.runtimes[c.runtime], c.id)
            c.state = c.state.to("running")
            await self.persist(c)  # type: ignore[attr-defined]
        self.publish(c, "unpause")  # type: ignore[attr-defined]

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        """Docker's ``POST /containers/{id}/wait``: the exit code at the condition."""
        c = self.get(ref)  # type: ignore[attr-defined]
        if condition in ("", "not-running"):
            if not c.state.running and c.state.status != "restarting":
                return c.state.exit_code
            f = self._exit_future(c)
        elif condition == "next-exit":
            f = self._exit_future(c)
        elif condition == "removed":
            f = asyncio.get_running_loop().create_future()
            c.removed_waiters.append(f)
        else:
            raise InvalidArgument(f"invalid condition: {condition!r}")
        return await f

    # ------------------------------------------------------------ daemon restart

    async def adopt(self, c: Container) -> None:
        """After a daemon start: watch a live monitor again, or record the exit it wrote."""
        if c.state.status in ("running", "paused"):
            if monitor_alive(c.state.monitor_pid, c.id):
                c.watch = Watch(c.state.monitor_pid, lambda: self._monitor_exited(c))
                self._start_health(c)
                self._start_log_rotation(c)
                return
            await self._handle_exit(c, from_adopt=True)
            return
        if c.state.status in ("restarting", "removing"):
            c.state = replace(c.state, status="exited")
            await self.persist(c)  # type: ignore[attr-defined]
        await self._clear_stopped(c)

    async def _clear_stopped(self, c: Container) -> None:
        """A container that is not running when the daemon starts: a start the crash cut short
        may have left its monitor and runtime state (the container was never reported running,
        so it is ended, not adopted), and its rootfs needs no mount until the next start."""
        from dockyard.engine import runtime_cmd
        from dockyard.engine.monitor import read_pid

        rt = self.runtimes[c.runtime]
        monitor = read_pid(self.paths(c).conmon_pidfile)
        if monitor_alive(monitor, c.id) or os.path.isdir(f"{rt.root}/{c.id}"):
            try:
                await runtime_cmd.delete(rt, c.id)
            except DockyardError as e:
                log.error("container %s: removing the runtime state of an interrupted start "
                          "failed: %s", c.id, e)
            if monitor_alive(monitor, c.id):
                try:
                    os.kill(monitor, SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            await self.call(self._unmount_rootfs, c)  # type: ignore[attr-defined]
        except DockyardError as e:
            log.error("container %s: unmounting its rootfs failed: %s", c.id, e)

    async def restart_on_daemon_start(self, c: Container) -> None:
        from dockyard.engine.restart import restart_on_daemon_start

        if c.state.status != "exited" or c.req.restart.name in ("", "no"):
            return
        if not restart_on_daemon_start(c.req.restart, exit_code=c.state.exit_code,
                                       manually_stopped=c.state.manually_stopped,
                                       has_been_started=c.state.started_at > 0,
                                       restart_count=c.restart_count):
            return
        async with c.lock:
            self._tracker(c).reset()  # as a user start: RestartCount starts over (dockerd)
            c.restart_count = 0
            try:
                await self._start(c)
            except DockyardError as e:
                log.error("restart policy: starting container %s failed: %s", c.id, e)

    async def close(self) -> None:
        """Daemon shutdown: containers keep running under their monitors (live restore)."""
        self._closing = True
        await self._scheduler().close()
        for c in self.containers.values():
            if c.watch is not None:
                c.watch.close()
                c.watch = None
            await self._stop_health(c)
        net = getattr(self, "net", None)
        if net is not None:
            await net.close(list(self.containers.values()))

    # ------------------------------------------------------------ tty

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)  # type: ignore[attr-defined]
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if not c.req.tty:
            return
        send_ctl(self.paths(c), 1, height, width)

    # ------------------------------------------------------------ health (engine/health.py)

    def _start_health(self, c: Container) -> None:
        start = getattr(self, "start_health", None)
        if start is not None:
            start(c)

    async def _stop_health(self, c: Container) -> None:
        """Stop the checks; the last health stays (Docker shows it for a stopped container)."""
        task = getattr(c, "log_task", None)
        if task is not None:
            task.cancel()
            c.log_task = None  # type: ignore[attr-defined]
        m = c.health_monitor
        c.health_monitor = None
        if m is not None:
            final = await m.stop()
            if final is not None:
                c.health = final.to_docker_json()

    def _start_log_rotation(self, c: Container) -> None:
        """Rotate the container's log while it runs (conmon 2.1 only truncates): rename
        ctr.log → ctr.log.1 … and have conmon reopen, checked every second."""
        from dockyard.engine.logrotate import LogOptions, watch

        log_cfg = c.req.log
        if log_cfg.type == "none" or log_cfg.max_size <= 0:
            return
        paths = self.paths(c)
        opts = LogOptions(max_size=log_cfg.max_size, max_file=max(log_cfg.max_file, 1))
        c.log_task = asyncio.get_running_loop().create_task(  # type: ignore[attr-defined]
            watch(paths.log, opts, paths.ctl, lambda: c.state.running))
