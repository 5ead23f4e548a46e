"""Bridge and veth plumbing over netlink (pyroute2). Every function takes explicit names.

Blocking calls: run them on a worker thread. Each call opens its own netlink sockets (~1 ms), so
functions are independent and thread-safe. The container side is configured through a netlink
socket created inside the namespace by :func:`dockyard.network.netns.socket_in` (a thread's setns),
not ``IPRoute(netns=...)``, which forks a helper process per socket in pyroute2 0.9 (~7 ms).

``connect`` creates the veth pair with the peer born inside the container's namespace under its
final name (``eth0``) and MAC (IFLA_NET_NS_FD in the peer's attributes), so there is no rename or
move step and never an ``eth0`` visible on the host.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
from contextlib import contextmanager
from typing import Iterator

from dockyard.errors import AlreadyExists, InvalidArgument, KernelError, NotFound
from dockyard.network import netns as _netns

NETLINK_ROUTE = 0


@contextmanager
def _host() -> Iterator["object"]:
    from pyroute2 import IPRoute

    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


@contextmanager
def _inside(netns_path: str) -> Iterator["object"]:
    from pyroute2 import IPRoute

    sock = _netns.socket_in(netns_path, socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
    ipr = IPRoute(use_socket=sock)
    try:
        yield ipr
    finally:
        ipr.close()
        sock.close()


def _err(operation: str, exc: Exception) -> Exception:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None) or errno.EIO
    return KernelError(operation, int(code))


def _index(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _split_cidr(cidr: str) -> tuple[str, int]:
    addr, _, plen = cidr.partition("/")
    if not plen:
        raise InvalidArgument(f"address {cidr!r}: expected address/prefix-length")
    return addr, int(plen)


def random_mac() -> str:
    """A random locally administered unicast MAC (02:xx:...)."""
    b = bytearray(secrets.token_bytes(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def host_ifname(container_id: str = "") -> str:
    """``veth`` + 8 hex digits (random; the container id is not needed and not leaked)."""
    return "veth" + secrets.token_hex(4)


def enable_forwarding(proc: str = "/proc/sys") -> None:
    """net.ipv4.ip_forward=1 (only when the caller asks; the host may already have it)."""
    _write_sysctl(f"{proc}/net/ipv4/ip_forward", "1")


def _write_sysctl(path: str, value: str) -> None:
    with open(path) as f:
        if f.read().strip() == value:
            return
    with open(path, "w") as f:
        f.write(value)


def ensure_bridge(name: str, gateway_cidr: str | None, mtu: int = 1500,
                  route_localnet: bool = True, proc: str = "/proc/sys") -> int:
    """The bridge ``name`` exists, carries ``gateway_cidr`` (e.g. ``172.18.0.1/16``) and is up.

    Idempotent. A new bridge gets a fixed random MAC (else it takes the lowest port's MAC, which
    changes as containers come and go). ``route_localnet`` lets DNAT from 127.0.0.1 leave through
    the bridge (the firewall masquerades it and drops 127/8 arriving from bridges). Returns the
    bridge's interface index.
    """
    if len(name) > 15:
        raise InvalidArgument(f"bridge name {name!r}: longer than 15 characters")
    with _host() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            try:
                ipr.link("add", ifname=name, kind="bridge", address=random_mac(), mtu=mtu)
            except Exception as exc:
                if getattr(exc, "code", None) != errno.EEXIST:
                    raise _err(f"create bridge {name}", exc) from exc
            idx = _index(ipr, name)
            if idx is None:
                raise NotFound(f"bridge {name}: vanished after creation")
        if gateway_cidr:
            addr, plen = _split_cidr(gateway_cidr)
            have = {(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx)}
            if (addr, plen) not in have:
                try:
                    ipr.addr("add", index=idx, address=addr, prefixlen=plen)
                except Exception as exc:
                    if getattr(exc, "code", None) != errno.EEXIST:
                        raise _err(f"add address {gateway_cidr} to bridge {name}", exc) from exc
        ipr.link("set", index=idx, state="up")
    if route_localnet:
        _write_sysctl(f"{proc}/net/ipv4/conf/{name}/route_localnet", "1")
    return idx


def delete_bridge(name: str) -> None:
    """Remove the bridge (its veths stay, detached). Idempotent."""
    with _host() as ipr:
        idx = _index(ipr, name)
        if idx is None:
            return
        try:
            ipr.link("del", index=idx)
        except Exception as exc:
            if getattr(exc, "code", None) != errno.ENODEV:
                raise _err(f"delete bridge {name}", exc) from exc


def bridge_exists(name: str) -> bool:
    with _host() as ipr:
        return _index(ipr, name) is not None


def _sysfs_link(name: str) -> tuple[int | None, int | None]:
    """(ifindex, mtu) of a host interface from /sys/class/net, or (None, None) if absent."""
    if "/" in name or name in ("", ".", ".."):
        return None, None
    try:
        with open(f"/sys/class/net/{name}/ifindex") as f:
            index = int(f.read())
        with open(f"/sys/class/net/{name}/mtu") as f:
            return index, int(f.read())
    except (OSError, ValueError):
        return None, None


def bridge_ready(name: str) -> bool:
    """The bridge exists (a cheap check, no netlink)."""
    return _sysfs_link(name)[0] is not None


def connect(netns_path: str, bridge: str, host_ifname: str, ip_cidr: str,
            gateway: str | None, mac: str | None = None, mtu: int | None = None,
            ifname: str = "eth0") -> None:
    """Plug the namespace at ``netns_path`` into ``bridge`` through a new veth pair.

    Host end ``host_ifname`` (attached to the bridge, up); container end ``ifname`` with ``mac``
    (random when None), address ``ip_cidr`` (``172.18.0.2/16``), up; ``lo`` up; a default route
    via ``gateway`` unless it is None (``--internal`` networks). On failure the pair is removed.
    """
    addr, plen = _split_cidr(ip_cidr)
    mac = mac or random_mac()
    br, br_mtu = _sysfs_link(bridge)  # no netlink dump per container (~1 ms)
    if br is None:
        raise NotFound(f"connect {host_ifname}: bridge {bridge} not found")
    mtu = mtu or br_mtu or 1500
    with _host() as ipr:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"connect {host_ifname}: network namespace {netns_path} not found") from None
        try:
            ipr.link("add", ifname=host_ifname, kind="veth", mtu=mtu, master=br, state="up",
                     peer={"ifname": ifname, "net_ns_fd": fd, "address": mac, "mtu": mtu})
        except Exception as exc:
            if getattr(exc, "code", None) == errno.EEXIST:
                raise AlreadyExists(f"connect: interface {host_ifname} (or {ifname} in "
                                    f"{netns_path}) already exists") from exc
            raise _err(f"create veth {host_ifname} for {netns_path}", exc) from exc
        finally:
            os.close(fd)
        try:
            with _inside(netns_path) as nipr:
                eth = _index(nipr, ifname)
                lo = _index(nipr, "lo")
                nipr.link("set", index=lo, state="up")
                nipr.addr("add", index=eth, address=addr, prefixlen=plen)
                nipr.link("set", index=eth, state="up")
                if gateway:
                    nipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=eth)
        except BaseException as exc:
            try:
                ipr.link("del", ifname=host_ifname)
            except Exception:
                pass
            if isinstance(exc, Exception) and not isinstance(exc, (KernelError, NotFound)):
                raise _err(f"configure veth {host_ifname} / {ifname} in {netns_path}", exc) from exc
            raise


def disconnect(host_ifname: str) -> None:
    """Delete the veth pair by its host end (the peer goes with it). Idempotent.

    Costs 15-35 ms (the kernel waits for an RCU grace period). When the container's namespace
    goes away anyway, ``netns.delete`` after its processes exit is enough: the kernel removes
    the pair with the namespace, asynchronously and for free to the caller.
    """
    with _host() as ipr:
        try:
            ipr.link("del", ifname=host_ifname)
        except Exception as exc:
            if getattr(exc, "code", None) not in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                raise _err(f"delete veth {host_ifname}", exc) from exc


def list_veths(prefix: str = "veth") -> list[str]:
    """Names of host-side veth interfaces starting with ``prefix``."""
    out = []
    with _host() as ipr:
        for link in ipr.get_links():
            name = link.get("IFLA_IFNAME") or ""
            info = link.get("IFLA_LINKINFO")
            kind = info.get("IFLA_INFO_KIND") if info else None
            if kind == "veth" and name.startswith(prefix):
                out.append(name)
    return sorted(out)


def list_bridges(prefix: str) -> list[str]:
    """Names of bridges starting with ``prefix`` (reconciliation)."""
    out = []
    with _host() as ipr:
        for link in ipr.get_links():
            name = link.get("IFLA_IFNAME") or ""
            info = link.get("IFLA_LINKINFO")
            if info and info.get("IFLA_INFO_KIND") == "bridge" and name.startswith(prefix):
                out.append(name)
    return sorted(out)


def hairpin(host_ifname: str, on: bool = True) -> None:
    """Bridge-port hairpin mode: lets a container reach itself through a published host port."""
    path = f"/sys/class/net/{host_ifname}/brport/hairpin_mode"
    try:
        with open(path, "w") as f:
            f.write("1" if on else "0")
    except FileNotFoundError:
        raise NotFound(f"hairpin {host_ifname}: not a bridge port") from None


def addresses_in(netns_path: str) -> dict[str, list[str]]:
    """``{ifname: ["addr/plen", ...]}`` inside the namespace (for tests and inspect)."""
    out: dict[str, list[str]] = {}
    with _inside(netns_path) as nipr:
        names = {l["index"]: l.get("IFLA_IFNAME") for l in nipr.get_links()}
        for name in names.values():
            out.setdefault(name, [])
        for a in nipr.get_addr():
            out.setdefault(names.get(a["index"], "?"), []).append(
                f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
    return out


def routes_in(netns_path: str) -> list[tuple[str, str | None]]:
    """``[(dst/plen, gateway or None), ...]`` of the main IPv4 table inside the namespace."""
    out = []
    with _inside(netns_path) as nipr:
        for r in nipr.get_routes(family=socket.AF_INET, table=254):
            dst = r.get("RTA_DST") or "0.0.0.0"
            out.append((f"{dst}/{r['dst_len']}", r.get("RTA_GATEWAY")))
    return out
