"""Reverse proxies in front: their `X-Forwarded-For` / `X-Forwarded-Proto` are believed only
from TRUSTED_PROXIES (uvicorn's own middleware does the rewriting, inside the app, so that
`uvicorn --factory` and `parcelwatch serve` behave alike), and the address that really
connected is kept, since AUTH_PROXY_HEADER may only be believed from a proxy itself."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Final

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from parcelwatch.config import Settings

__all__ = ["PEER_KEY", "RecordPeer", "install_proxies", "peer_is_trusted_proxy"]

PEER_KEY: Final = "parcelwatch.peer"


class RecordPeer:
    """Keeps the connecting address under `PEER_KEY` before anything rewrites `client`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            scope[PEER_KEY] = client[0] if client else ""
        await self.app(scope, receive, send)


def install_proxies(app: object, settings: Settings) -> None:
    """Add last (so they run first): record the peer, then trust the listed proxies' headers."""
    if settings.trusted_proxies:
        app.add_middleware(  # type: ignore[attr-defined]
            ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies)
        )
    app.add_middleware(RecordPeer)  # type: ignore[attr-defined]


def peer_is_trusted_proxy(request: Request, settings: Settings) -> bool:
    peer = request.scope.get(PEER_KEY) or (request.client.host if request.client else "")
    try:
        address = ip_address(peer)
    except ValueError:
        return False
    return any(address in ip_network(network) for network in settings.trusted_proxies)
