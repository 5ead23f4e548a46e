"""A container's network stack, as the engine drives it (issue #5; DESIGN §3 "run").

    create (store thread): endpoints allocated (``NetworkService.connect``), /etc/hosts,
            /etc/resolv.conf, /etc/hostname written into the container's dir and bound into it;
            the spec joins the namespace file ``<exec-root>/netns/<id>`` (bridge networks)
    start:  namespace pinned, bridge ensured, a veth per endpoint, host ports held, the firewall
            table replaced, DNS records set — before the runtime creates the container
    exit:   veths, namespace, ports, DNS records dropped; the firewall table replaced
    rm:     endpoints go with the container row (CASCADE): addresses are free again

Modes: ``default``/``bridge`` (the default network ``dockyard0``), a user network's name or id,
``none`` (own namespace, only ``lo``: the runtime makes it), ``host``, ``container:<x>``.
"""

from __future__ import annotations

import asyncio
import logging
import os

from dockyard.errors import DockyardError, InvalidArgument, KernelError, NotFound
from dockyard.oci.runtime_spec import Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    from dockyard.engine.container import Container
    from dockyard.network import firewall
    from dockyard.network.model import Attachment

log = logging.getLogger("dockyard.network")

NO_STACK = ("none", "host")


def network_name(mode: str) -> str | None:
    """The network a ``NetworkMode`` attaches to; None for none/host/container:."""
    if mode in ("", "default", "bridge"):
        return "bridge"
    if mode in NO_STACK or mode.startswith("container:"):
        return None
    return mode


def _write(path: str, text: str) -> None:
    """Durably, and readable by the container's non-root users (they are bound in)."""
    from dockyard.runtime.state import write_atomic

    write_atomic(path, text.encode(), mode=0o644)


class Networking:
    def __init__(self, *, networks: Any, call: Callable[..., Awaitable[Any]], exec_root: str,
                 dns: Any = None, resolver: Any = None, host_resolv: str = "/etc/resolv.conf",
                 host_hosts: str = "/etc/hosts", table: str = "dockyard") -> None:
        self.networks = networks
        self.call = call
        self.exec_root = exec_root
        self.dns = dns
        self.resolver = resolver
        self.host_resolv = host_resolv
        self.host_hosts = host_hosts
        self.table = table  # the nftables table (inet) this daemon owns
        self._fw_lock = asyncio.Lock()
        self._applied = ""  # the table text last applied
        self._applied_rules: firewall.Ruleset | None = None  # ... and its rules (additions)
        self._bridges: set[tuple[str, str]] = set()  # (bridge, gateway/prefix) ensured (_bridge)
        self._listening: set[str] = set()
        self._dns_lock = asyncio.Lock()
        self.ports: dict[str, Any] = {}  # container id -> PortHolder
        self.published: dict[str, tuple] = {}  # container id -> bound PortBindings

    def netns_path(self, cid: str) -> str:
        return f"{self.exec_root}/netns/{cid}"

    # ------------------------------------------------------------ create (store thread)

    def attach_on_create(self, req: Any, cid: str, name: str) -> list[Attachment]:
        """Endpoints for the request's network mode (+ its EndpointsConfig for that network)."""
        target = network_name(req.network_mode)
        if target is None:
            return []
        try:
            net = self.networks.get(target)
        except NotFound as e:
            # 400, not 404: the docker CLI takes a 404 from create for a missing image and
            # tries to pull it (dockerd reports the unknown network as an invalid parameter)
            raise InvalidArgument(f"create container {name}: {e}") from None
        if net.driver != "bridge":
            raise InvalidArgument(f"network {net.name}: containers join a {net.driver} network "
                                  f"with --network {net.driver}")
        ep = next((e for e in req.endpoints if e.network in (target, net.id, net.name)), None)
        aliases = tuple(ep.aliases) if ep else ()
        self.networks.connect(net, cid, ip=(ep.ipv4_address if ep else "") or None,
                              aliases=aliases, mac=req.mac_address or (ep.mac_address if ep
                                                                       else ""),
                              container_name=name)
        return self.networks.endpoints_of(cid)

    def files(self, req: Any, cid: str, hostname: str, attachments: list[Attachment],
              cdir: str, links: list[tuple[str, tuple[str, ...]]]) -> tuple[Mount, ...]:
        """/etc/hosts, /etc/resolv.conf and /etc/hostname of the container, as bind mounts."""
        from dockyard.network import hostfiles

        host_resolv = _read(self.host_resolv)
        if req.network_mode == "host":
            hosts_text = _read(self.host_hosts) or hostfiles.hosts(hostname)
        else:
            first = attachments[0].endpoint if attachments else None
            extra = [hostfiles.parse_add_host(h) for h in req.extra_hosts]
            hosts_text = hostfiles.hosts(hostname, first.ip if first and first.ip else None,
                                         req.run.domainname, extra=extra,
                                         links=[hostfiles.HostEntry(ip, names)
                                                for ip, names in links])
        embedded = None
        if attachments and attachments[0].network.name != "bridge" and self.dns is not None:
            embedded = attachments[0].network.gateway
        resolv_text = hostfiles.resolv_conf(host_resolv, req.dns, req.dns_search,
                                            req.dns_options, embedded_dns=embedded)
        paths = {"hosts": f"{cdir}/hosts", "resolv.conf": f"{cdir}/resolv.conf",
                 "hostname": f"{cdir}/hostname"}
        _write(paths["hosts"], hosts_text)
        _write(paths["resolv.conf"], resolv_text)
        _write(paths["hostname"], hostfiles.hostname_file(hostname))
        opts = ("rbind", "rprivate")
        return tuple(Mount(destination=f"/etc/{n}", type="bind", source=p, options=opts)
                     for n, p in paths.items())

    # ------------------------------------------------------------ start / exit

    @staticmethod
    def has_stack_mode(mode: str) -> bool:
        """The container gets its namespace and veths from here (a bridge network)."""
        return network_name(mode) is not None

    def has_stack(self, c: Container) -> bool:
        return network_name(c.req.network_mode) is not None

    async def prepare(self, c: Container) -> list[Attachment] | None:
        """Before the runtime creates the container: its pinned network namespace (the runtime
        joins it by path). Returns what ``plumb`` needs; None without a network stack."""
        from dockyard.network import netns

        if not self.has_stack(c):
            return None
        attachments = await self.call(self.networks.endpoints_of, c.id)
        await self._release_kernel(c)
        try:
            await asyncio.get_running_loop().run_in_executor(None, netns.create,
                                                             self.netns_path(c.id))
        except BaseException:
            await self.teardown(c)
            raise
        return attachments

    async def plumb(self, c: Container, attachments: list[Attachment]) -> None:
        """The rest, while the runtime creates the container (its process runs only at the
        runtime's start, after this: Docker's libnetwork does it in a prestart hook): veths,
        addresses and routes, published ports, the firewall, DNS. On failure all of it goes."""
        from dockyard.network import driver

        loop = asyncio.get_running_loop()
        path = self.netns_path(c.id)
        ifaces: dict[str, str] = {}
        routed = False  # one default route: via the first network that is not --internal
        try:
            for i, att in enumerate(attachments):
                net, ep = att.network, att.endpoint
                if not ep.ip:
                    continue
                prefix = net.subnet.split("/")[1]
                await self._bridge(net.bridge, f"{net.gateway}/{prefix}")
                host_if = driver.host_ifname()
                via = None if net.internal or routed else net.gateway
                routed = routed or via is not None
                await loop.run_in_executor(
                    None, lambda: driver.connect(path, net.bridge, host_if, f"{ep.ip}/{prefix}",
                                                 via, ep.mac or None, ifname=f"eth{i}"))
                ifaces[net.id] = host_if
                if c.host_config.get("PortBindings") or c.req.publish_all_ports:
                    await loop.run_in_executor(None, driver.hairpin, host_if, True)
            c.net_ifaces = ifaces  # type: ignore[attr-defined]
            await self._publish_ports(c, attachments)
            if c.id in self.published or not self._rules_cover(attachments):
                await self.apply_firewall()
            await self._dns_add(c, attachments)
        except BaseException:
            await self.teardown(c)
            raise

    async def _bridge(self, name: str, gateway_cidr: str) -> None:
        """The network's bridge, made and configured once per daemon: afterwards a start only
        checks that it still exists (made again if not; ~2 ms of netlink saved per start)."""
        from dockyard.network import driver

        if (name, gateway_cidr) in self._bridges and driver.bridge_ready(name):
            return
        await asyncio.get_running_loop().run_in_executor(None, _ensure_bridge, name, gateway_cidr)
        self._bridges.add((name, gateway_cidr))

    async def teardown(self, c: Container) -> None:
        """After the exit (or a failed start): everything ``prepare`` and ``plumb`` made, gone."""
        if not self.has_stack(c):
            return
        await self._dns_remove(c)
        holder = self.ports.pop(c.id, None)
        published = self.published.pop(c.id, None)
        if holder is not None:
            holder.close()
        await self._release_kernel(c)
        if not published:  # the table names no port of it: nothing to take out
            return
        try:
            await self.apply_firewall()
        except DockyardError as e:
            log.error("container %s: firewall update failed: %s", c.id, e)

    def _rules_cover(self, attachments: list[Attachment]) -> bool:
        """The applied table already has the rules of these networks (a container without
        published ports then changes nothing in it: no store query, no render)."""
        from dockyard.network import firewall

        if self._applied_rules is None:
            return False
        have = set(self._applied_rules.networks)
        return all(firewall.NetRule(bridge=a.network.bridge, subnet=a.network.subnet,
                                    internal=a.network.internal) in have
                   for a in attachments if a.network.bridge and a.network.subnet)

    async def _release_kernel(self, c: Container) -> None:
        """Unpin the namespace: with the container's processes gone the kernel frees it, and
        each veth pair goes with its namespace end (cheaper than deleting the veths: ~30 ms)."""
        from dockyard.network import netns

        c.net_ifaces = {}  # type: ignore[attr-defined]
        await asyncio.get_running_loop().run_in_executor(None, netns.delete,
                                                         self.netns_path(c.id))

    # ------------------------------------------------------------ ports, firewall, DNS

    async def _publish_ports(self, c: Container, attachments: list[Attachment]) -> None:
        from dockyard.network import ports

        bindings = list(ports.from_port_bindings(c.host_config.get("PortBindings")))
        if c.req.publish_all_ports:
            exposed = list((c.config.get("ExposedPorts") or {}).keys())
            bindings += ports.from_exposed(exposed, bindings)
        if not bindings or not attachments or not attachments[0].endpoint.ip:
            return
        holder = ports.PortHolder()
        try:
            bound = holder.reserve(bindings)
        except BaseException:
            holder.close()
            raise
        self.ports[c.id] = holder
        self.published[c.id] = tuple((b, attachments[0].endpoint.ip, attachments[0].network.bridge)
                                     for b in bound)

    async def apply_firewall(self, *, force: bool = False) -> None:
        """Replace dockyard's nftables table with the rules of every bridge network and every
        published port (one atomic ``nft -f``)."""
        from dockyard.network import firewall, nft

        nets = await self.call(self.networks.list, None)
        rules = tuple(firewall.NetRule(bridge=n.bridge, subnet=n.subnet, internal=n.internal)
                      for n in nets if n.driver == "bridge" and n.bridge and n.subnet)
        port_rules = tuple(
            firewall.PortRule(proto=b.proto, host_ip=b.host_ip, host_port=b.host_port,
                              container_ip=ip, container_port=b.container_port, bridge=bridge)
            for entries in self.published.values() for b, ip, bridge in entries)
        ruleset = firewall.Ruleset(networks=rules, ports=port_rules)
        text = firewall.render(ruleset, table=self.table)
        async with self._fw_lock:
            if text == self._applied and not force:
                return  # unchanged (a container without published ports): nothing to run
            loop = asyncio.get_running_loop()
            script = None
            if not force and self._applied_rules is not None:
                script = firewall.additions(self._applied_rules, ruleset, self.table)
            try:
                await loop.run_in_executor(None, nft.apply, script or text)
            except KernelError:
                if not script:
                    raise
                # the table is not what this daemon left (someone flushed it): the whole one
                await loop.run_in_executor(None, nft.apply, text)
            self._applied, self._applied_rules = text, ruleset

    async def _dns_add(self, c: Container, attachments: list[Attachment]) -> None:
        if self.resolver is None:
            return
        for att in attachments:
            net, ep = att.network, att.endpoint
            if net.name == "bridge" or not ep.ip:
                continue
            self.resolver.set(net.id, [c.name, c.id[:12], *ep.aliases], ep.ip)
            if self.dns is None:
                continue
            async with self._dns_lock:  # concurrent starts on one network: one listener
                if net.id in self._listening:
                    continue
                try:
                    await self.dns.listen(net.id, net.gateway, 53, forward=not net.internal)
                    self._listening.add(net.id)
                except OSError as e:
                    log.error("network %s: DNS on %s:53 failed: %s", net.name, net.gateway, e)

    async def _dns_remove(self, c: Container) -> None:
        if self.resolver is None:
            return
        try:
            attachments = await self.call(self.networks.endpoints_of, c.id)
        except DockyardError:
            return
        for att in attachments:
            if att.endpoint.ip:
                self.resolver.remove(att.network.id, att.endpoint.ip)

    async def connect_running(self, c: Container, net: Any, ep: Any) -> None:
        """``docker network connect`` of a running container: one more veth (``ethN``)."""
        from dockyard.network import driver

        if not (c.state.running and self.has_stack(c)) or not ep.ip:
            return
        loop = asyncio.get_running_loop()
        prefix = net.subnet.split("/")[1]
        await self._bridge(net.bridge, f"{net.gateway}/{prefix}")
        host_if = driver.host_ifname()
        ifname = f"eth{len(c.net_ifaces)}"
        await loop.run_in_executor(None, lambda: driver.connect(
            self.netns_path(c.id), net.bridge, host_if, f"{ep.ip}/{prefix}", None, ep.mac or None,
            ifname=ifname))
        c.net_ifaces[net.id] = host_if
        from dockyard.network.model import Attachment

        await self._dns_add(c, [Attachment(network=net, endpoint=ep)])
        await self.apply_firewall()

    async def disconnect_running(self, c: Container, net: Any, ep: Any) -> None:
        from dockyard.network import driver

        host_if = c.net_ifaces.pop(net.id, None)
        if host_if:
            await asyncio.get_running_loop().run_in_executor(None, driver.disconnect, host_if)
        if self.resolver is not None and ep.ip:
            self.resolver.remove(net.id, ep.ip)

    async def network_removed(self, net: Any) -> None:
        from dockyard.network import driver

        if self.dns is not None and net.id in self._listening:
            self._listening.discard(net.id)
            await self.dns.stop(net.id)
        if self.resolver is not None:
            self.resolver.remove_network(net.id)
        if net.bridge and net.name != "bridge":
            await asyncio.get_running_loop().run_in_executor(None, driver.delete_bridge,
                                                             net.bridge)
        await self.apply_firewall()

    # ------------------------------------------------------------ views

    def settings(self, c: Container, attachments: list[Attachment]) -> dict:
        """``NetworkSettings`` of inspect."""
        from dockyard.network import ports

        exposed = list((c.config.get("ExposedPorts") or {}).keys())
        bound = [b for b, _, _ in self.published.get(c.id, ())]
        networks: dict = {}
        for att in attachments:
            net, ep = att.network, att.endpoint
            prefix = int(net.subnet.split("/")[1]) if net.subnet else 0
            networks[net.name] = {
                "IPAMConfig": None, "Links": None, "Aliases": list(ep.aliases) or None,
                "MacAddress": ep.mac, "DriverOpts": None, "NetworkID": net.id,
                "EndpointID": (net.id[:32] + c.id[:32]) if c.state.running else "",
                "Gateway": net.gateway if ep.ip else "", "IPAddress": ep.ip,
                "IPPrefixLen": prefix if ep.ip else 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "DNSNames": [c.name, c.id[:12], *ep.aliases] if net.name != "bridge" else None}
        first = networks.get("bridge", {})
        return {"Bridge": "", "SandboxID": c.id if c.state.running and self.has_stack(c) else "",
                "SandboxKey": self.netns_path(c.id) if c.state.running and self.has_stack(c)
                else "", "HairpinMode": False, "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0, "Ports": ports.inspect_ports(exposed, bound),
                "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
                "EndpointID": first.get("EndpointID", ""), "Gateway": first.get("Gateway", ""),
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "IPAddress": first.get("IPAddress", ""), "IPPrefixLen": first.get("IPPrefixLen", 0),
                "IPv6Gateway": "", "MacAddress": first.get("MacAddress", ""),
                "Networks": networks}

    def port_list(self, c: Container) -> list[dict]:
        """``Ports`` of ``docker ps``."""
        out = []
        for b, _, _ in self.published.get(c.id, ()):
            out.append({"IP": b.host_ip or "0.0.0.0", "PrivatePort": b.container_port,
                        "PublicPort": b.host_port, "Type": b.proto})
        for key in (c.config.get("ExposedPorts") or {}):
            port, _, proto = key.partition("/")
            if not any(e["PrivatePort"] == int(port) and e["Type"] == (proto or "tcp")
                       for e in out) and port.isdigit():
                out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
        return out

    # ------------------------------------------------------------ daemon start

    async def reconcile(self, containers: list[Container]) -> None:
        """After re-adoption: running containers get their ports held and DNS records back;
        namespaces and veths no running container owns are removed; the firewall is rewritten."""
        from dockyard.network import driver, netns

        loop = asyncio.get_running_loop()
        running = {c.id: c for c in containers if c.state.running and self.has_stack(c)}
        for c in running.values():
            try:
                attachments = await self.call(self.networks.endpoints_of, c.id)
                await self._publish_ports(c, attachments)
                await self._dns_add(c, attachments)
            except DockyardError as e:
                log.error("container %s: restoring its network failed: %s", c.id, e)
        ns_dir = f"{self.exec_root}/netns"
        if os.path.isdir(ns_dir):
            for name in os.listdir(ns_dir):
                if name not in running:
                    await loop.run_in_executor(None, netns.delete, f"{ns_dir}/{name}")
        keep = {i for c in running.values() for i in (getattr(c, "net_ifaces", None) or {}).values()}
        nets = await self.call(self.networks.list, None)
        bridges = {n.bridge for n in nets if n.driver == "bridge" and n.bridge}
        for ifname in await loop.run_in_executor(None, driver.list_veths, "veth"):
            if ifname not in keep and _master_of(ifname) in bridges:
                await loop.run_in_executor(None, driver.disconnect, ifname)
        try:
            await self.apply_firewall(force=True)
        except DockyardError as e:
            log.error("firewall: %s", e)

    async def close(self, containers: list[Container]) -> None:
        """Daemon shutdown. Running containers keep their network (live restore); with none
        left, the firewall table and the bridges go too (nothing of dockyard's stays)."""
        from dockyard.network import driver, nft

        for holder in self.ports.values():
            holder.close()
        self.ports.clear()
        if self.dns is not None:
            await self.dns.close()
        if any(c.state.running and self.has_stack(c) for c in containers):
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, nft.remove, self.table)
            nets = await self.call(self.networks.list, None)
            for n in nets:
                if n.driver == "bridge" and n.bridge:
                    await loop.run_in_executor(None, driver.delete_bridge, n.bridge)
        except DockyardError as e:
            log.error("daemon shutdown: removing the network's kernel objects failed: %s", e)


def _ensure_bridge(name: str, gateway_cidr: str) -> None:
    from dockyard.network import driver

    driver.ensure_bridge(name, gateway_cidr)
    driver.enable_forwarding()


def _master_of(ifname: str) -> str:
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{ifname}/master"))
    except OSError:
        return ""


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


__all__ = ["NotFound", "Networking", "network_name"]
