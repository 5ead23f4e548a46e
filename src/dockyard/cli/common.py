"""What every verb module of the CLI shares: the ``Context`` (store root, streams, the service), a
docker-like argument parser, and the conversions of times and flags docker's output needs.

Exit codes follow the docker CLI: 0 success; 1 when the command failed (an engine error, a missing
image, wrong number of arguments); 125 for a flag the command does not know or cannot parse.
Errors are printed as ``Error: <message>`` on stderr (docker prints "Error response from daemon:"
for what its daemon said; here there is no daemon yet, see issue #4).

Stdlib only: each verb imports what it needs (the image service, the archive code) when it runs.
"""

from __future__ import annotations

import argparse
import calendar
import re
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, BinaryIO, TextIO

DEFAULT_ROOT = "/var/lib/dockyard"
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:?\d\d)?\Z")


class UsageError(Exception):
    """A flag error: printed with a "See --help" hint, exit 125 (docker's flag errors)."""

    code = 125


class CommandError(Exception):
    """A failure the command reports itself (wrong number of arguments, a refused terminal)."""

    code = 1


class HelpShown(Exception):
    """``--help`` was printed; exit 0."""


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


class Context:
    """Streams, store root and the (lazily opened) image service of one CLI invocation.

    ``open_service(root)`` is a parameter so unit tests can hand in a fake; the default opens
    ``ImageService`` on ``root`` (which takes the store's lock for the command's duration).
    """

    def __init__(self, root: str = DEFAULT_ROOT, *, out: TextIO | None = None,
                 err: TextIO | None = None, inp: BinaryIO | None = None,
                 out_binary: BinaryIO | None = None, debug: bool = False,
                 open_service: Callable[[str], Any] | None = None,
                 tty: dict[str, bool] | None = None) -> None:
        self.root = root
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.inp = inp if inp is not None else sys.stdin.buffer
        self._out_binary = out_binary
        self.debug = debug
        self._open = open_service or _open_image_service
        self._tty = tty
        self._svc: Any = None

    @property
    def out_binary(self) -> BinaryIO:
        if self._out_binary is None:
            self.out.flush()
            return sys.stdout.buffer
        return self._out_binary

    def isatty(self, stream: str) -> bool:
        """Whether ``"in"`` or ``"out"`` is a terminal (tests say so through ``tty``)."""
        if self._tty is not None:
            return self._tty.get(stream, False)
        f = sys.stdin if stream == "in" else sys.stdout
        try:
            return f.isatty()
        except (AttributeError, ValueError):
            return False

    def service(self) -> Any:
        if self._svc is None:
            self._svc = self._open(self.root)
        return self._svc

    def close(self) -> None:
        svc, self._svc = self._svc, None
        if svc is not None and hasattr(svc, "close"):
            svc.close()


def _open_image_service(root: str) -> Any:
    from dockyard.image.service import ImageService

    return ImageService.open(root)


# --------------------------------------------------------------------------------------------------
# conversions

def parse_time(text: str) -> float | None:
    """Unix time of an RFC 3339 timestamp (``2024-05-01T12:00:00.123456789Z``); None if not one."""
    m = _RFC3339.match(text or "")
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    t = float(calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0)))
    if frac:
        t += float(frac)
    if tz and tz not in "Zz":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        t -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return t


def created_since(created: str, now: float | None = None) -> str:
    """docker's CREATED column: "2 weeks ago" ("N/A" without a timestamp)."""
    from dockyard.cli.format import ago

    t = parse_time(created)
    return "N/A" if t is None else ago(t, now)


def created_at(created: str) -> str:
    """docker's CreatedAt: Go's time format ``2006-01-02 15:04:05 -0700 MST`` in local time."""
    t = parse_time(created)
    if t is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(t))


def parse_bool(flag: str, value: str) -> bool:
    v = value.lower()
    if v in ("1", "t", "true", "yes"):
        return True
    if v in ("0", "f", "false", "no"):
        return False
    raise UsageError(f'invalid argument "{value}" for "{flag}" flag: strconv.ParseBool: '
                     f'parsing "{value}": invalid syntax')


def short_id(image_id: object, no_trunc: bool = False) -> str:
    """``sha256:0123…`` → ``0123456789ab`` (docker's 12 characters) or the whole id."""
    text = str(image_id)
    if no_trunc:
        return text
    return text.partition(":")[2][:12] if ":" in text else text[:12]


def ellipsis(text: str, width: int) -> str:
    """docker's formatter.Ellipsis: cut to ``width`` characters, the last one "…"."""
    return text if len(text) <= width else text[:width - 1] + "…"


def confirm(ctx: Context, prompt: str) -> bool:
    """docker's ``[y/N]`` prompt; without a terminal on stdin the answer is no."""
    ctx.out.write(f"{prompt} [y/N] ")
    ctx.out.flush()
    if not ctx.isatty("in"):
        ctx.out.write("\n")
        return False
    line = ctx.inp.readline().decode("utf-8", "replace").strip().lower()
    return line in ("y", "yes")
