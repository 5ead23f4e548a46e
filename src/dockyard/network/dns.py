"""The embedded DNS responder of user-defined networks.

Docker gives every container on a user network a resolver that knows the other containers of that
network by name and alias, and forwards every other name to the host's resolvers. Here one
``DNSServer`` serves all networks: ``listen`` opens a UDP and a TCP socket per network on that
network's gateway address (the bridge's address on the host), and a listener answers from its own
network's records only, so a container on another network does not resolve. The engine keeps the
records current through ``Resolver.set`` / ``Resolver.remove`` as containers connect, start and go;
lookups read the records at query time, so containers started later resolve and removed ones stop.

Names in the container name space (one label: ``web``, ``db``) that no container holds get NXDOMAIN
here; names with dots that no container holds (``example.com``, and also the ``in-addr.arpa`` names
of addresses we do not own) go to the upstreams: UDP with a timeout and one retry on the next
upstream, TCP when the upstream truncates or the client asked over TCP. Limits keep a flood from
growing memory: queries over 4 KiB are refused, at most ``max_inflight`` forwards per network are
pending (more are dropped: the client retries), at most ``max_tcp`` TCP clients, idle ones closed,
and replies are dropped while a UDP socket's send buffer is full.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import secrets
import struct
import threading
from collections.abc import Iterable

from dockyard import errors
from dockyard.network import dnswire as wire

log = logging.getLogger("dockyard.network.dns")

TTL = 600                  # Docker's embedded DNS answers container records with a 600 s TTL
FORWARD_TIMEOUT = 2.0      # per upstream attempt
MAX_INFLIGHT = 100         # pending forwards per network (Docker's limit too)
MAX_TCP_CLIENTS = 64       # open TCP connections per network
TCP_IDLE = 10.0            # seconds a TCP client may stay silent
MAX_SEND_BUFFER = 1 << 20  # bytes queued on a UDP socket before replies are dropped


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


class _Records:
    """One network's records: name -> addresses (in registration order) and address -> names."""

    __slots__ = ("by_name", "by_ip")

    def __init__(self) -> None:
        self.by_name: dict[str, list[str]] = {}
        self.by_ip: dict[str, tuple[str, ...]] = {}


class Resolver:
    """The records the engine keeps: per network, each endpoint's address with its names.

    Thread-safe (the engine may update from a worker thread while the loop answers queries).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nets: dict[str, _Records] = {}

    def set(self, network_id: str, names: Iterable[str], ip: str) -> None:
        """Make ``names`` (a container's name, aliases ...) resolve to ``ip`` on the network.

        Replaces whatever names ``ip`` had on that network. Several addresses may share a name
        (an alias on two containers): lookups return them all.
        """
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise errors.InvalidArgument(f"dns record on network {network_id}: invalid address {ip!r}") from None
        clean: list[str] = []
        for name in names:
            n = _norm(name)
            if n and n not in clean:
                clean.append(n)
        with self._lock:
            recs = self._nets.setdefault(network_id, _Records())
            self._drop(recs, ip)
            if clean:
                recs.by_ip[ip] = tuple(clean)
                for n in clean:
                    recs.by_name.setdefault(n, []).append(ip)

    def remove(self, network_id: str, ip: str) -> None:
        """Forget ``ip`` and its names on the network (no error if it had none)."""
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            return
        with self._lock:
            recs = self._nets.get(network_id)
            if recs is not None:
                self._drop(recs, ip)
                if not recs.by_ip:
                    del self._nets[network_id]

    def remove_network(self, network_id: str) -> None:
        with self._lock:
            self._nets.pop(network_id, None)

    def lookup(self, network_id: str, name: str) -> list[str]:
        """The addresses ``name`` has on the network (case-insensitive, trailing dot ignored)."""
        recs = self._nets.get(network_id)
        if recs is None:
            return []
        with self._lock:
            return list(recs.by_name.get(_norm(name), ()))

    def names_of(self, network_id: str, ip: str) -> list[str]:
        """The names ``ip`` has on the network, the container's name first (for PTR)."""
        recs = self._nets.get(network_id)
        if recs is None:
            return []
        with self._lock:
            return list(recs.by_ip.get(ip, ()))

    @staticmethod
    def _drop(recs: _Records, ip: str) -> None:
        for n in recs.by_ip.pop(ip, ()):
            ips = recs.by_name.get(n)
            if ips is not None:
                if ip in ips:
                    ips.remove(ip)
                if not ips:
                    del recs.by_name[n]


class _Listener:
    __slots__ = ("network_id", "address", "port", "forward", "udp", "tcp", "tasks", "clients", "inflight")

    def __init__(self, network_id: str, address: str, port: int, forward: bool) -> None:
        self.network_id = network_id
        self.address = address
        self.port = port
        self.forward = forward
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task] = set()
        self.clients: set[asyncio.StreamWriter] = set()
        self.inflight = 0


class DNSServer:
    """Answers each user network's queries on that network's gateway address (UDP and TCP)."""

    def __init__(self, resolver: Resolver, *, upstreams: list[tuple[str, int]], loop=None,
                 ttl: int = TTL, timeout: float = FORWARD_TIMEOUT, max_inflight: int = MAX_INFLIGHT,
                 max_tcp_clients: int = MAX_TCP_CLIENTS, tcp_idle: float = TCP_IDLE) -> None:
        self.resolver = resolver
        self.upstreams = list(upstreams)
        self._loop = loop
        self._ttl = ttl
        self._timeout = timeout
        self._max_inflight = max_inflight
        self._max_tcp = max_tcp_clients
        self._tcp_idle = tcp_idle
        self._listeners: dict[str, _Listener] = {}

    # ---------------------------------------------------------------------------------------------
    # listeners

    async def listen(self, network_id: str, address: str, port: int = 53, *, forward: bool = True) -> int:
        """Serve the network's names on ``address``:``port`` (UDP and TCP); returns the port bound.

        ``port=0`` picks a free port (the same for UDP and TCP). ``forward=False`` (an ``--internal``
        network) answers SERVFAIL for names that are not the network's instead of forwarding them.
        """
        if network_id in self._listeners:
            raise errors.AlreadyExists(f"dns listen for network {network_id}: already listening "
                                       f"on {self._listeners[network_id].address}")
        loop = self._loop or asyncio.get_running_loop()
        listener = _Listener(network_id, address, port, forward)
        last: OSError | None = None
        for _ in range(1 if port else 20):
            try:
                await self._bind(loop, listener, port)
                break
            except OSError as exc:
                last = exc
                self._unbind(listener)
                if port or exc.errno != errno.EADDRINUSE:
                    break
        else:
            last = last or OSError(errno.EADDRINUSE, "no free port")
        if listener.tcp is None:
            assert last is not None
            raise errors.Unavailable(f"dns listen on {address}:{port} for network {network_id}: "
                                     f"{last.strerror or last}")
        self._listeners[network_id] = listener
        log.debug("dns: network %s on %s:%d", network_id, address, listener.port)
        return listener.port

    async def _bind(self, loop: asyncio.AbstractEventLoop, listener: _Listener, port: int) -> None:
        udp, _ = await loop.create_datagram_endpoint(lambda: _UDP(self, listener),
                                                      local_addr=(listener.address, port))
        listener.udp = udp
        listener.port = udp.get_extra_info("sockname")[1]
        listener.tcp = await asyncio.start_server(lambda r, w: self._tcp_client(listener, r, w),
                                                  host=listener.address, port=listener.port,
                                                  reuse_address=True, backlog=self._max_tcp)

    @staticmethod
    def _unbind(listener: _Listener) -> None:
        if listener.udp is not None:
            listener.udp.close()
            listener.udp = None
        if listener.tcp is not None:
            listener.tcp.close()
            listener.tcp = None

    def port(self, network_id: str) -> int:
        """The port the network's listener is bound to (useful after ``listen(..., port=0)``)."""
        listener = self._listeners.get(network_id)
        if listener is None:
            raise errors.NotFound(f"dns listener for network {network_id}: not listening")
        return listener.port

    async def stop(self, network_id: str) -> None:
        """Close the network's sockets and drop its pending queries (no error if not listening)."""
        listener = self._listeners.pop(network_id, None)
        if listener is None:
            return
        server = listener.tcp
        self._unbind(listener)
        for writer in list(listener.clients):
            writer.close()
        tasks = list(listener.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def close(self) -> None:
        for network_id in list(self._listeners):
            await self.stop(network_id)

    # ---------------------------------------------------------------------------------------------
    # answering

    def answer_local(self, network_id: str, query: wire.Query, limit: int | None) -> bytes | None:
        """The reply from the network's records, or None when the name is to be forwarded."""
        if query.qclass != wire.CLASS_IN:
            return None
        if query.qtype == wire.PTR:
            ip = wire.reverse_ipv4(query.name)
            names = self.resolver.names_of(network_id, ip) if ip else []
            return wire.answer_ptr(query, names[0], self._ttl, limit) if names else None
        ips = self._addresses(network_id, query.name)
        if ips is None:
            return None
        if ips:
            return wire.answer_addresses(query, ips, self._ttl, limit)
        return wire.answer_rcode(query, wire.NXDOMAIN, limit)

    def _addresses(self, network_id: str, name: str) -> list[str] | None:
        """The name's addresses; [] means NXDOMAIN (a container name no one holds), None: forward."""
        ips = self.resolver.lookup(network_id, name)
        if ips or (name and "." not in name):
            return ips
        return None

    def _start(self, listener: _Listener, data: bytes, tcp: bool) -> tuple[bytes | None, wire.Query | None]:
        """Answer what can be answered now; (None, query) means: forward it."""
        plain = wire.parse_plain(data)
        if plain is not None and plain.qclass == wire.CLASS_IN and plain.qtype != wire.PTR:
            ips = self._addresses(listener.network_id, plain.name)
            if ips is not None:
                rcode = wire.NOERROR if ips else wire.NXDOMAIN
                return wire.plain_reply(plain, rcode, ips, self._ttl, None if tcp else plain.udp_limit), None
        try:
            query = wire.parse_query(data)
        except wire.WireError as exc:
            log.debug("dns: network %s: %s", listener.network_id, exc)
            return exc.reply, None
        limit = None if tcp else query.udp_limit
        try:
            reply = self.answer_local(listener.network_id, query, limit)
        except Exception:  # a record dnspython cannot encode must not kill the listener
            log.exception("dns: network %s: answering %s", listener.network_id, query.name)
            return wire.answer_rcode(query, wire.SERVFAIL, limit), None
        if reply is not None:
            return reply, None
        if not listener.forward or not self.upstreams:
            return wire.answer_rcode(query, wire.SERVFAIL, limit), None
        return None, query

    async def _forwarded(self, listener: _Listener, data: bytes, query: wire.Query, tcp: bool) -> bytes | None:
        if listener.inflight >= self._max_inflight:
            return None  # dropped: the client retries; a reply would feed the flood
        listener.inflight += 1
        try:
            resp = await self.forward(data, tcp=tcp)
        finally:
            listener.inflight -= 1
        if resp is None:
            return wire.answer_rcode(query, wire.SERVFAIL, None if tcp else query.udp_limit)
        return resp if tcp else wire.fit_udp(resp, query.udp_limit)

    async def forward(self, data: bytes, *, tcp: bool = False) -> bytes | None:
        """Ask the upstreams (the first, then one retry on the next); the reply carries ``data``'s id."""
        if not self.upstreams:
            return None
        attempts = [self.upstreams[0], self.upstreams[1 % len(self.upstreams)]]
        for upstream in attempts:
            out = wire.with_id(data, secrets.randbits(16))
            resp: bytes | None = None
            try:
                if tcp:
                    resp = await self._tcp_exchange(upstream, out)
                else:
                    resp = await self._udp_exchange(upstream, out)
                    if resp is not None and wire.is_truncated(resp):
                        resp = await self._tcp_exchange(upstream, out) or resp
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                log.debug("dns: forward to %s:%d: %s", upstream[0], upstream[1], exc)
                resp = None
            if resp is not None:
                return data[:2] + resp[2:]
        return None

    async def _udp_exchange(self, upstream: tuple[str, int], out: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes] = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Exchange(out, done), remote_addr=upstream)
        try:
            transport.sendto(out)
            async with asyncio.timeout(self._timeout):
                return await done
        except TimeoutError:
            return None
        finally:
            transport.close()

    async def _tcp_exchange(self, upstream: tuple[str, int], out: bytes) -> bytes | None:
        async with asyncio.timeout(self._timeout):
            reader, writer = await asyncio.open_connection(upstream[0], upstream[1])
            try:
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
                (n,) = struct.unpack("!H", await reader.readexactly(2))
                resp = await reader.readexactly(n)
            finally:
                writer.close()
        return resp if wire.response_matches(out, resp) else None

    # ---------------------------------------------------------------------------------------------
    # transports

    def _datagram(self, listener: _Listener, data: bytes, addr: tuple) -> None:
        reply, query = self._start(listener, data, tcp=False)
        if query is None:
            self._send_udp(listener, reply, addr)
            return
        if listener.inflight >= self._max_inflight:
            return
        task = asyncio.ensure_future(self._udp_forward(listener, data, query, addr))
        listener.tasks.add(task)
        task.add_done_callback(listener.tasks.discard)

    async def _udp_forward(self, listener: _Listener, data: bytes, query: wire.Query, addr: tuple) -> None:
        reply = await self._forwarded(listener, data, query, tcp=False)
        self._send_udp(listener, reply, addr)

    @staticmethod
    def _send_udp(listener: _Listener, reply: bytes | None, addr: tuple) -> None:
        udp = listener.udp
        if reply is None or udp is None or udp.is_closing():
            return
        if udp.get_write_buffer_size() > MAX_SEND_BUFFER:
            return
        udp.sendto(reply, addr)

    async def _tcp_client(self, listener: _Listener, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        if len(listener.clients) >= self._max_tcp or listener.udp is None:
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            listener.tasks.add(task)
        listener.clients.add(writer)
        try:
            while True:
                async with asyncio.timeout(self._tcp_idle):
                    (n,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(n)
                reply, query = self._start(listener, data, tcp=True)
                if query is not None:
                    reply = await self._forwarded(listener, data, query, tcp=True)
                if reply is None:
                    if query is not None:
                        break  # overloaded: closing tells the client to go elsewhere
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                async with asyncio.timeout(self._tcp_idle):
                    await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            listener.clients.discard(writer)
            if task is not None:
                listener.tasks.discard(task)
            writer.close()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer, listener: _Listener) -> None:
        self._server = server
        self._listener = listener

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._server._datagram(self._listener, data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP errors of earlier replies: nothing to do
        pass


class _Exchange(asyncio.DatagramProtocol):
    """One forwarded query on its own connected socket: the first matching reply wins."""

    def __init__(self, out: bytes, done: asyncio.Future) -> None:
        self._out = out
        self._done = done

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not self._done.done() and wire.response_matches(self._out, data):
            self._done.set_result(data)

    def error_received(self, exc: Exception) -> None:  # ECONNREFUSED: the upstream is not there
        if not self._done.done():
            self._done.set_exception(exc)


def host_upstreams(resolv_conf: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """The host's nameservers as (address, 53), in file order.

    Loopback ones (systemd-resolved's 127.0.0.53, a local dnsmasq) are kept: the daemon forwards
    from the host's side, where they answer. Missing file or no nameserver lines: [].
    """
    try:
        with open(resolv_conf, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out: list[tuple[str, int]] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        try:
            addr = str(ipaddress.ip_address(fields[1]))
        except ValueError:
            continue
        if (addr, 53) not in out:
            out.append((addr, 53))
    return out
