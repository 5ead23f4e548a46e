"""What the container and volume verbs share: the daemon client of a context, docker's flag
parsing (pflag shapes, see ``run_flags.parse_flags``), argument-count errors, daemon errors as
docker prints them, and docker's "continue after an error, exit 1" loop over several arguments.
"""

from __future__ import annotations

from dockyard.cli.common import CommandError, HelpShown, UsageError
from dockyard.cli.run_flags import parse_flags

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from dockyard.cli.client import Client
    from dockyard.cli.common import Context

#: (short, kind, help) of each long flag; kind: bool | str | list
Flags = dict


def client(ctx: Context) -> Client:
    """The context's API client (``Context.client()``: made once per invocation)."""
    return ctx.client()


def usage_text(verb: str, usage: str, description: str, flags: Mapping[str, tuple]) -> str:
    lines = ["", f"Usage:  dockyard {usage}", "", description, ""]
    if flags:
        lines.append("Options:")
        for long, spec in sorted(flags.items()):
            short, kind = spec[0], spec[1]
            helptext = spec[2] if len(spec) > 2 else ""
            if long == "help":
                continue
            left = (f"-{short}, " if short else "    ") + f"--{long}"
            if kind != "bool":
                left += " " + ("list" if kind == "list" else "string")
            lines.append(f"  {left:<28} {helptext}".rstrip())
    return "\n".join(lines) + "\n"


def parse(ctx: Context, verb: str, argv: Sequence[str], flags: Mapping[str, tuple], usage: str,
          description: str = "", *, exactly: int | None = None, at_least: int | None = None,
          at_most: int | None = None, interspersed: bool = True
          ) -> tuple[dict[str, Any], list[str]]:
    """Parse ``argv`` with docker's flag rules; ``--help`` prints the usage and stops."""
    table = {name: (spec[0], spec[1]) for name, spec in flags.items()}
    table.setdefault("help", ("", "bool"))
    try:
        values, args = parse_flags(argv, table, interspersed=interspersed)
    except UsageError as e:
        raise UsageError(f"{e}\nSee 'dockyard {verb} --help'.") from None
    if values.get("help"):
        ctx.out.write(usage_text(verb, usage, description, flags))
        raise HelpShown()
    n = len(args)
    what = ""
    if exactly is not None and n != exactly:
        what = f"exactly {exactly} argument{'s' if exactly != 1 else ''}"
    elif at_least is not None and n < at_least:
        what = f"at least {at_least} argument{'s' if at_least != 1 else ''}"
    elif at_most is not None and n > at_most:
        what = "no arguments" if at_most == 0 else \
            f"at most {at_most} argument{'s' if at_most != 1 else ''}"
    if what:
        verb_text = "accepts" if at_most == 0 and not exactly and not at_least else "requires"
        raise CommandError(f"dockyard: 'dockyard {verb}' {verb_text} {what}\n\n"
                           f"Usage:  dockyard {usage}\n\n"
                           f"See 'dockyard {verb} --help' for more information")
    return values, args


def error_text(e: BaseException) -> str:
    """The line docker prints for a failed request."""
    return str(e)


def command_error(e: BaseException, code: int = 1, prefix: str = "") -> CommandError:
    err = CommandError(prefix + error_text(e))
    err.code = code
    return err


def each(ctx: Context, names: Sequence[str], action: Callable[[str], Any],
         echo: bool = True, parallel: bool = True) -> int:
    """docker's loop over several containers: ``action(name)`` for each (at most 50 at a time,
    like docker's parallel operations, unless ``parallel`` is false), then in the arguments'
    order the name printed on success or the error on failure; exit 1 if any failed."""
    from dockyard.cli.client import ClientError

    results: list[BaseException | None] = [None] * len(names)

    def one(i: int) -> None:
        try:
            action(names[i])
        except ClientError as e:
            results[i] = e

    if parallel and len(names) > 1:
        import threading

        for start in range(0, len(names), 50):
            threads = [threading.Thread(target=one, args=(i,), daemon=True)
                       for i in range(start, min(start + 50, len(names)))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    else:
        for i in range(len(names)):
            one(i)
    failed = False
    for name, err in zip(names, results):
        if err is not None:
            failed = True
            ctx.err.write(error_text(err) + "\n")
        elif echo:
            ctx.out.write(name + "\n")
    return 1 if failed else 0


def filters(values: Sequence[str], flag: str = "filter") -> dict[str, dict[str, bool]]:
    """``--filter k=v`` flags → docker's filters JSON (``{"k": {"v": true}}``)."""
    out: dict[str, dict[str, bool]] = {}
    for f in values:
        k, eq, v = f.partition("=")
        if not eq:
            raise UsageError(f"bad format of filter (expected name=value)\n"
                             f"See '--{flag}' in --help.")
        out.setdefault(k.strip().lower(), {})[v] = True
    return out


def short(ident: str, no_trunc: bool = False) -> str:
    if no_trunc:
        return ident
    return ident.partition(":")[2][:12] if ident.startswith("sha256:") else ident[:12]


def quote(name: str) -> str:
    """A container name or id as a URL path segment."""
    from dockyard.cli.client import pct_encode

    return pct_encode(name)
