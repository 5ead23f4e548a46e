"""What every verb module of the CLI shares: the ``Context`` (streams, the API client), the
errors and exit codes, and the conversions of times and flags docker's output needs.

Exit codes follow the docker CLI: 0 success; 1 when the command failed (the daemon's error, a
missing image, wrong number of arguments, no daemon); 125 for a flag the command does not know or
cannot parse. What the daemon refused is printed as ``Error response from daemon: <message>``,
the CLI's own failures as ``Error: <message>``.

Stdlib only: the verbs talk to the daemon (``dockyard.cli.client``); nothing here opens the store.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO, TextIO

# Not imported here: argparse (cli/argparser.py), re and calendar (parse_time): with their enum,
# locale and datetime they cost ~10 ms, and the container verbs, the hot ones, use none of them.
_RFC3339 = r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:?\d\d)?\Z"


class UsageError(Exception):
    """A flag error: printed with a "See --help" hint, exit 125 (docker's flag errors)."""

    code = 125


class CommandError(Exception):
    """A failure the command reports itself (wrong number of arguments, a refused terminal)."""

    code = 1


class HelpShown(Exception):
    """``--help`` was printed; exit 0."""


class Context:
    """Streams and the (lazily made) API client of one CLI invocation.

    ``host`` is the ``-H`` value (None: ``DOCKYARD_HOST`` or the default socket, see
    ``dockyard.cli.client``). ``make_client(host)`` is a parameter so unit tests can hand in a fake.
    """

    def __init__(self, host: str | None = None, *, out: TextIO | None = None,
                 err: TextIO | None = None, inp: BinaryIO | None = None,
                 out_binary: BinaryIO | None = None, debug: bool = False,
                 make_client: Callable[[str | None], Any] | None = None,
                 tty: dict[str, bool] | None = None) -> None:
        self.host = host
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.inp = inp if inp is not None else sys.stdin.buffer
        self._out_binary = out_binary
        self.debug = debug
        self._make_client = make_client or _default_client
        self._tty = tty
        self._client: Any = None

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

    def client(self) -> Any:
        """The ``dockyard.cli.client.Client`` for the chosen daemon (made on first use)."""
        if self._client is None:
            self._client = self._make_client(self.host)
        return self._client

    def close(self) -> None:
        self._client = None


def _default_client(host: str | None) -> Any:
    from dockyard.cli.client import Client

    return Client(host)


# --------------------------------------------------------------------------------------------------
# conversions

def parse_time(text: str) -> float | None:
    """Unix time of an RFC 3339 timestamp (``2024-05-01T12:00:00.123456789Z``); None if not one."""
    import calendar
    import re

    m = re.match(_RFC3339, text or "")
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


def _when(created: str | float | int | None) -> float | None:
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        return float(created) if created > 0 else None
    return parse_time(created or "")


def created_since(created: str | float | int | None, now: float | None = None) -> str:
    """docker's CREATED column: "2 weeks ago" ("N/A" without a timestamp). ``created`` is RFC 3339
    text or unix seconds (the API's ``Created``)."""
    from dockyard.cli.format import ago

    t = _when(created)
    return "N/A" if t is None else ago(t, now)


def created_at(created: str | float | int | None) -> str:
    """docker's CreatedAt: Go's time format ``2006-01-02 15:04:05 -0700 MST`` in local time."""
    t = _when(created)
    if t is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(t))


def rfc3339_local(seconds: float | int | None) -> str:
    """Go's ``time.Unix(s, 0).Format(time.RFC3339)`` in local time (``Z`` for UTC)."""
    if not seconds or seconds <= 0:
        return ""
    tm = time.localtime(seconds)
    off = tm.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + zone


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
