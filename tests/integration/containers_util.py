"""Helpers of the engine's integration modules: ``ENGINE_MARKS`` (what they need on the host),
``cleaned_daemon`` (the fixture ``d``), ``poll`` (wait for a condition with a deadline), ``state``
(one ``docker inspect --format``) and ``conmon_pids`` (the monitors of some containers)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemon_util import Daemon

ENGINE_MARKS = [
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs host /bin/busybox"),
    pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI"),
    pytest.mark.skipif(shutil.which("conmon") is None, reason="needs conmon"),
]


def poll(what: str, check: Callable[[], object], timeout: float = 20.0) -> object:
    """``check()``'s first truthy answer; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def cleaned_daemon(daemon_name: str = "daemon"):
    """A function-scoped fixture named ``d`` (assign it to a module global ``d``): the module's
    daemon fixture ``daemon_name``; any container a failed test left behind is removed after
    it."""

    @pytest.fixture(name="d")
    def _d(request: pytest.FixtureRequest) -> Iterator[Daemon]:
        daemon: Daemon = request.getfixturevalue(daemon_name)
        yield daemon
        left = daemon.docker("ps", "-aq").stdout.split()
        if left:
            daemon.docker("rm", "-f", *left, check=False)

    return _d


def state(d: Daemon, name: str, field: str = "{{.State.Status}}") -> str:
    """``docker inspect --format FIELD NAME``, stripped."""
    return d.docker("inspect", "--format", field, name).stdout.strip()


def conmon_pids(*ids: str) -> list[int]:
    """The conmon processes whose command line names one of these container ids."""
    wanted = [i.encode() for i in ids]
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and any(i in argv for i in wanted):
            out.append(int(entry))
    return out
