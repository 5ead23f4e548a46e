"""``NetworkService``: Docker's networks and endpoints as records, with addresses from ``ipam``.

This is the bookkeeping half of networking: which networks exist, their subnets, which container
holds which address. It creates no kernel object: the driver (``network.driver``) makes bridges and
veths from these records, and the engine calls both. Every method runs on the store's thread
(SQLite), like ``ImageService`` and ``VolumeService``.

Why allocation retries: the UNIQUE (network_id, ip) index is the real guard against a double
allocation; a lost race (another writer on the same database) surfaces as ``AddressInUse`` and the
next free address is tried.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from dockyard.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
)
from dockyard.metadata.networks import AddressInUse
from dockyard.network import ipam
from dockyard.network.model import (
    BRIDGE,
    BRIDGE_NAME_OPTION,
    DEFAULT_BRIDGE_IFACE,
    DEFAULT_BRIDGE_OPTIONS,
    DRIVERS,
    PREDEFINED,
    Attachment,
    Endpoint,
    Network,
    is_predefined,
)
from dockyard.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    from dockyard.metadata.db import Database

    Pairs = Mapping[str, str] | Iterable[tuple[str, str]] | None
    Filters = Mapping[str, Sequence[str]] | None

_NAME_RE = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
_FILTER_KEYS = frozenset(("driver", "id", "label", "name", "scope", "type", "dangling"))
_PRUNE_KEYS = frozenset(("until", "label", "label!"))
IFNAMSIZ = 15  # the longest interface name the kernel takes


def rfc3339_nano(t: float) -> str:
    """Docker's ``Created``: RFC 3339 with nanoseconds, UTC."""
    secs = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + \
        f".{int(round((t - secs) * 1e9)) % 1000000000:09d}Z"


def endpoint_id(network_id: str, container_id: str) -> str:
    """A stable 64-hex id for an endpoint (Docker shows one; the schema keys endpoints by pair)."""
    return hashlib.sha256(f"{network_id}/{container_id}".encode()).hexdigest()


def _pairs(values: Pairs, what: str) -> tuple[tuple[str, str], ...]:
    items = values.items() if hasattr(values, "items") else (values or ())  # type: ignore[union-attr]
    out = {}
    for k, v in items:
        if not isinstance(k, str) or not isinstance(v, str) or not k:
            raise InvalidArgument(f"invalid network {what} {k!r}={v!r}: want non-empty string "
                                  "keys and string values")
        out[k] = v
    return tuple(sorted(out.items()))


def _bool_filter(key: str, value: str) -> bool:
    v = value.lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise InvalidArgument(f"invalid filter '{key}={value}': want true or false")


def _label_match(labels: dict[str, str], spec: str) -> bool:
    k, eq, v = spec.partition("=")
    return k in labels and (not eq or labels[k] == v)


def _search(pattern: str, text: str) -> bool:
    """Docker's filter match: the value equals the text or, as a regular expression, is found in
    it."""
    if pattern == text:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


class NetworkService:
    def __init__(self, db: Database, *, host_routes: Callable[[], list[str]] | None = None,
                 default_bridge_subnet: str | None = None,
                 address_pools: Sequence[tuple[str, int]] | None = None,
                 default_bridge: str = DEFAULT_BRIDGE_IFACE) -> None:
        """``host_routes`` lists the host's routes and addresses (CIDRs) a picked subnet must not
        overlap; ``default_bridge_subnet`` is dockerd's ``--bip`` (the bridge's address with its
        prefix, e.g. ``10.99.0.1/24``); ``address_pools`` dockerd's ``--default-address-pool``
        (``ipam.DEFAULT_POOLS`` when None)."""
        self.db = db
        self.default_bridge = default_bridge  # dockerd's -b/--bridge: the default network's iface
        self._host_routes = host_routes or (lambda: [])
        self._bip = default_bridge_subnet or ""
        self._pools = list(address_pools) if address_pools else list(ipam.DEFAULT_POOLS)
        if self._bip:
            ipam.parse_cidr(self._bip)

    # ------------------------------------------------------------------ defaults

    def _pick(self) -> ipam.Net:
        taken = [n.subnet for n in self.db.networks.all() if n.subnet]
        return ipam.pick_subnet(self._pools, taken, self._host_routes())

    def _bip_config(self) -> tuple[str, str]:
        addr = self._bip.partition("/")[0]
        net = ipam.parse_cidr(self._bip)
        gw = ipam.parse_ip(addr, "--bip address")
        if gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"invalid --bip {self._bip}: the address is the network's or "
                                  "broadcast address")
        return str(net), str(gw)

    def ensure_defaults(self) -> list[Network]:
        """The pre-defined networks ``bridge`` (interface ``dockyard0``), ``host`` and ``none``,
        created once (their ids stay). The bridge's subnet is ``--bip``'s or picked from the
        pools; a changed ``--bip`` moves it while no container is attached."""
        out = []
        with self.db.transaction():
            for name, driver in PREDEFINED.items():
                net = self.db.networks.by_name(name)
                if net is None:
                    rec = Network(secrets.token_hex(32), name, driver, time.time())
                    if driver == "bridge":
                        subnet, gateway = self._bip_config() if self._bip else \
                            (str(sub := self._pick()), str(ipam.default_gateway(sub)))
                        options = tuple(sorted({**dict(DEFAULT_BRIDGE_OPTIONS),
                                                BRIDGE_NAME_OPTION: self.default_bridge}.items()))
                        rec = replace(rec, subnet=subnet, gateway=gateway,
                                      bridge=self.default_bridge, options=options)
                    net = self.db.networks.add(rec)
                elif driver == "bridge" and self._bip:
                    subnet, gateway = self._bip_config()
                    if (subnet, gateway) != (net.subnet, net.gateway) and \
                            not self.db.networks.endpoints_of_network(net.id):
                        net = self.db.networks.update(replace(net, subnet=subnet,
                                                              gateway=gateway, ip_range=""))
                out.append(net)
        return out

    # ------------------------------------------------------------------ lookup

    def get(self, ref: str | Network) -> Network:
        """By full id, name, or unique id prefix (Docker's order); ``NotFound`` otherwise."""
        if isinstance(ref, Network):
            ref = ref.id
        if not isinstance(ref, str) or not ref:
            raise NotFound(f"network {ref} not found")
        repo = self.db.networks
        net = repo.get(ref) or repo.by_name(ref)
        if net is not None:
            return net
        matches = repo.by_prefix(ref)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(matches)} matches found "
                                  "based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def list(self, filters: Filters = None) -> list[Network]:
        """Docker's filters: ``driver``, ``id`` and ``name`` (equal, or a regular expression found
        in it), ``label`` (key or key=value), ``scope`` (local), ``type`` (custom|builtin),
        ``dangling`` (true: a user network no container is attached to)."""
        filters = dict(filters or {})
        for key in filters:
            if key not in _FILTER_KEYS:
                raise InvalidArgument(f"invalid filter '{key}'")
        for t in filters.get("type", ()):
            if t not in ("custom", "builtin"):
                raise InvalidArgument(f"invalid filter: 'type'='{t}'")
        dangling = [_bool_filter("dangling", d) for d in filters.get("dangling", ())]
        counts = self.db.networks.endpoint_counts()
        out = []
        for net in self.db.networks.all():
            builtin = is_predefined(net)
            checks = (
                ("driver", lambda v: v == net.driver),
                ("id", lambda v: _search(v, net.id)),
                ("name", lambda v: _search(v, net.name)),
                ("scope", lambda v: v == "local"),
                ("type", lambda v: (v == "builtin") == builtin),
                ("label", lambda v: _label_match(dict(net.labels), v)),
            )
            if not all(any(test(v) for v in filters[key]) for key, test in checks
                       if filters.get(key)):
                continue
            if dangling and not any(d == (not builtin and not counts.get(net.id))
                                    for d in dangling):
                continue
            out.append(net)
        return out

    # ------------------------------------------------------------------ create, remove, prune

    def create(self, name: str, driver: str = "bridge", subnet: str = "", gateway: str = "",
               ip_range: str = "", internal: bool = False, labels: Pairs = (),
               options: Pairs = (), check_duplicate: bool = True) -> Network:
        """A user network. ``check_duplicate`` is accepted for Docker's API; names are unique
        regardless (the database says so)."""
        del check_duplicate
        if not isinstance(name, str) or not name:
            raise InvalidArgument("create network: the name must not be empty")
        if not _NAME_RE.match(name):
            raise InvalidArgument(f"create network {name}: invalid name: only "
                                  "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        driver = driver or "bridge"
        if driver in PREDEFINED.values() and driver not in DRIVERS:
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver not in DRIVERS:
            raise NotFound(f'create network {name}: plugin "{driver}" not found')
        if self.db.networks.by_name(name) is not None:
            raise AlreadyExists(f"network with name {name} already exists")
        label_pairs, option_pairs = _pairs(labels, "label"), _pairs(options, "option")
        if (gateway or ip_range) and not subnet:
            raise InvalidArgument(f"create network {name}: --gateway and --ip-range need "
                                  "--subnet")
        nid = secrets.token_hex(32)
        bridge = dict(option_pairs).get(BRIDGE_NAME_OPTION) or f"dy-{nid[:12]}"
        if len(bridge) > IFNAMSIZ or not re.fullmatch(r"[a-zA-Z0-9_.-]+", bridge):
            raise InvalidArgument(f"create network {name}: invalid bridge name {bridge!r}: at "
                                  f"most {IFNAMSIZ} characters of [a-zA-Z0-9_.-]")
        with self.db.transaction():
            others = self.db.networks.all()
            if any(n.bridge == bridge for n in others):
                raise Conflict(f"create network {name}: bridge {bridge} is already used by "
                               "another network")
            taken = [n.subnet for n in others if n.subnet]
            if subnet:
                net, gw, rng = ipam.validate_config(subnet, gateway, ip_range, taken)
            else:
                net = ipam.pick_subnet(self._pools, taken, self._host_routes())
                gw, rng = ipam.default_gateway(net), None
            rec = Network(nid, name, driver, time.time(), str(net), str(gw),
                          str(rng) if rng else "", bool(internal), bridge, label_pairs,
                          option_pairs)
            return self.db.networks.add(rec)

    def remove(self, ref: str | Network) -> Network:
        """Docker's ``network rm``: ``Forbidden`` for a pre-defined network or one with
        containers attached. Returns the removed network (the driver then drops its bridge)."""
        net = self.get(ref)
        if is_predefined(net):
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        with self.db.transaction():
            if self.db.networks.endpoints_of_network(net.id):
                raise Forbidden(f"error while removing network: network {net.name} id {net.id} "
                                "has active endpoints")
            self.db.networks.delete(net.id)
        return net

    def prune(self, filters: Filters = None) -> list[Network]:
        """Remove user networks no container is attached to. Filters: ``until`` (unix time or
        RFC 3339 / Go duration as Docker: only unix seconds and ``<n>s|m|h`` here), ``label``,
        ``label!``. Returns the removed networks."""
        filters = dict(filters or {})
        for key in filters:
            if key not in _PRUNE_KEYS:
                raise InvalidArgument(f"invalid filter '{key}'")
        until = [_until(v) for v in filters.get("until", ())]
        counts = self.db.networks.endpoint_counts()
        removed = []
        for net in self.db.networks.all():
            labels = dict(net.labels)
            if is_predefined(net) or counts.get(net.id):
                continue
            if until and not all(net.created < u for u in until):
                continue
            if filters.get("label") and not all(_label_match(labels, v)
                                                for v in filters["label"]):
                continue
            if any(_label_match(labels, v) for v in filters.get("label!", ())):
                continue
            try:
                self.db.networks.delete(net.id)
            except Conflict:  # an endpoint came in meanwhile: not unused after all
                continue
            removed.append(net)
        return removed

    # ------------------------------------------------------------------ endpoints

    def container(self, ref: str) -> tuple[str, str]:
        """``(id, name)`` of a container row by id, name or unique id prefix (for callers
        without the engine's lookup)."""
        rows = self.db.containers.all()
        for c in rows:
            if c.id == ref or c.name == ref.lstrip("/"):
                return c.id, c.name
        matches = [c for c in rows if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0].id, matches[0].name
        raise NotFound(f"No such container: {ref}")

    def connect(self, network: str | Network, container_id: str, *, ip: str | None = None,
                aliases: Iterable[str] = (), mac: str = "", container_name: str = ""
                ) -> Endpoint:
        """Attach the container: an address from the network's IPAM (``ip``: that one; Docker's
        ``--ip``) and Docker's MAC for it unless ``mac`` is given. Host and null networks get an
        endpoint without address. ``Conflict`` when already attached."""
        net = self.get(network)
        who = container_name or container_id
        aliases = tuple(dict.fromkeys(a for a in aliases if a))
        if self.db.networks.endpoint(net.id, container_id) is not None:
            raise Conflict(f"endpoint with name {who} already exists in network {net.name}")
        if mac:
            mac = ipam.parse_mac(mac)
        if not net.subnet:
            if ip:
                raise InvalidArgument(f"connect {who} to network {net.name}: the network has no "
                                      "addresses to choose from")
            return self.db.networks.add_endpoint(net.id, container_id, "", "", aliases)
        if ip and is_predefined(net):
            raise InvalidArgument("user specified IP address is supported on user defined "
                                  "networks only")
        used = {e.ip for e in self.db.networks.endpoints_of_network(net.id)}
        for _ in range(64):
            addr = ipam.allocate(net.subnet, net.ip_range or None, net.gateway, used, ip,
                                 network_name=net.name)
            try:
                return self.db.networks.add_endpoint(net.id, container_id, str(addr),
                                                     mac or ipam.mac_for(addr), aliases)
            except AlreadyExists:
                raise Conflict(f"endpoint with name {who} already exists in network "
                               f"{net.name}") from None
            except AddressInUse:
                if ip:
                    raise Conflict(f"allocate address {ip} on network {net.name}: Address "
                                   "already in use") from None
                used.add(str(addr))
        raise Conflict(f"connect {who} to network {net.name}: lost the race for an address "
                       "too many times")

    def disconnect(self, network: str | Network, container_id: str, force: bool = False
                   ) -> Endpoint | None:
        """Detach the container (its address is free again); the removed endpoint. ``Conflict``
        when it is not attached, unless ``force``."""
        net = self.get(network)
        ep = self.db.networks.endpoint(net.id, container_id)
        if ep is None or not self.db.networks.remove_endpoint(net.id, container_id):
            if force:
                return None
            raise Conflict(f"container {container_id} is not connected to network {net.name}")
        return ep

    def disconnect_all(self, container_id: str) -> list[Attachment]:
        """Detach the container from every network (its removal); what it was attached to."""
        gone = self.endpoints_of(container_id)
        with self.db.transaction():
            for a in gone:
                self.db.networks.remove_endpoint(a.network.id, container_id)
        return gone

    def endpoints_of(self, container_id: str) -> list[Attachment]:
        """The container's endpoints with their networks, by network name."""
        out = []
        for ep in self.db.networks.endpoints_of_container(container_id):
            net = self.db.networks.get(ep.network_id)
            if net is not None:
                out.append(Attachment(net, ep))
        return sorted(out, key=lambda a: a.network.name)

    def endpoints_of_network(self, network: str | Network) -> list[Endpoint]:
        return self.db.networks.endpoints_of_network(self.get(network).id)

    # ------------------------------------------------------------------ Docker's JSON

    def to_docker_json(self, network: Network,
                       containers: Mapping[str, tuple[str, Endpoint]] | None = None
                       ) -> dict[str, Any]:
        """Docker's ``GET /networks/{id}`` object. ``containers``: id → (name, endpoint); taken
        from the database when None."""
        if containers is None:
            names = {c.id: c.name for c in self.db.containers.all()}
            containers = {ep.container_id: (names.get(ep.container_id, ""), ep)
                          for ep in self.db.networks.endpoints_of_network(network.id)}
        prefix = network.subnet.partition("/")[2]
        config = []
        if network.subnet:
            entry = {"Subnet": network.subnet}
            if network.ip_range:
                entry["IPRange"] = network.ip_range
            if network.gateway:
                entry["Gateway"] = network.gateway
            config.append(entry)
        return {
            "Name": network.name, "Id": network.id, "Created": rfc3339_nano(network.created),
            "Scope": "local", "Driver": network.driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default",
                     "Options": None if is_predefined(network) else {},
                     "Config": config},
            "Internal": network.internal, "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": {cid: {"Name": name, "EndpointID": endpoint_id(network.id, cid),
                                 "MacAddress": ep.mac,
                                 "IPv4Address": f"{ep.ip}/{prefix}" if ep.ip else "",
                                 "IPv6Address": ""}
                           for cid, (name, ep) in sorted(containers.items())},
            "Options": dict(network.options), "Labels": dict(network.labels),
        }

    def summary_json(self, network: Network) -> dict[str, Any]:
        """``GET /networks`` lists the same object (dockerd includes no containers there)."""
        doc = self.to_docker_json(network, {})
        return doc


def _until(value: str) -> float:
    """``until`` of prune: unix seconds (``1700000000[.5]``), RFC 3339 date-time, or a duration
    before now (``10m``, ``2h``, ``30s``)."""
    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)", v)
    if m:
        return time.time() - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    import datetime

    try:
        return datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(f"invalid filter 'until={value}': want a timestamp, date or "
                              "duration") from None
