"""engine/exec.py without root: the request parser, environment and process spec, dockerd's
error text, and the exec service driving a fake runtime (a script with the runtime's ``exec``
command line) for output, exit codes, stdin, held-back runtime errors and events."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dockyard.engine.exec import (
    DetachScanner, ExecConfig, ExecService, ExecStartFailed, detach_key_bytes, exec_env,
    parse_exec_config, process_spec, start_error)
from dockyard.engine.model import State
from dockyard.engine.runtime_cmd import Runtime
from dockyard.errors import Conflict, InvalidArgument, NotFound

# ------------------------------------------------------------------ parsing


def test_parse_exec_config_reads_docker_fields() -> None:
    cfg = parse_exec_config({
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": False, "DetachKeys": "ctrl-x",
        "Tty": True, "ConsoleSize": [24, 80], "Env": ["A=1"], "Cmd": ["sh", "-c", "x"],
        "Privileged": True, "User": "nobody", "WorkingDir": "/tmp"})
    assert cfg == ExecConfig(cmd=("sh", "-c", "x"), env=("A=1",), user="nobody",
                             working_dir="/tmp", tty=True, privileged=True, attach_stdin=True,
                             attach_stdout=True, attach_stderr=False, detach_keys="ctrl-x",
                             console_size=(24, 80))
    assert parse_exec_config({"Cmd": "true", "Env": None, "ConsoleSize": [0, 0]}) == \
        ExecConfig(cmd=("true",))


@pytest.mark.parametrize("body, message", [
    ({}, "No exec command specified"),
    ({"Cmd": []}, "No exec command specified"),
    ({"Cmd": ["x", 1]}, "Cmd must be a list of strings"),
    ({"Cmd": ["x"], "Env": ["=bad"]}, "invalid environment variable"),
    ({"Cmd": ["x"], "WorkingDir": "rel"}, "needs to be an absolute path"),
    ({"Cmd": ["x"], "User": 5}, "User must be a string"),
    ({"Cmd": ["x"], "ConsoleSize": [1]}, "ConsoleSize must be [height, width]"),
    ({"Cmd": ["x"], "DetachKeys": "ctrl-1"}, "Invalid detach keys"),
])
def test_parse_exec_config_refuses(body: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[")):
        parse_exec_config(body)


def test_detach_keys_as_docker_reads_them() -> None:
    assert detach_key_bytes("ctrl-p,ctrl-q") == b"\x10\x11"
    assert detach_key_bytes("ctrl-@,ctrl-_,a") == b"\x00\x1fa"
    for bad in ("ctrl-", "ctrl-pq", "ab", ""):
        with pytest.raises(InvalidArgument):
            detach_key_bytes(bad)


def test_detach_scanner_holds_a_prefix_and_finds_the_keys() -> None:
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"ab\x10") == (b"ab", False)  # ctrl-p held back
    assert s.feed(b"c") == (b"\x10c", False)  # not the keys: passed on in order
    assert s.feed(b"x\x10\x10") == (b"x\x10", False)  # the second ctrl-p may start them
    assert s.feed(b"\x11rest") == (b"", True)
    assert DetachScanner(b"\x10\x11").feed(b"ls\r\x10\x11") == (b"ls\r", True)


# ------------------------------------------------------------------ environment, process


def test_exec_env_adds_replaces_and_removes() -> None:
    base = ["PATH=/bin", "HOSTNAME=h", "A=1", "B=2"]
    assert exec_env(base, ("A=9", "C=3", "B"), tty=False, config_env=["A=1", "B=2"]) == \
        ["PATH=/bin", "HOSTNAME=h", "A=9", "C=3"]


def test_exec_env_term_follows_the_exec_tty() -> None:
    tty_container = ["PATH=/bin", "TERM=xterm", "A=1"]
    assert "TERM=xterm" not in exec_env(tty_container, (), tty=False, config_env=["A=1"])
    assert exec_env(["PATH=/bin"], (), tty=True, config_env=[]) == ["PATH=/bin", "TERM=xterm"]
    # a TERM the user set on the container stays, TTY or not
    own = ["PATH=/bin", "TERM=vt100"]
    assert exec_env(own, (), tty=True, config_env=["TERM=vt100"]) == own
    assert exec_env(own, (), tty=False, config_env=["TERM=vt100"]) == own


BASE = {"terminal": False, "user": {"uid": 5, "gid": 6, "umask": 18}, "args": ["sleep", "9"],
        "env": ["PATH=/bin"], "cwd": "/srv", "consoleSize": {"height": 1, "width": 1},
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                         "permitted": ["CAP_KILL"]},
        "noNewPrivileges": True, "apparmorProfile": "p"}


def test_process_spec_keeps_the_containers_settings() -> None:
    p = process_spec(BASE, ExecConfig(cmd=("id",)), env=["X=1"], user=None, console_size=None,
                     all_caps=())
    assert p == {"terminal": False, "user": {"uid": 5, "gid": 6, "umask": 18}, "args": ["id"],
                 "env": ["X=1"], "cwd": "/srv", "capabilities": BASE["capabilities"],
                 "noNewPrivileges": True, "apparmorProfile": "p"}


def test_process_spec_applies_the_execs_settings() -> None:
    cfg = ExecConfig(cmd=("sh",), tty=True, privileged=True, working_dir="/tmp")
    p = process_spec(BASE, cfg, env=[], user=(65534, 65534, (65534, 7)), console_size=(30, 100),
                     all_caps=("CAP_KILL", "CAP_SYS_ADMIN"))
    assert p["terminal"] is True and p["cwd"] == "/tmp" and p["args"] == ["sh"]
    assert p["user"] == {"uid": 65534, "gid": 65534, "additionalGids": [65534, 7], "umask": 18}
    everything = ["CAP_KILL", "CAP_SYS_ADMIN"]
    assert p["capabilities"] == {"bounding": everything, "effective": everything,
                                 "permitted": everything}
    assert p["consoleSize"] == {"height": 30, "width": 100}
    assert process_spec({}, ExecConfig(cmd=("x",)), env=[], user=None, console_size=(3, 4),
                        all_caps=())["cwd"] == "/"


def test_start_error_reads_like_dockerd() -> None:
    err = ('dockyard-runtime: exec in container abc: exec: "nosuch": executable file not found '
           'in $PATH\n')
    want = ('OCI runtime exec failed: exec failed: unable to start container process: exec: '
            '"nosuch": executable file not found in $PATH: unknown')
    assert start_error(err, "abc") == want
    runc = ('time="2026-01-01T00:00:00Z" level=error msg="exec failed: unable to start container '
            'process: exec: \\"nosuch\\": executable file not found in $PATH"\n')
    assert start_error(runc, "abc") == want
    assert start_error("", "abc").startswith("OCI runtime exec failed: exec failed: ")


# ------------------------------------------------------------------ the service, fake runtime

FAKE_RUNTIME = """\
import json, os, sys
argv = sys.argv[1:]
assert argv[0] == "--root" and argv[2] == "exec", argv
opts, rest = {}, argv[3:]
while rest[0].startswith("--"):
    opts[rest[0]] = rest[1]
    rest = rest[2:]
with open(opts["--process"]) as f:
    process = json.load(f)
with open(os.path.join(os.path.dirname(sys.argv[0]), "last-process.json"), "w") as f:
    json.dump(process, f)
if process["args"][0] == "nosuch":
    sys.stderr.write('dockyard-runtime: exec in container ' + rest[0] + ': exec: "nosuch": '
                     'executable file not found in $PATH\\n')
    sys.exit(1)
pid = os.fork()
if pid == 0:
    os.environ.clear()
    os.environ.update(e.split("=", 1) for e in process["env"])
    os.execvp(process["args"][0], process["args"])
with open(opts["--pid-file"], "w") as f:
    f.write(str(pid))
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def _service(tmp: Path, status: str = "running") -> tuple[ExecService, SimpleNamespace, list]:
    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp / "fake-runtime"
    script.write_text(f"#!{sys.executable}\n{FAKE_RUNTIME}")
    script.chmod(0o755)
    bundle = tmp / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(
        {"process": {"args": ["sleep"], "env": ["PATH=/usr/bin:/bin", "KEEP=1"], "cwd": "/"}}))
    c = SimpleNamespace(id="c1", state=State(status=status), config={"Env": ["KEEP=1"]},
                        runtime="fake", req=SimpleNamespace(run=SimpleNamespace(group_add=())))
    events: list[tuple[str, dict]] = []

    def get(ref: str) -> SimpleNamespace:
        if ref not in svc.containers:
            raise NotFound(f"No such container: {ref}")
        return svc.containers[ref]

    svc = SimpleNamespace(
        containers={"c1": c}, get=get,
        publish=lambda c, action, **attrs: events.append((action, attrs)),
        runtimes={"fake": Runtime(name="fake", path=str(script), root=str(tmp / "state"))},
        store=SimpleNamespace(container=lambda cid: str(bundle)))
    return ExecService(svc), c, events


def _collect() -> tuple[list[tuple[int, bytes]], object]:
    got: list[tuple[int, bytes]] = []

    async def sink(stream: int, data: bytes) -> None:
        got.append((stream, data))

    return got, sink


def _joined(got: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(d for s, d in got if s == stream)


def test_start_pumps_output_and_returns_the_exit_code(tmp_path: Path) -> None:
    async def run() -> None:
        execs, c, events = _service(tmp_path)
        s = execs.create("c1", {"Cmd": ["sh", "-c", "echo out $KEEP $E; echo err >&2; exit 3"],
                                "Env": ["E=2"], "AttachStdout": True, "AttachStderr": True})
        assert c.exec_ids == [s.id]
        got, sink = _collect()
        assert await execs.start(s.id, detach=False, output=sink) == 3
        assert _joined(got, 1) == b"out 1 2\n" and _joined(got, 2) == b"err\n"
        info = execs.inspect(s.id)
        assert info["ExitCode"] == 3 and info["Running"] is False and info["Pid"] > 0
        assert c.exec_ids == []
        assert [a for a, _ in events] == ["exec_create: sh -c echo out $KEEP $E; echo err >&2; "
                                          "exit 3", "exec_start: sh -c echo out $KEEP $E; echo "
                                          "err >&2; exit 3", "exec_die"]
        assert events[-1][1] == {"execID": s.id, "exitCode": "3"}
        with pytest.raises(Conflict, match="has already run"):
            await execs.start(s.id, detach=False, output=sink)

    asyncio.run(run())


def test_a_failed_start_is_126_with_dockerds_message_and_no_stderr(tmp_path: Path) -> None:
    async def run() -> None:
        execs, _, events = _service(tmp_path)
        s = execs.create("c1", {"Cmd": ["nosuch"], "AttachStdout": True, "AttachStderr": True})
        got, sink = _collect()
        assert await execs.start(s.id, detach=False, output=sink) == 126
        assert got == [(1, b'OCI runtime exec failed: exec failed: unable to start container '
                           b'process: exec: "nosuch": executable file not found in $PATH: '
                           b'unknown\r\n')]
        assert events[-1] == ("exec_die", {"execID": s.id, "exitCode": "126"})
        d = execs.create("c1", {"Cmd": ["nosuch"]})
        with pytest.raises(ExecStartFailed, match="OCI runtime exec failed"):
            await execs.start(d.id, detach=True)
        assert execs.inspect(d.id)["ExitCode"] == 126

    asyncio.run(run())


def test_stdin_reaches_the_process_only_when_attached(tmp_path: Path) -> None:
    async def run() -> None:
        execs, _, _ = _service(tmp_path)
        for attach, want in ((True, b"hi\nthere\n"), (False, b"")):
            s = execs.create("c1", {"Cmd": ["cat"], "AttachStdin": attach,
                                    "AttachStdout": True})
            q: asyncio.Queue[bytes | None] = asyncio.Queue()
            for item in (b"hi\n", b"there\n", None):
                q.put_nowait(item)
            got, sink = _collect()
            assert await execs.start(s.id, detach=False, output=sink, stdin=q) == 0
            assert _joined(got, 1) == want

    asyncio.run(run())


def test_unattached_streams_are_not_sent(tmp_path: Path) -> None:
    async def run() -> None:
        execs, _, _ = _service(tmp_path)
        s = execs.create("c1", {"Cmd": ["sh", "-c", "echo out; echo err >&2"],
                                "AttachStderr": True})
        got, sink = _collect()
        await execs.start(s.id, detach=False, output=sink)
        assert got == [(2, b"err\n")]

    asyncio.run(run())


def test_detached_start_returns_while_the_process_runs(tmp_path: Path) -> None:
    async def run() -> None:
        execs, c, _ = _service(tmp_path)
        s = execs.create("c1", {"Cmd": ["sh", "-c", "read x; exit 4"]})
        assert await execs.start(s.id, detach=True) is None
        assert execs.inspect(s.id)["Running"] is True and c.exec_ids == [s.id]
        assert await s.done == 4  # stdin is /dev/null: read fails at once
        assert execs.inspect(s.id)["ExitCode"] == 4

    asyncio.run(run())


def test_create_needs_a_running_container(tmp_path: Path) -> None:
    async def run() -> None:
        for status, message in (("exited", "Container c1 is not running"),
                                ("created", "Container c1 is not running"),
                                ("paused", "Container c1 is paused, unpause the container"),
                                ("restarting", "Container c1 is restarting")):
            execs, _, _ = _service(tmp_path / status, status)
            with pytest.raises(Conflict, match=message):
                execs.create("c1", {"Cmd": ["true"]})
        execs, c, _ = _service(tmp_path / "gone")
        with pytest.raises(NotFound, match="No such container: nope"):
            execs.create("nope", {"Cmd": ["true"]})
        with pytest.raises(NotFound, match="No such exec instance: nope"):
            execs.inspect("nope")
        s = execs.create("c1", {"Cmd": ["true"]})
        c.state = State(status="exited")
        with pytest.raises(Conflict, match="is not running"):
            await execs.start(s.id, detach=True)

    asyncio.run(run())


def test_records_go_when_their_container_is_removed(tmp_path: Path) -> None:
    async def run() -> None:
        execs, _, _ = _service(tmp_path)
        s = execs.create("c1", {"Cmd": ["true"]})
        assert execs.inspect(s.id)["ProcessConfig"] == {
            "arguments": [], "entrypoint": "true", "privileged": False, "tty": False}
        execs.svc.containers.clear()
        with pytest.raises(NotFound):
            execs.inspect(s.id)

    asyncio.run(run())


def test_ended_records_go_after_a_while(tmp_path: Path) -> None:
    async def run() -> None:
        from dockyard.engine import exec as exec_mod

        execs, _, _ = _service(tmp_path)
        s = execs.create("c1", {"Cmd": ["true"]})
        await execs.start(s.id, detach=False, output=_collect()[1])
        assert execs.inspect(s.id)["ExitCode"] == 0
        s.ended_at -= exec_mod.KEEP_EXITED + 1
        with pytest.raises(NotFound):
            execs.inspect(s.id)

    asyncio.run(run())


def test_the_process_file_has_the_execs_settings(tmp_path: Path) -> None:
    async def run() -> None:
        execs, _, _ = _service(tmp_path)
        rootfs = tmp_path / "bundle" / "rootfs"
        (rootfs / "etc").mkdir()
        (rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                               "nobody:x:65534:65534::/home:/bin/false\n")
        (rootfs / "etc" / "group").write_text("nogroup:x:65534:\n")
        s = execs.create("c1", {"Cmd": ["true"], "User": "nobody", "WorkingDir": "/tmp",
                                "Env": ["X=1"]})
        await execs.start(s.id, detach=False, output=_collect()[1])
        p = json.loads((tmp_path / "last-process.json").read_text())
        assert p["args"] == ["true"] and p["cwd"] == "/tmp"
        assert p["user"] == {"uid": 65534, "gid": 65534, "additionalGids": [65534]}
        assert p["env"] == ["PATH=/usr/bin:/bin", "KEEP=1", "X=1"]
        assert p["terminal"] is False

    asyncio.run(run())
