"""Outbound URLs of people's channels: refused when they point at this machine or its private
networks (loopback, link-local, RFC 1918, unique-local…) unless NOTIFY_ALLOW_PRIVATE_NETWORKS.

Without it, anyone who may add a webhook could make the server call its own admin ports or the
cloud's metadata address (server-side request forgery). The host is resolved and every address
it resolves to must be global; the dispatcher checks again when it connects (DNS can change)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Final
from urllib.parse import urlsplit

__all__ = ["WEB_SCHEMES", "check_url"]

WEB_SCHEMES: Final = ("http", "https")


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise `ValueError` (a sentence a person can act on) unless `url` is an http(s) URL with
    a host that resolves only to global addresses (any host when `allow_private`)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme.lower() not in WEB_SCHEMES:
        raise ValueError("must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise ValueError("has no host name")
    if allow_private:
        return
    for address in _addresses(host, port or (443 if parts.scheme.lower() == "https" else 80)):
        if not address.is_global or address.is_multicast:
            raise ValueError(
                f"points at a private, loopback or link-local address ({address}); set "
                "NOTIFY_ALLOW_PRIVATE_NETWORKS=true to allow targets on your own network"
            )


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [_unmapped(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise ValueError(f"the host {host!r} cannot be resolved") from None
    addresses = []
    for *_, sockaddr in found:
        text = str(sockaddr[0]).split("%", 1)[0]  # an IPv6 scope id is not part of the address
        addresses.append(ipaddress.ip_address(text))
    return [_unmapped(address) for address in addresses] or _unresolved(host)


def _unresolved(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    raise ValueError(f"the host {host!r} cannot be resolved")


def _unmapped(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """`::ffff:127.0.0.1` is 127.0.0.1."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
