"""``network create|ls|inspect|rm|prune|connect|disconnect`` (and the ``list``/``remove``
aliases): docker's flags, output and exit codes over ``/networks``."""

from __future__ import annotations

from dockyard.cli.containers_util import client, command_error, each, filters, parse, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from dockyard.cli.common import Context

NETWORK_HEADERS = {"ID": "NETWORK ID"}
NETWORK_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


def _pairs(flag: str, short: str, verb: str, values: Sequence[str]) -> dict[str, str]:
    from dockyard.cli.common import UsageError

    out = {}
    for item in values:
        k, eq, v = item.partition("=")
        if not k or (flag == "opt" and not eq):
            name = f"-{short}, --{flag}" if short else f"--{flag}"
            raise UsageError(f'invalid argument "{item}" for "{name}" flag: invalid key value '
                             f"pair format: {item}\nSee 'dockyard {verb} --help'.")
        out[k] = v
    return out


def create_body(v: dict[str, Any], name: str, verb: str = "network create") -> dict[str, Any]:
    """The body the docker CLI sends for ``network create`` (one IPv4 IPAM config at most)."""
    from dockyard.cli.common import UsageError

    subnets, gateways, ranges = v.get("subnet", []), v.get("gateway", []), v.get("ip-range", [])
    if len(subnets) > 1 or len(gateways) > 1 or len(ranges) > 1:
        raise UsageError("dockyard networks take one --subnet, --gateway and --ip-range at most")
    if (gateways or ranges) and not subnets:
        which = "gateway" if gateways else "range"
        value = gateways[0] if gateways else ranges[0]
        raise UsageError(f"no matching subnet for {which} {value}")
    config = []
    if subnets:
        entry = {"Subnet": subnets[0]}
        if ranges:
            entry["IPRange"] = ranges[0]
        if gateways:
            entry["Gateway"] = gateways[0]
        config.append(entry)
    return {"Name": name, "CheckDuplicate": True, "Driver": v.get("driver") or "bridge",
            "Scope": "", "EnableIPv6": bool(v.get("ipv6")),
            "IPAM": {"Driver": v.get("ipam-driver") or "default", "Config": config,
                     "Options": _pairs("ipam-opt", "", verb, v.get("ipam-opt", []))},
            "Internal": bool(v.get("internal")), "Attachable": bool(v.get("attachable")),
            "Ingress": False, "ConfigOnly": False,
            "Options": _pairs("opt", "o", verb, v.get("opt", [])),
            "Labels": _pairs("label", "", verb, v.get("label", []))}


def cmd_network_create(ctx: Context, argv: Sequence[str], verb: str = "network create") -> int:
    from dockyard.cli.client import ClientError

    flags = {"driver": ("d", "str", 'Driver to manage the Network (default "bridge")'),
             "subnet": ("", "list", "Subnet in CIDR format that represents a network segment"),
             "gateway": ("", "list", "IPv4 Gateway for the master subnet"),
             "ip-range": ("", "list", "Allocate container ip from a sub-range"),
             "internal": ("", "bool", "Restrict external access to the network"),
             "attachable": ("", "bool", "Enable manual container attachment"),
             "ipv6": ("", "bool", "Enable IPv6 networking (not supported)"),
             "ipam-driver": ("", "str", 'IP Address Management Driver (default "default")'),
             "ipam-opt": ("", "list", "Set IPAM driver specific options"),
             "label": ("", "list", "Set metadata on a network"),
             "opt": ("o", "list", "Set driver specific options")}
    v, args = parse(ctx, verb, argv, flags, "network create [OPTIONS] NETWORK",
                    "Create a network", exactly=1)
    body = create_body(v, args[0], verb)
    try:
        doc = client(ctx).post("/networks/create", body=body) or {}
    except ClientError as e:
        raise command_error(e) from None
    if doc.get("Warning"):
        ctx.err.write(f"{doc['Warning']}\n")
    ctx.out.write(f"{doc.get('Id', '')}\n")
    return 0


def _created_at(created: str) -> str:
    """Docker's CreatedAt column: ``2006-01-02 15:04:05.999999999 +0000 UTC``."""
    if not created.endswith("Z") or "T" not in created:
        return created
    return created[:-1].replace("T", " ") + " +0000 UTC"


class _NetworkRow:
    __slots__ = ("_n", "_trunc")

    def __init__(self, n: dict[str, Any], trunc: bool) -> None:
        self._n = n
        self._trunc = trunc

    def __getattr__(self, name: str) -> Any:
        n = object.__getattribute__(self, "_n")
        if name == "ID":
            ident = n.get("Id", "")
            return ident[:12] if object.__getattribute__(self, "_trunc") else ident
        if name == "Labels":
            return ",".join(f"{k}={x}" for k, x in sorted((n.get("Labels") or {}).items()))
        if name == "IPv6":
            return str(bool(n.get("EnableIPv6"))).lower()
        if name == "IPv4":
            return "true"
        if name == "Internal":
            return str(bool(n.get("Internal"))).lower()
        if name == "CreatedAt":
            return _created_at(n.get("Created", ""))
        if name in ("Name", "Driver", "Scope"):
            return n.get(name, "")
        raise AttributeError(name)

    def Label(self, key: str) -> str:  # noqa: N802 - docker's template method
        return (self._n.get("Labels") or {}).get(key, "")


def render_networks(nets: Sequence[dict[str, Any]], quiet: bool, fmt: str, trunc: bool) -> str:
    rows = [_NetworkRow(n, trunc) for n in nets]
    if quiet and not fmt:
        return "".join(r.ID + "\n" for r in rows)
    if fmt.replace(" ", "") in ("{{json.}}", "json"):
        import json

        keys = ("CreatedAt", "Driver", "ID", "IPv4", "IPv6", "Internal", "Labels", "Name", "Scope")
        return "".join(json.dumps({k: getattr(r, k) for k in keys}, separators=(",", ":")) + "\n"
                       for r in rows)
    from dockyard.cli.format import Template

    return Template(fmt or NETWORK_FORMAT, NETWORK_HEADERS).render_all(rows)


def cmd_network_ls(ctx: Context, argv: Sequence[str], verb: str = "network ls") -> int:
    from dockyard.cli.client import ClientError

    flags = {"filter": ("f", "list", "Provide filter values (e.g. \"driver=bridge\")"),
             "format": ("", "str", "Format output using a custom template"),
             "no-trunc": ("", "bool", "Do not truncate the output"),
             "quiet": ("q", "bool", "Only display network IDs")}
    v, _ = parse(ctx, verb, argv, flags, "network ls [OPTIONS]", "List networks", at_most=0)
    query = {"filters": filters(v["filter"])} if v.get("filter") else None
    try:
        nets = client(ctx).get("/networks", query) or []
    except ClientError as e:
        raise command_error(e) from None
    nets = sorted(nets, key=lambda n: n.get("Name", ""))
    ctx.out.write(render_networks(nets, bool(v.get("quiet")), v.get("format", ""),
                                  not v.get("no-trunc")))
    return 0


def cmd_network_inspect(ctx: Context, argv: Sequence[str], verb: str = "network inspect") -> int:
    from dockyard.cli.containers_list import inspect_objects

    flags = {"format": ("f", "str", "Format output using a custom template"),
             "verbose": ("v", "bool", "Verbose output for diagnostics")}
    v, names = parse(ctx, verb, argv, flags, "network inspect [OPTIONS] NETWORK [NETWORK...]",
                     "Display detailed information on one or more networks", at_least=1)
    return inspect_objects(ctx, names, v.get("format", ""), ("/networks/{}",),
                           "Error response from daemon: {message}")


def cmd_network_rm(ctx: Context, argv: Sequence[str], verb: str = "network rm") -> int:
    from dockyard.cli.client import APIError

    flags = {"force": ("f", "bool", "Do not error if the network does not exist")}
    v, names = parse(ctx, verb, argv, flags, "network rm NETWORK [NETWORK...]",
                     "Remove one or more networks", at_least=1)
    api = client(ctx)

    def remove(name: str) -> None:
        try:
            api.delete(f"/networks/{quote(name)}")
        except APIError as e:
            if not (v.get("force") and e.status == 404):
                raise

    return each(ctx, names, remove, parallel=False)


def cmd_network_prune(ctx: Context, argv: Sequence[str], verb: str = "network prune") -> int:
    from dockyard.cli.client import ClientError
    from dockyard.cli.common import confirm

    flags = {"filter": ("", "list", "Provide filter values (e.g. \"until=<timestamp>\")"),
             "force": ("f", "bool", "Do not prompt for confirmation")}
    v, _ = parse(ctx, verb, argv, flags, "network prune [OPTIONS]",
                 "Remove all unused networks", at_most=0)
    if not v.get("force") and not confirm(
            ctx, "WARNING! This will remove all custom networks not used by at least one "
                 "container.\nAre you sure you want to continue?"):
        return 0
    query = {"filters": filters(v["filter"])} if v.get("filter") else None
    try:
        doc = client(ctx).post("/networks/prune", query) or {}
    except ClientError as e:
        raise command_error(e) from None
    deleted = doc.get("NetworksDeleted") or []
    if deleted:
        ctx.out.write("Deleted Networks:\n" + "".join(d + "\n" for d in deleted) + "\n")
    return 0


def cmd_network_connect(ctx: Context, argv: Sequence[str], verb: str = "network connect") -> int:
    from dockyard.cli.client import ClientError

    flags = {"alias": ("", "list", "Add network-scoped alias for the container"),
             "ip": ("", "str", "IPv4 address (e.g., \"172.30.100.104\")"),
             "ip6": ("", "str", "IPv6 address (not supported)"),
             "link": ("", "list", "Add link to another container"),
             "link-local-ip": ("", "list", "Add a link-local address for the container"),
             "driver-opt": ("", "list", "driver options for the network")}
    v, args = parse(ctx, verb, argv, flags, "network connect [OPTIONS] NETWORK CONTAINER",
                    "Connect a container to a network", exactly=2)
    network, container = args
    ipam = {}
    if v.get("ip"):
        ipam["IPv4Address"] = v["ip"]
    if v.get("ip6"):
        ipam["IPv6Address"] = v["ip6"]
    if v.get("link-local-ip"):
        ipam["LinkLocalIPs"] = v["link-local-ip"]
    cfg: dict[str, Any] = {"IPAMConfig": ipam or None, "Links": v.get("link") or None,
                           "Aliases": v.get("alias") or None}
    if v.get("driver-opt"):
        cfg["DriverOpts"] = _pairs("driver-opt", "", verb, v["driver-opt"])
    try:
        client(ctx).post(f"/networks/{quote(network)}/connect",
                         body={"Container": container, "EndpointConfig": cfg})
    except ClientError as e:
        raise command_error(e) from None
    return 0


def cmd_network_disconnect(ctx: Context, argv: Sequence[str],
                           verb: str = "network disconnect") -> int:
    from dockyard.cli.client import ClientError

    flags = {"force": ("f", "bool", "Force the container to disconnect from a network")}
    v, args = parse(ctx, verb, argv, flags, "network disconnect [OPTIONS] NETWORK CONTAINER",
                    "Disconnect a container from a network", exactly=2)
    network, container = args
    try:
        client(ctx).post(f"/networks/{quote(network)}/disconnect",
                         body={"Container": container, "Force": bool(v.get("force"))})
    except ClientError as e:
        raise command_error(e) from None
    return 0
