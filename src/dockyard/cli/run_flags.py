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
from dockyard.cli.run_values import bad, binds, caps, device, endpoint, env_list, extra_host, \
    fail, healthcheck, int_flag, kv_map, labels, mode, mount, nano_cpus, ports, restart_policy, \
    security_opts, size_flag, throttle, ulimit
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


def run_table(command: str) -> dict[str, tuple[str, str]]:
    """The flags of ``run`` or ``create`` (long name -> (shorthand, kind))."""
    return dict(_FLAGS, **_RUN_ONLY) if command == "run" else dict(_FLAGS)


def flag_display(long: str) -> str:
    """``-m, --memory`` / ``--memory-swap``: how docker names a run flag in its errors."""
    table = _FLAGS if long in _FLAGS else _RUN_ONLY
    return _display(long, table) if long in table else f"--{long}"


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


# ------------------------------------------------------------------------------------------ body

def parse_run(argv: Sequence[str], command: str = "run", *, env: Mapping[str, str] | None = None,
              read_file: Callable[[str], str] | None = None, cwd: str = "/",
              console_size: tuple[int, int] = (0, 0)) -> RunRequest:
    """docker's ``run``/``create`` argv (after the verb) → the create request."""
    table = run_table(command)
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
            raise bad("attach", a, "valid streams are STDIN, STDOUT and STDERR")
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
        raise fail(f"invalid pull option: '{pull}': must be one of \"always\", \"missing\" "
                    "or \"never\"")

    exposed, bindings = ports(v.get("publish", []), v.get("expose", []))
    bind_list, anon = binds(v.get("volume", []), cwd)
    tmpfs: dict[str, str] = {}
    for t in v.get("tmpfs", []):
        dest, _, opts = t.partition(":")
        tmpfs[dest] = opts
    restart = restart_policy(v["restart"]) if "restart" in v else {"MaximumRetryCount": 0, "Name": "no"}
    if v.get("rm") and restart["Name"] not in ("", "no"):
        raise fail("conflicting options: cannot specify both --restart and --rm")
    network = v.get("network", "")
    aliases = v.get("network-alias", [])
    mac, ip, ip6 = v.get("mac-address", ""), v.get("ip", ""), v.get("ip6", "")
    if not network:
        endpoints = {"default": endpoint(mac, ip, ip6, aliases)}
    elif mac or ip or ip6 or aliases:
        endpoints = {network: endpoint(mac, ip, ip6, aliases)}
    else:
        endpoints = {}
    entrypoint = [v["entrypoint"]] if "entrypoint" in v else None
    memory_swap = 0
    if "memory-swap" in v:
        memory_swap = -1 if v["memory-swap"] == "-1" else size_flag("memory-swap", v["memory-swap"])
    swappiness = int_flag("memory-swappiness", v["memory-swappiness"]) \
        if "memory-swappiness" in v else -1
    env_entries = env_list(v, env, read)
    log_opts = kv_map("log-opt", v.get("log-opt", []))

    host: dict[str, Any] = {
        "AutoRemove": bool(v.get("rm")), "Binds": bind_list or None,
        "BlkioDeviceReadBps": throttle("device-read-bps", v.get("device-read-bps", []), True),
        "BlkioDeviceReadIOps": throttle("device-read-iops", v.get("device-read-iops", []), False),
        "BlkioDeviceWriteBps": throttle("device-write-bps", v.get("device-write-bps", []), True),
        "BlkioDeviceWriteIOps": throttle("device-write-iops", v.get("device-write-iops", []),
                                          False),
        "BlkioWeight": int_flag("blkio-weight", v.get("blkio-weight", "0")),
        "BlkioWeightDevice": [], "CapAdd": caps(v.get("cap-add", [])),
        "CapDrop": caps(v.get("cap-drop", [])), "Cgroup": "",
        "CgroupParent": v.get("cgroup-parent", ""),
        "CgroupnsMode": mode("cgroupns", v.get("cgroupns", ""), ("", "host", "private"),
                              "CGROUP", False),
        "ConsoleSize": list(console_size) if v.get("tty") else [0, 0],
        "ContainerIDFile": v.get("cidfile", ""),
        "CpuCount": int_flag("cpu-count", v.get("cpu-count", "0")),
        "CpuPercent": int_flag("cpu-percent", v.get("cpu-percent", "0")),
        "CpuPeriod": int_flag("cpu-period", v.get("cpu-period", "0")),
        "CpuQuota": int_flag("cpu-quota", v.get("cpu-quota", "0")),
        "CpuRealtimePeriod": int_flag("cpu-rt-period", v.get("cpu-rt-period", "0")),
        "CpuRealtimeRuntime": int_flag("cpu-rt-runtime", v.get("cpu-rt-runtime", "0")),
        "CpuShares": int_flag("cpu-shares", v.get("cpu-shares", "0")),
        "CpusetCpus": v.get("cpuset-cpus", ""), "CpusetMems": v.get("cpuset-mems", ""),
        "DeviceCgroupRules": v.get("device-cgroup-rule") or None, "DeviceRequests": None,
        "Devices": [device(d) for d in v.get("device", [])],
        "Dns": v.get("dns", []), "DnsOptions": v.get("dns-option", []),
        "DnsSearch": v.get("dns-search", []),
        "ExtraHosts": [extra_host(h) for h in v.get("add-host", [])] or None,
        "GroupAdd": v.get("group-add") or None, "IOMaximumBandwidth": 0, "IOMaximumIOps": 0,
        "IpcMode": v.get("ipc", ""), "Isolation": v.get("isolation", ""),
        "Links": v.get("link") or None,
        "LogConfig": {"Config": log_opts, "Type": v.get("log-driver", "")},
        "MaskedPaths": None,
        "Memory": size_flag("memory", v["memory"]) if "memory" in v else 0,
        "MemoryReservation": size_flag("memory-reservation", v["memory-reservation"])
        if "memory-reservation" in v else 0,
        "MemorySwap": memory_swap, "MemorySwappiness": swappiness,
        "NanoCpus": nano_cpus(v["cpus"]) if "cpus" in v else 0,
        "NetworkMode": network or "default",
        "OomKillDisable": bool(v.get("oom-kill-disable")),
        "OomScoreAdj": int_flag("oom-score-adj", v.get("oom-score-adj", "0")),
        "PidMode": mode("pid", v.get("pid", ""), ("", "host"), "PID", True),
        "PidsLimit": int_flag("pids-limit", v.get("pids-limit", "0")),
        "PortBindings": bindings, "Privileged": bool(v.get("privileged")),
        "PublishAllPorts": bool(v.get("publish-all")), "ReadonlyPaths": None,
        "ReadonlyRootfs": bool(v.get("read-only")), "RestartPolicy": restart,
        "SecurityOpt": security_opts(v.get("security-opt", []), read),
        "ShmSize": size_flag("shm-size", v["shm-size"]) if "shm-size" in v else 0,
        "UTSMode": mode("uts", v.get("uts", ""), ("", "host"), "UTS", False),
        "Ulimits": [ulimit(u) for u in v.get("ulimit", [])],
        "UsernsMode": mode("userns", v.get("userns", ""), ("", "host"), "USER", False),
        "VolumeDriver": v.get("volume-driver", ""),
        "VolumesFrom": v.get("volumes-from") or None,
    }
    if "mount" in v:
        host["Mounts"] = [mount(m) for m in v["mount"]]
    if tmpfs:
        host["Tmpfs"] = tmpfs
    if "init" in v:
        host["Init"] = bool(v["init"])
    if "sysctl" in v:
        host["Sysctls"] = kv_map("sysctl", v["sysctl"])
    if "storage-opt" in v:
        host["StorageOpt"] = kv_map("storage-opt", v["storage-opt"])
    if "annotation" in v:
        host["Annotations"] = kv_map("annotation", v["annotation"])
    if v.get("runtime"):
        host["Runtime"] = v["runtime"]

    body: dict[str, Any] = {
        "AttachStderr": a_err, "AttachStdin": a_in, "AttachStdout": a_out,
        "Cmd": cmd or None, "Domainname": v.get("domainname", ""), "Entrypoint": entrypoint,
        "Env": env_entries or None, "HostConfig": host, "Hostname": v.get("hostname", ""),
        "Image": image, "Labels": labels(v, env, read),
        "NetworkingConfig": {"EndpointsConfig": endpoints}, "OnBuild": None,
        "OpenStdin": interactive, "StdinOnce": interactive and a_in, "Tty": bool(v.get("tty")),
        "User": v.get("user", ""), "Volumes": anon, "WorkingDir": v.get("workdir", ""),
    }
    if exposed:
        body["ExposedPorts"] = exposed
    hc = healthcheck(v)
    if hc is not None:
        body["Healthcheck"] = hc
    if v.get("stop-signal"):
        body["StopSignal"] = v["stop-signal"]
    if "stop-timeout" in v:
        body["StopTimeout"] = int_flag("stop-timeout", v["stop-timeout"])

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
