"""The demo's web container through the daemon (issue #4's ``make demo``): busybox httpd with
``--init --network host`` serving a bind-mounted host directory on 127.0.0.1, listed by ``ps``
with its own command (not the init in front of it), fetched from the host, stopped by the stop
signal through the init, removed without a trace."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from daemon_util import Daemon, daemon_fixture

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/conmon"), reason="needs conmon")

daemon = daemon_fixture()


@pytest.fixture(scope="module", autouse=True)
def _daemon_cgroup_parents():
    """Runtimes leave the daemon's /dockyard cgroup parent behind; removed where empty."""
    yield
    for parent in Path("/sys/fs/cgroup").glob("*/dockyard"):
        try:
            parent.rmdir()
        except OSError:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_web_container(daemon: Daemon, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<h1>hello</h1>\n")
    port = free_port()
    cid = daemon.cli("run", "-d", "--name", "web", "--init", "--network", "host",
                     "-v", f"{www}:/www:ro", "busybox", "httpd", "-f", "-p",
                     f"127.0.0.1:{port}", "-h", "/www").stdout.strip()
    try:
        info = daemon.json("GET", f"/containers/{cid}/json")
        assert (info["Path"], info["Args"][:2]) == ("httpd", ["-f", "-p"]), info["Path"]
        ps = daemon.cli("ps", "--no-trunc", "--format", "{{.Names}} {{.Command}} {{.Status}}")
        assert f'web "httpd -f -p 127.0.0.1:{port} -h /www" Up' in ps.stdout, ps.stdout
        assert fetch(f"http://127.0.0.1:{port}/") == "<h1>hello</h1>\n"
        daemon.cli("stop", "web")
        st = daemon.json("GET", f"/containers/{cid}/json")["State"]
        assert st["Status"] == "exited" and st["ExitCode"] == 143, st  # SIGTERM via the init
    finally:
        daemon.cli("rm", "-f", "web")
    assert daemon.cli("ps", "-aq").stdout.strip() == ""
    with open("/proc/self/mountinfo") as f:
        assert cid not in f.read()
