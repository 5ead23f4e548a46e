"""DNS wire format for the embedded responder: parse one query, build its answers (pure).

The RFC 1035 encoding (names with compression pointers, EDNS, truncation) is dnspython's; this
module is the small surface the responder needs on top of it, so ``dns.py`` deals in questions and
addresses rather than messages. Raw-byte helpers (``error_reply``, ``with_id``, ``response_matches``)
work on packets dnspython refuses, so a malformed query still gets FORMERR instead of silence.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rdatatype
import dns.rrset

from dockyard.record import Record

A = 1
PTR = 12
AAAA = 28
CLASS_IN = 1

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5

HEADER = 12
UDP_MIN = 512            # RFC 1035: what a client without EDNS accepts
UDP_MAX = 4096           # what we offer and cap an EDNS client's payload size at (DNS flag day 2020: 1232)
MAX_QUERY = 4096         # a query is one question and an OPT; anything larger is abuse

_QR = 0x8000
_TC = 0x0200
_RD = 0x0100
_RA = 0x0080
_AA = 0x0400
_OPCODE_MASK = 0x7800


class WireError(Exception):
    """A query we answer with an error rcode (``reply`` is None when no reply is possible)."""

    def __init__(self, message: str, reply: bytes | None) -> None:
        super().__init__(message)
        self.reply = reply


class Query(Record):
    """One parsed question; ``name`` is lower-case without the trailing dot ('' for the root)."""

    name: str
    qtype: int
    qclass: int
    udp_limit: int          # the largest UDP reply the client accepts
    message: object         # the dns.message.Message, to build the reply from


def parse_query(data: bytes) -> Query:
    """Parse a client's query, or raise WireError carrying the FORMERR/NOTIMP reply to send."""
    if len(data) < HEADER:
        raise WireError(f"dns query of {len(data)} bytes: shorter than a header", None)
    (flags,) = struct.unpack_from("!H", data, 2)
    if flags & _QR:
        raise WireError("dns query: the QR bit is set (a response, not a query)", None)
    if len(data) > MAX_QUERY:
        raise WireError(f"dns query of {len(data)} bytes: larger than {MAX_QUERY}", error_reply(data, FORMERR))
    if (flags & _OPCODE_MASK) >> 11 != dns.opcode.QUERY:
        raise WireError("dns query: opcode is not QUERY", error_reply(data, NOTIMP))
    try:
        msg = dns.message.from_wire(data)
    except dns.exception.DNSException as exc:
        raise WireError(f"dns query: malformed: {exc}", error_reply(data, FORMERR)) from None
    if len(msg.question) != 1 or msg.answer or msg.authority:
        raise WireError(f"dns query: {len(msg.question)} questions", error_reply(data, FORMERR))
    rrset = msg.question[0]
    name = rrset.name.to_text(omit_final_dot=True).lower()
    if name == "@":
        name = ""
    limit = UDP_MIN
    if msg.edns >= 0:
        limit = max(UDP_MIN, min(msg.payload, UDP_MAX))
    return Query(name, int(rrset.rdtype), int(rrset.rdclass), limit, msg)


def _response(query: Query, rcode: int) -> dns.message.Message:
    resp = dns.message.make_response(query.message, recursion_available=True, our_payload=UDP_MAX)
    resp.set_rcode(rcode)
    return resp


def _to_wire(resp: dns.message.Message, limit: int | None) -> bytes:
    out = resp.to_wire()
    if limit is None or len(out) <= limit:
        return out
    return _truncate(resp, limit)


def _truncate(msg: dns.message.Message, limit: int) -> bytes:
    """As many answer records as fit in ``limit`` bytes, TC set (RFC 2181 9).

    dnspython's own truncation drops whole RRsets, so 100 addresses for one name become none; a
    client that cannot retry over TCP (musl before 1.2.4, i.e. most busybox/alpine images) is
    better served by the first few.
    """
    records = [(rrset.name, rrset.rdclass, rrset.rdtype, rrset.ttl, rd) for rrset in msg.answer for rd in rrset]
    msg.authority = []
    msg.additional = []
    msg.flags |= dns.flags.TC

    def render(k: int) -> bytes:
        msg.answer = []
        for name, rdclass, rdtype, ttl, rd in records[:k]:
            last = msg.answer[-1] if msg.answer else None
            if last is None or last.name != name or last.rdtype != rdtype:
                last = dns.rrset.RRset(name, rdclass, rdtype)
                msg.answer.append(last)
            last.add(rd, ttl)
        return msg.to_wire()

    lo, hi = 0, len(records)  # invariant: k=lo fits (only the question is left at 0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(render(mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return render(lo)


def answer_addresses(query: Query, ips: list[str], ttl: int, limit: int | None = None) -> bytes:
    """NOERROR with one A record per IPv4 address in ``ips`` (none for other types: NODATA)."""
    resp = _response(query, NOERROR)
    resp.flags |= dns.flags.AA
    want = [ip for ip in ips if (ipaddress.ip_address(ip).version == 4) == (query.qtype == A)]
    if query.qtype in (A, AAAA) and want:
        rdtype = dns.rdatatype.A if query.qtype == A else dns.rdatatype.AAAA
        rrset = dns.rrset.from_text_list(query.message.question[0].name, ttl, "IN", rdtype, want)
        resp.answer.append(rrset)
    return _to_wire(resp, limit)


def answer_ptr(query: Query, target: str, ttl: int, limit: int | None = None) -> bytes:
    """NOERROR with one PTR record pointing at ``target`` (a name, made absolute)."""
    resp = _response(query, NOERROR)
    resp.flags |= dns.flags.AA
    rrset = dns.rrset.from_text(query.message.question[0].name, ttl, "IN", "PTR", target.rstrip(".") + ".")
    resp.answer.append(rrset)
    return _to_wire(resp, limit)


def answer_rcode(query: Query, rcode: int, limit: int | None = None) -> bytes:
    """An empty reply with ``rcode`` (NXDOMAIN, SERVFAIL, REFUSED ...), the question echoed."""
    resp = _response(query, rcode)
    if rcode == NXDOMAIN:
        resp.flags |= dns.flags.AA
    return _to_wire(resp, limit)


class Plain(Record):
    """A query in the common plain shape (see ``parse_plain``), kept as bytes for a fast reply."""

    name: str            # lower-case, no final dot
    qtype: int
    qclass: int
    ident: int
    rd: int              # the RD bit, to echo
    question: bytes      # the question section as the client sent it
    udp_limit: int
    edns: bool


_LABEL_OK = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def parse_plain(data: bytes) -> Plain | None:
    """The fast path's parser: one uncompressed question of letters, digits, '-' and '_', then
    nothing or one EDNS0 OPT record; None for anything else (``parse_query`` handles it).

    dnspython takes ~0.1 ms a query; container lookups are nearly all this shape.
    """
    n = len(data)
    if n < HEADER + 5 or n > MAX_QUERY:
        return None
    ident, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data, 0)
    if flags & (_QR | _OPCODE_MASK) or qd != 1 or an or ns or ar > 1:
        return None
    off = HEADER
    labels = []
    while True:
        ln = data[off]
        if ln == 0:
            off += 1
            break
        if ln > 63 or off + 1 + ln >= n:
            return None
        label = data[off + 1:off + 1 + ln]
        if not _LABEL_OK.issuperset(label):
            return None
        labels.append(label)
        off += 1 + ln
    if off + 4 > n or off - HEADER > 255:
        return None
    qtype, qclass = struct.unpack_from("!HH", data, off)
    q_end = off + 4
    limit = UDP_MIN
    edns = False
    if ar:
        # OPT: root owner, type 41, class = payload size, ttl = ext-rcode/version/flags, rdata
        if q_end + 11 > n or data[q_end] != 0:
            return None
        rtype, payload, ttl, rdlen = struct.unpack_from("!HHIH", data, q_end + 1)
        if rtype != 41 or (ttl >> 16) & 0xFF or q_end + 11 + rdlen != n:
            return None
        limit = max(UDP_MIN, min(payload, UDP_MAX))
        edns = True
    elif q_end != n:
        return None
    name = b".".join(labels).decode("ascii").lower()
    return Plain(name, qtype, qclass, ident, flags & _RD, data[HEADER:q_end], limit, edns)


_OPT = b"\x00" + struct.pack("!HHIH", 41, UDP_MAX, 0, 0)


def plain_reply(query: Plain, rcode: int, ips: list[str], ttl: int, limit: int | None = None) -> bytes:
    """The reply to a plain query: A (or AAAA) records for those of ``ips`` of the asked family.

    The owner name of each record is a pointer to the question (0xC00C). When ``limit`` is given
    and the records do not fit, as many as fit are sent with TC set.
    """
    records = []
    if query.qtype in (A, AAAA):
        family, rdlen = (socket.AF_INET, 4) if query.qtype == A else (socket.AF_INET6, 16)
        head = b"\xc0\x0c" + struct.pack("!HHIH", query.qtype, CLASS_IN, ttl, rdlen)
        for ip in ips:
            if (":" in ip) == (query.qtype == AAAA):
                records.append(head + socket.inet_pton(family, ip))
    flags = _QR | _AA | query.rd | _RA | rcode
    tail = _OPT if query.edns else b""
    if limit is not None and records:
        room = limit - HEADER - len(query.question) - len(tail)
        keep = max(0, room // len(records[0]))
        if keep < len(records):
            records = records[:keep]
            flags |= _TC
    head = struct.pack("!HHHHHH", query.ident, flags, 1, len(records), 0, 1 if query.edns else 0)
    return head + query.question + b"".join(records) + tail


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A header-only reply to raw ``data`` (id, opcode and RD copied), or None if it has no header."""
    if len(data) < HEADER:
        return None
    ident, flags = struct.unpack_from("!HH", data, 0)
    if flags & _QR:
        return None
    out = _QR | (flags & (_OPCODE_MASK | _RD)) | _RA | (rcode & 0xF)
    return struct.pack("!HHHHHH", ident, out, 0, 0, 0, 0)


def query_id(data: bytes) -> int:
    return struct.unpack_from("!H", data, 0)[0]


def with_id(data: bytes, ident: int) -> bytes:
    """The same packet with another message id (forwarding rewrites ids both ways)."""
    return struct.pack("!H", ident) + data[2:]


def is_truncated(data: bytes) -> bool:
    return len(data) >= HEADER and bool(struct.unpack_from("!H", data, 2)[0] & _TC)


def _question_end(data: bytes) -> int:
    """Offset after the first question of ``data`` (raises ValueError if malformed or compressed)."""
    off = HEADER
    while True:
        if off >= len(data):
            raise ValueError("question runs past the packet")
        n = data[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0:
            raise ValueError("question name is compressed")
        off += 1 + n
    if off + 4 > len(data):
        raise ValueError("question runs past the packet")
    return off + 4


def response_matches(query: bytes, resp: bytes) -> bool:
    """Whether ``resp`` answers ``query``: same id, QR set, one question equal (ignoring case)."""
    if len(resp) < HEADER or resp[:2] != query[:2]:
        return False
    flags, qd = struct.unpack_from("!HH", resp, 2)
    if not flags & _QR or qd != 1:
        return False
    try:
        q_end = _question_end(query)
        r_end = _question_end(resp)
    except ValueError:
        return False
    return query[HEADER:q_end].lower() == resp[HEADER:r_end].lower()


def fit_udp(resp: bytes, limit: int) -> bytes:
    """``resp`` cut to ``limit`` bytes for a UDP client: whole records dropped and TC set."""
    if len(resp) <= limit:
        return resp
    try:
        return _truncate(dns.message.from_wire(resp), limit)
    except dns.exception.DNSException:
        try:
            end = _question_end(resp)
        except ValueError:
            end = HEADER
        ident, flags, qd = struct.unpack_from("!HHH", resp, 0)
        qd = 1 if end > HEADER else 0
        return struct.pack("!HHHHHH", ident, flags | _TC, qd, 0, 0, 0) + resp[HEADER:end]


def reverse_ipv4(name: str) -> str | None:
    """The IPv4 address a ``d.c.b.a.in-addr.arpa`` name stands for, or None."""
    labels = name.rstrip(".").lower().split(".")
    if len(labels) != 6 or labels[4:] != ["in-addr", "arpa"]:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(labels[:4]))))
    except ValueError:
        return None


def build_query(name: str, qtype: int = A, *, ident: int = 0, edns_payload: int | None = None) -> bytes:
    """A client query (tests and probes)."""
    msg = dns.message.make_query(name, qtype, use_edns=edns_payload is not None, payload=edns_payload or 1232)
    msg.id = ident
    return msg.to_wire()


class Reply(Record):
    ident: int
    rcode: int
    truncated: bool
    authoritative: bool
    question: str
    answers: tuple[tuple[int, str], ...]     # (rdtype, text) per record, in order


def parse_reply(data: bytes) -> Reply:
    """A server's reply, decoded (tests and probes)."""
    msg = dns.message.from_wire(data, ignore_trailing=True, raise_on_truncation=False)
    answers = tuple((int(rrset.rdtype), rd.to_text()) for rrset in msg.answer for rd in rrset)
    question = msg.question[0].name.to_text(omit_final_dot=True).lower() if msg.question else ""
    return Reply(msg.id, int(msg.rcode()), bool(msg.flags & dns.flags.TC), bool(msg.flags & dns.flags.AA),
                 question, answers)
