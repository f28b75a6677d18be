"""Which IP addresses a server-side request may reach: public ones only (the SSRF rules)."""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_SHARED_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")


def refusal(address: Address, allowed: list[Network]) -> str | None:
    """Why an address may not be fetched, or None when it may."""
    if any(address.version == net.version and address in net for net in allowed):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = refusal(embedded, allowed)
            return f"it carries {embedded}, which is {inner}" if inner else None
        return _ipv6_refusal(address)
    return _ipv4_refusal(address)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 or 6to4 address really reaches."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _ipv4_refusal(address: ipaddress.IPv4Address) -> str | None:
    if address in _THIS_NETWORK:
        return "'this network' (0.0.0.0/8)"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata lives here)"
    if address in _SHARED_CGNAT:
        return "carrier-grade NAT space"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    # is_global also covers the special-purpose blocks named above (documentation, benchmarking).
    return None if address.is_global else "not globally routable"


def _ipv6_refusal(address: ipaddress.IPv6Address) -> str | None:
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address in _SITE_LOCAL:
        return "site-local"
    if address in _UNIQUE_LOCAL:
        return "unique-local (private; cloud metadata lives here)"
    if address.is_multicast:
        return "multicast"
    if address in _NAT64_LOCAL:
        return "local-use NAT64"
    if address.teredo is not None:
        return "Teredo"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    return None if address.is_global else "not globally routable"
