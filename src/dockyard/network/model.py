"""The network service's records and Docker's fixed names.

``Network`` and ``Endpoint`` are the metadata rows themselves (``metadata.records``): nothing is
added between the database and the service, so one type travels from the repository to the API.
"""

from __future__ import annotations

from dockyard.metadata.records import EndpointRecord as Endpoint
from dockyard.metadata.records import NetworkRecord as Network
from dockyard.record import Record

__all__ = ["BRIDGE", "BRIDGE_NAME_OPTION", "DEFAULT_BRIDGE_IFACE", "DEFAULT_BRIDGE_OPTIONS",
           "DRIVERS", "Attachment", "Endpoint", "HOST", "NONE", "Network", "PREDEFINED",
           "is_predefined"]

BRIDGE, HOST, NONE = "bridge", "host", "none"
#: The pre-defined networks (name → driver); created once by ``NetworkService.ensure_defaults``.
PREDEFINED: dict[str, str] = {BRIDGE: "bridge", HOST: "host", NONE: "null"}
#: Drivers a user network may use (host and null exist once, as the pre-defined networks).
DRIVERS = ("bridge",)
DEFAULT_BRIDGE_IFACE = "dockyard0"
#: Docker's option naming a bridge network's interface.
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
#: The default bridge's options, as Docker shows them for docker0.
DEFAULT_BRIDGE_OPTIONS: tuple[tuple[str, str], ...] = tuple(sorted({
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    BRIDGE_NAME_OPTION: DEFAULT_BRIDGE_IFACE,
    "com.docker.network.driver.mtu": "1500",
}.items()))


class Attachment(Record):
    """A container's endpoint together with its network (``NetworkService.endpoints_of``)."""

    network: Network
    endpoint: Endpoint


def is_predefined(net: Network) -> bool:
    return PREDEFINED.get(net.name) == net.driver and (
        net.driver != "bridge" or dict(net.options).get(
            "com.docker.network.bridge.default_bridge") == "true")
