"""The API documentation at /docs is served whole by this server: its page names only local
assets, each of them is there, and nothing points at a CDN (the browser test renders it)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from parcelwatch.api.app import create_app
from parcelwatch.config import Settings
from tests.conftest import Browser

ASSET = re.compile(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]|url:\s*['"]([^'"]+)['"]""")


def _references(html: str) -> list[str]:
    return [src or url for src, url in ASSET.findall(html)]


def test_the_docs_page_loads_swagger_ui_from_this_server(web: Browser) -> None:
    page = web.get("/docs")
    assert page.status_code == 200
    references = _references(page.text)
    assert "/docs/assets/swagger-ui-bundle.js" in references
    assert "/docs/assets/swagger-ui.css" in references
    assert "/openapi.json" in references
    assert all(reference.startswith("/") for reference in references), references
    assert "cdn" not in page.text.lower()
    assert "https://" not in page.text


def test_every_asset_the_docs_page_names_is_served(web: Browser) -> None:
    for reference in _references(web.get("/docs").text):
        response = web.get(reference)
        assert response.status_code == 200, reference
        assert response.content, reference
    script = web.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"]
    assert "SwaggerUIBundle" in script.text


def test_swagger_ui_is_told_not_to_ask_the_public_validator(web: Browser) -> None:
    # Opened under a host name other than localhost, Swagger UI would fetch a badge from
    # validator.swagger.io, which an air-gapped browser cannot reach.
    assert '"validatorUrl": "none"' in web.get("/docs").text


def test_the_docs_page_names_its_assets_under_the_proxy_prefix(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings), root_path="/parcelwatch") as client:
        references = _references(client.get("/docs").text)
    assert "/parcelwatch/docs/assets/swagger-ui-bundle.js" in references
    assert "/parcelwatch/openapi.json" in references


def test_the_oauth2_redirect_page_of_swagger_ui_is_kept(web: Browser) -> None:
    assert web.get("/docs/oauth2-redirect").status_code == 200


def test_redoc_is_not_served_since_it_would_call_its_vendor(web: Browser) -> None:
    assert web.get("/redoc").status_code == 404
    assert web.get("/redoc", headers={"Accept": "text/html"}).status_code == 404


def test_the_docs_routes_are_not_in_the_openapi_document(web: Browser) -> None:
    paths = web.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/docs")]
