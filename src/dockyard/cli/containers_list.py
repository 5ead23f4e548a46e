"""``ps`` (``container ls``), ``container inspect`` and ``container prune``.

``ps`` is on the benchmark's hot path (50 containers vs ``docker ps``): one ``GET
/containers/json``, rows built from the daemon's summaries with plain string work, the default
table written without the template engine; ``--format`` goes through ``format.Template`` with
docker's field names (``.ID .Image .Command .CreatedAt .RunningFor .Ports .State .Status .Size
.Names .Labels .Mounts .Networks .LocalVolumes``) and column titles.
"""

from __future__ import annotations

from dockyard.cli.containers_util import client, command_error, filters, parse, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from dockyard.cli.common import Context

PS_FLAGS = {
    "all": ("a", "bool", "Show all containers (default shows just running)"),
    "filter": ("f", "list", "Filter output based on conditions provided"),
    "format": ("", "str", "Format output using a custom template"),
    "last": ("n", "str", "Show n last created containers (includes all states)"),
    "latest": ("l", "bool", "Show the latest created container (includes all states)"),
    "no-trunc": ("", "bool", "Don't truncate output"),
    "quiet": ("q", "bool", "Only display container IDs"),
    "size": ("s", "bool", "Display total file sizes"),
}
PS_HEADERS = {"ID": "CONTAINER ID", "RunningFor": "CREATED", "CreatedAt": "CREATED AT",
              "LocalVolumes": "LOCAL VOLUMES"}
PS_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_COLUMNS = ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")


def _quote(text: str) -> str:
    """Go's strconv.Quote for the texts commands are made of."""
    from dockyard.leanjson import quote

    return quote(text)


def _size3(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3), as ``ps`` prints sizes ("1.98MB")."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def display_ports(ports: Sequence[dict] | None) -> str:
    """docker's PORTS column: ``0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 9000/udp``, runs of
    consecutive ports folded into ranges (``0.0.0.0:8000-8001->8000-8001/tcp``)."""
    if not ports:
        return ""
    groups: dict[str, list[tuple[int, int]]] = {}
    order: list[str] = []
    for p in sorted(ports, key=lambda p: (p.get("PublicPort") or 0, p.get("PrivatePort") or 0)):
        ip, public = p.get("IP") or "", p.get("PublicPort") or 0
        key = f"{ip}/{p.get('Type', 'tcp')}/{'pub' if public else 'priv'}"
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((public, p.get("PrivatePort") or 0))
    out: list[str] = []
    for key in order:
        ip, proto, kind = key.split("/")
        host = f"[{ip}]" if ":" in ip else ip
        runs: list[list[tuple[int, int]]] = []
        for pair in groups[key]:
            last = runs[-1][-1] if runs else None
            if last and pair[0] - last[0] == 1 and pair[1] - last[1] == 1 and kind == "pub":
                runs[-1].append(pair)
            elif last and kind == "priv" and pair[1] - last[1] == 1:
                runs[-1].append(pair)
            else:
                runs.append([pair])
        for run in runs:
            (pub0, priv0), (pub1, priv1) = run[0], run[-1]
            priv = f"{priv0}" if priv0 == priv1 else f"{priv0}-{priv1}"
            if kind == "pub":
                pub = f"{pub0}" if pub0 == pub1 else f"{pub0}-{pub1}"
                out.append(f"{host}:{pub}->{priv}/{proto}")
            else:
                out.append(f"{priv}/{proto}")
    return ", ".join(out)


class PsRow:
    """One container's fields for ``--format``; computed only when a template asks."""

    __slots__ = ("_c", "_trunc", "_now")

    def __init__(self, summary: dict, trunc: bool, now: float) -> None:
        self._c, self._trunc, self._now = summary, trunc, now

    @property
    def ID(self) -> str:  # noqa: N802 - docker's template field names
        cid = self._c.get("Id", "")
        return cid[:12] if self._trunc else cid

    @property
    def Image(self) -> str:  # noqa: N802
        image = self._c.get("Image", "")
        if self._trunc and image.startswith("sha256:"):
            return image[7:19]
        return image

    @property
    def Command(self) -> str:  # noqa: N802
        from dockyard.cli.common import ellipsis

        cmd = self._c.get("Command", "")
        return _quote(ellipsis(cmd, 20) if self._trunc else cmd)

    @property
    def CreatedAt(self) -> str:  # noqa: N802
        import time

        t = self._c.get("Created", 0)
        return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(t))

    @property
    def RunningFor(self) -> str:  # noqa: N802
        from dockyard.cli.format import human_duration

        return human_duration(self._now - self._c.get("Created", 0)) + " ago"

    @property
    def Ports(self) -> str:  # noqa: N802
        return display_ports(self._c.get("Ports"))

    @property
    def State(self) -> str:  # noqa: N802
        return self._c.get("State", "")

    @property
    def Status(self) -> str:  # noqa: N802
        return self._c.get("Status", "")

    @property
    def Size(self) -> str:  # noqa: N802
        rw, root = self._c.get("SizeRw"), self._c.get("SizeRootFs")
        if rw is None and root is None:
            return "0B"
        text = _size3(rw or 0)
        return f"{text} (virtual {_size3(root or 0)})" if root else text

    @property
    def Names(self) -> str:  # noqa: N802
        names = [n[1:] if n.startswith("/") else n for n in self._c.get("Names") or ()]
        if self._trunc:
            names = [n for n in names if "/" not in n]
        return ",".join(names)

    @property
    def Labels(self) -> str:  # noqa: N802
        return ",".join(f"{k}={v}" for k, v in sorted((self._c.get("Labels") or {}).items()))

    @property
    def Mounts(self) -> str:  # noqa: N802
        from dockyard.cli.common import ellipsis

        names = []
        for m in self._c.get("Mounts") or ():
            name = m.get("Name") or m.get("Source") or ""
            names.append(ellipsis(name, 15) if self._trunc else name)
        return ",".join(names)

    @property
    def Networks(self) -> str:  # noqa: N802
        nets = ((self._c.get("NetworkSettings") or {}).get("Networks") or {})
        return ",".join(sorted(nets))

    @property
    def LocalVolumes(self) -> str:  # noqa: N802
        return str(sum(1 for m in self._c.get("Mounts") or () if m.get("Driver") == "local"))

    @property
    def Platform(self) -> None:  # noqa: N802
        return None

    def Label(self, name: str) -> str:  # noqa: N802
        return (self._c.get("Labels") or {}).get(name, "")

    def as_dict(self) -> dict[str, Any]:
        """``{{json .}}``: every field, as docker prints them."""
        keys = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
                "Names", "Networks", "Platform", "Ports", "RunningFor", "Size", "State", "Status")
        return {k: getattr(self, k) for k in keys}


def ps_query(v: dict[str, Any]) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if v.get("all"):
        query["all"] = True
    if v.get("latest"):
        query["limit"] = 1
    elif "last" in v:
        try:
            n = int(v["last"])
        except ValueError:
            from dockyard.cli.common import UsageError

            raise UsageError(f'invalid argument "{v["last"]}" for "-n, --last" flag: '
                             f'strconv.ParseInt: parsing "{v["last"]}": invalid syntax\n'
                             "See 'dockyard ps --help'.") from None
        if n != -1:
            query["limit"] = n
    fmt = v.get("format", "")
    if v.get("size") or ".Size" in fmt or fmt.replace(" ", "") == "{{json.}}":
        query["size"] = True
    if v.get("filter"):
        query["filters"] = filters(v["filter"])
    return query


def render_ps(summaries: Sequence[dict], v: dict[str, Any], now: float) -> str:
    """The text ``ps`` prints for these summaries and flags."""
    trunc = not v.get("no-trunc")
    fmt = v.get("format", "")
    if v.get("quiet") and not fmt:
        return "".join((c["Id"][:12] if trunc else c["Id"]) + "\n" for c in summaries)
    rows = [PsRow(c, trunc, now) for c in summaries]
    if fmt and fmt != "table":
        from dockyard.cli.format import Template

        if fmt.strip() == "{{json .}}":
            import json

            return "".join(json.dumps(r.as_dict(), separators=(",", ":"), sort_keys=True,
                                      ensure_ascii=False) + "\n" for r in rows)
        return Template(fmt, PS_HEADERS).render_all(rows)
    from dockyard.cli.format import table

    headers = PS_COLUMNS + (("SIZE",) if v.get("size") else ())
    cells = []
    for r in rows:
        row = [r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Ports, r.Names]
        if v.get("size"):
            row.append(r.Size)
        cells.append(row)
    return table(headers, cells)


def cmd_ps(ctx: Context, argv: Sequence[str], verb: str = "ps") -> int:
    import time

    v, _ = parse(ctx, verb, argv, PS_FLAGS, f"{verb} [OPTIONS]", "List containers", at_most=0)
    summaries = client(ctx).get("/containers/json", ps_query(v)) or []
    ctx.out.write(render_ps(summaries, v, time.time()))
    return 0


# -------------------------------------------------------------------------------- inspect, prune

def inspect_objects(ctx: Context, names: Sequence[str], fmt: str, paths: Sequence[str],
                    missing: str, size: bool = False) -> int:
    """docker's inspect: the found objects as one indented JSON array (or a template line per
    object), then one error line per name not found; exit 1 if any was missing."""
    from dockyard.cli.client import APIError

    api = client(ctx)
    found, errors = [], []
    for name in names:
        for path in paths:
            try:
                found.append(api.get(path.format(quote(name)),
                                     {"size": True} if size and "/containers/" in path else None))
                break
            except APIError as e:
                if e.status != 404:
                    raise
                last = e
        else:
            errors.append(missing.format(name=name, message=last.message))
    if fmt and fmt != "json":
        from dockyard.cli.format import Template

        t = Template(fmt)
        ctx.out.write("".join(t.render(obj) + "\n" for obj in found))
    else:
        import json

        ctx.out.write(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    for e in errors:
        ctx.err.write(e + "\n")
    return 1 if errors else 0


def cmd_container_inspect(ctx: Context, argv: Sequence[str],
                          verb: str = "container inspect") -> int:
    flags = {"format": ("f", "str", "Format output using a custom template"),
             "size": ("s", "bool", "Display total file sizes")}
    v, names = parse(ctx, verb, argv, flags, "container inspect [OPTIONS] CONTAINER [CONTAINER...]",
                     "Display detailed information on one or more containers", at_least=1)
    return inspect_objects(ctx, names, v.get("format", ""), ("/containers/{}/json",),
                           "Error response from daemon: {message}", bool(v.get("size")))


def cmd_container_prune(ctx: Context, argv: Sequence[str], verb: str = "container prune") -> int:
    from dockyard.cli.client import ClientError
    from dockyard.cli.common import confirm
    from dockyard.cli.format import human_size

    flags = {"force": ("f", "bool", "Do not prompt for confirmation"),
             "filter": ("", "list", "Provide filter values (e.g. \"until=<timestamp>\")")}
    v, _ = parse(ctx, verb, argv, flags, "container prune [OPTIONS]",
                 "Remove all stopped containers", at_most=0)
    if not v.get("force") and not confirm(
            ctx, "WARNING! This will remove all stopped containers.\nAre you sure you want to "
                 "continue?"):
        return 0
    query = {"filters": filters(v["filter"])} if v.get("filter") else None
    try:
        doc = client(ctx).post("/containers/prune", query) or {}
    except ClientError as e:
        raise command_error(e) from None
    deleted = doc.get("ContainersDeleted") or []
    if deleted:
        ctx.out.write("Deleted Containers:\n" + "".join(d + "\n" for d in deleted) + "\n")
    ctx.out.write(f"Total reclaimed space: {human_size(doc.get('SpaceReclaimed') or 0)}\n")
    return 0
