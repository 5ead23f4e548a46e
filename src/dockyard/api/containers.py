"""Container routes (Docker Engine API v1.45): create, list, inspect, start, stop, restart, kill,
wait, remove, attach, resize, logs, top, stats, pause/unpause, rename, update, prune.

Handlers parse the query and body and call the container service (engine/service.py); blocking
reads (log files, cgroup files) run off the loop. Hijacked streams use ``api/hijack.py``.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from dockyard.api.app import api_version, services
from dockyard.api.body import query_bool, read_object
from dockyard.api.errors import json_response
from dockyard.errors import DockyardError, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.api.app import Routes
    from dockyard.engine.container import Container
    from dockyard.engine.service import ContainerService


def _svc(request: web.Request) -> ContainerService:
    return services(request).containers  # type: ignore[return-value]


def qbool(request: web.Request, key: str, default: bool = False) -> bool:
    return query_bool(request.query.get(key), default)


def qint(request: web.Request, key: str, default: int | None = None) -> int | None:
    v = request.query.get(key)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {key}: {v!r}: not an integer") from None


def qsignal(request: web.Request, key: str = "signal") -> int | None:
    from dockyard.oci.spec_builder import parse_signal

    v = request.query.get(key)
    if not v:
        return None
    return parse_signal(v)


def _mounts(svc: ContainerService, c: Container) -> list[dict]:
    from dockyard.engine.mounts import docker_mounts

    return docker_mounts(c.req.mounts, c.volumes)


# ------------------------------------------------------------------ create, list, inspect


async def create(request: web.Request) -> web.Response:
    svc = _svc(request)
    body = await request.read()
    c, warnings = await svc.create(body, name=request.query.get("name", ""),
                                   api_version=api_version(request))
    return json_response({"Id": c.id, "Warnings": warnings}, status=201)


async def list_containers(request: web.Request) -> web.Response:
    from dockyard.engine.filters import parse_filters, select
    from dockyard.engine.views import summary

    svc = _svc(request)
    filters = parse_filters(request.query.get("filters"))
    ancestors: dict[str, set[str]] = {}
    for a in filters.get("ancestor", ()):
        ancestors[a] = await services(request).call(_image_ids, svc, a)
    chosen = select(svc.all(), include_stopped=qbool(request, "all"),
                    limit=qint(request, "limit", -1) or -1, filters=filters,
                    image_matches=lambda a, image_id: image_id in ancestors.get(a, ()),
                    resolve=svc.get)
    now = time.time()
    size = qbool(request, "size")
    out = []
    for c in chosen:
        sizes = await _sizes(request, svc, c) if size else None
        net, ports = None, None
        if svc.net is not None:
            net, ports = svc.net.settings(c, c.attachments), svc.net.port_list(c)
        out.append(summary(c, now=now, mounts=_mounts(svc, c), size=sizes, network=net,
                           ports=ports))
    return json_response(out)


def _image_ids(svc: ContainerService, ref: str) -> set[str]:
    try:
        return {str(svc.images.resolve(ref).id)}
    except DockyardError:
        return set()


async def _sizes(request: web.Request, svc: ContainerService, c: Container) -> tuple[int, int]:
    from dockyard.snapshot.fsutil import disk_usage

    loop = asyncio.get_running_loop()
    upper = f"{svc.store.container(c.id)}/upper"
    rw = await loop.run_in_executor(None, disk_usage, upper)
    image = await services(request).call(lambda: svc.images.resolve(c.image_id))
    return rw, rw + image.size


async def inspect(request: web.Request) -> web.Response:
    from dockyard.engine.views import inspect as view

    svc = _svc(request)
    c = svc.get(request.match_info["id"])
    d = svc.store.container(c.id)
    sizes = await _sizes(request, svc, c) if qbool(request, "size") else None
    net = svc.net.settings(c, c.attachments) if svc.net is not None else None
    return json_response(view(c, log_path=f"{d}/ctr.log", rootfs=f"{d}/rootfs",
                              upper=f"{d}/upper", work=f"{d}/work", mounts=_mounts(svc, c),
                              size=sizes, network=net))


# ------------------------------------------------------------------ lifecycle


async def _no_content() -> web.Response:
    return web.Response(status=204)


async def start(request: web.Request) -> web.Response:
    from dockyard.engine.lifecycle import NotModified

    try:
        await _svc(request).start(request.match_info["id"])
    except NotModified:
        return web.Response(status=304)
    return await _no_content()


async def stop(request: web.Request) -> web.Response:
    from dockyard.engine.lifecycle import NotModified

    try:
        await _svc(request).stop(request.match_info["id"], timeout=qint(request, "t"),
                                 signal=qsignal(request))
    except NotModified:
        return web.Response(status=304)
    return await _no_content()


async def restart(request: web.Request) -> web.Response:
    await _svc(request).restart(request.match_info["id"], timeout=qint(request, "t"),
                                signal=qsignal(request))
    return await _no_content()


async def kill(request: web.Request) -> web.Response:
    sig = qsignal(request) or 9
    await _svc(request).kill(request.match_info["id"], sig)
    return await _no_content()


async def pause(request: web.Request) -> web.Response:
    await _svc(request).pause(request.match_info["id"])
    return await _no_content()


async def unpause(request: web.Request) -> web.Response:
    await _svc(request).unpause(request.match_info["id"])
    return await _no_content()


async def remove(request: web.Request) -> web.Response:
    await _svc(request).remove(request.match_info["id"], force=qbool(request, "force"),
                               volumes=qbool(request, "v"))
    return await _no_content()


async def rename(request: web.Request) -> web.Response:
    await _svc(request).rename(request.match_info["id"], request.query.get("name", ""))
    return await _no_content()


async def wait(request: web.Request) -> web.StreamResponse:
    """The status line goes out at once (the docker CLI waits for it before it starts the
    container); the body when the condition is met."""
    svc = _svc(request)
    c = svc.get(request.match_info["id"])
    condition = request.query.get("condition", "not-running")
    task = asyncio.ensure_future(svc.wait(c.id, condition))
    await asyncio.sleep(0)  # the waiter is registered before the client can start the container
    if task.done() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    try:
        code = await task
    except DockyardError as e:
        body = {"StatusCode": -1, "Error": {"Message": str(e)}}
    else:  # a start that failed already answered its error; the wait reports only the code
        body = {"StatusCode": code, "Error": None}
    from dockyard.leanjson import dumps

    try:
        await resp.write(dumps(body).encode() + b"\n")
        await resp.write_eof()
    except ConnectionError:
        pass  # the client went away: nobody to answer
    return resp


async def resize(request: web.Request) -> web.Response:
    _svc(request).resize(request.match_info["id"], qint(request, "h", 0) or 0,
                         qint(request, "w", 0) or 0)
    return web.Response(status=200)


# ------------------------------------------------------------------ attach, logs


async def attach(request: web.Request) -> web.StreamResponse:
    from dockyard.api.hijack import RawStream
    from dockyard.engine.attach import attach as connect

    svc = _svc(request)
    c = svc.get(request.match_info["id"])
    want_in = qbool(request, "stdin") and c.req.open_stdin
    want = {1: qbool(request, "stdout"), 2: qbool(request, "stderr")}
    stream = RawStream(request, tty=c.req.tty, api_multiplexed=api_version(request) >= "1.42")
    await stream.start()
    svc.publish(c, "attach")  # as dockerd: every attach request, streaming or not
    if not qbool(request, "stream"):
        await stream.finish()
        return stream
    try:
        conn = await connect(svc, c)
    except DockyardError:
        await stream.finish()
        return stream

    async def pump_in() -> None:
        while True:
            data = await stream.input.get()
            if data is None:
                if c.req.stdin_once and not c.req.tty:  # dockerd: a TTY's stdin stays open
                    conn.close_stdin()
                return
            if want_in:
                await conn.send(data)

    feeder = asyncio.ensure_future(pump_in())
    try:
        while True:
            item = await conn.recv()
            if item is None:
                break
            sid, data = item
            if want.get(sid):
                await stream.send(sid, data)
    except ConnectionError:
        pass
    finally:
        feeder.cancel()
        conn.close()
    await stream.finish()
    return stream


async def logs(request: web.Request) -> web.StreamResponse:
    from dockyard.engine import logs as logmod

    svc = _svc(request)
    c = svc.get(request.match_info["id"])
    if c.req.log.type == "none":
        raise InvalidArgument('configured logging driver does not support reading')
    out, err = qbool(request, "stdout"), qbool(request, "stderr")
    if not (out or err):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    now = time.time()
    since = _time_param(request, "since", now)
    until = _time_param(request, "until", now)
    tail_text = request.query.get("tail", "all")
    tail = None if tail_text in ("", "all") else qint(request, "tail")
    if tail is not None and tail < 0:
        tail = None
    timestamps = qbool(request, "timestamps")
    details = "" if qbool(request, "details") else None
    path = svc.paths(c).log
    multiplexed = not c.req.tty
    resp = web.StreamResponse(status=200, headers={
        "Content-Type": "application/vnd.docker.multiplexed-stream" if multiplexed and
        api_version(request) >= "1.42" else "application/vnd.docker.raw-stream"})
    await resp.prepare(request)

    def render(e: logmod.LogEntry) -> bytes:
        return logmod.frame(e, tty=c.req.tty, timestamps=timestamps, details=details)

    if qbool(request, "follow") and (until is None or until > now):
        entries = logmod.follow(path, is_running=lambda: c.state.running or
                                c.state.status == "restarting", since=since, until=until,
                                tail=tail)
        async for e in entries:
            if (out if e.stream == "stdout" else err):
                await resp.write(render(e))
    else:
        loop = asyncio.get_running_loop()
        chunks = await loop.run_in_executor(None, _read_logs, logmod, path, since, until, tail,
                                            out, err, render)
        for chunk in chunks:
            await resp.write(chunk)
    await resp.write_eof()
    return resp


def _read_logs(logmod, path, since, until, tail, out, err, render) -> list[bytes]:  # noqa: ANN001
    """(thread) The log as up to 1 MiB chunks of framed entries."""
    chunks: list[bytes] = []
    buf: list[bytes] = []
    size = 0
    for e in logmod.select_streams(logmod.read_entries(path, since=since, until=until, tail=tail),
                                   stdout=out, stderr=err):
        b = render(e)
        buf.append(b)
        size += len(b)
        if size >= 1 << 20:
            chunks.append(b"".join(buf))
            buf, size = [], 0
    if buf:
        chunks.append(b"".join(buf))
    return chunks


def _time_param(request: web.Request, key: str, now: float) -> float | None:
    from dockyard.engine.logs import parse_time_filter

    v = request.query.get(key)
    if not v or v == "0":
        return None
    return parse_time_filter(v, now)


# ------------------------------------------------------------------ top, stats, update, prune


async def top(request: web.Request) -> web.Response:
    from dockyard.engine import runtime_cmd
    from dockyard.engine.top import top as run_top

    svc = _svc(request)
    c = svc.get(request.match_info["id"])
    if not c.state.running:
        raise InvalidArgument(f"Container {c.id} is not running") from None
    pids = await runtime_cmd.pids(svc.runtimes[c.runtime], c.id)
    titles, rows = await run_top(pids, request.query.get("ps_args", ""))
    return json_response({"Titles": titles, "Processes": rows})


async def stats(request: web.Request) -> web.StreamResponse:
    from dockyard.engine import stats as st
    from dockyard.leanjson import dumps

    svc = _svc(request)
    c = svc.get(request.match_info["id"])
    stream = qbool(request, "stream", True)
    one_shot = qbool(request, "one-shot")

    where = st.locate(c.id) if c.state.running else None

    def locate() -> st.CgroupLocation | None:
        return where if c.state.running else None

    frames = st.stats_stream(locate, id=c.id, name=c.name,
                             pid_of=lambda: c.state.pid if c.state.running else None,
                             stream=stream, one_shot=one_shot,
                             networks=c.req.network_mode != "host")
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    try:
        async for obj in frames:
            await resp.write(dumps(obj).encode() + b"\n")
            if not stream:
                break
        await resp.write_eof()
    except ConnectionError:
        pass  # the client stopped reading (docker stats exits)
    return resp


async def update(request: web.Request) -> web.Response:
    data = await read_object(request)
    warnings = await _svc(request).update(request.match_info["id"], data)
    return json_response({"Warnings": warnings})


async def prune(request: web.Request) -> web.Response:
    from dockyard.engine.filters import parse_filters

    svc = _svc(request)
    filters = parse_filters(request.query.get("filters"))
    deleted, space = await svc.prune(filters)
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": space})


def register(routes: Routes) -> None:
    routes.add("POST", "/containers/create", create)
    routes.add("GET", "/containers/json", list_containers)
    routes.add("POST", "/containers/prune", prune)
    routes.add("GET", "/containers/{id}/json", inspect)
    routes.add("POST", "/containers/{id}/start", start)
    routes.add("POST", "/containers/{id}/stop", stop)
    routes.add("POST", "/containers/{id}/restart", restart)
    routes.add("POST", "/containers/{id}/kill", kill)
    routes.add("POST", "/containers/{id}/pause", pause)
    routes.add("POST", "/containers/{id}/unpause", unpause)
    routes.add("POST", "/containers/{id}/rename", rename)
    routes.add("POST", "/containers/{id}/wait", wait)
    routes.add("POST", "/containers/{id}/resize", resize)
    routes.add("POST", "/containers/{id}/attach", attach)
    routes.add("GET", "/containers/{id}/logs", logs)
    routes.add("GET", "/containers/{id}/top", top)
    routes.add("GET", "/containers/{id}/stats", stats)
    routes.add("POST", "/containers/{id}/update", update)
    routes.add("DELETE", "/containers/{id}", remove)


__all__ = ["NotFound", "register"]
