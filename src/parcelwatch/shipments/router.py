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
    CandidateOut,
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
    body: ShipmentCreate, session: SessionDep, response: Response, _who: WriteDep
) -> ShipmentOut:
    """Register a tracking number; 201 when new, 200 with the existing shipment otherwise."""
    shipment, created = service.register_shipment(
        session,
        tracking_number=body.tracking_number,
        carrier=body.carrier,
        description=body.description,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return ShipmentOut.of(shipment)


@router.post("/shipments/bulk", response_model=BulkResponse, responses=answers(413, 422))
def create_shipments_bulk(body: BulkRequest, session: SessionDep, _who: WriteDep) -> BulkResponse:
    """Register up to 500 numbers; one result per item (created, existing, or the error)."""
    results = service.register_many(
        session, [(item.tracking_number, item.carrier, item.description) for item in body.items]
    )
    items = [BulkItemOut.of(item) for item in results]
    return BulkResponse(
        created=sum(item.outcome is BulkOutcome.CREATED for item in results),
        existing=sum(item.outcome is BulkOutcome.EXISTING for item in results),
        errors=sum(item.outcome is BulkOutcome.ERROR for item in results),
        items=items,
    )


@router.post("/detect", response_model=DetectResponse, responses=answers(413, 422))
def detect_numbers(body: DetectRequest, _who: ReadDep) -> DetectResponse:
    """Every tracking number found in free text, with every carrier it fits and why; when
    several fit, `carrier` is null and `ambiguous` true: ask the person which one."""
    return DetectResponse(
        numbers=[
            DetectedOut(
                tracking_number=found.tracking_number,
                carrier=found.carrier,
                carrier_name=CARRIERS[found.carrier].name if found.carrier else None,
                ambiguous=found.ambiguous,
                candidates=[
                    CandidateOut(
                        carrier=c.carrier,
                        carrier_name=CARRIERS[c.carrier].name,
                        format=c.format,
                        check_digit=c.checked,
                        reason=c.reason,
                    )
                    for c in found.candidates
                ],
            )
            for found in service.detect_numbers(body.text)
        ]
    )


@router.get("/shipments", response_model=ShipmentPage, responses=answers(422))
def list_shipments(
    session: SessionDep,
    _who: ReadDep,
    status_filter: Annotated[ShipmentStatus | None, Query(alias="status")] = None,
    carrier: str | None = None,
    active: Annotated[
        bool | None, Query(description="true: not final; false: final (delivered, returned…)")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=100, description="Search number and description")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ShipmentPage:
    page = service.list_shipments(
        session,
        status=status_filter,
        carrier=carrier,
        active=active,
        search=q,
        cursor=cursor,
        limit=limit,
    )
    return ShipmentPage(items=[ShipmentOut.of(s) for s in page.items], next_cursor=page.next_cursor)


@router.get("/shipments/{shipment_id}", response_model=ShipmentOut, responses=answers(404, 422))
def get_shipment(shipment_id: ShipmentId, session: SessionDep, _who: ReadDep) -> ShipmentOut:
    return ShipmentOut.of(service.get_shipment(session, shipment_id))


@router.patch(
    "/shipments/{shipment_id}",
    response_model=ShipmentOut,
    responses=answers(404, 409, 413, 422),
)
def update_shipment(
    shipment_id: ShipmentId, body: ShipmentUpdate, session: SessionDep, _who: WriteDep
) -> ShipmentOut:
    """Change the description, correct the carrier, or switch auto-refresh (true re-enables
    it and clears the failure count)."""
    given = body.model_fields_set
    if "carrier" in given and body.carrier is None:
        given = given - {"carrier"}
    if "auto_refresh_enabled" in given and body.auto_refresh_enabled is None:
        given = given - {"auto_refresh_enabled"}
    changes = {name: getattr(body, name) for name in given}
    shipment = service.update_shipment(session, shipment_id, **changes)
    return ShipmentOut.of(shipment)


@router.delete(
    "/shipments/{shipment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=answers(404, 422),
)
def delete_shipment(shipment_id: ShipmentId, session: SessionDep, _who: WriteDep) -> Response:
    service.delete_shipment(session, shipment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/shipments/{shipment_id}/events", response_model=list[EventOut], responses=answers(404, 422)
)
def list_events(
    shipment_id: ShipmentId,
    session: SessionDep,
    _who: ReadDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[EventOut]:
    """The shipment's tracking events, newest first."""
    return [EventOut.of(event) for event in service.list_events(session, shipment_id, limit=limit)]
