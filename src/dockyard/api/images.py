"""Image routes: list, inspect, history, tag, remove, load, save (get), prune.

Why the store work runs through ``Services.call``: every service call blocks (SQLite, disk, unpack),
so it runs on the store's one thread; the loop only moves bytes. Load spools the request body to a
file under the store's ``tmp/`` first (the service reads its input in one go on its thread); save
streams the archive out through a bounded queue as it is written (chunked, no temp file).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile

from aiohttp import web

from dockyard.api.app import services
from dockyard.api.errors import json_response
from dockyard.errors import InvalidArgument
from dockyard.image.inspect import created_timestamp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.api.app import Routes
    from dockyard.image.service import HistoryEntry, ImageService, ImageSummary

_CHUNK = 1 << 20


def parse_filters(text: str | None) -> dict[str, list[str]]:
    """Docker's ``filters`` query: ``{"k":{"v":true}}`` (current) or ``{"k":["v"]}`` (old)."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"invalid filters: {e}") from None
    if not isinstance(raw, dict):
        raise InvalidArgument("invalid filters: not a JSON object")
    out: dict[str, list[str]] = {}
    for key, val in raw.items():
        if isinstance(val, dict):
            out[key] = [k for k, on in val.items() if on]
        elif isinstance(val, list) and all(isinstance(v, str) for v in val):
            out[key] = list(val)
        else:
            raise InvalidArgument(f"invalid filter {key!r}")
    return out


def _bool(text: str | None) -> bool:
    """Docker's query booleans: absent, "", "0", "false" and "no" are false."""
    return text is not None and text.strip().lower() not in ("", "0", "false", "no")


def _dangling(values: list[str]) -> bool | None:
    if not values:
        return None
    if len(set(values)) > 1:
        raise InvalidArgument("invalid filter 'dangling': give one value")
    v = values[0].lower()
    if v not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"invalid filter 'dangling={values[0]}'")
    return v in ("true", "1")


def summary_json(s: ImageSummary) -> dict:
    return {"Containers": s.containers, "Created": int(created_timestamp(s.created)),
            "Id": str(s.id), "Labels": None, "ParentId": "",
            "RepoDigests": list(s.repo_digests), "RepoTags": list(s.repo_tags),
            "SharedSize": -1, "Size": s.size, "VirtualSize": s.size}


def _history_json(rows: list[HistoryEntry], tags: list[str]) -> list[dict]:
    return [{"Comment": r.comment, "Created": int(created_timestamp(r.created)),
             "CreatedBy": r.created_by, "Id": r.id, "Size": r.size,
             "Tags": tags if i == 0 and tags else None} for i, r in enumerate(rows)]


async def list_images(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    unknown = sorted(set(filters) - {"dangling", "reference"})
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    refs = filters.get("reference", [])
    if len(refs) > 1:
        raise InvalidArgument("only one reference filter is supported")
    svc = services(request)
    rows = await svc.call(svc.images.list, all=_bool(request.query.get("all")),
                          dangling=_dangling(filters.get("dangling", [])),
                          reference=refs[0] if refs else None)
    return json_response([summary_json(s) for s in rows])


async def inspect_image(request: web.Request) -> web.Response:
    svc = services(request)
    return json_response(await svc.call(svc.images.inspect, request.match_info["name"]))


def _history(svc: ImageService, name: str) -> list[dict]:
    image = svc.resolve(name)
    return _history_json(svc.history(str(image.id)), svc.tags_of(image))


async def history(request: web.Request) -> web.Response:
    svc = services(request)
    return json_response(await svc.call(_history, svc.images, request.match_info["name"]))


async def tag(request: web.Request) -> web.Response:
    repo = request.query.get("repo", "")
    tag_ = request.query.get("tag", "")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    svc = services(request)
    await svc.call(svc.images.tag, request.match_info["name"], f"{repo}:{tag_}" if tag_ else repo)
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    svc = services(request)
    actions = await svc.call(svc.images.remove, request.match_info["name"],
                             force=_bool(request.query.get("force")),
                             no_prune=_bool(request.query.get("noprune")))
    return json_response([{kind: what} for kind, what in actions])


async def prune(request: web.Request) -> web.Response:
    from dockyard.image.maintenance import prune as prune_images

    filters = parse_filters(request.query.get("filters"))
    unknown = sorted(set(filters) - {"dangling"})
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}' (only dangling is supported)")
    dangling = _dangling(filters.get("dangling", []))
    svc = services(request)
    result = await svc.call(prune_images, svc.images, all=dangling is False)
    deleted = [{kind: what} for kind, what in result.actions]
    return json_response({"ImagesDeleted": deleted or None,
                              "SpaceReclaimed": result.reclaimed})


# ---------------------------------------------------------------------------- load

def _load_file(svc: ImageService, path: str) -> list[str]:
    with open(path, "rb") as f:
        return svc.load(f)


async def load(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    loop = asyncio.get_running_loop()
    fd, path = tempfile.mkstemp(prefix="load-", suffix=".tar", dir=svc.images.store.tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            while chunk := await request.content.read(_CHUNK):
                await loop.run_in_executor(None, f.write, chunk)
        lines = await svc.call(_load_file, svc.images, path)
    finally:
        os.unlink(path)
    body = "".join(json.dumps({"stream": line + "\n"}, separators=(",", ":")) + "\n"
                   for line in lines)
    return web.Response(body=body.encode(), headers={"Content-Type": "application/json"})


# ---------------------------------------------------------------------------- save

class _QueueWriter:
    """A file the store's thread writes; the loop drains it to the client. ``None`` ends it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None]) -> None:
        self._loop, self._queue = loop, queue
        self._buf = bytearray()
        self.cancelled = False
        self._told = False

    def write(self, data: bytes) -> int:
        if self.cancelled:  # stop the save once; later writes (tarfile's finalizers) are dropped
            if not self._told:
                self._told = True
                raise BrokenPipeError("save: the client went away")
            return len(data)
        self._buf += data
        if len(self._buf) >= _CHUNK:
            self._put(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        if self._buf and not self.cancelled:
            self._put(bytes(self._buf))
        self._buf.clear()

    def _put(self, item: bytes | None) -> None:
        asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop).result()


def _save_to(svc: ImageService, names: list[str], out: _QueueWriter) -> None:
    svc.save(names, out)  # type: ignore[arg-type]
    out.finish()


async def _abandon(writer: _QueueWriter, queue: asyncio.Queue[bytes | None],
                   job: asyncio.Future[None]) -> None:
    """Make the store thread's save stop: flag the writer, drain what it is blocked putting."""
    writer.cancelled = True
    while not job.done():
        while not queue.empty():
            queue.get_nowait()
        await asyncio.sleep(0.01)
    job.exception()  # retrieved: the client is gone, there is no one to tell


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    if not names:
        raise InvalidArgument("save: no image named")
    svc = services(request)
    await svc.call(svc.images.images_for_save, names)  # NotFound before the stream starts
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
    writer = _QueueWriter(loop, queue)
    job = asyncio.ensure_future(svc.call(_save_to, svc.images, names, writer))
    job.add_done_callback(lambda _: loop.create_task(queue.put(None)))
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        while (chunk := await queue.get()) is not None:
            await resp.write(chunk)
    except ConnectionError:  # the client went away: stop the save, nobody to answer
        await _abandon(writer, queue, job)
        return resp
    except BaseException:
        await _abandon(writer, queue, job)
        raise
    if job.exception() is not None:  # too late for a status: cut the stream so the client sees it
        exc = job.exception()
        raise ConnectionResetError(f"save failed: {exc}")
    await resp.write_eof()
    return resp


async def get_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def get_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


def register(routes: Routes) -> None:
    # fixed paths first: /images/{name}/... must not take them
    routes.add("GET", "/images/json", list_images)
    routes.add("POST", "/images/load", load)
    routes.add("GET", "/images/get", get_many)
    routes.add("POST", "/images/prune", prune)
    routes.add("GET", "/images/{name:.+}/json", inspect_image)
    routes.add("GET", "/images/{name:.+}/history", history)
    routes.add("GET", "/images/{name:.+}/get", get_one)
    routes.add("POST", "/images/{name:.+}/tag", tag)
    routes.add("DELETE", "/images/{name:.+}", remove)
