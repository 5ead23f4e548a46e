"""Container file routes: archive GET/HEAD/PUT (``docker cp``), export, changes (``docker diff``)
and ``POST /commit``.

The container comes from ``services.containers.files_view(name_or_id)``, an async context manager
yielding a view with ``id``, ``image_id``, ``rootfs`` (mounted while the ``async with`` lasts),
``upper``, ``read_only`` and ``running``; optionally ``config`` (the container's Docker ``Config``
dict: its user for ``copyUIDGID``, the base ``docker commit`` merges with). Everything else is
``engine.files`` and ``image.commit``.

Threads: file work (walks, tar streams, extraction) runs in the loop's default executor, one
chunk per hop, so the loop only moves bytes; anything touching the store (image lookups, commit)
goes through ``Services.call`` (the store's thread).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json

from aiohttp import web

from dockyard.api.app import services
from dockyard.api.body import query_bool
from dockyard.api.errors import json_response
from dockyard.engine import files
from dockyard.errors import InvalidArgument, NotFound, NotImplemented

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from dockyard.api.app import Routes
    from dockyard.image.service import ImageService

STAT_HEADER = "X-Docker-Container-Path-Stat"
_TAR = "application/x-tar"


def _view(request: web.Request, name: str, *, pause: bool | None = None) -> Any:
    """The container's files view: the container service's own ``files_view`` if it has one,
    else ``engine.files_view`` over it. ``pause`` (``docker commit``'s default) is passed on
    when taken: a frozen container cannot swap files under the layer writer."""
    containers = getattr(services(request), "containers", None)
    own = getattr(containers, "files_view", None)
    if own is not None:
        if pause is not None and "pause" in inspect.signature(own).parameters:
            return own(name, pause=pause)
        return own(name)
    if containers is None or not hasattr(containers, "get"):
        raise NotImplemented("container files (cp, diff, export, commit) are not available in "
                             "this daemon")
    from dockyard.engine.files_view import files_view

    return files_view(containers, name, pause=bool(pause))


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("bad parameter: path cannot be empty")  # moby's wording
    return path


def _user(view: Any) -> str:
    config = getattr(view, "config", None)
    return (config or {}).get("User", "") if isinstance(config, dict) else ""


async def _in_thread(fn: Any, *args: Any, **kw: Any) -> Any:
    """Run blocking file work in a worker thread. If the request is cancelled (the client went
    away) the work is still awaited before the files view closes, so no thread is left reading
    a rootfs the container service then unmounts."""
    fut = asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kw))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        if not fut.cancelled():
            fut.exception()  # retrieved: nobody is left to tell
        raise


async def _stream(request: web.Request, resp: web.StreamResponse, chunks: Iterator[bytes]) -> None:
    """Send ``chunks`` (a blocking generator) pulled one at a time in a worker thread. After the
    headers a failure can only cut the stream, so the client sees a truncated body."""
    try:
        await resp.prepare(request)
        while (chunk := await _in_thread(next, chunks, None)) is not None:
            await resp.write(chunk)
    except ConnectionError:
        raise
    except Exception as e:  # noqa: BLE001 - too late for a status
        raise ConnectionResetError(f"{request.method} {request.path}: stream failed: {e}") from e
    finally:
        await _in_thread(chunks.close)
    await resp.write_eof()


# ---------------------------------------------------------------------------------------- archive

async def get_archive(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = _path(request)
    async with _view(request, name) as view:
        if request.method == "HEAD":
            st = await _in_thread(files.stat_path, view.rootfs, path, container=name)
            return web.Response(headers={STAT_HEADER: files.docker_path_stat_header(st),
                                         "Content-Type": _TAR})
        st, chunks = await _in_thread(files.archive_path, view.rootfs, path, container=name)
        resp = web.StreamResponse(headers={STAT_HEADER: files.docker_path_stat_header(st),
                                           "Content-Type": _TAR})
        resp.enable_chunked_encoding()
        await _stream(request, resp, chunks)
        return resp


class _Body:
    """The request body as a blocking file for a worker thread (each read hops to the loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request: web.Request) -> None:
        self._loop, self._content = loop, request.content

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            out = bytearray()
            while chunk := self.read(files.CHUNK):
                out += chunk
            return bytes(out)
        return asyncio.run_coroutine_threadsafe(self._content.read(n), self._loop).result()

    def readable(self) -> bool:
        return True


async def put_archive(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    path = _path(request)
    loop = asyncio.get_running_loop()
    async with _view(request, name) as view:
        await _in_thread(files.extract_to, view.rootfs, path, _Body(loop, request),
                         no_overwrite_dir_non_dir=query_bool(request.query.get("noOverwriteDirNonDir")),
                         copy_uid_gid=query_bool(request.query.get("copyUIDGID")), user=_user(view),
                         read_only=bool(view.read_only), container=name)
    return web.Response(status=200)


# ---------------------------------------------------------------------------------------- export, diff

async def export(request: web.Request) -> web.StreamResponse:
    async with _view(request, request.match_info["name"]) as view:
        resp = web.StreamResponse(headers={"Content-Type": _TAR})
        resp.enable_chunked_encoding()
        await _stream(request, resp, files.export_rootfs(view.rootfs))
        return resp


def lower_dirs(svc: ImageService, image_id: str) -> list[str]:
    """The image's layer directories, top-most first (store thread)."""
    chain = svc.unpack(svc.resolve(image_id))
    lowers = getattr(svc.snapshotter, "lowerdirs", None)
    if not chain:
        return []
    if lowers is None:
        raise NotImplemented("container changes need the overlay snapshotter")
    return list(lowers(chain))


async def changes(request: web.Request) -> web.Response:
    svc = services(request)
    async with _view(request, request.match_info["name"]) as view:
        lowers = await svc.call(lower_dirs, svc.images, view.image_id)
        found = await _in_thread(files.changes, view.upper, lowers, exclude=files.ENGINE_PATHS)
    return json_response([{"Path": c.path, "Kind": c.kind} for c in found])


# ---------------------------------------------------------------------------------------- commit

def _commit(svc: ImageService, **kw: Any) -> str:
    from dockyard.image.commit import commit

    image_id = kw.pop("image_id")
    return str(commit(svc, lower_image_id=image_id, lower_dirs=lower_dirs(svc, image_id), **kw))


async def commit_container(request: web.Request) -> web.Response:
    from dockyard.oci.image_config import parse_container_config

    q = request.query
    name = q.get("container", "")
    if not name:
        raise NotFound("No such container: ")
    repo, tag = q.get("repo", ""), q.get("tag", "")
    repo_tag = (f"{repo}:{tag}" if tag else repo) or None
    body = (await request.read()).strip()
    raw = json.loads(body) if body else None
    if raw is not None and not isinstance(raw, dict):
        raise InvalidArgument("commit: the body must be a JSON object (a container Config)")
    config = parse_container_config(raw, "Config") if raw else None
    pause = q.get("pause")
    svc = services(request)
    async with _view(request, name, pause=pause is None or query_bool(pause)) as view:
        base = getattr(view, "config", None)
        container_config = parse_container_config(base, "Config") if isinstance(base, dict) else None
        image_id = await svc.call(
            _commit, svc.images, image_id=view.image_id, container_upper=view.upper,
            config=config, container_config=container_config, changes=q.getall("changes", []),
            comment=q.get("comment", ""), author=q.get("author", ""), repo_tag=repo_tag)
    _commit_event(svc, view.id, image_id, q.get("comment", ""), repo_tag)
    return json_response({"Id": image_id}, status=201)


def _commit_event(svc: Any, cid: str, image_id: str, comment: str, repo_tag: str | None) -> None:
    """dockerd's container ``commit`` event (attributes comment, imageID, imageRef)."""
    from dockyard.image.service import familiar
    from dockyard.oci.reference import parse_normalized

    containers = getattr(svc, "containers", None)
    publish, get = getattr(containers, "publish", None), getattr(containers, "get", None)
    if publish is None or get is None:
        return
    ref = familiar(parse_normalized(repo_tag).string()) if repo_tag else ""
    try:
        publish(get(cid), "commit", comment=comment, imageID=image_id, imageRef=ref)
    except NotFound:  # removed meanwhile: nothing to report on
        pass


def register(routes: Routes) -> None:
    routes.add("GET", "/containers/{name}/archive", get_archive)  # HEAD too
    routes.add("PUT", "/containers/{name}/archive", put_archive)
    routes.add("GET", "/containers/{name}/export", export)
    routes.add("GET", "/containers/{name}/changes", changes)
    routes.add("POST", "/commit", commit_container)
