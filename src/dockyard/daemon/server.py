"""Run the API server: listen on the configured sockets, serve until SIGTERM/SIGINT, clean up.

Why the socket is removed on the way out and a stale one replaced on the way in: clients find the
daemon by the socket's path, so a leftover file must neither block a new daemon nor pretend one is
running. A live socket (something answers) is never taken over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys

from dockyard.daemon.config import DaemonConfig
from dockyard.errors import DockyardError, Unavailable

log = logging.getLogger("dockyard.daemon")
SOCKET_MODE = 0o660


def _unix_socket(path: str) -> socket.socket:
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens
        else:
            raise Unavailable(f"cannot listen on unix://{path}: another daemon answers there")
        finally:
            probe.close()
    os.makedirs(os.path.dirname(path) or "/", mode=0o711, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)  # the socket is born 0660: no window with wider permissions
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, SOCKET_MODE)
    return sock


async def serve(config: DaemonConfig) -> None:
    from aiohttp import web

    from dockyard.api.app import make_app
    from dockyard.daemon.wiring import build

    from dockyard.daemon.wiring import start_engine

    loop = asyncio.get_running_loop()
    _become_subreaper()
    services = await loop.run_in_executor(None, build, config)
    runner: web.AppRunner | None = None
    paths: list[str] = []
    try:
        await start_engine(services)
        # streams (attach, logs -f, events, wait) end at shutdown; containers keep running
        runner = web.AppRunner(make_app(services), handle_signals=False, access_log=None,
                               shutdown_timeout=2.0)
        await runner.setup()
        for lst in config.listeners:
            if lst.kind == "unix":
                site: web.BaseSite = web.SockSite(runner, _unix_socket(lst.path))
                paths.append(lst.path)
            else:
                site = web.TCPSite(runner, lst.host, lst.port)
            await site.start()
            log.info("API listening on %s", lst)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("daemon ready (root %s)", config.root)
        await stop.wait()
        log.info("shutting down")
    finally:
        for p in paths:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        if runner is not None:
            await runner.cleanup()
        if services.containers is not None:
            await services.containers.close()
        await loop.run_in_executor(None, services.close)


def _become_subreaper() -> None:
    """Container monitors (conmon) detach from their starter; with the daemon as subreaper an
    exited monitor is the daemon's to reap (its pidfd reports the exit), not a zombie of PID 1."""
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: errno %d", ctypes.get_errno())


def main(argv: list[str]) -> int:
    """``dockyard daemon ...``: 0 after a clean shutdown, 1 when it cannot start."""
    from dockyard.daemon.config import build_config

    try:
        config = build_config(argv)
    except DockyardError as e:
        sys.stderr.write(f"dockyard daemon: {e}\n")
        return 1
    levels = {"warn": logging.WARNING, "fatal": logging.CRITICAL}
    logging.basicConfig(level=levels.get(config.log_level, getattr(logging, config.log_level.upper())),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        asyncio.run(serve(config))
    except DockyardError as e:
        sys.stderr.write(f"dockyard daemon: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"dockyard daemon: {e}\n")
        return 1
    return 0

