"""Networking: IPAM, bridge/veth/netns driver, firewall, published ports, the DNS responder."""
