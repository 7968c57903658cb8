"""`parcelwatch notify`: send a test to a channel or to each of a person's, and list, add and
remove channels, against the database directly (as the owner at the server would)."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from parcelwatch.accounts.service import get_user
from parcelwatch.cli.common import (
    command_transaction,
    console,
    database_session,
    fail,
    print_json,
    settings_or_exit,
)
from parcelwatch.errors import ServiceError
from parcelwatch.models import NotificationChannel
from parcelwatch.notifications import delivery_log, service
from parcelwatch.notifications.events import CHANNEL_KINDS

app = typer.Typer(
    help="People's notification channels: test, list, add, remove.", no_args_is_help=True
)
channels_app = typer.Typer(help="List, add and remove notification channels.", no_args_is_help=True)
app.add_typer(channels_app, name="channels")

JsonOption = typer.Option(False, "--json", help="Print one JSON document instead of text.")
WAIT_STEP = 0.5


def _channel(channel: NotificationChannel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "user": channel.user.name,
        "kind": channel.kind,
        "name": channel.name,
        "target": service.masked_target(channel),
        "event_types": list(channel.event_types),
        "instance_wide": channel.instance_wide,
        "enabled": channel.enabled,
        "disabled_reason": channel.disabled_reason,
    }


def _user_id(session: Session, name: str | None) -> int | None:
    return get_user(session, name).id if name is not None else None


@app.command("test")
def send_test(
    channel_id: int | None = typer.Option(None, "--channel", help="Test this channel (its id)."),
    user: str | None = typer.Option(None, "--user", help="Test each of this person's channels."),
    wait: float = typer.Option(
        0, "--wait", min=0, max=300, help="Seconds to wait for the dispatcher's outcome."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Queue a test message to a channel, or to each channel of a person that is switched on,
    for the dispatcher (`serve` or `worker`) to deliver. With --wait, exit 1 unless every test
    was delivered within that time."""
    if channel_id is None and user is None:
        fail("give --channel ID or --user NAME", 2)
    with command_transaction(write=True) as session:
        owner = _user_id(session, user)
        if channel_id is not None:
            owner = service.owner_of_channel(session, channel_id) if owner is None else owner
            queued = [delivery_log.send_test(session, user_id=owner, channel_id=channel_id)]
        else:
            queued = delivery_log.send_tests(session, user_id=owner)
        ids = [delivery.id for delivery in queued]
    if not ids:
        fail(f"{user} has no channel that is switched on")
    results = _outcomes(owner, ids, wait)
    if json_output:
        print_json(results)
    else:
        for item in results:
            console.print(
                f"delivery {item['id']} to channel {item['channel_id']} "
                f"({escape(item['channel_name'])}): {item['status']}"
                + (f", {escape(item['last_error'])}" if item["last_error"] else ""),
                highlight=False,
            )
    if wait and any(item["status"] != "delivered" for item in results):
        raise typer.Exit(1)


def _outcomes(owner: int | None, ids: list[int], wait: float) -> list[dict[str, Any]]:
    """The deliveries' state, polled until none is pending or `wait` seconds passed."""
    settings = settings_or_exit()
    deadline = time.monotonic() + wait
    while True:
        with database_session(settings) as session:
            found = [
                delivery_log.get_delivery(session, user_id=owner, delivery_id=delivery_id)
                for delivery_id in ids
            ]
            results = [
                {
                    "id": item.delivery.id,
                    "channel_id": item.channel.id,
                    "channel_name": item.channel.name,
                    "kind": item.channel.kind,
                    "message_id": item.delivery.message_id,
                    "status": item.delivery.status,
                    "attempts": item.delivery.attempts,
                    "last_status_code": item.delivery.last_status_code,
                    "last_error": item.delivery.last_error,
                }
                for item in found
            ]
        pending = any(item["status"] == "pending" for item in results)
        if not pending or time.monotonic() >= deadline:
            return results
        time.sleep(WAIT_STEP)


@channels_app.command("list")
def list_channels(
    user: str | None = typer.Option(None, "--user", help="Only this person's channels."),
    json_output: bool = JsonOption,
) -> None:
    """Every person's channels (targets masked, never a secret)."""
    with command_transaction() as session:
        owner = _user_id(session, user)
        rows = (
            service.list_channels(session, owner)
            if owner is not None
            else service.every_channel(session)
        )
        listed = [_channel(channel) for channel in rows]
    if json_output:
        print_json(listed)
        return
    if not listed:
        console.print("no notification channels: parcelwatch notify channels add --user NAME …")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "user", "kind", "name", "target", "events", "state"):
        table.add_column(column)
    for item in listed:
        table.add_row(
            str(item["id"]),
            escape(item["user"]),
            item["kind"],
            escape(item["name"]),
            escape(item["target"]),
            str(len(item["event_types"])),
            "on" if item["enabled"] else "off",
        )
    console.print(table)


@channels_app.command("add")
def add_channel(
    user: str = typer.Option(..., "--user", help="Whose channel it is."),
    kind: str = typer.Option(..., "--kind", help=f"One of {', '.join(CHANNEL_KINDS)}."),
    target: str = typer.Option(..., "--target", help="An email address, Apprise URL or URL."),
    name: str | None = typer.Option(None, "--name", help="Default: made from the target."),
    event_types: list[str] | None = typer.Option(
        None, "--event-type", help="Repeat for each; default: the defaults."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Add a channel; a webhook's signing secret is printed this once."""
    settings = settings_or_exit()
    with command_transaction(write=True) as session:
        person = get_user(session, user)
        try:
            made = service.create_channel(
                session,
                user_id=person.id,
                kind=kind,
                target=target,
                name=name,
                event_types=event_types or None,
                admin=True,  # the operator at the server
                allow_private=settings.notify_allow_private_networks,
            )
        except ServiceError as error:
            fail(error.detail)
        shown = _channel(made.channel) | {"secret": made.secret}
    if json_output:
        print_json(shown)
        return
    console.print(f"channel {shown['id']} added for {escape(shown['user'])}", highlight=False)
    if made.secret:
        console.print("its signing secret (copy it now, it is not shown again):")
        console.print(made.secret, highlight=False, markup=False)


@channels_app.command("remove")
def remove_channel(
    channel_id: int = typer.Argument(..., help="The channel's id (see `notify channels list`)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask first."),
    json_output: bool = JsonOption,
) -> None:
    """Remove a channel and its delivery log."""
    if json_output and not yes:
        fail("--json needs --yes (there is no one to ask)", 2)
    if not yes and not typer.confirm(f"Remove notification channel {channel_id}?"):
        raise typer.Exit(1)
    with command_transaction(write=True) as session:
        owner = service.owner_of_channel(session, channel_id)
        service.delete_channel(session, user_id=owner, channel_id=channel_id)
    if json_output:
        print_json({"id": channel_id, "removed": True})
    else:
        console.print(f"channel {channel_id} removed", highlight=False)
