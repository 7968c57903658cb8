"""The API documentation page, Swagger UI at `/docs`, with its script and styles served from
the installed `fastapi-offline` package, so it works with no internet.

FastAPI's own page loads Swagger UI from a CDN: on an air-gapped host it is blank. The files
under `/docs/assets` are the ones that package ships: Swagger UI 5, which reads the OpenAPI 3.1
that FastAPI writes (the `swagger-ui-bundle` wheel's Swagger UI 4 refuses it). There is no
`/redoc`: ReDoc always fetches its vendor's logo from the internet, and one page is enough.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_URL", "DOCS_URL", "SWAGGER_UI_PARAMETERS", "install_api_docs"]

DOCS_URL: Final = "/docs"
OAUTH2_REDIRECT_URL: Final = "/docs/oauth2-redirect"
ASSETS_URL: Final = "/docs/assets"
ASSETS_PACKAGE: Final = ("fastapi_offline", "static")
# Swagger UI otherwise shows a badge fetched from the public validator (swagger.io) whenever
# the page is opened under a host name other than localhost.
SWAGGER_UI_PARAMETERS: Final[dict[str, Any]] = {"validatorUrl": "none"}


def install_api_docs(app: FastAPI) -> None:
    """Serve the documentation page and its assets; `app` is made with `docs_url=None`
    and `redoc_url=None` so FastAPI's CDN pages are not there too."""
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")
    app.include_router(_router(app))


def _router(app: FastAPI) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS_URL)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=root + str(app.openapi_url),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            swagger_ui_parameters={**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )

    @router.get(OAUTH2_REDIRECT_URL)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    return router


def _root(request: Request) -> str:
    """The path the app is mounted under behind a proxy (`--root-path`), as FastAPI's own
    pages read it."""
    return str(request.scope.get("root_path", "")).rstrip("/")
