"""Shared by the dockyard-runtime integration tests (test_runtime_*.py): polling, process and
cgroup checks, and what "nothing left behind" means. Imported as ``from runtime_util import ...``
(pytest puts this directory on sys.path)."""

from __future__ import annotations

import glob
import json
import time

import pytest

SLEEP = ["sleep", "1000"]


def wait_for(predicate, what: str, timeout: float = 10.0):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def cgroup_dirs(cid: str) -> list[str]:
    """The container's cgroup directories on the host (cgroupsPath /dockyard-test/<id>)."""
    return glob.glob(f"/sys/fs/cgroup/*/dockyard-test/{cid}") + glob.glob(
        f"/sys/fs/cgroup/dockyard-test/{cid}")


def listed_ids(runtime) -> list[str]:
    return runtime.run("list", "-q", timeout=30).stdout.split()


def assert_nothing_left(runtime, cid: str) -> None:
    assert cid not in listed_ids(runtime)
    assert cid not in runtime.containers(), f"state directory {runtime.root / cid} left behind"
    assert cgroup_dirs(cid) == [], "cgroup directories left behind"


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def catches(pid: int, signum: int) -> bool:
    """True once ``pid`` has a handler for ``signum`` (SigCgt in /proc/<pid>/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        pass
    return False


def wait_running(runtime, cid: str, timeout: float = 20.0) -> dict:
    """Poll ``state`` until ``cid`` is running; it may not exist yet (a foreground ``run``)."""
    def running():
        proc = runtime.run("state", cid, check=False, timeout=30)
        if proc.returncode == 0:
            st = json.loads(proc.stdout)
            return st if st["status"] == "running" else None
        return None
    return wait_for(running, f"{cid} to be running", timeout)


def one_line_error(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one error line, got {proc.stderr!r}"
    return lines[0]


def run(runtime, b, *flags, timeout: float = 60):
    """``run`` a bundle without raising: the CompletedProcess (exit code, stdout, stderr)."""
    return runtime.run("run", *flags, "--bundle", b.path, b.id, check=False, timeout=timeout)


def run_ok(runtime, b, timeout: float = 60) -> str:
    r = run(runtime, b, timeout=timeout)
    assert r.returncode == 0, f"exit {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    return r.stdout


def assert_refused(runtime, b, *needles: str) -> str:
    """``run`` fails with exit 1 and one stderr line naming ``needles``; nothing is left."""
    r = run(runtime, b, timeout=30)
    err = r.stderr.strip()
    assert r.returncode == 1, f"exit {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    assert_nothing_left(runtime, b.id)
    return err


def output_on_fd3(runtime, *args: str) -> tuple[object, bytes]:
    """Run ``runtime`` with a pipe as its fd 3 (for --preserve-fds); (process, bytes read back)."""
    import os

    r, w = os.pipe()
    try:
        proc = runtime.run(*args, check=False, close_fds=False, preexec_fn=lambda: os.dup2(w, 3))
        os.close(w)
        w = -1
        with os.fdopen(r, "rb") as f:
            r = -1
            return proc, f.read()
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
