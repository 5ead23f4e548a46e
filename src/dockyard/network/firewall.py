"""The nftables rule set dockyard owns: one table, ``inet dockyard``, rendered whole (pure).

``render`` returns an ``nft -f`` script that creates the table if absent, deletes it and creates it
again with every chain, in one transaction: the kernel swaps the whole table atomically, and no
other table (docker's, firewalld's, the admin's) is read or touched.

What the table does (Docker's bridge driver with ``userland-proxy=false``, in nftables):

* ``nat prerouting`` / ``nat output``: published ports. Traffic to a local address (``fib daddr
  type local``) or to the binding's host IP is DNATed to ``container_ip:container_port``. The output
  hook covers connections from the host itself, 127.0.0.1 included.
* ``nat postrouting``: masquerade (1) traffic from 127.0.0.0/8 DNATed out through a bridge
  (needs ``route_localnet=1`` on the bridge, which the driver sets), (2) DNATed traffic that goes
  back out the bridge it came from (hairpin: a container reaching itself or a neighbour through a
  host port), (3) traffic from a non-internal network's subnet leaving through any other interface.
* ``filter forward``: an ``--internal`` network forwards only to itself; a network never forwards
  to another dockyard bridge, except for connections to a published port (``ct status dnat``),
  which are reachable from anywhere the host's ports are.
* ``filter input``: packets from a bridge addressed to 127.0.0.0/8 are dropped (route_localnet
  must not expose the host's loopback services to containers; CVE-2020-8558).

Chains of other tables still see the packets: a DROP policy elsewhere (iptables FORWARD) wins.
"""

from __future__ import annotations

import ipaddress

from dockyard.errors import InvalidArgument
from dockyard.record import Record

TABLE = "dockyard"
FAMILY = "inet"


class NetRule(Record):
    bridge: str
    subnet: str           # "172.18.0.0/16"
    internal: bool = False


class PortRule(Record):
    proto: str            # "tcp" | "udp" | "sctp"
    host_ip: str          # "" or "0.0.0.0": every local address; else that IPv4 address
    host_port: int
    container_ip: str
    container_port: int
    bridge: str = ""


class Ruleset(Record):
    networks: tuple[NetRule, ...] = ()
    ports: tuple[PortRule, ...] = ()


def _q(name: str) -> str:
    if not name or any(c in name for c in '"\\ \t\n;{}') or len(name) > 15:
        raise InvalidArgument(f"firewall: bad interface name {name!r}")
    return f'"{name}"'


def _net(subnet: str) -> str:
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError as exc:
        raise InvalidArgument(f"firewall: bad subnet {subnet!r}: {exc}") from None
    if net.version != 4:
        raise InvalidArgument(f"firewall: only IPv4 subnets are supported, got {subnet!r}")
    return str(net)


def _ip4(addr: str, what: str) -> str:
    try:
        ip = ipaddress.IPv4Address(addr)
    except ValueError:
        raise InvalidArgument(f"firewall: bad {what} {addr!r} (IPv4 expected)") from None
    return str(ip)


def _port(p: int, what: str) -> int:
    if not isinstance(p, int) or not 1 <= p <= 65535:
        raise InvalidArgument(f"firewall: bad {what} {p!r}")
    return p


def _set(names: list[str]) -> str:
    return "{ " + ", ".join(_q(n) for n in names) + " }"


def _dnat_rules(ports: tuple[PortRule, ...]) -> list[str]:
    out = []
    for p in ports:
        proto = p.proto.lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"firewall: bad protocol {p.proto!r} for port {p.host_port}")
        hport = _port(p.host_port, "host port")
        target = f"{_ip4(p.container_ip, 'container address')}:{_port(p.container_port, 'container port')}"
        if p.host_ip in ("", "0.0.0.0"):
            match = "fib daddr type local"
        elif p.host_ip == "::":
            continue  # IPv6 is not published (containers have IPv4 only)
        else:
            match = f"ip daddr {_ip4(p.host_ip, 'host address')}"
        out.append(f"meta nfproto ipv4 {match} {proto} dport {hport} dnat ip to {target}")
    return out


def render(ruleset: Ruleset, table: str = TABLE) -> str:
    """The whole ``inet dockyard`` table as one atomic ``nft -f`` script (``table``: another
    name, for tests that must not replace a running daemon's table)."""
    if not table.replace("_", "").isalnum():
        raise InvalidArgument(f"firewall: bad table name {table!r}")
    nets = ruleset.networks
    bridges = [n.bridge for n in nets]
    if len(set(bridges)) != len(bridges):
        raise InvalidArgument(f"firewall: a bridge is listed twice in {bridges}")
    dnat = _dnat_rules(ruleset.ports)

    post: list[str] = []
    fwd: list[str] = []
    inp: list[str] = []
    if bridges:
        post.append(f"ip saddr 127.0.0.0/8 oifname {_set(bridges)} masquerade")
        inp.append(f"iifname {_set(bridges)} ip daddr 127.0.0.0/8 ct direction original drop")
    for n in nets:
        br, sub = _q(n.bridge), _net(n.subnet)
        post.append(f"oifname {br} ip saddr {sub} ct status dnat masquerade")
        if n.internal:
            fwd.append(f"iifname {br} oifname != {br} drop")
            fwd.append(f"oifname {br} iifname != {br} drop")
        else:
            post.append(f"ip saddr {sub} oifname != {br} masquerade")
    if len(bridges) > 1:
        fwd.append("ct status dnat accept")
        for n in nets:
            if n.internal:
                continue
            others = [b for b in bridges if b != n.bridge]
            fwd.append(f"iifname {_q(n.bridge)} oifname {_set(others)} drop")

    def chain(name: str, hook: str, kind: str, prio: str, rules: list[str]) -> list[str]:
        return ([f"\tchain {name} {{",
                 f"\t\ttype {kind} hook {hook} priority {prio}; policy accept;"]
                + [f"\t\t{r}" for r in rules] + ["\t}"])

    body = (
        [f"\tchain ports {{"] + [f"\t\t{r}" for r in dnat] + ["\t}"]
        # always jumped to (an empty chain costs nothing): ports then come and go in their own
        # chain without touching a base chain (``additions``)
        + chain("prerouting", "prerouting", "nat", "dstnat", ["jump ports"])
        + chain("output", "output", "nat", "-100", ["jump ports"])
        + chain("postrouting", "postrouting", "nat", "srcnat", post)
        + chain("forward", "forward", "filter", "filter", fwd)
        + chain("input", "input", "filter", "filter", inp)
    )
    return "\n".join(
        [f"table {FAMILY} {table}", f"delete table {FAMILY} {table}", f"table {FAMILY} {table} {{"]
        + body + ["}", ""])


def additions(old: Ruleset, new: Ruleset, table: str = TABLE) -> str | None:
    """The script that turns the table ``render(old)`` made into ``render(new)`` by adding rules
    only, or None when ``new`` is not ``old`` plus published ports (then: ``render(new)``).

    Why: a container that publishes ports changes the table at its start. Adding a rule is one
    small transaction (~0.1 ms), while replacing the table deletes rules, and the kernel waits for
    an RCU grace period when rules go (~8-16 ms here). Port rules match distinct host ports (the
    ports holder refuses a second binding), so their order in the chain does not matter."""
    if not table.replace("_", "").isalnum():
        raise InvalidArgument(f"firewall: bad table name {table!r}")
    if old.networks != new.networks:
        return None
    have = set(old.ports)
    if not have.issubset(new.ports):
        return None
    added = tuple(p for p in new.ports if p not in have)
    return "".join(f"add rule {FAMILY} {table} ports {r}\n" for r in _dnat_rules(added))


def removal(table: str = TABLE) -> str:
    """The script that deletes dockyard's table (valid whether or not it exists)."""
    return f"table {FAMILY} {table}\ndelete table {FAMILY} {table}\n"
