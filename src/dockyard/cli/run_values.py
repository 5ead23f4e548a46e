"""The values of ``run``/``create`` flags → the API's shapes (pure): sizes, durations, ports,
mounts, binds, devices, throttles, ulimits, capabilities, extra hosts, security options, restart
policies, health checks, network endpoints; env and label files. Each raises ``UsageError`` with
the docker CLI's wording (see ``run_flags``)."""

from __future__ import annotations

from dockyard.cli.common import UsageError
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

_ULIMITS = frozenset(("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                      "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"))


def bad(flag: str, value: str, why: str) -> UsageError:
    """docker's "invalid argument" error for ``--flag`` (named with its shorthand)."""
    from dockyard.cli.run_flags import flag_display

    return UsageError(f'invalid argument "{value}" for "{flag_display(flag)}" flag: {why}')


def fail(message: str) -> UsageError:
    return UsageError(f"dockyard: {message}")


def int_flag(flag: str, value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise bad(flag, value, f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def size_flag(flag: str, value: str) -> int:
    from dockyard.engine.units import parse_size

    try:
        return parse_size(value)
    except InvalidArgument as e:
        unit = value.lstrip("0123456789. ")
        why = f"invalid suffix: '{unit}'" if "invalid suffix" in str(e) else \
            f"invalid size: '{value}'"
        raise bad(flag, value, why) from None


def duration_ns(flag: str, value: str) -> int:
    from dockyard.engine.units import parse_duration

    try:
        return round(parse_duration(value) * 1_000_000_000)
    except InvalidArgument:
        raise bad(flag, value, f'time: invalid duration "{value}"') from None


def nano_cpus(value: str) -> int:
    from fractions import Fraction

    try:
        nano = Fraction(value) * 1_000_000_000
    except (ValueError, ZeroDivisionError):
        raise bad("cpus", value, f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None
    if nano.denominator != 1:
        raise bad("cpus", value, "value is too precise")
    return int(nano)


def kv_map(flag: str, values: Sequence[str], empty_ok: bool = True) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not k or (not eq and not empty_ok):
            raise bad(flag, v, f"invalid key-value pair {v!r}" if k else
                       f"invalid label '{v}': empty name")
        out[k] = val
    return out


def file_lines(path: str, read_file: Callable[[str], str]) -> list[str]:
    try:
        text = read_file(path)
    except FileNotFoundError:
        raise fail(f"open {path}: no such file or directory") from None
    except OSError as e:
        raise fail(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    out = []
    for line in text.splitlines():
        line = line.lstrip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def env_list(values: dict[str, Any], env: Mapping[str, str],
              read_file: Callable[[str], str]) -> list[str]:
    """``--env-file`` entries (a bare NAME only when set locally), then ``-e`` entries deduplicated
    by name (first position, last value), as the docker CLI sends them."""
    out: list[str] = []
    for path in values.get("env-file", ()):
        for line in file_lines(path, read_file):
            name, eq, _ = line.partition("=")
            if eq:
                out.append(line)
            elif name in env:
                out.append(f"{name}={env[name]}")
    merged: dict[str, str] = {}
    for v in values.get("env", ()):
        name, eq, _ = v.partition("=")
        if not name:
            raise bad("env", v, f"invalid environment variable: {v}")
        merged[name] = v if eq else (f"{name}={env[name]}" if name in env else name)
    return out + list(merged.values())


def labels(values: dict[str, Any], env: Mapping[str, str],
            read_file: Callable[[str], str]) -> dict[str, str]:
    entries: list[str] = []
    for path in values.get("label-file", ()):
        for line in file_lines(path, read_file):
            if "=" in line:
                entries.append(line)
            elif line in env:
                entries.append(f"{line}={env[line]}")
    entries += values.get("label", [])
    out: dict[str, str] = {}
    for e in entries:
        k, _, v = e.partition("=")
        if not k:
            raise bad("label", e, f"invalid label '{e}': empty name")
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


def ports(publish: Sequence[str], expose: Sequence[str]) -> tuple[dict, dict]:
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
            raise fail(f"invalid containerPort: {cport}") from None
        if not 0 < c_hi < 65536 or c_lo < 1:
            raise fail(f"invalid containerPort: {cport}")
        h_lo = h_hi = 0
        if host:
            try:
                h_lo, h_hi = _port_range(host)
            except ValueError:
                raise fail(f"invalid hostPort: {host}") from None
        count = c_hi - c_lo + 1
        if host and h_hi - h_lo + 1 != count and count != 1:
            raise fail(f"invalid ranges specified for container and host Ports: {cport} and "
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
            raise fail(f"invalid range format for --expose: {spec}") from None
        for p in range(lo, hi + 1):
            exposed[f"{p}/{proto or 'tcp'}"] = {}
    return exposed, bindings


def mount(spec: str) -> dict[str, Any]:
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
            raise bad("mount", spec, f"invalid field '{field}' must be a key=value pair")
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
            tmpfs["SizeBytes"] = size_flag("mount", value)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise bad("mount", spec, f"invalid value for {key}: {value}") from None
        else:
            raise bad("mount", spec, f"unexpected key '{key}' in '{field}'")
    if not m.get("Target"):
        raise bad("mount", spec, "target is required")
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
    raise bad("mount", spec, f"invalid value for readonly: {value}")


def binds(volumes: Sequence[str], cwd: str) -> tuple[list[str], dict[str, dict]]:
    binds: list[str] = []
    anon: dict[str, dict] = {}
    for spec in volumes:
        if not spec:
            raise fail("invalid empty volume spec")
        if spec.count(":") > 2:
            raise fail(f"invalid spec: {spec}: too many colons")
        host, colon, rest = spec.partition(":")
        if not colon:
            anon[spec] = {}
            continue
        if host.startswith("."):
            import posixpath

            host = posixpath.normpath(posixpath.join(cwd, host))
        binds.append(f"{host}:{rest}")
    return binds, anon


def device(spec: str) -> dict[str, str]:
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
        raise bad("device", spec, f"invalid device specification: {spec}")
    if not perms or not set(perms) <= set("rwm"):
        raise bad("device", spec, f"invalid device mode: {perms}")
    return {"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}


def throttle(flag: str, values: Sequence[str], size: bool) -> list[dict[str, Any]]:
    out = []
    for v in values:
        path, colon, rate = v.rpartition(":")
        if not colon or not path.startswith("/dev/"):
            raise bad(flag, v, f"bad format: {v}")
        if size:
            out.append({"Path": path, "Rate": size_flag(flag, rate)})
        else:
            if not rate.isdigit():
                raise bad(flag, v, f"invalid rate for device: {v}. The correct format is "
                           "<device-path>:<number>. Number must be a positive integer")
            out.append({"Path": path, "Rate": int(rate)})
    return out


def ulimit(spec: str) -> dict[str, Any]:
    name, eq, limits = spec.partition("=")
    if not eq:
        raise bad("ulimit", spec, f"invalid ulimit argument: {spec}")
    if name not in _ULIMITS:
        raise bad("ulimit", spec, f"invalid ulimit type: {name}")
    soft, colon, hard = limits.partition(":")
    try:
        s = int(soft)
        h = int(hard) if colon else s
    except ValueError:
        raise bad("ulimit", spec, f"invalid ulimit value: {limits}") from None
    if s > h and h != -1:
        raise bad("ulimit", spec, f"ulimit soft limit must be less than or equal to hard limit: "
                   f"{s} > {h}")
    return {"Name": name, "Hard": h, "Soft": s}


def caps(values: Sequence[str]) -> list[str] | None:
    if not values:
        return None
    out = []
    for v in values:
        c = v.strip().upper()
        out.append(c if c == "ALL" or c.startswith("CAP_") else "CAP_" + c)
    return out


def extra_host(spec: str) -> str:
    name, sep, ip = spec.partition("=")
    if not sep:
        name, sep, ip = spec.partition(":")
    if not sep or not name:
        raise bad("add-host", spec, f'bad format for add-host: "{spec}"')
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip != "host-gateway":
        import ipaddress

        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise bad("add-host", spec, f'invalid IP address in add-host: "{ip}"') from None
    return f"{name}:{ip}"


def security_opts(values: Sequence[str], read_file: Callable[[str], str]) -> list[str] | None:
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
                raise fail(f"opening seccomp profile ({value}) failed: {e}") from None
        out.append(v)
    return out


def restart_policy(value: str) -> dict[str, Any]:
    name, colon, count = value.partition(":")
    if colon:
        if not count.lstrip("-").isdigit():
            raise fail("invalid restart policy format: maximum retry count must be an integer")
        return {"MaximumRetryCount": int(count), "Name": name}
    return {"MaximumRetryCount": 0, "Name": name or "no"}


def healthcheck(v: dict[str, Any]) -> dict[str, Any] | None:
    keys = ("health-cmd", "health-interval", "health-timeout", "health-start-period",
            "health-start-interval", "health-retries")
    given = [k for k in keys if k in v]
    if v.get("no-healthcheck"):
        if given:
            raise fail("--no-healthcheck conflicts with --health-* options")
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
            ns = duration_ns(flag, v[flag])
            if ns < 0:
                raise fail(f"--{flag} cannot be negative")
            if ns:
                hc[key] = ns
    if "health-retries" in v:
        n = int_flag("health-retries", v["health-retries"])
        if n < 0:
            raise fail("--health-retries cannot be negative")
        if n:
            hc["Retries"] = n
    return hc


def endpoint(mac: str = "", ip: str = "", ip6: str = "", aliases: list[str] | None = None
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


def mode(flag: str, value: str, allowed: tuple[str, ...], what: str, container: bool) -> str:
    if value in allowed or (container and value.startswith("container:") and len(value) > 10):
        return value
    raise fail(f"--{flag}: invalid {what} mode")
