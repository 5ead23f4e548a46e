"""``engine.logs`` and ``engine.logrotate`` against the real conmon 2.1.6 and runc: the container's
output lands in the k8s-file log, rotation + conmon's reopen (``"2 0 0"`` into ``<bundle>/ctl``)
keeps lines flowing into the new file, and both the reader and a follower see every line once,
in order, across the rotated files."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.engine.logrotate import rotate
from dockyard.engine.logs import follow, read_entries, rotated_paths

CONMON = shutil.which("conmon") or "/usr/bin/conmon"

pytestmark = pytest.mark.skipif(not os.path.exists(CONMON), reason="needs conmon")


class Monitored:
    """A container started under conmon with ``--full-attach`` and a k8s-file log."""

    def __init__(self, bundle, runtime, exit_dir: Path) -> None:
        self.bundle = bundle
        self.runtime = runtime
        self.exit_file = exit_dir / bundle.id
        self.log = str(bundle.path / "ctr.log")
        self.ctl = str(bundle.path / "ctl")
        self.conmon_pid = 0

    def start(self) -> None:
        p = self.bundle.path
        sock_dir = p / "sock"
        sock_dir.mkdir()
        r, w = os.pipe()
        argv = [CONMON, "--api-version", "1", "-c", self.bundle.id, "-u", self.bundle.id,
                "-n", self.bundle.id, "-r", str(self.runtime.binary),
                "--runtime-arg", f"--root={self.runtime.root}", "-b", str(p),
                "-p", str(p / "pid"), "--exit-dir", str(self.exit_file.parent),
                "--socket-dir-path", str(sock_dir), "--full-attach",
                "-l", f"k8s-file:{self.log}", "--log-level", "error",
                "--conmon-pidfile", str(p / "conmon.pid")]
        try:
            proc = subprocess.run(argv, env={**os.environ, "_OCI_SYNCPIPE": str(w)},
                                  pass_fds=(w,), stdin=subprocess.DEVNULL, timeout=30,
                                  capture_output=True)
        finally:
            os.close(w)
        with os.fdopen(r, "rb") as sync:
            created = sync.readline()
        self.conmon_pid = int((p / "conmon.pid").read_text())
        assert proc.returncode == 0 and b'"data"' in created, (proc.stderr, created)
        self.runtime.run("start", self.bundle.id)

    def running(self) -> bool:
        return not self.exit_file.exists()

    def cleanup(self) -> None:
        self.runtime.run("delete", "--force", self.bundle.id, check=False, timeout=30)
        if self.conmon_pid:
            try:
                os.kill(self.conmon_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def monitored(make_bundle, tmp_path):
    from helpers import Runtime, runtime_binary

    runc = runtime_binary("runc")
    if not runc.exists():
        pytest.skip("needs runc")
    runtime = Runtime(runc, tmp_path / "runc-state", name="runc")
    exit_dir = tmp_path / "exits"
    exit_dir.mkdir()
    started: list[Monitored] = []

    def factory(args: list[str], **overrides) -> Monitored:
        m = Monitored(make_bundle(args, **overrides), runtime, exit_dir)
        started.append(m)
        m.start()
        return m

    yield factory
    for m in started:
        m.cleanup()
    runtime.cleanup()


async def wait_until(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def file_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def test_output_lands_in_the_log_in_conmon_format(monitored):
    m = monitored(["sh", "-c", "echo out; echo err >&2; printf 'no newline'"])
    deadline = time.monotonic() + 20
    while m.running() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert m.exit_file.read_text() == "0"
    entries = list(read_entries(m.log))
    assert sorted((e.stream, e.data) for e in entries) == [
        ("stderr", b"err\n"), ("stdout", b"no newline"), ("stdout", b"out\n")]
    assert all(abs(e.timestamp - time.time()) < 600 for e in entries)


def test_rotation_and_reopen_keep_every_line_for_reader_and_follower(monitored, tmp_path):
    ctl_dir = tmp_path / "ctl"
    ctl_dir.mkdir()
    script = ("i=0; while [ ! -e /ctl/stop ]; do echo line$i; i=$((i+1)); usleep 5000; done; "
              "printf end")
    from helpers import default_spec

    mounts = default_spec()["mounts"] + [
        {"destination": "/ctl", "type": "bind", "source": str(ctl_dir), "options": ["rbind"]}]
    m = monitored(["sh", "-c", script], mounts=mounts)

    async def scenario() -> list[bytes]:
        followed: list[bytes] = []

        async def follower() -> None:
            async for entry in follow(m.log, is_running=m.running, poll=0.01):
                followed.append(entry.data)

        task = asyncio.ensure_future(follower())
        await wait_until(lambda: file_lines(m.log) >= 5, "the first lines")
        for n in (1, 2):
            assert rotate(m.log, max_size=1, max_file=3, ctl_fifo=m.ctl)
            await wait_until(lambda: file_lines(m.log) >= 5,
                             f"lines in the new ctr.log after rotation {n}")
        (ctl_dir / "stop").touch()
        await wait_until(lambda: not m.running(), "the container's exit")
        await asyncio.wait_for(task, 20)
        return followed

    followed = asyncio.run(scenario())
    assert rotated_paths(m.log) == [m.log + ".2", m.log + ".1", m.log]
    assert all(file_lines(p) >= 5 for p in rotated_paths(m.log))
    read = [e.data for e in read_entries(m.log)]
    count = len(read) - 1
    assert count >= 15
    assert read == [b"line%d\n" % i for i in range(count)] + [b"end"]
    assert b"".join(followed) == b"".join(read)
    assert [e.data for e in read_entries(m.log, tail=3)] == read[-3:]
