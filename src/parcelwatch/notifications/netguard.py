"""Outbound targets of people's channels kept off private networks: a webhook or Apprise URL
that resolves to loopback, link-local, private or any other non-global address is refused
unless NOTIFY_ALLOW_PRIVATE_NETWORKS is set.

Webhooks resolve once and connect to the checked address (`pinned`), so a name that answers
a public address to the check and a private one to the connection (DNS rebinding) gains
nothing. Apprise makes its own connections, so its targets are checked just before each send
and a rebinding in between is not prevented; only Apprise services whose host the URL names
(json://, ntfy://, gotify://, ...) are checked, the others talk to their fixed cloud APIs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "PinnedTarget",
    "TargetRefused",
    "apprise_host",
    "check_address",
    "check_apprise_url",
    "check_url",
    "pinned",
]

WEBHOOK_SCHEMES = ("http", "https")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """A target that may not be reached; the message names the host, never a credential."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """A global unicast address (an IPv6 one carrying an IPv4 address: that one too)."""
    if address.is_multicast or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
    return True


def check_address(host: str, address: str) -> None:
    """Raise `TargetRefused` unless `address` (what `host` resolved to) is public."""
    parsed = ipaddress.ip_address(address.split("%", 1)[0])
    if not is_public(parsed):
        raise TargetRefused(
            f"{host} resolves to {parsed}, a private, loopback or link-local address: "
            "refused (set NOTIFY_ALLOW_PRIVATE_NETWORKS=true to allow targets on your network)"
        )


def _split_webhook_url(url: str) -> tuple[SplitResult, str]:
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        raise TargetRefused("not a valid URL") from None
    if parts.scheme not in WEBHOOK_SCHEMES:
        raise TargetRefused("a webhook URL must start with http:// or https://")
    if not host:
        raise TargetRefused("the URL names no host")
    return parts, host


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"cannot resolve {host}") from None
    return _addresses(infos)


def _addresses(infos: list[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        seen[str(sockaddr[0])] = None
    return list(seen)


def check_url(url: str, allow_private: bool, *, kind: str = "webhook") -> None:
    """For a channel's URL being saved: raise `ValueError` (a `TargetRefused`) with a sentence
    a person can act on. A webhook URL: when it is not http(s), names no host, or (private
    networks not allowed) does not resolve or resolves to any non-public address. An Apprise
    URL (`kind="apprise"`): see `check_apprise_url`."""
    if kind == "apprise":
        check_apprise_url(url, allow_private)
        return
    parts, host = _split_webhook_url(url)
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for address in _resolve(host, port):
        check_address(host, address)


@dataclass(frozen=True, slots=True)
class PinnedTarget:
    """Where a webhook request goes: `url` with the host replaced by the checked address
    (unchanged when private networks are allowed), the `Host` header to send, and the name
    TLS must verify (`sni_hostname`)."""

    url: str
    host_header: str | None
    sni_hostname: str | None


async def pinned(url: str, allow_private: bool) -> PinnedTarget:
    """Check a webhook URL and resolve it once; the request then connects to the address that
    was checked. Raises `TargetRefused`."""
    parts, host = _split_webhook_url(url)
    if allow_private:
        return PinnedTarget(url=url, host_header=None, sni_hostname=None)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    if literal:
        check_address(host, host)
        return PinnedTarget(url=url, host_header=None, sni_hostname=None)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"cannot resolve {host}") from None
    addresses = _addresses(infos)
    for address in addresses:
        check_address(host, address)
    chosen = addresses[0]
    shown = f"[{chosen}]" if ":" in chosen else chosen
    netloc = shown if parts.port is None else f"{shown}:{parts.port}"
    if parts.username is not None:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    return PinnedTarget(
        url=parts._replace(netloc=netloc).geturl(),
        host_header=host_header,
        sni_hostname=host if parts.scheme == "https" else None,
    )


def apprise_host(url: str) -> str | None:
    """The host an Apprise URL connects to when the URL names it (json://host/...,
    ntfy://host/topic, mailto's SMTP server); None for services with a fixed cloud API
    (tgram://, discord://, ntfy://topic). Raises `TargetRefused` for a URL Apprise does not
    understand."""
    with warnings.catch_warnings():
        # Apprise imports the deprecated `imghdr` lazily on Python 3.11/3.12: not our warning.
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise  # imported lazily: only deployments that use it pay for it

        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise TargetRefused("Apprise does not understand this URL")
    if "host" not in getattr(plugin, "template_tokens", {}):
        return None
    if getattr(plugin, "mode", None) == "cloud":  # ntfy://topic goes to ntfy.sh
        return None
    host = getattr(plugin, "smtp_host", None) or getattr(plugin, "host", None)
    return str(host) if host else None


def check_apprise_url(url: str, allow_private: bool) -> None:
    """For an Apprise URL being saved or sent to: raise `ValueError` (a `TargetRefused`) when
    Apprise does not understand it or, private networks not allowed, the host it names
    resolves to a non-public address."""
    host = apprise_host(url)
    if allow_private or host is None:
        return
    for address in _resolve(host, 443):
        check_address(host, address)
