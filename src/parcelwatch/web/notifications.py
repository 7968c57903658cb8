"""Dashboard pages and forms of a person's notifications: channels with their event types,
time zone and quiet hours, "Send a test", each channel's delivery log with Replay, and a
shipment's mute / delivered-only choice.

Every form carries the session's CSRF token and must come from our own pages; a success is a
redirect (303), a refusal the page again with why. A new webhook secret is shown once, in the
answer to the form that made it (never in a URL)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, RedirectResponse, Response

from parcelwatch.accounts.roles import Scope
from parcelwatch.api.auth import Principal
from parcelwatch.api.deps import SessionDep, SettingsDep, ShipmentId
from parcelwatch.errors import NotFound, ServiceError
from parcelwatch.models import NotificationChannel
from parcelwatch.notifications import delivery_log, preferences, service
from parcelwatch.notifications.events import CHANNEL_KINDS, DEFAULT_EVENT_TYPES, MILESTONE_TYPES
from parcelwatch.shipments import service as shipments
from parcelwatch.shipments.service import MAX_ID
from parcelwatch.web.pages import not_found
from parcelwatch.web.signin import FormPersonDep, PersonDep
from parcelwatch.web.templating import SameOriginDep, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

NO_STORE: Final = {"Cache-Control": "no-store"}
LOG_PAGE: Final = 25
EVENT_CHOICES: Final = [
    (event.value, event.value.removeprefix("shipment.").replace("_", " "))
    for event in MILESTONE_TYPES
]
DEFAULT_CHOSEN: Final = [event.value for event in DEFAULT_EVENT_TYPES]
KIND_NAMES: Final = {"email": "Email", "apprise": "Apprise", "webhook": "Webhook"}

ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _overview(session: Session, person: Principal, **values: Any) -> dict[str, Any]:
    """What the Notifications page shows."""
    channels = service.list_channels(session, person.user_id)
    chosen = (
        preferences.get_preferences(session, person.user_id) if person.user_id is not None else None
    )
    return {
        "nav": "notifications",
        "channels": [(channel, service.masked_target(channel)) for channel in channels],
        "preferences": chosen,
        "quiet_start": preferences.format_clock(chosen.quiet_start_minute if chosen else None),
        "quiet_end": preferences.format_clock(chosen.quiet_end_minute if chosen else None),
        "time_zones": sorted(preferences.time_zones()),
        "event_choices": EVENT_CHOICES,
        "kinds": [(kind, KIND_NAMES[kind]) for kind in CHANNEL_KINDS],
        "may_be_instance_wide": person.allows(Scope.ADMIN),
        "form": {"kind": "email", "target": "", "name": "", "event_types": DEFAULT_CHOSEN},
        **values,
    }


@router.get("/notifications", response_class=HTMLResponse)
def notifications_page(request: Request, person: PersonDep, session: SessionDep) -> HTMLResponse:
    return render(request, "notifications.html", _overview(session, person))


@router.post("/notifications/channels")
def add_channel(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    kind: Annotated[str, Form(max_length=16)] = "email",
    target: Annotated[str, Form(max_length=2000)] = "",
    name: Annotated[str, Form(max_length=100)] = "",
    event_types: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006  # FastAPI copies it
    instance_wide: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    form = {"kind": kind, "target": target, "name": name, "event_types": event_types}
    try:
        made = service.create_channel(
            session,
            user_id=person.user_id,
            kind=kind,
            target=target,
            name=name or None,
            event_types=event_types,
            instance_wide=instance_wide == "on",
            admin=person.allows(Scope.ADMIN),
            allow_private=settings.notify_allow_private_networks,
        )
    except ServiceError as error:
        context = _overview(session, person, form=form, channel_error=error.detail)
        return render(request, "notifications.html", context, status_code=error.status_code)
    if made.secret is None:
        return _see_other("/notifications?notice=channel_added")
    context = _overview(session, person, new_secret=made.secret, new_secret_for=made.channel.name)
    return render(request, "notifications.html", context, headers=NO_STORE)


@router.post("/notifications/preferences")
def save_preferences(
    request: Request,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    quiet_start: Annotated[str, Form(max_length=8)] = "",
    quiet_end: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    try:
        preferences.set_preferences(
            session,
            person.user_id,
            timezone=timezone.strip(),
            quiet_start_minute=_clock(quiet_start, "quiet_start"),
            quiet_end_minute=_clock(quiet_end, "quiet_end"),
        )
    except ServiceError as error:
        context = _overview(session, person, preferences_error=error.detail)
        return render(request, "notifications.html", context, status_code=error.status_code)
    return _see_other("/notifications?notice=preferences_saved")


def _clock(text: str, field: str) -> int | None:
    return preferences.parse_clock(text, field) if text.strip() else None


def _channel_context(
    session: Session, person: Principal, channel: NotificationChannel, before: int | None
) -> dict[str, Any]:
    log = delivery_log.list_deliveries(
        session, user_id=person.user_id, channel_id=channel.id, before=before, limit=LOG_PAGE
    )
    return {
        "nav": "notifications",
        "channel": channel,
        "target": service.masked_target(channel),
        "event_choices": EVENT_CHOICES,
        "kind_name": KIND_NAMES.get(channel.kind, channel.kind),
        "log": log,
        "before": before,
    }


@router.get("/notifications/channels/{channel_id}", response_class=HTMLResponse)
def channel_page(
    request: Request,
    channel_id: ItemId,
    person: PersonDep,
    session: SessionDep,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    try:
        channel = service.get_channel(session, person.user_id, channel_id)
    except NotFound as error:
        return not_found(request, error.detail)
    return render(request, "channel.html", _channel_context(session, person, channel, before))


@router.post("/notifications/channels/{channel_id}")
def edit_channel(
    request: Request,
    channel_id: ItemId,
    session: SessionDep,
    settings: SettingsDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    name: Annotated[str, Form(max_length=100)] = "",
    target: Annotated[str, Form(max_length=2000)] = "",
    event_types: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006
    enabled: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """The whole form: a blank target keeps the one it has (it is shown masked)."""
    changes: dict[str, Any] = {"event_types": event_types, "enabled": enabled == "on"}
    if name.strip():
        changes["name"] = name
    if target.strip():
        changes["target"] = target
    try:
        service.update_channel(
            session,
            user_id=person.user_id,
            channel_id=channel_id,
            admin=person.allows(Scope.ADMIN),
            allow_private=settings.notify_allow_private_networks,
            **changes,
        )
    except NotFound as error:
        return not_found(request, error.detail)
    except ServiceError as error:
        return _channel_again(request, session, person, channel_id, error)
    return _see_other(f"/notifications/channels/{channel_id}?notice=channel_saved")


def _channel_again(
    request: Request,
    session: Session,
    person: Principal,
    channel_id: int,
    error: ServiceError,
) -> Response:
    channel = service.get_channel(session, person.user_id, channel_id)
    context = _channel_context(session, person, channel, None) | {"error": error.detail}
    return render(request, "channel.html", context, status_code=error.status_code)


@router.post("/notifications/channels/{channel_id}/test")
def queue_test(
    request: Request,
    channel_id: ItemId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
) -> Response:
    try:
        delivery_log.send_test(session, user_id=person.user_id, channel_id=channel_id)
    except NotFound as error:
        return not_found(request, error.detail)
    except ServiceError as error:
        return _channel_again(request, session, person, channel_id, error)
    return _see_other(f"/notifications/channels/{channel_id}?notice=test_queued#log")


@router.post("/notifications/channels/{channel_id}/rotate-secret")
def rotate_secret(
    request: Request,
    channel_id: ItemId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
) -> Response:
    try:
        made = service.rotate_secret(session, user_id=person.user_id, channel_id=channel_id)
    except NotFound as error:
        return not_found(request, error.detail)
    except ServiceError as error:
        return _channel_again(request, session, person, channel_id, error)
    context = _channel_context(session, person, made.channel, None) | {"new_secret": made.secret}
    return render(request, "channel.html", context, headers=NO_STORE)


@router.post("/notifications/channels/{channel_id}/delete")
def remove_channel(
    request: Request,
    channel_id: ItemId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
) -> Response:
    try:
        service.delete_channel(session, user_id=person.user_id, channel_id=channel_id)
    except NotFound as error:
        return not_found(request, error.detail)
    return _see_other("/notifications?notice=channel_removed")


@router.post("/notifications/deliveries/{delivery_id}/replay")
def replay_delivery(
    request: Request,
    delivery_id: ItemId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
) -> Response:
    try:
        delivery = delivery_log.replay(session, user_id=person.user_id, delivery_id=delivery_id)
    except NotFound as error:
        return not_found(request, error.detail)
    except ServiceError as error:
        context = {"title": "Not replayed", "message": error.detail, "back": "/notifications"}
        return render(request, "error.html", context, status_code=error.status_code)
    return _see_other(f"/notifications/channels/{delivery.channel_id}?notice=replayed#log")


@router.post("/shipments/{shipment_id}/notify")
def choose_notify(
    request: Request,
    shipment_id: ShipmentId,
    session: SessionDep,
    _origin: SameOriginDep,
    person: FormPersonDep,
    notify: Annotated[str, Form(max_length=16)] = "all",
) -> Response:
    """Your notifications of one shipment: all, delivered only, or muted."""
    try:
        shipments.update_shipment(session, shipment_id, viewer=person.viewer, notify=notify)
    except NotFound as error:
        return not_found(request, error.detail)
    except ServiceError as error:
        context = {
            "title": "Not saved",
            "message": error.detail,
            "back": f"/shipments/{shipment_id}",
        }
        return render(request, "error.html", context, status_code=error.status_code)
    return _see_other(f"/shipments/{shipment_id}?notice=notify_saved")
