"""The OCI runtime's command line, as the engine calls it (dockyard-runtime by default, runc
selectable): ``RUNTIME --root R <command> ...``. Privileged namespace work never happens inside
the threaded daemon (DESIGN §1): every step is a runtime process.
"""

from __future__ import annotations

import asyncio
import os

from dockyard.errors import Conflict, DockyardError, NotFound
from dockyard.record import Record


class Runtime(Record):
    """A named runtime: executable path and its state root (``--root``)."""

    name: str
    path: str
    root: str

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


async def check(rt: Runtime, *args: str, what: str, stdin: bytes | None = None) -> bytes:
    """Run and raise with the runtime's message on failure; stdout on success."""
    code, out, err = await run(rt, *args, stdin=stdin)
    if code != 0:
        text = message(err) or f"exit status {code}"
        lowered = text.lower()
        if "does not exist" in lowered or "not found" in lowered and "container" in lowered:
            raise NotFound(f"{what}: {text}")
        if "not running" in lowered or "is paused" in lowered or "not paused" in lowered:
            raise Conflict(f"{what}: {text}")
        raise RuntimeError_(f"{what}: {text}")
    return out


async def start(rt: Runtime, cid: str) -> None:
    await check(rt, "start", cid, what=f"start container {cid}")


async def kill(rt: Runtime, cid: str, signal: int, *, all: bool = False) -> None:
    args = ["kill", *(["--all"] if all else []), cid, str(signal)]
    await check(rt, *args, what=f"kill container {cid}")


async def delete(rt: Runtime, cid: str) -> None:
    """Forget the container in the runtime (its state dir and cgroup); gone already is fine."""
    code, _, err = await run(rt, "delete", "--force", cid)
    if code != 0:
        text = message(err).lower()
        if "does not exist" in text or "not found" in text or "no such" in text:
            return
        raise RuntimeError_(f"delete container {cid} in {rt.name}: {message(err)}")


async def pause(rt: Runtime, cid: str) -> None:
    await check(rt, "pause", cid, what=f"pause container {cid}")


async def resume(rt: Runtime, cid: str) -> None:
    await check(rt, "resume", cid, what=f"unpause container {cid}")


async def update(rt: Runtime, cid: str, resources_json: bytes) -> None:
    await check(rt, "update", "-r", "-", cid, what=f"update container {cid}",
                stdin=resources_json)


async def pids(rt: Runtime, cid: str) -> list[int]:
    from dockyard.leanjson import loads

    out = await check(rt, "ps", "--format", "json", cid, what=f"top container {cid}")
    data = loads(out.decode() or "[]")
    return [int(p) for p in data or ()]
