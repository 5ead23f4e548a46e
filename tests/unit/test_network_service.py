"""The network service on a temp database with fake host routes: pre-defined networks, create
checks, lookup, filters, remove/prune rules, endpoint allocation (unique addresses, reuse, --ip,
exhaustion), and Docker's inspect shape. No kernel objects."""

from __future__ import annotations

import threading

import pytest

from dockyard import errors
from dockyard.metadata import Database, ImageRecord
from dockyard.metadata.networks import AddressInUse
from dockyard.network.model import DEFAULT_BRIDGE_IFACE
from dockyard.network.service import NetworkService
from dockyard.oci.digest import Digest


@pytest.fixture
def db(tmp_path):
    d = Database(str(tmp_path / "dockyard.db"))
    yield d
    d.close()


def _container(db: Database, cid: str, name: str = "") -> str:
    image = Digest.of_bytes(b"config")
    if db.images.get(image) is None:
        db.images.add(ImageRecord(image, Digest.of_bytes(b"manifest"),
                                  "application/vnd.oci.image.manifest.v1+json", 1, "", "amd64",
                                  "linux", 0))
    db.containers.add(cid, name or f"c-{cid[:8]}", image)
    return cid


def _cid(n: int) -> str:
    return f"{n:02x}" * 32


@pytest.fixture
def svc(db):
    s = NetworkService(db, host_routes=lambda: ["0.0.0.0/0", "172.17.0.0/16", "192.0.2.0/24"])
    s.ensure_defaults()
    return s


# ------------------------------------------------------------------ defaults

def test_defaults_created_once_with_stable_ids(db) -> None:
    s = NetworkService(db, host_routes=lambda: ["172.17.0.0/16"])
    first = {n.name: n for n in s.ensure_defaults()}
    assert set(first) == {"bridge", "host", "none"}
    assert first["bridge"].driver == "bridge" and first["host"].driver == "host"
    assert first["none"].driver == "null"
    assert first["bridge"].bridge == DEFAULT_BRIDGE_IFACE
    # the host's docker0 route is avoided
    assert (first["bridge"].subnet, first["bridge"].gateway) == ("172.18.0.0/16", "172.18.0.1")
    again = {n.name: n for n in NetworkService(db, host_routes=lambda: []).ensure_defaults()}
    assert again == first


def test_bip_sets_and_moves_the_bridge(db) -> None:
    s = NetworkService(db, default_bridge_subnet="10.99.0.5/24")
    [bridge, _, _] = s.ensure_defaults()
    assert (bridge.subnet, bridge.gateway) == ("10.99.0.0/24", "10.99.0.5")
    s2 = NetworkService(db, default_bridge_subnet="10.98.0.1/16")
    assert s2.ensure_defaults()[0].subnet == "10.98.0.0/16"


def test_address_pools(db) -> None:
    s = NetworkService(db, address_pools=[("10.50.0.0/16", 24)])
    s.ensure_defaults()
    assert s.get("bridge").subnet == "10.50.0.0/24"
    assert s.create("a").subnet == "10.50.1.0/24"


# ------------------------------------------------------------------ create

def test_create_picks_next_free_subnet(svc) -> None:
    bridge = svc.get("bridge")
    a = svc.create("a")
    assert a.subnet not in (bridge.subnet, "172.17.0.0/16")
    assert a.bridge == f"dy-{a.id[:12]}" and a.driver == "bridge"
    assert a.gateway == a.subnet.replace("0.0/16", "0.1")
    b = svc.create("b")
    assert b.subnet != a.subnet


def test_create_with_config_labels_options(svc) -> None:
    n = svc.create("c", subnet="10.1.0.0/16", gateway="10.1.0.254", ip_range="10.1.2.0/24",
                   internal=True, labels={"env": "x"},
                   options={"com.docker.network.bridge.name": "br-custom"})
    assert (n.subnet, n.gateway, n.ip_range, n.internal) == ("10.1.0.0/16", "10.1.0.254",
                                                            "10.1.2.0/24", True)
    assert n.labels == (("env", "x"),) and n.bridge == "br-custom"
    assert svc.get(n.id) == n


def test_create_errors(svc) -> None:
    svc.create("dup", subnet="10.1.0.0/24")
    with pytest.raises(errors.AlreadyExists, match="network with name dup already exists"):
        svc.create("dup")
    with pytest.raises(errors.AlreadyExists, match="network with name bridge already exists"):
        svc.create("bridge")
    with pytest.raises(errors.Conflict, match="Pool overlaps"):
        svc.create("over", subnet="10.1.0.128/25")
    with pytest.raises(errors.InvalidArgument, match="invalid CIDR address: 10.5"):
        svc.create("bad", subnet="10.5")
    with pytest.raises(errors.InvalidArgument, match="no matching subnet for gateway"):
        svc.create("gw", subnet="10.6.0.0/24", gateway="10.7.0.1")
    with pytest.raises(errors.InvalidArgument, match="invalid name"):
        svc.create("-bad")
    with pytest.raises(errors.Forbidden, match='only one instance of "host"'):
        svc.create("h2", driver="host")
    with pytest.raises(errors.NotFound, match='plugin "overlay" not found'):
        svc.create("o", driver="overlay")
    with pytest.raises(errors.InvalidArgument, match="bridge name"):
        svc.create("long", options={"com.docker.network.bridge.name": "x" * 16})
    with pytest.raises(errors.Conflict, match="bridge dockyard0"):
        svc.create("samebr", options={"com.docker.network.bridge.name": "dockyard0"})
    # nothing half-made
    assert sorted(n.name for n in svc.list()) == ["bridge", "dup", "host", "none"]


# ------------------------------------------------------------------ get, list

def test_get_by_id_name_prefix(svc) -> None:
    n = svc.create("findme")
    assert svc.get(n.id) == svc.get("findme") == svc.get(n.id[:5]) == n
    with pytest.raises(errors.NotFound, match="network nope not found"):
        svc.get("nope")


def test_list_filters(svc) -> None:
    a = svc.create("alpha", labels={"team": "a"})
    svc.create("beta", labels={"team": "b", "x": ""})
    names = lambda f: sorted(n.name for n in svc.list(f))  # noqa: E731
    assert names({"type": ["custom"]}) == ["alpha", "beta"]
    assert names({"type": ["builtin"]}) == ["bridge", "host", "none"]
    assert names({"driver": ["null"]}) == ["none"]
    assert names({"name": ["^al"]}) == ["alpha"]
    assert names({"name": ["a"]}) == ["alpha", "beta"]  # found in the name
    assert names({"id": [a.id[:6]]}) == ["alpha"]
    assert names({"label": ["team=b"]}) == ["beta"]
    assert names({"label": ["x"]}) == ["beta"]
    assert names({"scope": ["local"]}) == ["alpha", "beta", "bridge", "host", "none"]
    assert names({"scope": ["swarm"]}) == []
    svc.connect("alpha", _container(svc.db, _cid(1)))
    assert names({"dangling": ["true"]}) == ["beta"]
    assert names({"dangling": ["false"]}) == ["alpha", "bridge", "host", "none"]
    with pytest.raises(errors.InvalidArgument, match="invalid filter 'bogus'"):
        svc.list({"bogus": ["1"]})
    with pytest.raises(errors.InvalidArgument, match="type"):
        svc.list({"type": ["weird"]})


# ------------------------------------------------------------------ remove, prune

def test_remove_predefined_forbidden(svc) -> None:
    for name in ("bridge", "host", "none"):
        with pytest.raises(errors.Forbidden, match=f"{name} is a pre-defined network and "
                                                   "cannot be removed"):
            svc.remove(name)


def test_remove_with_endpoints_forbidden_then_ok(svc) -> None:
    n = svc.create("busy")
    cid = _container(svc.db, _cid(2))
    svc.connect(n, cid)
    with pytest.raises(errors.Forbidden, match=f"network busy id {n.id} has active endpoints"):
        svc.remove("busy")
    svc.disconnect("busy", cid)
    assert svc.remove("busy") == n
    with pytest.raises(errors.NotFound):
        svc.get("busy")


def test_prune(svc) -> None:
    svc.create("keep", labels={"keep": "1"})
    used = svc.create("used")
    svc.create("gone")
    svc.connect(used, _container(svc.db, _cid(3)))
    assert [n.name for n in svc.prune({"label!": ["keep"]})] == ["gone"]
    assert [n.name for n in svc.prune({"until": ["0"]})] == []
    assert [n.name for n in svc.prune()] == ["keep"]
    assert sorted(n.name for n in svc.list()) == ["bridge", "host", "none", "used"]
    with pytest.raises(errors.InvalidArgument):
        svc.prune({"dangling": ["true"]})


# ------------------------------------------------------------------ endpoints

def test_connect_allocates_sequentially_and_reuses(svc) -> None:
    n = svc.create("net", subnet="10.3.0.0/24")
    ids = [_container(svc.db, _cid(i)) for i in range(10, 14)]
    eps = [svc.connect("net", c, aliases=("web", "web", "")) for c in ids[:3]]
    assert [e.ip for e in eps] == ["10.3.0.2", "10.3.0.3", "10.3.0.4"]
    assert eps[0].mac == "02:42:0a:03:00:02" and eps[0].aliases == ("web",)
    svc.disconnect(n, ids[0])
    assert svc.connect(n, ids[3]).ip == "10.3.0.2"


def test_connect_requested_ip_and_mac(svc) -> None:
    svc.create("net", subnet="10.4.0.0/24")
    a, b, c = (_container(svc.db, _cid(i)) for i in (20, 21, 22))
    ep = svc.connect("net", a, ip="10.4.0.50", mac="02:00:00:00:00:01")
    assert (ep.ip, ep.mac) == ("10.4.0.50", "02:00:00:00:00:01")
    with pytest.raises(errors.Conflict, match="Address already in use"):
        svc.connect("net", b, ip="10.4.0.50")
    with pytest.raises(errors.InvalidArgument, match="10.9.0.1"):
        svc.connect("net", b, ip="10.9.0.1")
    with pytest.raises(errors.InvalidArgument, match="user defined networks only"):
        svc.connect("bridge", c, ip="172.18.0.9")
    with pytest.raises(errors.Conflict, match="already exists in network net"):
        svc.connect("net", a, container_name="first")
    assert [x.ip for x in svc.endpoints_of_network("net")] == ["10.4.0.50"]


def test_connect_exhaustion_slash30(svc) -> None:
    svc.create("tiny", subnet="10.8.0.0/30")
    a, b = _container(svc.db, _cid(30)), _container(svc.db, _cid(31))
    assert svc.connect("tiny", a).ip == "10.8.0.2"
    with pytest.raises(errors.FailedPrecondition, match="no available IPv4 addresses"):
        svc.connect("tiny", b)
    assert svc.endpoints_of(b) == []


def test_connect_host_and_none_without_address(svc) -> None:
    cid = _container(svc.db, _cid(40))
    assert svc.connect("host", cid).ip == ""
    cid2 = _container(svc.db, _cid(41))
    assert svc.connect("host", cid2).ip == ""  # '' is not unique-checked
    assert svc.connect("none", cid).ip == ""


def test_connect_unknown_container(svc) -> None:
    svc.create("net")
    with pytest.raises(errors.NotFound, match="no such container"):
        svc.connect("net", "f" * 64)


def test_disconnect_not_connected(svc) -> None:
    svc.create("net")
    cid = _container(svc.db, _cid(50))
    with pytest.raises(errors.Conflict, match="is not connected to network net"):
        svc.disconnect("net", cid)
    assert svc.disconnect("net", cid, force=True) is None


def test_endpoints_of_and_disconnect_all(svc) -> None:
    svc.create("b-net")
    svc.create("a-net")
    cid = _container(svc.db, _cid(60))
    svc.connect("b-net", cid)
    svc.connect("a-net", cid)
    assert [a.network.name for a in svc.endpoints_of(cid)] == ["a-net", "b-net"]
    assert len(svc.disconnect_all(cid)) == 2
    assert svc.endpoints_of(cid) == []


def test_container_row_removal_releases_addresses(svc) -> None:
    svc.create("net", subnet="10.5.0.0/24")
    cid = _container(svc.db, _cid(70))
    svc.connect("net", cid)
    svc.db.containers.delete(cid)
    assert svc.endpoints_of_network("net") == []


def test_unique_index_refuses_a_double_address(svc) -> None:
    n = svc.create("net", subnet="10.6.0.0/24")
    a, b = _container(svc.db, _cid(80)), _container(svc.db, _cid(81))
    svc.db.networks.add_endpoint(n.id, a, "10.6.0.2", "m")
    with pytest.raises(AddressInUse):
        svc.db.networks.add_endpoint(n.id, b, "10.6.0.2", "m")
    # the service steps over an address a foreign writer took
    assert svc.connect(n, b).ip == "10.6.0.3"


def test_concurrent_connects_get_unique_addresses(tmp_path) -> None:
    """Two services on two connections of one database file allocate at the same time."""
    path = str(tmp_path / "c.db")
    db1, db2 = Database(path), Database(path)
    try:
        s1 = NetworkService(db1)
        s1.ensure_defaults()
        s2 = NetworkService(db2)
        s1.create("net", subnet="10.7.0.0/24")
        ids = [_container(db1, _cid(100 + i)) for i in range(40)]
        errs: list[BaseException] = []

        def work(s: NetworkService, mine: list[str]) -> None:
            try:
                for c in mine:
                    s.connect("net", c)
            except BaseException as e:  # noqa: BLE001 - reported below
                errs.append(e)

        ts = [threading.Thread(target=work, args=(s1, ids[0::2])),
              threading.Thread(target=work, args=(s2, ids[1::2]))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert errs == []
        ips = [e.ip for e in s1.endpoints_of_network("net")]
        assert len(ips) == 40 == len(set(ips))
    finally:
        db1.close()
        db2.close()


# ------------------------------------------------------------------ Docker's JSON

def test_docker_json(svc) -> None:
    n = svc.create("web", subnet="10.9.0.0/24", ip_range="10.9.0.128/25", labels={"a": "b"})
    cid = _container(svc.db, _cid(90), "webby")
    svc.connect(n, cid)
    doc = svc.to_docker_json(svc.get("web"))
    assert doc["Name"] == "web" and doc["Id"] == n.id and doc["Scope"] == "local"
    assert doc["Driver"] == "bridge" and doc["EnableIPv6"] is False
    assert doc["IPAM"] == {"Driver": "default", "Options": {},
                           "Config": [{"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.128/25",
                                       "Gateway": "10.9.0.1"}]}
    assert doc["Created"].endswith("Z") and len(doc["Created"]) == 30
    assert doc["ConfigFrom"] == {"Network": ""} and doc["Labels"] == {"a": "b"}
    c = doc["Containers"][cid]
    assert c["Name"] == "webby" and c["IPv4Address"] == "10.9.0.128/24"
    assert c["MacAddress"] == "02:42:0a:09:00:80" and len(c["EndpointID"]) == 64
    bridge = svc.to_docker_json(svc.get("bridge"))
    assert bridge["IPAM"]["Options"] is None
    assert bridge["Options"]["com.docker.network.bridge.name"] == "dockyard0"
    assert svc.to_docker_json(svc.get("host"))["IPAM"]["Config"] == []
