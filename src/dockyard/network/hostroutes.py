"""The host's IPv4 routes and local addresses as CIDRs, which a picked subnet must not overlap
(``NetworkService(host_routes=host_routes)``). Read from procfs: no netlink, no subprocess.

- ``/proc/net/route``: the main table (destination and mask in little-endian hex); default
  routes are kept here and ignored by ``ipam``.
- ``/proc/net/fib_trie``: the local table's ``host LOCAL`` entries, i.e. the host's own addresses
  (and ranges such as 127.0.0.0/8), which the main table does not list.
"""

from __future__ import annotations

import ipaddress
import socket
import struct


def _hex_ip(text: str) -> str:
    return socket.inet_ntoa(struct.pack("<I", int(text, 16)))


def parse_route(text: str) -> list[str]:
    """``/proc/net/route`` text → destination CIDRs."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest, mask = _hex_ip(fields[1]), _hex_ip(fields[7])
            net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        except (ValueError, struct.error):
            continue
        out.append(str(net))
    return out


def parse_fib_trie(text: str) -> list[str]:
    """``/proc/net/fib_trie`` text → the ``host LOCAL`` entries as CIDRs."""
    out = []
    last = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|-- "):
            last = s[4:].strip()
        elif s.startswith("/") and last and "host LOCAL" in s:
            prefix = s.split()[0]
            try:
                out.append(str(ipaddress.IPv4Network(f"{last}{prefix}", strict=False)))
            except ValueError:
                pass
    return out


def host_routes(route_path: str = "/proc/net/route",
                fib_trie_path: str = "/proc/net/fib_trie") -> list[str]:
    """Every IPv4 route destination and local address of the host, each once."""
    found: list[str] = []
    for path, parse in ((route_path, parse_route), (fib_trie_path, parse_fib_trie)):
        try:
            with open(path) as f:
                found += parse(f.read())
        except OSError:
            continue
    return list(dict.fromkeys(found))
