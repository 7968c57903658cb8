"""What every emulated carrier shares: error bodies, JSON answers, request credential parsing."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "ErrorBody",
    "basic_credentials",
    "bearer_token",
    "gateway_error",
    "iso_utc",
    "json_answer",
    "read_fields",
]


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """A carrier's error answer: status, JSON body (or raw text) and content type."""

    status: int
    body: Any
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, **headers: str) -> Response:
        content = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return Response(
            content, self.status, headers={**self.headers, **headers}, media_type=self.media_type
        )


def json_answer(body: Any, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(json.dumps(body), status, media_type=media_type)


def gateway_error(status: int) -> ErrorBody:
    """The HTML page an API gateway or load balancer sends for 502/503/504."""
    reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
    page = (
        f"<html><head><title>{status} {reason}</title></head><body><h1>{reason}</h1></body></html>"
    )
    return ErrorBody(status, page, "text/html")


def iso_utc(moment: datetime, *, millis: bool = False) -> str:
    """`2024-11-22T18:58:40Z` (or with `.000` milliseconds)."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, secret = decoded.partition(":")
    return (client_id, secret) if separator else None


async def read_fields(request: Request) -> dict[str, str]:
    """A token request's fields, sent as a form or as JSON (USPS accepts both)."""
    raw = await request.body()
    if "json" in request.headers.get("content-type", ""):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return dict(parse_qsl(raw.decode("utf-8", "replace")))
