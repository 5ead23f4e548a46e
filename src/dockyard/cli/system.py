"""Store maintenance verbs: ``image prune``, ``system df``, ``system check [--repair]``.

Output follows docker: prune asks ``[y/N]`` unless ``-f`` (no terminal on stdin counts as "no"),
prints ``Deleted Images:`` with ``untagged:``/``deleted:`` lines and ``Total reclaimed space``; df
prints TYPE TOTAL ACTIVE SIZE RECLAIMABLE with the reclaimable share in percent. ``system check``
(dockyard's own) prints what it checked, each problem, each repair, and exits 1 while problems
remain.
"""

from __future__ import annotations

from dockyard.cli.common import CommandError, Parser, confirm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from dockyard.cli.common import Context
    from dockyard.image.maintenance import CheckReport, DfRow

DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}
DF_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
PRUNE_WARNING = "WARNING! This will remove all dangling images."
PRUNE_ALL_WARNING = ("WARNING! This will remove all images without at least one container "
                     "associated to them.")


def cmd_image_prune(ctx: Context, argv: Sequence[str], verb: str = "image prune") -> int:
    from dockyard.cli.format import human_size
    from dockyard.image import maintenance

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
    result = maintenance.prune(ctx.service(), all=a.all)
    if result.actions:
        ctx.out.write("Deleted Images:\n")
        ctx.out.write("".join(f"{kind.lower()}: {what}\n" for kind, what in result.actions))
        ctx.out.write("\n")
    ctx.out.write(f"Total reclaimed space: {human_size(result.reclaimed)}\n")
    return 0


def df_rows(rows: Sequence[DfRow]) -> list[dict]:
    """docker's df columns from ``maintenance.DfRow``s: sizes human, reclaimable with its share."""
    from dockyard.cli.format import human_size

    out = []
    for r in rows:
        share = f" ({int(r.reclaimable * 100 / r.size)}%)" if r.size and r.type != "Build Cache" else ""
        out.append({"Type": r.type, "TotalCount": str(r.total), "Active": str(r.active),
                    "Size": human_size(r.size), "Reclaimable": human_size(r.reclaimable) + share})
    return out


def cmd_system_df(ctx: Context, argv: Sequence[str], verb: str = "system df") -> int:
    from dockyard.cli.format import Template
    from dockyard.image import maintenance

    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS]", "Show dockyard disk usage")
    p.add_argument("--format", help="Format output using a custom template")
    a = p.parse(argv)
    rows = df_rows(maintenance.disk_usage(ctx.service()))
    if a.format == "json":
        import json

        ctx.out.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
        return 0
    template = a.format or DF_FORMAT
    ctx.out.write(Template(DF_FORMAT if template == "table" else template, DF_HEADERS).render_all(rows))
    return 0


def render_check(r: CheckReport) -> str:
    counts = ", ".join(f"{n} {what if n != 1 else what.rstrip('s')}" for what, n in r.checked)
    lines = [f"checked {counts}"]
    lines += [f"problem: {p}" for p in r.problems]
    lines += [f"repaired: {x}" for x in r.repairs]
    if r.repairs:
        lines += [f"remaining: {p}" for p in r.remaining]
    if not r.remaining:
        lines.append("ok: no problems" + (" remain" if r.problems else ""))
    else:
        n = len(r.remaining)
        hint = "" if r.repairs else " (run 'dockyard system check --repair' to remove what is broken)"
        lines.append(f"{n} problem{'s' if n != 1 else ''} found{hint}")
    return "\n".join(lines) + "\n"


def cmd_system_check(ctx: Context, argv: Sequence[str], verb: str = "system check") -> int:
    from dockyard.image import maintenance

    p = Parser(ctx, verb, f"dockyard {verb} [OPTIONS]",
               "Verify every blob's digest, every image's manifest, config, layers and snapshots, "
               "and every tag")
    p.add_argument("--repair", action="store_true",
                   help="Remove broken images (and their tags), corrupt blobs and incomplete snapshots")
    a = p.parse(argv)
    report = maintenance.check(ctx.service(), repair=a.repair)
    ctx.out.write(render_check(report))
    return 0 if report.ok else 1
