"""``Parser``: argparse with docker's error shape and exit codes, for the image and system verbs
(the container verbs parse with ``cli/run_flags.py``). Its own module so that the container
verbs do not import argparse (and ``re`` with it): ~8 ms per command.
"""

from __future__ import annotations

import argparse

from dockyard.cli.common import CommandError, HelpShown, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from dockyard.cli.common import Context


class Parser(argparse.ArgumentParser):
    """``argparse`` with docker's error shape and exit codes, writing help to the context's out."""

    def __init__(self, ctx: Context, command: str, usage: str, description: str) -> None:
        super().__init__(prog=f"dockyard {command}", usage=usage, description=description,
                         allow_abbrev=False)
        self.ctx = ctx
        self.command = command

    def error(self, message: str) -> None:  # type: ignore[override]
        message = message.replace("unrecognized arguments:", "unknown flag:")
        raise UsageError(f"{message}\nSee '{self.prog} --help'.")

    def print_help(self, file: Any = None) -> None:
        self.ctx.out.write(self.format_help())

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            self.ctx.err.write(message)
        raise HelpShown()

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        return self.parse_intermixed_args(list(argv))

    def require(self, args: Sequence[str], exactly: int | None = None, at_least: int | None = None,
                at_most: int | None = None) -> None:
        """docker's "requires exactly N arguments" checks (exit 1)."""
        n = len(args)
        if exactly is not None and n != exactly:
            what = f"exactly {exactly} argument{'s' if exactly != 1 else ''}"
        elif at_least is not None and n < at_least:
            what = f"at least {at_least} argument{'s' if at_least != 1 else ''}"
        elif at_most is not None and n > at_most:
            what = f"at most {at_most} argument{'s' if at_most != 1 else ''}"
        else:
            return
        raise CommandError(f'"{self.prog}" requires {what}.\nSee \'{self.prog} --help\'.\n\n'
                           f"Usage:  {self.usage}\n\n{self.description}")
