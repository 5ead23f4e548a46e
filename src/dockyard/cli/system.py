"""Store maintenance verbs: ``image prune``, ``system df``, ``system check [--repair]``, through the
daemon (``/images/prune``, ``/system/df``, dockyard's ``/dockyard/system/check``), and ``version`` / ``info``
(``/version``, ``/info``) in docker's layout.

Output follows docker: prune asks ``[y/N]`` unless ``-f`` (no terminal on stdin counts as "no"),
prints ``Deleted Images:`` with ``untagged:``/``deleted:`` lines and ``Total reclaimed space``; df
prints TYPE TOTAL ACTIVE SIZE RECLAIMABLE with the reclaimable share in percent. ``system check``
(dockyard's own) prints what it checked, each problem, each repair, and exits 1 while problems
remain.
"""

from __future__ import annotations

from dockyard.cli.argparser import Parser
from dockyard.cli.common import CommandError, confirm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from dockyard.cli.common import Context

DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}
DF_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
PRUNE_WARNING = "WARNING! This will remove all dangling images."
PRUNE_ALL_WARNING = ("WARNING! This will remove all images without at least one container "
                     "associated to them.")


def cmd_image_prune(ctx: Context, argv: Sequence[str], verb: str = "image prune") -> int:
    from dockyard.cli.format import human_size

    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS]", "Remove unused images")
    p.add_argument("-a", "--all", action="store_true",
                   help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[],
                   help="Provide filter values (not supported yet)")
    a = p.parse(argv)
    if a.filter:
        raise CommandError("Error: image prune --filter is not supported yet")
    if not a.force and not confirm(ctx, f"{PRUNE_ALL_WARNING if a.all else PRUNE_WARNING}\n"
                                        "Are you sure you want to continue?"):
        return 0
    filters = {"dangling": ["false"]} if a.all else None
    result = ctx.client().post("/images/prune", {"filters": filters}) or {}
    deleted = result.get("ImagesDeleted") or []
    if deleted:
        ctx.out.write("Deleted Images:\n")
        ctx.out.write("".join(f"{kind.lower()}: {what}\n" for item in deleted
                              for kind, what in item.items()))
        ctx.out.write("\n")
    ctx.out.write(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")
    return 0


def df_rows(rows: Sequence[dict]) -> list[dict]:
    """docker's df columns from the daemon's summary rows (``DockyardSummary`` of ``/system/df``:
    Type, TotalCount, Active, Size, Reclaimable in bytes): sizes human, reclaimable with its share."""
    from dockyard.cli.format import human_size

    out = []
    for r in rows:
        size, reclaimable = r["Size"], r["Reclaimable"]
        share = f" ({int(reclaimable * 100 / size)}%)" if size and r["Type"] != "Build Cache" else ""
        out.append({"Type": r["Type"], "TotalCount": str(r["TotalCount"]), "Active": str(r["Active"]),
                    "Size": human_size(size), "Reclaimable": human_size(reclaimable) + share})
    return out


def summary_from_docker(df: dict) -> list[dict]:
    """The four rows from Docker's ``/system/df`` shape, for a daemon without ``DockyardSummary``."""
    images = df.get("Images") or []
    active = [i for i in images if (i.get("Containers") or 0) > 0]
    layers = df.get("LayersSize") or 0
    used = sum((i.get("Size") or 0) - max(i.get("SharedSize") or 0, 0) for i in active)
    containers = df.get("Containers") or []
    c_size = sum(c.get("SizeRw") or 0 for c in containers)
    c_reclaim = sum(c.get("SizeRw") or 0 for c in containers if c.get("State") != "running")
    volumes = df.get("Volumes") or []
    v_size = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes)
    cache = df.get("BuildCache") or []
    return [
        {"Type": "Images", "TotalCount": len(images), "Active": len(active), "Size": layers,
         "Reclaimable": max(layers - used, 0)},
        {"Type": "Containers", "TotalCount": len(containers),
         "Active": sum(1 for c in containers if c.get("State") == "running"), "Size": c_size,
         "Reclaimable": c_reclaim},
        {"Type": "Local Volumes", "TotalCount": len(volumes), "Active": 0, "Size": v_size,
         "Reclaimable": v_size},
        {"Type": "Build Cache", "TotalCount": len(cache), "Active": 0,
         "Size": sum(b.get("Size") or 0 for b in cache), "Reclaimable": 0},
    ]


def cmd_system_df(ctx: Context, argv: Sequence[str], verb: str = "system df") -> int:
    from dockyard.cli.format import Template

    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS]", "Show dockyard disk usage")
    p.add_argument("--format", help="Format output using a custom template")
    a = p.parse(argv)
    df = ctx.client().get("/system/df") or {}
    rows = df_rows(df.get("DockyardSummary") or summary_from_docker(df))
    if a.format == "json":
        from dockyard.leanjson import dumps

        ctx.out.write("".join(dumps(r) + "\n" for r in rows))
        return 0
    template = a.format or DF_FORMAT
    ctx.out.write(Template(DF_FORMAT if template == "table" else template, DF_HEADERS).render_all(rows))
    return 0


def render_check(r: dict) -> str:
    """The report of ``POST /dockyard/system/check`` (Checked, Problems, Repairs, Remaining)."""
    repairs, remaining = r.get("Repairs") or [], r.get("Remaining") or []
    problems = r.get("Problems") or []
    counts = ", ".join(f"{n} {what if n != 1 else what.rstrip('s')}" for what, n in r.get("Checked") or [])
    lines = [f"checked {counts}"]
    lines += [f"problem: {p}" for p in problems]
    lines += [f"repaired: {x}" for x in repairs]
    if repairs:
        lines += [f"remaining: {p}" for p in remaining]
    if not remaining:
        lines.append("ok: no problems" + (" remain" if problems else ""))
    else:
        n = len(remaining)
        hint = "" if repairs else " (run 'dockyard system check --repair' to remove what is broken)"
        lines.append(f"{n} problem{'s' if n != 1 else ''} found{hint}")
    return "\n".join(lines) + "\n"


def cmd_system_check(ctx: Context, argv: Sequence[str], verb: str = "system check") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS]",
               "Verify every blob's digest, every image's manifest, config, layers and snapshots, "
               "and every tag")
    p.add_argument("--repair", action="store_true",
                   help="Remove broken images (and their tags), corrupt blobs and incomplete snapshots")
    a = p.parse(argv)
    report = ctx.client().post("/dockyard/system/check", {"repair": a.repair or None}) or {}
    ctx.out.write(render_check(report))
    return 0 if not report.get("Remaining") else 1


# --------------------------------------------------------------------------------------------------
# version, info

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def client_version() -> dict:
    """The Client part of ``version`` (no daemon needed)."""
    import platform

    from dockyard.cli.client import API_VERSION
    from dockyard.runtime.default_spec import VERSION

    machine = platform.machine()
    return {"Platform": {"Name": "dockyard"}, "Version": VERSION, "ApiVersion": API_VERSION,
            "DefaultAPIVersion": API_VERSION, "GitCommit": "dockyard",
            "GoVersion": f"python{platform.python_version()}", "Os": "linux",
            "Arch": _GO_ARCH.get(machine, machine), "BuildTime": ""}


def render_version(client: dict, server: dict | None) -> str:
    lines = ["Client:", f" Version:           {client['Version']}",
             f" API version:       {client['ApiVersion']}",
             f" Go version:        {client['GoVersion']}",
             f" Git commit:        {client['GitCommit']}",
             f" OS/Arch:           {client['Os']}/{client['Arch']}"]
    if server is not None:
        name = (server.get("Platform") or {}).get("Name", "")
        lines += ["", f"Server: {name}".rstrip()]
        for comp in server.get("Components") or []:
            d = comp.get("Details") or {}
            lines.append(f" {comp.get('Name')}:")
            lines.append(f"  Version:          {comp.get('Version', '')}")
            if comp.get("Name") == "Engine":
                lines += [f"  API version:      {d.get('ApiVersion', '')} (minimum version "
                          f"{d.get('MinAPIVersion', '')})",
                          f"  Go version:       {d.get('GoVersion', '')}",
                          f"  Git commit:       {d.get('GitCommit', '')}",
                          f"  Built:            {d.get('BuildTime', '')}",
                          f"  OS/Arch:          {d.get('Os', '')}/{d.get('Arch', '')}",
                          f"  Experimental:     {d.get('Experimental', 'false')}"]
            elif d.get("GitCommit"):
                lines.append(f"  GitCommit:        {d['GitCommit']}")
    return "\n".join(lines) + "\n"


def cmd_version(ctx: Context, argv: Sequence[str], verb: str = "version") -> int:
    from dockyard.cli.client import ClientError

    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS]", "Show the dockyard version information")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    a = p.parse(argv)
    client = client_version()
    server, failure = None, None
    try:
        server = ctx.client().get("/version")
    except ClientError as e:
        failure = e
    if a.format:
        doc = {"Client": client, "Server": server}
        if a.format == "json":
            from dockyard.leanjson import dumps

            ctx.out.write(dumps(doc) + "\n")
        else:
            from dockyard.cli.format import Template

            ctx.out.write(Template(a.format).render(doc) + "\n")
    else:
        ctx.out.write(render_version(client, server))
    if failure is not None:
        raise failure
    return 0


def _bytes_binary(n: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits ("7.765GiB")."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024.0
        i += 1
    return f"{n:.4g}{units[i]}"


def render_info(info: dict) -> str:
    lines = ["Client:", f" Version:    {client_version()['Version']}", "", "Server:",
             f" Containers: {info.get('Containers', 0)}",
             f"  Running: {info.get('ContainersRunning', 0)}",
             f"  Paused: {info.get('ContainersPaused', 0)}",
             f"  Stopped: {info.get('ContainersStopped', 0)}",
             f" Images: {info.get('Images', 0)}",
             f" Server Version: {info.get('ServerVersion', '')}",
             f" Storage Driver: {info.get('Driver', '')}",
             f" Logging Driver: {info.get('LoggingDriver', '')}",
             f" Cgroup Driver: {info.get('CgroupDriver', '')}",
             f" Cgroup Version: {info.get('CgroupVersion', '')}",
             f" Runtimes: {' '.join(sorted(info.get('Runtimes') or {}))}",
             f" Default Runtime: {info.get('DefaultRuntime', '')}"]
    security = info.get("SecurityOptions") or []
    if security:
        lines.append(" Security Options:")
        for opt in security:
            fields = dict(kv.partition("=")[::2] for kv in opt.split(","))
            lines.append(f"  {fields.get('name', opt)}")
            lines += [f"   {k.title()}: {v}" for k, v in fields.items() if k != "name"]
    lines += [f" Kernel Version: {info.get('KernelVersion', '')}",
              f" Operating System: {info.get('OperatingSystem', '')}",
              f" OSType: {info.get('OSType', '')}",
              f" Architecture: {info.get('Architecture', '')}",
              f" CPUs: {info.get('NCPU', 0)}",
              f" Total Memory: {_bytes_binary(info.get('MemTotal') or 0)}",
              f" Name: {info.get('Name', '')}",
              f" ID: {info.get('ID', '')}",
              f" Dockyard Root Dir: {info.get('DockerRootDir', '')}",
              f" Debug Mode: {str(bool(info.get('Debug'))).lower()}",
              f" Live Restore Enabled: {str(bool(info.get('LiveRestoreEnabled'))).lower()}"]
    return "\n".join(lines) + "\n"


def cmd_info(ctx: Context, argv: Sequence[str], verb: str = "info") -> int:
    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS]", "Display system-wide information")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    a = p.parse(argv)
    info = ctx.client().get("/info") or {}
    if a.format == "json":
        from dockyard.leanjson import dumps

        ctx.out.write(dumps(info) + "\n")
    elif a.format:
        from dockyard.cli.format import Template

        ctx.out.write(Template(a.format).render(info) + "\n")
    else:
        ctx.out.write(render_info(info))
        ctx.err.write("".join(w + "\n" for w in info.get("Warnings") or []))
    return 0
