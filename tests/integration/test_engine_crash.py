"""Issue #4, acceptance 2: containers outlive a SIGKILLed daemon.

Five counting containers keep running while the daemon is dead; restarted on the same root and
socket, the daemon lists them with the same ids, their logs kept flowing (conmon wrote them while
nobody watched) and ``docker stop`` reaches them. A container that exited while the daemon was
down shows the exit code and time conmon recorded; one with ``--restart always`` that was killed
meanwhile is running again. A daemon killed in the middle of ``docker run`` leaves either a whole
container or none, and no rootfs mount or monitor for a container that is not running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from containers_util import conmon_pids, poll
from daemon_util import CLI, Daemon, daemon_fixture

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/conmon"), reason="needs conmon")

daemon = daemon_fixture()


@pytest.fixture(scope="module", autouse=True)
def _daemon_cgroup_parents():
    """The daemon puts containers under /dockyard/<id>; runtimes leave that parent behind.
    Removed (where empty) once this module's containers are gone."""
    yield
    for parent in Path("/sys/fs/cgroup").glob("*/dockyard"):
        try:
            parent.rmdir()
        except OSError:
            pass  # another daemon's container is in it, or it is already gone

CLI_DIR = os.path.dirname(CLI[0])

# sh as PID 1 ignores SIGTERM unless it traps it: with the trap, a stop that reaches the adopted
# container ends it with 0 (a stop that had to fall back to SIGKILL would show 137)
COUNTER = "trap 'exit 0' TERM; i=0; while :; do echo $i; i=$((i+1)); sleep 0.2; done"


def state(d: Daemon, cid: str) -> dict:
    return d.json("GET", f"/containers/{cid}/json")["State"]


def parse_time(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds → epoch seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    base = datetime.fromisoformat(head + "+00:00").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def log_numbers(d: Daemon, cid: str) -> list[int]:
    out = d.docker("logs", cid).stdout.split()
    return [int(x) for x in out]


def mounts_of(cid: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln for ln in f if cid in ln]


def run_d(d: Daemon, *args: str) -> str:
    return d.docker("run", "-d", *args).stdout.strip()


@pytest.fixture
def cleanup(daemon: Daemon):
    """Force-removes every container the test made, on a running daemon."""
    yield
    if daemon.proc is None or daemon.proc.poll() is not None:
        daemon.restart()
    ids = daemon.docker("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        daemon.docker("rm", "-f", *ids)


def test_containers_outlive_a_killed_daemon(daemon: Daemon, cleanup, tmp_path: Path) -> None:
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    counters = [run_d(daemon, "--name", f"count{i}", "busybox", "sh", "-c", COUNTER)
                for i in range(5)]
    # exits with 7 once the test creates /ctl/go: the test decides when, i.e. while the daemon is dead
    quitter = run_d(daemon, "--name", "quitter", "-v", f"{ctl}:/ctl", "busybox", "sh", "-c",
                    "while [ ! -e /ctl/go ]; do sleep 0.05; done; exit 7")
    always = run_d(daemon, "--name", "always", "--restart", "always", "busybox", "sleep", "1000")
    for cid in counters:
        poll(f"{cid} to log", lambda: len(log_numbers(daemon, cid)) >= 2)
    always_pid = state(daemon, always)["Pid"]
    # the container that will be killed from the host while the daemon is down
    victim = counters[4]
    victim_pid = state(daemon, victim)["Pid"]
    assert victim_pid > 0 and always_pid > 0

    before = {cid: log_numbers(daemon, cid) for cid in counters}
    daemon.kill9()
    killed_at = time.time()
    (ctl / "go").touch()
    os.kill(victim_pid, signal.SIGKILL)
    os.kill(always_pid, signal.SIGKILL)
    # their monitors record the exits with nobody listening
    for cid in (quitter, victim, always):
        poll(f"the monitor of {cid} to exit", lambda: not conmon_pids(cid))
    time.sleep(0.5)  # the survivors log on meanwhile
    restarted_at = time.time()
    daemon.restart()

    # the four survivors: same ids, running, listed as Up
    ps = daemon.docker("ps", "--no-trunc", "--format", "{{.ID}} {{.Status}}").stdout.splitlines()
    listed = {line.split()[0]: line.split(" ", 1)[1] for line in ps}
    for cid in counters[:4]:
        assert listed.get(cid, "").startswith("Up"), (cid, ps)
        st = state(daemon, cid)
        assert st["Status"] == "running" and st["Running"], st
    assert victim not in listed and quitter not in listed

    # the quitter exited while the daemon was dead: its code and time as conmon recorded them
    st = state(daemon, quitter)
    assert st["Status"] == "exited" and st["ExitCode"] == 7, st
    finished = parse_time(st["FinishedAt"])
    assert killed_at - 1 <= finished <= restarted_at, (killed_at, st["FinishedAt"], restarted_at)
    assert not mounts_of(quitter), "an exited container's rootfs is still mounted"
    st = state(daemon, victim)
    assert st["Status"] == "exited" and st["ExitCode"] == 137, st
    assert not mounts_of(victim)

    # --restart always: started again by the daemon that came back
    st = poll("the restart-always container to run again",
                  lambda: (s := state(daemon, always))["Running"] and s)
    assert st["Pid"] != always_pid

    # the logs kept flowing through the crash, without a gap, and keep flowing now
    for cid in counters[:4]:
        old = before[cid]
        last = daemon.docker("logs", "--tail", "1", cid).stdout
        poll(f"{cid}'s log to grow",
                 lambda: daemon.docker("logs", "--tail", "1", cid).stdout != last)
        now = log_numbers(daemon, cid)
        assert len(now) > len(old)
        assert now == list(range(len(now))), f"{cid}: lines missing or repeated"

    # stop reaches the adopted containers (exit 0 through their TERM trap)
    daemon.docker("stop", *counters[:4])
    for cid in counters[:4]:
        st = state(daemon, cid)
        assert st["Status"] == "exited" and st["ExitCode"] == 0, st
        assert not conmon_pids(cid) and not mounts_of(cid)


def test_a_second_crash_after_adoption(daemon: Daemon, cleanup) -> None:
    """An adopted container is watched again: its exit after the restart is seen at once, and a
    second crash + restart adopts it again."""
    cid = run_d(daemon, "busybox", "sh", "-c", COUNTER)
    daemon.kill9()
    daemon.restart()
    daemon.kill9()
    daemon.restart()
    st = state(daemon, cid)
    assert st["Running"], st
    # a follower of the adopted container's log gets its new lines
    cfg = daemon.tmp / "docker-config"
    cfg.mkdir(exist_ok=True)
    follow = subprocess.Popen(["docker", "-H", daemon.host, "logs", "-f", "--tail", "0", cid],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "DOCKER_CONFIG": str(cfg)})
    watchdog = threading.Timer(20, follow.kill)  # no line in 20 s: readline ends, the test fails
    watchdog.start()
    try:
        first = int(follow.stdout.readline())
        assert int(follow.stdout.readline()) == first + 1
    finally:
        watchdog.cancel()
        follow.kill()
        follow.wait()
    os.kill(st["Pid"], signal.SIGKILL)
    assert daemon.docker("wait", cid).stdout.strip() == "137"
    st = state(daemon, cid)
    assert st["Status"] == "exited" and st["ExitCode"] == 137, st
    assert not conmon_pids(cid) and not mounts_of(cid)


def _containers_dir(d: Daemon) -> Path:
    return d.root / "containers"


def test_kill_during_create_then_start(daemon: Daemon, cleanup) -> None:
    """The daemon dies after a create and before its start: after the restart the container is
    there, ``created``, with no monitor and no mount, and it starts and stops normally."""
    created = daemon.json("POST", "/containers/create?name=halfway",
                          {"Image": "busybox", "Cmd": ["sh", "-c", COUNTER]})
    cid = created["Id"]
    daemon.kill9()
    daemon.restart()
    st = state(daemon, cid)
    assert st["Status"] == "created", st
    assert not conmon_pids(cid)
    assert not mounts_of(cid), "a container that is not running keeps its rootfs mounted"
    daemon.docker("start", cid)
    assert state(daemon, cid)["Running"]
    daemon.docker("stop", cid)
    assert state(daemon, cid)["ExitCode"] == 0


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.08, 0.12, 0.2])
def test_kill_during_docker_run(daemon: Daemon, cleanup, delay: float) -> None:
    """``docker run -d`` in flight when the daemon dies, at several points of create → start:
    afterwards each container is whole (running and adopted, or created/exited with no monitor and
    no mount) or absent with nothing of it left."""
    cfg = daemon.tmp / "docker-config"
    cfg.mkdir(exist_ok=True)
    name = f"inflight{int(delay * 1000)}"
    run = subprocess.Popen(["docker", "-H", daemon.host, "run", "-d", "--name", name, "busybox",
                            "sh", "-c", COUNTER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env={**os.environ, "DOCKER_CONFIG": str(cfg)})
    time.sleep(delay)
    daemon.kill9()
    run.communicate(timeout=60)
    daemon.restart()

    listed = daemon.docker("ps", "-a", "--no-trunc", "--filter", f"name={name}",
                           "--format", "{{.ID}}").stdout.split()
    on_disk = {p.name for p in _containers_dir(daemon).iterdir()} \
        if _containers_dir(daemon).exists() else set()
    if not listed:
        # absent: nothing of it on disk, mounted or monitored
        strays = [c for c in on_disk if conmon_pids(c) or mounts_of(c)]
        assert not strays, f"pieces of a container that does not exist: {strays}"
        return
    (cid,) = listed
    st = state(daemon, cid)
    if st["Running"]:
        assert conmon_pids(cid), st
        daemon.docker("stop", cid)
    else:
        assert st["Status"] in ("created", "exited"), st
        assert not conmon_pids(cid), f"a {st['Status']} container still has a monitor"
        assert not mounts_of(cid), f"a {st['Status']} container still has its rootfs mounted"
    # whichever it is, it is usable: start it, stop it, remove it
    daemon.docker("start", cid)
    assert state(daemon, cid)["Running"]
    daemon.docker("rm", "-f", cid)
    assert not conmon_pids(cid) and not mounts_of(cid)
    assert cid not in {p.name for p in _containers_dir(daemon).iterdir()}


def test_kill_during_start_leaves_no_running_orphan(tmp_path: Path) -> None:
    """The daemon dies inside a start: the runtime created the container under its monitor but
    the daemon never recorded it as running. A runtime wrapper holds ``start`` until the daemon is
    dead, then lets it go, so the container really runs with nobody knowing. The daemon that comes
    back ends it: the container is created/exited with no monitor, process or mount, and starts
    normally."""
    from daemon_util import running_daemon

    runtime = Path(CLI_DIR) / "dockyard-runtime"
    if not runtime.exists():
        pytest.skip("needs the venv's dockyard-runtime")
    wrapper = tmp_path / "held-runtime"
    wrapper.write_text(f"""#!/bin/sh
for a in "$@"; do
  if [ "$a" = start ]; then
    touch {tmp_path}/start-called
    while [ ! -e {tmp_path}/go ]; do sleep 0.02; done
  fi
done
exec {runtime} "$@"
""")
    wrapper.chmod(0o755)
    with running_daemon(tmp_path / "d", busybox=True,
                        extra_args=("--add-runtime", f"held={wrapper}", "--runtime", "held")) as d:
        cid = d.json("POST", "/containers/create?name=held",
                     {"Image": "busybox", "Cmd": ["sh", "-c", COUNTER]})["Id"]
        start = subprocess.Popen(["docker", "-H", d.host, "start", cid], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 env={**os.environ, "DOCKER_CONFIG": str(tmp_path)})
        poll("the runtime's start", (tmp_path / "start-called").exists)
        monitors = conmon_pids(cid)
        assert monitors, "no monitor for a container being started"
        d.kill9()
        start.communicate(timeout=30)
        (tmp_path / "go").touch()
        # the container now runs under its monitor, unknown to any daemon
        poll("the container to run", lambda: os.path.exists(
            tmp_path / "d" / "root" / "containers" / cid / "ctr.log") and
            (tmp_path / "d" / "root" / "containers" / cid / "ctr.log").stat().st_size > 0)
        d.restart()
        st = state(d, cid)
        assert st["Status"] in ("created", "exited") and not st["Running"], st
        poll("the orphaned monitor to end", lambda: not conmon_pids(cid), timeout=10)
        assert not mounts_of(cid)
        d.docker("start", cid)
        assert state(d, cid)["Running"]
        d.docker("rm", "-f", cid)
        assert not conmon_pids(cid) and not mounts_of(cid)


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.08])
def test_kill_during_rm(daemon: Daemon, cleanup, delay: float) -> None:
    """The daemon dies while ``docker rm`` removes stopped containers: afterwards each one is
    either gone without a trace or still listed (exited), and a second ``rm`` removes it."""
    ids = [daemon.json("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})["Id"]
           for _ in range(4)]
    for cid in ids:
        daemon.docker("start", cid)
    for cid in ids:
        daemon.docker("wait", cid)
    cfg = daemon.tmp / "docker-config"
    cfg.mkdir(exist_ok=True)
    rm = subprocess.Popen(["docker", "-H", daemon.host, "rm", *ids], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env={**os.environ, "DOCKER_CONFIG": str(cfg)})
    time.sleep(delay)
    daemon.kill9()
    rm.communicate(timeout=60)
    daemon.restart()
    left = set(daemon.docker("ps", "-aq", "--no-trunc").stdout.split())
    for cid in ids:
        if cid in left:
            assert state(daemon, cid)["Status"] == "exited"
        else:
            assert not (_containers_dir(daemon) / cid).exists(), f"{cid}: removed, its dir stays"
        assert not mounts_of(cid) and not conmon_pids(cid)
    if left:
        daemon.docker("rm", *left)
    assert daemon.docker("ps", "-aq").stdout.strip() == ""
    assert not _containers_dir(daemon).exists() or not list(_containers_dir(daemon).iterdir())


def test_paused_container_survives_a_crash(daemon: Daemon, cleanup) -> None:
    """A paused container stays paused across a daemon crash and unpauses afterwards."""
    cid = run_d(daemon, "busybox", "sh", "-c", COUNTER)
    daemon.docker("pause", cid)
    daemon.kill9()
    daemon.restart()
    st = state(daemon, cid)
    assert st["Status"] == "paused" and st["Paused"], st
    before = log_numbers(daemon, cid)
    daemon.docker("unpause", cid)
    poll("the unpaused container to log", lambda: len(log_numbers(daemon, cid)) > len(before))
    daemon.docker("stop", cid)
    assert state(daemon, cid)["ExitCode"] == 0


def test_auto_remove_container_that_exited_while_down(daemon: Daemon, cleanup,
                                                      tmp_path: Path) -> None:
    """As dockerd's restore: a ``--rm`` container that is not running when the daemon comes back
    is removed; one that still runs is adopted and removed when it exits."""
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    wait_file = "while [ ! -e /ctl/{0} ]; do sleep 0.05; done"
    gone = run_d(daemon, "--rm", "-v", f"{ctl}:/ctl", "busybox", "sh", "-c",
                 wait_file.format("first"))
    later = run_d(daemon, "--rm", "-v", f"{ctl}:/ctl", "busybox", "sh", "-c",
                  wait_file.format("second"))
    daemon.kill9()
    (ctl / "first").touch()
    poll("the first container's monitor to exit", lambda: not conmon_pids(gone))
    daemon.restart()
    poll("the exited --rm container to be removed",
             lambda: gone not in daemon.docker("ps", "-aq", "--no-trunc").stdout)
    assert not (_containers_dir(daemon) / gone).exists() and not mounts_of(gone)
    assert state(daemon, later)["Running"]
    (ctl / "second").touch()
    poll("the adopted --rm container to be removed after its exit",
             lambda: later not in daemon.docker("ps", "-aq", "--no-trunc").stdout)
    assert not (_containers_dir(daemon) / later).exists() and not mounts_of(later)


def test_containers_outlive_a_clean_daemon_stop(daemon: Daemon, cleanup) -> None:
    """SIGTERM stops the daemon, not its containers (live restore): they run on and are adopted
    by the next daemon."""
    cid = run_d(daemon, "busybox", "sh", "-c", COUNTER)
    pid = state(daemon, cid)["Pid"]
    daemon.stop()
    assert conmon_pids(cid), "the container's monitor went with the daemon"
    os.kill(pid, 0)  # still there
    daemon.start()
    st = state(daemon, cid)
    assert st["Running"] and st["Pid"] == pid, st
    daemon.docker("stop", cid)
    assert state(daemon, cid)["ExitCode"] == 0


def test_stopped_unless_stopped_container_stays_stopped_after_a_crash(
        daemon: Daemon, cleanup, tmp_path: Path) -> None:
    """``docker stop`` on a ``--restart unless-stopped`` container, and the daemon dies before
    the exit is handled: the stop was the user's, so the next daemon does not start it again
    (dockerd records the manual stop before it signals). (``always`` would start it: Docker
    restarts a stopped ``always`` container when the daemon starts.)"""
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    cid = run_d(daemon, "--restart", "unless-stopped", "-v", f"{ctl}:/ctl", "busybox", "sh", "-c",
                "trap 'touch /ctl/term; sleep 1; exit 0' TERM; while :; do sleep 0.05; done")
    cfg = daemon.tmp / "docker-config"
    cfg.mkdir(exist_ok=True)
    stop = subprocess.Popen(["docker", "-H", daemon.host, "stop", cid], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, "DOCKER_CONFIG": str(cfg)})
    poll("the stop signal to arrive", (ctl / "term").exists)
    daemon.kill9()
    stop.communicate(timeout=30)
    poll("the container's exit", lambda: not conmon_pids(cid))
    daemon.restart()
    st = state(daemon, cid)
    assert st["Status"] == "exited" and st["ExitCode"] == 0, st
