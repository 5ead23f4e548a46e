"""Container verbs that move data: ``logs``, ``attach``, ``exec``, ``top``, ``diff``, ``commit``,
``events`` (``stats`` and ``cp`` have their own modules).

Streams are Docker's: logs and non-TTY attach/exec are 8-byte multiplexed frames, demultiplexed
to stdout/stderr; with a TTY the bytes are raw. ``exec`` exits with the process's exit code
(``GET /exec/{id}/json`` after the stream), ``attach`` with the container's.
"""

from __future__ import annotations

import os

from dockyard.cli.common import CommandError, UsageError
from dockyard.cli.containers_util import client, command_error, filters, parse, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from dockyard.cli.common import Context


def _coded(message: str, code: int) -> CommandError:
    err = CommandError(message)
    err.code = code
    return err


def api_time(value: str, now: float | None = None) -> str:
    """docker's GetTimestamp: a Go duration is "that long ago" in whole seconds, an RFC 3339 time
    becomes ``seconds.nanoseconds``, a number passes as it is."""
    import time

    from dockyard.cli.common import parse_time
    from dockyard.engine.units import parse_duration
    from dockyard.errors import InvalidArgument

    if not value:
        return ""
    try:
        d = parse_duration(value)
    except InvalidArgument:
        pass
    else:
        return str(int((time.time() if now is None else now) - d))
    if value.replace(".", "", 1).isdigit():
        return value
    t = parse_time(value)
    if t is None and len(value) == 10 and value[4] == "-":
        t = parse_time(value + "T00:00:00Z")
    if t is None:
        raise UsageError(f'invalid value for "since"/"until": {value!r}: use a duration '
                         "(10m), an RFC 3339 time or a unix timestamp")
    secs = int(t // 1)
    return f"{secs}.{round((t - secs) * 1e9):09d}"


def _write_frames(ctx: Context, resp: Any, tty: bool) -> None:
    """Copy a logs/attach response to the context's stdout/stderr (demultiplexed unless TTY)."""
    out, err = ctx.out_binary, _err_binary(ctx)
    if tty:
        while chunk := resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536):
            out.write(chunk)
            out.flush()
        return
    from dockyard.cli.client import demux

    for stream, data in demux(resp):
        target = err if stream == 2 else out
        target.write(data)
        target.flush()


def _err_binary(ctx: Context) -> Any:
    import sys

    if ctx.err is sys.stderr:
        sys.stderr.flush()
        return sys.stderr.buffer
    return _TextSink(ctx.err)


class _TextSink:
    def __init__(self, text: Any) -> None:
        self.text = text

    def write(self, data: bytes) -> None:
        self.text.write(data.decode("utf-8", "replace"))

    def flush(self) -> None:
        self.text.flush()


LOGS_FLAGS = {
    "details": ("", "bool", "Show extra details provided to logs"),
    "follow": ("f", "bool", "Follow log output"),
    "since": ("", "str", "Show logs since timestamp or relative (e.g. 42m for 42 minutes)"),
    "tail": ("n", "str", 'Number of lines to show from the end of the logs (default "all")'),
    "timestamps": ("t", "bool", "Show timestamps"),
    "until": ("", "str", "Show logs before a timestamp or relative (e.g. 42m for 42 minutes)"),
}


def cmd_logs(ctx: Context, argv: Sequence[str], verb: str = "logs") -> int:
    from dockyard.cli.client import ClientError

    v, args = parse(ctx, verb, argv, LOGS_FLAGS, f"{verb} [OPTIONS] CONTAINER",
                    "Fetch the logs of a container", exactly=1)
    query: dict[str, Any] = {"stdout": True, "stderr": True}
    for flag, key in (("since", "since"), ("until", "until")):
        if v.get(flag):
            query[key] = api_time(v[flag])
    if v.get("timestamps"):
        query["timestamps"] = True
    if v.get("follow"):
        query["follow"] = True
    if v.get("details"):
        query["details"] = True
    query["tail"] = v.get("tail", "all")
    api = client(ctx)
    try:
        info = api.get(f"/containers/{quote(args[0])}/json")
        resp = api.stream("GET", f"/containers/{quote(info['Id'])}/logs", query)
    except ClientError as e:
        raise command_error(e) from None
    try:
        _write_frames(ctx, resp, bool((info.get("Config") or {}).get("Tty")))
    finally:
        resp.close()
    return 0


ATTACH_FLAGS = {
    "detach-keys": ("", "str", "Override the key sequence for detaching a container"),
    "no-stdin": ("", "bool", "Do not attach STDIN"),
    "sig-proxy": ("", "bool", "Proxy all received signals to the process (default true)"),
}


def cmd_attach(ctx: Context, argv: Sequence[str], verb: str = "attach") -> int:
    from dockyard.cli.client import ClientError
    from dockyard.cli.containers import stream_container

    v, args = parse(ctx, verb, argv, ATTACH_FLAGS, f"{verb} [OPTIONS] CONTAINER",
                    "Attach local standard input, output, and error streams to a running "
                    "container", exactly=1)
    api = client(ctx)
    try:
        info = api.get(f"/containers/{quote(args[0])}/json")
    except ClientError as e:
        raise command_error(e) from None
    state, config = info.get("State") or {}, info.get("Config") or {}
    if not state.get("Running"):
        raise _coded("You cannot attach to a stopped container, start it first", 1)
    if state.get("Paused"):
        raise _coded("You cannot attach to a paused container, unpause it first", 1)
    cid, tty = info["Id"], bool(config.get("Tty"))
    stdin = bool(config.get("OpenStdin")) and not v.get("no-stdin")
    if stdin and tty and not ctx.isatty("in"):
        raise _coded("the input device is not a TTY", 1)
    query: dict[str, Any] = {"stream": True, "stdin": stdin, "stdout": True, "stderr": True}
    if v.get("detach-keys"):
        query["detachKeys"] = v["detach-keys"]
    try:
        sock, buffered = api.hijack("POST", f"/containers/{quote(cid)}/attach", query)
    except ClientError as e:
        raise command_error(e) from None
    if stream_container(ctx, api, cid, tty=tty, stdin=stdin, sock=sock, buffered=buffered,
                        sig_proxy=v.get("sig-proxy", True), detach_keys=v.get("detach-keys", ""),
                        resize_path=f"/containers/{quote(cid)}/resize"):
        return 0
    try:
        doc = api.post(f"/containers/{quote(cid)}/wait") or {}
    except ClientError:
        return 0
    return int(doc.get("StatusCode", 0))


EXEC_FLAGS = {
    "detach": ("d", "bool", "Detached mode: run command in the background"),
    "detach-keys": ("", "str", "Override the key sequence for detaching a container"),
    "env": ("e", "list", "Set environment variables"),
    "env-file": ("", "list", "Read in a file of environment variables"),
    "interactive": ("i", "bool", "Keep STDIN open even if not attached"),
    "privileged": ("", "bool", "Give extended privileges to the command"),
    "tty": ("t", "bool", "Allocate a pseudo-TTY"),
    "user": ("u", "str", "Username or UID (format: \"<name|uid>[:<group|gid>]\")"),
    "workdir": ("w", "str", "Working directory inside the container"),
}


def exec_body(v: dict[str, Any], cmd: Sequence[str], env: dict[str, str],
              read_file: Any, console_size: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """``exec`` flags → the ``POST /containers/{id}/exec`` body the docker CLI sends."""
    from dockyard.cli.run_values import env_list

    detach = bool(v.get("detach"))
    env_list_ = env_list(v, env, read_file)
    body: dict[str, Any] = {
        "User": v.get("user", ""), "Privileged": bool(v.get("privileged")),
        "Tty": bool(v.get("tty")), "AttachStdin": bool(v.get("interactive")) and not detach,
        "AttachStderr": not detach, "AttachStdout": not detach, "Detach": detach,
        "DetachKeys": v.get("detach-keys", ""), "Env": env_list_ or None,
        "WorkingDir": v.get("workdir", ""), "Cmd": list(cmd)}
    if v.get("tty") and console_size != (0, 0):
        body["ConsoleSize"] = list(console_size)
    return body


def cmd_exec(ctx: Context, argv: Sequence[str], verb: str = "exec") -> int:
    from dockyard.cli.client import ClientError
    from dockyard.cli.containers import stream_container
    from dockyard.cli.stream import terminal_size

    v, args = parse(ctx, verb, argv, EXEC_FLAGS, f"{verb} [OPTIONS] CONTAINER COMMAND [ARG...]",
                    "Execute a command in a running container", at_least=2, interspersed=False)
    if v.get("tty") and v.get("interactive") and not ctx.isatty("in"):
        raise _coded("the input device is not a TTY", 1)

    def read(path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read()

    size = terminal_size(1) if ctx.isatty("out") else (0, 0)
    try:
        body = exec_body(v, args[1:], dict(os.environ), read, size)
    except UsageError as e:
        raise UsageError(f"{e}\nSee 'dockyard {verb} --help'.") from None
    api = client(ctx)
    try:
        info = api.get(f"/containers/{quote(args[0])}/json")
        cid = info["Id"]
        eid = api.post(f"/containers/{quote(cid)}/exec", body=body)["Id"]
        start = {"Detach": body["Detach"], "Tty": body["Tty"]}
        if "ConsoleSize" in body:
            start["ConsoleSize"] = body["ConsoleSize"]
        if body["Detach"]:
            api.post(f"/exec/{eid}/start", body=start)
            return 0
        sock, buffered = api.hijack("POST", f"/exec/{eid}/start", body=start)
    except ClientError as e:
        raise command_error(e, 126 if "permission denied" in str(e).lower() else 1) from None
    stream_container(ctx, api, cid, tty=body["Tty"], stdin=body["AttachStdin"], sock=sock,
                     buffered=buffered, sig_proxy=False, detach_keys=body["DetachKeys"],
                     resize_path=f"/exec/{eid}/resize")
    try:
        doc = api.get(f"/exec/{eid}/json") or {}
    except ClientError as e:
        raise command_error(e) from None
    code = doc.get("ExitCode")
    return int(code) if code is not None else 0


def cmd_top(ctx: Context, argv: Sequence[str], verb: str = "top") -> int:
    from dockyard.cli.client import ClientError
    from dockyard.cli.format import table

    _, args = parse(ctx, verb, argv, {}, f"{verb} CONTAINER [ps OPTIONS]",
                    "Display the running processes of a container", at_least=1,
                    interspersed=False)
    query = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    try:
        doc = client(ctx).get(f"/containers/{quote(args[0])}/top", query) or {}
    except ClientError as e:
        raise command_error(e) from None
    rows = [[str(c) for c in p] for p in doc.get("Processes") or ()]
    ctx.out.write(table(doc.get("Titles") or [], rows, padding=3, min_width=20))
    return 0


_KINDS = {0: "C", 1: "A", 2: "D"}


def cmd_diff(ctx: Context, argv: Sequence[str], verb: str = "diff") -> int:
    from dockyard.cli.client import ClientError

    _, args = parse(ctx, verb, argv, {}, f"{verb} CONTAINER",
                    "Inspect changes to files or directories on a container's filesystem",
                    exactly=1)
    try:
        changes = client(ctx).get(f"/containers/{quote(args[0])}/changes") or []
    except ClientError as e:
        raise command_error(e) from None
    ctx.out.write("".join(f"{_KINDS.get(c.get('Kind'), '?')} {c.get('Path')}\n" for c in changes))
    return 0


COMMIT_FLAGS = {
    "author": ("a", "str", 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
    "change": ("c", "list", "Apply Dockerfile instruction to the created image"),
    "message": ("m", "str", "Commit message"),
    "pause": ("p", "bool", "Pause container during commit (default true)"),
}


def cmd_commit(ctx: Context, argv: Sequence[str], verb: str = "commit") -> int:
    from dockyard.cli.client import ClientError

    v, args = parse(ctx, verb, argv, COMMIT_FLAGS,
                    f"{verb} [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                    "Create a new image from a container's changes", at_least=1, at_most=2)
    query: dict[str, Any] = {"container": args[0]}
    if len(args) > 1:
        from dockyard.errors import InvalidArgument
        from dockyard.oci.reference import parse_normalized

        try:
            ref = parse_normalized(args[1])
        except InvalidArgument as e:
            raise _coded(f"Error: {e}", 1) from None
        if ref.digest:
            raise _coded("Error: refusing to create a tag with a digest reference", 1)
        query["repo"], query["tag"] = ref.name(), ref.tag or ""
    if v.get("message"):
        query["comment"] = v["message"]
    if v.get("author"):
        query["author"] = v["author"]
    if v.get("change"):
        query["changes"] = v["change"]
    query["pause"] = v.get("pause", True)
    try:
        doc = client(ctx).post("/commit", query) or {}
    except ClientError as e:
        raise command_error(e) from None
    ctx.out.write(f"{doc.get('Id', '')}\n")
    return 0


def _rfc3339nano(time_nano: int) -> str:
    import time

    secs, nanos = divmod(int(time_nano), 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(secs))
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    offset = time.strftime("%z", time.localtime(secs))
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return base + (frac if frac != "." else "") + zone


def event_line(msg: dict[str, Any]) -> str:
    """docker's default ``events`` line."""
    actor = msg.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    when = msg.get("timeNano") or (msg.get("time") or 0) * 1_000_000_000
    text = f"{_rfc3339nano(when)} {msg.get('Type', '')} {msg.get('Action', '')} {actor.get('ID', '')}"
    if attrs:
        text += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return text


def cmd_events(ctx: Context, argv: Sequence[str], verb: str = "events") -> int:
    from dockyard.cli.client import ClientError, json_messages

    flags = {"filter": ("f", "list", "Filter output based on conditions provided"),
             "format": ("", "str", "Format output using a custom template"),
             "since": ("", "str", "Show all events created since timestamp"),
             "until": ("", "str", "Stream events until this timestamp")}
    v, _ = parse(ctx, verb, argv, flags, f"{verb} [OPTIONS]", "Get real time events from the "
                 "server", at_most=0)
    query: dict[str, Any] = {}
    for key in ("since", "until"):
        if v.get(key):
            query[key] = api_time(v[key])
    if v.get("filter"):
        query["filters"] = filters(v["filter"])
    template = None
    fmt = v.get("format", "")
    if fmt and fmt.replace(" ", "") != "{{json.}}":
        from dockyard.cli.format import Template

        template = Template(fmt)
    try:
        resp = client(ctx).stream("GET", "/events", query)
    except ClientError as e:
        raise command_error(e) from None
    try:
        for msg in json_messages(resp):
            if template is not None:
                line = template.render(msg)
            elif fmt:
                import json

                line = json.dumps(msg, separators=(",", ":"), ensure_ascii=False)
            else:
                line = event_line(msg)
            ctx.out.write(line + "\n")
            ctx.out.flush()
    finally:
        resp.close()
    return 0
