"""IPAM, pure: pick a subnet for a new network, check a user's subnet/gateway/range, hand out
addresses inside a network, and derive Docker's MAC address from an IPv4 address.

Docker's rules, as its default IPAM driver applies them:
- A subnet picked automatically comes from the address pools in order (172.17.0.0/16 …
  172.31.0.0/16, then 192.168.0.0/16 in /20s) and overlaps neither another network nor any route or
  address of the host (default routes excepted). A user's ``--subnet`` is only checked against the
  other networks ("Pool overlaps with other one on this address space").
- Addresses are handed out from the start of the ip-range (the subnet when none), the lowest free
  one first, never the subnet's network or broadcast address nor the gateway. Docker reuses a
  released address; so do we (the lowest free one).
"""

from __future__ import annotations

import ipaddress

from dockyard.errors import Conflict, FailedPrecondition, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    Net = ipaddress.IPv4Network
    Addr = ipaddress.IPv4Address

#: Docker's ``default-address-pools``: (base, size of each subnet cut from it).
DEFAULT_POOLS: tuple[tuple[str, int], ...] = tuple(
    (f"172.{n}.0.0/16", 16) for n in range(17, 32)) + (("192.168.0.0/16", 20),)

#: The smallest network a bridge can use: network, gateway, one container, broadcast.
MAX_PREFIX = 30


def parse_cidr(text: str) -> Net:
    """An IPv4 CIDR (host bits allowed and dropped, as Go's ``net.ParseCIDR``); docker's error
    text otherwise. IPv6 is refused (dockyard has no IPv6 networking)."""
    if not isinstance(text, str) or "/" not in text:
        raise InvalidArgument(f"invalid CIDR address: {text}")
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid CIDR address: {text}") from None
    if net.version != 4:
        raise InvalidArgument(f"invalid subnet {text}: IPv6 networks are not supported")
    return net  # type: ignore[return-value]


def parse_ip(text: str, what: str = "address") -> Addr:
    try:
        addr = ipaddress.ip_address(text.strip())
    except (ValueError, AttributeError):
        raise InvalidArgument(f"invalid {what}: {text}") from None
    if addr.version != 4:
        raise InvalidArgument(f"invalid {what} {text}: IPv6 is not supported")
    return addr  # type: ignore[return-value]


def _route_nets(host_routes: Iterable[str]) -> list[Net]:
    """The host's routes and addresses as networks; default routes and garbage are ignored (a
    default route overlaps everything, and Docker ignores it too)."""
    out = []
    for r in host_routes:
        try:
            net = ipaddress.ip_network(r.strip(), strict=False)
        except ValueError:
            continue
        if net.version == 4 and net.prefixlen > 0:
            out.append(net)
    return out  # type: ignore[return-value]


def _overlaps(net: Net, others: Iterable[Net]) -> bool:
    return any(net.overlaps(o) for o in others)


def pick_subnet(pool: Sequence[tuple[str, int]] | None, taken: Iterable[str | Net],
                host_routes: Iterable[str]) -> Net:
    """The first subnet of the pools that overlaps neither ``taken`` (other networks' subnets) nor
    the host's routes/addresses. ``FailedPrecondition`` when every one is used."""
    used = [t if isinstance(t, ipaddress.IPv4Network) else parse_cidr(t) for t in taken if t]
    routes = _route_nets(host_routes)
    for base_text, size in pool or DEFAULT_POOLS:
        base = parse_cidr(base_text)
        if not base.prefixlen <= size <= MAX_PREFIX:
            raise InvalidArgument(f"invalid address pool {base_text} size {size}: the size must "
                                  f"be between {base.prefixlen} and {MAX_PREFIX}")
        if not _overlaps(base, used) and not _overlaps(base, routes):
            return next(base.subnets(new_prefix=size))  # the usual case: the whole base is free
        for net in base.subnets(new_prefix=size):
            if not _overlaps(net, used) and not _overlaps(net, routes):
                return net
    raise FailedPrecondition("could not find an available, non-overlapping IPv4 address pool "
                             "among the defaults to assign to the network")


def parse_pools(specs: Iterable[str]) -> list[tuple[str, int]]:
    """``--default-address-pool base=10.10.0.0/16,size=24`` values → pools."""
    pools = []
    for spec in specs:
        fields = dict(kv.partition("=")[::2] for kv in spec.split(",") if kv)
        base, size = fields.get("base", ""), fields.get("size", "")
        if not base or not size.isdigit() or set(fields) - {"base", "size"}:
            raise InvalidArgument(f"invalid default address pool {spec!r}: want "
                                  "base=CIDR,size=N")
        parse_cidr(base)
        pools.append((base, int(size)))
    return pools


def default_gateway(subnet: Net) -> Addr:
    """The first host address of the subnet (Docker's default gateway)."""
    return subnet.network_address + 1


def validate_config(subnet: str, gateway: str = "", ip_range: str = "",
                    existing: Iterable[str | Net] = ()) -> tuple[Net, Addr, Net | None]:
    """A user's ``--subnet/--gateway/--ip-range`` checked as Docker does; the parsed values with
    the gateway defaulted. ``Conflict`` when the subnet overlaps another network's."""
    net = parse_cidr(subnet)
    if net.prefixlen > MAX_PREFIX:
        raise InvalidArgument(f"invalid subnet {subnet}: a bridge network needs at least a "
                              f"/{MAX_PREFIX} (network, gateway, one address, broadcast)")
    rng = None
    if ip_range:
        rng = parse_cidr(ip_range)
        if not rng.subnet_of(net):
            raise InvalidArgument(f"no matching subnet for range {ip_range}")
    if gateway:
        gw = parse_ip(gateway, "gateway")
        if gw not in net:
            raise InvalidArgument(f"no matching subnet for gateway {gateway}")
        if gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"invalid gateway {gateway}: it is the network or broadcast "
                                  f"address of {net}")
    else:
        gw = default_gateway(net)
    others = [e if isinstance(e, ipaddress.IPv4Network) else parse_cidr(e) for e in existing if e]
    if _overlaps(net, others):
        raise Conflict("Pool overlaps with other one on this address space")
    return net, gw, rng


def _addresses(subnet: Net, ip_range: Net | None) -> range:
    """Integer addresses that may be handed out (network and broadcast excluded)."""
    lo, hi = int(subnet.network_address) + 1, int(subnet.broadcast_address) - 1
    if ip_range is not None:
        lo = max(lo, int(ip_range.network_address))
        hi = min(hi, int(ip_range.broadcast_address))
    return range(lo, hi + 1)


def allocate(subnet: str | Net, ip_range: str | Net | None, gateway: str | Addr | None,
             used: Iterable[str | Addr], requested: str | None = None, *,
             network_name: str = "") -> Addr:
    """An address for a container: ``requested`` (``--ip``) if it is inside the subnet (and the
    range) and free, else the lowest free one of the range. ``Conflict`` ("Address already in
    use"), ``InvalidArgument`` (outside), ``FailedPrecondition`` (no address left)."""
    net = subnet if isinstance(subnet, ipaddress.IPv4Network) else parse_cidr(subnet)
    rng = None
    if ip_range:
        rng = ip_range if isinstance(ip_range, ipaddress.IPv4Network) else parse_cidr(ip_range)
    taken = {int(ipaddress.ip_address(str(u))) for u in used if u}
    if gateway:
        taken.add(int(ipaddress.ip_address(str(gateway))))
    candidates = _addresses(net, rng)
    if requested:
        addr = parse_ip(requested, "IPv4 address")
        if addr not in net or int(addr) in (int(net.network_address), int(net.broadcast_address)):
            raise InvalidArgument(f"invalid address {requested}: it is not a host address of "
                                  f"the network's subnet {net}")
        if int(addr) in taken:
            raise Conflict(f"allocate address {requested}: Address already in use")
        return addr
    for n in candidates:
        if n not in taken:
            return ipaddress.IPv4Address(n)
    where = f" {network_name}" if network_name else ""
    raise FailedPrecondition(f"no available IPv4 addresses on this network's address pools:"
                             f"{where} ({rng or net})")


def mac_for(ip: str | Addr) -> str:
    """Docker's MAC for an IPv4 address: 02:42 then the four bytes of the address."""
    packed = ipaddress.IPv4Address(str(ip)).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def parse_mac(text: str) -> str:
    """A unicast MAC address, lower case; docker's error otherwise."""
    parts = text.strip().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                  for p in parts):
        raise InvalidArgument(f"invalid MAC address: {text}")
    mac = ":".join(parts).lower()
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"invalid MAC address {text}: a multicast address")
    return mac
