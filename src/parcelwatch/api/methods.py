"""`OPTIONS` on any route answers 204 with an `Allow` header listing every method its path
supports (RFC 9110, section 9.3.7), and the OpenAPI document says so for every path.

Starlette matches one route per method, so left alone `OPTIONS /api/shipments` reaches the
first route of that path and answers 405 naming only its method (`Allow: POST`), although
GET is served there too.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, Final

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["AnswerOptions", "allowed_methods", "document_options"]

# The order methods are listed in, as people expect to read them.
_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route serves at the request's path (OPTIONS included); empty
    when no route has that path. Routes of included routers count (FastAPI's
    `iter_route_contexts` walks them); mounts (static files) answer for themselves. A literal
    path wins over a template: `/api/shipments/bulk` lists what bulk serves, not what
    `/api/shipments/{shipment_id}` would answer (422) for the id "bulk"."""
    reached: dict[str, bool] = {}  # method -> reached by a literal path (no path parameter)
    for route in iter_route_contexts(routes):
        if isinstance(route.original_route, Mount) or not route.methods:
            continue
        match, child = route.matches({**scope, "type": "http"})
        if match is Match.NONE:
            continue
        literal = not child.get("path_params")
        for method in route.methods:
            reached[method] = reached.get(method, False) or literal
    if not reached:
        return []
    if any(reached.values()):
        reached = {method: literal for method, literal in reached.items() if literal}
    reached.pop("OPTIONS", None)
    order = {method: index for index, method in enumerate(_ORDER)}
    return [*sorted(reached, key=lambda m: order.get(m, len(order))), "OPTIONS"]


class AnswerOptions:
    """Answers `OPTIONS` for the app's routes (204, `Allow`, no body) before they see it,
    and `HEAD` as the same path's `GET` without the body (RFC 9110, section 9.3.2: what
    uptime monitors and `curl -I` send; FastAPI routes declared with GET do not take it)."""

    def __init__(self, app: ASGIApp, *, routes: Callable[[], list[BaseRoute]]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "OPTIONS":
            methods = allowed_methods(self.routes(), scope)
            if methods:
                response = Response(status_code=204, headers={"Allow": ", ".join(methods)})
                await response(scope, receive, send)
                return
        if scope["type"] == "http" and scope.get("method") == "HEAD":
            await self.app({**scope, "method": "GET"}, receive, _without_body(send))
            return
        await self.app(scope, receive, send)


def _without_body(send: Send) -> Send:
    """`send` with every body chunk emptied; the headers (Content-Length too) stay."""

    async def headless(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return headless


_OPTIONS_ANSWER: Final[dict[str, Any]] = {
    "204": {
        "description": "The methods this path supports, in `Allow`; no body.",
        "headers": {
            "Allow": {
                "description": "Comma-separated methods, OPTIONS included.",
                "schema": {"type": "string"},
            }
        },
    }
}


def document_options(app: FastAPI) -> None:
    """Add an `options` operation to every path of the app's OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            parameters = [
                parameter
                for operation in operations.values()
                for parameter in operation.get("parameters", [])
                if parameter.get("in") == "path"
            ]
            unique = list({parameter["name"]: parameter for parameter in parameters}.values())
            operations["options"] = {
                "tags": ["methods"],
                "summary": "Methods this path supports",
                "operationId": "options_"
                + path.strip("/").replace("/", "_").replace("{", "").replace("}", ""),
                **({"parameters": unique} if unique else {}),
                "responses": _OPTIONS_ANSWER,
            }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
