"""Exec routes (Docker Engine API v1.45): create, start (hijacked stream or detached), resize,
inspect. The work is in ``engine/exec.py``; the stream is ``api/hijack.py``'s ``RawStream``.

As dockerd: once the stream is hijacked, a failure to start the process is written on it (its
stdout) followed by ``\\r\\n``; the client learns the exit code (126) from ``GET /exec/{id}/json``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from dockyard.api.app import api_version, services
from dockyard.api.errors import json_response
from dockyard.errors import DockyardError, InvalidArgument

log = logging.getLogger("dockyard.api")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.api.app import Routes
    from dockyard.engine.exec import ExecService


def _execs(request: web.Request) -> ExecService:
    from dockyard.engine.exec import execs_of

    return execs_of(services(request).containers)


async def _body(request: web.Request) -> dict:
    from dockyard.leanjson import loads

    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        d = loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid JSON in the request body: {e}") from None
    if not isinstance(d, dict):
        raise InvalidArgument("invalid JSON in the request body: expected an object")
    return d


async def create(request: web.Request) -> web.Response:
    body = await _body(request)
    s = _execs(request).create(request.match_info["id"], body)
    return json_response({"Id": s.id}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    from dockyard.api.hijack import RawStream
    from dockyard.engine.exec_request import parse_console_size

    execs = _execs(request)
    exec_id = request.match_info["id"]
    body = await _body(request)
    s = execs.get(exec_id)  # 404 before anything is hijacked
    console_size = parse_console_size(body.get("ConsoleSize"), "exec start")
    if body.get("Detach"):
        await execs.start(exec_id, detach=True, console_size=console_size)
        return web.Response(status=200)
    tty = bool(body["Tty"]) if "Tty" in body else s.config.tty
    stream = RawStream(request, tty=tty, api_multiplexed=api_version(request) >= "1.42")
    await stream.start()
    try:
        await execs.start(exec_id, detach=False, output=stream.send, stdin=stream.input,
                          console_size=console_size)
    except Exception as e:  # noqa: BLE001 - the stream is hijacked: the error goes on it
        if not isinstance(e, DockyardError):
            log.exception("exec %s: start failed", exec_id)
        try:
            await stream.send(1, (str(e) + "\r\n").encode())
        except (ConnectionError, RuntimeError):
            pass
    await stream.finish()
    return stream


def _dimension(request: web.Request, key: str) -> int:
    v = request.query.get(key, "")
    try:
        n = int(v)
    except ValueError:
        raise InvalidArgument(f'strconv.Atoi: parsing "{v}": invalid syntax') from None
    if not 0 <= n <= 65535:
        raise InvalidArgument(f"resize exec: {key}={n} is out of range")
    return n


async def resize(request: web.Request) -> web.Response:
    h, w = _dimension(request, "h"), _dimension(request, "w")
    await _execs(request).resize(request.match_info["id"], h, w)
    return web.Response(status=200)


async def inspect(request: web.Request) -> web.Response:
    return json_response(_execs(request).inspect(request.match_info["id"]))


def register(routes: Routes) -> None:
    routes.add("POST", "/containers/{id}/exec", create)
    routes.add("POST", "/exec/{id}/start", start)
    routes.add("POST", "/exec/{id}/resize", resize)
    routes.add("GET", "/exec/{id}/json", inspect)


__all__ = ["register"]
