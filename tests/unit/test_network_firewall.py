"""firewall.render: one table, replaced atomically; NAT, isolation, internal networks, ports."""

import pytest

from dockyard.errors import InvalidArgument
from dockyard.network.firewall import NetRule, PortRule, Ruleset, additions, removal, render


def chain(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"\tchain {name} {{")
    end = lines.index("\t}", start)
    return [l.strip() for l in lines[start + 1:end]]


A = NetRule("dy-a", "10.1.0.0/24")
B = NetRule("dy-b", "10.2.0.0/24")
I = NetRule("dy-i", "10.3.0.0/24", internal=True)


def test_script_replaces_only_our_table_in_one_transaction():
    text = render(Ruleset(networks=(A,)))
    head = text.splitlines()[:3]
    assert head == ["table inet dockyard", "delete table inet dockyard", "table inet dockyard {"]
    tables = {l.split("{")[0].strip() for l in text.splitlines() if l.startswith("table")}
    assert tables == {"table inet dockyard"}
    assert removal() == "table inet dockyard\ndelete table inet dockyard\n"


def test_egress_masquerade_for_normal_networks_not_internal():
    post = chain(render(Ruleset(networks=(A, I))), "postrouting")
    assert 'ip saddr 10.1.0.0/24 oifname != "dy-a" masquerade' in post
    assert not any("10.3.0.0/24 oifname !=" in r for r in post)


def test_isolation_between_bridges_and_published_ports_exempt():
    fwd = chain(render(Ruleset(networks=(A, B))), "forward")
    assert 'iifname "dy-a" oifname { "dy-b" } drop' in fwd
    assert 'iifname "dy-b" oifname { "dy-a" } drop' in fwd
    assert fwd.index("ct status dnat accept") < fwd.index('iifname "dy-a" oifname { "dy-b" } drop')


def test_single_network_has_no_isolation_rules():
    assert chain(render(Ruleset(networks=(A,))), "forward")[1:] == []


def test_internal_network_forwards_only_to_itself_before_any_accept():
    fwd = chain(render(Ruleset(networks=(A, I))), "forward")
    assert fwd.index('iifname "dy-i" oifname != "dy-i" drop') < fwd.index("ct status dnat accept")
    assert 'oifname "dy-i" iifname != "dy-i" drop' in fwd


def test_published_ports_dnat_from_local_addresses_and_specific_ip():
    text = render(Ruleset(networks=(A,), ports=(
        PortRule("tcp", "", 8080, "10.1.0.2", 80, "dy-a"),
        PortRule("udp", "127.0.0.1", 5353, "10.1.0.2", 53, "dy-a"))))
    ports = chain(text, "ports")
    assert ports == [
        "meta nfproto ipv4 fib daddr type local tcp dport 8080 dnat ip to 10.1.0.2:80",
        "meta nfproto ipv4 ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.1.0.2:53",
    ]
    assert "jump ports" in chain(text, "prerouting")
    assert "jump ports" in chain(text, "output")
    post = chain(text, "postrouting")
    assert 'ip saddr 127.0.0.0/8 oifname { "dy-a" } masquerade' in post       # loopback DNAT
    assert 'oifname "dy-a" ip saddr 10.1.0.0/24 ct status dnat masquerade' in post  # hairpin
    assert any("ip daddr 127.0.0.0/8 ct direction original drop" in r for r in chain(text, "input"))


def test_empty_ruleset_still_valid_table():
    text = render(Ruleset())
    assert chain(text, "ports") == []
    assert chain(text, "prerouting") == ["type nat hook prerouting priority dstnat; policy accept;",
                                         "jump ports"]


@pytest.mark.parametrize("rules", [
    Ruleset(networks=(NetRule('x"; flush ruleset', "10.0.0.0/8"),)),
    Ruleset(networks=(NetRule("dy-a", "not-a-subnet"),)),
    Ruleset(networks=(A, A)),
    Ruleset(ports=(PortRule("icmp", "", 1, "10.1.0.2", 1),)),
    Ruleset(ports=(PortRule("tcp", "", 70000, "10.1.0.2", 1),)),
    Ruleset(ports=(PortRule("tcp", "", 80, "10.1.0.2; drop", 1),)),
])
def test_bad_input_is_rejected_not_rendered(rules):
    with pytest.raises(InvalidArgument):
        render(rules)


def test_additions_add_only_new_port_rules_else_ask_for_the_whole_table():
    p1 = PortRule(proto="tcp", host_ip="", host_port=8080, container_ip="10.88.0.2", container_port=80)
    p2 = PortRule(proto="udp", host_ip="127.0.0.1", host_port=5353, container_ip="10.88.0.3",
                  container_port=53)
    old = Ruleset(networks=(A,), ports=(p1,))
    script = additions(old, Ruleset(networks=(A,), ports=(p1, p2)), table="dockyard_x")
    assert script == ("add rule inet dockyard_x ports meta nfproto ipv4 ip daddr 127.0.0.1 udp "
                      "dport 5353 dnat ip to 10.88.0.3:53\n")
    assert additions(old, old) == ""
    assert additions(old, Ruleset(networks=(A,))) is None  # a port goes: rules are deleted
    assert additions(old, Ruleset(networks=(A, B), ports=(p1, p2))) is None  # a network came
    # the base chains jump to "ports" even when it is empty, so an addition needs no other change
    assert "jump ports" in chain(render(Ruleset(networks=(A,))), "prerouting")
