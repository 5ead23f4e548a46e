"""``dockyard network`` without a daemon: the create body docker's CLI sends and the ls table."""

from __future__ import annotations

import pytest

from dockyard.cli.common import UsageError
from dockyard.cli.networks import create_body, render_networks


def test_create_body_has_one_ipam_config() -> None:
    body = create_body({"subnet": ["10.1.0.0/24"], "gateway": ["10.1.0.9"], "internal": True,
                        "label": ["a=b", "flag"], "opt": ["k=v"]}, "n1")
    assert body["Name"] == "n1" and body["Driver"] == "bridge" and body["Internal"] is True
    assert body["IPAM"]["Config"] == [{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.9"}]
    assert body["Labels"] == {"a": "b", "flag": ""} and body["Options"] == {"k": "v"}
    assert create_body({}, "n2")["IPAM"]["Config"] == []


def test_create_body_errors() -> None:
    with pytest.raises(UsageError, match="no matching subnet for gateway 10.0.0.1"):
        create_body({"gateway": ["10.0.0.1"]}, "n")
    with pytest.raises(UsageError, match="key value pair"):
        create_body({"opt": ["novalue"]}, "n")


def test_ls_table_and_quiet() -> None:
    nets = [{"Id": "a" * 64, "Name": "bridge", "Driver": "bridge", "Scope": "local"},
            {"Id": "b" * 64, "Name": "none", "Driver": "null", "Scope": "local"}]
    out = render_networks(nets, False, "", True).splitlines()
    assert out[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert out[2].split() == ["b" * 12, "none", "null", "local"]
    assert render_networks(nets, True, "", False) == "a" * 64 + "\n" + "b" * 64 + "\n"
    assert render_networks(nets, False, "{{.Name}}:{{.IPv6}}", True) == \
        "bridge:false\nnone:false\n"
