"""Security headers on every answer, from the `secure` package's ASGI middleware.

The dashboard runs no inline script and no inline style, so its Content-Security-Policy
allows only the server's own files: a script injected into a page (a description that slipped
past escaping, say) does not run, and `frame-ancestors 'none'` keeps the pages out of other
sites' frames (clickjacking). Swagger UI at `/docs` starts from an inline script and styles
itself inline, so its two pages get the same policy with inline allowed; they show no user
data. No `Strict-Transport-Security`: parcelwatch is often served over plain HTTP on a home
network, and the TLS-terminating proxy is the place to set it.
"""

from __future__ import annotations

from typing import Any, cast

from secure import (
    ContentSecurityPolicy,
    CrossOriginOpenerPolicy,
    PermissionsPolicy,
    ReferrerPolicy,
    Secure,
    XContentTypeOptions,
    XFrameOptions,
)
from secure.middleware import SecureASGIMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from parcelwatch.api.docs import DOCS_URL, OAUTH2_REDIRECT_URL

__all__ = ["SecurityHeaders", "content_security_policy"]

INLINE_PAGES = frozenset({DOCS_URL, OAUTH2_REDIRECT_URL})


def content_security_policy(*, inline: bool) -> str:
    return _policy(inline=inline).header_value


def _policy(*, inline: bool) -> ContentSecurityPolicy:
    own = ("'self'", "'unsafe-inline'") if inline else ("'self'",)
    return (
        ContentSecurityPolicy()
        .default_src("'self'")
        .script_src(*own)
        .style_src(*own)
        .img_src("'self'", "data:")
        .connect_src("'self'")
        .object_src("'none'")
        .base_uri("'self'")
        .form_action("'self'")
        .frame_ancestors("'none'")
    )


def _headers(*, inline: bool, referrer: ReferrerPolicy | None = None) -> Secure:
    return Secure(
        csp=_policy(inline=inline),
        coop=CrossOriginOpenerPolicy().same_origin(),
        permissions=PermissionsPolicy().geolocation().microphone().camera(),
        referrer=referrer or ReferrerPolicy().strict_origin_when_cross_origin(),
        xcto=XContentTypeOptions().nosniff(),
        xfo=XFrameOptions().deny(),
    )


class SecurityHeaders:
    """Adds the headers to every HTTP answer; the Swagger UI pages get the inline policy, and
    share pages (`/t/<token>`) send no Referer at all, so the token never leaves in one."""

    def __init__(self, app: ASGIApp) -> None:
        self.strict = SecureASGIMiddleware(app, secure=_headers(inline=False))
        self.docs = SecureASGIMiddleware(app, secure=_headers(inline=True))
        self.shared = SecureASGIMiddleware(
            app, secure=_headers(inline=False, referrer=ReferrerPolicy().no_referrer())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")) if scope["type"] == "http" else ""
        if path in INLINE_PAGES:
            target = self.docs
        elif path.startswith("/t/"):
            target = self.shared
        else:
            target = self.strict
        # `secure` types a message as `object`, Starlette as a mapping: the same messages.
        await target(scope, receive, cast("Any", send))
