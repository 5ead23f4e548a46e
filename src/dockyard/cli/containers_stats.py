"""``stats``: docker's table (CONTAINER ID, NAME, CPU %, MEM USAGE / LIMIT, MEM %, NET I/O,
BLOCK I/O, PIDS) computed from the API's stats JSON the way the docker CLI computes it.

CPU % is the container's share of the host's CPU time between the two samples of one stats
document (``precpu_stats`` → ``cpu_stats``) times the online CPUs; memory usage leaves out the
inactive page cache (``total_inactive_file`` on cgroup v1, ``inactive_file`` on v2).
``--no-stream`` prints one table; otherwise one thread per container reads its stream and the
table is redrawn every second until Ctrl-C.
"""

from __future__ import annotations

from dockyard.cli.containers_util import client, command_error, parse, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from dockyard.cli.common import Context

STATS_FLAGS = {
    "all": ("a", "bool", "Show all containers (default shows just running)"),
    "format": ("", "str", "Format output using a custom template"),
    "no-stream": ("", "bool", "Disable streaming stats and only pull the first result"),
    "no-trunc": ("", "bool", "Do not truncate output"),
}
STATS_FORMAT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
                "\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"ID": "CONTAINER ID", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
                 "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
                 "Container": "CONTAINER", "Name": "NAME"}
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB")


def _human(n: float, units: tuple[str, ...], base: float, digits: int) -> str:
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{n:.{digits}g}{units[i]}"


def bytes_size(n: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits ("312KiB", "23.54GiB")."""
    return _human(n, _BINARY, 1024.0, 4)


def human3(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3): decimal units ("1.98MB", "0B")."""
    return _human(n, _DECIMAL, 1000.0, 3)


def cpu_percent(s: dict[str, Any]) -> float:
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    usage, pre_usage = cpu.get("cpu_usage") or {}, pre.get("cpu_usage") or {}
    cpu_delta = (usage.get("total_usage") or 0) - (pre_usage.get("total_usage") or 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len(usage.get("percpu_usage") or ())
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(s: dict[str, Any]) -> tuple[float, float]:
    """(usage without inactive file cache, limit)."""
    mem = s.get("memory_stats") or {}
    usage = mem.get("usage") or 0
    stats = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in stats:
            if stats[key] < usage:
                usage -= stats[key]
            break
    return float(usage), float(mem.get("limit") or 0)


def block_io(s: dict[str, Any]) -> tuple[int, int]:
    read = write = 0
    for entry in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or ():
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += entry.get("value") or 0
        elif op == "write":
            write += entry.get("value") or 0
    return read, write


def network_io(s: dict[str, Any]) -> tuple[int, int]:
    rx = tx = 0
    for net in (s.get("networks") or {}).values():
        rx += net.get("rx_bytes") or 0
        tx += net.get("tx_bytes") or 0
    return rx, tx


def stats_row(container: str, s: dict[str, Any], no_trunc: bool = False) -> dict[str, str]:
    """The fields docker's stats formatter offers, from one stats document."""
    usage, limit = memory_usage(s)
    rx, tx = network_io(s)
    r, w = block_io(s)
    cid = s.get("id", "")
    name = s.get("name", "")
    return {
        "BlockIO": f"{human3(r)} / {human3(w)}",
        "CPUPerc": f"{cpu_percent(s):.2f}%",
        "Container": container,
        "ID": cid if no_trunc else cid[:12],
        "MemPerc": f"{usage / limit * 100:.2f}%" if limit else "0.00%",
        "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
        "Name": name[1:] if name.startswith("/") else name,
        "NetIO": f"{human3(rx)} / {human3(tx)}",
        "PIDs": str((s.get("pids_stats") or {}).get("current") or 0),
    }


def render_stats(rows: Sequence[dict[str, str]], fmt: str = "") -> str:
    from dockyard.cli.format import Template

    if fmt.replace(" ", "") == "{{json.}}":
        import json

        return "".join(json.dumps(r, separators=(",", ":"), sort_keys=True) + "\n" for r in rows)
    return Template(fmt or STATS_FORMAT, STATS_HEADERS).render_all(rows)


def cmd_stats(ctx: Context, argv: Sequence[str], verb: str = "stats") -> int:
    from dockyard.cli.client import ClientError

    v, names = parse(ctx, verb, argv, STATS_FLAGS, f"{verb} [OPTIONS] [CONTAINER...]",
                     "Display a live stream of container(s) resource usage statistics")
    api = client(ctx)
    try:
        if not names:
            listed = api.get("/containers/json", {"all": True} if v.get("all") else None) or []
            names = [c["Id"] for c in listed]
    except ClientError as e:
        raise command_error(e) from None
    fmt, no_trunc = v.get("format", ""), bool(v.get("no-trunc"))
    if v.get("no-stream"):
        rows, failed = [], False
        for name in names:
            try:
                s = api.get(f"/containers/{quote(name)}/stats", {"stream": False})
            except ClientError as e:
                ctx.err.write(f"{e}\n")
                failed = True
                continue
            rows.append(stats_row(name, s or {}, no_trunc))
        ctx.out.write(render_stats(rows, fmt))
        return 1 if failed else 0
    return _stream(ctx, api, names, fmt, no_trunc)


def _stream(ctx: Context, api: Any, names: Sequence[str], fmt: str, no_trunc: bool) -> int:
    import threading
    import time

    from dockyard.cli.client import ClientError, json_messages

    latest: dict[str, dict[str, str]] = {}
    lock = threading.Lock()

    def follow(name: str) -> None:
        try:
            resp = api.stream("GET", f"/containers/{quote(name)}/stats", {"stream": True})
            for doc in json_messages(resp):
                with lock:
                    latest[name] = stats_row(name, doc, no_trunc)
        except (ClientError, OSError, ValueError):
            return

    for name in names:
        threading.Thread(target=follow, args=(name,), daemon=True).start()
    try:
        while True:
            time.sleep(1)
            with lock:
                rows = [latest[n] for n in names if n in latest]
            ctx.out.write("\033[2J\033[H" + render_stats(rows, fmt))
            ctx.out.flush()
    except KeyboardInterrupt:
        return 0
