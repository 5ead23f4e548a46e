"""The container and volume verbs of the CLI against a scripted fake client: the requests they
make (paths, queries, bodies as the docker CLI 28 sends them), what they print and their exit
codes. Expected texts were taken from the docker CLI 28 against a dockerd."""

from __future__ import annotations

import io
import os
import socket
import threading

import pytest

from dockyard.cli.client import APIError, frame
from dockyard.cli.common import Context
from dockyard.cli.main import run

NOW = 1_800_000_000.0


class FakeClient:
    """Answers from ``answers[(method, path)]`` (a value, an exception, or a callable of the
    query); records every call as (method, path, query, body)."""

    def __init__(self, answers: dict | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[tuple] = []

    def _answer(self, method, path, query=None, body=None):
        self.calls.append((method, path, query, body))
        a = self.answers.get((method, path))
        if isinstance(a, list) and a and isinstance(a[0], BaseException):
            a = a.pop(0) if len(a) > 1 else a[0]
        if isinstance(a, BaseException):
            raise a
        if callable(a):
            return a(query, body)
        return a

    def get(self, path, query=None, body=None, headers=None):
        return self._answer("GET", path, query, body)

    def post(self, path, query=None, body=None, headers=None):
        return self._answer("POST", path, query, body)

    def put(self, path, query=None, body=None, headers=None):
        return self._answer("PUT", path, query, body)

    def delete(self, path, query=None, body=None, headers=None):
        return self._answer("DELETE", path, query, body)

    def head(self, path, query=None, headers=None):
        return self._answer("HEAD", path, query)

    def stream(self, method, path, query=None, body=None, headers=None):
        return self._answer(method, path, query, body)

    def hijack(self, method, path, query=None, body=None, headers=None):
        return self._answer("HIJACK " + method, path, query, body)


def cli(fake: FakeClient, *argv: str, tty: dict | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(out=out, err=err, out_binary=io.BytesIO(), make_client=lambda host: fake,
                  tty=tty or {})
    code = run(list(argv), ctx)
    return code, out.getvalue(), err.getvalue()


def summary(cid: str, name: str, **kw) -> dict:
    doc = {"Id": cid * 64 if len(cid) == 1 else cid, "Names": [f"/{name}"], "Image": "busybox",
           "ImageID": "sha256:" + "b" * 64, "Command": "sleep 1000", "Created": int(NOW) - 120,
           "Ports": [], "Labels": {}, "State": "running", "Status": "Up 2 minutes",
           "HostConfig": {"NetworkMode": "none"}, "NetworkSettings": {"Networks": {"none": {}}},
           "Mounts": []}
    doc.update(kw)
    return doc


# ------------------------------------------------------------------------------------------ ps

def test_ps_table_is_dockers(monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW)
    fake = FakeClient({("GET", "/containers/json"): [
        summary("a", "web", Status="Up 2 minutes (healthy)",
                Ports=[{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}]),
        summary("b", "job", Command="echo hello world this is a long command", State="exited",
                Status="Exited (3) 2 minutes ago"),
    ]})
    code, out, _ = cli(fake, "ps", "-a")
    assert code == 0
    assert out == (
        "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS"
        "                     PORTS                  NAMES\n"
        "aaaaaaaaaaaa   busybox   \"sleep 1000\"             2 minutes ago   Up 2 minutes "
        "(healthy)     0.0.0.0:8080->80/tcp   web\n"
        "bbbbbbbbbbbb   busybox   \"echo hello world th…\"   2 minutes ago   Exited (3) 2 "
        "minutes ago                          job\n")
    assert fake.calls == [("GET", "/containers/json", {"all": True}, None)]


def test_ps_query_flags():
    fake = FakeClient({("GET", "/containers/json"): []})
    cli(fake, "ps", "-a", "-n", "3", "-s", "--filter", "status=exited", "-f", "name=x")
    assert fake.calls[-1][2] == {"all": True, "limit": 3, "size": True,
                                 "filters": {"status": {"exited": True}, "name": {"x": True}}}
    cli(fake, "ps", "-l")
    assert fake.calls[-1][2] == {"limit": 1}
    cli(fake, "container", "ls", "--format", "{{.Size}}")
    assert fake.calls[-1][2] == {"size": True}


def test_ps_quiet_no_trunc_and_formats(monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW)
    fake = FakeClient({("GET", "/containers/json"): [
        summary("a", "web", Labels={"b": "2", "a": "1"}, SizeRw=0, SizeRootFs=1982000,
                Mounts=[{"Name": "v", "Driver": "local"}])]})
    assert cli(fake, "ps", "-q")[1] == "aaaaaaaaaaaa\n"
    assert cli(fake, "ps", "-q", "--no-trunc")[1] == "a" * 64 + "\n"
    assert cli(fake, "ps", "--format", "{{.Names}} {{.State}} {{.Labels}} {{.LocalVolumes}}"
               )[1] == "web running a=1,b=2 1\n"
    assert cli(fake, "ps", "--format", '{{.Label "b"}}|{{.Label "none"}}|')[1] == "2||\n"
    assert cli(fake, "ps", "--format", "table {{.ID}}\t{{.Size}}")[1] == (
        "CONTAINER ID   SIZE\naaaaaaaaaaaa   0B (virtual 1.98MB)\n")
    import json

    doc = json.loads(cli(fake, "ps", "--format", "{{json .}}")[1])
    assert doc["Names"] == "web" and doc["Command"] == '"sleep 1000"'
    assert doc["RunningFor"] == "2 minutes ago" and doc["Networks"] == "none"


def test_ps_rejects_arguments_and_unknown_flags():
    fake = FakeClient()
    code, _, err = cli(fake, "ps", "extra")
    assert code == 1 and "'dockyard ps' accepts no arguments" in err
    code, _, err = cli(fake, "ps", "--bogus")
    assert code == 125 and err.startswith("unknown flag: --bogus")


def test_display_ports_folds_ranges():
    from dockyard.cli.containers_list import display_ports

    ports = [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
             {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 8081, "Type": "tcp"},
             {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
             {"PrivatePort": 53, "Type": "udp"}]
    assert display_ports(ports) == "53/udp, 0.0.0.0:8080-8081->80-81/tcp, [::]:8080->80/tcp"


# ------------------------------------------------------------------------------------------ lifecycle

def test_rm_continues_after_errors_and_exits_1():
    fake = FakeClient({("DELETE", "/containers/x"): APIError(404, "No such container: x"),
                       ("DELETE", "/containers/y"): None})
    code, out, err = cli(fake, "rm", "-fv", "x", "y")
    assert (code, out, err) == (1, "y\n", "Error response from daemon: No such container: x\n")
    assert fake.calls[-1] == ("DELETE", "/containers/y", {"force": True, "v": True, "link": None},
                              None)


def test_stop_restart_kill_queries():
    fake = FakeClient()
    assert cli(fake, "stop", "-t", "3", "-s", "SIGINT", "c1")[:2] == (0, "c1\n")
    assert fake.calls[-1] == ("POST", "/containers/c1/stop", {"t": 3, "signal": "SIGINT"}, None)
    cli(fake, "restart", "-t", "1", "c1")
    assert fake.calls[-1] == ("POST", "/containers/c1/restart", {"t": 1}, None)
    cli(fake, "kill", "-s", "HUP", "c1")
    assert fake.calls[-1] == ("POST", "/containers/c1/kill", {"signal": "HUP"}, None)
    cli(fake, "container", "remove", "c1")
    assert fake.calls[-1][:2] == ("DELETE", "/containers/c1")


def test_start_failure_names_the_containers():
    fake = FakeClient({("POST", "/containers/nosuch/start"):
                       APIError(404, "No such container: nosuch")})
    code, out, err = cli(fake, "start", "nosuch")
    assert code == 1 and out == ""
    assert err == ("Error response from daemon: No such container: nosuch\n"
                   "Error: failed to start containers: nosuch\n")


def test_wait_prints_exit_codes():
    fake = FakeClient({("POST", "/containers/a/wait"): {"StatusCode": 3},
                       ("POST", "/containers/b/wait"): {"StatusCode": 0}})
    assert cli(fake, "wait", "a", "b")[:2] == (0, "3\n0\n")


def test_requires_arguments():
    code, _, err = cli(FakeClient(), "rm")
    assert code == 1
    assert err.startswith("dockyard: 'dockyard rm' requires at least 1 argument")


def test_update_body_and_rename():
    fake = FakeClient({("POST", "/containers/c1/update"): {"Warnings": []}})
    assert cli(fake, "update", "-m", "64m", "--cpus", "2", "--restart", "always",
               "--pids-limit", "10", "c1")[:2] == (0, "c1\n")
    assert fake.calls[-1][3] == {"Memory": 67108864, "NanoCpus": 2000000000, "PidsLimit": 10,
                                 "RestartPolicy": {"MaximumRetryCount": 0, "Name": "always"}}
    code, _, err = cli(FakeClient(), "update", "c1")
    assert code == 1 and "one or more flags" in err
    fake = FakeClient({("POST", "/containers/c1/rename"): APIError(409, "name in use")})
    code, _, err = cli(fake, "rename", "c1", "c2")
    assert (code, err) == (1, "Error response from daemon: name in use\n"
                              "Error: failed to rename container named c1\n")


def test_port_lines():
    ports = {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"},
                        {"HostIp": "::", "HostPort": "8080"}], "53/udp": None}
    fake = FakeClient({("GET", "/containers/c1/json"): {"NetworkSettings": {"Ports": ports}}})
    assert cli(fake, "port", "c1")[1] == "80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n"
    assert cli(fake, "port", "c1", "80")[1] == "0.0.0.0:8080\n[::]:8080\n"
    code, _, err = cli(fake, "port", "c1", "81")
    assert code == 1 and "No public port '81/tcp' published for c1" in err


# ------------------------------------------------------------------------------------------ run

def _created(query, body):
    return {"Id": "f" * 64, "Warnings": []}


def test_run_detached_prints_the_id_and_sends_the_flags():
    fake = FakeClient({("POST", "/containers/create"): _created})
    code, out, _ = cli(fake, "run", "-d", "--name", "web", "-e", "A=1", "busybox", "sleep", "9")
    assert (code, out) == (0, "f" * 64 + "\n")
    (_, _, query, body), start = fake.calls
    assert query == {"name": "web"} and body["Cmd"] == ["sleep", "9"]
    assert body["Env"] == ["A=1"] and body["AttachStdout"] is False
    assert start[:2] == ("POST", "/containers/" + "f" * 64 + "/start")


@pytest.mark.parametrize("message, code", [
    ('exec: "nosuch": executable file not found in $PATH', 127),
    ('exec: "/etc/passwd": permission denied', 126),
    ("stat /nonexistent: no such file or directory", 127),
    ("cgroup: invalid memory limit", 125),
])
def test_run_start_failures_map_to_docker_exit_codes(message, code):
    cid = "f" * 64
    fake = FakeClient({("POST", "/containers/create"): _created,
                       ("POST", f"/containers/{cid}/start"): APIError(500, message)})
    got, _, err = cli(fake, "run", "-d", "busybox")
    assert got == code
    assert err.startswith(f"dockyard: Error response from daemon: {message}\n")


def test_run_with_a_missing_image_and_pull_never_is_125():
    fake = FakeClient({("POST", "/containers/create"):
                       APIError(404, "No such image: nosuch:latest")})
    code, _, err = cli(fake, "run", "--pull", "never", "nosuch")
    assert code == 125
    assert err.startswith("dockyard: Error response from daemon: No such image: nosuch:latest")
    assert "Unable to find image" not in err


def test_run_with_a_missing_image_says_so_and_tries_to_pull():
    fake = FakeClient({("POST", "/containers/create"):
                       APIError(404, "No such image: nosuch:latest"),
                       ("POST", "/images/create"): APIError(501, "pull is not implemented")})
    code, _, err = cli(fake, "run", "nosuch")
    assert code == 125
    assert err.startswith("Unable to find image 'nosuch:latest' locally\n"
                          "dockyard: Error response from daemon: pull is not implemented")
    assert fake.calls[1][:3] == ("POST", "/images/create", {"fromImage": "nosuch",
                                                            "tag": "latest"})


def test_run_name_conflict_is_125_and_create_is_1():
    err409 = APIError(409, 'Conflict. The container name "/c2" is already in use')
    fake = FakeClient({("POST", "/containers/create"): err409})
    assert cli(fake, "run", "--name", "c2", "busybox")[0] == 125
    code, _, err = cli(fake, "create", "--name", "c2", "busybox")
    assert code == 1 and err.startswith("Error response from daemon: Conflict.")


def test_run_attached_streams_frames_and_exits_with_the_code(capfd):
    cid = "f" * 64
    ours, theirs = socket.socketpair()
    ours.sendall(frame(1, b"out\n") + frame(2, b"err\n"))
    ours.close()
    fake = FakeClient({
        ("POST", "/containers/create"): _created,
        ("HIJACK POST", f"/containers/{cid}/attach"): (theirs, b""),
        ("POST", f"/containers/{cid}/wait"): None,
        ("POST", f"/containers/{cid}/start"): None,
    })

    class Resp:
        def read(self):
            return b'{"StatusCode": 5, "Error": null}'

        def close(self):
            pass

    fake.answers[("POST", f"/containers/{cid}/wait")] = lambda q, b: Resp()
    code, _, _ = cli(fake, "run", "--rm", "busybox", "sh")
    assert code == 5
    captured = capfd.readouterr()
    assert captured.out.endswith("out\n") and captured.err.endswith("err\n")
    attach = next(c for c in fake.calls if c[0] == "HIJACK POST")
    assert attach[2] == {"stream": True, "stdin": False, "stdout": True, "stderr": True}
    wait = next(c for c in fake.calls if c[1].endswith("/wait"))
    assert wait[2] == {"condition": "removed"}


def test_run_it_without_a_terminal_is_refused():
    code, _, err = cli(FakeClient(), "run", "-it", "busybox")
    assert (code, err) == (1, "the input device is not a TTY\n")


# ------------------------------------------------------------------------------------------ io

def test_api_time_is_dockers_get_timestamp():
    from dockyard.cli.containers_io import api_time

    assert api_time("10m", now=1000.5) == "400"
    assert api_time("2024-01-01T00:00:00Z") == "1704067200.000000000"
    assert api_time("1704067200.5") == "1704067200.5"


def test_logs_query_and_demux():
    body = io.BytesIO(frame(1, b"a\n") + frame(2, b"b\n") + frame(1, b"c\n"))
    fake = FakeClient({("GET", "/containers/lg/json"): {"Id": "L" * 64, "Config": {"Tty": False}},
                       ("GET", "/containers/" + "L" * 64 + "/logs"): body})
    out, err = io.StringIO(), io.StringIO()
    out_b = io.BytesIO()
    ctx = Context(out=out, err=err, out_binary=out_b, make_client=lambda h: fake, tty={})
    assert run(["logs", "-t", "--tail", "5", "--details", "-f", "lg"], ctx) == 0
    assert out_b.getvalue() == b"a\nc\n" and err.getvalue() == "b\n"
    assert fake.calls[-1][2] == {"stdout": True, "stderr": True, "timestamps": True,
                                 "follow": True, "details": True, "tail": "5"}


def test_exec_body_is_dockers():
    from dockyard.cli.containers_io import exec_body

    body = exec_body({"interactive": True, "env": ["A=1"], "user": "nobody", "workdir": "/tmp",
                      "privileged": True}, ["sh", "-c", "x"], {}, None)
    assert body == {"User": "nobody", "Privileged": True, "Tty": False, "AttachStdin": True,
                    "AttachStderr": True, "AttachStdout": True, "Detach": False,
                    "DetachKeys": "", "Env": ["A=1"], "WorkingDir": "/tmp",
                    "Cmd": ["sh", "-c", "x"]}
    body = exec_body({"detach": True}, ["sleep", "1"], {}, None)
    assert (body["Detach"], body["AttachStdout"], body["Env"]) == (True, False, None)


def test_exec_exit_code_comes_from_exec_inspect():
    ours, theirs = socket.socketpair()
    ours.close()
    fake = FakeClient({("GET", "/containers/s1/json"): {"Id": "c" * 64, "Config": {}},
                       ("POST", "/containers/" + "c" * 64 + "/exec"): {"Id": "e1"},
                       ("HIJACK POST", "/exec/e1/start"): (theirs, b""),
                       ("GET", "/exec/e1/json"): {"ExitCode": 4}})
    assert cli(fake, "exec", "s1", "sh", "-c", "exit 4")[0] == 4
    start = next(c for c in fake.calls if c[0] == "HIJACK POST")
    assert start[3] == {"Detach": False, "Tty": False}


def test_top_diff_commit_events():
    fake = FakeClient({
        ("GET", "/containers/s1/top"): {"Titles": ["PID", "COMMAND"],
                                        "Processes": [["745", "sleep"]]},
        ("GET", "/containers/s1/changes"): [{"Path": "/tmp", "Kind": 0},
                                            {"Path": "/tmp/f", "Kind": 1},
                                            {"Path": "/gone", "Kind": 2}],
        ("POST", "/commit"): {"Id": "sha256:" + "d" * 64},
    })
    assert cli(fake, "top", "s1", "-o", "pid,comm")[1] == (
        "PID                 COMMAND\n745                 sleep\n")
    assert fake.calls[-1][2] == {"ps_args": "-o pid,comm"}
    assert cli(fake, "diff", "s1")[1] == "C /tmp\nA /tmp/f\nD /gone\n"
    assert cli(fake, "commit", "-m", "msg", "-a", "me", "-c", "ENV A=1", "--pause=false", "s1",
               "snap:1")[1] == "sha256:" + "d" * 64 + "\n"
    assert fake.calls[-1][2] == {"container": "s1", "repo": "docker.io/library/snap",
                                 "tag": "1", "comment": "msg", "author": "me",
                                 "changes": ["ENV A=1"], "pause": False}


def test_event_line_is_dockers(monkeypatch):
    from dockyard.cli.containers_io import event_line

    monkeypatch.setenv("TZ", "UTC")
    msg = {"Type": "container", "Action": "die",
           "Actor": {"ID": "abc", "Attributes": {"name": "h1", "exitCode": "0"}},
           "time": 1795845859, "timeNano": 1795845859700362000}
    assert event_line(msg) == ("2026-11-28T06:04:19.700362Z container die abc "
                               "(exitCode=0, name=h1)")


def test_stats_are_computed_like_the_docker_cli():
    from dockyard.cli.containers_stats import render_stats, stats_row

    s = {"id": "2e0f7568edb2a776", "name": "/s1",
         "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000}, "system_cpu_usage": 200_000_000,
                       "online_cpus": 4},
         "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000},
                          "system_cpu_usage": 100_000_000},
         "memory_stats": {"usage": 400 * 1024, "limit": 64 << 20,
                          "stats": {"total_inactive_file": 88 * 1024}},
         "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 0}},
         "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096},
                                                        {"op": "Write", "value": 0}]},
         "pids_stats": {"current": 1}}
    row = stats_row("s1", s)
    assert row == {"BlockIO": "4.1kB / 0B", "CPUPerc": "4.00%", "Container": "s1",
                   "ID": "2e0f7568edb2", "MemPerc": "0.48%", "MemUsage": "312KiB / 64MiB",
                   "Name": "s1", "NetIO": "1.5kB / 0B", "PIDs": "1"}
    assert render_stats([row]).splitlines() == [
        "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O      "
        "BLOCK I/O    PIDS",
        "2e0f7568edb2   s1        4.00%     312KiB / 64MiB      0.48%     1.5kB / 0B   "
        "4.1kB / 0B   1"]


def test_cp_targets():
    from dockyard.cli.containers_cp import split_target

    assert split_target("c1:/etc/passwd") == ("c1", "/etc/passwd")
    assert split_target("/tmp/a:b") == ("", "/tmp/a:b")
    assert split_target("./x:y") == ("", "./x:y")
    assert split_target("file") == ("", "file")
    code, _, err = cli(FakeClient(), "cp", "a", "b")
    assert code == 1 and "must specify at least one container source" in err


# ------------------------------------------------------------------------------------------ volumes

def test_volume_verbs():
    fake = FakeClient({("POST", "/volumes/create"): lambda q, b: {"Name": b["Name"] or "anon"},
                       ("GET", "/volumes"): {"Volumes": [
                           {"Name": "v2", "Driver": "local", "Labels": {}},
                           {"Name": "v1", "Driver": "local", "Labels": {"a": "b"}}]},
                       ("DELETE", "/volumes/nosuch"): APIError(404, "get nosuch: no such volume"),
                       ("POST", "/volumes/prune"): {"VolumesDeleted": ["v1"],
                                                    "SpaceReclaimed": 0}})
    assert cli(fake, "volume", "create", "v1")[1] == "v1\n"
    assert fake.calls[-1][3] == {"Driver": "local", "Name": "v1"}
    cli(fake, "volume", "create", "-d", "local", "--label", "a=b", "-o", "o=1", "v1")
    assert fake.calls[-1][3] == {"Driver": "local", "DriverOpts": {"o": "1"},
                                 "Labels": {"a": "b"}, "Name": "v1"}
    assert cli(fake, "volume", "ls")[1] == "DRIVER    VOLUME NAME\nlocal     v1\nlocal     v2\n"
    assert cli(fake, "volume", "ls", "-q", "-f", "dangling=true")[1] == "v1\nv2\n"
    assert fake.calls[-1][2] == {"filters": {"dangling": {"true": True}}}
    assert cli(fake, "volume", "ls", "--format", "{{.Name}}:{{.Labels}}")[1] == "v1:a=b\nv2:\n"
    code, out, err = cli(fake, "volume", "rm", "nosuch", "v2")
    assert (code, out, err) == (1, "v2\n", "Error response from daemon: get nosuch: no such "
                                           "volume\n")
    assert cli(fake, "volume", "prune", "-a", "-f")[1] == (
        "Deleted Volumes:\nv1\n\nTotal reclaimed space: 0B\n")
    assert fake.calls[-1][2] == {"filters": {"all": {"true": True}}}


def test_inspect_of_containers_and_volumes():
    fake = FakeClient({("GET", "/containers/s1/json"): {"State": {"Status": "running"},
                                                        "Config": {"Env": ["A=1", "B=2"]}},
                       ("GET", "/containers/nosuch/json"): APIError(404, "No such container: "
                                                                         "nosuch")})
    code, out, err = cli(fake, "container", "inspect", "-f", "{{.State.Status}} {{.Config.Env}}",
                         "s1", "nosuch")
    assert (code, out, err) == (1, "running [A=1 B=2]\n",
                                "Error response from daemon: No such container: nosuch\n")


# ------------------------------------------------------------------------------------------ stream

def test_detach_keys():
    from dockyard.cli.stream import parse_detach_keys

    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-@,a,ctrl-[") == b"\x00a\x1b"
    with pytest.raises(ValueError):
        parse_detach_keys("ctrl-pp")


def test_pump_forwards_stdin_and_closes_its_write_side():
    from dockyard.cli.stream import Pump

    ours, theirs = socket.socketpair()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    got = []

    def daemon_side():  # echo what arrives until stdin's end, then end the stream
        data = b""
        while chunk := ours.recv(100):
            data += chunk
        got.append(data)
        ours.sendall(frame(1, data.upper()))
        ours.close()

    t = threading.Thread(target=daemon_side)
    t.start()
    os.write(in_w, b"hello")
    os.close(in_w)
    Pump(theirs, b"", tty=False, out_fd=out_w, err_fd=out_w, in_fd=in_r).run()
    t.join(5)
    os.close(out_w)
    assert got == [b"hello"] and os.read(out_r, 100) == b"HELLO"
    os.close(in_r)
    os.close(out_r)
    theirs.close()


def test_pump_detach_keys_leave_the_stream_without_sending_them():
    from dockyard.cli.stream import Pump

    ours, theirs = socket.socketpair()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    os.write(in_w, b"ab\x10c\x10\x11zz")  # a lone ctrl-p passes through; ctrl-p ctrl-q detaches
    pump = Pump(theirs, b"", tty=True, out_fd=out_w, err_fd=out_w, in_fd=in_r,
                detach_keys=b"\x10\x11")
    pump.run()
    assert pump.detached
    ours.settimeout(5)
    got = b""
    while chunk := ours.recv(100):
        got += chunk
    assert got == b"ab\x10c"
    for fd in (in_r, in_w, out_r, out_w):
        os.close(fd)
    ours.close()
    theirs.close()


# ------------------------------------------------------------------------------------------ templates

INSPECTED = {"Config": {"Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "1"}},
             "State": {"Running": True, "Pid": 0},
             "Mounts": [{"Source": "/x", "Destination": "/y"}, {"Source": "/p", "Destination": "/q"}]}


@pytest.mark.parametrize("template, text", [
    ("{{range .Config.Env}}{{.}},{{end}}", "A=1,B=2,"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}", "a=1 b=2 "),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
    ("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", "/x:/y /p:/q "),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if .State.Pid}}pid{{else}}no pid{{end}}", "no pid"),
    ("{{with .State}}{{.Running}}{{end}}", "true"),
    ("{{range .Config.Env}}{{$.State.Running}} {{end}}", "true true "),
    ("{{range .Mounts}}{{end}}{{len .Mounts}}", "2"),
])
def test_inspect_format_blocks(template, text):
    from dockyard.cli.format import Template

    assert Template(template).render(INSPECTED) == text


@pytest.mark.parametrize("template", ["{{range .Config.Env}}x", "{{end}}", "{{else}}",
                                      "{{$nope}}", "{{range .State.Running}}{{end}}"])
def test_inspect_format_block_errors(template):
    from dockyard.cli.format import Template
    from dockyard.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        Template(template).render(INSPECTED)
