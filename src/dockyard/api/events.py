"""``GET /events`` (docker events), and the image events the image routes publish.

The stream is dockerd's: headers flushed at once, one JSON object per line flushed per event,
buffered events first when ``since``/``until`` is given, the end at ``until`` (at once when it is
past) or when the client goes away. Between events the handler looks at the connection every
``_POLL`` seconds, so a gone client does not hold a subscription until the next event.

Image events as dockerd 20.10+ logs them (checked against it): ``tag`` (name = the new tag),
``untag``/``delete``/``load``/``save``/``import`` (name = the image id), and ``prune`` (no
actor, ``reclaimed`` bytes).
"""

from __future__ import annotations

import json

from aiohttp import web

from dockyard.api.app import SERVICES, services
from dockyard.engine.events import EventBus, parse_event_filters, parse_event_time, to_json
from dockyard.errors import DockyardError, InvalidArgument
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from dockyard.api.app import Routes
    from dockyard.image.service import ImageService

_POLL = 1.0


def bus_of(request: web.Request) -> EventBus:
    return services(request).events  # type: ignore[attr-defined, no-any-return]


async def get_events(request: web.Request) -> web.StreamResponse:
    from dockyard.api.images import parse_filters

    q = request.query
    since, until = parse_event_time(q.get("since")), parse_event_time(q.get("until"))
    if since is not None and until is not None and until < since:
        raise InvalidArgument(f"`since` time ({q.get('since')}) cannot be after `until` time "
                              f"({q.get('until')})")
    filters = parse_event_filters(parse_filters(q.get("filters")))
    sub = bus_of(request).subscribe(since_ns=since, until_ns=until, filters=filters)
    try:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        while True:
            ev = await sub.get(_POLL)
            if ev is None:
                transport = request.transport
                if sub.finished or transport is None or transport.is_closing():
                    break
                continue
            await resp.write(json.dumps(to_json(ev), separators=(",", ":")).encode() + b"\n")
        await resp.write_eof()
    except ConnectionError:  # the client went away: nobody to tell
        pass
    finally:
        sub.close()
    return resp


# ---------------------------------------------------------------------------- image events

class ImageActor(Record):
    """An image as events name it: its id, and its labels (dockerd copies them into the
    attributes while the image exists)."""

    id: str
    labels: tuple[tuple[str, str], ...] = ()


def _actor(images: ImageService, name: str) -> ImageActor | None:
    try:
        image = images.resolve(name)
        labels = images.config(image).config.labels
    except DockyardError:
        return None
    return ImageActor(str(image.id), labels)


async def image_id(request: web.Request, name: str) -> ImageActor | None:
    """The image ``name`` resolves to now (None if none): call before a remove to name its
    events."""
    svc = services(request)
    return await svc.call(_actor, svc.images, name)


def publish_image(request: web.Request, action: str, image: ImageActor | str,
                  name: str | None = None) -> None:
    actor = image if isinstance(image, ImageActor) else ImageActor(image)
    attrs = dict(actor.labels)
    attrs["name"] = name or actor.id
    bus_of(request).publish("image", action, actor.id, attrs)


async def tagged(request: web.Request, source: str, target: str) -> None:
    """``tag``: the actor is the image, ``name`` the new tag in docker's short form."""
    from dockyard.oci.reference import parse_normalized

    found = await image_id(request, source)
    if found is not None:
        publish_image(request, "tag", found, parse_normalized(target).familiar_string())


def removed(request: web.Request, image: ImageActor | None, actions: Iterable[tuple[str, str]]
            ) -> None:
    """``untag`` per removed tag (with the image's labels) and ``delete`` for the image (not
    its layers; the image is gone, so no labels)."""
    if image is None:
        return
    for kind, what in actions:
        if kind == "Untagged":
            publish_image(request, "untag", image)
        elif kind == "Deleted" and what == image.id:
            publish_image(request, "delete", what)


def pruned(request: web.Request, actions: Iterable[tuple[str, str]], reclaimed: int) -> None:
    """Per image: ``untag`` for its tags then ``delete``; then one ``prune`` event."""
    pending = 0
    for kind, what in actions:
        if kind == "Untagged":
            pending += 1
        elif kind == "Deleted" and what.startswith("sha256:"):
            for _ in range(pending):
                publish_image(request, "untag", what)
            pending = 0
            publish_image(request, "delete", what)
    bus_of(request).publish("image", "prune", "", {"reclaimed": str(reclaimed)})


def _loaded(images: ImageService, lines: list[str]) -> list[ImageActor]:
    out: list[ImageActor] = []
    for line in lines:
        _, sep, name = line.partition(": ")
        found = _actor(images, name.strip()) if sep else None
        if found is not None and found not in out:
            out.append(found)
    return out


async def loaded(request: web.Request, lines: list[str]) -> None:
    """``load`` per image the archive brought (from the "Loaded image...: X" lines)."""
    svc = services(request)
    for found in await svc.call(_loaded, svc.images, lines):
        publish_image(request, "load", found)


def imported(request: web.Request, image_id_: str, ref: str | None) -> None:
    """``tag`` (when the import named one) then ``import``, in dockerd's order."""
    from dockyard.oci.reference import parse_normalized

    if ref:
        publish_image(request, "tag", image_id_, parse_normalized(ref).familiar_string())
    publish_image(request, "import", image_id_)


def saved(request: web.Request, chosen: Iterable[tuple[object, list[str]]]) -> None:
    """``save`` per image written (``chosen``: ``ImageService.images_for_save``'s answer)."""
    for image, _tags in chosen:
        publish_image(request, "save", str(image.id))  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- wiring

async def _attach(app: web.Application) -> None:
    import asyncio

    bus = getattr(app[SERVICES], "events", None)
    if isinstance(bus, EventBus):
        bus.attach(asyncio.get_running_loop())


async def _close_streams(app: web.Application) -> None:
    """On shutdown, end every /events stream (else the runner waits for them)."""
    bus = getattr(app[SERVICES], "events", None)
    if isinstance(bus, EventBus):
        bus.close_all()


def register(routes: Routes) -> None:
    routes.add("GET", "/events", get_events)
    routes.app.on_startup.append(_attach)
    routes.app.on_shutdown.append(_close_streams)
