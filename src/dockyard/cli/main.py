"""``dockyard``: the engine's CLI. Today it knows ``version``; the verbs arrive with the engine
(issue #4), as a thin client of the daemon's Docker Engine API. Stdlib only on this path."""

from __future__ import annotations

import sys

USAGE = """usage: dockyard COMMAND

commands:
  version    show the versions of dockyard and its runtime

The OCI runtime is its own executable: dockyard-runtime --help.
"""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        sys.exit(0)
    if args[0] in ("version", "--version", "-v"):
        from dockyard.runtime.default_spec import SPEC_VERSION, VERSION

        sys.stdout.write(f"dockyard version {VERSION}\nruntime: dockyard-runtime {VERSION} "
                         f"(OCI runtime-spec {SPEC_VERSION})\n")
        sys.exit(0)
    sys.stderr.write(f"dockyard: '{args[0]}' is not a dockyard command.\nSee 'dockyard --help'.\n")
    sys.exit(125)
