"""Puts the dashboard on the app: its pages and forms, its static files, HTML error pages."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from parcelwatch.web import account, actions, notifications, pages
from parcelwatch.web.signin import install_signin
from parcelwatch.web.templating import STATIC_DIR, render

__all__ = ["install_dashboard"]

_MACHINE_PREFIXES = ("/api", "/metrics", "/healthz", "/readyz", "/docs", "/openapi", "/static")
_TITLES = {401: "Sign in first", 403: "Not allowed", 404: "Page not found", 405: "Not allowed"}


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at `/` and its assets at `/static`."""
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(account.router)
    app.include_router(notifications.router)
    install_signin(app)  # pages send a visitor who is not signed in to /login or /setup
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(StarletteHTTPException, _html_errors)  # type: ignore[arg-type]


async def _html_errors(request: Request, error: StarletteHTTPException) -> Response:
    """People get a page, programs keep the JSON `{"detail": ...}` answer."""
    wants_html = "text/html" in request.headers.get("accept", "")
    if request.url.path.startswith(_MACHINE_PREFIXES) or not wants_html:
        return await http_exception_handler(request, error)
    title = _TITLES.get(error.status_code, "Something went wrong")
    message = "There is no page at this address." if error.status_code == 404 else str(error.detail)
    return render(
        request, "error.html", {"title": title, "message": message}, status_code=error.status_code
    )
