"""The embedded DNS responder's pure parts: wire format, records, local answers, resolv.conf."""

from __future__ import annotations

import random
import struct

import dns.message
import pytest

from dockyard import errors
from dockyard.network import dnswire as wire
from dockyard.network.dns import DNSServer, Resolver, host_upstreams


def header(ident=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def qname(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"


# --------------------------------------------------------------------------------------------------
# wire format

def test_query_round_trip_lowercases_name_and_drops_final_dot():
    q = wire.parse_query(wire.build_query("Web.Example.", wire.AAAA, ident=9))
    assert (q.name, q.qtype, q.qclass, q.udp_limit) == ("web.example", wire.AAAA, wire.CLASS_IN, 512)


@pytest.mark.parametrize(("payload", "limit"), [(1232, 1232), (65000, 4096), (100, 512)])
def test_edns_payload_sets_the_udp_limit_within_bounds(payload, limit):
    assert wire.parse_query(wire.build_query("web", edns_payload=payload)).udp_limit == limit


def test_hand_built_query_parses():
    data = header() + qname("db") + struct.pack("!HH", 1, 1)
    q = wire.parse_query(data)
    assert (q.name, q.qtype) == ("db", wire.A)


def test_answer_has_a_records_and_compresses_the_owner_name_to_the_question():
    data = header(ident=42) + qname("web") + struct.pack("!HH", 1, 1)
    q = wire.parse_query(data)
    out = wire.answer_addresses(q, ["10.1.0.2", "10.1.0.3"], 600)
    reply = wire.parse_reply(out)
    assert reply.ident == 42 and reply.rcode == wire.NOERROR and reply.authoritative
    assert sorted(reply.answers) == [(wire.A, "10.1.0.2"), (wire.A, "10.1.0.3")]  # order: unspecified
    answer_start = len(data)
    assert out[answer_start:answer_start + 2] == b"\xc0\x0c"  # pointer to the question's name
    assert struct.unpack_from("!HHIH", out, answer_start + 2) == (1, 1, 600, 4)


def test_compressed_answer_names_are_followed_when_parsing_a_reply():
    q = header(ident=7, flags=0x8180, qd=1, an=1) + qname("a.example") + struct.pack("!HH", 1, 1)
    rr = b"\x01b\xc0\x0e" + struct.pack("!HHIH", 1, 1, 30, 4) + bytes([192, 0, 2, 1])  # b.<example>
    reply = wire.parse_reply(q + rr)
    assert reply.answers == ((wire.A, "192.0.2.1"),)


def test_self_pointing_name_is_formerr_not_a_hang():
    data = header(ident=5) + b"\xc0\x0c" + struct.pack("!HH", 1, 1)
    with pytest.raises(wire.WireError) as exc:
        wire.parse_query(data)
    reply = wire.parse_reply(exc.value.reply)
    assert reply.ident == 5 and reply.rcode == wire.FORMERR


@pytest.mark.parametrize("data", [
    header() + b"\x03we",                                   # name runs past the end
    header() + qname("web"),                                # no type/class
    header(qd=2) + qname("a") + b"\0\1\0\1" + qname("b") + b"\0\1\0\1",
    header(qd=0),
    header(an=1) + qname("a") + b"\0\1\0\1",                # answer count without answers
    header() + b"\x40abc\0\0\1\0\1",                        # reserved label type
])
def test_malformed_queries_get_formerr_with_their_id(data):
    with pytest.raises(wire.WireError) as exc:
        wire.parse_query(data)
    reply = wire.parse_reply(exc.value.reply)
    assert (reply.ident, reply.rcode) == (0x1234, wire.FORMERR)


def test_non_query_opcode_is_notimp():
    data = header(flags=0x1000) + qname("web") + b"\0\1\0\1"  # opcode 2 (STATUS)
    with pytest.raises(wire.WireError) as exc:
        wire.parse_query(data)
    assert wire.parse_reply(exc.value.reply).rcode == wire.NOTIMP


@pytest.mark.parametrize("data", [b"", b"\x12", header()[:11], header(flags=0x8180) + qname("a") + b"\0\1\0\1"])
def test_short_packets_and_responses_get_no_reply(data):
    with pytest.raises(wire.WireError) as exc:
        wire.parse_query(data)
    assert exc.value.reply is None


def test_oversized_query_is_refused():
    with pytest.raises(wire.WireError):
        wire.parse_query(header() + qname("a") + b"\0\1\0\1" + b"\0" * 5000)


def test_random_garbage_never_raises_anything_but_wire_error():
    rng = random.Random(1035)
    base = wire.build_query("web.example", edns_payload=1232)
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data[: rng.randint(0, len(data))]) if rng.random() < 0.3 else bytes(data)
        wire.parse_plain(data)  # None or a Plain, never an exception
        try:
            wire.parse_query(data)
        except wire.WireError as exc:
            if exc.reply is not None:
                assert exc.reply[:2] == data[:2]


def test_answer_too_big_for_udp_is_truncated_with_tc():
    q = wire.parse_query(wire.build_query("many"))
    ips = [f"10.2.{i // 250}.{i % 250 + 1}" for i in range(100)]
    out = wire.answer_addresses(q, ips, 600, limit=q.udp_limit)
    reply = wire.parse_reply(out)
    assert len(out) <= 512 and reply.truncated and 0 < len(reply.answers) < 100
    assert len(wire.answer_addresses(q, ips[:len(reply.answers) + 1], 600)) > 512  # as many as fit
    assert len(wire.parse_reply(wire.answer_addresses(q, ips, 600)).answers) == 100  # TCP: whole


def test_fit_udp_cuts_an_upstream_reply_and_sets_tc():
    q = wire.parse_query(wire.build_query("big.example"))
    full = wire.answer_addresses(q, [f"192.0.2.{i}" for i in range(1, 101)], 60)
    assert wire.fit_udp(full, 4096) == full
    cut = wire.fit_udp(full, 512)
    assert len(cut) <= 512 and wire.parse_reply(cut).truncated and wire.parse_reply(cut).answers


def test_ids_are_rewritten_and_responses_matched_by_id_and_question():
    query = wire.build_query("www.example", ident=1)
    resp = wire.answer_rcode(wire.parse_query(query), wire.NXDOMAIN)
    assert wire.response_matches(query, resp)
    assert not wire.response_matches(wire.with_id(query, 2), resp)
    assert wire.response_matches(wire.with_id(query, 2), wire.with_id(resp, 2))
    other = wire.answer_rcode(wire.parse_query(wire.build_query("evil.example", ident=1)), wire.NOERROR)
    assert not wire.response_matches(query, other)
    assert not wire.response_matches(query, query)  # not a response
    assert wire.response_matches(wire.build_query("WWW.example", ident=1), resp)


def test_reverse_ipv4_names():
    assert wire.reverse_ipv4("4.3.2.10.in-addr.arpa") == "10.2.3.4"
    assert wire.reverse_ipv4("4.3.2.10.IN-ADDR.ARPA.") == "10.2.3.4"
    assert wire.reverse_ipv4("3.2.10.in-addr.arpa") is None
    assert wire.reverse_ipv4("x.3.2.10.in-addr.arpa") is None
    assert wire.reverse_ipv4("web") is None


# --------------------------------------------------------------------------------------------------
# records

def test_lookup_is_case_insensitive_and_ignores_the_final_dot():
    r = Resolver()
    r.set("n1", ["Web", "frontend"], "10.1.0.2")
    assert r.lookup("n1", "WEB.") == ["10.1.0.2"]
    assert r.lookup("n1", "frontend") == ["10.1.0.2"]
    assert r.lookup("n1", "db") == []
    assert r.lookup("n2", "web") == []  # another network's names are not visible


def test_set_again_replaces_the_names_of_that_address():
    r = Resolver()
    r.set("n1", ["web", "old"], "10.1.0.2")
    r.set("n1", ["web", "new"], "10.1.0.2")
    assert r.lookup("n1", "old") == []
    assert r.lookup("n1", "new") == ["10.1.0.2"]
    assert r.names_of("n1", "10.1.0.2") == ["web", "new"]


def test_shared_alias_lists_every_address_until_each_is_removed():
    r = Resolver()
    r.set("n1", ["a", "svc"], "10.1.0.2")
    r.set("n1", ["b", "svc"], "10.1.0.3")
    assert r.lookup("n1", "svc") == ["10.1.0.2", "10.1.0.3"]
    r.remove("n1", "10.1.0.2")
    assert r.lookup("n1", "svc") == ["10.1.0.3"]
    assert r.lookup("n1", "a") == []
    r.remove("n1", "10.1.0.3")
    r.remove("n1", "10.1.0.3")  # twice: no error
    assert r.lookup("n1", "svc") == []


def test_invalid_address_is_invalid_argument():
    with pytest.raises(errors.InvalidArgument, match="network n1"):
        Resolver().set("n1", ["web"], "10.1.0.300")


def test_remove_network_forgets_its_records():
    r = Resolver()
    r.set("n1", ["web"], "10.1.0.2")
    r.remove_network("n1")
    assert r.lookup("n1", "web") == []


# --------------------------------------------------------------------------------------------------
# local answers (no sockets: answer_local is synchronous)

@pytest.fixture
def server():
    r = Resolver()
    r.set("n1", ["web", "www"], "10.1.0.2")
    return DNSServer(r, upstreams=[])


def ask(server, name, qtype=wire.A):
    q = wire.parse_query(wire.build_query(name, qtype))
    out = server.answer_local("n1", q, q.udp_limit)
    return None if out is None else wire.parse_reply(out)


def test_known_name_gets_its_address(server):
    assert ask(server, "www").answers == ((wire.A, "10.1.0.2"),)


def test_aaaa_for_a_container_is_empty_noerror(server):
    reply = ask(server, "web", wire.AAAA)
    assert (reply.rcode, reply.answers) == (wire.NOERROR, ())


def test_unknown_single_label_is_nxdomain_and_dotted_names_are_forwarded(server):
    assert ask(server, "db").rcode == wire.NXDOMAIN
    assert ask(server, "db", wire.AAAA).rcode == wire.NXDOMAIN
    assert ask(server, "example.com") is None
    assert ask(server, "web.example.com") is None


def test_ptr_of_a_container_address_gives_its_name_and_others_are_forwarded(server):
    assert ask(server, "2.0.1.10.in-addr.arpa", wire.PTR).answers == ((wire.PTR, "web."),)
    assert ask(server, "3.0.1.10.in-addr.arpa", wire.PTR) is None


# --------------------------------------------------------------------------------------------------
# resolv.conf

def test_host_upstreams_reads_nameservers_in_order_and_keeps_loopback(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nsearch corp.example\nnameserver 127.0.0.53\n"
                    "nameserver   192.0.2.1  # trailing\nnameserver ::1\nnameserver bogus\n"
                    "nameserver 192.0.2.1\noptions edns0\n;nameserver 192.0.2.9\n")
    assert host_upstreams(str(conf)) == [("127.0.0.53", 53), ("192.0.2.1", 53), ("::1", 53)]


def test_host_upstreams_without_a_file_is_empty(tmp_path):
    assert host_upstreams(str(tmp_path / "missing")) == []


# --------------------------------------------------------------------------------------------------
# the fast path for plain queries must answer exactly what the dnspython path answers

@pytest.mark.parametrize(("name", "qtype", "edns", "ips"), [
    ("web", wire.A, None, ["10.1.0.2"]),
    ("Web-1.my_net", wire.A, 1232, ["10.1.0.2", "10.1.0.3"]),
    ("web", wire.AAAA, None, ["10.1.0.2"]),
    ("web", wire.AAAA, 1232, ["10.1.0.2", "fd00::2"]),
    ("web", 15, None, ["10.1.0.2"]),  # MX: NODATA
    ("gone", wire.A, None, []),
])
def test_plain_reply_equals_the_general_reply(name, qtype, edns, ips):
    data = wire.build_query(name, qtype, ident=321, edns_payload=edns)
    plain = wire.parse_plain(data)
    query = wire.parse_query(data)
    assert plain is not None and (plain.name, plain.qtype, plain.udp_limit) == (query.name, query.qtype, query.udp_limit)
    if ips:
        fast, slow = wire.plain_reply(plain, wire.NOERROR, ips, 600), wire.answer_addresses(query, ips, 600)
    else:
        fast, slow = wire.plain_reply(plain, wire.NXDOMAIN, [], 600), wire.answer_rcode(query, wire.NXDOMAIN)
    a, b = wire.parse_reply(fast), wire.parse_reply(slow)
    assert (a.ident, a.rcode, a.truncated, a.authoritative, a.question, sorted(a.answers)) == \
        (b.ident, b.rcode, b.truncated, b.authoritative, b.question, sorted(b.answers))
    assert (dns.message.from_wire(fast).edns == 0) == (edns is not None)


def test_plain_reply_truncates_to_the_records_that_fit():
    plain = wire.parse_plain(wire.build_query("many"))
    ips = [f"10.2.{i // 250}.{i % 250 + 1}" for i in range(100)]
    out = wire.plain_reply(plain, wire.NOERROR, ips, 600, limit=512)
    reply = wire.parse_reply(out)
    assert len(out) <= 512 and len(out) + 16 > 512 and reply.truncated and len(reply.answers) > 0


@pytest.mark.parametrize("data", [
    header() + b"\x03web\xc0\x0c\0\1\0\1",                         # compression in the question
    header() + b"\x04we.b\0\0\1\0\1",                                # a dot inside a label
    header() + b"\x04w\\eb\0\0\1\0\1",                            # a backslash
    header() + qname("web") + b"\0\1\0\1" + b"junk",              # trailing bytes
    header(ar=1) + qname("web") + b"\0\1\0\1" + b"\0" + b"\0\x29\x10\0\0\1\0\0\0\0",  # EDNS version 1
    header(ar=1) + qname("web") + b"\0\1\0\1" + b"\0\0\x01\0\1\0\0\0\0\0\0",    # additional not OPT
    header(flags=0x8100) + qname("web") + b"\0\1\0\1",             # a response
])
def test_anything_but_a_plain_query_takes_the_general_path(data):
    assert wire.parse_plain(data) is None


def test_plain_edns0_query_takes_the_fast_path():
    data = header(ar=1) + qname("web") + b"\0\1\0\1" + b"\0" + b"\0\x29\x10\0\0\0\0\0\0\0"
    assert wire.parse_plain(data).udp_limit == 4096
