"""The Jinja2 environment of the dashboard, its filters, and the same-origin check for forms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request, status
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from parcelwatch import __version__
from parcelwatch.api.deps import settings_of
from parcelwatch.api.guards import origin_of, public_origins, request_origin
from parcelwatch.web import views

__all__ = ["STATIC_DIR", "SameOriginDep", "render", "templates"]

WEB_DIR: Final = Path(__file__).parent
STATIC_DIR: Final = WEB_DIR / "static"

templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
templates.env.globals.update(
    version=__version__,
    status_view=views.status_view,
    carrier_name=views.carrier_name,
    running_late=views.running_late,
    STATUS_VIEWS=views.STATUS_VIEWS,
    urlencode=urlencode,
)
templates.env.filters.update(
    utc_text=views.utc_text,
    iso=views.iso,
    web_url=views.web_url,
)

# Short messages shown after a redirect (?notice=key); never free text from the URL.
NOTICES: Final[dict[str, str]] = {
    "added": "Shipment added. parcelwatch will fetch its status shortly.",
    "existing": "That shipment was already tracked; here it is.",
    "saved": "Description saved.",
    "auto_on": "Automatic updates are on again; a check is scheduled now.",
    "auto_off": "Automatic updates are off for this shipment.",
    "deleted": "Shipment deleted.",
    "saved_mine": "Your labels and notes are saved.",
    "archived": "Archived: it has left your lists (find it under Archived).",
    "restored": "Restored to your lists.",
    "share_revoked": "Share link revoked: its page no longer opens.",
    "signed_out": "You are signed out.",
    "password_changed": "Password changed; every other browser is signed out.",
    "session_ended": "That browser is signed out.",
    "session_gone": "That browser was already signed out.",
    "token_revoked": "Token revoked: it no longer works.",
    "token_gone": "That token was already revoked.",
    "channel_added": "Channel added. Press “Send a test” to check that it works.",
    "channel_saved": "Channel saved.",
    "channel_removed": "Channel removed.",
    "preferences_saved": "Time zone and quiet hours saved.",
    "test_queued": "Test queued: watch it in the delivery log below.",
    "replayed": "Delivery queued again, with the same message id.",
    "notify_saved": "Your notifications of this shipment are saved.",
}


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The page `template` with `context`, plus what every page shows: the demo banner, a
    notice named in the URL, who is signed in and their session's CSRF token."""
    settings = settings_of(request.app)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    person = getattr(request.state, "principal", None)
    page: dict[str, Any] = {
        "request": request,
        "demo": bool(getattr(settings, "parcelwatch_demo", False)),
        "notice": notice,
        "person": person,
        "csrf_token": getattr(person, "csrf_token", None),
        **context,
    }
    return templates.TemplateResponse(
        request, template, page, status_code=status_code, headers=headers
    )


def _same_origin(request: Request) -> None:
    """Forms are only accepted from our own pages: the Origin (or, failing that, the Referer)
    must name the scheme, host and port the request was sent to (or PUBLIC_URL's). A
    self-hosted app has no other origin."""
    source = request.headers.get("origin") or request.headers.get("referer")
    sent_from = origin_of(source) if source else None
    own = {request_origin(request.scope), *public_origins(settings_of(request.app))}
    if sent_from is None or sent_from not in own:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This form must be sent from parcelwatch's own pages (the Origin header did not "
            "match). Reload the page and try again.",
        )


SameOriginDep = Annotated[None, Depends(_same_origin)]
