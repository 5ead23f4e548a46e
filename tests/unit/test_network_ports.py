"""ports: Docker's PortBindings / -p / -P forms, reservation by a bound socket, inspect JSON."""

import socket

import pytest

from dockyard.errors import Conflict, InvalidArgument
from dockyard.network.ports import (
    PortBinding, PortHolder, check_free, ephemeral_range, from_exposed, from_port_bindings,
    inspect_ports, parse_publish,
)


def test_port_bindings_from_the_api():
    got = from_port_bindings({"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                              "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                              "443": None})
    assert got == (PortBinding(80, "tcp", "", 8080), PortBinding(53, "udp", "127.0.0.1", 0),
                   PortBinding(443, "tcp", "", 0))


@pytest.mark.parametrize("spec,want", [
    ("80", (PortBinding(80),)),
    ("8080:80", (PortBinding(80, "tcp", "", 8080),)),
    ("127.0.0.1:8080:80/udp", (PortBinding(80, "udp", "127.0.0.1", 8080),)),
    ("127.0.0.1::80", (PortBinding(80, "tcp", "127.0.0.1", 0),)),
    ("[::1]:8080:80", (PortBinding(80, "tcp", "::1", 8080),)),
    ("8000-8002:80-82", tuple(PortBinding(80 + i, "tcp", "", 8000 + i) for i in range(3))),
    ("8000-8010:80", (PortBinding(80, "tcp", "", 8000, 8010),)),
    ("80-81", (PortBinding(80), PortBinding(81))),
])
def test_publish_flag(spec, want):
    assert parse_publish(spec) == want


@pytest.mark.parametrize("spec", ["8000-8002:80-81", "a:b:c:d", "8080:0", "x:80", "80/icmp",
                                  "300.1.1.1:80:80", "8080:"])
def test_publish_flag_errors(spec):
    with pytest.raises(InvalidArgument):
        parse_publish(spec)


def test_publish_all_skips_ports_already_bound():
    got = from_exposed(["80/tcp", "53/udp", "7000-7001/tcp"], already=[PortBinding(80, "tcp", "", 8080)])
    assert got == (PortBinding(53, "udp"), PortBinding(7000), PortBinding(7001))


def test_random_ports_come_from_the_ephemeral_range_and_are_held():
    lo, hi = ephemeral_range()
    holder = PortHolder()
    try:
        (b,) = holder.reserve([PortBinding(80, "tcp", "127.0.0.1")])
        assert lo <= b.host_port <= hi
        other = socket.socket()
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", b.host_port))
        other.close()
    finally:
        holder.close()
    check_free("tcp", "127.0.0.1", b.host_port).close()  # released


def test_port_in_use_is_dockers_message_and_nothing_stays_held():
    busy = check_free("tcp", "127.0.0.1", 0)
    port = busy.getsockname()[1]
    holder = PortHolder()
    try:
        with pytest.raises(Conflict, match=rf"Bind for 127.0.0.1:{port} failed: port is already allocated"):
            holder.reserve([PortBinding(81, "udp", "127.0.0.1"), PortBinding(80, "tcp", "127.0.0.1", port)])
        assert holder._socks == []
    finally:
        busy.close()


def test_host_port_range_takes_the_first_free():
    busy = check_free("tcp", "127.0.0.1", 0)
    port = busy.getsockname()[1]
    holder = PortHolder()
    try:
        (b,) = holder.reserve([PortBinding(80, "tcp", "127.0.0.1", port, port + 1)])
        assert b.host_port == port + 1
    except Conflict:
        pytest.skip("the next port is taken by someone else")
    finally:
        holder.close()
        busy.close()


def test_inspect_ports_shape():
    got = inspect_ports(["80/tcp", "443/tcp"], [PortBinding(80, "tcp", "", 8080),
                                                PortBinding(80, "tcp", "127.0.0.1", 8081)])
    assert got == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"},
                              {"HostIp": "127.0.0.1", "HostPort": "8081"}],
                   "443/tcp": None}
