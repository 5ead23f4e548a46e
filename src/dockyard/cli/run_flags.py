"""``docker run`` / ``docker create`` flags → the ``POST /containers/create`` request (pure).

``parse_run(argv, command="run")`` reads the argv after the verb the way the docker CLI 28 does
(pflag: flags stop at the image, ``-it`` bundles, ``--flag=value``, ``-eA=1``) and returns a
``RunRequest``: the query (``name``, ``platform``), the JSON body the docker CLI sends (every key,
defaults included: captured from the real CLI; see tests/unit/test_cli_run_flags.py) and the
client-side options (``-d``, ``--rm``, ``--sig-proxy``, ``--cidfile``, ``--pull``...).

Errors raise ``UsageError`` (exit 125) with docker's wording: ``invalid argument "1x" for "-m,
--memory" flag: ...`` for a value a flag cannot parse, ``dockyard: ...`` for options that
conflict. Files named by ``--env-file``, ``--label-file`` and ``seccomp=PROFILE`` are read through
``read_file`` (a parameter, so tests stay pure); ``-e NAME`` takes ``NAME``'s value from ``env``.
"""

from __future__ import annotations

from dockyard.cli.common import CommandError, UsageError
from dockyard.errors import InvalidArgument
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

USAGE = {"run": "dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]",
         "create": "dockyard create [OPTIONS] IMAGE [COMMAND] [ARG...]"}

# long name -> (short, kind, dest); kind: bool | str | list
_FLAGS: dict[str, tuple[str, str]] = {
    "add-host": ("", "list"), "annotation": ("", "list"), "attach": ("a", "list"),
    "blkio-weight": ("", "str"), "blkio-weight-device": ("", "list"), "cap-add": ("", "list"),
    "cap-drop": ("", "list"), "cgroup-parent": ("", "str"), "cgroupns": ("", "str"),
    "cidfile": ("", "str"), "cpu-count": ("", "str"), "cpu-percent": ("", "str"),
    "cpu-period": ("", "str"), "cpu-quota": ("", "str"), "cpu-rt-period": ("", "str"),
    "cpu-rt-runtime": ("", "str"), "cpu-shares": ("c", "str"), "cpus": ("", "str"),
    "cpuset-cpus": ("", "str"), "cpuset-mems": ("", "str"), "device": ("", "list"),
    "device-cgroup-rule": ("", "list"), "device-read-bps": ("", "list"),
    "device-read-iops": ("", "list"), "device-write-bps": ("", "list"),
    "device-write-iops": ("", "list"), "disable-content-trust": ("", "bool"),
    "dns": ("", "list"), "dns-opt": ("", "list"), "dns-option": ("", "list"),
    "dns-search": ("", "list"), "domainname": ("", "str"), "entrypoint": ("", "str"),
    "env": ("e", "list"), "env-file": ("", "list"), "expose": ("", "list"),
    "group-add": ("", "list"), "health-cmd": ("", "str"), "health-interval": ("", "str"),
    "health-retries": ("", "str"), "health-start-interval": ("", "str"),
    "health-start-period": ("", "str"), "health-timeout": ("", "str"), "help": ("", "bool"),
    "hostname": ("h", "str"), "init": ("", "bool"), "interactive": ("i", "bool"),
    "ip": ("", "str"), "ip6": ("", "str"), "ipc": ("", "str"), "isolation": ("", "str"),
    "kernel-memory": ("", "str"), "label": ("l", "list"), "label-file": ("", "list"),
    "link": ("", "list"), "link-local-ip": ("", "list"), "log-driver": ("", "str"),
    "log-opt": ("", "list"), "mac-address": ("", "str"), "memory": ("m", "str"),
    "memory-reservation": ("", "str"), "memory-swap": ("", "str"),
    "memory-swappiness": ("", "str"), "mount": ("", "list"), "name": ("", "str"),
    "net": ("", "str"), "net-alias": ("", "list"), "network": ("", "str"),
    "network-alias": ("", "list"), "no-healthcheck": ("", "bool"),
    "oom-kill-disable": ("", "bool"), "oom-score-adj": ("", "str"), "pid": ("", "str"),
    "pids-limit": ("", "str"), "platform": ("", "str"), "privileged": ("", "bool"),
    "publish": ("p", "list"), "publish-all": ("P", "bool"), "pull": ("", "str"),
    "quiet": ("q", "bool"), "read-only": ("", "bool"), "restart": ("", "str"), "rm": ("", "bool"),
    "runtime": ("", "str"), "security-opt": ("", "list"), "shm-size": ("", "str"),
    "stop-signal": ("", "str"), "stop-timeout": ("", "str"), "storage-opt": ("", "list"),
    "sysctl": ("", "list"), "tmpfs": ("", "list"), "tty": ("t", "bool"), "ulimit": ("", "list"),
    "user": ("u", "str"), "userns": ("", "str"), "uts": ("", "str"), "volume": ("v", "list"),
    "volume-driver": ("", "str"), "volumes-from": ("", "list"), "workdir": ("w", "str"),
}
_RUN_ONLY: dict[str, tuple[str, str]] = {
    "detach": ("d", "bool"), "detach-keys": ("", "str"), "sig-proxy": ("", "bool"),
}
#: flags that are other names of one list (pflag's normalized names)
ALIASES = {"dns-opt": "dns-option", "net": "network", "net-alias": "network-alias"}
_ULIMITS = frozenset(("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                      "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"))
_RESTART = ("no", "always", "on-failure", "unless-stopped")


class RunOptions(Record):
    """What the client does around the create call (not part of the body)."""

    detach: bool = False
    interactive: bool = False
    tty: bool = False
    rm: bool = False
    sig_proxy: bool = True
    detach_keys: str = ""
    cidfile: str = ""
    pull: str = "missing"
    quiet: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False


class RunRequest(Record):
    image: str
    query: dict
    body: dict
    options: RunOptions


# ------------------------------------------------------------------------------------------ argv

def _display(long: str, table: Mapping[str, tuple[str, str]]) -> str:
    short = table[long][0]
    return f"-{short}, --{long}" if short else f"--{long}"


def parse_flags(argv: Sequence[str], table: Mapping[str, tuple[str, str]], *,
                interspersed: bool = False) -> tuple[dict[str, Any], list[str]]:
    """pflag's parsing: ``(values, positionals)``; ``values`` holds only the flags given (lists
    append, others keep the last value). Without ``interspersed`` the first positional ends the
    flags (``run IMAGE -la`` passes ``-la`` to the command)."""
    shorts = {s: name for name, (s, _) in table.items() if s}
    values: dict[str, Any] = {}
    rest: list[str] = []
    args = list(argv)
    i = 0

    def put(name: str, value: Any) -> None:
        if table[name][1] == "list":
            values.setdefault(name, []).append(value)
        else:
            values[name] = value

    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            rest += args[i:]
            break
        if a.startswith("--") and len(a) > 2:
            name, eq, value = a[2:].partition("=")
            if name not in table:
                raise UsageError(f"unknown flag: --{name}")
            name = ALIASES.get(name, name)
            kind = table[name][1]
            if kind == "bool":
                put(name, _parse_bool(f"--{name}", value, table) if eq else True)
            elif eq:
                put(name, value)
            elif i < len(args):
                put(name, args[i])
                i += 1
            else:
                raise UsageError(f"flag needs an argument: --{name}")
        elif a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                c = a[j]
                name = shorts.get(c)
                if name is None:
                    raise UsageError(f"unknown shorthand flag: '{c}' in {a}")
                kind = table[name][1]
                j += 1
                if kind == "bool":
                    if j < len(a) and a[j] == "=":
                        put(name, _parse_bool(f"-{c}", a[j + 1:], table, name))
                        break
                    put(name, True)
                    continue
                if j < len(a):
                    put(name, a[j + 1:] if a[j] == "=" else a[j:])
                elif i < len(args):
                    put(name, args[i])
                    i += 1
                else:
                    raise UsageError(f"flag needs an argument: '{c}' in {a}")
                break
        else:
            rest.append(a)
            if not interspersed:
                rest += args[i:]
                break
    return values, rest


def _parse_bool(flag: str, value: str, table: Mapping[str, tuple[str, str]],
                name: str = "") -> bool:
    v = value.lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    shown = _display(name, table) if name else flag
    raise UsageError(f'invalid argument "{value}" for "{shown}" flag: strconv.ParseBool: '
                     f'parsing "{value}": invalid syntax')


# ------------------------------------------------------------------------------------------ values

def _bad(flag: str, value: str, why: str) -> UsageError:
    table = _FLAGS if flag in _FLAGS else _RUN_ONLY
    return UsageError(f'invalid argument "{value}" for "{_display(flag, table)}" flag: {why}')


def _fail(message: str) -> UsageError:
    return UsageError(f"dockyard: {message}")


def _int(flag: str, value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise _bad(flag, value, f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def _size(flag: str, value: str) -> int:
    from dockyard.engine.units import parse_size

    try:
        return parse_size(value)
    except InvalidArgument as e:
        unit = value.lstrip("0123456789. ")
        why = f"invalid suffix: '{unit}'" if "invalid suffix" in str(e) else \
            f"invalid size: '{value}'"
        raise _bad(flag, value, why) from None


def _duration_ns(flag: str, value: str) -> int:
    from dockyard.engine.units import parse_duration

    try:
        return round(parse_duration(value) * 1_000_000_000)
    except InvalidArgument:
        raise _bad(flag, value, f'time: invalid duration "{value}"') from None


def _nano_cpus(value: str) -> int:
    from fractions import Fraction

    try:
        nano = Fraction(value) * 1_000_000_000
    except (ValueError, ZeroDivisionError):
        raise _bad("cpus", value, f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None
    if nano.denominator != 1:
        raise _bad("cpus", value, "value is too precise")
    return int(nano)


def _kv_map(flag: str, values: Sequence[str], empty_ok: bool = True) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not k or (not eq and not empty_ok):
            raise _bad(flag, v, f"invalid key-value pair {v!r}" if k else
                       f"invalid label '{v}': empty name")
        out[k] = val
    return out


def _file_lines(path: str, read_file: Callable[[str], str]) -> list[str]:
    try:
        text = read_file(path)
    except FileNotFoundError:
        raise _fail(f"open {path}: no such file or directory") from None
    except OSError as e:
        raise _fail(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    out = []
    for line in text.splitlines():
        line = line.lstrip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _env_list(values: dict[str, Any], env: Mapping[str, str],
              read_file: Callable[[str], str]) -> list[str]:
    """``--env-file`` entries (a bare NAME only when set locally), then ``-e`` entries deduplicated
    by name (first position, last value), as the docker CLI sends them."""
    out: list[str] = []
    for path in values.get("env-file", ()):
        for line in _file_lines(path, read_file):
            name, eq, _ = line.partition("=")
            if eq:
                out.append(line)
            elif name in env:
                out.append(f"{name}={env[name]}")
    merged: dict[str, str] = {}
    for v in values.get("env", ()):
        name, eq, _ = v.partition("=")
        if not name:
            raise _bad("env", v, f"invalid environment variable: {v}")
        merged[name] = v if eq else (f"{name}={env[name]}" if name in env else name)
    return out + list(merged.values())


def _labels(values: dict[str, Any], env: Mapping[str, str],
            read_file: Callable[[str], str]) -> dict[str, str]:
    entries: list[str] = []
    for path in values.get("label-file", ()):
        for line in _file_lines(path, read_file):
            if "=" in line:
                entries.append(line)
            elif line in env:
                entries.append(f"{line}={env[line]}")
    entries += values.get("label", [])
    out: dict[str, str] = {}
    for e in entries:
        k, _, v = e.partition("=")
        if not k:
            raise _bad("label", e, f"invalid label '{e}': empty name")
        out[k] = v
    return out


def _port_range(text: str) -> tuple[int, int]:
    lo, dash, hi = text.partition("-")
    if not lo.isdigit() or (dash and not hi.isdigit()):
        raise ValueError(text)
    a, b = int(lo), int(hi) if dash else int(lo)
    if b < a:
        raise ValueError(text)
    return a, b


def _ports(publish: Sequence[str], expose: Sequence[str]) -> tuple[dict, dict]:
    """``-p [IP:][HOSTPORT:]PORT[-END][/PROTO]`` and ``--expose`` → (ExposedPorts, PortBindings)."""
    exposed: dict[str, dict] = {}
    bindings: dict[str, list] = {}
    for spec in publish:
        rest, _, proto = spec.partition("/")
        proto = proto or "tcp"
        ip = ""
        if rest.startswith("["):
            ip, _, rest = rest[1:].partition("]")
            rest = rest[1:] if rest.startswith(":") else rest
            ip = ip
        parts = rest.rsplit(":", 2) if not ip else rest.split(":")
        if len(parts) == 3:
            ip, host, cport = parts
        elif len(parts) == 2:
            host, cport = parts
        else:
            host, cport = "", parts[0]
        try:
            c_lo, c_hi = _port_range(cport)
        except ValueError:
            raise _fail(f"invalid containerPort: {cport}") from None
        if not 0 < c_hi < 65536 or c_lo < 1:
            raise _fail(f"invalid containerPort: {cport}")
        h_lo = h_hi = 0
        if host:
            try:
                h_lo, h_hi = _port_range(host)
            except ValueError:
                raise _fail(f"invalid hostPort: {host}") from None
        count = c_hi - c_lo + 1
        if host and h_hi - h_lo + 1 != count and count != 1:
            raise _fail(f"invalid ranges specified for container and host Ports: {cport} and "
                        f"{host}")
        for n in range(count):
            key = f"{c_lo + n}/{proto}"
            exposed[key] = {}
            if not host:
                hp = ""
            elif count == 1 and h_hi != h_lo:
                hp = host
            else:
                hp = str(h_lo + n)
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": hp})
    for spec in expose:
        rest, _, proto = spec.partition("/")
        try:
            lo, hi = _port_range(rest)
        except ValueError:
            raise _fail(f"invalid range format for --expose: {spec}") from None
        for p in range(lo, hi + 1):
            exposed[f"{p}/{proto or 'tcp'}"] = {}
    return exposed, bindings


def _mount(spec: str) -> dict[str, Any]:
    """``--mount type=bind,src=/a,dst=/b,readonly`` → a HostConfig.Mounts entry."""
    m: dict[str, Any] = {"Type": "volume"}
    vol: dict[str, Any] | None = None
    bind: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}

    def volume_opts() -> dict[str, Any]:
        nonlocal vol
        if vol is None:
            vol = {}
        return vol

    for field in [f for f in spec.split(",") if f]:
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            raise _bad("mount", spec, f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            m["Type"] = value
        elif key in ("source", "src"):
            m["Source"] = value
        elif key in ("target", "destination", "dst"):
            m["Target"] = value
        elif key in ("readonly", "ro"):
            if _truthy(spec, value if eq else "true"):
                m["ReadOnly"] = True
        elif key == "consistency":
            m["Consistency"] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value
        elif key == "bind-nonrecursive":
            if _truthy(spec, value if eq else "true"):
                bind["NonRecursive"] = True
        elif key == "volume-nocopy":
            if _truthy(spec, value if eq else "true"):
                volume_opts()["NoCopy"] = True
        elif key == "volume-label":
            k, _, v = value.partition("=")
            volume_opts().setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            volume_opts().setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            volume_opts().setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "volume-subpath":
            volume_opts()["Subpath"] = value
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = _size("mount", value)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise _bad("mount", spec, f"invalid value for {key}: {value}") from None
        else:
            raise _bad("mount", spec, f"unexpected key '{key}' in '{field}'")
    if not m.get("Target"):
        raise _bad("mount", spec, "target is required")
    if bind:
        m["BindOptions"] = bind
    if vol is not None:
        vol.setdefault("DriverConfig", {})
        m["VolumeOptions"] = vol
    if tmpfs:
        m["TmpfsOptions"] = tmpfs
    return m


def _truthy(spec: str, value: str) -> bool:
    v = value.lower()
    if v in ("1", "true"):
        return True
    if v in ("0", "false"):
        return False
    raise _bad("mount", spec, f"invalid value for readonly: {value}")


def _binds(volumes: Sequence[str], cwd: str) -> tuple[list[str], dict[str, dict]]:
    binds: list[str] = []
    anon: dict[str, dict] = {}
    for spec in volumes:
        if not spec:
            raise _fail("invalid empty volume spec")
        if spec.count(":") > 2:
            raise _fail(f"invalid spec: {spec}: too many colons")
        host, colon, rest = spec.partition(":")
        if not colon:
            anon[spec] = {}
            continue
        if host.startswith("."):
            import posixpath

            host = posixpath.normpath(posixpath.join(cwd, host))
        binds.append(f"{host}:{rest}")
    return binds, anon


def _device(spec: str) -> dict[str, str]:
    parts = spec.split(":")
    perms = "rwm"
    if len(parts) == 3:
        src, dst, perms = parts
    elif len(parts) == 2:
        if parts[1] and set(parts[1]) <= set("rwm"):
            src, dst, perms = parts[0], parts[0], parts[1]
        else:
            src, dst = parts
    elif len(parts) == 1:
        src = dst = parts[0]
    else:
        raise _bad("device", spec, f"invalid device specification: {spec}")
    if not perms or not set(perms) <= set("rwm"):
        raise _bad("device", spec, f"invalid device mode: {perms}")
    return {"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}


def _throttle(flag: str, values: Sequence[str], size: bool) -> list[dict[str, Any]]:
    out = []
    for v in values:
        path, colon, rate = v.rpartition(":")
        if not colon or not path.startswith("/dev/"):
            raise _bad(flag, v, f"bad format: {v}")
        if size:
            out.append({"Path": path, "Rate": _size(flag, rate)})
        else:
            if not rate.isdigit():
                raise _bad(flag, v, f"invalid rate for device: {v}. The correct format is "
                           "<device-path>:<number>. Number must be a positive integer")
            out.append({"Path": path, "Rate": int(rate)})
    return out


def _ulimit(spec: str) -> dict[str, Any]:
    name, eq, limits = spec.partition("=")
    if not eq:
        raise _bad("ulimit", spec, f"invalid ulimit argument: {spec}")
    if name not in _ULIMITS:
        raise _bad("ulimit", spec, f"invalid ulimit type: {name}")
    soft, colon, hard = limits.partition(":")
    try:
        s = int(soft)
        h = int(hard) if colon else s
    except ValueError:
        raise _bad("ulimit", spec, f"invalid ulimit value: {limits}") from None
    if s > h and h != -1:
        raise _bad("ulimit", spec, f"ulimit soft limit must be less than or equal to hard limit: "
                   f"{s} > {h}")
    return {"Name": name, "Hard": h, "Soft": s}


def _caps(values: Sequence[str]) -> list[str] | None:
    if not values:
        return None
    out = []
    for v in values:
        c = v.strip().upper()
        out.append(c if c == "ALL" or c.startswith("CAP_") else "CAP_" + c)
    return out


def _extra_host(spec: str) -> str:
    name, sep, ip = spec.partition("=")
    if not sep:
        name, sep, ip = spec.partition(":")
    if not sep or not name:
        raise _bad("add-host", spec, f'bad format for add-host: "{spec}"')
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip != "host-gateway":
        import ipaddress

        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise _bad("add-host", spec, f'invalid IP address in add-host: "{ip}"') from None
    return f"{name}:{ip}"


def _security_opts(values: Sequence[str], read_file: Callable[[str], str]) -> list[str] | None:
    """``seccomp=PROFILE`` sends the profile's (compacted) JSON, as the docker CLI does."""
    if not values:
        return None
    out = []
    for v in values:
        key, _, value = v.partition("=")
        if key == "seccomp" and value not in ("unconfined", "builtin", ""):
            import json

            try:
                text = read_file(value)
                v = "seccomp=" + json.dumps(json.loads(text), separators=(",", ":"))
            except (OSError, ValueError) as e:
                raise _fail(f"opening seccomp profile ({value}) failed: {e}") from None
        out.append(v)
    return out


def _restart(value: str) -> dict[str, Any]:
    name, colon, count = value.partition(":")
    if colon:
        if not count.lstrip("-").isdigit():
            raise _fail("invalid restart policy format: maximum retry count must be an integer")
        return {"MaximumRetryCount": int(count), "Name": name}
    return {"MaximumRetryCount": 0, "Name": name or "no"}


def _healthcheck(v: dict[str, Any]) -> dict[str, Any] | None:
    keys = ("health-cmd", "health-interval", "health-timeout", "health-start-period",
            "health-start-interval", "health-retries")
    given = [k for k in keys if k in v]
    if v.get("no-healthcheck"):
        if given:
            raise _fail("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    hc: dict[str, Any] = {}
    if v.get("health-cmd"):
        hc["Test"] = ["CMD-SHELL", v["health-cmd"]]
    for flag, key in (("health-interval", "Interval"), ("health-timeout", "Timeout"),
                      ("health-start-period", "StartPeriod"),
                      ("health-start-interval", "StartInterval")):
        if flag in v:
            ns = _duration_ns(flag, v[flag])
            if ns < 0:
                raise _fail(f"--{flag} cannot be negative")
            if ns:
                hc[key] = ns
    if "health-retries" in v:
        n = _int("health-retries", v["health-retries"])
        if n < 0:
            raise _fail("--health-retries cannot be negative")
        if n:
            hc["Retries"] = n
    return hc


def _endpoint(mac: str = "", ip: str = "", ip6: str = "", aliases: list[str] | None = None
              ) -> dict[str, Any]:
    ipam = {}
    if ip:
        ipam["IPv4Address"] = ip
    if ip6:
        ipam["IPv6Address"] = ip6
    return {"Aliases": aliases or None, "DNSNames": None, "DriverOpts": None, "EndpointID": "",
            "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "GwPriority": 0,
            "IPAMConfig": ipam or None, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
            "Links": None, "MacAddress": mac, "NetworkID": ""}


def _mode(flag: str, value: str, allowed: tuple[str, ...], what: str, container: bool) -> str:
    if value in allowed or (container and value.startswith("container:") and len(value) > 10):
        return value
    raise _fail(f"--{flag}: invalid {what} mode")


# ------------------------------------------------------------------------------------------ body

def parse_run(argv: Sequence[str], command: str = "run", *, env: Mapping[str, str] | None = None,
              read_file: Callable[[str], str] | None = None, cwd: str = "/",
              console_size: tuple[int, int] = (0, 0)) -> RunRequest:
    """docker's ``run``/``create`` argv (after the verb) → the create request."""
    table = dict(_FLAGS, **_RUN_ONLY) if command == "run" else _FLAGS
    env = env if env is not None else {}
    read = read_file or _read_text
    v, rest = parse_flags(argv, table)
    if v.get("help"):
        from dockyard.cli.common import HelpShown

        raise HelpShown()
    if not rest:
        raise CommandError(f"dockyard: 'dockyard {command}' requires at least 1 argument\n\n"
                           f"Usage:  {USAGE[command]}\n\nSee 'dockyard {command} --help' for "
                           "more information")
    image, cmd = rest[0], rest[1:]
    detach = bool(v.get("detach"))
    attach = [a.lower() for a in v.get("attach", [])]
    for a in attach:
        if a not in ("stdin", "stdout", "stderr"):
            raise _bad("attach", a, "valid streams are STDIN, STDOUT and STDERR")
    if detach and attach:
        raise CommandError("conflicting options: cannot specify both --attach and --detach")
    interactive = bool(v.get("interactive"))
    if detach:
        a_in = a_out = a_err = False
    elif attach:
        a_in, a_out, a_err = "stdin" in attach, "stdout" in attach, "stderr" in attach
    else:
        a_in, a_out, a_err = interactive, True, True
    pull = v.get("pull", "missing")
    if pull not in ("always", "missing", "never"):
        raise _fail(f"invalid pull option: '{pull}': must be one of \"always\", \"missing\" "
                    "or \"never\"")

    exposed, bindings = _ports(v.get("publish", []), v.get("expose", []))
    binds, anon = _binds(v.get("volume", []), cwd)
    tmpfs: dict[str, str] = {}
    for t in v.get("tmpfs", []):
        dest, _, opts = t.partition(":")
        tmpfs[dest] = opts
    restart = _restart(v["restart"]) if "restart" in v else {"MaximumRetryCount": 0, "Name": "no"}
    if v.get("rm") and restart["Name"] not in ("", "no"):
        raise _fail("conflicting options: cannot specify both --restart and --rm")
    network = v.get("network", "")
    aliases = v.get("network-alias", [])
    mac, ip, ip6 = v.get("mac-address", ""), v.get("ip", ""), v.get("ip6", "")
    if not network:
        endpoints = {"default": _endpoint(mac, ip, ip6, aliases)}
    elif mac or ip or ip6 or aliases:
        endpoints = {network: _endpoint(mac, ip, ip6, aliases)}
    else:
        endpoints = {}
    entrypoint = [v["entrypoint"]] if "entrypoint" in v else None
    memory_swap = 0
    if "memory-swap" in v:
        memory_swap = -1 if v["memory-swap"] == "-1" else _size("memory-swap", v["memory-swap"])
    swappiness = _int("memory-swappiness", v["memory-swappiness"]) \
        if "memory-swappiness" in v else -1
    env_list = _env_list(v, env, read)
    log_opts = _kv_map("log-opt", v.get("log-opt", []))

    host: dict[str, Any] = {
        "AutoRemove": bool(v.get("rm")), "Binds": binds or None,
        "BlkioDeviceReadBps": _throttle("device-read-bps", v.get("device-read-bps", []), True),
        "BlkioDeviceReadIOps": _throttle("device-read-iops", v.get("device-read-iops", []), False),
        "BlkioDeviceWriteBps": _throttle("device-write-bps", v.get("device-write-bps", []), True),
        "BlkioDeviceWriteIOps": _throttle("device-write-iops", v.get("device-write-iops", []),
                                          False),
        "BlkioWeight": _int("blkio-weight", v.get("blkio-weight", "0")),
        "BlkioWeightDevice": [], "CapAdd": _caps(v.get("cap-add", [])),
        "CapDrop": _caps(v.get("cap-drop", [])), "Cgroup": "",
        "CgroupParent": v.get("cgroup-parent", ""),
        "CgroupnsMode": _mode("cgroupns", v.get("cgroupns", ""), ("", "host", "private"),
                              "CGROUP", False),
        "ConsoleSize": list(console_size) if v.get("tty") else [0, 0],
        "ContainerIDFile": v.get("cidfile", ""),
        "CpuCount": _int("cpu-count", v.get("cpu-count", "0")),
        "CpuPercent": _int("cpu-percent", v.get("cpu-percent", "0")),
        "CpuPeriod": _int("cpu-period", v.get("cpu-period", "0")),
        "CpuQuota": _int("cpu-quota", v.get("cpu-quota", "0")),
        "CpuRealtimePeriod": _int("cpu-rt-period", v.get("cpu-rt-period", "0")),
        "CpuRealtimeRuntime": _int("cpu-rt-runtime", v.get("cpu-rt-runtime", "0")),
        "CpuShares": _int("cpu-shares", v.get("cpu-shares", "0")),
        "CpusetCpus": v.get("cpuset-cpus", ""), "CpusetMems": v.get("cpuset-mems", ""),
        "DeviceCgroupRules": v.get("device-cgroup-rule") or None, "DeviceRequests": None,
        "Devices": [_device(d) for d in v.get("device", [])],
        "Dns": v.get("dns", []), "DnsOptions": v.get("dns-option", []),
        "DnsSearch": v.get("dns-search", []),
        "ExtraHosts": [_extra_host(h) for h in v.get("add-host", [])] or None,
        "GroupAdd": v.get("group-add") or None, "IOMaximumBandwidth": 0, "IOMaximumIOps": 0,
        "IpcMode": v.get("ipc", ""), "Isolation": v.get("isolation", ""),
        "Links": v.get("link") or None,
        "LogConfig": {"Config": log_opts, "Type": v.get("log-driver", "")},
        "MaskedPaths": None,
        "Memory": _size("memory", v["memory"]) if "memory" in v else 0,
        "MemoryReservation": _size("memory-reservation", v["memory-reservation"])
        if "memory-reservation" in v else 0,
        "MemorySwap": memory_swap, "MemorySwappiness": swappiness,
        "NanoCpus": _nano_cpus(v["cpus"]) if "cpus" in v else 0,
        "NetworkMode": network or "default",
        "OomKillDisable": bool(v.get("oom-kill-disable")),
        "OomScoreAdj": _int("oom-score-adj", v.get("oom-score-adj", "0")),
        "PidMode": _mode("pid", v.get("pid", ""), ("", "host"), "PID", True),
        "PidsLimit": _int("pids-limit", v.get("pids-limit", "0")),
        "PortBindings": bindings, "Privileged": bool(v.get("privileged")),
        "PublishAllPorts": bool(v.get("publish-all")), "ReadonlyPaths": None,
        "ReadonlyRootfs": bool(v.get("read-only")), "RestartPolicy": restart,
        "SecurityOpt": _security_opts(v.get("security-opt", []), read),
        "ShmSize": _size("shm-size", v["shm-size"]) if "shm-size" in v else 0,
        "UTSMode": _mode("uts", v.get("uts", ""), ("", "host"), "UTS", False),
        "Ulimits": [_ulimit(u) for u in v.get("ulimit", [])],
        "UsernsMode": _mode("userns", v.get("userns", ""), ("", "host"), "USER", False),
        "VolumeDriver": v.get("volume-driver", ""),
        "VolumesFrom": v.get("volumes-from") or None,
    }
    if "mount" in v:
        host["Mounts"] = [_mount(m) for m in v["mount"]]
    if tmpfs:
        host["Tmpfs"] = tmpfs
    if "init" in v:
        host["Init"] = bool(v["init"])
    if "sysctl" in v:
        host["Sysctls"] = _kv_map("sysctl", v["sysctl"])
    if "storage-opt" in v:
        host["StorageOpt"] = _kv_map("storage-opt", v["storage-opt"])
    if "annotation" in v:
        host["Annotations"] = _kv_map("annotation", v["annotation"])
    if v.get("runtime"):
        host["Runtime"] = v["runtime"]

    body: dict[str, Any] = {
        "AttachStderr": a_err, "AttachStdin": a_in, "AttachStdout": a_out,
        "Cmd": cmd or None, "Domainname": v.get("domainname", ""), "Entrypoint": entrypoint,
        "Env": env_list or None, "HostConfig": host, "Hostname": v.get("hostname", ""),
        "Image": image, "Labels": _labels(v, env, read),
        "NetworkingConfig": {"EndpointsConfig": endpoints}, "OnBuild": None,
        "OpenStdin": interactive, "StdinOnce": interactive and a_in, "Tty": bool(v.get("tty")),
        "User": v.get("user", ""), "Volumes": anon, "WorkingDir": v.get("workdir", ""),
    }
    if exposed:
        body["ExposedPorts"] = exposed
    hc = _healthcheck(v)
    if hc is not None:
        body["Healthcheck"] = hc
    if v.get("stop-signal"):
        body["StopSignal"] = v["stop-signal"]
    if "stop-timeout" in v:
        body["StopTimeout"] = _int("stop-timeout", v["stop-timeout"])

    query: dict[str, str] = {}
    if v.get("name"):
        query["name"] = v["name"]
    if v.get("platform"):
        query["platform"] = v["platform"]
    options = RunOptions(detach=detach, interactive=interactive, tty=bool(v.get("tty")),
                         rm=bool(v.get("rm")), sig_proxy=v.get("sig-proxy", True),
                         detach_keys=v.get("detach-keys", ""), cidfile=v.get("cidfile", ""),
                         pull=pull, quiet=bool(v.get("quiet")), attach_stdin=a_in,
                         attach_stdout=a_out, attach_stderr=a_err)
    return RunRequest(image=image, query=query, body=body, options=options)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()
