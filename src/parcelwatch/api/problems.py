"""What an error answer looks like, for the OpenAPI document: every route lists each status it
can give with `answers(...)`, so a client (and the schemathesis suite) can rely on it.

Every error body is `{"detail": "<one readable line>"}`; a 422 adds `errors`, one entry per
problem (`api.app._invalid_request`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

__all__ = [
    "MEANINGS",
    "PROBLEM_JSON",
    "Problem",
    "ValidationProblem",
    "answers",
    "document_unavailable",
    "extend_openapi",
]


class Problem(BaseModel):
    detail: str


class ProblemItem(BaseModel):
    loc: list[str]
    msg: str


class ValidationProblem(BaseModel):
    detail: str
    errors: list[ProblemItem] = []


DATABASE_UNAVAILABLE = "the database is not answering: try again after the `Retry-After` seconds."
MEANINGS = {
    400: "The request is malformed.",
    401: "No credentials, or a token that is not valid (mistyped, expired or revoked).",
    403: "Not allowed: the credential's scope or role does not reach this route, or a "
    "signed-in browser's change came without its CSRF token.",
    404: "No such shipment.",
    409: "Conflicts with the shipment's current state.",
    413: "The request body is over 1 MB.",
    422: "A parameter or the body is invalid; `detail` names each problem.",
    429: "Too soon: wait the `Retry-After` seconds.",
    503: f"A part of the server is not running (yet), or {DATABASE_UNAVAILABLE}",
}
PROBLEM_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}


def answers(*codes: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each error status it can give, with its body model. A
    keyword `s404="..."` gives that status a route-specific description."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {
            "model": ValidationProblem if code == 422 else Problem,
            "description": meanings.get(f"s{code}", MEANINGS[code]),
        }
        if code == 429:
            entry["headers"] = _RETRY_AFTER
        documented[code] = entry
    return documented


def extend_openapi(app: FastAPI, add: Callable[[str, dict[str, Any]], None]) -> None:
    """`add(method, operation)` on every operation of the app's OpenAPI document, once, when
    it is first built (after whatever extended it before)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                if isinstance(operation, dict) and "responses" in operation:
                    add(method, operation)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_unavailable(app: FastAPI) -> None:
    """Every operation but OPTIONS lists 503 among its answers in the OpenAPI document (any
    of them may find the database not answering: `api.app._database_unavailable`), added
    to what an operation says of its own 503."""

    def add(method: str, operation: dict[str, Any]) -> None:
        if method == "options":  # answered before any route, with no database (`api.methods`)
            return
        own = operation["responses"].get("503")
        if own is None:
            operation["responses"]["503"] = {
                "description": MEANINGS[503],
                "headers": _RETRY_AFTER,
                "content": PROBLEM_JSON,
            }
            return
        own["description"] += f" Or: {DATABASE_UNAVAILABLE}"
        own.setdefault("headers", _RETRY_AFTER)

    extend_openapi(app, add)
