"""The emulator app: all five carriers under one port, plus `/_emulator/*` controls.

    app = create_emulator_app(EmulatorConfig(speed=0, pins={"1Z...": "normal"}))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emu")

Carrier paths keep the real APIs' paths below a prefix (`/usps`, `/ups`, `/fedex`, `/dhl`,
`/shipengine`), so `USPS_BASE_URL=http://127.0.0.1:9000/usps` points a client at it.
Controls: `GET /_emulator/stats`, `POST /_emulator/reset` (`?forget=true` also forgets
numbers and tokens), `GET|POST /_emulator/clock` (`{"advance": "2h"}`),
`POST /_emulator/tokens/expire` (`{"carrier": "ups"}` or all), `GET /_emulator/timeline/{n}`
and `POST /_emulator/shipengine/webhooks` (`{url, tracking_number, carrier_code}`).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from parcelwatch.config import parse_duration
from parcelwatch.emulator import dhl, fedex, shipengine, ups, usps
from parcelwatch.emulator.clock import EmulatorClock
from parcelwatch.emulator.config import EmulatorConfig
from parcelwatch.emulator.guard import CarrierErrors, CarrierGuard
from parcelwatch.emulator.signing import KeySet
from parcelwatch.emulator.state import EmulatorState, Stats
from parcelwatch.emulator.storylines import Region
from parcelwatch.emulator.webhooks import send_shipengine_webhook

__all__ = ["create_emulator_app", "emulator_state"]

CARRIER_MODULES = {"usps": usps, "ups": ups, "fedex": fedex, "dhl": dhl, "shipengine": shipengine}


def emulator_state(app: Starlette) -> EmulatorState:
    """The state behind an app made by `create_emulator_app` (clock, stats, tokens...)."""
    state: EmulatorState = app.state.emulator
    return state


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _control_routes(
    state: EmulatorState, webhook_client: httpx.AsyncClient | None
) -> list[BaseRoute]:
    async def stats(request: Request) -> Response:
        return JSONResponse({**state.stats.snapshot(), "now": state.clock.now().isoformat()})

    async def reset(request: Request) -> Response:
        state.stats = Stats()
        if request.query_params.get("forget", "").lower() in ("1", "true", "yes"):
            state.forget()
        return JSONResponse({"reset": True})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            try:
                state.clock.advance(parse_duration(body.get("advance", 0)))
            except ValueError as error:
                return JSONResponse({"detail": str(error)}, 422)
        return JSONResponse({"now": state.clock.now().isoformat(), "speed": state.clock.speed})

    async def expire_tokens(request: Request) -> Response:
        carrier = (await _json(request)).get("carrier")
        return JSONResponse({"expired": state.tokens.expire(carrier)})

    async def timeline(request: Request) -> Response:
        region: Region = "eu" if request.query_params.get("region") == "eu" else "us"
        story = state.timeline(request.path_params["number"], region=region)
        now = state.clock.now()
        return JSONResponse(
            {
                "tracking_number": story.number,
                "storyline": story.storyline.value,
                "started_at": story.started_at.isoformat(),
                "now": now.isoformat(),
                "events": [
                    {
                        "kind": event.kind.value,
                        "at": event.at.isoformat(),
                        "city": event.place.city if event.place else None,
                        "visible": event.at <= now,
                    }
                    for event in story.events
                ],
            }
        )

    async def webhook(request: Request) -> Response:
        body = await _json(request)
        missing = [k for k in ("url", "tracking_number", "carrier_code") if not body.get(k)]
        if missing:
            return JSONResponse({"detail": f"missing {', '.join(missing)}"}, 422)
        client = webhook_client or httpx.AsyncClient(timeout=10)
        try:
            answer = await send_shipengine_webhook(
                client,
                str(body["url"]),
                str(body["tracking_number"]),
                str(body["carrier_code"]),
                state=state,
            )
        except httpx.HTTPError as error:
            return JSONResponse({"detail": f"{type(error).__name__}: {error}"}, 502)
        finally:
            if webhook_client is None:
                await client.aclose()
        return JSONResponse({"status_code": answer.status_code, "body": answer.text[:2000]})

    return [
        Route("/_emulator/stats", stats, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
        Route("/_emulator/clock", clock, methods=["GET", "POST"]),
        Route("/_emulator/tokens/expire", expire_tokens, methods=["POST"]),
        Route("/_emulator/timeline/{number}", timeline, methods=["GET"]),
        Route("/_emulator/shipengine/webhooks", webhook, methods=["POST"]),
    ]


def create_emulator_app(
    config: EmulatorConfig | None = None,
    *,
    clock: EmulatorClock | None = None,
    keys: KeySet | None = None,
    webhook_client: httpx.AsyncClient | None = None,
) -> Starlette:
    """An ASGI app serving every emulated carrier; `emulator_state(app)` reaches its state.

    `webhook_client` sends the webhooks `POST /_emulator/shipengine/webhooks` asks for (for
    example an `httpx.AsyncClient` on `ASGITransport(app=parcelwatch_app)`); by default a
    fresh client per webhook goes over the network."""
    state = EmulatorState(config or EmulatorConfig(), clock=clock, keys=keys)
    routes: list[BaseRoute] = []
    for module in CARRIER_MODULES.values():
        routes.extend(module.routes(state))
    routes.extend(_control_routes(state, webhook_client))
    errors = {
        name: CarrierErrors(
            module.rate_limited, module.internal_error, getattr(module, "quota_exceeded", None)
        )
        for name, module in CARRIER_MODULES.items()
    }
    app = Starlette(
        routes=routes, middleware=[Middleware(CarrierGuard, state=state, errors=errors)]
    )
    app.state.emulator = state
    return app
