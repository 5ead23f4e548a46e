"""IPAM without a kernel: subnet picking around networks and host routes, Docker's checks of a
user's subnet/gateway/range, address allocation (order, --ip, exhaustion, /30), MACs, host routes
read from procfs text."""

from __future__ import annotations

import ipaddress

import pytest

from dockyard import errors
from dockyard.network import ipam
from dockyard.network.hostroutes import parse_fib_trie, parse_route

N = ipaddress.IPv4Network


# ------------------------------------------------------------------ pick_subnet

def test_default_pools_are_dockers() -> None:
    assert ipam.DEFAULT_POOLS[0] == ("172.17.0.0/16", 16)
    assert ipam.DEFAULT_POOLS[14] == ("172.31.0.0/16", 16)
    assert ipam.DEFAULT_POOLS[-1] == ("192.168.0.0/16", 20)
    assert len(ipam.DEFAULT_POOLS) == 16


def test_pick_first_free_pool() -> None:
    assert ipam.pick_subnet(None, [], []) == N("172.17.0.0/16")
    assert ipam.pick_subnet(None, ["172.17.0.0/16"], []) == N("172.18.0.0/16")


def test_pick_avoids_host_routes_and_addresses_but_not_default_route() -> None:
    routes = ["0.0.0.0/0", "172.17.0.0/16", "172.18.5.7/32", "10.0.0.0/8"]
    assert ipam.pick_subnet(None, [], routes) == N("172.19.0.0/16")


def test_pick_avoids_a_supernet_route() -> None:
    # a /12 route covers 172.16.0.0-172.31.255.255: the 192.168 pool in /20s is next
    assert ipam.pick_subnet(None, [], ["172.16.0.0/12"]) == N("192.168.0.0/20")
    assert ipam.pick_subnet(None, ["192.168.0.0/20"], ["172.16.0.0/12", "192.168.16.1/24"]) \
        == N("192.168.32.0/20")


def test_pick_custom_pool_splits_base() -> None:
    pool = [("10.10.0.0/16", 24)]
    assert ipam.pick_subnet(pool, ["10.10.0.0/24", "10.10.1.0/24"], []) == N("10.10.2.0/24")


def test_pick_exhausted_is_a_clear_error() -> None:
    pool = [("10.10.0.0/23", 24)]
    with pytest.raises(errors.FailedPrecondition, match="non-overlapping IPv4 address pool"):
        ipam.pick_subnet(pool, ["10.10.0.0/24"], ["10.10.1.0/24"])


def test_pick_rejects_pool_size_smaller_than_base() -> None:
    with pytest.raises(errors.InvalidArgument, match="size"):
        ipam.pick_subnet([("10.0.0.0/16", 8)], [], [])


def test_parse_pools() -> None:
    assert ipam.parse_pools(["base=10.10.0.0/16,size=24"]) == [("10.10.0.0/16", 24)]
    with pytest.raises(errors.InvalidArgument):
        ipam.parse_pools(["base=10.10.0.0/16"])
    with pytest.raises(errors.InvalidArgument, match="invalid CIDR"):
        ipam.parse_pools(["base=nope,size=24"])


# ------------------------------------------------------------------ validate_config

def test_validate_defaults_the_gateway_to_the_first_host() -> None:
    net, gw, rng = ipam.validate_config("10.1.0.0/24")
    assert (net, str(gw), rng) == (N("10.1.0.0/24"), "10.1.0.1", None)


def test_validate_keeps_gateway_and_range() -> None:
    net, gw, rng = ipam.validate_config("10.1.0.0/16", "10.1.255.254", "10.1.5.0/24")
    assert str(gw) == "10.1.255.254" and rng == N("10.1.5.0/24")


@pytest.mark.parametrize("bad", ["10.1.0.0", "10.1.0.0/33", "300.1.0.0/16", "abc/8", ""])
def test_validate_invalid_cidr(bad: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=f"invalid CIDR address: {bad}"):
        ipam.validate_config(bad)


def test_validate_host_bits_are_dropped() -> None:
    assert ipam.validate_config("10.1.0.7/24")[0] == N("10.1.0.0/24")


def test_validate_ipv6_refused() -> None:
    with pytest.raises(errors.InvalidArgument, match="IPv6"):
        ipam.validate_config("fd00::/64")


def test_validate_gateway_outside() -> None:
    with pytest.raises(errors.InvalidArgument, match="no matching subnet for gateway 10.2.0.1"):
        ipam.validate_config("10.1.0.0/24", "10.2.0.1")


def test_validate_gateway_not_an_address() -> None:
    with pytest.raises(errors.InvalidArgument, match="invalid gateway"):
        ipam.validate_config("10.1.0.0/24", "10.1.0.x")


def test_validate_gateway_broadcast() -> None:
    with pytest.raises(errors.InvalidArgument, match="broadcast"):
        ipam.validate_config("10.1.0.0/24", "10.1.0.255")


def test_validate_range_outside() -> None:
    with pytest.raises(errors.InvalidArgument, match="no matching subnet for range 10.1.1.0/24"):
        ipam.validate_config("10.1.0.0/24", "", "10.1.1.0/24")
    with pytest.raises(errors.InvalidArgument, match="no matching subnet for range"):
        ipam.validate_config("10.1.0.0/24", "", "10.1.0.0/23")  # bigger than the subnet


def test_validate_overlap_with_existing() -> None:
    with pytest.raises(errors.Conflict, match="Pool overlaps with other one on this address space"):
        ipam.validate_config("10.1.0.0/16", existing=["10.1.3.0/24"])
    with pytest.raises(errors.Conflict):
        ipam.validate_config("10.1.3.128/25", existing=["10.1.0.0/16"])
    ipam.validate_config("10.2.0.0/16", existing=["10.1.0.0/16"])  # neighbours are fine


def test_validate_too_small() -> None:
    with pytest.raises(errors.InvalidArgument, match="/30"):
        ipam.validate_config("10.1.0.0/31")
    ipam.validate_config("10.1.0.0/30")


# ------------------------------------------------------------------ allocate

def test_allocate_sequential_skipping_gateway() -> None:
    used: set[str] = set()
    got = []
    for _ in range(3):
        a = ipam.allocate("10.1.0.0/24", None, "10.1.0.1", used)
        used.add(str(a))
        got.append(str(a))
    assert got == ["10.1.0.2", "10.1.0.3", "10.1.0.4"]


def test_allocate_gateway_elsewhere_frees_the_first_host() -> None:
    assert str(ipam.allocate("10.1.0.0/24", None, "10.1.0.254", set())) == "10.1.0.1"


def test_allocate_reuses_released_lowest_first() -> None:
    used = {"10.1.0.2", "10.1.0.4"}
    assert str(ipam.allocate("10.1.0.0/24", None, "10.1.0.1", used)) == "10.1.0.3"


def test_allocate_from_range_start() -> None:
    assert str(ipam.allocate("10.1.0.0/16", "10.1.5.0/24", "10.1.0.1", set())) == "10.1.5.0"
    # a range at the start of the subnet never yields the network address
    assert str(ipam.allocate("10.1.0.0/24", "10.1.0.0/28", "10.1.0.1", set())) == "10.1.0.2"


def test_allocate_slash30_has_one_address() -> None:
    a = ipam.allocate("10.9.0.0/30", None, "10.9.0.1", set())
    assert str(a) == "10.9.0.2"
    with pytest.raises(errors.FailedPrecondition, match="no available IPv4 addresses.*net1"):
        ipam.allocate("10.9.0.0/30", None, "10.9.0.1", {"10.9.0.2"}, network_name="net1")


def test_allocate_exhaustion_of_a_range() -> None:
    used = {"10.1.0.8", "10.1.0.9", "10.1.0.10", "10.1.0.11"}
    with pytest.raises(errors.FailedPrecondition, match="10.1.0.8/30"):
        ipam.allocate("10.1.0.0/24", "10.1.0.8/30", "10.1.0.1", used)


def test_allocate_requested() -> None:
    assert str(ipam.allocate("10.1.0.0/24", None, "10.1.0.1", set(), "10.1.0.77")) == "10.1.0.77"
    # outside the dynamic range but inside the subnet: allowed, as Docker's static addresses
    assert str(ipam.allocate("10.1.0.0/24", "10.1.0.128/25", "10.1.0.1", set(), "10.1.0.5")) \
        == "10.1.0.5"


def test_allocate_requested_in_use_or_gateway() -> None:
    with pytest.raises(errors.Conflict, match="Address already in use"):
        ipam.allocate("10.1.0.0/24", None, "10.1.0.1", {"10.1.0.77"}, "10.1.0.77")
    with pytest.raises(errors.Conflict, match="Address already in use"):
        ipam.allocate("10.1.0.0/24", None, "10.1.0.1", set(), "10.1.0.1")


@pytest.mark.parametrize("bad", ["10.2.0.5", "10.1.0.0", "10.1.0.255"])
def test_allocate_requested_outside(bad: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=bad):
        ipam.allocate("10.1.0.0/24", None, "10.1.0.1", set(), bad)


def test_allocate_requested_garbage() -> None:
    with pytest.raises(errors.InvalidArgument, match="invalid IPv4 address"):
        ipam.allocate("10.1.0.0/24", None, "10.1.0.1", set(), "ten")


# ------------------------------------------------------------------ MAC

def test_mac_for_is_dockers() -> None:
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    assert ipam.mac_for(ipaddress.IPv4Address("10.255.0.1")) == "02:42:0a:ff:00:01"


def test_parse_mac() -> None:
    assert ipam.parse_mac("02:42:AC:11:00:02") == "02:42:ac:11:00:02"
    for bad in ("02:42:ac:11:00", "zz:42:ac:11:00:02", "01:00:5e:00:00:01"):
        with pytest.raises(errors.InvalidArgument, match="MAC"):
            ipam.parse_mac(bad)


# ------------------------------------------------------------------ host routes

ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""

FIB = """Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
           |-- 192.0.2.2
              /32 host LOCAL
"""


def test_parse_route() -> None:
    assert parse_route(ROUTE) == ["0.0.0.0/0", "192.0.2.0/24", "172.17.0.0/16"]


def test_parse_fib_trie_local_addresses() -> None:
    assert parse_fib_trie(FIB) == ["127.0.0.0/8", "127.0.0.1/32", "192.0.2.2/32"]


def test_host_routes_steer_the_pick() -> None:
    assert ipam.pick_subnet(None, [], parse_route(ROUTE) + parse_fib_trie(FIB)) \
        == N("172.18.0.0/16")
