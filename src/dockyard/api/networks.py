"""Network routes, as Docker's: list, inspect, create, remove, prune, connect, disconnect.

The records live in ``NetworkService`` (store thread). What the kernel must do for a running
container (a veth into the bridge on connect, out on disconnect) and for a removed network (its
bridge) is the engine's: the handlers call ``services.containers.network_connected``,
``network_disconnected`` and ``network_removed`` when the engine has them.
"""

from __future__ import annotations


from aiohttp import web

from dockyard.api.app import services
from dockyard.api.body import read_object, string_map
from dockyard.api.errors import json_response
from dockyard.api.images import parse_filters
from dockyard.errors import Forbidden, InvalidArgument, NotFound, NotImplemented

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.api.app import Routes
    from dockyard.daemon.wiring import Services
    from dockyard.network.model import Network


def _string(body: dict, key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid {key}: want a string")
    return value


def _ipam(body: dict) -> tuple[str, str, str]:
    """``IPAM`` of a create body → (subnet, gateway, ip_range) of its one IPv4 config."""
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise InvalidArgument("invalid IPAM: want an object")
    driver = _string(ipam, "Driver")
    if driver not in ("", "default"):
        raise NotFound(f'IPAM driver "{driver}" not found: only "default" is available')
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise InvalidArgument("invalid IPAM.Config: want a list of objects")
    if len(configs) > 1:
        raise NotImplemented("create network: more than one IPAM config (subnet) is not "
                             "supported")
    if not configs:
        return "", "", ""
    c = configs[0]
    if c.get("AuxiliaryAddresses"):
        raise NotImplemented("create network: auxiliary addresses are not supported")
    return _string(c, "Subnet"), _string(c, "Gateway"), _string(c, "IPRange")


async def list_networks(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    svc = services(request)
    nets = await svc.call(svc.networks.list, filters)
    return json_response([svc.networks.summary_json(n) for n in nets])


async def inspect(request: web.Request) -> web.Response:
    svc = services(request)

    def doc() -> dict[str, Any]:
        return svc.networks.to_docker_json(svc.networks.get(request.match_info["id"]))

    return json_response(await svc.call(doc))


async def create(request: web.Request) -> web.Response:
    body = await read_object(request)
    name = _string(body, "Name")
    if not name:
        raise InvalidArgument("create network: the name must not be empty")
    if body.get("EnableIPv6"):
        raise NotImplemented("create network: IPv6 networks are not supported")
    if body.get("ConfigOnly") or (body.get("ConfigFrom") or {}).get("Network"):
        raise NotImplemented("create network: config-only networks are not supported")
    if _string(body, "Scope") not in ("", "local"):
        raise InvalidArgument(f"create network: scope {body['Scope']} is not supported (local "
                              "only)")
    subnet, gateway, ip_range = _ipam(body)
    svc = services(request)
    net = await svc.call(svc.networks.create, name, _string(body, "Driver") or "bridge", subnet,
                         gateway, ip_range, bool(body.get("Internal")),
                         string_map(body, "Labels"), string_map(body, "Options"),
                         body.get("CheckDuplicate", True) is not False)
    _event(svc, "create", net)
    return json_response({"Id": net.id, "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.Response:
    svc = services(request)
    net = await svc.call(svc.networks.remove, request.match_info["id"])
    await _hook(svc, "network_removed", net)
    _event(svc, "destroy", net)
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    svc = services(request)
    removed = await svc.call(svc.networks.prune, filters)
    for net in removed:
        await _hook(svc, "network_removed", net)
        _event(svc, "destroy", net)
    return json_response({"NetworksDeleted": [n.name for n in removed]})


async def _container(svc: Services, ref: str) -> tuple[Any, str, str]:
    """(the engine's container or None, id, name) of ``ref``."""
    if not ref:
        raise InvalidArgument("no container given")
    engine = svc.containers
    if engine is not None and hasattr(engine, "get"):
        c = engine.get(ref)
        return c, c.id, c.name
    cid, name = await svc.call(svc.networks.container, ref)
    return None, cid, name


async def connect(request: web.Request) -> web.Response:
    body = await read_object(request)
    svc = services(request)
    net = await svc.call(svc.networks.get, request.match_info["id"])
    if net.driver in ("host", "null"):
        raise Forbidden(f"container cannot be disconnected from {net.name} network or connected "
                        f"to {net.name} network")
    container, cid, name = await _container(svc, _string(body, "Container"))
    cfg = body.get("EndpointConfig") or {}
    if not isinstance(cfg, dict):
        raise InvalidArgument("invalid EndpointConfig: want an object")
    ipam_cfg = cfg.get("IPAMConfig") or {}
    if not isinstance(ipam_cfg, dict):
        raise InvalidArgument("invalid EndpointConfig.IPAMConfig: want an object")
    if _string(ipam_cfg, "IPv6Address"):
        raise NotImplemented("connect: IPv6 addresses are not supported")
    aliases = cfg.get("Aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InvalidArgument("invalid EndpointConfig.Aliases: want a list of strings")
    ep = await svc.call(svc.networks.connect, net, cid, ip=_string(ipam_cfg, "IPv4Address"),
                        aliases=aliases, mac=_string(cfg, "MacAddress"), container_name=name)
    try:
        await _hook(svc, "network_connected", container, net, ep)
    except BaseException:
        await svc.call(svc.networks.disconnect, net, cid, True)
        raise
    _event(svc, "connect", net, container=cid)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    body = await read_object(request)
    svc = services(request)
    net = await svc.call(svc.networks.get, request.match_info["id"])
    if net.driver == "host":
        raise Forbidden("container cannot be disconnected from host network or connected to "
                        "host network")
    force = bool(body.get("Force"))
    try:
        container, cid, _ = await _container(svc, _string(body, "Container"))
    except NotFound:
        if not force:
            raise
        return web.Response(status=200)
    ep = await svc.call(svc.networks.disconnect, net, cid, force)
    if ep is not None:
        await _hook(svc, "network_disconnected", container, net, ep)
        _event(svc, "disconnect", net, container=cid)
    return web.Response(status=200)


async def _hook(svc: Services, name: str, *args: Any) -> None:
    """The engine's kernel side for the change, when the engine has it."""
    fn = getattr(svc.containers, name, None) if svc.containers is not None else None
    if fn is not None:
        await fn(*args)


def _event(svc: Services, action: str, net: Network, **extra: str) -> None:
    svc.events.publish("network", action, net.id, {"name": net.name, "type": net.driver,
                                                   **extra})


def register(routes: Routes) -> None:
    routes.add("GET", "/networks", list_networks)
    routes.add("POST", "/networks/create", create)
    routes.add("POST", "/networks/prune", prune)
    routes.add("GET", "/networks/{id}", inspect)
    routes.add("DELETE", "/networks/{id}", remove)
    routes.add("POST", "/networks/{id}/connect", connect)
    routes.add("POST", "/networks/{id}/disconnect", disconnect)
