"""Volume routes, as Docker's: list, create, inspect, remove, prune."""

from __future__ import annotations


from aiohttp import web

from dockyard.api.app import api_version, services
from dockyard.api.body import query_bool, read_object, string_map
from dockyard.api.errors import json_response
from dockyard.api.images import parse_filters
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.api.app import Routes
    from dockyard.engine.volumes import Volume, VolumeUsage

#: From API 1.42 (Docker 23) ``volume prune`` removes only anonymous volumes unless ``all=true``.
_PRUNE_ANONYMOUS_ONLY_FROM = (1, 42)


def volume_json(v: Volume, usage: VolumeUsage | None = None) -> dict:
    """Docker's ``Volume`` object. Options are ``null`` for a volume made without any (as for the
    anonymous ones Docker makes for containers)."""
    out: dict = {"CreatedAt": v.created_at, "Driver": v.driver, "Labels": dict(v.labels),
                 "Mountpoint": v.mountpoint, "Name": v.name,
                 "Options": dict(v.options) if v.options or not v.anonymous else None,
                 "Scope": v.scope}
    if usage is not None:
        out["UsageData"] = {"RefCount": usage.ref_count, "Size": usage.size}
    return out


async def list_volumes(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    svc = services(request)
    rows = await svc.call(svc.volumes.list, filters)
    return json_response({"Volumes": [volume_json(v) for v in rows], "Warnings": []})


async def create(request: web.Request) -> web.Response:
    body = await read_object(request)
    name = body.get("Name") or ""
    driver = body.get("Driver") or "local"
    if not isinstance(name, str) or not isinstance(driver, str):
        raise InvalidArgument("invalid Name or Driver: want strings")
    svc = services(request)
    v = await svc.call(svc.volumes.create, name, driver, string_map(body, "Labels"),
                       string_map(body, "DriverOpts"))
    return json_response(volume_json(v), status=201)


async def inspect(request: web.Request) -> web.Response:
    svc = services(request)
    return json_response(volume_json(await svc.call(svc.volumes.get, request.match_info["name"])))


async def remove(request: web.Request) -> web.Response:
    svc = services(request)
    await svc.call(svc.volumes.remove, request.match_info["name"],
                   force=query_bool(request.query.get("force")))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    major, _, minor = api_version(request).partition(".")
    if (int(major), int(minor)) < _PRUNE_ANONYMOUS_ONLY_FROM and "all" not in filters:
        filters["all"] = ["true"]  # older clients expect every unused volume to go
    svc = services(request)
    deleted, reclaimed = await svc.call(svc.volumes.prune, filters)
    return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})


def register(routes: Routes) -> None:
    routes.add("GET", "/volumes", list_volumes)
    routes.add("POST", "/volumes/create", create)
    routes.add("POST", "/volumes/prune", prune)
    routes.add("GET", "/volumes/{name}", inspect)
    routes.add("DELETE", "/volumes/{name}", remove)
