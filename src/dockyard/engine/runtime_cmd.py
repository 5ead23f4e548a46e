"""The OCI runtime's command line, as the engine calls it (dockyard-runtime by default, runc
selectable): ``RUNTIME --root R <command> ...``. Privileged namespace work never happens inside
the threaded daemon (DESIGN §1): ``create`` (conmon runs it) and ``exec`` are always a runtime
process.

``start``, ``kill``, ``delete``, ``pause`` and ``resume`` of dockyard's own runtime (the
launcher next to the daemon's Python: the same code) run in a worker thread of the daemon through
the runtime's library instead: none of them touches a namespace (a fifo write, a signal, cgroup
files, the state dir, hooks run as processes), and a CPython process per verb cost 12-20 ms per
container start and again at its exit. Any other runtime (runc, ``--add-runtime``) is a process.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from dockyard.errors import Conflict, DockyardError, NotFound
from dockyard.record import Record


class Runtime(Record):
    """A named runtime: executable path and its state root (``--root``)."""

    name: str
    path: str
    root: str
    inproc: bool = False  # dockyard's own runtime: the light verbs run in the daemon (above)

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]


class RuntimeError_(DockyardError):  # noqa: N801 - the builtin name is taken
    http_status = 500


async def run(rt: Runtime, *args: str, stdin: bytes | None = None,
              timeout: float = 60.0) -> tuple[int, bytes, bytes]:
    """Run one runtime command; ``(exit code, stdout, stderr)``."""
    proc = await asyncio.create_subprocess_exec(
        *rt.argv(*args), stdin=asyncio.subprocess.PIPE if stdin is not None else
        asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError_(f"{rt.name} {' '.join(args)}: no answer within {timeout:.0f}s") \
            from None
    return proc.returncode or 0, out, err


def message(err: bytes) -> str:
    """The runtime's error line without its log prefixes."""
    lines = [ln.strip() for ln in err.decode(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[-1]
    if 'msg="' in line:
        line = line.split('msg="', 1)[1].rsplit('"', 1)[0]
    for prefix in (f"{os.path.basename(line.split(':', 1)[0])}: ",):
        if line.startswith(prefix) and prefix.startswith("dockyard-runtime"):
            line = line[len(prefix):]
    return line


def _failure(what: str, text: str) -> DockyardError:
    """The engine's error for a runtime's failure message (runc's texts and dockyard-runtime's)."""
    lowered = text.lower()
    if "does not exist" in lowered or "not found" in lowered and "container" in lowered:
        return NotFound(f"{what}: {text}")
    if "not running" in lowered or "is paused" in lowered or "not paused" in lowered:
        return Conflict(f"{what}: {text}")
    return RuntimeError_(f"{what}: {text}")


async def check(rt: Runtime, *args: str, what: str, stdin: bytes | None = None) -> bytes:
    """Run and raise with the runtime's message on failure; stdout on success."""
    code, out, err = await run(rt, *args, stdin=stdin)
    if code != 0:
        raise _failure(what, message(err) or f"exit status {code}")
    return out


async def _inproc(what: str, verb: str, *args: Any) -> None:
    """One of dockyard-runtime's light verbs in a worker thread (module docstring)."""
    from dockyard.runtime import commands
    from dockyard.runtime.start import start as start_fn

    fn = start_fn if verb == "start" else getattr(commands, verb)
    try:
        await asyncio.to_thread(fn, *args)
    except DockyardError as e:
        raise _failure(what, str(e)) from None
    except OSError as e:
        raise RuntimeError_(f"{what}: {e}") from None


def _states(rt: Runtime):  # -> dockyard.runtime.state.StateDir
    from dockyard.runtime.state import StateDir

    return StateDir(rt.root)


async def start(rt: Runtime, cid: str) -> None:
    what = f"start container {cid}"
    if rt.inproc:
        await _inproc(what, "start", _states(rt), cid)
    else:
        await check(rt, "start", cid, what=what)


async def kill(rt: Runtime, cid: str, signal: int, *, all: bool = False) -> None:
    what = f"kill container {cid}"
    if rt.inproc:
        await _inproc(what, "kill", _states(rt), cid, signal, all)
    else:
        await check(rt, "kill", *(["--all"] if all else []), cid, str(signal), what=what)


async def delete(rt: Runtime, cid: str) -> None:
    """Forget the container in the runtime (its state dir and cgroup); gone already is fine."""
    what = f"delete container {cid} in {rt.name}"
    if rt.inproc:
        try:
            await _inproc(what, "delete", _states(rt), cid, True)
        except NotFound:
            pass
        return
    code, _, err = await run(rt, "delete", "--force", cid)
    if code != 0:
        text = message(err).lower()
        if "does not exist" in text or "not found" in text or "no such" in text:
            return
        raise RuntimeError_(f"{what}: {message(err)}")


async def pause(rt: Runtime, cid: str) -> None:
    what = f"pause container {cid}"
    if rt.inproc:
        await _inproc(what, "pause", _states(rt), cid)
    else:
        await check(rt, "pause", cid, what=what)


async def resume(rt: Runtime, cid: str) -> None:
    what = f"unpause container {cid}"
    if rt.inproc:
        await _inproc(what, "resume", _states(rt), cid)
    else:
        await check(rt, "resume", cid, what=what)


async def update(rt: Runtime, cid: str, resources_json: bytes) -> None:
    await check(rt, "update", "-r", "-", cid, what=f"update container {cid}",
                stdin=resources_json)


async def pids(rt: Runtime, cid: str) -> list[int]:
    from dockyard.leanjson import loads

    out = await check(rt, "ps", "--format", "json", cid, what=f"top container {cid}")
    data = loads(out.decode() or "[]")
    return [int(p) for p in data or ()]
