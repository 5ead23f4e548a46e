"""Pure parts of the daemon and API: ``-H`` parsing (loopback-only TCP), config precedence (flags >
file > defaults), API version checks with docker's messages, docker's filter and boolean forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

from dockyard.api.app import check_version  # noqa: E402
from dockyard.api.body import query_bool as _bool  # noqa: E402
from dockyard.api.images import parse_filters  # noqa: E402
from dockyard.daemon.config import Listener, build_config, parse_host  # noqa: E402
from dockyard.errors import InvalidArgument  # noqa: E402


def test_parse_host() -> None:
    assert parse_host("unix:///run/d.sock") == Listener("unix", path="/run/d.sock")
    assert parse_host("tcp://127.0.0.1:2375") == Listener("tcp", host="127.0.0.1", port=2375)
    assert parse_host("tcp://[::1]:2375") == Listener("tcp", host="::1", port=2375)
    for bad in ("tcp://0.0.0.0:2375", "tcp://10.1.2.3:1", "tcp://example.com:80"):
        with pytest.raises(InvalidArgument, match="only loopback"):
            parse_host(bad)
    for bad in ("unix://rel.sock", "tcp://127.0.0.1", "fd://", "/run/x.sock"):
        with pytest.raises(InvalidArgument):
            parse_host(bad)


def test_config_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"data-root": "/file/root", "exec-root": "/file/run",
                               "log-level": "debug"}))
    c = build_config(["--config", str(cfg), "--root", "/flag/root"])
    assert (c.root, c.exec_root, c.log_level) == ("/flag/root", "/file/run", "debug")
    assert c.listeners == (Listener("unix", path="/file/run/dockyard.sock"),)
    c = build_config(["--config", str(cfg), "-H", "unix:///a.sock", "-H", "tcp://127.0.0.1:9"])
    assert [str(x) for x in c.listeners] == ["unix:///a.sock", "tcp://127.0.0.1:9"]
    with pytest.raises(InvalidArgument, match="does not exist"):
        build_config(["--config", str(tmp_path / "absent.json")])
    cfg.write_text(json.dumps({"bogus": 1}))
    with pytest.raises(InvalidArgument, match="unknown keys: bogus"):
        build_config(["--config", str(cfg)])


def test_check_version() -> None:
    for ok in ("1.24", "1.41", "1.45"):
        assert check_version(ok) is None
    assert check_version("1.46") == ("client version 1.46 is too new. Maximum supported API "
                                     "version is 1.45")
    assert "is too old. Minimum supported API version is 1.24" in (check_version("1.23") or "")


def test_filters_and_booleans() -> None:
    assert parse_filters('{"dangling":{"true":true},"reference":{"busy*":true}}') == {
        "dangling": ["true"], "reference": ["busy*"]}
    assert parse_filters('{"dangling":["false"]}') == {"dangling": ["false"]}
    assert parse_filters(None) == {}
    for bad in ("[1]", "{", '{"a":1}'):
        with pytest.raises(InvalidArgument):
            parse_filters(bad)
    assert [_bool(x) for x in (None, "", "0", "false", "1", "true", "yes")] == [
        False, False, False, False, True, True, True]


def test_another_exec_root_gets_its_own_bridge_and_firewall_table():
    from dockyard.daemon.config import build_config

    a = build_config(["--exec-root", "/run/dockyard"])
    b = build_config(["--exec-root", "/tmp/x/exec"])
    c = build_config(["--exec-root", "/tmp/y/exec", "-b", "br-mine", "--bip", "10.9.0.1/24"])
    assert (a.bridge, a.firewall_table) == ("dockyard0", "dockyard")
    assert b.bridge.startswith("dyb") and len(b.bridge) <= 15
    assert b.firewall_table == "dockyard_" + b.bridge[3:]
    assert c.bridge == "br-mine" and c.bip == "10.9.0.1/24"
