"""The daemon's typed configuration, built once from flags, the config file and defaults.

Why one object: every component receives what it needs from here, so nothing deep in the engine
reads ``os.environ`` or a file of its own, and tests build a config directly.
Precedence: a flag given on the command line > the key in ``--config`` (docker's daemon.json
names: ``data-root``, ``exec-root``, ``hosts``, ``log-level``) > the defaults below.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass

from dockyard.errors import InvalidArgument

DEFAULT_ROOT = "/var/lib/dockyard"
DEFAULT_EXEC_ROOT = "/run/dockyard"
DEFAULT_CONFIG = "/etc/dockyard/daemon.json"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
DEFAULT_RUNTIME = "dockyard-runtime"


@dataclass(frozen=True)
class Listener:
    """One ``-H`` address: ``unix`` with a socket path, or ``tcp`` on a loopback host."""

    kind: str  # "unix" | "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.kind == "unix" else f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class DaemonConfig:
    root: str = DEFAULT_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    listeners: tuple[Listener, ...] = ()
    log_level: str = "info"
    config_file: str = ""
    runtime: str = DEFAULT_RUNTIME  # the default OCI runtime's name
    runtimes: tuple[tuple[str, str], ...] = ()  # name -> executable (besides the built-in ones)
    bridge: str = "dockyard0"  # -b/--bridge: the default network's bridge interface
    bip: str = ""  # --bip: the default bridge's address and prefix
    default_address_pools: tuple[tuple[str, int], ...] = ()
    firewall_table: str = "dockyard"  # the one nftables table (inet family) this daemon owns

    @property
    def default_socket(self) -> str:
        return f"{self.exec_root}/dockyard.sock"


def parse_host(text: str) -> Listener:
    """``unix:///path`` or ``tcp://127.0.0.1:PORT``. Non-loopback TCP is refused: the API grants
    root on this machine and there is no TLS yet."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise InvalidArgument(f"invalid host {text!r}: use unix:///path or tcp://127.0.0.1:PORT")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise InvalidArgument(f"invalid host {text!r}: the socket path must be absolute")
        return Listener("unix", path=rest)
    if scheme == "tcp":
        host, colon, port = rest.rstrip("/").rpartition(":")
        host = host.strip("[]")
        if not colon or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgument(f"invalid host {text!r}: tcp needs HOST:PORT")
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise InvalidArgument(f"refusing to listen on {text}: only loopback TCP hosts "
                                  "(127.0.0.1, ::1) are allowed (the API has no TLS)")
        return Listener("tcp", host=host, port=int(port))
    raise InvalidArgument(f"invalid host {text!r}: unsupported scheme {scheme!r}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyard daemon", description=(
        "Run the dockyard daemon: the Docker Engine API on a unix socket"))
    p.add_argument("--root", help=f"Root of the store (default {DEFAULT_ROOT})")
    p.add_argument("--exec-root", help=f"Runtime state and socket directory (default {DEFAULT_EXEC_ROOT})")
    p.add_argument("-H", "--host", action="append", dest="hosts",
                   help="Address to listen on: unix:///path or tcp://127.0.0.1:PORT (repeatable)")
    p.add_argument("-l", "--log-level", choices=LOG_LEVELS, help="Logging level (default info)")
    p.add_argument("--config", help=f"Daemon config file (default {DEFAULT_CONFIG} if it exists)")
    p.add_argument("--runtime", dest="default_runtime",
                   help=f"Default OCI runtime for containers (default {DEFAULT_RUNTIME}; runc)")
    p.add_argument("-b", "--bridge", help="The default network's bridge interface (default "
                   "dockyard0; another --exec-root gets its own)")
    p.add_argument("--bip", help="The default bridge's address and prefix (e.g. 10.99.0.1/24)")
    p.add_argument("--default-address-pool", action="append", dest="address_pools", default=[],
                   metavar="base=CIDR,size=N", help="Where network subnets are picked from")
    p.add_argument("--add-runtime", action="append", dest="add_runtimes", default=[],
                   metavar="NAME=PATH", help="Register an OCI runtime (repeatable)")
    return p


def _read_file(path: str, required: bool) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        if required:
            raise InvalidArgument(f"config file {path}: does not exist") from None
        return {}
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"config file {path}: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"config file {path}: not a JSON object")
    known = {"data-root", "exec-root", "hosts", "log-level", "default-runtime", "runtimes",
             "bridge", "bip", "default-address-pools"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidArgument(f"config file {path}: unknown keys: {', '.join(unknown)}")
    return data


def build_config(argv: list[str]) -> DaemonConfig:
    """Flags > config file > defaults. Usage errors exit through argparse (code 2)."""
    a = _parser().parse_args(argv)
    path = a.config or DEFAULT_CONFIG
    f = _read_file(path, required=a.config is not None)
    exec_root = a.exec_root or f.get("exec-root") or DEFAULT_EXEC_ROOT
    hosts = a.hosts or f.get("hosts") or [f"unix://{exec_root}/dockyard.sock"]
    level = a.log_level or f.get("log-level") or "info"
    if level not in LOG_LEVELS:
        raise InvalidArgument(f"invalid log level {level!r}: use one of {', '.join(LOG_LEVELS)}")
    runtimes: dict[str, str] = {}
    for name, spec in (f.get("runtimes") or {}).items():
        runtimes[name] = spec.get("path", "") if isinstance(spec, dict) else str(spec)
    for text in a.add_runtimes:
        name, eq, rpath = text.partition("=")
        if not eq or not name or not rpath:
            raise InvalidArgument(f"invalid --add-runtime {text!r}: use NAME=PATH")
        runtimes[name] = rpath
    for name, rpath in runtimes.items():
        if not os.path.isabs(rpath):
            raise InvalidArgument(f"runtime {name}: path {rpath!r} must be absolute")
    runtime = a.default_runtime or f.get("default-runtime") or DEFAULT_RUNTIME
    if runtime not in runtimes and runtime not in BUILTIN_RUNTIMES:
        raise InvalidArgument(f"default runtime {runtime!r} is not known: use one of "
                              f"{', '.join(sorted({*BUILTIN_RUNTIMES, *runtimes}))} or "
                              "--add-runtime NAME=PATH")
    from dockyard.network.ipam import parse_pools

    pools = a.address_pools or [p if isinstance(p, str) else
                                f"base={p.get('base')},size={p.get('size')}"
                                for p in f.get("default-address-pools") or ()]
    # a second daemon (another --exec-root: tests, side-by-side setups) must not share the
    # first one's bridge or firewall table: both names get a suffix derived from the exec root
    suffix = "" if exec_root == DEFAULT_EXEC_ROOT else \
        hashlib.sha256(exec_root.encode()).hexdigest()[:8]
    bridge = a.bridge or f.get("bridge") or (f"dyb{suffix}" if suffix else "dockyard0")
    if len(bridge) > 15 or not bridge.replace("-", "").replace("_", "").isalnum():
        raise InvalidArgument(f"invalid bridge name {bridge!r}: at most 15 letters, digits, "
                              "'-', '_'")
    return DaemonConfig(root=a.root or f.get("data-root") or DEFAULT_ROOT, exec_root=exec_root,
                        listeners=tuple(parse_host(h) for h in hosts), log_level=level,
                        config_file=path if f else "", runtime=runtime,
                        runtimes=tuple(sorted(runtimes.items())), bridge=bridge,
                        bip=a.bip or f.get("bip") or "",
                        default_address_pools=tuple(parse_pools(pools)) if pools else (),
                        firewall_table=f"dockyard_{suffix}" if suffix else "dockyard")


#: Runtimes known without configuration; their paths are found at start (``runtime_paths``).
BUILTIN_RUNTIMES = ("dockyard-runtime", "runc")


def own_runtime() -> str:
    """The dockyard-runtime launcher of this Python (the venv's): the daemon's own code, so the
    engine runs its light verbs in-process (engine/runtime_cmd.py); "" when there is none."""
    import sys

    mine = os.path.join(os.path.dirname(sys.executable), "dockyard-runtime")
    return mine if os.access(mine, os.X_OK) else ""


def runtime_paths(config: DaemonConfig) -> dict[str, str]:
    """Every runtime's executable: dockyard-runtime next to this Python (the venv's launcher) or
    on PATH, runc on PATH, then the configured ones."""
    import shutil

    out: dict[str, str] = {}
    mine = own_runtime()
    found = mine or shutil.which("dockyard-runtime")
    if found:
        out["dockyard-runtime"] = found
    runc = shutil.which("runc") or ("/usr/sbin/runc" if os.access("/usr/sbin/runc", os.X_OK)
                                    else None)
    if runc:
        out["runc"] = runc
    out.update(dict(config.runtimes))
    return out
