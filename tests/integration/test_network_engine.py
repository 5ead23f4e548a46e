"""Container networking end to end (issue #5, acceptance 1 and 2) with the real docker CLI against
a daemon on a private exec root (its own default bridge ``dyb<hash>`` and nftables table
``inet dockyard_<hash>``).

The network rule: traffic goes only to loopback and to containers on networks these tests made.
Names looked up are single-label container names, which the embedded DNS answers itself (NXDOMAIN
when nobody holds them) without forwarding. Failed reaches use the in-container ``timeout`` (under a
shell: PID 1 ignores SIGTERM) so a client container never outlives its ``docker run --rm``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon_util import Daemon, running_daemon

pytestmark = [
    pytest.mark.skipif(not os.path.exists("/usr/bin/conmon"), reason="needs conmon"),
    pytest.mark.skipif(not os.path.exists("/usr/sbin/nft"), reason="needs nftables"),
]

PAGE = "<h1>dockyard net</h1>\n"
FAIL_SECS = "3"  # how long a client container tries to reach what it must not reach


# ------------------------------------------------------------------------------ helpers

def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _brif(bridge: str) -> set[str]:
    try:
        return set(os.listdir(f"/sys/class/net/{bridge}/brif"))
    except OSError:
        return set()


def _nft_table(table: str) -> str | None:
    p = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None


class Net:
    """What this module's daemon owns on the host, by name."""

    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.suffix = hashlib.sha256(str(d.tmp / "exec").encode()).hexdigest()[:8]
        self.bridge = f"dyb{self.suffix}"
        self.table = f"dockyard_{self.suffix}"
        self.netns_dir = d.tmp / "exec" / "netns"
        self.seen_bridges: set[str] = {self.bridge}
        self.seen_veths: set[str] = set()

    def bridges(self) -> set[str]:
        """Every bridge of the daemon's bridge networks (user ones: ``dy-<id12>``)."""
        out = self.d.docker("network", "ls", "--no-trunc", "--filter", "driver=bridge",
                            "--format", "{{.ID}} {{.Name}}").stdout.split()
        names = {self.bridge}
        for nid, name in zip(out[::2], out[1::2]):
            if name != "bridge":
                names.add(f"dy-{nid[:12]}")
        self.seen_bridges |= names
        return names

    def veths(self) -> set[str]:
        v = set().union(*(_brif(b) for b in self.bridges()))
        self.seen_veths |= v
        return v

    def netns(self) -> set[str]:
        try:
            return set(os.listdir(self.netns_dir))
        except OSError:
            return set()

    def state(self) -> tuple:
        """Networks, containers, veths on our bridges, pinned namespaces, our nftables table."""
        return (self.d.docker("network", "ls", "--format", "{{.Name}}").stdout.split(),
                self.d.docker("ps", "-aq").stdout.split(), self.veths(), self.netns(),
                _nft_table(self.table))


#: The daemon's default bridge and its pool for networks created without --subnet: ranges no
#: other test uses. Daemons of concurrent test runs each pick from Docker's default pools what no
#: host route covers yet, and a user network's bridge (with its route) appears only at its first
#: container's start: two daemons could otherwise give two bridges one subnet.
CONFIG = {"log-level": "info", "bip": "10.230.0.1/24",
          "default-address-pools": [{"base": "10.232.0.0/16", "size": 24}]}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """The module's daemon (busybox loaded); after it stopped, nothing of its network stays."""
    with running_daemon(tmp_path_factory.mktemp("netd"), busybox=True, config=CONFIG) as d:
        n = Net(d)
        try:
            yield n
        finally:
            ids = d.docker("ps", "-aq").stdout.split()
            if ids:
                d.docker("rm", "-f", *ids, check=False)
            n.veths()
            d.docker("network", "prune", "-f", check=False)
    links = _links()
    assert not (n.seen_veths & links), f"veths left: {n.seen_veths & links}"
    assert not (n.seen_bridges & links), f"bridges left: {n.seen_bridges & links}"
    assert not n.netns(), f"namespaces left: {n.netns()}"
    assert _nft_table(n.table) is None, f"nftables table {n.table} left"


@pytest.fixture(autouse=True)
def _track(net: Net) -> Iterator[None]:
    yield
    net.veths()


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("www")
    (d / "index.html").write_text(PAGE)
    return d


def docker(net: Net, *args: str, check: bool = True, timeout: float = 120
           ) -> subprocess.CompletedProcess:
    return net.d.docker(*args, check=check, timeout=timeout)


def web(net: Net, www: Path, name: str, *args: str, image: str = "busybox") -> str:
    """A busybox httpd container serving PAGE on port 80."""
    return docker(net, "run", "-d", "--name", name, *args, "-v", f"{www}:/www:ro", image,
                  "httpd", "-f", "-p", "80", "-h", "/www").stdout.strip()


def client(net: Net, network: str, *cmd: str, extra: tuple[str, ...] = ()
           ) -> subprocess.CompletedProcess:
    """``docker run --rm --network NETWORK busybox CMD`` (not checked)."""
    return docker(net, "run", "--rm", "--network", network, *extra, "busybox", *cmd,
                  check=False, timeout=60)


def wget(net: Net, network: str, url: str, secs: str = "10") -> subprocess.CompletedProcess:
    # the shell stays PID 1 (``; exit``): timeout's SIGTERM to a PID 1 wget would be ignored
    return client(net, network, "sh", "-c", f"timeout {secs} wget -qO- {url}; exit $?")


def reaches(net: Net, network: str, url: str) -> None:
    p = wget(net, network, url)
    assert p.returncode == 0 and p.stdout == PAGE, (url, p.returncode, p.stdout, p.stderr)


def blocked(net: Net, network: str, url: str) -> None:
    p = wget(net, network, url, FAIL_SECS)
    assert p.returncode != 0 and PAGE not in p.stdout, (url, p.stdout, p.stderr)


def inspect(net: Net, fmt: str, *refs: str) -> list[str]:
    return docker(net, "inspect", "-f", fmt, *refs).stdout.split()


def ip_on(net: Net, ref: str, network: str) -> str:
    return inspect(net, f"{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}",
                   ref)[0]


def gateway(net: Net, network: str) -> str:
    return docker(net, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}",
                  network).stdout.strip()


def host_fetch(url: str) -> str:
    """From the host (the published port may take a moment after ``run -d`` returned: the
    server inside starts after the API answered)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return urllib.request.urlopen(url, timeout=3).read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_pair() -> int:
    """A free port whose successor is free too."""
    for _ in range(50):
        first = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", first + 1))
            return first
        except OSError:
            continue
    raise AssertionError("no two consecutive free ports")


def host_port(net: Net, ref: str, spec: str = "80/tcp") -> int:
    lines = docker(net, "port", ref, spec).stdout.split()
    return int(lines[0].rsplit(":", 1)[1])


def rm(net: Net, *refs: str) -> None:
    docker(net, "rm", "-f", *refs, check=False)


# ------------------------------------------------------------------------------ acceptance 1

def test_containers_reach_each_other_by_name_and_alias(net: Net, www: Path) -> None:
    docker(net, "network", "create", "na")
    try:
        assert gateway(net, "na").startswith("10.232.")  # the daemon's default-address-pools
        web(net, www, "web", "--network", "na", "--network-alias", "site")
        reaches(net, "na", "http://web/")
        reaches(net, "na", "http://site/")
        # a container started later resolves; a removed one does not
        web(net, www, "late", "--network", "na")
        reaches(net, "na", "http://late/")
        rm(net, "late")
        look = client(net, "na", "nslookup", "late")
        assert look.returncode != 0 and "NXDOMAIN" in look.stdout + look.stderr, look
        blocked(net, "na", "http://late/")
        reaches(net, "na", "http://web/")
    finally:
        rm(net, "web", "late")
        docker(net, "network", "rm", "na")


def test_published_ports(net: Net, www: Path) -> None:
    """127.0.0.1::80, HOSTPORT:80 and -P with an EXPOSEd port: answers on 127.0.0.1, on the
    bridge's address, through the host port from a container on the same network (hairpin) and
    on another network; ``docker port`` lists them."""
    fixed = free_port()
    docker(net, "network", "create", "np")
    docker(net, "create", "--name", "tmpl", "busybox", "true")
    docker(net, "commit", "--change", "EXPOSE 80", "tmpl", "exposes80")
    rm(net, "tmpl")
    try:
        web(net, www, "pub", "-p", "127.0.0.1::80", "-p", f"{fixed}:80")
        web(net, www, "pall", "-P", image="exposes80")
        ports = docker(net, "port", "pub").stdout
        assert f"80/tcp -> 0.0.0.0:{fixed}" in ports, ports
        local = [int(line.rsplit(":", 1)[1]) for line in ports.splitlines()
                 if "127.0.0.1:" in line]
        assert len(local) == 1 and local[0] != fixed, ports
        assert host_fetch(f"http://127.0.0.1:{local[0]}/") == PAGE
        gw = gateway(net, "bridge")
        assert gw == "10.230.0.1"  # the daemon's bip
        assert host_fetch(f"http://127.0.0.1:{fixed}/") == PAGE
        assert host_fetch(f"http://{gw}:{fixed}/") == PAGE
        assert docker(net, "inspect", "-f", "{{json .NetworkSettings.Ports}}",
                      "pub").stdout.count("HostPort") == 2
        # hairpin: same network through the host port, and from another network
        reaches(net, "bridge", f"http://{gw}:{fixed}/")
        reaches(net, "np", f"http://{gateway(net, 'np')}:{fixed}/")
        reaches(net, "np", f"http://{gw}:{fixed}/")
        # -P: a random host port for the image's EXPOSE 80
        p_all = host_port(net, "pall")
        assert p_all not in (fixed, local[0])
        assert host_fetch(f"http://127.0.0.1:{p_all}/") == PAGE
        assert host_fetch(f"http://{gw}:{p_all}/") == PAGE
        ps = docker(net, "ps", "--filter", "name=pall", "--format", "{{.Ports}}").stdout
        assert f":{p_all}->80/tcp" in ps, ps
        # a port bound to 127.0.0.1 is not published on the bridge's address
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://{gw}:{local[0]}/", timeout=2)
        # stopped: the port and the veth are gone; started again: both back, same address
        addr = ip_on(net, "pub", "bridge")
        veths = net.veths()
        docker(net, "stop", "-t", "1", "pub")
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{fixed}/", timeout=2)
        assert len(net.veths()) == len(veths) - 1
        assert host_fetch(f"http://127.0.0.1:{p_all}/") == PAGE  # the other one's rules stay
        docker(net, "start", "pub")
        assert host_fetch(f"http://127.0.0.1:{fixed}/") == PAGE
        assert ip_on(net, "pub", "bridge") == addr
        reaches(net, "np", f"http://{gw}:{fixed}/")
    finally:
        rm(net, "pub", "pall", "tmpl")
        docker(net, "rmi", "exposes80", check=False)
        docker(net, "network", "rm", "np")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{fixed}/", timeout=2)


def test_published_port_range(net: Net, www: Path) -> None:
    first = free_pair()
    try:
        docker(net, "run", "-d", "--name", "ranged", "-p", f"127.0.0.1:{first}-{first + 1}:80-81",
               "-v", f"{www}:/www:ro", "busybox", "sh", "-c",
               "httpd -p 81 -h /www; exec httpd -f -p 80 -h /www")
        ports = docker(net, "port", "ranged").stdout
        assert f"80/tcp -> 127.0.0.1:{first}" in ports and \
            f"81/tcp -> 127.0.0.1:{first + 1}" in ports, ports
        assert host_fetch(f"http://127.0.0.1:{first}/") == PAGE
        assert host_fetch(f"http://127.0.0.1:{first + 1}/") == PAGE
    finally:
        rm(net, "ranged")


def test_user_networks_are_isolated(net: Net, www: Path) -> None:
    docker(net, "network", "create", "iso1")
    docker(net, "network", "create", "iso2")
    try:
        web(net, www, "isoweb", "--network", "iso1")
        addr = ip_on(net, "isoweb", "iso1")
        reaches(net, "iso1", f"http://{addr}/")
        blocked(net, "iso2", f"http://{addr}/")
        blocked(net, "bridge", f"http://{addr}/")
        look = client(net, "iso2", "nslookup", "isoweb")
        assert look.returncode != 0, look
    finally:
        rm(net, "isoweb")
        docker(net, "network", "rm", "iso1", "iso2")


def test_internal_network_has_no_way_out(net: Net, www: Path) -> None:
    docker(net, "network", "create", "--internal", "inner")
    docker(net, "network", "create", "outer")
    try:
        routes = client(net, "inner", "ip", "route")
        assert routes.returncode == 0 and routes.stdout.strip(), routes
        assert "default" not in routes.stdout, routes.stdout
        out_routes = client(net, "outer", "ip", "route").stdout
        assert out_routes.startswith("default via " + gateway(net, "outer")), out_routes
        web(net, www, "outweb", "--network", "outer", "-p", "80")
        port = host_port(net, "outweb")
        reaches(net, "outer", f"http://{gateway(net, 'outer')}:{port}/")
        assert host_fetch(f"http://{gateway(net, 'outer')}:{port}/") == PAGE
        assert host_fetch(f"http://127.0.0.1:{port}/") == PAGE
        blocked(net, "inner", f"http://{gateway(net, 'outer')}:{port}/")
        blocked(net, "inner", f"http://{gateway(net, 'inner')}:{port}/")
        blocked(net, "inner", f"http://{ip_on(net, 'outweb', 'outer')}/")
        # inside the internal network, containers still reach each other by name
        web(net, www, "inweb", "--network", "inner")
        reaches(net, "inner", "http://inweb/")
    finally:
        rm(net, "outweb", "inweb")
        docker(net, "network", "rm", "inner", "outer")


def test_concurrent_starts_get_unique_addresses_and_reuse(net: Net) -> None:
    docker(net, "network", "create", "--subnet", "10.233.0.0/24", "many")
    names = [f"c{i:02d}" for i in range(30)]
    errors: list[str] = []

    def run(name: str) -> None:
        p = docker(net, "run", "-d", "--name", name, "--network", "many", "busybox",
                   "sleep", "600", check=False)
        if p.returncode != 0:
            errors.append(f"{name}: {p.stderr}")

    try:
        threads = [threading.Thread(target=run, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        addrs = inspect(net, "{{.NetworkSettings.Networks.many.IPAddress}}", *names)
        assert len(addrs) == 30 and len(set(addrs)) == 30, addrs
        assert {int(a.rsplit(".", 1)[1]) for a in addrs} == set(range(2, 32)), addrs
        running = inspect(net, "{{.State.Running}}", *names)
        assert running == ["true"] * 30
        # each answers on its own address from a neighbour
        p = client(net, "many", "ping", "-c1", "-W2", addrs[7])
        assert p.returncode == 0, p
        # the lowest free address is given again after a removal
        victim = sorted(zip(addrs, names), key=lambda x: int(x[0].rsplit(".", 1)[1]))[4]
        rm(net, victim[1])
        docker(net, "run", "-d", "--name", "again", "--network", "many", "busybox",
               "sleep", "600")
        assert ip_on(net, "again", "many") == victim[0]
    finally:
        rm(net, *names, "again")
        docker(net, "network", "rm", "many")


def test_network_connect_and_disconnect_of_a_running_container(net: Net, www: Path) -> None:
    docker(net, "network", "create", "ca")
    docker(net, "network", "create", "cb")
    try:
        web(net, www, "hop", "--network", "ca")
        ifaces = docker(net, "exec", "hop", "ip", "-o", "-4", "addr").stdout
        assert "eth0" in ifaces and "eth1" not in ifaces, ifaces
        blocked(net, "cb", "http://hop/")
        docker(net, "network", "connect", "--alias", "hopper", "cb", "hop")
        ifaces = docker(net, "exec", "hop", "ip", "-o", "-4", "addr").stdout
        eth1 = next((ln for ln in ifaces.splitlines() if " eth1 " in f" {ln} "), "")
        assert f"inet {ip_on(net, 'hop', 'cb')}/" in eth1, ifaces
        reaches(net, "cb", "http://hop/")
        reaches(net, "cb", "http://hopper/")
        reaches(net, "ca", "http://hop/")
        docker(net, "network", "disconnect", "cb", "hop")
        ifaces = docker(net, "exec", "hop", "ip", "-o", "-4", "addr").stdout
        assert "eth1" not in ifaces and "eth0" in ifaces, ifaces
        blocked(net, "cb", "http://hop/")
        reaches(net, "ca", "http://hop/")
        nets = json.loads(docker(net, "inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                 "hop").stdout)
        assert sorted(nets) == ["ca"], nets
    finally:
        rm(net, "hop")
        docker(net, "network", "rm", "ca", "cb")


def test_connect_before_start_and_other_modes(net: Net, www: Path) -> None:
    """A created container connected to a second network starts with both; ``container:``
    shares a namespace; ``none`` has only ``lo``; --mac-address; network inspect lists it."""
    docker(net, "network", "create", "ma")
    docker(net, "network", "create", "mb")
    try:
        docker(net, "create", "--name", "two", "--network", "ma", "--mac-address",
               "02:42:de:ad:be:ef", "-v", f"{www}:/www:ro", "busybox", "httpd", "-f", "-p", "80",
               "-h", "/www")
        docker(net, "network", "connect", "mb", "two")
        docker(net, "start", "two")
        ifaces = docker(net, "exec", "two", "ip", "-o", "link").stdout
        assert "eth0" in ifaces and "eth1" in ifaces and "02:42:de:ad:be:ef" in ifaces, ifaces
        routes = docker(net, "exec", "two", "ip", "route").stdout
        assert [ln.split()[:3] for ln in routes.splitlines() if ln.startswith("default")] == \
            [["default", "via", gateway(net, "ma")]], routes
        reaches(net, "ma", "http://two/")
        reaches(net, "mb", "http://two/")
        listed = docker(net, "network", "inspect", "-f",
                        "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", "mb").stdout
        assert listed.split()[0] == "two" and listed.split()[1].startswith(
            ip_on(net, "two", "mb") + "/"), listed
        shared = client(net, "container:two", "sh", "-c",
                        "timeout 10 wget -qO- http://127.0.0.1/; exit $?")
        assert shared.returncode == 0 and shared.stdout == PAGE, shared
        alone = client(net, "none", "ip", "-o", "link")
        assert alone.returncode == 0 and [ln.split()[1] for ln in alone.stdout.splitlines()] \
            == ["lo:"], alone.stdout
    finally:
        rm(net, "two")
        docker(net, "network", "rm", "ma", "mb")


def test_host_files(net: Net) -> None:
    """--add-host, --dns, --dns-search, --dns-option and --hostname in the container's files.
    On a user network the one nameserver is the network's embedded DNS (Docker: 127.0.0.11)."""
    show = ("sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname")
    flags = ("--add-host", "db.example:10.9.8.7", "--dns", "10.53.0.1", "--dns-search",
             "corp.test", "--dns-option", "ndots:2", "--hostname", "boxy")
    docker(net, "network", "create", "hf")
    try:
        for network in ("bridge", "hf"):
            out = client(net, network, *show, extra=flags)
            assert out.returncode == 0, out
            hosts, resolv, hostname = out.stdout.split("---\n")
            entries = [ln.split() for ln in hosts.splitlines()]
            assert ["10.9.8.7", "db.example"] in entries, hosts
            assert any(e[:1] == ["127.0.0.1"] for e in entries), hosts
            assert any("boxy" in e[1:] and e[0] not in ("127.0.0.1", "::1") for e in entries), \
                hosts
            servers = [ln.split()[1] for ln in resolv.splitlines()
                       if ln.startswith("nameserver")]
            assert servers == (["10.53.0.1"] if network == "bridge"
                               else [gateway(net, "hf")]), resolv
            assert "search corp.test" in resolv and "ndots:2" in resolv, resolv
            assert hostname.strip() == "boxy"
    finally:
        docker(net, "network", "rm", "hf")


def test_link_on_the_default_bridge(net: Net, www: Path) -> None:
    try:
        web(net, www, "mysql")
        addr = ip_on(net, "mysql", "bridge")
        hosts = client(net, "bridge", "cat", "/etc/hosts", extra=("--link", "mysql:db")).stdout
        line = next((ln for ln in hosts.splitlines() if ln.startswith(addr)), "")
        assert "db" in line.split() and "mysql" in line.split(), hosts
        # --dns 127.0.0.1: a lookup that reached DNS would stay inside the container (the
        # default bridge's resolv.conf names the host's resolvers: never asked here)
        local_dns = ("--dns", "127.0.0.1")
        p = client(net, "bridge", "sh", "-c", "timeout 10 wget -qO- http://db/; exit $?",
                   extra=("--link", "mysql:db", *local_dns))
        assert p.returncode == 0 and p.stdout == PAGE, p
        # without the link, the default bridge has no names
        p = client(net, "bridge", "sh", "-c", "timeout 3 wget -qO- http://mysql/; exit $?",
                   extra=local_dns)
        assert p.returncode != 0 and PAGE not in p.stdout, p
    finally:
        rm(net, "mysql")


def test_connectivity_survives_daemon_kill9_and_restart(net: Net, www: Path) -> None:
    port = free_port()
    docker(net, "network", "create", "surv")
    try:
        web(net, www, "keep", "--network", "surv", "-p", f"127.0.0.1:{port}:80")
        reaches(net, "surv", "http://keep/")
        assert host_fetch(f"http://127.0.0.1:{port}/") == PAGE
        net.d.kill9()
        net.d.restart()
        assert inspect(net, "{{.State.Running}}", "keep") == ["true"]
        reaches(net, "surv", "http://keep/")
        assert host_fetch(f"http://127.0.0.1:{port}/") == PAGE
        # the port is still held: nobody else gets it
        with socket.socket() as s, pytest.raises(OSError):
            s.bind(("127.0.0.1", port))
        docker(net, "port", "keep")
        # and a new container still gets a fresh address and the name service
        web(net, www, "after", "--network", "surv")
        assert ip_on(net, "after", "surv") != ip_on(net, "keep", "surv")
        reaches(net, "surv", "http://after/")
    finally:
        rm(net, "keep", "after")
        docker(net, "network", "rm", "surv")


def test_network_connect_survives_daemon_restart(net: Net, www: Path) -> None:
    """A second network connected while running keeps its veth and name through a kill -9 and
    restart, and can be disconnected afterwards."""
    docker(net, "network", "create", "ra")
    docker(net, "network", "create", "rb")
    try:
        web(net, www, "dual", "--network", "ra")
        docker(net, "network", "connect", "rb", "dual")
        reaches(net, "rb", "http://dual/")
        net.d.kill9()
        net.d.restart()
        reaches(net, "ra", "http://dual/")
        reaches(net, "rb", "http://dual/")
        docker(net, "network", "disconnect", "rb", "dual")
        ifaces = docker(net, "exec", "dual", "ip", "-o", "link").stdout
        assert "eth1" not in ifaces, ifaces
        blocked(net, "rb", "http://dual/")
        docker(net, "network", "connect", "rb", "dual")
        reaches(net, "rb", "http://dual/")
    finally:
        rm(net, "dual")
        docker(net, "network", "rm", "ra", "rb")


# ------------------------------------------------------------------------------ acceptance 2

@pytest.mark.parametrize(("args", "message"), [
    (("--subnet", "10.234.0.0/16"), "overlap"),
    (("--subnet", "10.234.1.300/24"), "invalid"),
    (("--subnet", "10.234.0.0/33"), "invalid"),
    (("--subnet", "10.235.0.0/24", "--gateway", "10.236.0.1"), "gateway"),
])
def test_bad_network_create(net: Net, args: tuple[str, ...], message: str) -> None:
    docker(net, "network", "create", "--subnet", "10.234.0.0/24", "base")
    try:
        before = net.state()
        p = docker(net, "network", "create", *args, "bad", check=False)
        assert p.returncode != 0, p.stdout
        assert message in p.stderr.lower(), p.stderr
        assert net.state() == before
        assert "bad" not in docker(net, "network", "ls", "--format", "{{.Name}}").stdout.split()
    finally:
        docker(net, "network", "rm", "base")


def test_run_on_unknown_network(net: Net) -> None:
    before = net.state()
    p = docker(net, "run", "--rm", "--network", "nosuchnet", "busybox", "true", check=False)
    assert p.returncode == 125, p
    assert "nosuchnet" in p.stderr and "not found" in p.stderr, p.stderr
    p = docker(net, "run", "-d", "--name", "orphan", "--network", "nosuchnet", "busybox",
               "true", check=False)
    assert p.returncode == 125, p
    assert net.state() == before
    assert docker(net, "ps", "-aq").stdout.strip() == ""


def test_ip_outside_the_subnet(net: Net) -> None:
    docker(net, "network", "create", "--subnet", "10.237.0.0/24", "fixed")
    try:
        before = net.state()
        p = docker(net, "run", "--rm", "--network", "fixed", "--ip", "10.238.0.5", "busybox",
                   "true", check=False)
        assert p.returncode == 125, p
        assert "10.238.0.5" in p.stderr, p.stderr
        assert net.state() == before
        # inside it, --ip is honoured
        p = client(net, "fixed", "ip", "-o", "-4", "addr", "show", "eth0",
                   extra=("--ip", "10.237.0.77"))
        assert "10.237.0.77/24" in p.stdout, p
    finally:
        docker(net, "network", "rm", "fixed")


def test_port_already_allocated(net: Net, www: Path) -> None:
    port = free_port()
    try:
        web(net, www, "first", "-p", f"{port}:80")
        assert host_fetch(f"http://127.0.0.1:{port}/") == PAGE
        before_veths, before_ns, before_fw = net.veths(), net.netns(), _nft_table(net.table)
        p = docker(net, "run", "-d", "--name", "second", "-p", f"{port}:80", "busybox",
                   "sleep", "600", check=False)
        assert p.returncode != 0, p
        assert "port is already allocated" in p.stderr, p.stderr
        assert inspect(net, "{{.State.Running}}", "second") == ["false"]
        assert net.veths() == before_veths
        assert net.netns() == before_ns
        assert _nft_table(net.table) == before_fw
        assert host_fetch(f"http://127.0.0.1:{port}/") == PAGE
        # a port held by another program of the host: the same error
        rm(net, "first", "second")
        with socket.socket() as s:
            s.bind(("0.0.0.0", port))
            s.listen()
            p = docker(net, "run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
            assert p.returncode != 0 and "port is already allocated" in p.stderr, p.stderr
    finally:
        rm(net, "first", "second")
    assert net.veths() == set()


def test_remove_network_in_use(net: Net) -> None:
    docker(net, "network", "create", "busy")
    try:
        docker(net, "run", "-d", "--name", "user", "--network", "busy", "busybox", "sleep", "600")
        p = docker(net, "network", "rm", "busy", check=False)
        assert p.returncode != 0, p
        assert "active endpoints" in p.stderr or "in use" in p.stderr, p.stderr
        assert "busy" in docker(net, "network", "ls", "--format", "{{.Name}}").stdout.split()
        # still working for its container
        assert ip_on(net, "user", "busy")
        rm(net, "user")
        docker(net, "network", "rm", "busy")
        assert "busy" not in docker(net, "network", "ls", "--format", "{{.Name}}").stdout.split()
    finally:
        rm(net, "user")
        docker(net, "network", "rm", "busy", check=False)


def test_a_bridge_deleted_behind_the_daemons_back_is_made_again(net: Net, www: Path) -> None:
    """The daemon sets a network's bridge up once and afterwards only checks that it exists:
    one deleted by hand (no container attached) is made again, with its gateway, at the next
    start."""
    docker(net, "network", "create", "gone")
    try:
        client(net, "gone", "true")  # the bridge is made and cached
        bridge = next(b for b in net.bridges() if b != net.bridge)
        subprocess.run(["ip", "link", "del", bridge], check=True)
        web(net, www, "again", "--network", "gone")
        assert os.path.exists(f"/sys/class/net/{bridge}")
        reaches(net, "gone", "http://again/")
    finally:
        rm(net, "again")
        docker(net, "network", "rm", "gone")


def test_a_table_deleted_behind_the_daemons_back_is_applied_whole_again(net: Net,
                                                                       www: Path) -> None:
    """Published ports are added to the daemon's table; when the table is gone (an admin ran
    `nft flush ruleset`), the next start applies the whole table instead of failing."""
    first, second = free_port(), free_port()
    try:
        web(net, www, "keep", "-p", f"127.0.0.1:{first}:80")
        assert host_fetch(f"http://127.0.0.1:{first}/") == PAGE
        subprocess.run(["nft", "delete", "table", "inet", net.table], check=True)
        web(net, www, "more", "-p", f"127.0.0.1:{second}:80")
        assert host_fetch(f"http://127.0.0.1:{second}/") == PAGE
        assert host_fetch(f"http://127.0.0.1:{first}/") == PAGE  # its rule is back too
    finally:
        rm(net, "keep", "more")
