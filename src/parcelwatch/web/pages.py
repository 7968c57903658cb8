"""Dashboard pages (GET): overview, shipments list, one shipment, add, operations."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import HTMLResponse

from parcelwatch.accounts.roles import Scope
from parcelwatch.api.deps import DatabaseDep, SessionDep, SettingsDep, ShipmentId
from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.errors import NotFound
from parcelwatch.ops.budgets import provider_budgets
from parcelwatch.shipments import service, shares
from parcelwatch.shipments.trackers import seen_by
from parcelwatch.sync import report
from parcelwatch.sync.manual import cooldown_ends
from parcelwatch.web import queries, runtime
from parcelwatch.web.signin import PersonDep
from parcelwatch.web.templating import render
from parcelwatch.web.views import event_place, seconds_until

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, person: PersonDep, session: SessionDep) -> HTMLResponse:
    now = utcnow()
    viewer = person.viewer
    return render(
        request,
        "overview.html",
        {
            "nav": "overview",
            "counts": queries.overview(session, now=now, viewer=viewer),
            "recent": queries.recent_activity(session, viewer=viewer),
            "updater": runtime.updater_state(request.app),
            "runs": queries.recent_runs(session, limit=1, finished=True),
        },
    )


@router.get("/shipments", response_class=HTMLResponse)
def shipments_page(
    request: Request,
    person: PersonDep,
    session: SessionDep,
    view: str = "active",
    status_filter: Annotated[str | None, Query(alias="status")] = None,
    carrier: str | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    sort: str = "updated",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    chosen_status = None
    with contextlib.suppress(ValueError):
        chosen_status = ShipmentStatus(status_filter) if status_filter else None
    search = q.strip() if q and q.strip() else None
    chosen_view = view if view in queries.VIEWS else "active"
    if chosen_view == "active" and (chosen_status is not None or search is not None):
        # "Active" is the default tab, not a choice: searching for a number or picking a
        # status (e.g. Delivered) looks through every shipment instead of finding nothing.
        chosen_view = "all"
    spec = queries.ListQuery(
        view=chosen_view,
        status=chosen_status,
        carrier=carrier if carrier in CARRIERS else None,
        search=search,
        sort=sort if sort in queries.SORTS else "updated",
        page=page,
    )
    listing = queries.list_page(session, spec, viewer=person.viewer)
    return render(
        request,
        "shipments.html",
        {
            "nav": "shipments",
            "spec": spec,
            "listing": listing,
            "views": queries.VIEWS,
            "sorts": queries.SORTS,
            "carriers": queries.carriers_in_use(session),
            "deleted": request.query_params.get("deleted"),
        },
    )


def _refresh_state(request: Request, shipment: Any) -> dict[str, Any]:
    """Whether the Refresh button works now, and if not, when or why not."""
    now = utcnow()
    available_at = cooldown_ends(shipment)
    reason = runtime.not_polled_reason(request.app, shipment.carrier)
    return {
        "supported": runtime.manual_refresh_supported(request.app),
        "final": shipment.is_final,
        "available_at": available_at,
        "wait_seconds": seconds_until(available_at, now),
        "unconfigured": reason,
    }


@router.get("/shipments/{shipment_id}", response_class=HTMLResponse)
def shipment_page(
    request: Request, shipment_id: ShipmentId, person: PersonDep, session: SessionDep
) -> HTMLResponse:
    try:
        found = service.get_shipment(session, shipment_id, viewer=person.viewer)
    except NotFound as error:
        return not_found(request, error.detail)
    shipment = seen_by(session, person.viewer, found)
    events = service.list_events(session, shipment_id)
    links = shares.list_links(session, person.viewer, shipment_id) if shipment.tracker else []
    return render(
        request,
        "shipment.html",
        {
            "nav": "shipments",
            "shipment": shipment,
            "events": events,
            "place": event_place,
            "refresh": _refresh_state(request, shipment),
            "links": links,
        },
    )


@router.get("/shipments/{shipment_id}/delete", response_class=HTMLResponse)
def confirm_delete_page(
    request: Request, shipment_id: ShipmentId, person: PersonDep, session: SessionDep
) -> HTMLResponse:
    try:
        shipment = seen_by(
            session, person.viewer, service.get_shipment(session, shipment_id, viewer=person.viewer)
        )
    except NotFound as error:
        return not_found(request, error.detail)
    return render(request, "delete.html", {"nav": "shipments", "shipment": shipment})


@router.get("/add", response_class=HTMLResponse)
def add_page(request: Request, _person: PersonDep) -> HTMLResponse:
    return render(request, "add.html", add_context())


def add_context(**values: Any) -> dict[str, Any]:
    return {
        "nav": "add",
        "carriers": sorted(CARRIERS.values(), key=lambda info: info.name),
        "form": {},
        "error": None,
        "text_error": None,
        **values,
    }


@router.get("/add/done", response_class=HTMLResponse)
def added_page(
    request: Request,
    person: PersonDep,
    session: SessionDep,
    created: str = "",
    existing: str = "",
    failed: int = 0,
    choose: str = "",
) -> HTMLResponse:
    def shipments(ids: str) -> list[Any]:
        found = []
        for part in ids.split(",")[:500]:
            if part.isdigit():
                with contextlib.suppress(NotFound):
                    shipment = service.get_shipment(session, int(part), viewer=person.viewer)
                    found.append(seen_by(session, person.viewer, shipment))
        return found

    return render(
        request,
        "added.html",
        {
            "nav": "add",
            "created": shipments(created),
            "existing": shipments(existing),
            "failed": failed,
            "choose": service.carrier_choices(choose.split(",")[:50]),
        },
    )


@router.get("/operations", response_class=HTMLResponse)
def operations_page(
    request: Request,
    person: PersonDep,
    session: SessionDep,
    settings: SettingsDep,
    database: DatabaseDep,
) -> HTMLResponse:
    paused_everywhere, engines = report.live(database)
    return render(
        request,
        "operations.html",
        {
            "nav": "operations",
            "updater": runtime.updater_state(request.app),
            "paused_everywhere": paused_everywhere,
            "engines": engines,
            "health": runtime.health_report(request.app, session),
            "runs": queries.recent_runs(session),
            "carriers": runtime.provider_rows(settings),
            "budgets": provider_budgets(session, settings),
            "can_operate": person.allows(Scope.ADMIN),
        },
    )


def not_found(request: Request, message: str) -> HTMLResponse:
    return render(
        request, "error.html", {"title": "Not found", "message": message}, status_code=404
    )


SHARED_HEADERS = {
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "private, no-store",
}


@router.get("/t/{token}", response_class=HTMLResponse)
def shared_page(
    request: Request, token: Annotated[str, Path(max_length=100)], session: SessionDep
) -> HTMLResponse:
    """A share link's public page: no sign-in, nothing of the person who shared it."""
    shipment = shares.find_shared(session, token)
    if shipment is None:
        return render(
            request,
            "error.html",
            {
                "title": "Link not found",
                "message": "This share link does not work: it may have been revoked or have "
                "expired, or the shipment is no longer tracked. Ask whoever sent it for a new one.",
                "public": True,
            },
            status_code=404,
            headers=SHARED_HEADERS,
        )
    events = service.list_events(session, shipment.id)
    context = {"public": True, "shipment": shipment, "events": events, "place": event_place}
    return render(request, "share.html", context, headers=SHARED_HEADERS)
