"""The kernel side of networking: netns pins, a bridge, veth pairs, the nftables table.

Traffic goes only between namespaces these tests create and the host's own bridge/loopback
addresses. Every object carries a per-test random suffix and is removed in ``finally`` blocks.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from dockyard.network import driver, netns, nft
from dockyard.network.firewall import NetRule, PortRule, Ruleset, render
from dockyard.network.ports import check_free

BUSYBOX = "/bin/busybox"


def _host_routes() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                         text=True).stdout
    nets = []
    for line in out.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable"):
            word = line.split()[1]
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            pass
    return [n for n in nets if n.prefixlen > 0]


def free_subnet() -> ipaddress.IPv4Network:
    used = _host_routes()
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{secrets.randbelow(50) + 200}.{secrets.randbelow(256)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free /24 for the test")


class Lab:
    """Bridges and namespaces made by one test, all torn down by ``close``."""

    def __init__(self, tmp: Path) -> None:
        self.tag = secrets.token_hex(3)
        self.tmp = tmp
        self.stack = ExitStack()
        self.table = f"dockyard_t{self.tag}"

    def bridge(self, letter: str, internal: bool = False) -> tuple[str, ipaddress.IPv4Network, NetRule]:
        name = f"dy-t{self.tag}{letter}"
        net = free_subnet()
        self.stack.callback(driver.delete_bridge, name)
        driver.ensure_bridge(name, f"{net[1]}/{net.prefixlen}")
        return name, net, NetRule(name, str(net), internal)

    def ns(self, bridge: str, net: ipaddress.IPv4Network, host: int, gateway: bool = True) -> tuple[str, str, str]:
        path = str(self.tmp / "netns" / f"{self.tag}-{host}-{bridge}")
        veth = driver.host_ifname()
        self.stack.callback(netns.delete, path)
        netns.create(path)
        self.stack.callback(driver.disconnect, veth)
        ip = str(net[host])
        driver.connect(path, bridge, veth, f"{ip}/{net.prefixlen}", str(net[1]) if gateway else None)
        return path, veth, ip

    def apply(self, rules: Ruleset) -> None:
        self.stack.callback(nft.remove, self.table)
        nft.apply(render(rules, table=self.table))

    def serve(self, path: str, port: int, body: str) -> None:
        """busybox httpd in the namespace, answering ``body`` at /."""
        www = self.tmp / f"www-{port}-{secrets.token_hex(2)}"
        www.mkdir()
        (www / "index.html").write_text(body)
        proc = subprocess.Popen(["nsenter", f"--net={path}", BUSYBOX, "httpd", "-f", "-p", str(port),
                                 "-h", str(www)])
        self.stack.callback(proc.wait)
        self.stack.callback(proc.kill)
        for _ in range(100):  # wait until it listens (not a timing assertion)
            if run_in(path, "netstat", "-ltn").stdout.find(f":{port} ") >= 0:
                return
            time.sleep(0.02)
        raise RuntimeError("httpd did not start")

    def close(self) -> None:
        self.stack.close()


def run_in(path: str, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net={path}", BUSYBOX, *argv], capture_output=True,
                          text=True, timeout=timeout)


def pings(path: str, ip: str) -> bool:
    return run_in(path, "ping", "-c", "1", "-W", "2", ip).returncode == 0


def wget(path: str | None, url: str) -> str | None:
    argv = [BUSYBOX, "wget", "-q", "-O-", url]  # no -T: it segfaults in Debian 12 busybox 1.35
    if path:
        argv = ["nsenter", f"--net={path}", *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return None
    return proc.stdout if proc.returncode == 0 else None


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def test_netns_create_delete_is_idempotent(tmp_path):
    path = str(tmp_path / "netns" / "one")
    try:
        netns.create(path)
        assert netns.exists(path)
        with pytest.raises(FileExistsError):
            netns.create(path)
        assert driver.addresses_in(path) == {"lo": []}  # a fresh, empty namespace
    finally:
        netns.delete(path)
    assert not netns.exists(path) and not Path(path).exists()
    netns.delete(path)  # again: nothing to do


def test_two_namespaces_on_a_bridge_talk(lab):
    br, net, _ = lab.bridge("a")
    driver.ensure_bridge(br, f"{net[1]}/{net.prefixlen}")  # idempotent
    ns1, veth1, ip1 = lab.ns(br, net, 2)
    ns2, _, ip2 = lab.ns(br, net, 3)

    addrs = driver.addresses_in(ns1)
    assert f"{ip1}/{net.prefixlen}" in addrs["eth0"] and "127.0.0.1/8" in addrs["lo"]
    assert ("0.0.0.0/0", str(net[1])) in driver.routes_in(ns1)
    assert veth1 in driver.list_veths("veth")
    assert br in driver.list_bridges("dy-t")

    assert pings(ns1, ip2) and pings(ns2, str(net[1]))
    lab.serve(ns2, 80, "hello from ns2\n")
    assert wget(ns1, f"http://{ip2}/") == "hello from ns2\n"

    driver.disconnect(veth1)
    driver.disconnect(veth1)  # idempotent
    assert veth1 not in driver.list_veths("veth")
    assert "eth0" not in driver.addresses_in(ns1)


def test_internal_network_has_no_default_route(lab):
    br, net, _ = lab.bridge("i", internal=True)
    ns1, _, _ = lab.ns(br, net, 2, gateway=False)
    assert [dst for dst, _ in driver.routes_in(ns1)] == [f"{net.network_address}/{net.prefixlen}"]
    assert run_in(ns1, "ping", "-c", "1", "-W", "1", "127.0.0.1").returncode == 0  # lo is up


def test_firewall_isolates_bridges(lab):
    br_a, net_a, rule_a = lab.bridge("a")
    br_b, net_b, rule_b = lab.bridge("b")
    ns_a, _, ip_a = lab.ns(br_a, net_a, 2)
    ns_b, _, ip_b = lab.ns(br_b, net_b, 2)
    assert pings(ns_a, ip_b)  # routed through the host: not isolated without the table
    lab.apply(Ruleset(networks=(rule_a, rule_b)))
    assert nft.current(lab.table) is not None
    assert not pings(ns_a, ip_b)
    assert not pings(ns_b, ip_a)
    assert pings(ns_a, str(net_a[1]))  # the own gateway stays reachable


def test_firewall_through_libnftables_is_atomic_and_matches_the_nft_tool(lab):
    """The table goes in through libnftables in-process (no nft process); a ruleset with an
    error changes nothing (one transaction) and names nft's error; the tool lists what the
    library wrote, and the library lists what the tool wrote."""
    from dockyard.errors import KernelError
    from dockyard.kernel import nftables

    assert nftables.available()
    br_a, net_a, rule_a = lab.bridge("a")
    lab.apply(Ruleset(networks=(rule_a,)))
    by_tool = subprocess.run(["nft", "list", "table", "inet", lab.table], capture_output=True,
                             text=True, check=True).stdout
    assert nft.current(lab.table) == by_tool and br_a in by_tool
    broken = render(Ruleset(networks=(rule_a,)), table=lab.table) + "\nadd rule inet " + \
        f"{lab.table} nosuchchain accept\n"
    with pytest.raises(KernelError, match="nft failed: Error: Could not process rule"):
        nft.apply(broken)
    assert nft.current(lab.table) == by_tool  # untouched
    nft.remove(lab.table)
    assert nft.current(lab.table) is None
    subprocess.run(["nft", "-f", "-"], input=render(Ruleset(networks=(rule_a,)), table=lab.table),
                   text=True, check=True)
    assert nft.current(lab.table) == by_tool


def test_internal_network_cannot_leave_its_bridge(lab):
    br_a, net_a, rule_a = lab.bridge("a")
    br_i, net_i, rule_i = lab.bridge("i", internal=True)
    ns_a, _, ip_a = lab.ns(br_a, net_a, 2)
    ns_i, _, ip_i = lab.ns(br_i, net_i, 2)  # with a gateway, to prove the rules (not routes) stop it
    ns_i2, _, ip_i2 = lab.ns(br_i, net_i, 3)
    lab.apply(Ruleset(networks=(rule_a, rule_i)))
    assert not pings(ns_i, ip_a)
    assert not pings(ns_a, ip_i)
    assert pings(ns_i, ip_i2)


def test_published_port_on_loopback_host_address_and_hairpin(lab):
    br, net, rule = lab.bridge("p")
    ns1, veth1, ip1 = lab.ns(br, net, 2)
    ns2, _, _ = lab.ns(br, net, 3)
    lab.serve(ns1, 80, "published\n")
    driver.hairpin(veth1)
    hold = check_free("tcp", "", 0)  # the daemon holds the host port while the container runs
    lab.stack.callback(hold.close)
    port = hold.getsockname()[1]
    gateway = str(net[1])
    lab.apply(Ruleset(networks=(rule,), ports=(PortRule("tcp", "", port, ip1, 80, br),)))

    assert wget(None, f"http://127.0.0.1:{port}/") == "published\n"
    assert wget(None, f"http://{gateway}:{port}/") == "published\n"
    assert wget(ns2, f"http://{gateway}:{port}/") == "published\n"  # neighbour via the host port
    assert wget(ns1, f"http://{gateway}:{port}/") == "published\n"  # itself (hairpin)


def test_published_port_bound_to_loopback_only(lab):
    br, net, rule = lab.bridge("l")
    ns1, _, ip1 = lab.ns(br, net, 2)
    ns2, _, _ = lab.ns(br, net, 3)
    lab.serve(ns1, 8000, "loopback only\n")
    hold = check_free("tcp", "127.0.0.1", 0)
    lab.stack.callback(hold.close)
    port = hold.getsockname()[1]
    lab.apply(Ruleset(networks=(rule,), ports=(PortRule("tcp", "127.0.0.1", port, ip1, 8000, br),)))
    assert wget(None, f"http://127.0.0.1:{port}/") == "loopback only\n"
    assert wget(ns2, f"http://{net[1]}:{port}/") is None  # not published on the bridge address


def test_container_cannot_reach_host_loopback_services(lab):
    """route_localnet is on for the bridge; the table must keep 127/8 closed to containers."""
    br, net, rule = lab.bridge("c")
    ns1, _, _ = lab.ns(br, net, 2)
    lab.apply(Ruleset(networks=(rule,)))
    srv = socket.socket()
    srv.bind(("127.0.0.2", 0))
    srv.listen()
    lab.stack.callback(srv.close)
    port = srv.getsockname()[1]
    # A container with CAP_NET_ADMIN sends to 127.0.0.2 through its gateway (the host's bridge).
    for argv in (["ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
                 ["sysctl", "-w", "net.ipv4.conf.eth0.route_localnet=1"],
                 ["ip", "route", "add", "127.0.0.2/32", "via", str(net[1]), "dev", "eth0"]):
        assert run_in(ns1, *argv).returncode == 0, argv
    run_in(ns1, "nc", "-w", "2", "127.0.0.2", str(port), timeout=10)
    srv.settimeout(0.5)
    with pytest.raises(socket.timeout):  # no connection ever arrived
        srv.accept()


def test_connect_to_missing_namespace_or_bridge_leaves_nothing(lab, tmp_path):
    from dockyard.errors import NotFound

    br, net, _ = lab.bridge("m")
    veth = driver.host_ifname()
    with pytest.raises(NotFound):
        driver.connect(str(tmp_path / "absent"), br, veth, f"{net[2]}/24", str(net[1]))
    path = str(tmp_path / "netns" / "m")
    lab.stack.callback(netns.delete, path)
    netns.create(path)
    with pytest.raises(NotFound):
        driver.connect(path, f"dy-t{lab.tag}z", veth, f"{net[2]}/24", str(net[1]))
    assert veth not in driver.list_veths("veth")


def test_deleting_the_namespace_removes_its_veth(lab):
    br, net, _ = lab.bridge("d")
    path, veth, _ = lab.ns(br, net, 2)
    netns.delete(path)
    for _ in range(200):  # the kernel cleans up the namespace asynchronously
        if veth not in driver.list_veths("veth"):
            break
        time.sleep(0.02)
    assert veth not in driver.list_veths("veth")
