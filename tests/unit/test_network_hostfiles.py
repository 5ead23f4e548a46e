"""hostfiles: /etc/hosts, /etc/resolv.conf and /etc/hostname as Docker writes them."""

import pytest

from dockyard.errors import InvalidArgument
from dockyard.network.hostfiles import (
    HostEntry, hostname_file, hosts, parse_add_host, resolv_conf, upstream_servers,
)


def test_hosts_has_localhost_extra_links_and_own_name_last():
    text = hosts("web1", "172.17.0.2", extra=[parse_add_host("db:10.0.0.5")],
                 links=[HostEntry("172.17.0.3", ("mysql", "3f2a", "mysql_1"))])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[1] == "::1\tlocalhost ip6-localhost ip6-loopback"
    assert "10.0.0.5\tdb" in lines
    assert "172.17.0.3\tmysql 3f2a mysql_1" in lines
    assert lines[-1] == "172.17.0.2\tweb1"
    assert text.endswith("\n")


def test_hosts_without_address_has_no_own_line_and_domain_is_fqdn():
    assert not any("web1" in l for l in hosts("web1", None).splitlines())
    assert hosts("web1", "10.0.0.2", domainname="example.org").splitlines()[-1] == \
        "10.0.0.2\tweb1.example.org web1"


@pytest.mark.parametrize("spec,want", [("db:10.0.0.5", HostEntry("10.0.0.5", ("db",))),
                                       ("v6:[::1]", HostEntry("::1", ("v6",))),
                                       ("host=1.2.3.4", HostEntry("1.2.3.4", ("host",)))])
def test_add_host(spec, want):
    assert parse_add_host(spec) == want


def test_add_host_error():
    with pytest.raises(InvalidArgument):
        parse_add_host("nocolon")


HOST = "# generated\nnameserver 127.0.0.53\nnameserver 10.9.9.9\nsearch lan corp\noptions edns0\n"


def test_resolv_drops_localhost_nameservers_keeps_search_and_options():
    assert resolv_conf(HOST) == "nameserver 10.9.9.9\nsearch lan corp\noptions edns0\n"


def test_resolv_only_localhost_falls_back_to_docker_defaults():
    assert resolv_conf("nameserver 127.0.0.1\n").startswith("nameserver 8.8.8.8\nnameserver 8.8.4.4\n")


def test_resolv_flags_replace_host_values():
    got = resolv_conf(HOST, dns=["1.1.1.1"], dns_search=["x.y"], dns_options=["ndots:2"])
    assert got == "nameserver 1.1.1.1\nsearch x.y\noptions ndots:2\n"


def test_resolv_embedded_dns_on_user_networks():
    got = resolv_conf(HOST, embedded_dns="127.0.0.11")
    assert got == "nameserver 127.0.0.11\nsearch lan corp\noptions ndots:0 edns0\n"
    assert upstream_servers(HOST) == ("127.0.0.53", "10.9.9.9")
    assert upstream_servers(HOST, ["9.9.9.9"]) == ("9.9.9.9",)


def test_hostname_file():
    assert hostname_file("abc") == "abc\n"
