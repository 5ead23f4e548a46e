"""A container's /etc/hosts, /etc/resolv.conf and /etc/hostname, as Docker writes them (pure)."""

from __future__ import annotations

from typing import Iterable

from dockyard.record import Record

_HOSTS_HEADER = (
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
)


class HostEntry(Record):
    ip: str
    names: tuple[str, ...]


def parse_add_host(spec: str) -> HostEntry:
    """``--add-host name:ip`` (also ``name=ip``, and ``[v6]`` brackets)."""
    from dockyard.errors import InvalidArgument

    sep = "=" if "=" in spec else ":"
    name, _, ip = spec.partition(sep)
    ip = ip.strip().strip("[]")
    if not name or not ip:
        raise InvalidArgument(f"invalid argument {spec!r} for \"--add-host\" flag: "
                              f"expected name:ip")
    return HostEntry(ip, (name.strip(),))


def hosts(hostname: str, ip: str | None = None, domainname: str = "",
          extra: Iterable[HostEntry] = (), links: Iterable[HostEntry] = (),
          aliases: Iterable[str] = ()) -> str:
    """``/etc/hosts``: localhost lines, ``extra`` (``--add-host``), ``links`` (``--link``: ip,
    alias, name, ...) then the container's own ``ip`` → ``hostname`` (omitted without an address,
    e.g. ``--network none``; with ``--network host`` the caller passes the host's file instead)."""
    lines = list(_HOSTS_HEADER)
    for e in extra:
        lines.append(f"{e.ip}\t{' '.join(e.names)}")
    for e in links:
        lines.append(f"{e.ip}\t{' '.join(e.names)}")
    if ip:
        fqdn = f"{hostname}.{domainname}" if domainname else ""
        names = [n for n in (fqdn, hostname, *aliases) if n]
        lines.append(f"{ip}\t{' '.join(dict.fromkeys(names))}")
    return "\n".join(lines) + "\n"


class Resolv(Record):
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def parse_resolv(text: str) -> Resolv:
    ns: list[str] = []
    search: list[str] = []
    opts: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            ns.append(fields[1])
        elif fields[0] in ("search", "domain"):
            search = fields[1:]
        elif fields[0] == "options":
            opts.extend(fields[1:])
    return Resolv(tuple(ns), tuple(search), tuple(opts))


def _is_local(ns: str) -> bool:
    return ns.startswith("127.") or ns == "::1" or ns.startswith("fe80:")


#: What Docker falls back to when no usable host nameserver is left (its defaultIPv4Dns).
DEFAULT_DNS = ("8.8.8.8", "8.8.4.4")


def resolv_conf(host_resolv: str, dns: Iterable[str] = (), dns_search: Iterable[str] = (),
                dns_options: Iterable[str] = (), embedded_dns: str | None = None) -> str:
    """``/etc/resolv.conf`` for a container.

    ``embedded_dns`` (user networks): that address is the only nameserver, with ``ndots:0``
    as Docker adds; the responder forwards other names to the host's resolvers (or ``--dns``).
    Otherwise: ``--dns`` when given, else the host's nameservers with localhost ones removed
    (unreachable from the container's namespace), else Docker's defaults. ``--dns-search`` and
    ``--dns-option`` replace the host's ``search`` / ``options`` lines.
    """
    host = parse_resolv(host_resolv)
    dns, dns_search, dns_options = tuple(dns), tuple(dns_search), tuple(dns_options)
    if embedded_dns:
        servers: tuple[str, ...] = (embedded_dns,)
    elif dns:
        servers = dns
    else:
        servers = tuple(n for n in host.nameservers if not _is_local(n)) or DEFAULT_DNS
    search = dns_search or host.search
    if search == (".",):
        search = ()
    options = dns_options or host.options
    if embedded_dns and not any(o.startswith("ndots:") for o in options):
        options = ("ndots:0", *options)
    lines = [f"nameserver {n}" for n in servers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def upstream_servers(host_resolv: str, dns: Iterable[str] = ()) -> tuple[str, ...]:
    """Where the embedded DNS forwards other names: ``--dns``, else the host's nameservers
    (localhost ones included: the responder runs in the host's namespace)."""
    dns = tuple(dns)
    return dns or parse_resolv(host_resolv).nameservers


def hostname_file(hostname: str) -> str:
    return hostname + "\n"
