"""``volume create|ls|inspect|rm|prune`` (and the ``list``/``remove`` aliases): docker's flags,
output and exit codes over ``/volumes``."""

from __future__ import annotations

from dockyard.cli.containers_util import client, command_error, each, filters, parse, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from dockyard.cli.common import Context

VOLUME_HEADERS = {"Name": "VOLUME NAME", "CreatedAt": "CREATED AT"}
VOLUME_FORMAT = "table {{.Driver}}\t{{.Name}}"


def _pairs(flag: str, values: Sequence[str]) -> dict[str, str]:
    from dockyard.cli.common import UsageError

    out = {}
    for item in values:
        k, eq, v = item.partition("=")
        if not k or (flag == "opt" and not eq):
            raise UsageError(f'invalid argument "{item}" for "-o, --opt" flag: invalid key '
                             f"value pair format: {item}\nSee 'dockyard volume create --help'.")
        out[k] = v
    return out


def create_body(v: dict[str, Any], name: str) -> dict[str, Any]:
    """The body the docker CLI sends for ``volume create``."""
    body: dict[str, Any] = {"Driver": v.get("driver", "local"), "Name": name}
    if v.get("opt"):
        body["DriverOpts"] = _pairs("opt", v["opt"])
    if v.get("label"):
        body["Labels"] = _pairs("label", v["label"])
    return body


def cmd_volume_create(ctx: Context, argv: Sequence[str], verb: str = "volume create") -> int:
    from dockyard.cli.client import ClientError
    from dockyard.cli.common import UsageError

    flags = {"driver": ("d", "str", 'Specify volume driver name (default "local")'),
             "label": ("", "list", "Set metadata for a volume"),
             "name": ("", "str", "Specify volume name"),
             "opt": ("o", "list", "Set driver specific options")}
    v, args = parse(ctx, verb, argv, flags, "volume create [OPTIONS] [VOLUME]",
                    "Create a volume", at_most=1)
    name = args[0] if args else v.get("name", "")
    if args and v.get("name") and v["name"] != args[0]:
        raise UsageError(f"conflicting options: cannot specify a volume-name through both "
                         f"--name and as a positional arg\nSee 'dockyard {verb} --help'.")
    try:
        doc = client(ctx).post("/volumes/create", body=create_body(v, name)) or {}
    except ClientError as e:
        raise command_error(e) from None
    ctx.out.write(f"{doc.get('Name', name)}\n")
    return 0


class _VolumeRow:
    __slots__ = ("_v",)

    def __init__(self, v: dict[str, Any]) -> None:
        self._v = v

    def __getattr__(self, name: str) -> Any:
        v = object.__getattribute__(self, "_v")
        if name == "Labels":
            return ",".join(f"{k}={x}" for k, x in sorted((v.get("Labels") or {}).items()))
        if name == "Size":
            usage = (v.get("UsageData") or {}).get("Size", -1)
            if usage is None or usage < 0:
                return "N/A"
            from dockyard.cli.containers_stats import human3

            return human3(usage)
        if name == "Links":
            links = (v.get("UsageData") or {}).get("RefCount", -1)
            return "N/A" if links is None or links < 0 else str(links)
        if name in ("Name", "Driver", "Scope", "Mountpoint", "CreatedAt"):
            return v.get(name, "")
        raise AttributeError(name)

    def Label(self, key: str) -> str:  # noqa: N802 - docker's template method
        return (self._v.get("Labels") or {}).get(key, "")


def render_volumes(volumes: Sequence[dict[str, Any]], quiet: bool, fmt: str) -> str:
    if quiet and not fmt:
        return "".join(v.get("Name", "") + "\n" for v in volumes)
    if fmt.replace(" ", "") == "{{json.}}":
        import json

        keys = ("Availability", "Driver", "Group", "Labels", "Links", "Mountpoint", "Name",
                "Scope", "Size", "Status")
        out = []
        for v in volumes:
            row = _VolumeRow(v)
            doc = {k: (getattr(row, k) if k in ("Driver", "Labels", "Links", "Mountpoint",
                                                 "Name", "Scope", "Size") else "N/A")
                   for k in keys}
            out.append(json.dumps(doc, separators=(",", ":")) + "\n")
        return "".join(out)
    from dockyard.cli.format import Template

    return Template(fmt or VOLUME_FORMAT, VOLUME_HEADERS).render_all(
        [_VolumeRow(v) for v in volumes])


def cmd_volume_ls(ctx: Context, argv: Sequence[str], verb: str = "volume ls") -> int:
    from dockyard.cli.client import ClientError

    flags = {"filter": ("f", "list", "Provide filter values (e.g. \"dangling=true\")"),
             "format": ("", "str", "Format output using a custom template"),
             "quiet": ("q", "bool", "Only display volume names")}
    v, _ = parse(ctx, verb, argv, flags, "volume ls [OPTIONS]", "List volumes", at_most=0)
    query = {"filters": filters(v["filter"])} if v.get("filter") else None
    try:
        doc = client(ctx).get("/volumes", query) or {}
    except ClientError as e:
        raise command_error(e) from None
    vols = sorted(doc.get("Volumes") or [], key=lambda x: x.get("Name", ""))
    for w in doc.get("Warnings") or ():
        ctx.err.write(f"{w}\n")
    ctx.out.write(render_volumes(vols, bool(v.get("quiet")), v.get("format", "")))
    return 0


def cmd_volume_inspect(ctx: Context, argv: Sequence[str], verb: str = "volume inspect") -> int:
    from dockyard.cli.containers_list import inspect_objects

    flags = {"format": ("f", "str", "Format output using a custom template")}
    v, names = parse(ctx, verb, argv, flags, "volume inspect [OPTIONS] VOLUME [VOLUME...]",
                     "Display detailed information on one or more volumes", at_least=1)
    return inspect_objects(ctx, names, v.get("format", ""), ("/volumes/{}",),
                           "Error response from daemon: {message}")


def cmd_volume_rm(ctx: Context, argv: Sequence[str], verb: str = "volume rm") -> int:
    flags = {"force": ("f", "bool", "Force the removal of one or more volumes")}
    v, names = parse(ctx, verb, argv, flags, "volume rm [OPTIONS] VOLUME [VOLUME...]",
                     "Remove one or more volumes", at_least=1)
    api = client(ctx)
    query = {"force": True} if v.get("force") else None
    return each(ctx, names, lambda n: api.delete(f"/volumes/{quote(n)}", query))


def cmd_volume_prune(ctx: Context, argv: Sequence[str], verb: str = "volume prune") -> int:
    from dockyard.cli.client import ClientError
    from dockyard.cli.common import confirm
    from dockyard.cli.containers_stats import human3

    flags = {"all": ("a", "bool", "Remove all unused volumes, not just anonymous ones"),
             "filter": ("", "list", "Provide filter values (e.g. \"label=<label>\")"),
             "force": ("f", "bool", "Do not prompt for confirmation")}
    v, _ = parse(ctx, verb, argv, flags, "volume prune [OPTIONS]", "Remove unused local volumes",
                 at_most=0)
    what = "all local volumes" if v.get("all") else "anonymous local volumes"
    if not v.get("force") and not confirm(
            ctx, f"WARNING! This will remove {what} not used by at least one container.\n"
                 "Are you sure you want to continue?"):
        return 0
    flt = filters(v.get("filter", []))
    if v.get("all"):
        flt["all"] = {"true": True}
    try:
        doc = client(ctx).post("/volumes/prune", {"filters": flt} if flt else None) or {}
    except ClientError as e:
        raise command_error(e) from None
    deleted = doc.get("VolumesDeleted") or []
    if deleted:
        ctx.out.write("Deleted Volumes:\n" + "".join(d + "\n" for d in deleted) + "\n")
    ctx.out.write(f"Total reclaimed space: {human3(doc.get('SpaceReclaimed') or 0)}\n")
    return 0
