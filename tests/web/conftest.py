"""Fixtures for dashboard tests: the app with an admin token, shipments made through the
service, and carrier answers written the way the sync engine writes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from parcelwatch.config import Settings, load_settings
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo, utcnow
from parcelwatch.models import Shipment
from parcelwatch.shipments.service import register_shipment
from parcelwatch.sync.writer import apply_track_info
from tests.conftest import Browser, Database, browser_session

ADMIN_TOKEN = "test-admin-token"
SAME_ORIGIN = {"Origin": "http://testserver"}
HTML = {"Accept": "text/html"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def web_settings(database: Database) -> Settings:
    return load_settings(
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        auto_update_enabled=False,
        admin_api_key=ADMIN_TOKEN,
        # UPS "configured" on a closed local port: pages treat it as polled, nothing is called.
        ups_client_id="test",
        ups_client_secret="test",
        ups_base_url="http://127.0.0.1:9",
        _env_file=None,
    )


@pytest.fixture
def web(web_settings: Settings) -> Iterator[Browser]:
    """The dashboard in a browser signed in as the owner."""
    from parcelwatch.api.app import create_app

    with Browser(create_app(web_settings), browser_session(web_settings)) as client:
        yield client


AddShipment = Callable[..., Shipment]


@pytest.fixture
def add_shipment(database: Database) -> AddShipment:
    """Register a shipment through the service; with `status`, also record a carrier answer
    with one event, as a sync would."""

    def add(
        number: str,
        *,
        carrier: str | None = None,
        description: str | None = None,
        status: ShipmentStatus | None = None,
        detail: str = "Arrived at facility",
        city: str = "MEMPHIS",
        eta_in_days: float = 1,
    ) -> Shipment:
        with database.sessions.begin() as session:
            shipment, _ = register_shipment(
                session, tracking_number=number, carrier=carrier, description=description
            )
            shipment_id, shipment_carrier = shipment.id, shipment.carrier
            if status is not None:
                when = utcnow() - timedelta(hours=2)
                event = TrackEvent(
                    occurred_at=when,
                    status=status,
                    description=detail,
                    location=Location(city=city, state="TN", country="US"),
                )
                info = TrackInfo(
                    status=status,
                    status_detail=detail,
                    events=(event,),
                    estimated_delivery=utcnow() + timedelta(days=eta_in_days),
                    delivered_at=when if status is ShipmentStatus.DELIVERED else None,
                    signed_by="J SMITH" if status is ShipmentStatus.DELIVERED else None,
                )
                apply_track_info(session, shipment_id, info, shipment_carrier)
            session.expunge_all()
        with database.sessions() as session:
            found = session.get(Shipment, shipment_id)
            assert found is not None
            session.expunge(found)
            return found

    return add
