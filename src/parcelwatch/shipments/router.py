"""REST routes for shipments: thin wrappers over `shipments.service`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from parcelwatch.api.auth import ReadDep, WriteDep
from parcelwatch.api.deps import SessionDep, ShipmentId, public_base, short_read
from parcelwatch.api.problems import answers
from parcelwatch.api.threads import OneHopRoute
from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.config import parse_duration
from parcelwatch.domain import ShipmentStatus
from parcelwatch.errors import Conflict, InvalidInput, NotFound
from parcelwatch.shipments import export, service, shares, views
from parcelwatch.shipments.schemas import (
    BulkItemOut,
    BulkRequest,
    BulkResponse,
    CandidateOut,
    DetectedOut,
    DetectRequest,
    DetectResponse,
    EventOut,
    ShareCreate,
    ShareOut,
    ShipmentCreate,
    ShipmentOut,
    ShipmentPage,
    ShipmentUpdate,
)
from parcelwatch.shipments.service import MAX_ID, BulkOutcome
from parcelwatch.shipments.trackers import as_seen_by, seen_by

router = APIRouter(tags=["shipments"], route_class=OneHopRoute)  # one thread hop a request


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
async def list_shipments(
    request: Request,
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
) -> Response:
    """The shipments you track (the owner and admins: every shipment), newest first."""

    def read(session: Session) -> bytes:  # rows, not ORM objects: the page's JSON in one pass
        return views.page_json(
            session,
            who.viewer,
            status=status_filter,
            carrier=carrier,
            active=active,
            search=q,
            cursor=cursor,
            limit=limit,
            label=label,
            archived=True if archived else (None if include_archived else False),
        )

    # A page by id or by status walks an index and stops after `limit` rows: a short read.
    # A search, a label, a carrier or `active` may scan many rows to fill one.
    bounded = q is None and label is None and carrier is None and active is None
    page = await short_read(request, read, bounded=bounded)
    return Response(page, media_type="application/json")


@router.get("/shipments/{shipment_id}", response_model=ShipmentOut, responses=answers(404, 422))
async def get_shipment(shipment_id: ShipmentId, request: Request, who: ReadDep) -> Response:
    found = await short_read(
        request, lambda session: views.shipment_json(session, who.viewer, shipment_id)
    )
    if found is None:
        raise NotFound(f"Shipment {shipment_id} does not exist.")
    return Response(found, media_type="application/json")


@router.patch(
    "/shipments/{shipment_id}",
    response_model=ShipmentOut,
    responses=answers(404, 409, 413, 422),
)
def update_shipment(
    shipment_id: ShipmentId, body: ShipmentUpdate, session: SessionDep, who: WriteDep
) -> ShipmentOut:
    """Change your description, labels, notes, archive flag or notifications of it; correct
    the carrier; or switch auto-refresh (true re-enables it and clears the failure count)."""
    given = body.model_fields_set
    if "carrier" in given and body.carrier is None:
        given = given - {"carrier"}
    for name in ("auto_refresh_enabled", "labels", "archived", "notify"):
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


@router.post(
    "/shipments/{shipment_id}/shares",
    response_model=ShareOut,
    status_code=status.HTTP_201_CREATED,
    responses=answers(404, 409, 422, s409="You do not track it, or it has 20 live links."),
)
def create_share(
    shipment_id: ShipmentId,
    body: ShareCreate,
    request: Request,
    session: SessionDep,
    who: WriteDep,
) -> ShareOut:
    """A read-only public page of the shipment (status, timeline, ETA; never your labels or
    notes), at an unguessable address shown once."""
    try:
        lifetime = parse_duration(body.expires) if body.expires else None
    except ValueError as error:
        raise InvalidInput(f"expires: {error}") from None
    made = shares.make_link(session, who.viewer, shipment_id, expires_in=lifetime)
    base = public_base(request)
    return ShareOut(
        id=made.link.id,
        url=f"{base}/t/{made.token}",
        created_at=made.link.created_at,
        expires_at=made.link.expires_at,
    )


@router.get(
    "/shipments/{shipment_id}/shares",
    response_model=list[ShareOut],
    responses=answers(404, 409, 422),
)
def list_shares(shipment_id: ShipmentId, session: SessionDep, who: ReadDep) -> list[ShareOut]:
    """Your live share links of the shipment (their addresses are not kept)."""
    return [
        ShareOut(id=link.id, url=None, created_at=link.created_at, expires_at=link.expires_at)
        for link in shares.list_links(session, who.viewer, shipment_id)
    ]


@router.delete(
    "/shipments/{shipment_id}/shares/{share_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=answers(404, 409, 422),
)
def revoke_share(
    shipment_id: ShipmentId,
    share_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    session: SessionDep,
    who: WriteDep,
) -> Response:
    """The page stops answering at once (404)."""
    shares.revoke_link(session, who.viewer, shipment_id, share_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/trackers/export",
    responses={
        200: {
            "description": "Your trackers as CSV or JSON (a download)",
            "content": {"text/csv": {}, "application/json": {}},
        },
        **answers(409, 422, s409="The ADMIN_API_KEY has no list of its own."),
    },
)
def export_trackers(
    session: SessionDep,
    who: ReadDep,
    export_format: Annotated[Literal["csv", "json"], Query(alias="format")] = "csv",
) -> Response:
    """Every shipment in your list, archived ones too, with your description, labels and
    notes."""
    if who.user_id is None:
        raise Conflict("The ADMIN_API_KEY has no list of its own: export with a personal token.")
    rows = export.export_rows(session, who.user_id)
    body = export.as_csv(rows) if export_format == "csv" else export.as_json(rows)
    media = "text/csv; charset=utf-8" if export_format == "csv" else "application/json"
    name = f"parcelwatch-{who.name}.{export_format}"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
