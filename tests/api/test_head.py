"""`HEAD` answers as the path's `GET` would, without the body (uptime monitors, `curl -I`)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("path", ["/healthz", "/", "/api/shipments", "/docs", "/static/app.css"])
def test_head_answers_like_get_without_the_body(api: TestClient, path: str) -> None:
    get = api.get(path)
    head = api.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers.get("content-length") == get.headers.get("content-length")


def test_head_of_a_missing_shipment_is_the_same_404_without_the_body(api: TestClient) -> None:
    head = api.head("/api/shipments/99")
    assert head.status_code == api.get("/api/shipments/99").status_code == 404
    assert head.content == b""
