"""Running containers operated with the real docker CLI against a real ``dockyard daemon``: top,
stats, pause/unpause, rename, update, prune, events, restart policies and health checks."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

from containers_util import ENGINE_MARKS, cleaned_daemon, poll, state
from daemon_util import Daemon, daemon_fixture

pytestmark = ENGINE_MARKS

daemon = daemon_fixture()
d = cleaned_daemon()


# ------------------------------------------------------------------ top, stats, pause, rename, update


def test_top_and_stats(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "ts", "-m", "64m", "busybox", "sleep", "300")

    def top_rows() -> list[str] | None:
        rows = d.docker("top", "ts").stdout.splitlines()
        return rows if rows[-1].endswith("sleep 300") else None

    # (the runtime's init may still be on its way to exec sleep just after the start)
    top = poll("top shows sleep", top_rows)
    assert isinstance(top, list)
    assert top[0].split()[:2] == ["UID", "PID"] and "CMD" in top[0]
    assert len(top) == 2 and top[1].split()[-2:] == ["sleep", "300"]
    pid = int(state(d, "ts", "{{.State.Pid}}"))
    assert top[1].split()[1] == str(pid)
    p = d.docker("top", "ts", "-o", "pid,comm")
    assert p.stdout.split() == ["PID", "COMMAND", str(pid), "sleep"]
    stats = d.docker("stats", "--no-stream", "ts").stdout.splitlines()
    header = stats[0]
    for col in ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                "BLOCK I/O", "PIDS"):
        assert col in header
    row = stats[1]
    assert row.startswith(state(d, "ts", "{{.Id}}")[:12]) and " ts " in row
    assert "/ 64MiB" in row
    one = json.loads(d.docker("stats", "--no-stream", "--format", "{{json .}}", "ts").stdout)
    assert one["Name"] == "ts" and one["PIDs"] == "1" and one["CPUPerc"].endswith("%")
    raw = d.json("GET", "/containers/ts/stats?stream=false")
    assert raw["memory_stats"]["limit"] == 64 << 20 and raw["pids_stats"]["current"] == 1
    assert raw["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    d.docker("stop", "-t", "0", "ts")
    p = d.docker("top", "ts", check=False)
    assert p.returncode == 1 and "is not running" in p.stderr
    d.docker("rm", "ts")


def test_pause_unpause_rename_update(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "pz", "busybox", "sleep", "300")
    d.docker("pause", "pz")
    assert state(d, "pz", "{{.State.Status}} {{.State.Paused}}") == "paused true"
    assert d.docker("ps", "--format", "{{.Status}}", "--filter", "name=pz").stdout \
        .strip().endswith("(Paused)")
    assert d.docker("ps", "-q", "--filter", "status=paused").stdout.split() == \
        [state(d, "pz", "{{.Id}}")[:12]]
    p = d.docker("pause", "pz", check=False)
    assert p.returncode == 1 and "already paused" in p.stderr
    d.docker("unpause", "pz")
    assert state(d, "pz") == "running"
    p = d.docker("unpause", "pz", check=False)
    assert p.returncode == 1 and "is not paused" in p.stderr

    d.docker("rename", "pz", "pz2")
    assert state(d, "pz2", "{{.Name}}") == "/pz2"
    assert d.docker("inspect", "pz", check=False).returncode == 1
    d.docker("create", "--name", "other", "busybox", "true")
    p = d.docker("rename", "pz2", "other", check=False)
    assert p.returncode == 1 and "already in use" in p.stderr

    d.docker("update", "-m", "48m", "--memory-swap", "96m", "pz2")
    assert state(d, "pz2", "{{.HostConfig.Memory}}") == str(48 << 20)
    limit = d.docker("exec", "pz2", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert limit.strip() == str(48 << 20)
    d.docker("restart", "-t", "0", "pz2")  # the update outlives a restart
    limit = d.docker("exec", "pz2", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert limit.strip() == str(48 << 20)
    d.docker("update", "--restart", "on-failure:3", "pz2")
    assert state(d, "pz2", "{{.HostConfig.RestartPolicy.Name}}:"
                 "{{.HostConfig.RestartPolicy.MaximumRetryCount}}") == "on-failure:3"
    d.docker("rm", "-f", "pz2", "other")


def test_container_prune_removes_only_stopped(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "keep", "busybox", "sleep", "300")
    done = d.docker("run", "-d", "--name", "done1", "busybox", "true").stdout.strip()
    d.docker("wait", "done1")
    made = d.docker("create", "--name", "made", "busybox", "true").stdout.strip()
    out = d.docker("container", "prune", "-f").stdout
    assert done in out and made in out and "Total reclaimed space" in out
    assert d.docker("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["keep"]
    d.docker("rm", "-f", "keep")


# ------------------------------------------------------------------ events


def test_events_show_the_lifecycle(d: Daemon) -> None:
    since = f"{time.time():.9f}"
    cid = d.docker("run", "--name", "ev", "busybox", "true").stdout
    cid = state(d, "ev", "{{.Id}}")
    d.docker("rm", "ev")
    out = d.docker("events", "--since", since, "--until", f"{time.time():.9f}",
                   "--filter", "type=container", "--format", "{{json .}}").stdout
    got = [json.loads(line) for line in out.splitlines()]
    actions = [e["Action"] for e in got if e["Actor"]["ID"] == cid]
    for a in ("create", "attach", "start", "die", "destroy"):
        assert a in actions
    assert actions.index("create") < actions.index("start") < actions.index("die") < \
        actions.index("destroy")
    die = next(e for e in got if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "0"
    assert die["Actor"]["Attributes"]["name"] == "ev"
    assert die["Actor"]["Attributes"]["image"] == "busybox"
    human = d.docker("events", "--since", since, "--until", f"{time.time():.9f}",
                     "--filter", "event=destroy").stdout
    assert f"container destroy {cid} (image=busybox, name=ev)" in human


# ------------------------------------------------------------------ restart policies, health


def test_restart_on_failure_stops_after_the_retries(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "rof", "--restart", "on-failure:2", "busybox", "sh", "-c",
             "exit 1")
    poll("two restarts and exited",
         lambda: state(d, "rof", "{{.RestartCount}} {{.State.Status}}") == "2 exited", 30)
    assert state(d, "rof", "{{.State.ExitCode}}") == "1"
    time.sleep(1.5)  # no third restart comes
    assert state(d, "rof", "{{.RestartCount}} {{.State.Status}}") == "2 exited"
    d.docker("rm", "rof")


def test_restart_always_restarts_until_stopped(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "ra", "--restart", "always", "busybox", "sh", "-c",
             "sleep 0.2; exit 0")
    poll("a restart", lambda: int(state(d, "ra", "{{.RestartCount}}")) >= 1, 30)
    d.docker("stop", "-t", "1", "ra")
    assert state(d, "ra") == "exited"
    count = state(d, "ra", "{{.RestartCount}}")
    time.sleep(1)
    assert state(d, "ra", "{{.State.Status}} {{.RestartCount}}") == f"exited {count}"
    d.docker("rm", "ra")


def test_health_checks(d: Daemon) -> None:
    since = f"{time.time():.9f}"
    d.docker("run", "-d", "--name", "hok", "--health-cmd", "true", "--health-interval", "1s",
             "busybox", "sleep", "300")
    d.docker("run", "-d", "--name", "hbad", "--health-cmd", "false", "--health-retries", "1",
             "--health-interval", "1s", "busybox", "sleep", "300")
    poll("hok healthy", lambda: state(d, "hok", "{{.State.Health.Status}}") == "healthy")
    poll("hbad unhealthy", lambda: state(d, "hbad", "{{.State.Health.Status}}") == "unhealthy")
    status = d.docker("ps", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
    assert any(line.startswith("hok Up ") and line.endswith("(healthy)") for line in status)
    assert any(line.startswith("hbad Up ") and line.endswith("(unhealthy)") for line in status)
    assert d.docker("ps", "-q", "--filter", "health=healthy").stdout.split() == \
        [state(d, "hok", "{{.Id}}")[:12]]
    log = json.loads(state(d, "hbad", "{{json .State.Health}}"))
    assert log["FailingStreak"] >= 1 and log["Log"][-1]["ExitCode"] == 1
    out = d.docker("events", "--since", since, "--until", f"{time.time():.9f}",
                   "--filter", "event=health_status", "--format", "{{.Action}} {{.Actor.Attributes.name}}"
                   ).stdout.splitlines()
    assert "health_status: healthy hok" in out
    assert "health_status: unhealthy hbad" in out
    d.docker("rm", "-f", "hok", "hbad")


# ------------------------------------------------------------------ more health, restart


def test_hung_health_check_fails_at_its_timeout(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "hung", "--health-cmd", "sleep 30", "--health-timeout", "1s",
             "--health-interval", "1s", "--health-retries", "1", "busybox", "sleep", "300")
    poll("hung unhealthy", lambda: state(d, "hung", "{{.State.Health.Status}}") == "unhealthy",
         30)
    log = json.loads(state(d, "hung", "{{json .State.Health.Log}}"))
    assert log[-1]["ExitCode"] != 0
    d.docker("run", "-d", "--name", "nohc", "--no-healthcheck", "busybox", "sleep", "300")
    assert state(d, "nohc", "{{json .State.Health}}") == "null"
    d.docker("rm", "-f", "hung", "nohc")


def test_unless_stopped_restarts_and_a_stop_ends_it(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "us", "--restart", "unless-stopped", "busybox", "sh", "-c",
             "sleep 0.2; exit 3")
    poll("a restart", lambda: int(state(d, "us", "{{.RestartCount}}")) >= 1, 30)
    d.docker("stop", "-t", "0", "us")
    assert state(d, "us") == "exited"
    d.docker("rm", "us")


def test_stats_stream_and_ps_size(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "sst", "busybox", "sh", "-c",
             "echo data > /made; while true; do sleep 0.1; done")
    proc = subprocess.Popen(["docker", "-H", d.host, "stats", "--format",
                             "{{.Name}} {{.PIDs}}", "sst"],
                            env={**os.environ, "DOCKER_CONFIG": str(d.tmp)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 20
        while seen.count(b"sst ") < 2 and time.monotonic() < deadline:  # a stream: updates
            if select.select([proc.stdout], [], [], 1)[0]:
                seen += os.read(proc.stdout.fileno(), 4096)
        assert seen.count(b"sst ") >= 2, seen
    finally:
        proc.kill()
        proc.wait()
    # the raw stream: one JSON object a line, precpu_stats of the one before
    code, _, body = d.request("GET", "/containers/sst/stats?stream=false&one-shot=true")
    assert code == 200 and json.loads(body)["name"] == "/sst"
    poll("/made written", lambda: d.docker("exec", "sst", "cat", "/made").stdout == "data\n")
    row = d.docker("ps", "-s", "--format", "{{.Names}} {{.Size}}", "--filter", "name=sst"
                   ).stdout.strip()
    assert row.startswith("sst ") and "(virtual " in row, row
    listed = d.json("GET", "/containers/json?size=1")
    assert listed[0]["SizeRw"] > 0 and listed[0]["SizeRootFs"] >= listed[0]["SizeRw"]
    top = d.docker("top", "sst", "aux").stdout.splitlines()
    assert top[0].split()[:2] == ["USER", "PID"]
    assert any("sh -c echo data" in line for line in top[1:]), top  # ps orders by pid
    d.docker("rm", "-f", "sst")
