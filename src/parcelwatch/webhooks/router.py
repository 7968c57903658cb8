"""`POST /api/webhooks/shipengine`: verify a ShipEngine push, then apply it to its shipment.

Nothing is written unless the signature, the key and the timestamp check out. A number we do
not track is acknowledged (so ShipEngine stops retrying) and logged, never applied elsewhere.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import BaseModel

from parcelwatch.api.deps import SessionDep, SettingsDep, jwks_of, settings_of
from parcelwatch.api.problems import answers
from parcelwatch.carriers.errors import BadResponseError
from parcelwatch.logs import get_logger
from parcelwatch.webhooks.service import apply_push
from parcelwatch.webhooks.shipengine import WEBHOOK_SECRET_HEADER, parse_track_event
from parcelwatch.webhooks.signatures import JwksCache, SignatureProblem, verify_signature

__all__ = ["SECRET_HEADER", "jwks_lifespan", "router"]

log = get_logger(__name__)
router = APIRouter(tags=["webhooks"])

# Optional shared secret (SHIPENGINE_WEBHOOK_SECRET), sent as a custom header configured on
# the ShipEngine webhook, checked on top of the RSA signature.
SECRET_HEADER = WEBHOOK_SECRET_HEADER


class WebhookAck(BaseModel):
    applied: bool
    shipment_id: int | None = None
    events_added: int = 0
    detail: str


@asynccontextmanager
async def jwks_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One JWKS cache (and HTTP client) per server process, unless a test set its own."""
    if jwks_of(app) is not None:
        yield
        return
    async with httpx.AsyncClient() as client:
        app.state.shipengine_jwks = JwksCache(
            url=settings_of(app).shipengine_jwks_url, client=client
        )
        yield
    app.state.shipengine_jwks = None


@router.post(
    "/webhooks/shipengine",
    response_model=WebhookAck,
    responses=answers(
        400,
        401,
        404,
        413,
        422,
        503,
        s400="The signature timestamp is malformed or more than 5 minutes off.",
        s401="The signature, its key or the shared-secret header is wrong.",
        s404="Not a signed ShipEngine webhook (its signature headers are missing).",
        s503="ShipEngine's signing keys are not available yet.",
    ),
)
async def shipengine_webhook(
    request: Request, settings: SettingsDep, session: SessionDep
) -> WebhookAck:
    """Receive a ShipEngine `track` event (RSA-SHA256 signed) and update the shipment."""
    body = await request.body()
    headers = {name.lower(): value for name, value in request.headers.items()}
    if settings.shipengine_webhook_secret is not None:
        expected = settings.shipengine_webhook_secret.get_secret_value().encode()
        given = headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(401, f"Missing or wrong {SECRET_HEADER} header.")
    keys = jwks_of(request.app)
    if keys is None:
        raise HTTPException(503, "Webhook keys are not available yet; retry shortly.")
    try:
        await verify_signature(headers=headers, body=body, keys=keys)
    except SignatureProblem as problem:
        log.warning("shipengine webhook refused", reason=problem.detail)
        raise HTTPException(problem.status_code, problem.detail) from None
    try:
        push = parse_track_event(json.loads(body))
    except (ValueError, BadResponseError) as error:
        raise HTTPException(422, f"Not a ShipEngine track event: {error}") from None
    applied = apply_push(session, push, settings)
    if applied is None:
        return WebhookAck(applied=False, detail="No shipment with this carrier and number.")
    return WebhookAck(
        applied=True,
        shipment_id=applied.shipment_id,
        events_added=applied.events_added,
        detail=f"Shipment updated: {push.info.status.value}.",
    )
