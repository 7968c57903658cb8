"""`POST /api/webhooks/shipengine`: verify a ShipEngine push, then apply it to its shipment.

Nothing is written unless the signature, the key and the timestamp check out. A push already
received (a replay within the signature's 5 minutes) is answered as a duplicate and changes
nothing; so does a push older than what the shipment shows. A number we do not track is
acknowledged (so ShipEngine stops retrying) and logged, never applied elsewhere.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from parcelwatch.api.deps import SessionDep, SettingsDep, jwks_of, settings_of
from parcelwatch.api.problems import answers
from parcelwatch.carriers.errors import BadResponseError
from parcelwatch.carriers.shipengine import CODE as SHIPENGINE
from parcelwatch.config import Settings
from parcelwatch.logs import get_logger
from parcelwatch.notifications.outbox import announce
from parcelwatch.webhooks.service import (
    AppliedPush,
    PushOutcome,
    apply_push,
    push_id,
    remember_push,
)
from parcelwatch.webhooks.shipengine import (
    WEBHOOK_SECRET_HEADER,
    TrackEventPush,
    parse_track_event,
)
from parcelwatch.webhooks.signatures import (
    MAX_CLOCK_SKEW,
    TIMESTAMP_HEADER,
    JwksCache,
    SignatureProblem,
    verify_signature,
)

__all__ = ["SECRET_HEADER", "jwks_lifespan", "router"]

log = get_logger(__name__)
router = APIRouter(tags=["webhooks"])

# Optional shared secret (SHIPENGINE_WEBHOOK_SECRET), sent as a custom header configured on
# the ShipEngine webhook, checked on top of the RSA signature.
SECRET_HEADER = WEBHOOK_SECRET_HEADER


class WebhookAck(BaseModel):
    applied: bool = Field(description="True when the push changed the shipment.")
    outcome: PushOutcome = Field(
        description="updated; unchanged (nothing new, or older than what the shipment shows); "
        "duplicate (this push was received before: nothing changed); untracked."
    )
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
        signed_at = await verify_signature(headers=headers, body=body, keys=keys)
    except SignatureProblem as problem:
        log.warning("shipengine webhook refused", reason=problem.detail)
        raise HTTPException(problem.status_code, problem.detail) from None
    try:
        push = parse_track_event(json.loads(body))
    except (ValueError, BadResponseError) as error:
        raise HTTPException(422, f"Not a ShipEngine track event: {error}") from None
    identifier = push_id(headers[TIMESTAMP_HEADER], body)
    # On a worker thread: remembering the push can wait for a concurrent request holding the
    # same push id (PostgreSQL's row lock), which on the event loop would stop that request
    # from ever committing.
    return await run_in_threadpool(
        _receive, session, push, identifier, signed_at + MAX_CLOCK_SKEW, settings
    )


def _receive(
    session: Session,
    push: TrackEventPush,
    identifier: str,
    expires_at: datetime,
    settings: Settings,
) -> WebhookAck:
    """Remember the push (a replay before `expires_at` is a duplicate), then apply it."""
    if not remember_push(session, identifier, provider=SHIPENGINE, expires_at=expires_at):
        log.warning("shipengine webhook replayed", push_id=identifier[:12])
        return WebhookAck(
            applied=False,
            outcome=PushOutcome.DUPLICATE,
            detail="Duplicate push: this push was already received; nothing changed.",
        )
    applied = apply_push(session, push, settings)
    # Counted and nudged before the request commits: a nudged dispatcher that finds nothing
    # yet finds it at its next poll (a fraction of a second).
    announce(applied.notifications)
    return WebhookAck(
        applied=applied.outcome is PushOutcome.UPDATED,
        outcome=applied.outcome,
        shipment_id=applied.shipment_id,
        events_added=applied.events_added,
        detail=_detail(applied, push),
    )


def _detail(applied: AppliedPush, push: TrackEventPush) -> str:
    if applied.outcome is PushOutcome.UPDATED:
        return f"Shipment updated: {push.info.status.value}."
    if applied.older:
        return "No change: this push is older than what the shipment already shows."
    if applied.outcome is PushOutcome.UNCHANGED:
        return "No change: the shipment already shows what this push says."
    return "No shipment with this carrier and number."
