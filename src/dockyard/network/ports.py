"""Published ports: Docker's ``PortBindings`` / ``-p`` / ``-P`` forms, host-port reservation, and
the ``NetworkSettings.Ports`` JSON.

Reservation: the daemon holds one *bound, not listening* socket per published host port for as long
as the container runs (Docker's docker-proxy holds a listening one). Another process then cannot
bind the port (EADDRINUSE), a second container gets Docker's "port is already allocated", and no
connection is ever accepted on it: traffic to the port is DNATed before it reaches a socket.
``-P`` and empty host ports bind port 0, so the kernel picks a free port from
``net.ipv4.ip_local_port_range`` (Docker's ephemeral range); a daemon restart re-binds the
recorded ports.
"""

from __future__ import annotations

import socket
from typing import Iterable, Mapping

from dockyard.errors import Conflict, InvalidArgument
from dockyard.record import Record

PROTOS = ("tcp", "udp", "sctp")


class PortBinding(Record):
    container_port: int
    proto: str = "tcp"
    host_ip: str = ""          # "" = every address (shown as 0.0.0.0)
    host_port: int = 0         # 0 = any free port
    host_port_end: int = 0     # > host_port: pick the first free port of host_port..host_port_end

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


def _port(text: str, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text!r}") from None
    if not 0 < n <= 65535:
        raise InvalidArgument(f"invalid {what}: {text!r} (1-65535)")
    return n


def _range(text: str, what: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    a = _port(lo, what)
    b = _port(hi, what) if sep else a
    if b < a:
        raise InvalidArgument(f"invalid {what} range: {text!r}")
    return a, b


def parse_port_key(key: str) -> tuple[int, int, str]:
    """``"80/tcp"`` → ``(80, 80, "tcp")``; ``"8000-8002/udp"`` → ``(8000, 8002, "udp")``."""
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOS:
        raise InvalidArgument(f"invalid protocol {proto!r} in port {key!r}")
    lo, hi = _range(port, "container port")
    return lo, hi, proto


def _host_ip(ip: str) -> str:
    ip = ip.strip("[]")
    if ip in ("", "0.0.0.0"):
        return ""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except OSError:
        raise InvalidArgument(f"invalid host IP address {ip!r}") from None
    return ip


def from_port_bindings(bindings: Mapping[str, Iterable[Mapping[str, str]] | None] | None
                       ) -> tuple[PortBinding, ...]:
    """HostConfig.PortBindings (``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}``)."""
    out: list[PortBinding] = []
    for key, entries in (bindings or {}).items():
        lo, hi, proto = parse_port_key(key)
        if lo != hi:
            raise InvalidArgument(f"invalid port {key!r}: a PortBindings key is one port")
        for entry in entries or [{}]:
            entry = entry or {}
            ip = _host_ip(entry.get("HostIp") or "")
            hp = (entry.get("HostPort") or "").strip()
            a, b = _range(hp, "host port") if hp else (0, 0)
            out.append(PortBinding(lo, proto, ip, a, b if b > a else 0))
    return tuple(out)


def parse_publish(spec: str) -> tuple[PortBinding, ...]:
    """One ``-p`` value: ``[ip:][hostPort[-end]:]containerPort[-end][/proto]``."""
    rest, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOS:
        raise InvalidArgument(f"invalid proto {proto!r} in {spec!r}")
    ip = ""
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise InvalidArgument(f"invalid IP address in {spec!r}")
        if rest[end + 1:end + 2] != ":":
            raise InvalidArgument(f"invalid port format {spec!r}")
        ip, rest = rest[1:end], rest[end + 2:]
        parts = rest.split(":")
        if len(parts) > 2:
            raise InvalidArgument(f"invalid port format {spec!r}")
        host, cont = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
    else:
        parts = rest.split(":")
        if len(parts) == 1:
            host, cont = "", parts[0]
        elif len(parts) == 2:
            host, cont = parts
        elif len(parts) == 3:
            ip, host, cont = parts
        else:
            raise InvalidArgument(f"invalid port format {spec!r}")
    ip = _host_ip(ip)
    if not cont:
        raise InvalidArgument(f"no port specified: {spec!r}")
    c_lo, c_hi = _range(cont, "containerPort")
    if not host:
        return tuple(PortBinding(p, proto, ip) for p in range(c_lo, c_hi + 1))
    h_lo, h_hi = _range(host, "hostPort")
    if c_lo == c_hi and h_hi > h_lo:
        return (PortBinding(c_lo, proto, ip, h_lo, h_hi),)
    if h_hi - h_lo != c_hi - c_lo:
        raise InvalidArgument(f"invalid ranges specified for container and host Ports: {cont} and {host}")
    return tuple(PortBinding(c_lo + i, proto, ip, h_lo + i) for i in range(c_hi - c_lo + 1))


def from_exposed(exposed: Iterable[str], already: Iterable[PortBinding] = ()) -> tuple[PortBinding, ...]:
    """``-P``: each exposed port (``"80/tcp"``, ranges allowed) not already bound gets a random
    host port."""
    have = {b.key for b in already}
    out = []
    for key in exposed:
        lo, hi, proto = parse_port_key(key)
        for p in range(lo, hi + 1):
            if f"{p}/{proto}" not in have:
                out.append(PortBinding(p, proto))
    return tuple(out)


def ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    try:
        with open(path) as f:
            lo, hi = f.read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _sock_type(proto: str) -> tuple[int, int]:
    if proto == "udp":
        return socket.SOCK_DGRAM, 0
    if proto == "sctp":
        return socket.SOCK_STREAM, getattr(socket, "IPPROTO_SCTP", 132)
    return socket.SOCK_STREAM, 0


def check_free(proto: str, ip: str, port: int) -> socket.socket:
    """Bind ``ip:port`` (``port`` 0: the kernel picks) and return the bound socket; the caller
    holds it to keep the port. ``Conflict`` with Docker's text when the port is taken."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    stype, sproto = _sock_type(proto)
    shown = ip or "0.0.0.0"
    try:
        s = socket.socket(family, stype | socket.SOCK_CLOEXEC, sproto)
    except OSError as exc:
        raise InvalidArgument(f"publish {shown}:{port}/{proto}: {exc.strerror}") from None
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((ip or "0.0.0.0", port))
    except OSError as exc:
        s.close()
        if exc.errno == 98:  # EADDRINUSE
            raise Conflict(f"Bind for {shown}:{port} failed: port is already allocated") from None
        raise InvalidArgument(f"Bind for {shown}:{port} failed: {exc.strerror}") from None
    return s


class PortHolder:
    """The host ports one container publishes, each kept by a bound socket until ``close``."""

    def __init__(self) -> None:
        self._socks: list[socket.socket] = []

    def reserve(self, bindings: Iterable[PortBinding]) -> tuple[PortBinding, ...]:
        """Bind every binding; return them with the actual host port. All or nothing."""
        out = []
        try:
            for b in bindings:
                if b.host_port_end > b.host_port:
                    s = self._first_free(b)
                else:
                    s = check_free(b.proto, b.host_ip, b.host_port)
                self._socks.append(s)
                out.append(PortBinding(b.container_port, b.proto, b.host_ip,
                                       s.getsockname()[1]))
        except BaseException:
            self.close()
            raise
        return tuple(out)

    @staticmethod
    def _first_free(b: PortBinding) -> socket.socket:
        for port in range(b.host_port, b.host_port_end + 1):
            try:
                return check_free(b.proto, b.host_ip, port)
            except Conflict:
                continue
        shown = b.host_ip or "0.0.0.0"
        raise Conflict(f"Bind for {shown}:{b.host_port}-{b.host_port_end} failed: "
                       f"every port in the range is already allocated")

    def close(self) -> None:
        for s in self._socks:
            s.close()
        self._socks.clear()


def inspect_ports(exposed: Iterable[str], bindings: Iterable[PortBinding]) -> dict:
    """``NetworkSettings.Ports``: every exposed/bound port; unbound ones map to None."""
    out: dict[str, list[dict[str, str]] | None] = {}
    for key in exposed:
        lo, hi, proto = parse_port_key(key)
        for p in range(lo, hi + 1):
            out.setdefault(f"{p}/{proto}", None)
    for b in bindings:
        entries = out.get(b.key) or []
        entries.append({"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)})
        out[b.key] = entries
    return out
