"""Image routes: list, inspect, history, tag, remove, load, import (create), save (get), prune,
and dockyard's extensions under ``/dockyard/images/``: bootstrap, diff.

Why the store work runs through ``Services.call``: every service call blocks (SQLite, disk, unpack),
so it runs on the store's one thread; the loop only moves bytes. Load and import spool the request
body to an anonymous file under the store's ``tmp/`` first (the service reads its input in one go
on its thread; a daemon crash leaves no file); save streams the archive out through a bounded
queue as it is written (chunked, no temp file).
"""

from __future__ import annotations

import asyncio
import json
import tempfile

from aiohttp import web

from dockyard.api import events as image_events
from dockyard.api.app import services
from dockyard.api.body import query_bool
from dockyard.api.errors import json_response
from dockyard import errors
from dockyard.errors import InvalidArgument
from dockyard.image.inspect import created_timestamp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from dockyard.api.app import Routes
    from dockyard.daemon.wiring import Services
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
    rows = await svc.call(svc.images.list, all=query_bool(request.query.get("all")),
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
    await image_events.tagged(request, request.match_info["name"],
                              f"{repo}:{tag_}" if tag_ else repo)
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    svc = services(request)
    image_id = await image_events.image_id(request, request.match_info["name"])
    actions = await svc.call(svc.images.remove, request.match_info["name"],
                             force=query_bool(request.query.get("force")),
                             no_prune=query_bool(request.query.get("noprune")))
    image_events.removed(request, image_id, actions)
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
    image_events.pruned(request, result.actions, result.reclaimed)
    deleted = [{kind: what} for kind, what in result.actions]
    return json_response({"ImagesDeleted": deleted or None,
                              "SpaceReclaimed": result.reclaimed})


# ---------------------------------------------------------------------------- load

async def _spool(request: web.Request, svc: Services) -> BinaryIO:
    """The request body in an anonymous file under the store's ``tmp/`` (``O_TMPFILE``: it has no
    name, so a crash of the daemon leaves nothing behind), rewound; the caller closes it."""
    loop = asyncio.get_running_loop()
    f = tempfile.TemporaryFile(dir=svc.images.store.tmp)
    try:
        while chunk := await request.content.read(_CHUNK):
            await loop.run_in_executor(None, f.write, chunk)
        f.seek(0)
    except BaseException:
        f.close()
        raise
    return f  # type: ignore[return-value]


def _json_lines(docs: list[dict]) -> web.Response:
    body = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs)
    return web.Response(body=body.encode(), headers={"Content-Type": "application/json"})


async def load(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    body = await _spool(request, svc)
    try:
        lines = await svc.call(svc.images.load, body, body.close)
    finally:
        body.close()
    await image_events.loaded(request, lines)
    return _json_lines([{"stream": line + "\n"} for line in lines])


# ---------------------------------------------------------------------------- create (import)

def _import_file(svc: ImageService, body: BinaryIO, **kwargs: object) -> str:
    from dockyard.image.importer import import_image

    return str(import_image(svc, body, **kwargs).id)  # type: ignore[arg-type]


async def create(request: web.Request) -> web.StreamResponse:
    """``POST /images/create``: import (``fromSrc=-``, the tar is the body). Pulling
    (``fromImage``) needs a registry client dockyard does not have: 501."""
    from dockyard.image.importer import ContainerConfig, apply_changes
    from dockyard.oci.platform import parse_platform
    from dockyard.oci.reference import parse_normalized

    q = request.query
    if q.get("fromImage"):
        raise errors.NotImplemented(f"pull {q['fromImage']}: dockyard has no registry client; "
                             "load the image from a tar (docker save | dockyard load)")
    source = q.get("fromSrc", "")
    if source != "-":
        raise InvalidArgument(f"import from {source or 'nothing'}: only fromSrc=- (the tar as the "
                              "request body) is supported; download a URL and import the file")
    repo, tag_ = q.get("repo", ""), q.get("tag", "")
    ref = (f"{repo}:{tag_}" if tag_ else repo) or None
    changes = q.getall("changes", [])
    platform = q.get("platform") or None
    # checked before a byte of the body is read: a bad flag never spools a layer
    if ref:
        parse_normalized(ref)
    apply_changes(ContainerConfig(), changes)
    if platform:
        parse_platform(platform)
    svc = services(request)
    body = await _spool(request, svc)
    try:
        image_id = await svc.call(_import_file, svc.images, body, ref=ref, changes=changes,
                                  message=q.get("message", ""), platform=platform)
    finally:
        body.close()
    image_events.imported(request, image_id, ref)
    return _json_lines([{"status": image_id}])


# ---------------------------------------------------------------------------- dockyard extensions

def _bootstrap(svc: ImageService, kind: str, tag: str | None, busybox: str, mirror: str | None
               ) -> str:
    from dockyard.image import bootstrap

    name, _, suite = kind.partition(":")
    if name == "busybox" and not suite:
        return str(bootstrap.bootstrap_busybox(svc, tag or "busybox:latest", busybox).id)
    if name == "debian":
        return str(bootstrap.bootstrap_debian(svc, suite or "bookworm", tag,
                                              mirror or bootstrap.DEBIAN_MIRROR).id)
    raise InvalidArgument(f"image bootstrap: unknown base image {kind!r}: use busybox or "
                          "debian[:SUITE]")


async def bootstrap_image(request: web.Request) -> web.Response:
    """``POST /dockyard/images/bootstrap?name=busybox|debian[:SUITE]&tag=&busybox=&mirror=``."""
    q = request.query
    svc = services(request)
    image_id = await svc.call(_bootstrap, svc.images, q.get("name", ""), q.get("tag") or None,
                              q.get("busybox") or "/bin/busybox", q.get("mirror") or None)
    return json_response({"Id": image_id}, status=201)


def _diff(svc: ImageService, a: str, b: str, thorough: bool) -> list[dict]:
    from dockyard.image import diff

    return json.loads(diff.render_json(diff.image_diff(svc, a, b, thorough=thorough)))


async def diff_images(request: web.Request) -> web.Response:
    """``GET /dockyard/images/diff?a=IMAGE&b=IMAGE&thorough=1``: diff.render_json's array."""
    q = request.query
    if not q.get("a") or not q.get("b"):
        raise InvalidArgument("image diff: give two images (a=, b=)")
    svc = services(request)
    return json_response(await svc.call(_diff, svc.images, q["a"], q["b"], query_bool(q.get("thorough"))))


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


def _save_to(svc: ImageService, names: list[str], out: _QueueWriter, fmt: str) -> None:
    svc.save(names, out, fmt=fmt)  # type: ignore[arg-type]
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
    fmt = request.query.get("format", "docker")  # dockyard's extension: docker or oci
    if fmt not in ("docker", "oci"):
        raise InvalidArgument(f"save: unknown format {fmt!r} (docker or oci)")
    svc = services(request)
    chosen = await svc.call(svc.images.images_for_save, names)  # NotFound before the stream
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
    writer = _QueueWriter(loop, queue)
    job = asyncio.ensure_future(svc.call(_save_to, svc.images, names, writer, fmt))
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
    image_events.saved(request, chosen)
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
    routes.add("POST", "/images/create", create)
    routes.add("POST", "/dockyard/images/bootstrap", bootstrap_image)
    routes.add("GET", "/dockyard/images/diff", diff_images)
    routes.add("GET", "/images/{name:.+}/json", inspect_image)
    routes.add("GET", "/images/{name:.+}/history", history)
    routes.add("GET", "/images/{name:.+}/get", get_one)
    routes.add("POST", "/images/{name:.+}/tag", tag)
    routes.add("DELETE", "/images/{name:.+}", remove)
