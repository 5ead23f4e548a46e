"""Containers end to end with the real docker CLI (28) against a real ``dockyard daemon``: run
(attached, detached, exit codes, errors, flags reaching the process), create/start, stop/kill/
restart/rm, ps filters and formats, inspect, wait; raw HTTP where the CLI hides the shape
(hijacked attach framing, wait conditions, error statuses). See also test_api_containers_io.py
(logs, attach, stdin, -it) and test_api_containers_ops.py (top, stats, pause, rename, update,
prune, events, restart policies, health checks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from containers_util import ENGINE_MARKS, cleaned_daemon, poll, state
from daemon_util import Daemon, daemon_fixture

pytestmark = ENGINE_MARKS

daemon = daemon_fixture()
d = cleaned_daemon()


# ------------------------------------------------------------------ run: output and exit codes


def test_run_attached_prints_output_and_passes_exit_codes(d: Daemon) -> None:
    p = d.docker("run", "--rm", "busybox", "echo", "hello")
    assert p.stdout == "hello\n"
    assert d.docker("run", "--rm", "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    # pid 1 of a pid namespace ignores its own SIGKILL (as under Docker); from outside it dies
    assert d.docker("run", "--rm", "busybox", "sh", "-c", "kill -9 $$").returncode == 0
    run = subprocess.Popen(["docker", "-H", d.host, "run", "--rm", "--name", "k9", "busybox",
                            "sleep", "60"], env={**os.environ, "DOCKER_CONFIG": str(d.tmp)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        poll("k9 running", lambda: d.docker("ps", "-q", "--filter", "name=k9").stdout)
        d.docker("kill", "k9")
        assert run.wait(20) == 137
    finally:
        run.kill()
        run.wait()
    p = d.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert p.stdout == "out\n" and p.stderr == "err\n"
    assert d.docker("ps", "-aq").stdout == ""


def test_run_errors_exit_125_126_127(d: Daemon) -> None:
    p = d.docker("run", "--rm", "nosuchimage:1", "true", check=False)
    assert p.returncode == 125
    assert "nosuchimage" in p.stderr
    p = d.docker("run", "--rm", "busybox", "nosuch", check=False)
    assert p.returncode == 127, p.stderr
    p = d.docker("run", "--rm", "busybox", "/etc", check=False)
    assert p.returncode == 126, p.stderr
    p = d.docker("run", "--name", "bad/name", "busybox", "true", check=False)
    assert p.returncode == 125 and "Invalid container name" in p.stderr
    p = d.docker("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert p.returncode == 125 and "conflicting options" in p.stderr, p.stderr
    assert d.docker("ps", "-aq").stdout == ""


def test_run_detached_prints_the_id_and_duplicate_name_is_409(d: Daemon) -> None:
    cid = d.docker("run", "-d", "--name", "dup", "busybox", "sleep", "60").stdout.strip()
    assert len(cid) == 64 and all(ch in "0123456789abcdef" for ch in cid)
    assert state(d, "dup") == "running"
    assert state(d, cid[:12], "{{.Name}}") == "/dup"
    p = d.docker("run", "-d", "--name", "dup", "busybox", "true", check=False)
    assert p.returncode == 125
    assert 'Conflict. The container name "/dup" is already in use' in p.stderr
    code, _, raw = d.request("POST", "/containers/create?name=dup",
                             json.dumps({"Image": "busybox"}).encode(),
                             {"Content-Type": "application/json"})
    assert code == 409 and "already in use" in json.loads(raw)["message"]
    d.docker("rm", "-f", "dup")
    assert d.docker("ps", "-aq").stdout == ""


def test_run_flags_reach_the_process(d: Daemon, tmp_path: Path) -> None:
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    script = ("echo env=$FOO; echo pwd=$(pwd); id -u; id -g; hostname; cat /data/in.txt; "
              "mount | grep ' /run ' | cut -d' ' -f5")
    p = d.docker("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000:1001", "-h", "box1",
                 "-v", f"{host}:/data", "--tmpfs", "/run", "busybox", "sh", "-c", script)
    assert p.stdout.splitlines() == ["env=bar", "pwd=/tmp", "1000", "1001", "box1", "from host",
                                     "tmpfs"]
    d.docker("run", "--rm", "-v", f"{host}:/data", "busybox", "sh", "-c",
             "echo made > /data/out.txt")
    assert (host / "out.txt").read_text() == "made\n"
    missing = tmp_path / "created" / "by-run"
    d.docker("run", "--rm", "-v", f"{missing}:/m", "busybox", "true")
    assert missing.is_dir()  # Docker creates a missing bind source


def test_run_entrypoint_labels_and_read_only(d: Daemon) -> None:
    p = d.docker("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b")
    assert p.stdout == "a b\n"
    d.docker("create", "--name", "lab", "-l", "tier=web", "-l", "x=1", "busybox", "true")
    assert json.loads(state(d, "lab", "{{json .Config.Labels}}")) == {"tier": "web", "x": "1"}
    d.docker("rm", "lab")
    p = d.docker("run", "--rm", "--read-only", "busybox", "sh", "-c",
                 "touch /x 2>&1; echo rc=$?", check=False)
    assert "Read-only file system" in p.stdout and "rc=1" in p.stdout


def test_run_resource_limits_are_seen_inside(d: Daemon) -> None:
    p = d.docker("run", "--rm", "-m", "64m", "--pids-limit", "50", "--ulimit", "nofile=100:100",
                 "busybox", "sh", "-c",
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                 "cat /sys/fs/cgroup/pids/pids.max; ulimit -n")
    assert p.stdout.split() == [str(64 << 20), "50", "100"]
    assert d.docker("run", "--rm", "-m", "64m", "busybox", "true").returncode == 0
    d.docker("create", "--name", "mem", "-m", "64m", "busybox", "true")
    assert state(d, "mem", "{{.HostConfig.Memory}}") == str(64 << 20)
    d.docker("rm", "mem")


def test_run_capabilities_privileged_and_stop_signal(d: Daemon) -> None:
    def cap_eff(*flags: str) -> int:
        out = d.docker("run", "--rm", *flags, "busybox", "grep", "CapEff", "/proc/self/status"
                       ).stdout
        return int(out.split()[1], 16)

    default = cap_eff()
    assert default & (1 << 0)  # CAP_CHOWN by default
    assert not cap_eff("--cap-drop", "CHOWN") & (1 << 0)
    assert not default & (1 << 21)  # no CAP_SYS_ADMIN by default
    assert cap_eff("--privileged") & (1 << 21)
    d.docker("create", "--name", "sig", "--stop-signal", "SIGUSR1", "busybox", "true")
    assert state(d, "sig", "{{.Config.StopSignal}}") == "SIGUSR1"
    d.docker("rm", "sig")


# ------------------------------------------------------------------ create, start, stop, kill, rm


def test_create_then_start_and_start_attached(d: Daemon) -> None:
    cid = d.docker("create", "--name", "cs", "busybox", "sh", "-c", "echo hi; exit 4"
                   ).stdout.strip()
    assert len(cid) == 64
    assert state(d, "cs") == "created"
    assert d.docker("ps", "-aq", "--filter", "status=created").stdout.split() == [cid[:12]]
    p = d.docker("start", "-a", "cs", check=False)
    assert (p.returncode, p.stdout) == (4, "hi\n")
    assert state(d, "cs", "{{.State.Status}} {{.State.ExitCode}}") == "exited 4"
    assert d.docker("start", "cs").stdout.strip() == "cs"
    assert d.docker("wait", "cs").stdout.strip() == "4"
    d.docker("rm", "cs")


def test_stop_restart_kill_and_rm(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "st", "busybox", "sleep", "300")
    started = state(d, "st", "{{.State.StartedAt}}")
    d.docker("restart", "-t", "1", "st")
    assert state(d, "st") == "running"
    assert state(d, "st", "{{.State.StartedAt}}") != started
    d.docker("stop", "-t", "1", "st")  # sleep as pid 1 ignores SIGTERM: killed after 1 s
    assert state(d, "st", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    # a stop of a stopped container is fine (304 on the API)
    code, _, _ = d.request("POST", "/containers/st/stop")
    assert code == 304
    d.docker("start", "st")
    p = d.docker("rm", "st", check=False)
    assert p.returncode == 1, p.stderr
    assert "You cannot remove a running container" in p.stderr
    assert "Stop the container before attempting removal or force remove" in p.stderr
    d.docker("rm", "-f", "st")
    p = d.docker("inspect", "st", check=False)
    assert p.returncode == 1 and "No such" in p.stderr
    # kill -s: the signal reaches a pid 1 that handles it
    d.docker("run", "-d", "--name", "ks", "busybox", "sh", "-c",
             "trap 'exit 5' USR1; while true; do sleep 0.1; done")
    time.sleep(0.3)  # the shell installs its trap before the first sleep
    d.docker("kill", "-s", "USR1", "ks")
    poll("ks exits 5", lambda: state(d, "ks", "{{.State.Status}} {{.State.ExitCode}}") == "exited 5")
    d.docker("start", "ks")
    d.docker("kill", "ks")
    assert state(d, "ks", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    p = d.docker("kill", "ks", check=False)
    assert p.returncode == 1 and "is not running" in p.stderr
    d.docker("rm", "ks")


def test_stop_sends_the_stop_signal_then_waits(d: Daemon) -> None:
    # a shell that traps TERM and exits 0: stop ends it without SIGKILL
    d.docker("run", "-d", "--name", "trap", "busybox", "sh", "-c",
             "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done")
    poll("trap set", lambda: state(d, "trap") == "running")
    time.sleep(0.3)  # the shell installs its trap before the first sleep
    d.docker("stop", "trap")
    assert state(d, "trap", "{{.State.ExitCode}}") == "0"
    assert "got TERM" in d.docker("logs", "trap").stdout
    # --stop-signal USR1 with a shell that only traps USR1
    d.docker("run", "-d", "--name", "usr1", "--stop-signal", "USR1", "busybox", "sh", "-c",
             "trap 'exit 7' USR1; while true; do sleep 0.1; done")
    time.sleep(0.3)
    d.docker("stop", "usr1")
    assert state(d, "usr1", "{{.State.ExitCode}}") == "7"
    d.docker("rm", "trap", "usr1")


def test_run_rm_leaves_nothing_and_wait_prints_the_code(d: Daemon) -> None:
    d.docker("run", "--rm", "--name", "gone", "busybox", "true")
    assert d.docker("ps", "-aq").stdout == ""
    d.docker("run", "-d", "--name", "w9", "busybox", "sh", "-c", "sleep 0.5; exit 9")
    assert d.docker("wait", "w9").stdout.strip() == "9"
    d.docker("rm", "w9")


# ------------------------------------------------------------------ ps, inspect


def test_ps_filters_and_formats(d: Daemon) -> None:
    a = d.docker("run", "-d", "--name", "psa", "-l", "app=web", "busybox", "sleep", "300"
                 ).stdout.strip()
    b = d.docker("run", "--name", "psb", "-l", "app=db", "busybox", "sh", "-c", "exit 2",
                 check=False)
    assert b.returncode == 2
    bid = state(d, "psb", "{{.Id}}")
    c = d.docker("create", "--name", "psc", "busybox", "true").stdout.strip()

    def ids(*args: str) -> list[str]:
        return d.docker("ps", *args).stdout.split()

    assert ids("-q") == [a[:12]]
    assert ids("-aq") == [c[:12], bid[:12], a[:12]]  # newest first
    assert ids("-aq", "--no-trunc") == [c, bid, a]
    assert ids("-q", "-n", "2") == [c[:12], bid[:12]]
    assert ids("-q", "-l") == [c[:12]]
    assert ids("-aq", "--filter", "status=exited") == [bid[:12]]
    assert ids("-aq", "--filter", "status=running") == [a[:12]]
    assert ids("-aq", "--filter", "name=psb") == [bid[:12]]
    assert ids("-aq", "--filter", "label=app=web") == [a[:12]]
    assert ids("-aq", "--filter", "label=app") == [bid[:12], a[:12]]
    assert ids("-aq", "--filter", "exited=2") == [bid[:12]]
    assert ids("-aq", "--filter", f"id={a[:8]}") == [a[:12]]
    assert ids("-aq", "--filter", "ancestor=busybox") == [c[:12], bid[:12], a[:12]]
    assert ids("-aq", "--filter", "ancestor=nosuch") == []
    assert ids("-aq", "--filter", "before=psb") == [a[:12]]
    assert ids("-aq", "--filter", "since=psb") == [c[:12]]
    assert ids("-aq", "--filter", "name=^ps[ab]$") == [bid[:12], a[:12]]
    assert ids("-aq", "--filter", "name=psa", "--filter", "name=psc") == [c[:12], a[:12]]
    assert ids("-aq", "--filter", "status=exited", "--filter", "label=app=web") == []
    p = d.docker("ps", "-a", "--filter", "bogus=1", check=False)
    assert p.returncode != 0 and "bogus" in p.stderr

    out = d.docker("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.splitlines()
    assert out[0] == f"{c[:12]} psc Created"
    assert out[1].startswith(f"{bid[:12]} psb Exited (2) ")
    assert out[2].startswith(f"{a[:12]} psa Up ")
    table = d.docker("ps", "--format", "table {{.Names}}\t{{.Image}}\t{{.Command}}"
                     ).stdout.splitlines()
    assert table[0].split() == ["NAMES", "IMAGE", "COMMAND"]
    assert table[1].split() == ["psa", "busybox", '"sleep', '300"']
    default = d.docker("ps").stdout.splitlines()
    assert default[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                  "PORTS", "NAMES"]
    assert default[1].startswith(a[:12]) and default[1].endswith("psa")
    labels = d.docker("ps", "--format", "{{.Labels}} {{.Label \"app\"}}").stdout.strip()
    assert labels == "app=web web"
    d.docker("rm", "-f", "psa", "psb", "psc")


def test_inspect_formats_and_raw_shape(d: Daemon) -> None:
    d.docker("run", "-d", "--name", "ins", "-e", "A=1", "-m", "32m", "busybox", "sleep", "300")
    assert state(d, "ins", "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}") == \
        "running true 0"
    env = json.loads(state(d, "ins", "{{json .Config.Env}}"))
    assert "A=1" in env and any(e.startswith("PATH=") for e in env)
    assert state(d, "ins", "{{.HostConfig.Memory}}") == str(32 << 20)
    assert state(d, "ins", "{{.Config.Image}} {{.Name}} {{.Path}} {{.Args}}") == \
        "busybox /ins sleep [300]"
    raw = d.json("GET", "/containers/ins/json")
    assert raw["State"]["Pid"] > 0
    assert raw["Config"]["Cmd"] == ["sleep", "300"]
    assert raw["HostConfig"]["Memory"] == 32 << 20
    assert raw["Image"].startswith("sha256:")
    pid = raw["State"]["Pid"]
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    listed = d.json("GET", "/containers/json?filters=" + quote(json.dumps({"name": ["ins"]})))
    assert [c["Names"] for c in listed] == [["/ins"]]
    assert listed[0]["State"] == "running" and listed[0]["Status"].startswith("Up ")
    code, _, body = d.request("GET", "/containers/nosuch/json")
    assert code == 404 and json.loads(body)["message"] == "No such container: nosuch"
    d.docker("rm", "-f", "ins")


# ------------------------------------------------------------------ the raw API: hijack, wait, errors


def _hijack(d: Daemon, path: str) -> socket.socket:
    """POST ``path`` asking for Docker's upgrade; the socket after the ``101`` head."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(str(d.sock))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
              "Content-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"application/vnd.docker.multiplexed-stream" in head or \
        b"application/vnd.docker.raw-stream" in head
    return s


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def _demux(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while data:
        assert len(data) >= 8 and data[1:4] == b"\0\0\0", data[:16]
        size = int.from_bytes(data[4:8], "big")
        frames.append((data[0], data[8:8 + size]))
        data = data[8 + size:]
    return frames


def test_raw_attach_is_multiplexed_and_takes_stdin(d: Daemon) -> None:
    cid = d.json("POST", "/containers/create?name=raw", {
        "Image": "busybox", "Cmd": ["sh", "-c", "read x; echo got $x; echo oops >&2; exit 2"],
        "OpenStdin": True, "StdinOnce": True, "AttachStdin": True, "AttachStdout": True,
        "AttachStderr": True})["Id"]
    s = _hijack(d, "/v1.45/containers/raw/attach?stream=1&stdin=1&stdout=1&stderr=1")
    try:
        d.json("POST", "/containers/raw/start", status=204)
        s.sendall(b"hello\n")
        s.shutdown(socket.SHUT_WR)
        frames = _demux(_read_all(s))
    finally:
        s.close()
    out = b"".join(b for sid, b in frames if sid == 1)
    err = b"".join(b for sid, b in frames if sid == 2)
    assert (out, err) == (b"got hello\n", b"oops\n")
    assert d.json("POST", "/containers/raw/wait")["StatusCode"] == 2
    d.json("DELETE", f"/containers/{cid}", status=204)


def test_raw_attach_with_a_tty_is_not_multiplexed(d: Daemon) -> None:
    d.json("POST", "/containers/create?name=rawtty", {
        "Image": "busybox", "Cmd": ["sh", "-c", "echo tty-out"], "Tty": True,
        "AttachStdout": True})
    s = _hijack(d, "/v1.45/containers/rawtty/attach?stream=1&stdout=1&stderr=1")
    try:
        d.json("POST", "/containers/rawtty/start", status=204)
        data = _read_all(s)
    finally:
        s.close()
    assert data == b"tty-out\r\n"
    assert d.json("POST", "/containers/rawtty/wait")["StatusCode"] == 0
    d.json("DELETE", "/containers/rawtty", status=204)


def test_wait_conditions_and_api_errors(d: Daemon) -> None:
    d.json("POST", "/containers/create?name=wt", {"Image": "busybox", "Cmd": ["sh", "-c", "exit 7"]})
    # not-running on a created container answers at once with its code (0)
    assert d.json("POST", "/containers/wt/wait")["StatusCode"] == 0
    d.json("POST", "/containers/wt/start", status=204)
    assert d.json("POST", "/containers/wt/wait?condition=not-running")["StatusCode"] == 7
    code, _, body = d.request("POST", "/containers/wt/wait?condition=bogus")
    assert code == 400 and "condition" in json.loads(body)["message"]
    # start of a running one: 304; remove of a running one: 409
    d.json("POST", "/containers/create?name=wt2", {"Image": "busybox", "Cmd": ["sleep", "300"]})
    d.json("POST", "/containers/wt2/start", status=204)
    assert d.request("POST", "/containers/wt2/start")[0] == 304
    code, _, body = d.request("DELETE", "/containers/wt2")
    assert code == 409 and "Stop the container before attempting removal" in \
        json.loads(body)["message"]
    d.json("DELETE", "/containers/wt2?force=1", status=204)
    d.json("DELETE", "/containers/wt", status=204)
    # a create that cannot work: 400 and nothing left
    for body_, words in (
            (b"{not json", "invalid"),
            (json.dumps({"Image": "busybox", "HostConfig": {
                "AutoRemove": True, "RestartPolicy": {"Name": "always"}}}).encode(), "restart"),
            (json.dumps({"Image": "busybox", "HostConfig": {"Memory": -5}}).encode(), "memory")):
        code, _, raw = d.request("POST", "/containers/create", body_,
                                 {"Content-Type": "application/json"})
        assert code == 400, raw
        assert words in json.loads(raw)["message"].lower(), raw
    code, _, raw = d.request("POST", "/containers/create", json.dumps(
        {"Image": "nosuch:9"}).encode(), {"Content-Type": "application/json"})
    assert code == 404 and json.loads(raw)["message"] == "No such image: nosuch:9"
    assert d.json("GET", "/containers/json?all=1") == []


# ------------------------------------------------------------------ edges


def test_detached_rm_is_removed_at_exit_and_paused_containers_stop(d: Daemon) -> None:
    d.docker("run", "-d", "--rm", "--name", "drm", "busybox", "sleep", "0.3")
    poll("drm removed", lambda: d.docker("ps", "-aq", "--filter", "name=drm").stdout == "")
    d.docker("run", "-d", "--name", "pstop", "--stop-timeout", "1", "busybox", "sleep", "300")
    assert state(d, "pstop", "{{.Config.StopTimeout}}") == "1"
    d.docker("pause", "pstop")
    d.docker("stop", "pstop")  # paused: signalled, thawed, killed after the 1 s stop timeout
    assert state(d, "pstop", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    d.docker("start", "pstop")
    d.docker("pause", "pstop")
    d.docker("rm", "-f", "pstop")
    assert d.docker("ps", "-aq").stdout == ""


def test_more_run_flags_reach_the_process(d: Daemon, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=yes\nEMPTY=\n")
    p = d.docker("run", "--rm", "--env-file", str(env_file), "--cpus", "0.5", "--cpu-shares",
                 "512", "--cpuset-cpus", "0", "-m", "64m", "--memory-swap", "128m", "busybox",
                 "sh", "-c", "echo $FROM_FILE; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                 "/sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares "
                 "/sys/fs/cgroup/cpuset/cpuset.cpus "
                 "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null")
    lines = p.stdout.split()
    assert lines[:5] == ["yes", "50000", "100000", "512", "0"]
    if len(lines) > 5:  # swap accounting on
        assert lines[5] == str(128 << 20)
    src = tmp_path / "m"
    src.mkdir()
    p = d.docker("run", "--rm", "--mount", f"type=bind,source={src},target=/m,readonly",
                 "--network", "none", "busybox", "sh", "-c",
                 "touch /m/x 2>/dev/null; echo rc=$?; ls /sys/class/net")
    assert p.stdout.split() == ["rc=1", "lo"]
    p = d.docker("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/comm")
    assert p.stdout.strip() != "sh"  # pid 1 is the init, sh its child
    host_pid = d.docker("run", "--rm", "--pid", "host", "busybox", "sh", "-c",
                        "echo $$").stdout.strip()
    assert int(host_pid) > 1
    p = d.docker("run", "--rm", "--security-opt", "no-new-privileges", "busybox", "grep",
                 "NoNewPrivs", "/proc/self/status")
    assert p.stdout.split() == ["NoNewPrivs:", "1"]


def test_start_ai_restart_of_a_stopped_one_and_multi_inspect(d: Daemon) -> None:
    d.docker("create", "-i", "--name", "sai", "busybox", "sh", "-c", "read x; echo [$x]")
    p = d.docker("start", "-ai", "sai", input="piped\n")
    assert p.stdout == "[piped]\n"
    d.docker("create", "--name", "rs", "busybox", "sleep", "300")
    d.docker("restart", "-t", "0", "rs")  # restart of a container that never ran starts it
    assert state(d, "rs") == "running"
    out = d.docker("inspect", "--format", "{{.Name}}", "sai", "rs").stdout.split()
    assert out == ["/sai", "/rs"]
    p = d.docker("inspect", "rs", "nosuch", check=False)
    assert p.returncode == 1 and "No such object: nosuch" in p.stderr, p.stderr
    assert json.loads(p.stdout)[0]["Name"] == "/rs"
    assert d.docker("wait", "sai").stdout.split() == ["0"]
    d.docker("rm", "-f", "sai", "rs")


def test_run_attach_only_stdout_and_log_driver_none(d: Daemon) -> None:
    p = d.docker("run", "--rm", "-a", "stdout", "busybox", "sh", "-c", "echo o; echo e >&2")
    assert (p.stdout, p.stderr) == ("o\n", "")
    d.docker("run", "--name", "nolog", "--log-driver", "none", "busybox", "echo", "x")
    p = d.docker("logs", "nolog", check=False)
    assert p.returncode == 1 and "does not support reading" in p.stderr
    d.docker("rm", "nolog")


def test_update_of_a_stopped_container_applies_at_start_and_bad_rename(d: Daemon) -> None:
    d.docker("create", "--name", "upd", "-m", "32m", "busybox", "cat",
             "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    d.docker("update", "-m", "40m", "--memory-swap", "80m", "upd")
    assert d.docker("start", "-a", "upd").stdout.strip() == str(40 << 20)
    p = d.docker("rename", "upd", "bad name", check=False)
    assert p.returncode == 1 and "Invalid container name" in p.stderr
    d.docker("rm", "upd")


def test_memory_hog_is_oom_killed(d: Daemon) -> None:
    p = d.docker("run", "--name", "oom", "-m", "8m", "--memory-swap", "8m", "busybox", "sh",
                 "-c", "x=a; while true; do x=$x$x; done", check=False)
    assert p.returncode == 137
    assert state(d, "oom", "{{.State.OOMKilled}} {{.State.ExitCode}}") == "true 137"
    d.docker("rm", "oom")


def test_parallel_run_rm_all_answer_and_leave_nothing(d: Daemon) -> None:
    env = {**os.environ, "DOCKER_CONFIG": str(d.tmp)}
    procs = [subprocess.Popen(["docker", "-H", d.host, "run", "--rm", "busybox", "echo", f"n{i}"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(12)]
    try:
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert [(p.returncode, out) for p, (out, _) in zip(procs, results)] == \
        [(0, f"n{i}\n") for i in range(12)]
    assert d.docker("ps", "-aq").stdout == ""
