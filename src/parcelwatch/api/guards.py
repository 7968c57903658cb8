"""Checks every request passes before a route sees it: the Host is one of ALLOWED_HOSTS, and no
other web site's page can make a browser change anything here.

Until accounts exist the API has no authentication, so a browser on the same machine is the
attacker's way in. DNS rebinding points a name the attacker owns at 127.0.0.1: the browser
then sends that name as Host, which `AllowedHosts` refuses. A page of another site can still
send a "simple" POST (a form, no preflight) to the real address; its Origin (or
`Sec-Fetch-Site`) gives it away, and `CrossSiteWrites` refuses it. Programs (the CLI, curl,
scripts, ShipEngine's pushes) send neither header and are let through.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from parcelwatch.config import Settings

__all__ = [
    "UNCHECKED_HOST_PATHS",
    "AllowedHosts",
    "CrossSiteWrites",
    "Origin",
    "cors_origins",
    "host_name",
    "origin_of",
    "public_origins",
    "request_origin",
]

# Probes and scrapes reach the server by address (a Kubernetes probe sends the pod's IP as
# Host); they read no shipment data and change nothing.
UNCHECKED_HOST_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Origin = tuple[str, str, int]  # scheme, host, port: what the same-origin rule compares


def host_name(host_header: str) -> str:
    """The name in a Host header, lower-cased, without its port: `[::1]:8080` → `::1`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of an Origin or Referer value or a URL; None when it has none
    (`null`, a bare path, a malformed port)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not scheme or not parts.hostname:
        return None
    port = port if port is not None else _DEFAULT_PORTS.get(scheme)
    if port is None:
        return None
    return scheme, parts.hostname.lower(), port


def request_origin(scope: Scope) -> Origin | None:
    """The origin the request was sent to: its scheme (as the server saw it, after trusted
    proxy headers) with the Host header."""
    host = Headers(scope=scope).get("host")
    if not host:
        return None
    return origin_of(f"{scope.get('scheme', 'http')}://{host}")


def public_origins(settings: Settings) -> frozenset[Origin]:
    """Origins that count as this server's own besides the one a request was sent to: that
    of PUBLIC_URL (a TLS proxy in front may hand the request on as plain http)."""
    origin = origin_of(settings.public_url) if settings.public_url else None
    return frozenset({origin} if origin else ())


def cors_origins(settings: Settings) -> frozenset[Origin]:
    """The origins CORS_ORIGINS lets call the API from their pages."""
    return frozenset(
        origin for origin in map(origin_of, settings.cors_origins) if origin is not None
    )


class AllowedHosts:
    """Answers 400 to a request whose Host header names none of `hosts` (`*` allows any,
    `*.example.com` any subdomain of it), as Starlette's TrustedHostMiddleware does, with a
    message saying which setting to change."""

    def __init__(self, app: ASGIApp, *, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(hosts)
        self.any_host = "*" in self.hosts
        self.suffixes = tuple(name[1:] for name in self.hosts if name.startswith("*."))

    def allows(self, host_header: str) -> bool:
        name = host_name(host_header)
        return (
            self.any_host
            or name in self.hosts
            or (bool(name) and any(name.endswith(suffix) for suffix in self.suffixes))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any_host:
            await self.app(scope, receive, send)
            return
        if scope.get("path") in UNCHECKED_HOST_PATHS or self.allows(
            Headers(scope=scope).get("host", "")
        ):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {
                "detail": "Invalid Host header: this server does not answer to that name. If "
                "it is this server's name, add it to ALLOWED_HOSTS (or set PUBLIC_URL)."
            },
            status_code=400,
        )
        await response(scope, receive, send)


class CrossSiteWrites:
    """Answers 403 to a browser's cross-site request that could change something under
    `prefix`: a method other than GET/HEAD/OPTIONS whose `Sec-Fetch-Site` is not
    same-origin, or whose Origin is neither the request's own nor one of `origins`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str,
        origins: Iterable[Origin] = (),
        cors: Iterable[Origin] = (),
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.origins = frozenset(origins)
        self.cors = frozenset(cors)  # CORS_ORIGINS: other sites let in on purpose

    def cross_site(self, scope: Scope) -> bool:
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and origin_of(origin) in self.cors:
            return False
        fetch_site = headers.get("sec-fetch-site", "").strip().lower()
        if fetch_site and fetch_site not in ("same-origin", "none"):
            return True
        if origin is None:
            return False  # not a browser's cross-origin request: the CLI, curl, a script
        sent_from = origin_of(origin)
        return sent_from is None or (
            sent_from != request_origin(scope) and sent_from not in self.origins
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") not in SAFE_METHODS
            and str(scope.get("path", "")).startswith(self.prefix)
            and self.cross_site(scope)
        ):
            response = JSONResponse(
                {
                    "detail": "Cross-site request refused: the API does not accept changes "
                    "sent by another web site's page (its Origin or Sec-Fetch-Site header "
                    "names a different site)."
                },
                status_code=403,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
