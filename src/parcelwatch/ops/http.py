"""ASGI middleware counting HTTP requests by method, route template and status, with latency."""

from __future__ import annotations

import time

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parcelwatch.ops.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

__all__ = ["HttpMetrics", "route_template"]

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # 404s for arbitrary paths must not create one series per path


def route_template(scope: Scope, root_path: str = "") -> str:
    """The matched route's template (`/api/shipments/{shipment_id}`), never the raw path.

    FastAPI includes a router lazily: `scope["route"]` is then the original route, whose
    path lacks the include prefix, and the prefixed template is on the effective route
    context FastAPI keeps in `scope["fastapi"]`. Starlette mounts instead append their
    prefix to `scope["root_path"]` (`root_path` is its value before routing)."""
    fastapi_scope = scope.get("fastapi")
    context = (
        fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    )
    full = getattr(context, "path_format", None)
    if isinstance(full, str) and full:
        return full
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path:
        return UNMATCHED
    if isinstance(route, Mount):
        return path
    return str(scope.get("root_path", ""))[len(root_path) :] + path


class HttpMetrics:
    """Pure ASGI (no BaseHTTPMiddleware): reads `scope["route"]`, which the router sets on the
    shared scope once it has matched, so the label is known after the app has answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = str(scope.get("root_path", ""))
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            route = route_template(scope, root_path)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(method, route).observe(time.perf_counter() - started)
