"""Security headers on every answer: the dashboard's policy allows only the server's own files
(no inline script or style), no page can be framed, types are not sniffed; Swagger UI's two
pages alone may run inline code."""

from __future__ import annotations

import anyio
import pytest
from fastapi.testclient import TestClient
from secure import ReferrerPolicy
from secure.middleware import SecureASGIMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parcelwatch.api.security import SecurityHeaders, content_security_policy, security_headers


@pytest.mark.parametrize("path", ["/", "/shipments", "/add", "/operations", "/static/app.css"])
def test_dashboard_answers_carry_the_strict_policy(api: TestClient, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert policy == content_security_policy(inline=False)
    assert "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self';" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_api_answers_and_errors_carry_them_too(api: TestClient) -> None:
    for response in (api.get("/api/shipments"), api.get("/api/shipments/999"), api.get("/nope")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_only_swagger_ui_may_run_inline_code(api: TestClient) -> None:
    docs = api.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == content_security_policy(inline=True)
    assert "'unsafe-inline'" in docs.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    assert "'unsafe-inline'" not in api.get("/openapi.json").headers["content-security-policy"]


def _answering_with(headers: list[tuple[bytes, bytes]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b""})

    return app


async def _headers_sent(middleware: ASGIApp, path: str) -> list[tuple[bytes, bytes]]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    await middleware({"type": "http", "path": path, "method": "GET"}, receive, send)
    return list(sent[0]["headers"])


@pytest.mark.parametrize(
    "own",
    [
        [],
        [(b"content-type", b"text/plain")],
        [(b"X-Frame-Options", b"SAMEORIGIN"), (b"x-other", b"1")],
        [(b"content-security-policy", b"default-src *"), (b"referrer-policy", b"unsafe-url")],
    ],
)
@pytest.mark.parametrize("path", ["/api/shipments", "/docs", "/t/some-token"])
def test_headers_are_set_as_the_secure_packages_own_middleware_sets_them(
    own: list[tuple[bytes, bytes]], path: str
) -> None:
    """Ours are replaced in an answer that already has them, a second CSP is added beside
    the answer's own (each one applies), the answer's other headers stay, in order."""
    policy = security_headers(inline=path == "/docs")
    if path.startswith("/t/"):
        policy = security_headers(inline=False, referrer=ReferrerPolicy().no_referrer())
    theirs = SecureASGIMiddleware(_answering_with(own), secure=policy)
    expected = anyio.run(_headers_sent, theirs, path)
    assert anyio.run(_headers_sent, SecurityHeaders(_answering_with(own)), path) == expected
