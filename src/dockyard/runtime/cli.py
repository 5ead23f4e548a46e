"""``dockyard-runtime``: runc's command line, so that podman/conmon and containerd can drive it.

The parser is hand-written to match runc's (urfave/cli + Go's flag package): ``-flag`` and
``--flag``, ``--flag=value`` or ``--flag value``, repeated flags for lists, flags before positional
arguments. It is also cheaper to import than argparse, and this process starts for every container.
"""

from __future__ import annotations

import os
import sys

from dockyard import leanjson as json
from dockyard.errors import DockyardError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.runtime.state import StateDir

DEFAULT_ROOT = "/run/dockyard-runtime"
USAGE = """usage: dockyard-runtime [global options] command [command options] [arguments...]

An OCI runtime with runc's command line.

commands:
  create    create a container (its process waits for start)
  start     start the process of a created container
  run       create and start a container (waits for it unless --detach)
  state     print the state of a container as JSON
  kill      send a signal to the container's init (or --all processes)
  delete    delete a stopped container (--force: any)
  exec      run a new process inside a running container
  list      list containers
  ps        list the processes of a container
  pause     freeze every process of a container
  resume    thaw a paused container
  update    change a container's resource limits
  features  print the features this runtime implements (JSON)
  spec      write a default config.json into the bundle

global options:
  --root DIR          state directory (default /run/dockyard-runtime)
  --log FILE          log file (default stderr)
  --log-format FMT    text or json
  --debug             debug logging
  --systemd-cgroup    use systemd cgroups (not available here)
  -v, --version       print the version
"""

# flag name -> kind: "bool", "str", "list", or "=long-name" for a short alias (per command:
# runc's -f is --force for delete but --format for list and ps).
_GLOBAL = {"root": "str", "log": "str", "log-format": "str", "debug": "bool", "systemd-cgroup": "bool",
           "criu": "str", "rootless": "str", "version": "bool", "v": "=version", "help": "bool",
           "h": "=help"}
_CREATE = {"bundle": "str", "b": "=bundle", "console-socket": "str", "pid-file": "str",
           "no-pivot": "bool", "no-new-keyring": "bool", "preserve-fds": "str", "notify-socket": "str"}
_COMMANDS: dict[str, dict[str, str]] = {
    "create": _CREATE,
    "run": {**_CREATE, "detach": "bool", "d": "=detach", "keep": "bool"},
    "start": {}, "state": {}, "pause": {}, "resume": {}, "features": {},
    "kill": {"all": "bool", "a": "=all"},
    "delete": {"force": "bool", "f": "=force"},
    "exec": {"console-socket": "str", "cwd": "str", "env": "list", "e": "=env", "tty": "bool",
             "t": "=tty", "user": "str", "u": "=user", "additional-gids": "list",
             "g": "=additional-gids", "process": "str", "p": "=process", "detach": "bool",
             "d": "=detach", "pid-file": "str", "process-label": "str", "apparmor": "str",
             "no-new-privs": "bool", "cap": "list", "c": "=cap", "preserve-fds": "str",
             "cgroup": "list", "ignore-paused": "bool"},
    "list": {"format": "str", "f": "=format", "quiet": "bool", "q": "=quiet"},
    "ps": {"format": "str", "f": "=format"},
    "update": {"resources": "str", "r": "=resources", "memory": "str", "memory-reservation": "str",
               "memory-swap": "str", "kernel-memory": "str", "kernel-memory-tcp": "str",
               "cpu-shares": "str", "cpu-period": "str", "cpu-quota": "str", "cpu-rt-period": "str",
               "cpu-rt-runtime": "str", "cpuset-cpus": "str", "cpuset-mems": "str",
               "pids-limit": "str", "blkio-weight": "str", "l3-cache-schema": "str",
               "mem-bw-schema": "str"},
    "spec": {"bundle": "str", "b": "=bundle", "rootless": "bool"},
}
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _lookup(table: dict[str, str], name: str) -> tuple[str, str | None]:
    """(canonical name, kind) of a flag; kind None when the table has no such flag."""
    kind = table.get(name)
    if kind is not None and kind.startswith("="):
        name = kind[1:]
        kind = table[name]
    return name, kind


def parse_flags(args: list[str], table: dict[str, str], where: str) -> tuple[dict, list[str]]:
    """Go-style flags until the first positional argument (or ``--``)."""
    out: dict = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name, eq, value = a.lstrip("-").partition("=")
        key, kind = _lookup(table, name)
        if kind is None:
            shorts = [_lookup(table, ch) for ch in name]
            if where != "global" and not a.startswith("--") and len(name) > 1 and not eq and all(
                    kd == "bool" for _k, kd in shorts):
                for k, _kd in shorts:  # combined short booleans, e.g. -dt
                    out[k] = True
                i += 1
                continue
            raise InvalidArgument(f"{where}: flag provided but not defined: {a}")
        if kind == "bool":
            if not eq or value in _GO_TRUE:
                out[key] = True
            elif value in _GO_FALSE:
                out[key] = False
            else:
                raise InvalidArgument(f"{where}: invalid boolean value {value!r} for {a.partition('=')[0]}")
        else:
            if not eq:
                i += 1
                if i >= len(args):
                    raise InvalidArgument(f"{where}: flag needs an argument: {a}")
                value = args[i]
            if kind == "list":
                out.setdefault(key, []).append(value)
            else:
                out[key] = value
        i += 1
    return out, args[i:]


class Logger:
    def __init__(self, path: str, fmt: str) -> None:
        if fmt not in ("text", "json"):
            raise InvalidArgument(f"--log-format: must be text or json, got {fmt!r}")
        self.path, self.fmt = path, fmt

    def error(self, msg: str) -> None:
        sys.stderr.write(f"dockyard-runtime: {msg}\n")
        if not self.path:
            return
        from dockyard.runtime.state import now_rfc3339

        if self.fmt == "json":
            line = json.dumps({"level": "error", "msg": msg, "time": now_rfc3339()})
        else:
            line = f'time="{now_rfc3339()}" level=error msg={json.dumps(msg)}'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass


def _one_id(rest: list[str], cmd: str) -> str:
    if len(rest) != 1:
        raise InvalidArgument(f"{cmd}: expects exactly one container id, got {len(rest)} arguments")
    return rest[0]


def _int_flag(opts: dict, name: str) -> int:
    v = opts.get(name, "0") or "0"
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"--{name}: not a number: {v!r}") from None


def _sys():  # -> LibcSyscalls
    from dockyard.kernel.syscalls import LibcSyscalls

    return LibcSyscalls()


def cmd_create(states: StateDir, opts: dict, rest: list[str], run: bool) -> int:
    from dockyard.runtime import create as cr

    cid = _one_id(rest, "run" if run else "create")
    detach = bool(opts.get("detach"))
    created = cr.create(_sys(), states, cid, opts.get("bundle") or os.getcwd(),
                        mode="run" if run else "create", pid_file=opts.get("pid-file", ""),
                        console_socket=opts.get("console-socket", ""),
                        no_pivot=bool(opts.get("no-pivot")),
                        preserve_fds=_int_flag(opts, "preserve-fds"), detach=detach)
    if not run:
        return 0
    from dockyard.runtime.execute import wait_foreground

    return cr.run_started(states, created, detach=detach, keep=bool(opts.get("keep")),
                          wait=wait_foreground)


def _exec_process(opts: dict, rest: list[str], states: StateDir):  # -> (id, Process)
    from dockyard.oci.runtime_spec import Capabilities, User, parse_process
    from dockyard.record import replace

    if not rest:
        raise InvalidArgument("exec: expects a container id")
    cid = rest[0]
    if opts.get("process"):
        path = opts["process"]
        try:
            with open(path, "rb") as f:
                raw = json.loads(f.read())
        except OSError as e:
            raise InvalidArgument(f"exec --process {path}: {e.strerror}") from None
        except ValueError as e:
            raise InvalidArgument(f"exec --process {path}: invalid JSON: {e}") from None
        return cid, parse_process(raw, "process")
    if len(rest) < 2:
        raise InvalidArgument("exec: expects a command after the container id (or --process)")
    from dockyard.oci.runtime_spec import parse_spec

    cur = states.load(cid)
    base = parse_spec(json.loads(cur.config)).process
    if base is None:
        raise InvalidArgument(f"exec: container {cid} has no process defaults")
    env = list(base.env)
    for e in opts.get("env", []):
        if "=" not in e:
            raise InvalidArgument(f"exec --env {e!r}: expected KEY=value")
        env = [x for x in env if x.split("=", 1)[0] != e.split("=", 1)[0]] + [e]
    user = base.user
    if opts.get("user"):
        uid, _, gid = opts["user"].partition(":")
        try:
            user = User(uid=int(uid), gid=int(gid) if gid else 0,
                        additional_gids=tuple(int(g) for g in opts.get("additional-gids", [])))
        except ValueError:
            raise InvalidArgument(f"exec --user {opts['user']!r}: expected uid[:gid] as numbers") from None
        from dockyard.oci.runtime_spec import ID_MAX

        if not all(0 <= i <= ID_MAX for i in (user.uid, user.gid, *user.additional_gids)):
            # -1 (4294967295) means "unchanged" to setresuid: the process would stay root
            raise InvalidArgument(f"exec --user {opts['user']!r} --additional-gids: ids must be "
                                  f"within 0..{ID_MAX}")
    caps = base.capabilities
    extra = tuple(c if c.startswith("CAP_") else f"CAP_{c.upper()}" for c in opts.get("cap", []))
    if extra:
        from dockyard.oci.runtime_spec import CAP_NUMBERS

        for c in extra:
            if c not in CAP_NUMBERS:
                raise InvalidArgument(f"exec --cap {c}: unknown capability")
        c0 = caps or Capabilities()
        # Like runc (after CVE-2022-29162): added caps go to bounding, effective and permitted.
        caps = Capabilities(bounding=c0.bounding + extra, effective=c0.effective + extra,
                            permitted=c0.permitted + extra, inheritable=c0.inheritable,
                            ambient=c0.ambient)
    proc = replace(base, args=tuple(rest[1:]), env=tuple(env), cwd=opts.get("cwd") or base.cwd,
                   terminal=bool(opts.get("tty")), user=user, capabilities=caps,
                   no_new_privileges=base.no_new_privileges or bool(opts.get("no-new-privs")),
                   console_size=None)
    if not proc.cwd.startswith("/"):
        raise InvalidArgument(f"exec --cwd {proc.cwd!r}: must be an absolute path")
    return cid, proc


def cmd_exec(states: StateDir, opts: dict, rest: list[str]) -> int:
    from dockyard.runtime.execute import exec_process

    cid, proc = _exec_process(opts, rest, states)
    if opts.get("apparmor"):
        raise InvalidArgument("exec --apparmor: AppArmor is not enabled in this kernel")
    if opts.get("process-label"):
        raise InvalidArgument("exec --process-label: SELinux is not enabled in this kernel")
    return exec_process(_sys(), states, cid, proc, detach=bool(opts.get("detach")),
                        pid_file=opts.get("pid-file", ""), console_socket=opts.get("console-socket", ""),
                        preserve_fds=_int_flag(opts, "preserve-fds"))


def cmd_update(states: StateDir, opts: dict, rest: list[str]) -> int:
    from dockyard.runtime import commands
    from dockyard.runtime.update_flags import resources_from_flags

    cid = _one_id(rest, "update")
    resources, raw = resources_from_flags(opts)
    commands.update(states, cid, resources, raw)
    return 0


def cmd_spec(opts: dict) -> int:
    from dockyard.runtime.default_spec import default_spec

    bundle = opts.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise InvalidArgument(f"spec: {path} exists; remove it first")
    from dockyard.runtime.state import write_atomic

    write_atomic(os.path.abspath(path),
                 (json.dumps(default_spec(bool(opts.get("rootless"))), indent="\t") + "\n").encode())
    return 0


def dispatch(argv: list[str]) -> int:
    gopts: dict = {}
    log = Logger("", "text")
    try:
        gopts, rest = parse_flags(argv, _GLOBAL, "global")
        log = Logger(gopts.get("log", ""), gopts.get("log-format", "text") or "text")
        return _dispatch(gopts, rest)
    except DockyardError as e:
        log.error(str(e))
        return 1
    except OSError as e:
        if gopts.get("debug"):
            import traceback

            traceback.print_exc()
        log.error(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
        return 1


def _dispatch(gopts: dict, rest: list[str]) -> int:
    from dockyard.runtime.default_spec import SPEC_VERSION, VERSION

    if gopts.get("version"):
        sys.stdout.write(f"dockyard-runtime version {VERSION}\nspec: {SPEC_VERSION}\n")
        return 0
    if gopts.get("help") or not rest or rest[0] in ("help", "h"):
        sys.stdout.write(USAGE)
        return 0
    if gopts.get("systemd-cgroup"):
        raise InvalidArgument("--systemd-cgroup: no systemd manages cgroups on this host; "
                              "use cgroupfs (podman: cgroup_manager = \"cgroupfs\")")
    cmd = rest[0]
    if cmd not in _COMMANDS:
        raise InvalidArgument(f"unknown command {cmd!r} (see dockyard-runtime --help)")
    opts, rest = parse_flags(rest[1:], _COMMANDS[cmd], cmd)
    if cmd == "spec":
        return cmd_spec(opts)
    if cmd == "features":
        from dockyard.runtime.default_spec import features

        sys.stdout.write(json.dumps(features(), indent=4) + "\n")
        return 0
    from dockyard.runtime import commands
    from dockyard.runtime.state import StateDir

    states = StateDir(gopts.get("root") or DEFAULT_ROOT)
    if cmd in ("create", "run"):
        return cmd_create(states, opts, rest, run=cmd == "run")
    if cmd == "exec":
        return cmd_exec(states, opts, rest)
    if cmd == "update":
        return cmd_update(states, opts, rest)
    if cmd == "start":
        from dockyard.runtime.start import start

        start(states, _one_id(rest, cmd))
    elif cmd == "state":
        doc = commands.state_document(states, states.load(_one_id(rest, cmd)))
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif cmd == "kill":
        if not rest or len(rest) > 2:
            raise InvalidArgument("kill: expects a container id and an optional signal")
        sig = commands.parse_signal(rest[1] if len(rest) > 1 else "SIGTERM")
        commands.kill(states, rest[0], sig, bool(opts.get("all")))
    elif cmd == "delete":
        for cid in rest or _one_id(rest, cmd):
            commands.delete(states, cid, bool(opts.get("force")))
    elif cmd == "list":
        docs = commands.list_states(states)
        fmt = opts.get("format", "table")
        if opts.get("quiet"):
            sys.stdout.write("".join(d["id"] + "\n" for d in docs))
        elif fmt == "json":
            sys.stdout.write(json.dumps(docs) + "\n")
        elif fmt == "table":
            sys.stdout.write(commands.format_list(docs))
        else:
            raise InvalidArgument(f"list --format {fmt!r}: use table or json")
    elif cmd == "ps":
        if not rest:
            raise InvalidArgument("ps: expects a container id")
        sys.stdout.write(commands.ps(states, rest[0], opts.get("format", "table"), rest[1:]))
    elif cmd == "pause":
        commands.pause(states, _one_id(rest, cmd))
    elif cmd == "resume":
        commands.resume(states, _one_id(rest, cmd))
    return 0


def main() -> None:
    code = dispatch(sys.argv[1:])
    # Skip the interpreter's teardown (a few ms per container start): nothing needs finalizing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
