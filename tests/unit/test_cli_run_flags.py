"""``dockyard run``/``create`` flags → the create request, compared with what the docker CLI 28
sends for the same argv.

The golden file holds, for ~140 argvs, the request path and body the real ``docker`` CLI sent to a
listener on a unix socket (answering ``/_ping`` with ``Api-Version: 1.45``), stored as one base
body (``docker create busybox``) plus each case's changes (``HostConfig.X`` keys one level down).
The environment of that capture had ``HOME=/root``, its working directory was /tmp/cap, and the
files named in the argvs had the contents of ``FILES`` below.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from dockyard.cli.client import encode_query
from dockyard.cli.common import CommandError, UsageError
from dockyard.cli.run_flags import parse_flags, parse_run

GOLDEN = json.loads((Path(__file__).parent / "golden_cli_run_bodies.json").read_text())
FILES = {
    "/tmp/cap/envfile": "A=1\n# comment\n\nB\nC=x y\n HOME\n",
    "/tmp/cap/labelfile": "l1=v1\nl2\n",
    "/tmp/cap/seccomp.json": '{ "defaultAction": "SCMP_ACT_ALLOW",  "syscalls": [] }\n',
}
ENV = {"HOME": "/root"}


def _read(path: str) -> str:
    if path not in FILES:
        raise FileNotFoundError(path)
    return FILES[path]


def _parse(argv, command="create", **kw):
    kw.setdefault("env", ENV)
    return parse_run(argv, command, read_file=_read, cwd="/tmp/cap", **kw)


def _expected(changes: dict) -> dict:
    body = copy.deepcopy(GOLDEN["base"])
    for key, value in changes.items():
        target, _, sub = key.partition(".")
        holder, name = (body[target], sub) if sub else (body, target)
        if value == "<absent>":
            holder.pop(name, None)
        else:
            holder[name] = value
    return body


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: " ".join(c["argv"])[:80])
def test_body_matches_docker_cli(case):
    command, *argv = case["argv"]
    req = _parse(argv, command)
    assert "/v1.45/containers/create" + encode_query(req.query) == case["path"]
    assert req.body == _expected(case["changes"])


def test_options_around_the_create_call():
    o = _parse(["-dit", "--rm", "--sig-proxy=false", "--detach-keys", "ctrl-a",
                "--cidfile", "/tmp/c", "--pull", "never", "busybox"], "run").options
    assert (o.detach, o.interactive, o.tty, o.rm, o.sig_proxy, o.detach_keys, o.cidfile,
            o.pull) == (True, True, True, True, False, "ctrl-a", "/tmp/c", "never")
    assert not (o.attach_stdin or o.attach_stdout or o.attach_stderr)
    o = _parse(["-i", "busybox", "cat"], "run").options
    assert (o.attach_stdin, o.attach_stdout, o.attach_stderr, o.sig_proxy) == (True, True, True,
                                                                                True)


def test_flags_after_the_image_belong_to_the_command():
    req = _parse(["busybox", "ls", "-la", "--rm"], "run")
    assert req.body["Cmd"] == ["ls", "-la", "--rm"]
    assert req.body["HostConfig"]["AutoRemove"] is False


def test_console_size_is_sent_with_a_tty_only():
    assert _parse(["-t", "busybox"], "run", console_size=(40, 120)).body["HostConfig"][
        "ConsoleSize"] == [40, 120]
    assert _parse(["busybox"], "run", console_size=(40, 120)).body["HostConfig"][
        "ConsoleSize"] == [0, 0]


@pytest.mark.parametrize("argv, message", [
    (["--bogus", "busybox"], "unknown flag: --bogus"),
    (["-d", "busybox"], "unknown shorthand flag: 'd' in -d"),
    (["--sig-proxy=false", "busybox"], "unknown flag: --sig-proxy"),
    (["--name"], "flag needs an argument: --name"),
    (["-e"], "flag needs an argument: 'e' in -e"),
    (["-m", "1x", "busybox"], 'invalid argument "1x" for "-m, --memory" flag: invalid suffix: \'x\''),
    (["--cpus", "1.0000000001", "busybox"],
     'invalid argument "1.0000000001" for "--cpus" flag: value is too precise'),
    (["--ulimit", "foo=1", "busybox"],
     'invalid argument "foo=1" for "--ulimit" flag: invalid ulimit type: foo'),
    (["--stop-timeout", "x", "busybox"], 'invalid argument "x" for "--stop-timeout" flag: '
     'strconv.ParseInt: parsing "x": invalid syntax'),
    (["--restart", "on-failure:x", "busybox"],
     "dockyard: invalid restart policy format: maximum retry count must be an integer"),
    (["--rm", "--restart", "always", "busybox"],
     "dockyard: conflicting options: cannot specify both --restart and --rm"),
    (["--no-healthcheck", "--health-cmd", "x", "busybox"],
     "dockyard: --no-healthcheck conflicts with --health-* options"),
    (["--health-interval", "-1s", "busybox"], "dockyard: --health-interval cannot be negative"),
    (["--health-retries", "-1", "busybox"], "dockyard: --health-retries cannot be negative"),
    (["-p", "99999", "busybox"], "dockyard: invalid containerPort: 99999"),
    (["--pid", "bogus", "busybox"], "dockyard: --pid: invalid PID mode"),
    (["--uts", "private", "busybox"], "dockyard: --uts: invalid UTS mode"),
    (["--cgroupns", "bogus", "busybox"], "dockyard: --cgroupns: invalid CGROUP mode"),
    (["--userns", "bogus", "busybox"], "dockyard: --userns: invalid USER mode"),
    (["--mount", "type=volume", "busybox"],
     'invalid argument "type=volume" for "--mount" flag: target is required'),
    (["--mount", "bogus", "busybox"], 'invalid argument "bogus" for "--mount" flag: invalid '
     "field 'bogus' must be a key=value pair"),
    (["--device-read-bps", "/dev/sda", "busybox"],
     'invalid argument "/dev/sda" for "--device-read-bps" flag: bad format: /dev/sda'),
    (["-a", "bogus", "busybox"], 'invalid argument "bogus" for "-a, --attach" flag: valid '
     "streams are STDIN, STDOUT and STDERR"),
    (["--pull", "bogus", "busybox"], "dockyard: invalid pull option: 'bogus': must be one of "
     '"always", "missing" or "never"'),
    (["--add-host", "bad", "busybox"],
     'invalid argument "bad" for "--add-host" flag: bad format for add-host: "bad"'),
    (["--add-host", "h:notip", "busybox"],
     'invalid argument "h:notip" for "--add-host" flag: invalid IP address in add-host: "notip"'),
    (["--env-file", "/nonexistent", "busybox"],
     "dockyard: open /nonexistent: no such file or directory"),
    (["-l", "=x", "busybox"], 'invalid argument "=x" for "-l, --label" flag: invalid label '
     "'=x': empty name"),
    (["-e", "=x", "busybox"], 'invalid argument "=x" for "-e, --env" flag: invalid environment '
     "variable: =x"),
    (["-v", "", "busybox"], "dockyard: invalid empty volume spec"),
    (["-v", "/a:/b:c:d:e", "busybox"], "dockyard: invalid spec: /a:/b:c:d:e: too many colons"),
    (["--rm=maybe", "busybox"], 'invalid argument "maybe" for "--rm" flag: strconv.ParseBool: '
     'parsing "maybe": invalid syntax'),
])
def test_flag_errors_are_dockers(argv, message):
    with pytest.raises(UsageError) as e:
        _parse(argv, "create")
    assert str(e.value) == message


def test_errors_with_exit_code_one():
    with pytest.raises(CommandError, match="requires at least 1 argument"):
        _parse([], "run")
    with pytest.raises(CommandError, match="cannot specify both --attach and --detach"):
        _parse(["-a", "stdout", "-d", "busybox"], "run")


def test_bundled_short_flags_and_attached_values():
    values, rest = parse_flags(["-dit", "-eA=1", "-eB", "-w/x", "img", "-q"],
                               {"detach": ("d", "bool"), "interactive": ("i", "bool"),
                                "tty": ("t", "bool"), "env": ("e", "list"),
                                "workdir": ("w", "str"), "quiet": ("q", "bool")})
    assert values == {"detach": True, "interactive": True, "tty": True, "env": ["A=1", "B"],
                      "workdir": "/x"}
    assert rest == ["img", "-q"]
    values, rest = parse_flags(["a", "-q", "b"], {"quiet": ("q", "bool")}, interspersed=True)
    assert (values, rest) == ({"quiet": True}, ["a", "b"])
