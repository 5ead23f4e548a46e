"""``dockyard``: the engine's CLI, docker's verbs, flags, output and exit codes.

Every verb but ``daemon`` is a thin client of the daemon's Docker Engine API (issue #4): global
``-H/--host`` (or ``DOCKYARD_HOST``, default ``unix:///run/dockyard/dockyard.sock``) names the
daemon; when none answers, the command says how to start one and exits 1. ``--root`` belongs to
the daemon: ``dockyard --root DIR daemon`` passes it on, any other verb refuses it (exit 125).
This module only dispatches: a verb's module is imported when that verb runs, so ``dockyard
--help`` and the client side of every verb load nothing but the stdlib.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TextIO

# verb -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "export": ("dockyard.cli.images", "cmd_export", "Export a container's filesystem as a tar archive"),
    "info": ("dockyard.cli.system", "cmd_info", "Display system-wide information"),
    "history": ("dockyard.cli.images", "cmd_history", "Show the history of an image"),
    "images": ("dockyard.cli.images", "cmd_images", "List images"),
    "import": ("dockyard.cli.images", "cmd_import",
               "Import the contents from a tarball to create a filesystem image"),
    "inspect": ("dockyard.cli.images", "cmd_inspect", "Return low-level information on objects"),
    "load": ("dockyard.cli.images", "cmd_load", "Load an image from a tar archive or STDIN"),
    "rmi": ("dockyard.cli.images", "cmd_rmi", "Remove one or more images"),
    "save": ("dockyard.cli.images", "cmd_save",
             "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "tag": ("dockyard.cli.images", "cmd_tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "version": ("dockyard.cli.system", "cmd_version", "Show the dockyard version information"),
}
_C, _L = "dockyard.cli.containers", "dockyard.cli.containers_list"
_IO = "dockyard.cli.containers_io"
#: container verbs (dockyard.cli.containers*): also under "container" with docker's aliases
CONTAINER_VERBS: dict[str, tuple[str, str, str]] = {
    "attach": (_IO, "cmd_attach", "Attach local standard input, output, and error streams to a "
               "running container"),
    "commit": (_IO, "cmd_commit", "Create a new image from a container's changes"),
    "cp": ("dockyard.cli.containers_cp", "cmd_cp",
           "Copy files/folders between a container and the local filesystem"),
    "create": (_C, "cmd_create", "Create a new container"),
    "diff": (_IO, "cmd_diff", "Inspect changes to files or directories on a container's "
             "filesystem"),
    "events": (_IO, "cmd_events", "Get real time events from the server"),
    "exec": (_IO, "cmd_exec", "Execute a command in a running container"),
    "kill": (_C, "cmd_kill", "Kill one or more running containers"),
    "logs": (_IO, "cmd_logs", "Fetch the logs of a container"),
    "pause": (_C, "cmd_pause", "Pause all processes within one or more containers"),
    "port": (_C, "cmd_port", "List port mappings or a specific mapping for the container"),
    "ps": (_L, "cmd_ps", "List containers"),
    "rename": (_C, "cmd_rename", "Rename a container"),
    "restart": (_C, "cmd_restart", "Restart one or more containers"),
    "rm": (_C, "cmd_rm", "Remove one or more containers"),
    "run": (_C, "cmd_run", "Create and run a new container from an image"),
    "start": (_C, "cmd_start", "Start one or more stopped containers"),
    "stats": ("dockyard.cli.containers_stats", "cmd_stats",
              "Display a live stream of container(s) resource usage statistics"),
    "stop": (_C, "cmd_stop", "Stop one or more running containers"),
    "top": (_IO, "cmd_top", "Display the running processes of a container"),
    "unpause": (_C, "cmd_unpause", "Unpause all processes within one or more containers"),
    "update": (_C, "cmd_update", "Update configuration of one or more containers"),
    "wait": (_C, "cmd_wait", "Block until one or more containers stop, then print their exit "
             "codes"),
}
COMMANDS.update(CONTAINER_VERBS)
CONTAINER_COMMANDS: dict[str, tuple[str, str, str]] = dict(
    {k: v for k, v in CONTAINER_VERBS.items() if k != "events"},
    export=COMMANDS["export"], ls=CONTAINER_VERBS["ps"], list=CONTAINER_VERBS["ps"],
    remove=CONTAINER_VERBS["rm"],
    inspect=(_L, "cmd_container_inspect", "Display detailed information on one or more "
             "containers"),
    prune=(_L, "cmd_container_prune", "Remove all stopped containers"))
VOLUME_COMMANDS: dict[str, tuple[str, str, str]] = {
    "create": ("dockyard.cli.volumes", "cmd_volume_create", "Create a volume"),
    "inspect": ("dockyard.cli.volumes", "cmd_volume_inspect",
                "Display detailed information on one or more volumes"),
    "ls": ("dockyard.cli.volumes", "cmd_volume_ls", "List volumes"),
    "prune": ("dockyard.cli.volumes", "cmd_volume_prune", "Remove unused local volumes"),
    "rm": ("dockyard.cli.volumes", "cmd_volume_rm", "Remove one or more volumes"),
}
VOLUME_COMMANDS.update(list=VOLUME_COMMANDS["ls"], remove=VOLUME_COMMANDS["rm"])
_N = "dockyard.cli.networks"
NETWORK_COMMANDS: dict[str, tuple[str, str, str]] = {
    "connect": (_N, "cmd_network_connect", "Connect a container to a network"),
    "create": (_N, "cmd_network_create", "Create a network"),
    "disconnect": (_N, "cmd_network_disconnect", "Disconnect a container from a network"),
    "inspect": (_N, "cmd_network_inspect", "Display detailed information on one or more networks"),
    "ls": (_N, "cmd_network_ls", "List networks"),
    "prune": (_N, "cmd_network_prune", "Remove all unused networks"),
    "rm": (_N, "cmd_network_rm", "Remove one or more networks"),
}
NETWORK_COMMANDS.update(list=NETWORK_COMMANDS["ls"], remove=NETWORK_COMMANDS["rm"])
IMAGE_COMMANDS: dict[str, tuple[str, str, str]] = {
    "bootstrap": ("dockyard.cli.images", "cmd_bootstrap",
                  "Create a base image without the internet (busybox, debian[:suite])"),
    "diff": ("dockyard.cli.images", "cmd_image_diff",
             "Show files added, changed and deleted between two images"),
    "history": COMMANDS["history"],
    "import": COMMANDS["import"],
    "inspect": ("dockyard.cli.images", "cmd_image_inspect",
                "Display detailed information on one or more images"),
    "load": COMMANDS["load"],
    "ls": ("dockyard.cli.images", "cmd_images", "List images"),
    "prune": ("dockyard.cli.system", "cmd_image_prune", "Remove unused images"),
    "rm": ("dockyard.cli.images", "cmd_rmi", "Remove one or more images"),
    "save": COMMANDS["save"],
    "tag": COMMANDS["tag"],
}
IMAGE_ALIASES = {"list": "ls", "remove": "rm"}
SYSTEM_COMMANDS: dict[str, tuple[str, str, str]] = {
    "check": ("dockyard.cli.system", "cmd_system_check",
              "Verify every blob, image, tag and snapshot of the store (--repair fixes)"),
    "df": ("dockyard.cli.system", "cmd_system_df", "Show dockyard disk usage"),
    "info": COMMANDS["info"],
}
GROUPS = {"image": ("Manage images", IMAGE_COMMANDS), "system": ("Manage dockyard", SYSTEM_COMMANDS),
          "container": ("Manage containers", CONTAINER_COMMANDS),
          "volume": ("Manage volumes", VOLUME_COMMANDS),
          "network": ("Manage networks", NETWORK_COMMANDS)}


def _usage() -> str:
    lines = ["", "Usage:  dockyard [OPTIONS] COMMAND", "",
             "A Linux container engine (the OCI runtime is its own executable: dockyard-runtime --help)",
             "", "Options:",
             "  -H, --host string   Daemon socket to connect to (default "
             f'"{DEFAULT_HOST}"; env DOCKYARD_HOST)',
             "      --root string   Root of the store, for 'dockyard daemon' only",
             "  -D, --debug         Show a traceback for unexpected errors",
             "  -v, --version       Print version information and quit", "",
             "Management Commands:"]
    lines += [f"  {name:<11} {summary}" for name, (summary, _) in GROUPS.items()]
    lines += ["", "Commands:"]
    verbs = dict(COMMANDS, daemon=("", "", "Run the daemon: the Docker Engine API on a unix socket"))
    lines += [f"  {name:<11} {verbs[name][2]}" for name in sorted(verbs)]
    lines += ["", "Run 'dockyard COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)


def _group_usage(group: str) -> str:
    summary, table = GROUPS[group]
    lines = ["", f"Usage:  dockyard {group} COMMAND", "", summary, "", "Commands:"]
    lines += [f"  {name:<11} {table[name][2]}" for name in sorted(table)]
    lines += ["", f"Run 'dockyard {group} COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)


def _version() -> str:
    from dockyard.runtime.default_spec import SPEC_VERSION, VERSION

    return (f"dockyard version {VERSION}\nruntime: dockyard-runtime {VERSION} "
            f"(OCI runtime-spec {SPEC_VERSION})\n")


DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"  # dockyard.cli.client.DEFAULT_HOST
ROOT_IS_FOR_THE_DAEMON = ("--root is a flag of 'dockyard daemon': the other commands talk to a "
                          "daemon; choose it with -H/--host or DOCKYARD_HOST (start one with "
                          "'dockyard daemon --root DIR')\nSee 'dockyard --help'.")


def _fail(message: str, code: int, err: TextIO | None = None) -> int:
    stream = err if err is not None else sys.stderr
    stream.write(message if message.endswith("\n") else message + "\n")
    return code


def run(argv: Sequence[str], ctx: object = None) -> int:
    """Parse global options, dispatch to the verb, map errors to docker's exit codes."""
    args = list(argv)
    host: str | None = None
    root: str | None = None
    debug = False
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        a = args[i]
        if a in ("-h", "--help"):
            sys.stdout.write(_usage())
            return 0
        if a in ("-v", "--version"):
            sys.stdout.write(_version())
            return 0
        if a in ("-D", "--debug"):
            debug, i = True, i + 1
            continue
        name, eq, value = a.partition("=")
        if name in ("-H", "--host", "--root"):
            if not eq:
                if i + 1 >= len(args):
                    return _fail(f"flag needs an argument: {name}\nSee 'dockyard --help'.", 125)
                value, i = args[i + 1], i + 1
            i += 1
            if name == "--root":
                root = value
            else:
                host = value
            continue
        return _fail(f"unknown flag: {a}\nSee 'dockyard --help'.", 125)
    if i >= len(args) or args[i] == "help":
        sys.stdout.write(_usage())
        return 0
    verb, rest = args[i], args[i + 1:]
    if verb == "daemon":  # its own flags and config (dockyard.daemon.config); aiohttp loads here
        from dockyard.daemon.server import main as daemon_main

        given = (["--root", root] if root is not None else []) + \
            (["-H", host] if host is not None else [])
        return daemon_main(given + rest)
    if root is not None:
        return _fail(ROOT_IS_FOR_THE_DAEMON, 125)
    entry = COMMANDS.get(verb)
    if verb in GROUPS:
        table = GROUPS[verb][1]
        sub = rest[0] if rest else ""
        sub = IMAGE_ALIASES.get(sub, sub) if verb == "image" else sub
        if not sub or sub in ("-h", "--help", "help"):
            sys.stdout.write(_group_usage(verb))
            return 0
        entry = table.get(sub)
        if entry is None:
            return _fail(f"dockyard: '{verb} {sub}' is not a dockyard command.\n"
                         f"See 'dockyard {verb} --help'.", 1)
        verb, rest = f"{verb} {sub}", rest[1:]
    if entry is None:
        return _fail(f"dockyard: '{verb}' is not a dockyard command.\nSee 'dockyard --help'.", 1)
    return _dispatch(entry, verb, rest, host, debug, ctx)


def _dispatch(entry: tuple[str, str, str], verb: str, rest: list[str], host: str | None,
              debug: bool, ctx: object) -> int:
    import importlib

    from dockyard.cli.client import ClientError, parse_host
    from dockyard.cli.common import CommandError, Context, HelpShown, UsageError
    from dockyard.errors import DockyardError

    module, func, _ = entry
    context = ctx if isinstance(ctx, Context) else Context(host, debug=debug)
    try:
        if context.host is not None or not isinstance(ctx, Context):
            parse_host(context.host or os.environ.get("DOCKYARD_HOST") or DEFAULT_HOST)
    except ValueError as e:
        return _fail(f"{e}\nSee 'dockyard --help'.", 125, context.err)
    try:
        return getattr(importlib.import_module(module), func)(context, rest, verb) or 0
    except HelpShown:
        return 0
    except (UsageError, CommandError) as e:
        return _fail(str(e), e.code, context.err)
    except ClientError as e:  # the daemon's refusal, or no daemon: docker's texts, exit 1
        _traceback(debug)
        return _fail(str(e), 1, context.err)
    except DockyardError as e:
        _traceback(debug)
        return _fail(f"Error: {e}", 1, context.err)
    except BrokenPipeError:  # the reader of stdout went away (``dockyard save x | head``)
        _traceback(debug)
        return 141
    except OSError as e:
        _traceback(debug)
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        return _fail(f"Error: {e.strerror or e}{where}", 1, context.err)
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            context.close()
        except Exception as e:  # noqa: BLE001 - a failed close must not hide the command's result
            context.err.write(f"Error: closing the client: {e}\n")


def _traceback(debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()


def main(argv: list[str] | None = None) -> None:
    code = run(sys.argv[1:] if argv is None else argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = code or 141
    sys.exit(code)


if __name__ == "__main__":
    main()
