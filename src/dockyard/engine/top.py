"""``docker top``: the host's ``ps`` output, keeping the rows of the container's processes.

As dockerd: run ``ps`` with the user's arguments (default ``-ef``), find the ``PID`` column in the
header, keep the lines whose pid the runtime lists for the container. ``ps`` wraps nothing: the
last column (the command) may contain spaces, so each line is split into as many fields as the
header has titles.
"""

from __future__ import annotations

import asyncio
import shlex

from dockyard.errors import InvalidArgument


def parse_ps(output: str, pids: set[int]) -> tuple[list[str], list[list[str]]]:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    if not lines:
        raise InvalidArgument("ps printed nothing")
    titles = lines[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        raise InvalidArgument("Couldn't find PID field in ps output") from None
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= pid_col:
            continue
        try:
            pid = int(fields[pid_col])
        except ValueError:
            continue
        if pid in pids:
            rows.append(fields)
    return titles, rows


async def top(pids: list[int], ps_args: str = "") -> tuple[list[str], list[list[str]]]:
    args = shlex.split(ps_args) if ps_args else ["-ef"]
    proc = await asyncio.create_subprocess_exec(
        "ps", *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise InvalidArgument(f"Error running ps: {err.decode(errors='replace').strip()}")
    return parse_ps(out.decode(errors="replace"), set(pids))
