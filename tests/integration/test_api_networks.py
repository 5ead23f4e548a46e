"""Networks through a real daemon: the /networks API driven by the real docker CLI, the dockyard
CLI and raw HTTP. Records and addresses only: no bridge or veth is made by these routes (the
driver's tests cover the kernel side)."""

from __future__ import annotations

import json
import re
import shutil
import threading
from urllib.parse import quote

import pytest
from daemon_util import Daemon, daemon_fixture

needs_docker = pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")

daemon = daemon_fixture(scope="module", busybox=True, name="daemon")


def _names(d: Daemon, *flt: str) -> list[str]:
    args = [a for f in flt for a in ("--filter", f)]
    return d.cli("network", "ls", "--format", "{{.Name}}", *args).stdout.split()


# ------------------------------------------------------------------ docker CLI

@needs_docker
def test_docker_ls_shows_the_predefined_networks(daemon: Daemon) -> None:
    lines = daemon.docker("network", "ls").stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = {tuple(line.split()[1:]) for line in lines[1:]}
    assert {("bridge", "bridge", "local"), ("host", "host", "local"),
            ("none", "null", "local")} <= rows
    [bridge] = json.loads(daemon.docker("network", "inspect", "bridge").stdout)
    # dockyard0 for the daemon on the default exec root; a test daemon (its own exec root)
    # gets its own bridge, dyb<hash>, so that daemons never share one
    assert bridge["Options"]["com.docker.network.bridge.name"].startswith("dyb")
    [cfg] = bridge["IPAM"]["Config"]
    assert cfg["Gateway"].endswith(".1") and cfg["Subnet"].endswith("/16")


@needs_docker
def test_docker_create_inspect_ls_rm(daemon: Daemon) -> None:
    nid = daemon.docker("network", "create", "--subnet", "10.201.0.0/24", "--gateway",
                        "10.201.0.254", "--ip-range", "10.201.0.128/25", "--internal",
                        "--label", "team=net", "-o", "com.docker.network.bridge.name=dy-test0",
                        "dk-one").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", nid)
    [info] = json.loads(daemon.docker("network", "inspect", "dk-one").stdout)
    assert info["Id"] == nid and info["Name"] == "dk-one" and info["Driver"] == "bridge"
    assert info["Scope"] == "local" and info["Internal"] is True
    assert info["IPAM"]["Config"] == [{"Subnet": "10.201.0.0/24", "IPRange": "10.201.0.128/25",
                                       "Gateway": "10.201.0.254"}]
    assert info["Labels"] == {"team": "net"}
    assert info["Options"] == {"com.docker.network.bridge.name": "dy-test0"}
    assert info["Containers"] == {}
    fmt = daemon.docker("network", "inspect", "-f", "{{.Name}} {{.Internal}}", nid[:10]).stdout
    assert fmt == "dk-one true\n"
    q = daemon.docker("network", "ls", "-q", "--filter", "label=team=net").stdout.split()
    assert q == [nid[:12]]
    assert daemon.docker("network", "ls", "-q", "--no-trunc", "-f", "name=dk-one").stdout \
        .split() == [nid]
    assert daemon.docker("network", "rm", "dk-one").stdout == "dk-one\n"
    p = daemon.docker("network", "inspect", "dk-one", check=False)
    assert p.returncode == 1 and "network dk-one not found" in p.stderr


@needs_docker
def test_docker_create_picks_a_free_subnet(daemon: Daemon) -> None:
    daemon.docker("network", "create", "dk-auto1")
    daemon.docker("network", "create", "dk-auto2")
    try:
        subnets = [json.loads(daemon.docker("network", "inspect", n).stdout)[0]["IPAM"]["Config"]
                   [0]["Subnet"] for n in ("bridge", "dk-auto1", "dk-auto2")]
        assert len(set(subnets)) == 3
    finally:
        daemon.docker("network", "rm", "dk-auto1", "dk-auto2")


@needs_docker
def test_docker_errors(daemon: Daemon) -> None:
    daemon.docker("network", "create", "--subnet", "10.202.0.0/16", "dk-err")
    try:
        cases = [
            (("network", "create", "--subnet", "10.202.3.0/24", "dk-overlap"),
             "Pool overlaps with other one on this address space"),
            (("network", "create", "--subnet", "10.203.0.0", "dk-badcidr"),
             "invalid CIDR address: 10.203.0.0"),
            (("network", "create", "--subnet", "10.204.0.0/24", "--gateway", "10.205.0.1",
              "dk-gw"), "no matching subnet for gateway 10.205.0.1"),
            (("network", "create", "dk-err"), "network with name dk-err already exists"),
            (("network", "inspect", "dk-nope"), "network dk-nope not found"),
            (("network", "rm", "dk-nope"), "network dk-nope not found"),
            (("network", "rm", "bridge"), "bridge is a pre-defined network and cannot be "
                                          "removed"),
            (("network", "rm", "host"), "host is a pre-defined network and cannot be removed"),
        ]
        for args, text in cases:
            p = daemon.docker(*args, check=False)
            assert p.returncode != 0 and text in p.stderr, (args, p.stderr)
        # nothing half-made
        assert not {"dk-overlap", "dk-badcidr", "dk-gw"} & set(_names(daemon))
    finally:
        daemon.docker("network", "rm", "dk-err")


@needs_docker
def test_docker_prune(daemon: Daemon) -> None:
    daemon.docker("network", "create", "--label", "keep=1", "dk-keep")
    daemon.docker("network", "create", "dk-prune")
    try:
        out = daemon.docker("network", "prune", "-f", "--filter", "label!=keep").stdout
        assert out == "Deleted Networks:\ndk-prune\n\n"
        assert "dk-keep" in _names(daemon) and "bridge" in _names(daemon)
    finally:
        daemon.docker("network", "rm", "dk-keep")


@needs_docker
def test_docker_connect_disconnect(daemon: Daemon) -> None:
    daemon.docker("network", "create", "--subnet", "10.206.0.0/24", "dk-conn")
    cid = daemon.docker("create", "--name", "dk-c1", "busybox", "true").stdout.strip()
    try:
        daemon.docker("network", "connect", "--alias", "web", "--ip", "10.206.0.9", "dk-conn",
                      "dk-c1")
        [info] = json.loads(daemon.docker("network", "inspect", "dk-conn").stdout)
        ep = info["Containers"][cid]
        assert ep["Name"] == "dk-c1" and ep["IPv4Address"] == "10.206.0.9/24"
        assert ep["MacAddress"] == "02:42:0a:ce:00:09"
        p = daemon.docker("network", "connect", "dk-conn", "dk-c1", check=False)
        assert p.returncode != 0 and "already exists in network dk-conn" in p.stderr
        p = daemon.docker("network", "rm", "dk-conn", check=False)
        assert p.returncode != 0 and "has active endpoints" in p.stderr
        daemon.docker("network", "disconnect", "dk-conn", "dk-c1")
        p = daemon.docker("network", "disconnect", "dk-conn", "dk-c1", check=False)
        assert p.returncode != 0 and "is not connected to network dk-conn" in p.stderr
        daemon.docker("network", "disconnect", "-f", "dk-conn", "dk-c1")
        # the address is free again: the lowest one is handed out first
        daemon.docker("network", "connect", "dk-conn", "dk-c1")
        [info] = json.loads(daemon.docker("network", "inspect", "dk-conn").stdout)
        assert info["Containers"][cid]["IPv4Address"] == "10.206.0.2/24"
        # removing the container releases its endpoint
        daemon.docker("rm", "dk-c1")
        [info] = json.loads(daemon.docker("network", "inspect", "dk-conn").stdout)
        assert info["Containers"] == {}
    finally:
        daemon.docker("rm", "-f", "dk-c1", check=False)
        daemon.docker("network", "rm", "dk-conn")


# ------------------------------------------------------------------ API

def test_api_concurrent_connects_get_unique_addresses(daemon: Daemon) -> None:
    nid = daemon.json("POST", "/networks/create", {"Name": "api-many", "IPAM": {"Config": [
        {"Subnet": "10.207.0.0/24"}]}}, status=201)["Id"]
    ids = [daemon.json("POST", f"/containers/create?name=api-many-{i}",
                       {"Image": "busybox", "Cmd": ["true"]}, status=201)["Id"]
           for i in range(30)]
    results: list[int] = []

    def connect(cid: str) -> None:
        status, _, _ = daemon.request("POST", f"/networks/{nid}/connect",
                                      json.dumps({"Container": cid}).encode(),
                                      {"Content-Type": "application/json"})
        results.append(status)

    try:
        threads = [threading.Thread(target=connect, args=(c,)) for c in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 30
        info = daemon.json("GET", f"/networks/{nid}")
        ips = [c["IPv4Address"] for c in info["Containers"].values()]
        assert len(ips) == 30 == len(set(ips))
        assert sorted(ips, key=lambda a: int(a.split(".")[3].split("/")[0]))[0] == \
            "10.207.0.2/24"
    finally:
        for c in ids:
            daemon.request("DELETE", f"/containers/{c}?force=1")
        daemon.request("DELETE", f"/networks/{nid}")


def test_api_shapes_and_statuses(daemon: Daemon) -> None:
    doc = daemon.json("POST", "/v1.41/networks/create", {"Name": "api-shape"}, status=201)
    assert set(doc) == {"Id", "Warning"} and doc["Warning"] == ""
    listed = daemon.json("GET", "/networks?filters=" + quote(json.dumps({"type": {"custom": True}})))
    assert [n["Name"] for n in listed] == ["api-shape"]
    daemon.json("GET", "/networks/nope", status=404)
    daemon.json("DELETE", "/networks/bridge", status=403)
    daemon.json("POST", "/networks/create", {"Name": "api-shape"}, status=409)
    daemon.json("POST", "/networks/create", {"Name": "x", "IPAM": {"Config": [
        {"Subnet": "10.1"}]}}, status=400)
    daemon.json("POST", "/networks/create", {"Name": "x", "Driver": "host"}, status=403)
    daemon.json("GET", "/networks?filters=" + quote(json.dumps({"bogus": ["1"]})), status=400)
    daemon.json("POST", "/networks/host/connect", {"Container": "whatever"}, status=403)
    code, _, _ = daemon.request("DELETE", f"/networks/{doc['Id']}")
    assert code == 204
    assert daemon.json("POST", "/networks/prune") == {"NetworksDeleted": []}


def test_networks_survive_a_restart(daemon: Daemon) -> None:
    before = {n["Name"]: n["Id"] for n in daemon.json("GET", "/networks")}
    daemon.json("POST", "/networks/create", {"Name": "api-persist"}, status=201)
    try:
        daemon.restart()
        after = {n["Name"]: n["Id"] for n in daemon.json("GET", "/networks")}
        assert {k: after[k] for k in before} == before  # pre-defined ids stay
        assert "api-persist" in after
    finally:
        daemon.request("DELETE", "/networks/api-persist")


# ------------------------------------------------------------------ dockyard CLI

def test_dockyard_cli(daemon: Daemon) -> None:
    nid = daemon.cli("network", "create", "--subnet", "10.208.0.0/24", "--label", "a=b",
                     "cli-net").stdout.strip()
    try:
        out = daemon.cli("network", "ls").stdout.splitlines()
        assert out[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        assert [nid[:12], "cli-net", "bridge", "local"] in [line.split() for line in out[1:]]
        assert daemon.cli("network", "ls", "-q", "-f", "label=a=b").stdout == nid[:12] + "\n"
        assert daemon.cli("network", "ls", "-q", "--no-trunc", "-f", "name=cli-net").stdout \
            == nid + "\n"
        [info] = json.loads(daemon.cli("network", "inspect", "cli-net").stdout)
        assert info["IPAM"]["Config"] == [{"Subnet": "10.208.0.0/24", "Gateway": "10.208.0.1"}]
        daemon.cli("create", "--name", "cli-c1", "busybox", "true")
        daemon.cli("network", "connect", "--ip", "10.208.0.77", "--alias", "db", "cli-net",
                   "cli-c1")
        ep = daemon.cli("network", "inspect", "-f",
                        "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
                        "cli-net").stdout
        assert ep == "cli-c1 10.208.0.77/24\n"
        p = daemon.cli("network", "rm", "cli-net", check=False)
        assert p.returncode == 1 and "has active endpoints" in p.stderr
        daemon.cli("network", "disconnect", "cli-net", "cli-c1")
        p = daemon.cli("network", "create", "--subnet", "10.208.0.0/25", "cli-over", check=False)
        assert p.returncode == 1 and "Pool overlaps" in p.stderr
        p = daemon.cli("network", "rm", "none", check=False)
        assert p.returncode == 1 and "none is a pre-defined network" in p.stderr
        p = daemon.cli("network", "inspect", "cli-missing", check=False)
        assert p.returncode == 1 and "network cli-missing not found" in p.stderr
        assert daemon.cli("network", "rm", "cli-net").stdout == "cli-net\n"
        assert daemon.cli("network", "rm", "-f", "cli-net").returncode == 0
        daemon.cli("network", "create", "cli-prune")
        assert daemon.cli("network", "prune", "-f").stdout == \
            "Deleted Networks:\ncli-prune\n\n"
    finally:
        daemon.cli("rm", "-f", "cli-c1", check=False)
        daemon.cli("network", "rm", "-f", "cli-net", check=False)
