"""Dashboard form posts: add (one number or pasted text), edit, switch updates, delete.

Every form is checked for a same-origin Origin/Referer and answered with a redirect (303) on
success, so reloading the next page never re-sends the form."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Path, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from parcelwatch.api.deps import SessionDep, ShipmentId, public_base
from parcelwatch.config import parse_duration
from parcelwatch.errors import Conflict, InvalidInput, NotFound
from parcelwatch.shipments import service, shares
from parcelwatch.shipments.service import MAX_ID, AmbiguousCarrier, BulkOutcome
from parcelwatch.shipments.trackers import Viewer
from parcelwatch.web.pages import add_context, not_found
from parcelwatch.web.runtime import wake_updater
from parcelwatch.web.signin import FormPersonDep
from parcelwatch.web.templating import SameOriginDep, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

MAX_TEXT = 200_000
MAX_NUMBERS_FROM_TEXT = 500
MAX_CHOICES = 50  # numbers several carriers fit, offered for a choice after a paste
NOTHING_FOUND = (
    "No tracking number was found in that text. Numbers from USPS, UPS, FedEx, DHL and the "
    "other supported carriers are recognised by their format and check digit."
)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.post("/add")
def add_one(
    request: Request,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    background: BackgroundTasks,
    tracking_number: Annotated[str, Form(max_length=100)] = "",
    carrier: Annotated[str, Form(max_length=64)] = "",
    description: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    form = {"tracking_number": tracking_number, "carrier": carrier, "description": description}
    try:
        shipment, created = service.register_shipment(
            session,
            tracking_number=tracking_number,
            carrier=carrier or None,
            description=description or None,
            owner_id=person.user_id,
        )
    except AmbiguousCarrier as error:
        message = f"'{error.number}' fits several carriers: choose which one it is below."
        context = add_context(form=form, error=message, choices=error.candidates)
        return render(request, "add.html", context, status_code=422)
    except InvalidInput as error:
        return render(
            request, "add.html", add_context(form=form, error=error.detail), status_code=422
        )
    notice = "added" if created else "existing"
    if created:
        background.add_task(wake_updater, request.app)
    return _see_other(f"/shipments/{shipment.id}?notice={notice}")


@router.post("/add/text")
def add_from_text(
    request: Request,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    background: BackgroundTasks,
    text: Annotated[str, Form(max_length=MAX_TEXT)] = "",
    description: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        service.refuse_control_characters(description, "description")
        found = service.detect_numbers(text)[:MAX_NUMBERS_FROM_TEXT]
    except InvalidInput as error:
        found, message = [], error.detail
    else:
        message = NOTHING_FOUND
    if not found:
        context = add_context(form={"text": text, "text_description": description})
        context["text_error"] = message
        return render(request, "add.html", context, status_code=422)
    # A number several carriers fit is not added: the next page asks which carrier it is.
    ambiguous = [item.tracking_number for item in found if item.ambiguous][:MAX_CHOICES]
    results = service.register_many(
        session,
        [
            (item.tracking_number, item.carrier, description or None)
            for item in found
            if item.carrier
        ],
        owner_id=person.user_id,
    )

    def ids(outcome: BulkOutcome) -> str:
        return ",".join(
            str(item.shipment.id) for item in results if item.outcome is outcome and item.shipment
        )

    failed = sum(item.outcome is BulkOutcome.ERROR for item in results)
    background.add_task(wake_updater, request.app)
    query = f"created={ids(BulkOutcome.CREATED)}&existing={ids(BulkOutcome.EXISTING)}"
    choose = f"&choose={','.join(ambiguous)}" if ambiguous else ""
    return _see_other(f"/add/done?{query}&failed={failed}{choose}")


@router.post("/shipments/{shipment_id}/description")
def save_description(
    request: Request,
    shipment_id: ShipmentId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    description: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    return _personal_change(
        request, session, shipment_id, person.viewer, "saved", description=description or None
    )


@router.post("/shipments/{shipment_id}/auto-refresh")
def switch_auto_refresh(
    request: Request,
    shipment_id: ShipmentId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    background: BackgroundTasks,
    enabled: Annotated[str, Form()] = "true",
) -> Response:
    turn_on = enabled.lower() in ("true", "1", "on", "yes")
    background.add_task(wake_updater, request.app)
    try:
        service.update_shipment(
            session, shipment_id, auto_refresh_enabled=turn_on, viewer=person.viewer
        )
    except NotFound as error:
        return not_found(request, error.detail)
    return _see_other(f"/shipments/{shipment_id}?notice={'auto_on' if turn_on else 'auto_off'}")


@router.post("/shipments/{shipment_id}/delete")
def delete(
    request: Request,
    shipment_id: ShipmentId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
) -> Response:
    try:
        shipment = service.get_shipment(session, shipment_id, viewer=person.viewer)
        number = shipment.tracking_number
        service.delete_shipment(session, shipment_id, viewer=person.viewer)
    except NotFound as error:
        return not_found(request, error.detail)
    return _see_other(f"/shipments?notice=deleted&deleted={number}")


@router.post("/shipments/{shipment_id}/personal")
def save_personal(
    request: Request,
    shipment_id: ShipmentId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    labels: Annotated[str, Form(max_length=1000)] = "",
    notes: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    """Your labels (comma-separated) and notes of a shipment in your list."""
    names = [name for name in (part.strip() for part in labels.split(",")) if name]
    return _personal_change(
        request, session, shipment_id, person.viewer, "saved_mine", labels=names, notes=notes
    )


@router.post("/shipments/{shipment_id}/archive")
def archive(
    request: Request,
    shipment_id: ShipmentId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    archived: Annotated[str, Form()] = "true",
) -> Response:
    chosen = archived.lower() in ("true", "1", "on", "yes")
    notice = "archived" if chosen else "restored"
    return _personal_change(request, session, shipment_id, person.viewer, notice, archived=chosen)


def _personal_change(
    request: Request,
    session: Session,
    shipment_id: int,
    viewer: Viewer,
    notice: str,
    **changes: Any,
) -> Response:
    try:
        service.update_shipment(session, shipment_id, viewer=viewer, **changes)
    except NotFound as error:
        return not_found(request, error.detail)
    except (InvalidInput, Conflict) as error:
        return _refused(request, shipment_id, "Not saved", error.detail, error.status_code)
    return _see_other(f"/shipments/{shipment_id}?notice={notice}")


def _refused(
    request: Request, shipment_id: int, title: str, message: str, status_code: int
) -> Response:
    """A form of the shipment page that changed nothing: why, and the way back."""
    context = {"title": title, "message": message, "back": f"/shipments/{shipment_id}"}
    return render(request, "error.html", context, status_code=status_code)


@router.post("/shipments/{shipment_id}/shares")
def make_share(
    request: Request,
    shipment_id: ShipmentId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    expires: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """A share link, shown once in this answer (never put in a URL of ours)."""
    try:
        lifetime = parse_duration(expires) if expires.strip() else None
        made = shares.make_link(session, person.viewer, shipment_id, expires_in=lifetime)
    except NotFound as error:
        return not_found(request, error.detail)
    except (ValueError, Conflict) as error:
        message = error.detail if isinstance(error, Conflict) else f"expires: {error}"
        return _refused(request, shipment_id, "No link made", message, 422)
    base = public_base(request)
    context = {
        "url": f"{base}/t/{made.token}",
        "expires_at": made.link.expires_at,
        "shipment_id": shipment_id,
        "nav": "shipments",
    }
    return render(request, "share_made.html", context, headers={"Cache-Control": "no-store"})


@router.post("/shipments/{shipment_id}/shares/{link_id}/revoke")
def revoke_share(
    request: Request,
    shipment_id: ShipmentId,
    link_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
) -> Response:
    try:
        shares.revoke_link(session, person.viewer, shipment_id, link_id)
    except (NotFound, Conflict) as error:
        return not_found(request, error.detail)
    return _see_other(f"/shipments/{shipment_id}?notice=share_revoked")
