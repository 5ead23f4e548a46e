"""dockyard-runtime's command line: Go-style flags (runc's), dispatch, update flags, signals, list."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from dockyard.errors import InvalidArgument
from dockyard.oci.runtime_spec import Cpu, Memory, Pids
from dockyard.runtime.cli import _COMMANDS, _GLOBAL, dispatch, parse_flags
from dockyard.runtime.commands import format_list, parse_signal
from dockyard.runtime.default_spec import SPEC_VERSION, VERSION
from dockyard.runtime.state import ContainerState, StateDir
from dockyard.runtime.update_flags import parse_size, resources_from_flags

EXEC = _COMMANDS["exec"]


def flags_error(args: list[str], table: dict, where: str) -> str:
    with pytest.raises(InvalidArgument) as exc:
        parse_flags(args, table, where)
    return str(exc.value)


# ------------------------------------------------------------------ parse_flags


def test_single_and_double_dash_are_the_same():
    assert parse_flags(["-root", "/a"], _GLOBAL, "global") == ({"root": "/a"}, [])
    assert parse_flags(["--root", "/a"], _GLOBAL, "global") == ({"root": "/a"}, [])


def test_equals_value_and_separate_value():
    assert parse_flags(["--root=/a", "--log", "/l", "list"], _GLOBAL, "global") == (
        {"root": "/a", "log": "/l"}, ["list"])


def test_value_may_contain_equals_and_be_empty():
    opts, rest = parse_flags(["--env=A=B=C", "--cwd=", "id", "sh"], EXEC, "exec")
    assert opts == {"env": ["A=B=C"], "cwd": ""} and rest == ["id", "sh"]


def test_value_may_look_like_a_flag():
    opts, rest = parse_flags(["--cwd", "--tty", "id"], EXEC, "exec")
    assert opts == {"cwd": "--tty"} and rest == ["id"]


@pytest.mark.parametrize("arg, expected", [
    ("--tty", True), ("--tty=true", True), ("--tty=1", True), ("--tty=TRUE", True),
    ("--tty=false", False), ("--tty=0", False), ("--tty=False", False), ("-t=false", False),
])
def test_bool_flags(arg, expected):
    assert parse_flags([arg, "id"], EXEC, "exec") == ({"tty": expected}, ["id"])


@pytest.mark.parametrize("arg", ["--detach=f", "--detach=F"])
def test_go_short_false_spellings(arg):
    assert parse_flags([arg, "id"], EXEC, "exec")[0] == {"detach": False}


def test_go_refuses_non_boolean_values():
    with pytest.raises(InvalidArgument):
        parse_flags(["--detach=maybe", "id"], EXEC, "exec")


def test_repeated_list_flags_accumulate_under_the_long_name():
    opts, rest = parse_flags(["-e", "A=1", "--env", "B=2", "-e=C=3", "id"], EXEC, "exec")
    assert opts == {"env": ["A=1", "B=2", "C=3"]} and rest == ["id"]


def test_repeated_string_flag_last_wins():
    assert parse_flags(["--cwd", "/a", "--cwd", "/b"], EXEC, "exec")[0] == {"cwd": "/b"}


def test_exec_command_line_as_runc_gets_it():
    opts, rest = parse_flags(["-e", "A=1", "-e", "B=2", "--tty", "id", "sh", "-c", "x"], EXEC, "exec")
    assert opts == {"env": ["A=1", "B=2"], "tty": True}
    assert rest == ["id", "sh", "-c", "x"]


def test_short_aliases_map_to_long_names():
    opts, _ = parse_flags(["-u", "1000:1000", "-g", "5", "-g", "6", "-p", "/p.json", "-c", "CAP_KILL",
                           "-d", "id"], EXEC, "exec")
    assert opts == {"user": "1000:1000", "additional-gids": ["5", "6"], "process": "/p.json",
                    "cap": ["CAP_KILL"], "detach": True}
    assert parse_flags(["-b", "/bundle", "id"], _COMMANDS["create"], "create")[0] == {"bundle": "/bundle"}
    assert parse_flags(["-f", "id"], _COMMANDS["delete"], "delete")[0] == {"force": True}
    assert parse_flags(["-a", "id", "KILL"], _COMMANDS["kill"], "kill") == ({"all": True}, ["id", "KILL"])
    assert parse_flags(["-q"], _COMMANDS["list"], "list")[0] == {"quiet": True}
    assert parse_flags(["-r", "/r.json", "id"], _COMMANDS["update"], "update")[0] == {"resources": "/r.json"}
    assert parse_flags(["-v"], _GLOBAL, "global")[0] == {"version": True}
    assert parse_flags(["-h"], _GLOBAL, "global")[0] == {"help": True}


@pytest.mark.parametrize("cmd", ["list", "ps"])
def test_dash_f_is_format_for_list_and_ps(cmd):
    assert parse_flags(["-f", "json"], _COMMANDS[cmd], cmd)[0] == {"format": "json"}


def test_stops_at_the_first_positional():
    opts, rest = parse_flags(["--tty", "id", "--cwd", "/x", "-e", "A=1"], EXEC, "exec")
    assert opts == {"tty": True} and rest == ["id", "--cwd", "/x", "-e", "A=1"]


def test_double_dash_ends_flags():
    assert parse_flags(["--tty", "--", "--cwd", "/x"], EXEC, "exec") == ({"tty": True}, ["--cwd", "/x"])
    assert parse_flags(["--"], EXEC, "exec") == ({}, [])


def test_single_dash_is_positional():
    assert parse_flags(["-", "x"], EXEC, "exec") == ({}, ["-", "x"])


def test_empty_arguments():
    assert parse_flags([], EXEC, "exec") == ({}, [])


def test_combined_short_bools():
    assert parse_flags(["-dt", "id", "sh"], EXEC, "exec") == ({"detach": True, "tty": True}, ["id", "sh"])
    table = {"force": "bool", "f": "=force", "quiet": "bool", "q": "=quiet"}
    assert parse_flags(["-fq"], table, "x")[0] == {"force": True, "quiet": True}


def test_combined_shorts_must_all_be_bools():
    msg = flags_error(["-de", "A=1", "id"], EXEC, "exec")
    assert msg == "exec: flag provided but not defined: -de"


def test_combined_shorts_are_not_split_at_global_level():
    assert "flag provided but not defined: -vh" in flags_error(["-vh"], _GLOBAL, "global")


def test_double_dash_combined_is_not_split():
    assert "not defined: --dt" in flags_error(["--dt", "id"], EXEC, "exec")


@pytest.mark.parametrize("args, where, bad", [
    (["--bogus", "id"], "exec", "--bogus"),
    (["-x", "id"], "exec", "-x"),
    (["--bogus=1"], "global", "--bogus=1"),
])
def test_unknown_flag(args, where, bad):
    table = _GLOBAL if where == "global" else _COMMANDS[where]
    assert flags_error(args, table, where) == f"{where}: flag provided but not defined: {bad}"


def test_missing_value():
    assert flags_error(["--tty", "-e"], EXEC, "exec") == "exec: flag needs an argument: -e"
    assert flags_error(["--root"], _GLOBAL, "global") == "global: flag needs an argument: --root"


def test_commands_without_flags_refuse_any():
    for cmd in ("start", "state", "pause", "resume", "features"):
        assert f"{cmd}: flag provided but not defined" in flags_error(["--force", "id"],
                                                                      _COMMANDS[cmd], cmd)


def test_create_and_run_flags():
    opts, rest = parse_flags(["--bundle", "/b", "--console-socket", "/s", "--pid-file=/p",
                              "--no-pivot", "--preserve-fds", "2", "id"], _COMMANDS["create"], "create")
    assert opts == {"bundle": "/b", "console-socket": "/s", "pid-file": "/p", "no-pivot": True,
                    "preserve-fds": "2"}
    assert rest == ["id"]
    assert parse_flags(["-d", "--keep", "id"], _COMMANDS["run"], "run")[0] == {"detach": True, "keep": True}


# ------------------------------------------------------------------ dispatch


def test_version(capsys):
    assert dispatch(["--version"]) == 0
    assert capsys.readouterr().out == f"dockyard-runtime version {VERSION}\nspec: {SPEC_VERSION}\n"
    assert dispatch(["-v"]) == 0
    assert "spec: 1.2.0" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"], ["help"]])
def test_help(capsys, argv):
    assert dispatch(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dockyard-runtime") and "create" in out and "--root" in out


def test_unknown_command(capsys):
    assert dispatch(["bogus"]) == 1
    err = capsys.readouterr().err
    assert err == "dockyard-runtime: unknown command 'bogus' (see dockyard-runtime --help)\n"


def test_unknown_command_flag(capsys):
    assert dispatch(["exec", "--bogus", "id"]) == 1
    assert capsys.readouterr().err == "dockyard-runtime: exec: flag provided but not defined: --bogus\n"


@pytest.mark.parametrize("argv", [["--bogus", "list"], ["--root"], ["--log-format", "xml", "list"]])
def test_bad_global_flags_are_reported_not_raised(capsys, argv):
    assert dispatch(argv) == 1
    assert capsys.readouterr().err.startswith("dockyard-runtime: ")


def test_systemd_cgroup_is_refused(capsys, tmp_path):
    assert dispatch(["--root", str(tmp_path), "--systemd-cgroup", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dockyard-runtime: --systemd-cgroup: ") and "cgroupfs" in err


def test_log_file_gets_the_error(tmp_path, capsys):
    log = tmp_path / "log.json"
    assert dispatch(["--log", str(log), "--log-format", "json", "bogus"]) == 1
    line = log.read_text()
    assert '"level": "error"' in line and "unknown command 'bogus'" in line
    capsys.readouterr()


def _stopped_state(cid: str) -> ContainerState:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return ContainerState(
        id=cid, bundle="/bundles/" + cid, rootfs="/bundles/rootfs", pid=p.pid, start_time=1,
        created="2024-01-02T03:04:05.000000001Z", owner="", annotations=(("a", "b"),),
        cgroup_paths=(), cgroup_version="v2", cgroup_created=(), namespaces=(),
        config="{}", status="running")


def test_list_and_state_of_a_stopped_container(tmp_path, capsys):
    root = str(tmp_path)
    states = StateDir(root)
    assert dispatch(["--root", root, "list"]) == 0
    assert capsys.readouterr().out == "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
    states.reserve("c1")
    states.save(_stopped_state("c1"))

    assert dispatch(["--root", root, "list", "-q"]) == 0
    assert capsys.readouterr().out == "c1\n"
    assert dispatch(["--root", root, "list", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert '"status": "stopped"' in out and '"pid": 0' in out
    assert dispatch(["--root", root, "list"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == [
        "c1", "0", "stopped", "/bundles/c1", "2024-01-02T03:04:05.000000001Z", "root"]

    assert dispatch(["--root", root, "state", "c1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("{\n  \"ociVersion\": \"1.2.0\",\n  \"id\": \"c1\",\n  \"pid\": 0,\n"
                          "  \"status\": \"stopped\",")
    assert '"annotations": {\n    "a": "b"\n  }' in out


def test_list_bad_format(tmp_path, capsys):
    assert dispatch(["--root", str(tmp_path), "list", "--format", "xml"]) == 1
    assert "list --format 'xml'" in capsys.readouterr().err


def test_state_of_a_missing_container(tmp_path, capsys):
    assert dispatch(["--root", str(tmp_path), "state", "nope"]) == 1
    assert capsys.readouterr().err == "dockyard-runtime: container nope does not exist\n"


def test_commands_needing_one_id(tmp_path, capsys):
    assert dispatch(["--root", str(tmp_path), "start"]) == 1
    assert "start: expects exactly one container id, got 0 arguments" in capsys.readouterr().err
    assert dispatch(["--root", str(tmp_path), "pause", "a", "b"]) == 1
    assert "got 2 arguments" in capsys.readouterr().err


def test_kill_with_an_unknown_signal(tmp_path, capsys):
    assert dispatch(["--root", str(tmp_path), "kill", "c1", "SIGBOGUS"]) == 1
    assert "unknown signal 'SIGBOGUS'" in capsys.readouterr().err


def test_update_with_nothing_to_update(tmp_path, capsys):
    assert dispatch(["--root", str(tmp_path), "update", "c1"]) == 1
    assert "update: nothing to update" in capsys.readouterr().err


def test_delete_force_of_a_missing_container(tmp_path, capsys):
    assert dispatch(["--root", str(tmp_path), "delete", "--force", "nope"]) == 0
    assert dispatch(["--root", str(tmp_path), "delete", "nope"]) == 1
    assert "container nope does not exist" in capsys.readouterr().err


def test_delete_removes_a_half_created_container_directory(tmp_path, capsys):
    StateDir(str(tmp_path)).reserve("half")
    assert dispatch(["--root", str(tmp_path), "delete", "--force", "half"]) == 0
    assert not (tmp_path / "half").exists()


def test_spec_writes_config_json_with_tabs(tmp_path, capsys):
    assert dispatch(["spec", "--bundle", str(tmp_path)]) == 0
    text = (tmp_path / "config.json").read_text()
    assert text.startswith('{\n\t"ociVersion": "1.2.0",') and text.endswith("}\n")
    assert dispatch(["spec", "-b", str(tmp_path)]) == 1
    assert "exists" in capsys.readouterr().err


def test_spec_rootless(tmp_path):
    assert dispatch(["spec", "--rootless", "--bundle", str(tmp_path)]) == 0
    assert '"uidMappings"' in (tmp_path / "config.json").read_text()


def test_features_is_json(capsys):
    assert dispatch(["features"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ociVersionMax"] == SPEC_VERSION and "pid" in doc["linux"]["namespaces"]
    assert "tmpcopyup" in doc["mountOptions"]


# ------------------------------------------------------------------ update flags


@pytest.mark.parametrize("text, value", [
    ("1024", 1024), ("0", 0), ("-1", -1), ("64m", 64 << 20), ("64M", 64 << 20), ("64mb", 64 << 20),
    ("1g", 1 << 30), ("2GB", 2 << 30), ("512k", 512 << 10), ("10b", 10), ("1t", 1 << 40),
    ("1.5k", 1536), (" 8m ", 8 << 20),
])
def test_parse_size(text, value):
    assert parse_size(text, "memory") == value


@pytest.mark.parametrize("text", ["bad", "", "m", "10x", "-2", "-5m", "1mm", "1kbb"])
def test_parse_size_errors(text):
    with pytest.raises(InvalidArgument) as exc:
        parse_size(text, "memory-swap")
    assert str(exc.value) == f"--memory-swap: invalid size {text!r}"


def test_resources_from_flags():
    opts, rest = parse_flags(["--memory", "64m", "--memory-swap=-1", "--cpu-quota", "50000",
                              "--cpu-period", "100000", "--cpuset-cpus", "0-1", "--pids-limit", "20",
                              "c1"], _COMMANDS["update"], "update")
    assert rest == ["c1"]
    res, raw = resources_from_flags(opts)
    assert raw == {"memory": {"limit": 64 << 20, "swap": -1},
                   "cpu": {"quota": 50000, "period": 100000, "cpus": "0-1"},
                   "pids": {"limit": 20}}
    assert res.memory == Memory(limit=64 << 20, swap=-1)
    assert res.cpu == Cpu(quota=50000, period=100000, cpus="0-1")
    assert res.pids == Pids(20) and res.block_io is None and res.devices == ()


def test_resources_from_flags_blkio_and_cpu_shares():
    res, raw = resources_from_flags({"blkio-weight": "300", "cpu-shares": "512", "cpuset-mems": "0"})
    assert raw == {"blockIO": {"weight": 300}, "cpu": {"shares": 512, "mems": "0"}}
    assert res.block_io.weight == 300 and res.cpu.shares == 512 and res.cpu.mems == "0"


def test_empty_flag_values_are_ignored():
    with pytest.raises(InvalidArgument, match="nothing to update"):
        resources_from_flags({"memory": "", "cpuset-cpus": ""})


def test_nothing_to_update():
    with pytest.raises(InvalidArgument) as exc:
        resources_from_flags({})
    assert str(exc.value) == "update: nothing to update (give a limit flag or -r FILE)"


def test_non_numeric_flag():
    with pytest.raises(InvalidArgument) as exc:
        resources_from_flags({"cpu-shares": "lots"})
    assert str(exc.value) == "--cpu-shares: not a number: 'lots'"


def test_values_are_validated_like_the_spec():
    with pytest.raises(InvalidArgument, match=r"blockIO\.weight.*10\.\.1000"):
        resources_from_flags({"blkio-weight": "5"})
    with pytest.raises(InvalidArgument, match=r"memory\.swap"):
        resources_from_flags({"memory": "1g", "memory-swap": "64m"})


def test_intel_rdt_is_refused():
    with pytest.raises(InvalidArgument, match="Intel RDT"):
        resources_from_flags({"l3-cache-schema": "L3:0=ff"})


def test_resources_file_then_flags_override(tmp_path):
    f = tmp_path / "r.json"
    f.write_text('{"memory": {"limit": 1048576, "reservation": 524288}, "pids": {"limit": 5}}')
    res, raw = resources_from_flags({"resources": str(f), "memory": "2m"})
    assert raw == {"memory": {"limit": 2 << 20, "reservation": 524288}, "pids": {"limit": 5}}
    assert res.memory.limit == 2 << 20 and res.memory.reservation == 524288 and res.pids.limit == 5


def test_resources_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"pids": {"limit": 7}}'))
    res, raw = resources_from_flags({"resources": "-"})
    assert raw == {"pids": {"limit": 7}} and res.pids == Pids(7)


def test_resources_file_errors(tmp_path):
    with pytest.raises(InvalidArgument, match=r"^update -r .*/missing.json: No such file"):
        resources_from_flags({"resources": str(tmp_path / "missing.json")})
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InvalidArgument, match=r"^update -r .*bad.json: invalid JSON"):
        resources_from_flags({"resources": str(bad)})
    bad.write_text("[1]")
    with pytest.raises(InvalidArgument, match="expected a JSON object"):
        resources_from_flags({"resources": str(bad)})


# ------------------------------------------------------------------ signals


@pytest.mark.parametrize("text, number", [
    ("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("sigkill", 9), ("9", 9), ("TERM", 15),
    ("SIGTERM", 15), ("HUP", 1), ("SIGUSR1", 10), ("usr2", 12), ("CHLD", 17), ("SIGWINCH", 28),
    ("1", 1), ("64", 64), (" INT ", 2),
])
def test_parse_signal(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["0", "65", "-9", "BOGUS", "SIGBOGUS", "SIG_DFL", "SIG_IGN", "_DFL", "",
                                  "9x"])
def test_bad_signals(text):
    with pytest.raises(InvalidArgument) as exc:
        parse_signal(text)
    assert repr(text) in str(exc.value) and "signal" in str(exc.value)


# ------------------------------------------------------------------ list table


def test_format_list_empty_is_the_header():
    assert format_list([]) == "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"


def test_format_list_columns_like_runc_tabwriter():
    docs = [
        {"id": "web", "pid": 1234, "status": "running", "bundle": "/very/long/bundle/path/for/test",
         "created": "2024-01-02T03:04:05.123456789Z", "owner": ""},
        {"id": "a-much-longer-id", "pid": 0, "status": "stopped", "bundle": "/b",
         "created": "2024-01-02T03:04:05Z", "owner": "alice"},
    ]
    lines = format_list(docs).split("\n")
    assert lines == [
        "ID" + " " * 17 + "PID         STATUS      BUNDLE                            CREATED"
        "                          OWNER",
        "web" + " " * 16 + "1234        running     /very/long/bundle/path/for/test   "
        "2024-01-02T03:04:05.123456789Z   root",
        "a-much-longer-id   0           stopped     /b                                "
        "2024-01-02T03:04:05Z             alice",
        "",
    ]

