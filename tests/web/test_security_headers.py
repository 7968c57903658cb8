"""Security headers on every answer: the dashboard's policy allows only the server's own files
(no inline script or style), no page can be framed, types are not sniffed; Swagger UI's two
pages alone may run inline code."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from parcelwatch.api.security import content_security_policy


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
