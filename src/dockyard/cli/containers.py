"""Container lifecycle verbs: ``run``, ``create``, ``start``, ``stop``, ``restart``, ``kill``,
``rm``, ``wait``, ``pause``, ``unpause``, ``rename``, ``update``, ``port``: thin clients of the
Docker Engine API with the docker CLI's flags, output and exit codes.

``run`` is docker's sequence: create (``Unable to find image`` when the image is missing), attach
(hijacked, before start, when not ``-d``), wait (``next-exit``, or ``removed`` with ``--rm``: asked
before start so a fast exit is not missed), start, stream, then exit with the container's code.
Exit codes: the container's; 125 when the daemon refuses (bad value, unknown image, name in use);
126 when the command cannot be invoked; 127 when it is not found.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli.common import CommandError, HelpShown, UsageError
from dockyard.cli.containers_util import client, command_error, each, parse, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from dockyard.cli.client import Client
    from dockyard.cli.common import Context
    from dockyard.cli.run_flags import RunRequest


def _run_error(e: BaseException, verb: str) -> CommandError:
    """docker's ``run`` failure: "dockyard: Error response ..." and 125/126/127."""
    text = str(e)
    low = text.lower()
    code = 125
    if "executable file not found" in low or "no such file or directory" in low:
        code = 127
    elif "permission denied" in low:
        code = 126
    return _coded(f"dockyard: {text}\n\nRun 'dockyard {verb} --help' for more information", code)


def _coded(message: str, code: int) -> CommandError:
    err = CommandError(message)
    err.code = code
    return err


def _full_ref(image: str) -> str:
    """docker's normalized reference in "Unable to find image 'busybox:latest' locally"."""
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in image else image + ":latest"


def _create(ctx: Context, api: Client, req: RunRequest, verb: str) -> str:
    """POST /containers/create (pulling per ``--pull``); the new container's id."""
    from dockyard.cli.client import APIError, ClientError

    opts = req.options
    if opts.cidfile and os.path.exists(opts.cidfile):
        raise _coded(f"dockyard: Container ID file found, make sure the other container isn't "
                     f"running or delete {opts.cidfile}", 125 if verb == "run" else 1)
    if opts.pull == "always":
        _pull(ctx, api, req.image, verb)
    try:
        created = api.post("/containers/create", req.query, req.body)
    except APIError as e:
        if e.status != 404 or "image" not in e.message.lower() or opts.pull == "never":
            raise _error(e, verb) from None
        ctx.err.write(f"Unable to find image '{_full_ref(req.image)}' locally\n")
        ctx.err.flush()
        _pull(ctx, api, req.image, verb)
        try:
            created = api.post("/containers/create", req.query, req.body)
        except ClientError as e2:
            raise _error(e2, verb) from None
    except ClientError as e:
        raise _error(e, verb) from None
    cid = created["Id"]
    for warning in created.get("Warnings") or ():
        ctx.err.write(f"WARNING: {warning}\n")
    if opts.cidfile:
        with open(opts.cidfile, "x") as f:
            f.write(cid)
    return cid


def _error(e: BaseException, verb: str) -> CommandError:
    if verb == "run":
        return _run_error(e, verb)
    return command_error(e, 1)


def _pull(ctx: Context, api: Client, image: str, verb: str) -> None:
    """``POST /images/create`` (the registry issue brings the daemon's side)."""
    from dockyard.cli.client import ClientError, json_messages

    ref = _full_ref(image)
    name, _, tag = ref.rpartition(":") if "@" not in ref else (ref, "", "")
    try:
        resp = api.stream("POST", "/images/create", {"fromImage": name, "tag": tag or None})
        try:
            for msg in json_messages(resp):
                if isinstance(msg, dict) and msg.get("error"):
                    raise _error(RuntimeError(msg["error"]), verb)
        finally:
            resp.close()
    except ClientError as e:
        raise _error(e, verb) from None


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _parse_run(ctx: Context, argv: Sequence[str], verb: str) -> RunRequest:
    from dockyard.cli.run_flags import parse_run
    from dockyard.cli.stream import terminal_size

    try:
        return parse_run(argv, verb, env=os.environ, read_file=_read_file, cwd=os.getcwd(),
                         console_size=terminal_size(1) if ctx.isatty("out") else (0, 0))
    except UsageError as e:
        raise UsageError(f"{e}\nSee 'dockyard {verb} --help'.") from None
    except HelpShown:
        from dockyard.cli.containers_util import usage_text
        from dockyard.cli.run_flags import USAGE, run_table

        summary = ("Create and run a new container from an image" if verb == "run"
                   else "Create a new container")
        ctx.out.write(usage_text(verb, USAGE[verb].partition(" ")[2], summary, run_table(verb)))
        raise


def cmd_create(ctx: Context, argv: Sequence[str], verb: str = "create") -> int:
    req = _parse_run(ctx, argv, "create")
    ctx.out.write(_create(ctx, client(ctx), req, "create") + "\n")
    return 0


def _start_wait(api: Client, cid: str, condition: str) -> Any:
    """Ask for the container's exit before start. The daemon answers the headers once the wait
    is registered (docker's order) and the body at the exit; ``result()`` reads the body, after
    the attached stream ended (no thread needed: nothing else is read meanwhile)."""
    from dockyard.cli.client import ClientError

    resp: Any = None
    failed: ClientError | None = None
    try:
        resp = api.stream("POST", f"/containers/{quote(cid)}/wait", {"condition": condition})
    except ClientError as e:
        failed = e  # reported by result(), as docker reports a failed wait after the run

    class Waiter:
        def result(self) -> tuple[int, str]:
            if resp is None:
                assert failed is not None
                raise failed
            try:
                raw = resp.read()
            finally:
                resp.close()
            from dockyard.leanjson import loads

            doc = (loads(raw) if raw.strip() else {}) or {}
            err = (doc.get("Error") or {}).get("Message") or ""
            return int(doc.get("StatusCode", 0)), err

    return Waiter()


def _attach(api: Client, cid: str, *, stdin: bool, stdout: bool, stderr: bool,
            detach_keys: str = "") -> tuple[Any, bytes]:
    query: dict[str, Any] = {"stream": True, "stdin": stdin, "stdout": stdout, "stderr": stderr}
    if detach_keys:
        query["detachKeys"] = detach_keys
    return api.hijack("POST", f"/containers/{quote(cid)}/attach", query)


def stream_container(ctx: Context, api: Client, cid: str, *, tty: bool, stdin: bool,
                     sock: Any, buffered: bytes, sig_proxy: bool, detach_keys: str,
                     resize_path: str) -> bool:
    """Pump an attached stream with the terminal set up; True when the user detached."""
    from dockyard.cli.client import ClientError
    from dockyard.cli.stream import DEFAULT_DETACH_KEYS, Pump, RawTerminal, Signals, \
        parse_detach_keys, terminal_size

    in_fd = sys.stdin.fileno() if stdin else None
    term = tty and in_fd is not None and ctx.isatty("in")
    try:
        keys = parse_detach_keys(detach_keys or DEFAULT_DETACH_KEYS) if term else b""
    except ValueError as e:
        raise _coded(str(e), 1) from None

    def resize(_: str = "") -> None:
        h, w = terminal_size(1 if ctx.isatty("out") else 0)
        if h and w:
            try:
                api.post(resize_path, {"h": h, "w": w})
            except ClientError:
                pass

    def proxy(name: str) -> None:
        try:
            api.post(f"/containers/{quote(cid)}/kill", {"signal": name})
        except ClientError:
            pass

    pump = Pump(sock, buffered, tty=tty, in_fd=in_fd, detach_keys=keys)
    with Signals() as sig, RawTerminal(in_fd if in_fd is not None else 0, enabled=term):
        if tty:
            resize()
            sig.on("SIGWINCH", resize)
        elif sig_proxy:
            from dockyard.cli.stream import _PROXIED

            for name in _PROXIED:
                sig.on(name, proxy)
        try:
            pump.run()
        finally:
            sock.close()
    return pump.detached


def cmd_run(ctx: Context, argv: Sequence[str], verb: str = "run") -> int:
    from dockyard.cli.client import ClientError

    req = _parse_run(ctx, argv, "run")
    opts = req.options
    if opts.attach_stdin and opts.tty and not ctx.isatty("in"):
        raise _coded("the input device is not a TTY", 1)
    api = client(ctx)
    cid = _create(ctx, api, req, "run")
    if opts.detach:
        try:
            api.post(f"/containers/{quote(cid)}/start")
        except ClientError as e:
            raise _run_error(e, "run") from None
        ctx.out.write(cid + "\n")
        return 0
    ctx.out.flush()
    attached = opts.attach_stdin or opts.attach_stdout or opts.attach_stderr
    sock = buffered = None
    try:
        if attached:
            sock, buffered = _attach(api, cid, stdin=opts.attach_stdin,
                                     stdout=opts.attach_stdout, stderr=opts.attach_stderr)
        waiter = _start_wait(api, cid, "removed" if opts.rm else "next-exit")
        api.post(f"/containers/{quote(cid)}/start")
    except ClientError as e:
        if sock is not None:
            sock.close()
        if opts.rm:
            try:
                api.delete(f"/containers/{quote(cid)}", {"force": True, "v": True})
            except ClientError:
                pass
        raise _run_error(e, "run") from None
    if sock is not None:
        detached = stream_container(ctx, api, cid, tty=opts.tty, stdin=opts.attach_stdin,
                                    sock=sock, buffered=buffered or b"",
                                    sig_proxy=opts.sig_proxy, detach_keys=opts.detach_keys,
                                    resize_path=f"/containers/{quote(cid)}/resize")
        if detached:
            return 0
    try:
        code, message = waiter.result()
    except ClientError as e:
        raise command_error(e, 125) from None
    if message:
        ctx.err.write(f"dockyard: {message}\n")
        return 125
    return code


# -------------------------------------------------------------------------------- simple verbs

START_FLAGS = {"attach": ("a", "bool", "Attach STDOUT/STDERR and forward signals"),
               "interactive": ("i", "bool", "Attach container's STDIN"),
               "detach-keys": ("", "str", "Override the key sequence for detaching a container")}


def cmd_start(ctx: Context, argv: Sequence[str], verb: str = "start") -> int:
    from dockyard.cli.client import ClientError

    v, names = parse(ctx, verb, argv, START_FLAGS, "start [OPTIONS] CONTAINER [CONTAINER...]",
                     "Start one or more stopped containers", at_least=1)
    api = client(ctx)
    if v.get("attach") or v.get("interactive"):
        if len(names) > 1:
            raise _coded("dockyard: you cannot start and attach multiple containers at once", 1)
        try:
            info = api.get(f"/containers/{quote(names[0])}/json")
            cid, tty = info["Id"], bool(info["Config"].get("Tty"))
            stdin = bool(v.get("interactive")) and bool(info["Config"].get("OpenStdin"))
            sock, buffered = _attach(api, cid, stdin=stdin, stdout=True, stderr=True,
                                     detach_keys=v.get("detach-keys", ""))
            waiter = _start_wait(api, cid, "next-exit")
            api.post(f"/containers/{quote(cid)}/start")
        except ClientError as e:
            raise command_error(e) from None
        if stream_container(ctx, api, cid, tty=tty, stdin=stdin, sock=sock, buffered=buffered,
                            sig_proxy=True, detach_keys=v.get("detach-keys", ""),
                            resize_path=f"/containers/{quote(cid)}/resize"):
            return 0
        return waiter.result()[0]
    failed = []
    for name in names:
        try:
            api.post(f"/containers/{quote(name)}/start")
            ctx.out.write(name + "\n")
        except ClientError as e:
            ctx.err.write(f"{e}\n")
            failed.append(name)
    if failed:
        raise _coded(f"Error: failed to start containers: {', '.join(failed)}", 1)
    return 0


def _stop_like(ctx: Context, argv: Sequence[str], verb: str, action: str, summary: str) -> int:
    flags = {"time": ("t", "str", "Seconds to wait before killing the container"),
             "signal": ("s", "str", "Signal to send to the container")}
    if action == "kill":
        flags = {"signal": ("s", "str", "Signal to send to the container")}
    v, names = parse(ctx, verb, argv, flags, f"{verb.split()[-1]} [OPTIONS] CONTAINER "
                     "[CONTAINER...]", summary, at_least=1)
    query: dict[str, Any] = {}
    if "time" in v:
        if not v["time"].lstrip("-").isdigit():
            raise UsageError(f'invalid argument "{v["time"]}" for "-t, --time" flag: '
                             f'strconv.ParseInt: parsing "{v["time"]}": invalid syntax\n'
                             f"See 'dockyard {verb} --help'.")
        query["t"] = int(v["time"])
    if v.get("signal"):
        query["signal"] = v["signal"]
    api = client(ctx)
    return each(ctx, names, lambda n: api.post(f"/containers/{quote(n)}/{action}", query))


def cmd_stop(ctx: Context, argv: Sequence[str], verb: str = "stop") -> int:
    return _stop_like(ctx, argv, verb, "stop", "Stop one or more running containers")


def cmd_restart(ctx: Context, argv: Sequence[str], verb: str = "restart") -> int:
    return _stop_like(ctx, argv, verb, "restart", "Restart one or more containers")


def cmd_kill(ctx: Context, argv: Sequence[str], verb: str = "kill") -> int:
    return _stop_like(ctx, argv, verb, "kill", "Kill one or more running containers")


def cmd_rm(ctx: Context, argv: Sequence[str], verb: str = "rm") -> int:
    flags = {"force": ("f", "bool", "Force the removal of a running container (uses SIGKILL)"),
             "volumes": ("v", "bool", "Remove anonymous volumes associated with the container"),
             "link": ("l", "bool", "Remove the specified link")}
    v, names = parse(ctx, verb, argv, flags, f"{verb.split()[-1]} [OPTIONS] CONTAINER "
                     "[CONTAINER...]", "Remove one or more containers", at_least=1)
    query = {"force": True if v.get("force") else None, "v": True if v.get("volumes") else None,
             "link": True if v.get("link") else None}
    api = client(ctx)
    return each(ctx, names, lambda n: api.delete(f"/containers/{quote(n)}", query))


def _no_flags(ctx: Context, argv: Sequence[str], verb: str, usage: str, summary: str,
              **counts: int) -> list[str]:
    return parse(ctx, verb, argv, {}, usage, summary, **counts)[1]


def cmd_pause(ctx: Context, argv: Sequence[str], verb: str = "pause") -> int:
    names = _no_flags(ctx, argv, verb, "pause CONTAINER [CONTAINER...]",
                      "Pause all processes within one or more containers", at_least=1)
    api = client(ctx)
    return each(ctx, names, lambda n: api.post(f"/containers/{quote(n)}/pause"))


def cmd_unpause(ctx: Context, argv: Sequence[str], verb: str = "unpause") -> int:
    names = _no_flags(ctx, argv, verb, "unpause CONTAINER [CONTAINER...]",
                      "Unpause all processes within one or more containers", at_least=1)
    api = client(ctx)
    return each(ctx, names, lambda n: api.post(f"/containers/{quote(n)}/unpause"))


def cmd_wait(ctx: Context, argv: Sequence[str], verb: str = "wait") -> int:
    names = _no_flags(ctx, argv, verb, "wait CONTAINER [CONTAINER...]",
                      "Block until one or more containers stop, then print their exit codes",
                      at_least=1)
    api = client(ctx)

    def wait(name: str) -> None:
        doc = api.post(f"/containers/{quote(name)}/wait") or {}
        ctx.out.write(f"{doc.get('StatusCode', 0)}\n")
        ctx.out.flush()

    return each(ctx, names, wait, echo=False, parallel=False)


def cmd_rename(ctx: Context, argv: Sequence[str], verb: str = "rename") -> int:
    from dockyard.cli.client import ClientError

    old, new = _no_flags(ctx, argv, verb, "rename CONTAINER NEW_NAME", "Rename a container",
                         exactly=2)
    try:
        client(ctx).post(f"/containers/{quote(old)}/rename", {"name": new})
    except ClientError as e:
        ctx.err.write(f"{e}\n")
        raise _coded(f"Error: failed to rename container named {old}", 1) from None
    return 0


UPDATE_FLAGS = {
    "blkio-weight": ("", "str", "Block IO (relative weight), between 10 and 1000"),
    "cpu-period": ("", "str", "Limit CPU CFS period"), "cpu-quota": ("", "str", "Limit CPU CFS quota"),
    "cpu-shares": ("c", "str", "CPU shares (relative weight)"),
    "cpus": ("", "str", "Number of CPUs"), "cpuset-cpus": ("", "str", "CPUs allowed (0-3, 0,1)"),
    "cpuset-mems": ("", "str", "MEMs allowed (0-3, 0,1)"),
    "memory": ("m", "str", "Memory limit"),
    "memory-reservation": ("", "str", "Memory soft limit"),
    "memory-swap": ("", "str", "Swap limit equal to memory plus swap: -1 for unlimited"),
    "pids-limit": ("", "str", "Tune container pids limit (-1 for unlimited)"),
    "restart": ("", "str", "Restart policy to apply when a container exits"),
    "kernel-memory": ("", "str", "Kernel memory limit (deprecated)"),
}


def update_body(v: dict[str, Any]) -> dict[str, Any]:
    """``update`` flags → the body docker sends (only the given resources)."""
    from dockyard.cli import run_values as rf

    body: dict[str, Any] = {}
    sizes = {"memory": "Memory", "memory-reservation": "MemoryReservation"}
    for flag, key in sizes.items():
        if flag in v:
            body[key] = rf.size_flag(flag, v[flag])
    if "memory-swap" in v:
        body["MemorySwap"] = -1 if v["memory-swap"] == "-1" else rf.size_flag("memory-swap",
                                                                           v["memory-swap"])
    ints = {"blkio-weight": "BlkioWeight", "cpu-period": "CpuPeriod", "cpu-quota": "CpuQuota",
            "cpu-shares": "CpuShares", "pids-limit": "PidsLimit"}
    for flag, key in ints.items():
        if flag in v:
            body[key] = rf.int_flag(flag, v[flag])
    if "cpus" in v:
        body["NanoCpus"] = rf.nano_cpus(v["cpus"])
    for flag, key in (("cpuset-cpus", "CpusetCpus"), ("cpuset-mems", "CpusetMems")):
        if flag in v:
            body[key] = v[flag]
    if "restart" in v:
        body["RestartPolicy"] = rf.restart_policy(v["restart"])
    return body


def cmd_update(ctx: Context, argv: Sequence[str], verb: str = "update") -> int:
    v, names = parse(ctx, verb, argv, UPDATE_FLAGS, "update [OPTIONS] CONTAINER [CONTAINER...]",
                     "Update configuration of one or more containers", at_least=1)
    try:
        body = update_body(v)
    except UsageError as e:
        raise UsageError(f"{e}\nSee 'dockyard {verb} --help'.") from None
    if not body:
        raise _coded("dockyard: you must provide one or more flags when using this command", 1)
    api = client(ctx)

    def update(name: str) -> None:
        doc = api.post(f"/containers/{quote(name)}/update", body=body) or {}
        for w in doc.get("Warnings") or ():
            ctx.err.write(f"WARNING: {w}\n")

    return each(ctx, names, update)


def port_lines(ports: dict[str, Any] | None, want: str = "") -> list[str]:
    """docker's ``port`` lines from NetworkSettings.Ports: ``80/tcp -> 0.0.0.0:8080``."""
    if want and "/" not in want:
        want += "/tcp"
    out = []

    def key(item: tuple[str, Any]) -> tuple[int, str]:
        port, _, proto = item[0].partition("/")
        return int(port) if port.isdigit() else 0, proto

    for port, bindings in sorted((ports or {}).items(), key=key):
        if want and port != want:
            continue
        for b in bindings or ():
            ip = b.get("HostIp") or "0.0.0.0"
            host = f"[{ip}]" if ":" in ip else ip
            out.append(f"{b.get('HostPort', '')}" if want else
                       f"{port} -> {host}:{b.get('HostPort', '')}")
            if want:
                out[-1] = f"{host}:{b.get('HostPort', '')}"
    return out


def cmd_port(ctx: Context, argv: Sequence[str], verb: str = "port") -> int:
    from dockyard.cli.client import ClientError

    args = _no_flags(ctx, argv, verb, "port CONTAINER [PRIVATE_PORT[/PROTO]]",
                     "List port mappings or a specific mapping for the container", at_least=1,
                     at_most=2)
    try:
        info = client(ctx).get(f"/containers/{quote(args[0])}/json")
    except ClientError as e:
        raise command_error(e) from None
    want = args[1] if len(args) > 1 else ""
    lines = port_lines((info.get("NetworkSettings") or {}).get("Ports"), want)
    if want and not lines:
        raise _coded(f"Error: No public port '{want if '/' in want else want + '/tcp'}' "
                     f"published for {args[0]}", 1)
    ctx.out.write("".join(line + "\n" for line in lines))
    return 0
