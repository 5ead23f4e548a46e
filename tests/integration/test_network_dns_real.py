"""The embedded DNS responder on real sockets (loopback only).

The "upstream" is a fake DNS server each test starts on 127.0.0.1 with a random port; no query ever
leaves the machine. Listeners for two networks sit on 127.0.0.1 and 127.0.0.2 (both on lo).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import struct
import subprocess

import pytest

from dockyard import errors
from dockyard.network import dnswire as wire
from dockyard.network.dns import DNSServer, Resolver

FIXED = "192.0.2.10"
BIG = [f"198.51.100.{i}" for i in range(1, 101)]  # 100 A records: ~1.6 KB, more than 512


class FakeUpstream:
    """A tiny DNS server: fixed.example -> FIXED; big.example -> BIG (TC over UDP, whole over TCP);
    silent.example is never answered; anything else NXDOMAIN. Records every question it sees."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (transport, name)
        self.port = 0
        self._udp = None
        self._tcp = None

    def reply(self, data: bytes, transport: str) -> bytes | None:
        q = wire.parse_query(data)
        self.seen.append((transport, q.name))
        if q.name == "silent.example":
            return None
        if q.name == "fixed.example":
            return wire.answer_addresses(q, [FIXED], 30)
        if q.name == "big.example":
            return wire.answer_addresses(q, BIG, 30, limit=512 if transport == "udp" else None)
        return wire.answer_rcode(q, wire.NXDOMAIN)

    async def start(self) -> FakeUpstream:
        loop = asyncio.get_running_loop()
        upstream = self

        class UDP(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                out = upstream.reply(data, "udp")
                if out is not None:
                    self.transport.sendto(out, addr)

        async def tcp(reader, writer):
            try:
                while True:
                    (n,) = struct.unpack("!H", await reader.readexactly(2))
                    out = self.reply(await reader.readexactly(n), "tcp")
                    if out is not None:
                        writer.write(struct.pack("!H", len(out)) + out)
                        await writer.drain()
            except asyncio.IncompleteReadError:
                pass
            finally:
                writer.close()

        for _ in range(20):  # a free UDP port may be taken for TCP: try another
            self._udp, _ = await loop.create_datagram_endpoint(UDP, local_addr=("127.0.0.1", 0))
            self.port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(tcp, "127.0.0.1", self.port)
                return self
            except OSError:
                self._udp.close()
        raise OSError("no port free for both UDP and TCP on 127.0.0.1")

    async def stop(self) -> None:
        self._udp.close()
        self._tcp.close()
        await self._tcp.wait_closed()


async def udp_ask(port: int, name: str, qtype: int = wire.A, *, host: str = "127.0.0.1",
                  ident: int = 4321, edns: int | None = None, raw: bytes | None = None,
                  timeout: float = 5.0) -> wire.Reply | None:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            if not got.done():
                got.set_result(data)

        def error_received(self, exc):
            if not got.done():
                got.set_exception(exc)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
    try:
        transport.sendto(raw if raw is not None else wire.build_query(name, qtype, ident=ident, edns_payload=edns))
        try:
            data = await asyncio.wait_for(got, timeout)
        except TimeoutError:
            return None
        return data if raw is not None else wire.parse_reply(data)
    finally:
        transport.close()


async def tcp_ask(port: int, name: str, qtype: int = wire.A, *, host: str = "127.0.0.1") -> wire.Reply:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        q = wire.build_query(name, qtype, ident=99)
        writer.write(struct.pack("!H", len(q)) + q)
        (n,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 5))
        return wire.parse_reply(await reader.readexactly(n))
    finally:
        writer.close()


def run(coro_fn, **server_kw):
    """Run ``coro_fn(server, resolver, upstream)`` with a fake upstream and a server, then clean up."""

    async def main():
        upstream = await FakeUpstream().start()
        resolver = Resolver()
        server = DNSServer(resolver, upstreams=[("127.0.0.1", upstream.port)], **server_kw)
        try:
            return await coro_fn(server, resolver, upstream)
        finally:
            await server.close()
            await upstream.stop()

    return asyncio.run(main())


# --------------------------------------------------------------------------------------------------

def test_names_and_aliases_resolve_over_udp_and_tcp():
    async def body(server, resolver, upstream):
        resolver.set("n1", ["web", "frontend"], "10.88.0.2")
        port = await server.listen("n1", "127.0.0.1", 0)
        udp = await udp_ask(port, "web")
        assert (udp.ident, udp.rcode, udp.answers) == (4321, wire.NOERROR, ((wire.A, "10.88.0.2"),))
        assert (await udp_ask(port, "FRONTEND.")).answers == ((wire.A, "10.88.0.2"),)
        assert (await tcp_ask(port, "frontend")).answers == ((wire.A, "10.88.0.2"),)
        aaaa = await udp_ask(port, "web", wire.AAAA)
        assert (aaaa.rcode, aaaa.answers) == (wire.NOERROR, ())
        assert upstream.seen == []

    run(body)


def test_containers_started_later_resolve_and_removed_ones_do_not():
    async def body(server, resolver, upstream):
        port = await server.listen("n1", "127.0.0.1", 0)
        assert (await udp_ask(port, "db")).rcode == wire.NXDOMAIN
        resolver.set("n1", ["db"], "10.88.0.3")
        assert (await udp_ask(port, "db")).answers == ((wire.A, "10.88.0.3"),)
        resolver.remove("n1", "10.88.0.3")
        assert (await udp_ask(port, "db")).rcode == wire.NXDOMAIN
        assert upstream.seen == []  # a container name is never asked of the host's resolvers

    run(body)


def test_a_name_on_one_network_is_not_answered_on_another():
    async def body(server, resolver, upstream):
        resolver.set("a", ["web"], "10.88.0.2")
        resolver.set("b", ["db"], "10.89.0.2")
        port_a = await server.listen("a", "127.0.0.1", 0)
        port_b = await server.listen("b", "127.0.0.2", 0)
        assert (await udp_ask(port_a, "web")).answers == ((wire.A, "10.88.0.2"),)
        assert (await udp_ask(port_b, "web", host="127.0.0.2")).rcode == wire.NXDOMAIN
        assert (await udp_ask(port_b, "db", host="127.0.0.2")).answers == ((wire.A, "10.89.0.2"),)
        assert (await udp_ask(port_a, "db")).rcode == wire.NXDOMAIN

    run(body)


def test_other_names_are_forwarded_and_keep_the_clients_id():
    async def body(server, resolver, upstream):
        port = await server.listen("n1", "127.0.0.1", 0)
        reply = await udp_ask(port, "fixed.example", ident=777)
        assert (reply.ident, reply.rcode, reply.answers) == (777, wire.NOERROR, ((wire.A, FIXED),))
        assert (await tcp_ask(port, "fixed.example")).answers == ((wire.A, FIXED),)
        assert (await udp_ask(port, "nothing.example")).rcode == wire.NXDOMAIN
        assert ("udp", "fixed.example") in upstream.seen and ("tcp", "fixed.example") in upstream.seen

    run(body)


def test_truncated_upstream_reply_is_fetched_over_tcp_and_fitted_to_the_client():
    async def body(server, resolver, upstream):
        port = await server.listen("n1", "127.0.0.1", 0)
        whole = await udp_ask(port, "big.example", edns=4096)
        assert not whole.truncated and sorted(a for _, a in whole.answers) == sorted(BIG)
        assert [t for t, n in upstream.seen if n == "big.example"] == ["udp", "tcp"]
        small = await udp_ask(port, "big.example")  # no EDNS: at most 512 bytes, so TC
        assert small.truncated and 0 < len(small.answers) < len(BIG)
        assert len((await tcp_ask(port, "big.example")).answers) == len(BIG)

    run(body)


def test_a_dead_upstream_is_retried_on_the_next_and_none_answering_is_servfail():
    async def body(server, resolver, upstream):
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        silent.settimeout(5)
        try:
            server.upstreams = [silent.getsockname(), ("127.0.0.1", upstream.port)]
            port = await server.listen("n1", "127.0.0.1", 0)
            assert (await udp_ask(port, "fixed.example")).answers == ((wire.A, FIXED),)
            assert silent.recv(512)  # the first upstream was asked first
            reply = await udp_ask(port, "silent.example")
            assert reply.rcode == wire.SERVFAIL
        finally:
            silent.close()

    run(body, timeout=0.3)


def test_internal_network_does_not_forward():
    async def body(server, resolver, upstream):
        resolver.set("n1", ["web"], "10.88.0.2")
        port = await server.listen("n1", "127.0.0.1", 0, forward=False)
        assert (await udp_ask(port, "web")).answers == ((wire.A, "10.88.0.2"),)
        assert (await udp_ask(port, "fixed.example")).rcode == wire.SERVFAIL
        assert upstream.seen == []

    run(body)


def test_malformed_packets_get_formerr_and_the_server_keeps_answering():
    async def body(server, resolver, upstream):
        resolver.set("n1", ["web"], "10.88.0.2")
        port = await server.listen("n1", "127.0.0.1", 0)
        bad = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
        out = await udp_ask(port, "", raw=bad)
        assert wire.parse_reply(out).rcode == wire.FORMERR and out[:2] == b"\xbe\xef"
        assert await udp_ask(port, "", raw=b"\x01\x02\x03", timeout=0.3) is None  # no header: silence
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00\x03abc")  # a TCP message shorter than a header
        writer.write(struct.pack("!H", len(bad)) + bad)
        (n,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 5))
        assert wire.parse_reply(await reader.readexactly(n)).rcode == wire.FORMERR
        writer.close()
        assert (await udp_ask(port, "web")).answers == ((wire.A, "10.88.0.2"),)

    run(body)


def test_a_flood_of_forwards_is_capped_and_local_names_still_answer():
    async def body(server, resolver, upstream):
        resolver.set("n1", ["web"], "10.88.0.2")
        port = await server.listen("n1", "127.0.0.1", 0)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(200):
                sock.sendto(wire.build_query("silent.example", ident=i), ("127.0.0.1", port))
            assert (await udp_ask(port, "web")).answers == ((wire.A, "10.88.0.2"),)
            for _ in range(500):  # the 200 were read before "web"; wait for the forwards to land
                if len(upstream.seen) >= 5:
                    break
                await asyncio.sleep(0.01)
            assert upstream.seen == [("udp", "silent.example")] * 5
        finally:
            sock.close()
        await server.stop("n1")  # cancels the pending forwards

    run(body, max_inflight=5, timeout=30)


def test_idle_tcp_clients_are_closed():
    async def body(server, resolver, upstream):
        port = await server.listen("n1", "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await asyncio.wait_for(reader.read(), 10) == b""  # EOF: the server hung up
        except ConnectionResetError:
            pass  # hung up as well
        finally:
            writer.close()

    run(body, tcp_idle=0.2)


def test_listen_errors_and_stop():
    async def body(server, resolver, upstream):
        port = await server.listen("n1", "127.0.0.1", 0)
        with pytest.raises(errors.AlreadyExists, match="n1"):
            await server.listen("n1", "127.0.0.1", 0)
        with pytest.raises(errors.Unavailable, match=f"127.0.0.1:{port} for network n2"):
            await server.listen("n2", "127.0.0.1", port)
        await server.stop("n1")
        await server.stop("n1")  # twice: no error
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        port2 = await server.listen("n1", "127.0.0.1", port)  # the address is free again
        assert port2 == port == server.port("n1")

    run(body)


def _port_53_free() -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 53))
        except OSError:
            return False
        finally:
            s.close()
    return True


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_busybox_nslookup_resolves_a_container_name():
    if not _port_53_free():
        pytest.skip("127.0.0.1:53 is in use (busybox nslookup only asks port 53)")

    async def body(server, resolver, upstream):
        resolver.set("n1", ["web"], "10.88.0.2")
        await server.listen("n1", "127.0.0.1", 53)
        proc = await asyncio.create_subprocess_exec(
            "busybox", "nslookup", "web", "127.0.0.1",
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        text = out.decode()
        assert proc.returncode == 0, text
        assert "10.88.0.2" in text
        proc = await asyncio.create_subprocess_exec(
            "busybox", "nslookup", "gone", "127.0.0.1",
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert "NXDOMAIN" in out.decode()

    run(body)


SUBNET = "10.254.53."  # a /30 for a veth pair between the host and a test netns


@pytest.fixture
def netns_client():
    """A network namespace joined to the host by a veth pair: (name, host-side address).

    The host side plays the user network's gateway, where the engine binds the DNS listener.
    """
    if subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout.count(SUBNET):
        pytest.skip(f"{SUBNET}0/30 is already in use on this host")
    suffix = secrets.token_hex(3)
    ns, host_if, ns_if = f"tdns-{suffix}", f"tdnsh{suffix}", f"tdnsc{suffix}"  # not dy*: dockyard reconciles those

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", ns)
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
        ip("addr", "add", f"{SUBNET}1/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("-n", ns, "addr", "add", f"{SUBNET}2/30", "dev", ns_if)
        ip("-n", ns, "link", "set", ns_if, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        yield ns, f"{SUBNET}1"
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


async def nslookup_in(ns: str, name: str, server: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, "busybox", "nslookup", name, server,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode()


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_a_client_in_another_netns_resolves_through_the_gateway_listener(netns_client):
    ns, gateway = netns_client

    async def body(server, resolver, upstream):
        resolver.set("n1", ["web", "frontend"], "10.88.0.2")
        resolver.set("n2", ["db"], "10.89.0.2")
        await server.listen("n1", gateway, 53)
        rc, out = await nslookup_in(ns, "frontend", gateway)
        assert rc == 0 and "10.88.0.2" in out, out
        rc, out = await nslookup_in(ns, "db", gateway)  # on another network: not visible here
        assert "NXDOMAIN" in out and "10.89.0.2" not in out, out
        rc, out = await nslookup_in(ns, "fixed.example", gateway)  # forwarded to the host side
        assert rc == 0 and FIXED in out, out
        assert ("udp", "fixed.example") in upstream.seen

    run(body)


def test_tcp_clients_beyond_the_limit_are_turned_away():
    async def body(server, resolver, upstream):
        resolver.set("n1", ["web"], "10.88.0.2")
        port = await server.listen("n1", "127.0.0.1", 0)
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        q = wire.build_query("web", ident=5)
        for reader, writer in held:  # both served (and so both counted) before the third comes
            writer.write(struct.pack("!H", len(q)) + q)
            (n,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 5))
            assert wire.parse_reply(await reader.readexactly(n)).answers == ((wire.A, "10.88.0.2"),)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        except ConnectionResetError:
            pass
        finally:
            writer.close()
        for _, w in held:
            w.close()
        assert (await udp_ask(port, "web")).answers == ((wire.A, "10.88.0.2"),)  # UDP unaffected

    run(body, max_tcp_clients=2)
