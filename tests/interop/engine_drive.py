"""Driving real container engines (podman, dockerd) from tests: commands, a pty, host cleanup.

Used by test_podman_runtime.py and test_dockerd_runtime.py (pytest's default import mode puts
this directory on sys.path). Nothing here imports dockyard.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Mapping


class EngineCommandFailed(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return (f"{' '.join(map(str, self.cmd))} exited {self.returncode}\n"
                f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}")


def run_cmd(argv: list[Any], *, env: Mapping[str, str] | None = None, timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run to completion; text stdout/stderr through temporary files (a monitor that inherits a
    pipe would keep it open past the command's exit), stdin /dev/null."""
    argv = [str(a) for a in argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              env=dict(env) if env is not None else None, timeout=timeout)
        out.seek(0)
        err.seek(0)
        proc.stdout = out.read().decode(errors="replace")
        proc.stderr = err.read().decode(errors="replace")
    if check and proc.returncode != 0:
        raise EngineCommandFailed(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc


def run_in_pty(argv: list[Any], *, env: Mapping[str, str], prompt: bytes, send: bytes,
               timeout: float = 60) -> tuple[int, bytes]:
    """Run ``argv`` on a new pty; once ``prompt`` appears, type ``send``; return (exit code, output)."""
    argv = [str(a) for a in argv]
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal and stdio
        try:
            os.execvpe(argv[0], argv, dict(env))
        finally:
            os._exit(127)
    output, sent = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO: every holder of the pty's other end has gone
                    break
                if not data:
                    break
                output += data
            if not sent and prompt in output:
                os.write(fd, send)
                sent = True
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"{' '.join(argv)}: no exit after {timeout}s; output: {output!r}")
        wpid, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), output
    finally:
        os.close(fd)


def tar_rootfs(rootfs: Path, dest: Path) -> Path:
    """A tar of ``rootfs`` (symlinks kept, owned by root) for ``podman/docker import``."""
    with tarfile.open(dest, "w") as tar:
        tar.add(rootfs, arcname=".", filter=lambda ti: _as_root(ti))
    return dest


def _as_root(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


# --------------------------------------------------------------------------------------------------
# what an engine may leave on the host

def mounts_under(path: Path | str) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    prefix = str(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == prefix or mp.startswith(prefix + "/"):
                found.append(mp)
    return sorted(set(found), key=lambda m: m.count("/"), reverse=True)


def unmount_under(path: Path | str) -> list[str]:
    """Lazily unmount everything below ``path``; returns what was mounted."""
    mounted = mounts_under(path)
    for mp in mounted:
        subprocess.run(["umount", "-l", mp], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30, check=False)
    return mounted


def processes_mentioning(text: str) -> dict[int, str]:
    """pid -> command line of every process (not this one) whose command line contains ``text``."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if text in cmd:
            found[int(entry.name)] = cmd
    return found


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_gone(pids: Iterable[int], timeout: float = 10) -> set[int]:
    """Wait for the processes to exit (zombies count as gone); returns those still alive."""
    pids = set(pids)
    deadline = time.monotonic() + timeout
    while True:
        alive = set()
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    data = f.read()
                if data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X"):
                    alive.add(pid)
            except OSError:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_dirs(relative: str) -> list[Path]:
    """``relative`` (e.g. ``docker/<id>``) in every mounted hierarchy where it exists."""
    roots = [CGROUP_ROOT] + [h for h in CGROUP_ROOT.iterdir() if h.is_dir()]
    return [r / relative for r in roots if (r / relative).is_dir()]


def remove_empty_cgroups(relative: Iterable[str]) -> None:
    """rmdir these cgroups (children listed before parents) wherever they are empty."""
    for rel in relative:
        for d in cgroup_dirs(rel):
            try:
                d.rmdir()
            except OSError:
                pass  # busy, or another user's: left as it is


class HostPaths:
    """Host paths an engine creates outside its configured roots (lock files, caches, socket
    directories): remembers which were absent, and removes only those afterwards."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.absent = [Path(p) for p in paths if not os.path.lexists(p)]

    def remove_created(self, trees: Iterable[str] = ()) -> None:
        """Remove the created ones: files, directories in ``trees`` with their content, other
        directories only when empty. Deepest first."""
        trees = {Path(t) for t in trees}
        for p in sorted(self.absent, key=lambda p: len(p.parts), reverse=True):
            try:
                if p.is_dir() and not p.is_symlink():
                    if p in trees:
                        shutil.rmtree(p)
                    else:
                        p.rmdir()
                elif os.path.lexists(p):
                    p.unlink()
            except OSError:
                pass  # not empty: someone else's now
