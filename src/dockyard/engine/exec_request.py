"""The exec request, pure: ``POST /containers/{id}/exec`` bodies, the exec's environment and
OCI process (from the container's), detach keys, and dockerd's text for a failed start. The
running side is ``engine/exec.py``.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument
from dockyard.record import Record

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


class ExecConfig(Record):
    """``POST /containers/{id}/exec`` body, typed."""

    cmd: tuple[str, ...]
    env: tuple[str, ...] = ()
    user: str = ""
    working_dir: str = ""
    tty: bool = False
    privileged: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    detach_keys: str = ""
    console_size: tuple[int, int] | None = None  # (height, width)


def _strings(body: dict, key: str) -> tuple[str, ...]:
    v = body.get(key)
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"exec create: {key} must be a list of strings")
    return tuple(v)


def parse_console_size(v: object, what: str) -> tuple[int, int] | None:
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, int) and x >= 0 for x in v):
        raise InvalidArgument(f"{what}: ConsoleSize must be [height, width]")
    return (v[0], v[1]) if v[0] or v[1] else None


def parse_exec_config(body: dict) -> ExecConfig:
    if not isinstance(body, dict):
        raise InvalidArgument("exec create: expected a JSON object")
    cmd = _strings(body, "Cmd")
    if not cmd:
        raise InvalidArgument("No exec command specified")
    env = _strings(body, "Env")
    for e in env:
        if not e or e.startswith("=") or "\0" in e:
            raise InvalidArgument(f"exec create: invalid environment variable {e!r}")

    def text(key: str) -> str:
        v = body.get(key)
        if v is not None and not isinstance(v, str):
            raise InvalidArgument(f"exec create: {key} must be a string")
        return v or ""

    if text("DetachKeys"):
        detach_key_bytes(text("DetachKeys"))
    wd = text("WorkingDir")
    if wd and not wd.startswith("/"):
        raise InvalidArgument(f"the working directory '{wd}' is invalid, it needs to be an "
                              "absolute path")
    return ExecConfig(cmd=cmd, env=env, user=text("User"), working_dir=wd,
                      tty=bool(body.get("Tty")), privileged=bool(body.get("Privileged")),
                      attach_stdin=bool(body.get("AttachStdin")),
                      attach_stdout=bool(body.get("AttachStdout")),
                      attach_stderr=bool(body.get("AttachStderr")),
                      detach_keys=text("DetachKeys"),
                      console_size=parse_console_size(body.get("ConsoleSize"), "exec create"))


def exec_env(base: list[str], exec_env_: tuple[str, ...], *, tty: bool,
             config_env: list[str]) -> list[str]:
    """dockerd's exec environment: the container's (PATH, HOSTNAME, its Env), ``TERM=xterm``
    only when the exec has a TTY (unless the container's Env sets TERM), then the exec's Env
    replacing or appending by key; a bare ``KEY`` removes it."""
    env = list(base)
    own_term = any(e.split("=", 1)[0] == "TERM" for e in config_env)
    if not own_term:
        env = [e for e in env if e.split("=", 1)[0] != "TERM"]
        if tty:
            env.append("TERM=xterm")
    for e in exec_env_:
        key, eq, _ = e.partition("=")
        env = [x for x in env if x.split("=", 1)[0] != key]
        if eq:
            env.append(e)
    return env


def process_spec(base: dict, cfg: ExecConfig, *, env: list[str],
                 user: tuple[int, int, tuple[int, ...]] | None,
                 console_size: tuple[int, int] | None, all_caps: tuple[str, ...]) -> dict:
    """The OCI ``process`` for the exec: the container's process with the exec's args, env, user
    (``None``: the container's), cwd, terminal and (privileged) every capability."""
    p = {k: v for k, v in base.items() if k != "consoleSize"}
    p["args"] = list(cfg.cmd)
    p["env"] = env
    p["terminal"] = cfg.tty
    if cfg.working_dir:
        p["cwd"] = cfg.working_dir
    p.setdefault("cwd", "/")
    if user is not None:
        uid, gid, extra = user
        u = {k: v for k, v in (base.get("user") or {}).items() if k == "umask"}
        u.update(uid=uid, gid=gid)
        if extra:
            u["additionalGids"] = list(extra)
        p["user"] = u
    if cfg.privileged:
        caps = list(all_caps)
        p["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    if cfg.tty and console_size:
        p["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    return p


def start_error(stderr_text: str, container_id: str) -> str:
    """dockerd's text for a failed exec start, from the runtime's last error line
    (dockyard-runtime's ``dockyard-runtime: exec in container ID: ...`` or runc's logfmt
    ``level=error msg="exec failed: ..."``)."""
    lines = [ln.strip() for ln in stderr_text.splitlines() if ln.strip()]
    msg = lines[-1] if lines else "the process did not start"
    if 'msg="' in msg:
        msg = msg.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    for prefix in ("dockyard-runtime: ", f"exec in container {container_id}: ", "exec failed: ",
                   "unable to start container process: "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return f"OCI runtime exec failed: exec failed: unable to start container process: {msg}: unknown"


def detach_key_bytes(text: str) -> bytes:
    """``ctrl-p,ctrl-q`` → ``b"\\x10\\x11"`` (docker's ``term.ToBytes``: ``ctrl-a``..``ctrl-z``,
    ``ctrl-@ [ \\ ] ^ _``, or single characters)."""
    out = bytearray()
    for key in text.split(","):
        k = key.strip().lower()
        if k.startswith("ctrl-") and len(k) == 6 and ("a" <= k[5] <= "z" or k[5] in "@[\\]^_"):
            out.append(ord(k[5]) - (ord("a") - 1 if "a" <= k[5] <= "z" else ord("@")))
        elif len(key) == 1:
            out += key.encode()
        else:
            raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class DetachScanner:
    """Finds the detach keys in a TTY's input; bytes that may start them are held back until
    the sequence completes (detach) or breaks (they are passed on)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, whether the keys were typed)."""
        out = bytearray()
        keys = self.keys
        for b in data:
            if keys and b == keys[self.matched]:
                self.matched += 1
                if self.matched == len(keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            if self.matched:
                out += keys[:self.matched]
                self.matched = 1 if b == keys[0] else 0
                if self.matched:
                    continue
            out.append(b)
        return bytes(out), False


__all__ = ["DEFAULT_DETACH_KEYS", "DetachScanner", "ExecConfig", "detach_key_bytes", "exec_env",
           "parse_console_size", "parse_exec_config", "process_spec", "start_error"]
