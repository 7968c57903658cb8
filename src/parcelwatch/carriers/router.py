"""`GET /api/carriers`: every known carrier, its provider, or why it is not polled."""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from parcelwatch.api.auth import ReadDep
from parcelwatch.api.deps import SettingsDep
from parcelwatch.carriers.registry import Routing

__all__ = ["CarrierOut", "CarriersOut", "router"]

router = APIRouter(tags=["carriers"])


class CarrierOut(BaseModel):
    code: str
    name: str
    configured: bool
    provider: str | None  # the API asked: usps, ups, fedex, dhl or shipengine
    max_batch: int | None  # most numbers one request carries
    reason: str | None  # why the carrier's shipments are not polled


class CarriersOut(BaseModel):
    tracking_api_provider: Literal["auto", "direct", "shipengine"]
    carriers: list[CarrierOut]


@router.get("/carriers", response_model=CarriersOut)
def list_carriers(settings: SettingsDep, _who: ReadDep) -> CarriersOut:
    """Every carrier parcelwatch knows and which provider tracks it (no carrier is called)."""
    routing = Routing(settings)
    return CarriersOut(
        tracking_api_provider=settings.tracking_api_provider,
        carriers=[CarrierOut(**asdict(row)) for row in routing.carriers()],
    )
