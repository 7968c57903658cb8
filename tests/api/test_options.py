"""`OPTIONS` answers 204 with every method of the path in `Allow`, as the OpenAPI document says."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/shipments", "GET, POST, OPTIONS"),
        ("/api/shipments/1", "GET, PATCH, DELETE, OPTIONS"),
        ("/api/shipments/1/events", "GET, OPTIONS"),
        ("/api/shipments/1/refresh", "POST, OPTIONS"),
        ("/api/shipments/bulk", "POST, OPTIONS"),
        ("/api/webhooks/shipengine", "POST, OPTIONS"),
        ("/api/admin/tracking-updater/status", "GET, OPTIONS"),
        ("/", "GET, OPTIONS"),
    ],
)
def test_options_lists_every_method_the_path_supports(
    api: TestClient, path: str, allow: str
) -> None:
    answer = api.options(path)
    assert answer.status_code == 204, answer.text
    assert answer.headers["allow"] == allow
    assert answer.content == b""


def test_options_on_a_path_that_does_not_exist_is_404(api: TestClient) -> None:
    assert api.options("/api/no-such-thing").status_code == 404


def test_a_method_the_path_lacks_still_answers_405_with_the_right_allow(api: TestClient) -> None:
    answer = api.put("/api/shipments", json={})
    assert answer.status_code == 405


def test_every_path_of_the_openapi_document_documents_options(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        options = operations.get("options")
        assert options is not None, path
        assert set(options["responses"]) == {"204"}
        assert "Allow" in options["responses"]["204"]["headers"]
        concrete = path.replace("{shipment_id}", "1")
        answer = api.options(concrete)
        assert answer.status_code == 204, path
        documented = {method.upper() for method in operations}
        assert set(answer.headers["allow"].split(", ")) == documented, path
