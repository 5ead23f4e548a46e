"""``update``'s flags (and ``-r FILE``) turned into typed resources plus the raw JSON to record."""

from __future__ import annotations

import sys

from dockyard import leanjson as json
from dockyard.errors import InvalidArgument
from dockyard.oci.runtime_spec import Resources, parse_resources

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30,
          "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "p": 1 << 50, "pb": 1 << 50}
# flag -> (section, key, is a byte size)
_FLAGS = {
    "memory": ("memory", "limit", True), "memory-reservation": ("memory", "reservation", True),
    "memory-swap": ("memory", "swap", True), "kernel-memory": ("memory", "kernel", True),
    "kernel-memory-tcp": ("memory", "kernelTCP", True), "cpu-shares": ("cpu", "shares", False),
    "cpu-period": ("cpu", "period", False), "cpu-quota": ("cpu", "quota", False),
    "cpu-rt-period": ("cpu", "realtimePeriod", False), "cpu-rt-runtime": ("cpu", "realtimeRuntime", False),
    "pids-limit": ("pids", "limit", False), "blkio-weight": ("blockIO", "weight", False),
}


def parse_size(text: str, flag: str) -> int:
    """Bytes, or a number with a binary unit (64m, 1g), or -1 for unlimited."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    num = t.rstrip("kmgtpb")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        raise InvalidArgument(f"--{flag}: invalid size {text!r}") from None
    if unit not in _UNITS or value < 0:
        raise InvalidArgument(f"--{flag}: invalid size {text!r}")
    return int(value * _UNITS[unit])


def resources_from_flags(opts: dict) -> tuple[Resources, dict]:
    raw: dict = {}
    if opts.get("resources"):
        path = opts["resources"]
        try:
            if path == "-":
                raw = json.loads(sys.stdin.read())
            else:
                with open(path, "rb") as f:
                    raw = json.loads(f.read())
        except OSError as e:
            raise InvalidArgument(f"update -r {path}: {e.strerror}") from None
        except ValueError as e:
            raise InvalidArgument(f"update -r {path}: invalid JSON: {e}") from None
        if not isinstance(raw, dict):
            raise InvalidArgument(f"update -r {path}: expected a JSON object of linux.resources")
    for flag, (section, key, is_size) in _FLAGS.items():
        if flag in opts and opts[flag] != "":
            text = opts[flag]
            if is_size:
                value = parse_size(text, flag)
            else:
                try:
                    value = int(text)
                except ValueError:
                    raise InvalidArgument(f"--{flag}: not a number: {text!r}") from None
            raw.setdefault(section, {})[key] = value
    for flag, key in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        if opts.get(flag):
            raw.setdefault("cpu", {})[key] = opts[flag]
    if opts.get("l3-cache-schema") or opts.get("mem-bw-schema"):
        raise InvalidArgument("update: Intel RDT is not supported on this host")
    if not raw:
        raise InvalidArgument("update: nothing to update (give a limit flag or -r FILE)")
    return parse_resources(raw, "resources"), raw
