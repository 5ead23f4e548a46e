"""Helpers of the test_api_containers*.py modules: ``cleaned_daemon`` (the fixture ``d``),
``poll`` (wait for a condition with a deadline) and ``state`` (one ``docker inspect
--format``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from daemon_util import Daemon


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
