"""REST routes for shipments: thin wrappers over `shipments.service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from parcelwatch.api.auth import ReadDep, WriteDep
from parcelwatch.api.deps import SessionDep, ShipmentId
from parcelwatch.api.problems import answers
from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.domain import ShipmentStatus
from parcelwatch.shipments import service
from parcelwatch.shipments.schemas import (
    BulkItemOut,
    BulkRequest,
    BulkResponse,
    DetectedOut,
    DetectRequest,
    DetectResponse,
    EventOut,
    ShipmentCreate,
    ShipmentOut,
    ShipmentPage,
    ShipmentUpdate,
)
from parcelwatch.shipments.service import BulkOutcome
from parcelwatch.shipments.trackers import as_seen_by, seen_by

router = APIRouter(tags=["shipments"])


@router.post(
    "/shipments",
    response_model=ShipmentOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ShipmentOut, "description": "Already registered"},
        **answers(413, 422),
    },
)
def create_shipment(
    body: ShipmentCreate, session: SessionDep, response: Response, who: WriteDep
) -> ShipmentOut:
    """Add a tracking number to your list; 201 when it is new there, 200 with the shipment
    when you track it already."""
    shipment, created = service.register_shipment(
        session,
        tracking_number=body.tracking_number,
        carrier=body.carrier,
        description=body.description,
        owner_id=who.user_id,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return ShipmentOut.of(seen_by(session, who.viewer, shipment))


@router.post("/shipments/bulk", response_model=BulkResponse, responses=answers(413, 422))
def create_shipments_bulk(body: BulkRequest, session: SessionDep, who: WriteDep) -> BulkResponse:
    """Add up to 500 numbers to your list; one result per item (created, existing, or the
    error)."""
    results = service.register_many(
        session,
        [(item.tracking_number, item.carrier, item.description) for item in body.items],
        owner_id=who.user_id,
    )
    shipments = [item.shipment for item in results if item.shipment is not None]
    seen = {tracked.id: tracked for tracked in as_seen_by(session, who.viewer, shipments)}
    items = [
        BulkItemOut.of(item, seen.get(item.shipment.id) if item.shipment else None)
        for item in results
    ]
    return BulkResponse(
        created=sum(item.outcome is BulkOutcome.CREATED for item in results),
        existing=sum(item.outcome is BulkOutcome.EXISTING for item in results),
        errors=sum(item.outcome is BulkOutcome.ERROR for item in results),
        items=items,
    )


@router.post("/detect", response_model=DetectResponse, responses=answers(413, 422))
def detect_numbers(body: DetectRequest, _who: ReadDep) -> DetectResponse:
    """Every tracking number found in free text, with its carrier."""
    return DetectResponse(
        numbers=[
            DetectedOut(
                tracking_number=found.tracking_number,
                carrier=found.carrier,
                carrier_name=CARRIERS[found.carrier].name,
            )
            for found in service.detect_numbers(body.text)
        ]
    )


@router.get("/shipments", response_model=ShipmentPage, responses=answers(422))
def list_shipments(
    session: SessionDep,
    who: ReadDep,
    status_filter: Annotated[ShipmentStatus | None, Query(alias="status")] = None,
    carrier: str | None = None,
    active: Annotated[
        bool | None, Query(description="true: not final; false: final (delivered, returned…)")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=100, description="Search number and description")
    ] = None,
    label: Annotated[
        str | None, Query(max_length=100, description="Only those with this label of yours")
    ] = None,
    archived: Annotated[bool, Query(description="true: only the ones you archived")] = False,
    include_archived: Annotated[bool, Query(description="true: the ones you archived too")] = False,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ShipmentPage:
    """The shipments you track (the owner and admins: every shipment), newest first."""
    page = service.list_shipments(
        session,
        status=status_filter,
        carrier=carrier,
        active=active,
        search=q,
        cursor=cursor,
        limit=limit,
        viewer=who.viewer,
        label=label,
        archived=True if archived else (None if include_archived else False),
    )
    items = as_seen_by(session, who.viewer, page.items)
    return ShipmentPage(items=[ShipmentOut.of(s) for s in items], next_cursor=page.next_cursor)


@router.get("/shipments/{shipment_id}", response_model=ShipmentOut, responses=answers(404, 422))
def get_shipment(shipment_id: ShipmentId, session: SessionDep, who: ReadDep) -> ShipmentOut:
    shipment = service.get_shipment(session, shipment_id, viewer=who.viewer)
    return ShipmentOut.of(seen_by(session, who.viewer, shipment))


@router.patch(
    "/shipments/{shipment_id}",
    response_model=ShipmentOut,
    responses=answers(404, 409, 413, 422),
)
def update_shipment(
    shipment_id: ShipmentId, body: ShipmentUpdate, session: SessionDep, who: WriteDep
) -> ShipmentOut:
    """Change your description, labels, notes or archive flag; correct the carrier; or
    switch auto-refresh (true re-enables it and clears the failure count)."""
    given = body.model_fields_set
    if "carrier" in given and body.carrier is None:
        given = given - {"carrier"}
    for name in ("auto_refresh_enabled", "labels", "archived"):
        if name in given and getattr(body, name) is None:
            given = given - {name}
    changes = {name: getattr(body, name) for name in given}
    shipment = service.update_shipment(session, shipment_id, viewer=who.viewer, **changes)
    return ShipmentOut.of(seen_by(session, who.viewer, shipment))


@router.delete(
    "/shipments/{shipment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=answers(404, 422),
)
def delete_shipment(shipment_id: ShipmentId, session: SessionDep, who: WriteDep) -> Response:
    """Remove it from your list; the shipment and its events go when nobody tracks it."""
    service.delete_shipment(session, shipment_id, viewer=who.viewer)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/shipments/{shipment_id}/events", response_model=list[EventOut], responses=answers(404, 422)
)
def list_events(
    shipment_id: ShipmentId,
    session: SessionDep,
    who: ReadDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[EventOut]:
    """The shipment's tracking events, newest first."""
    events = service.list_events(session, shipment_id, limit=limit, viewer=who.viewer)
    return [EventOut.of(event) for event in events]
