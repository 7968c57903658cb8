"""REST routes for a person's notification settings, delivery log, tests and replays: thin
wrappers over `notifications.service` and `notifications.delivery_log`."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Path, Query, Response, status

from parcelwatch.accounts.roles import Scope
from parcelwatch.api.auth import Principal, ReadDep, WriteDep
from parcelwatch.api.deps import SessionDep, SettingsDep
from parcelwatch.api.problems import answers
from parcelwatch.notifications import delivery_log, preferences, service
from parcelwatch.notifications.schemas import (
    ChannelCreate,
    ChannelOut,
    ChannelUpdate,
    DeliveryOut,
    DeliveryPageOut,
    PreferencesIn,
    PreferencesOut,
)
from parcelwatch.shipments.service import MAX_ID

router = APIRouter(prefix="/notifications", tags=["notifications"])

NO_CHANNEL: Final = "No such channel of yours."
NO_DELIVERY: Final = "No such delivery to a channel of yours."
NO_ACCOUNT: Final = "The ADMIN_API_KEY has no notification settings: use a personal token."
SWITCHED_OFF: Final = "The channel is switched off."

ChannelId = Annotated[int, Path(ge=1, le=MAX_ID, description="The channel's id.")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID, description="The delivery's id.")]


def _is_admin(who: Principal) -> bool:
    return who.allows(Scope.ADMIN)


@router.get("/channels", response_model=list[ChannelOut])
def list_channels(session: SessionDep, who: ReadDep) -> list[ChannelOut]:
    """Your channels (never a secret; targets masked)."""
    return [ChannelOut.of(channel) for channel in service.list_channels(session, who.user_id)]


@router.post(
    "/channels",
    response_model=ChannelOut,
    status_code=status.HTTP_201_CREATED,
    responses=answers(409, 413, 422, s409=NO_ACCOUNT + " Or you have 50 channels already."),
)
def create_channel(
    body: ChannelCreate, session: SessionDep, settings: SettingsDep, who: WriteDep
) -> ChannelOut:
    """Add a channel; a webhook's signing secret is in this answer only: keep it."""
    made = service.create_channel(
        session,
        user_id=who.user_id,
        kind=body.kind,
        target=body.target,
        name=body.name,
        event_types=body.event_types,
        instance_wide=body.instance_wide,
        admin=_is_admin(who),
        allow_private=settings.notify_allow_private_networks,
    )
    return ChannelOut.of(made.channel, secret=made.secret)


@router.get(
    "/channels/{channel_id}",
    response_model=ChannelOut,
    responses=answers(404, 422, s404=NO_CHANNEL),
)
def get_channel(channel_id: ChannelId, session: SessionDep, who: ReadDep) -> ChannelOut:
    return ChannelOut.of(service.get_channel(session, who.user_id, channel_id))


@router.patch(
    "/channels/{channel_id}",
    response_model=ChannelOut,
    responses=answers(404, 413, 422, s404=NO_CHANNEL),
)
def update_channel(
    channel_id: ChannelId,
    body: ChannelUpdate,
    session: SessionDep,
    settings: SettingsDep,
    who: WriteDep,
) -> ChannelOut:
    """Change its name, target, event types, or switch it off and on (on again clears the
    failures that switched it off)."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    changes = {name: value for name, value in changes.items() if value is not None}
    channel = service.update_channel(
        session,
        user_id=who.user_id,
        channel_id=channel_id,
        admin=_is_admin(who),
        allow_private=settings.notify_allow_private_networks,
        **changes,
    )
    return ChannelOut.of(channel)


@router.delete(
    "/channels/{channel_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=answers(404, 422, s404=NO_CHANNEL),
)
def delete_channel(channel_id: ChannelId, session: SessionDep, who: WriteDep) -> Response:
    """Remove the channel and its delivery log."""
    service.delete_channel(session, user_id=who.user_id, channel_id=channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/channels/{channel_id}/test",
    response_model=DeliveryOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=answers(404, 409, 422, s404=NO_CHANNEL, s409=SWITCHED_OFF),
)
def send_test(channel_id: ChannelId, session: SessionDep, who: WriteDep) -> DeliveryOut:
    """Queue a test message to this channel, due now (quiet hours do not hold it); the
    answer is its delivery: watch its status here or in the delivery log."""
    delivery = delivery_log.send_test(session, user_id=who.user_id, channel_id=channel_id)
    return DeliveryOut.of(
        delivery_log.get_delivery(session, user_id=who.user_id, delivery_id=delivery.id)
    )


@router.post(
    "/channels/{channel_id}/rotate-secret",
    response_model=ChannelOut,
    responses=answers(404, 409, 422, s404=NO_CHANNEL, s409="Only webhooks have a secret."),
)
def rotate_secret(channel_id: ChannelId, session: SessionDep, who: WriteDep) -> ChannelOut:
    """A new signing secret, in this answer only; the previous one signs beside it for 24 h
    (`previous_secret_expires_at`) so your receiver can switch over."""
    made = service.rotate_secret(session, user_id=who.user_id, channel_id=channel_id)
    return ChannelOut.of(made.channel, secret=made.secret)


@router.get(
    "/deliveries",
    response_model=DeliveryPageOut,
    responses=answers(404, 422, s404="channel_id is not a channel of yours."),
)
def list_deliveries(
    session: SessionDep,
    who: ReadDep,
    channel_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status_filter: Annotated[
        delivery_log.DeliveryStatus | None,
        Query(alias="status", description="pending, delivered or dead"),
    ] = None,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="next_before of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryPageOut:
    """The delivery log: your deliveries, newest first, each with its attempts."""
    page = delivery_log.list_deliveries(
        session,
        user_id=who.user_id,
        channel_id=channel_id,
        status=status_filter,
        before=before,
        limit=limit,
    )
    return DeliveryPageOut(
        items=[DeliveryOut.of(item) for item in page.items], next_before=page.next_before
    )


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    responses=answers(404, 422, s404=NO_DELIVERY),
)
def get_delivery(delivery_id: DeliveryId, session: SessionDep, who: ReadDep) -> DeliveryOut:
    return DeliveryOut.of(
        delivery_log.get_delivery(session, user_id=who.user_id, delivery_id=delivery_id)
    )


@router.post(
    "/deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=answers(404, 409, 422, s404=NO_DELIVERY, s409=SWITCHED_OFF),
)
def replay_delivery(delivery_id: DeliveryId, session: SessionDep, who: WriteDep) -> DeliveryOut:
    """Send it again, whatever its status, with the same message_id (receivers that have it
    can skip it)."""
    delivery_log.replay(session, user_id=who.user_id, delivery_id=delivery_id)
    return DeliveryOut.of(
        delivery_log.get_delivery(session, user_id=who.user_id, delivery_id=delivery_id)
    )


@router.get("/preferences", response_model=PreferencesOut, responses=answers(409, s409=NO_ACCOUNT))
def get_preferences(session: SessionDep, who: ReadDep) -> PreferencesOut:
    """Your time zone and quiet hours."""
    return PreferencesOut.of(preferences.get_preferences(session, who.user_id))


@router.put(
    "/preferences",
    response_model=PreferencesOut,
    responses=answers(409, 413, 422, s409=NO_ACCOUNT),
)
def set_preferences(body: PreferencesIn, session: SessionDep, who: WriteDep) -> PreferencesOut:
    """Your time zone (IANA, e.g. Europe/Berlin) and quiet hours in it (both ends, or
    neither): non-urgent notifications wait for their end."""
    start = preferences.parse_clock(body.quiet_start, "quiet_start") if body.quiet_start else None
    end = preferences.parse_clock(body.quiet_end, "quiet_end") if body.quiet_end else None
    saved = preferences.set_preferences(
        session,
        who.user_id,
        timezone=body.timezone,
        quiet_start_minute=start,
        quiet_end_minute=end,
    )
    return PreferencesOut.of(saved)
