"""`GET /api/carriers` lists every carrier with its provider or the reason it has none."""

from __future__ import annotations

from pydantic import SecretStr
from starlette.testclient import TestClient

from parcelwatch.api.app import create_app
from parcelwatch.config import Settings
from tests.conftest import account_token


def test_carriers_endpoint_shows_providers_and_reasons(settings: Settings) -> None:
    configured = settings.model_copy(
        update={"fedex_api_key": "key", "fedex_secret_key": SecretStr("secret")}
    )

    with TestClient(create_app(configured), headers=account_token(configured)) as client:
        response = client.get("/api/carriers")

    assert response.status_code == 200
    body = response.json()
    assert body["tracking_api_provider"] == "auto"
    rows = {row["code"]: row for row in body["carriers"]}
    assert rows["fedex"] == {
        "code": "fedex",
        "name": "FedEx",
        "configured": True,
        "provider": "fedex",
        "max_batch": 30,
        "reason": None,
    }
    assert rows["canada_post"]["configured"] is False
    assert rows["canada_post"]["reason"] == (
        "canada_post is tracked through ShipEngine, and SHIPENGINE_API_KEY is not set"
    )
    assert "secret" not in response.text
