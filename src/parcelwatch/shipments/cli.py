"""`parcelwatch shipments`: add, list, show, events, update and delete from the terminal."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any, Final

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import get_user
from parcelwatch.cli.common import command_transaction, console, fail, print_json
from parcelwatch.domain import ShipmentStatus
from parcelwatch.models import User
from parcelwatch.shipments import export, service
from parcelwatch.shipments.schemas import EventOut, ShipmentOut
from parcelwatch.shipments.service import BulkOutcome
from parcelwatch.shipments.trackers import EVERYONE, Viewer, as_seen_by, seen_by
from parcelwatch.web.views import status_view

app = typer.Typer(help="Register and inspect shipments.", no_args_is_help=True)

WIDE: Final = 100  # columns from which `shipments list` also shows the last check
JsonOption = typer.Option(False, "--json", help="Print one JSON document instead of a table.")


def _terminal(value: object) -> str:
    """Text for the terminal: control characters shown as `\\x1b` (stored data, or what a
    carrier said, cannot send terminal sequences), tabs and line breaks as spaces, and Rich
    markup (`[red]`) printed as written."""
    return escape("".join(_visible(character) for character in str(value)))


def _visible(character: str) -> str:
    if unicodedata.category(character) != "Cc":
        return character
    if character in "\t\n":
        return " "
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"


def _short(value: datetime | None, *, day_only: bool = False) -> str:
    """A time for a narrow column, in local time: `14:05` today, else `04 Dec` (`04 Dec 2025`
    when it is not this year)."""
    if value is None:
        return "-"
    local, now = value.astimezone(), datetime.now().astimezone()
    if local.date() == now.date() and not day_only:
        return local.strftime("%H:%M")
    return local.strftime("%d %b" if local.year == now.year else "%d %b %Y")


def _status(item: ShipmentOut) -> str:
    """The dashboard's label for the status: "Out for delivery", not `out_for_delivery`."""
    return status_view(item.status).label


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


def _operator(session: Session) -> Viewer:
    """Whom the commands act as: the owner (who sees every shipment), or nobody in
    particular while there is no owner."""
    owner = session.scalar(select(User).where(User.role == Role.OWNER))
    return Viewer(user_id=owner.id, everyone=True) if owner else EVERYONE


@app.command("add")
def add(
    tracking_numbers: list[str] = typer.Argument(..., help="One or more tracking numbers."),
    carrier: str | None = typer.Option(None, "--carrier", "-c", help="Carrier code; detected."),
    description: str | None = typer.Option(None, "--description", "-d"),
    user: str | None = typer.Option(
        None, "--user", "-u", help="Whose list to add them to (default: the owner's)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Register tracking numbers (the carrier is detected unless given) in a person's list."""
    with command_transaction(write=True) as session:
        viewer = _operator(session)
        if user is not None:
            account = get_user(session, user)
            viewer = Viewer.of(account.id, account.role)
        results = service.register_many(
            session,
            [(number, carrier, description) for number in tracking_numbers],
            owner_id=viewer.user_id,
        )
        shipments = [item.shipment for item in results if item.shipment is not None]
        seen = {tracked.id: tracked for tracked in as_seen_by(session, viewer, shipments)}
        documents = [
            {
                "tracking_number": item.tracking_number,
                "outcome": item.outcome.value,
                "shipment": _dump(ShipmentOut.of(seen[item.shipment.id]))
                if item.shipment
                else None,
                "error": item.error,
            }
            for item in results
        ]
    failed = [item for item in results if item.outcome is BulkOutcome.ERROR]
    if as_json:
        print_json(documents if len(documents) > 1 else documents[0])
    else:
        for item in results:
            if item.shipment is not None:
                verb = "Added" if item.outcome is BulkOutcome.CREATED else "Already tracked"
                console.print(
                    f"{verb}: #{item.shipment.id} {_terminal(item.shipment.tracking_number)} "
                    f"({_terminal(item.shipment.carrier)})",
                    highlight=False,
                )
            else:
                console.print(
                    f"[red]Not added[/red]: {_terminal(item.tracking_number)}: "
                    f"{_terminal(item.error)}",
                    highlight=False,
                )
    if failed:
        raise typer.Exit(1)


@app.command("list")
def list_(
    status: ShipmentStatus | None = typer.Option(None, "--status", "-s"),
    carrier: str | None = typer.Option(None, "--carrier", "-c"),
    active: bool | None = typer.Option(
        None, "--active/--final", help="Only active (not final) or only final shipments."
    ),
    search: str | None = typer.Option(None, "--search", "-q", help="Number or description text."),
    label: str | None = typer.Option(None, "--label", "-l", help="Only those with this label."),
    limit: int = typer.Option(50, min=1, max=200),
    cursor: str | None = typer.Option(None, help="next_cursor of a previous page."),
    as_json: bool = JsonOption,
) -> None:
    """List shipments, newest first."""
    with command_transaction() as session:
        viewer = _operator(session)
        page = service.list_shipments(
            session,
            status=status,
            carrier=carrier,
            active=active,
            search=search,
            cursor=cursor,
            limit=limit,
            viewer=viewer,
            label=label,
            archived=None,
        )
        items = [ShipmentOut.of(seen) for seen in as_seen_by(session, viewer, page.items)]
    if as_json:
        print_json({"items": [_dump(item) for item in items], "next_cursor": page.next_cursor})
        return
    # Fits 80 columns: the tracking number and status are never cut, the description wraps;
    # when the last check fits too (100 columns), it is shown.
    table = Table(
        box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1), collapse_padding=True
    )
    for heading in ("ID", "Carrier", "Tracking number", "Status"):
        table.add_column(heading, no_wrap=True, justify="right" if heading == "ID" else "left")
    table.add_column("Description", ratio=1, min_width=10)
    table.add_column("ETA", no_wrap=True)
    checked = console.width >= WIDE
    if checked:
        table.add_column("Checked", no_wrap=True)
    for item in items:
        row = [
            str(item.id),
            _terminal(item.carrier_name),
            _terminal(item.tracking_number),
            _status(item),
            _terminal(item.description or ""),
            _short(item.estimated_delivery, day_only=True),
        ]
        if checked:
            row.append(_short(item.last_auto_refresh or item.last_manual_refresh))
        table.add_row(*row)
    console.print(table)
    if page.next_cursor:
        console.print(f"More: --cursor {page.next_cursor}", style="dim")


def _resolve(session: Session, reference: str) -> int:
    return service.find_shipment(session, reference).id


@app.command("show")
def show(
    reference: str = typer.Argument(..., help="Shipment id or tracking number."),
    as_json: bool = JsonOption,
) -> None:
    """Show one shipment."""
    with command_transaction() as session:
        viewer = _operator(session)
        item = ShipmentOut.of(seen_by(session, viewer, service.find_shipment(session, reference)))
    if as_json:
        print_json(_dump(item))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in _described(item):
        table.add_row(label, value)
    console.print(table)


# `shipments show`: each field under the name a person would give it, in reading order.
SHOWN_FIELDS: Final = (
    ("ID", "id"),
    ("Carrier", "carrier_name"),
    ("Tracking number", "tracking_number"),
    ("Description", "description"),
    ("Status", "status"),
    ("Carrier says", "status_detail"),
    ("Expected", "estimated_delivery"),
    ("Delivered", "delivered_at"),
    ("Signed by", "signed_by"),
    ("Last event", "last_event_at"),
    ("Carrier page", "tracking_url"),
    ("Tracked through", "provider"),
    ("Automatic updates", "auto_refresh_enabled"),
    ("Automatic checks", "auto_refresh_count"),
    ("Failed in a row", "auto_refresh_fail_count"),
    ("Last checked", "last_auto_refresh"),
    ("Last error", "last_auto_refresh_error"),
    ("Refreshed by hand", "last_manual_refresh"),
    ("Next check", "next_check_at"),
    ("Added", "created_at"),
    ("Changed", "updated_at"),
)


def _described(item: ShipmentOut) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for label, name in SHOWN_FIELDS:
        value = getattr(item, name)
        if name == "status":
            shown = _status(item) + (" (final: no more updates)" if item.final else "")
        elif name == "auto_refresh_enabled":
            shown = "on" if value else "off"
        elif isinstance(value, datetime):
            shown = _when(value)
        else:
            shown = "-" if value is None or value == "" else str(value)
        rows.append((label, _terminal(shown)))
    return rows


@app.command("events")
def events(
    reference: str = typer.Argument(..., help="Shipment id or tracking number."),
    as_json: bool = JsonOption,
) -> None:
    """A shipment's tracking events, newest first."""
    with command_transaction() as session:
        shipment_id = _resolve(session, reference)
        rows = [EventOut.of(event) for event in service.list_events(session, shipment_id)]
    if as_json:
        print_json([_dump(row) for row in rows])
        return
    table = Table("When", "Status", "Description", "Location")
    for row in rows:
        place = ", ".join(p for p in (row.city, row.state, row.country) if p)
        table.add_row(
            _when(row.occurred_at), row.status.value, _terminal(row.description), _terminal(place)
        )
    console.print(table)


@app.command("update")
def update(
    reference: str = typer.Argument(..., help="Shipment id or tracking number."),
    description: str | None = typer.Option(None, "--description", "-d"),
    carrier: str | None = typer.Option(None, "--carrier", "-c", help="Correct the carrier."),
    auto_refresh: bool | None = typer.Option(
        None,
        "--enable-auto-refresh/--disable-auto-refresh",
        help="Re-enabling clears the failure count.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change a shipment's description or carrier, or switch its automatic updates."""
    changes: dict[str, Any] = {}
    if description is not None:
        changes["description"] = description
    if carrier is not None:
        changes["carrier"] = carrier
    if auto_refresh is not None:
        changes["auto_refresh_enabled"] = auto_refresh
    if not changes:
        fail("nothing to change: give --description, --carrier or --enable-auto-refresh")
    with command_transaction(write=True) as session:
        viewer = _operator(session)
        shipment = service.update_shipment(
            session, _resolve(session, reference), viewer=viewer, **changes
        )
        item = ShipmentOut.of(seen_by(session, viewer, shipment))
    _report(item, as_json, "Updated")


@app.command("delete")
def delete(
    reference: str = typer.Argument(..., help="Shipment id or tracking number."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = JsonOption,
) -> None:
    """Delete a shipment and its events."""
    with command_transaction(write=True) as session:
        shipment = service.find_shipment(session, reference)
        label = f"#{shipment.id} {_terminal(shipment.tracking_number)} ({shipment.carrier})"
        if not yes and as_json:  # a script cannot answer the prompt: it must say --yes
            fail(f"not deleting {label}: --json cannot ask for confirmation, add --yes")
        if not yes and not typer.confirm(f"Delete {label}?"):
            raise typer.Exit(1)
        service.delete_shipment(session, shipment.id)
    if as_json:
        print_json({"deleted": shipment.id})
    else:
        console.print(f"Deleted {label}", highlight=False)


def _report(item: ShipmentOut, as_json: bool, verb: str) -> None:
    if as_json:
        print_json(_dump(item))
    else:
        console.print(
            f"{verb}: #{item.id} {_terminal(item.tracking_number)} ({_terminal(item.carrier)}) "
            f"{item.status.value}",
            highlight=False,
        )


__all__: list[str] = ["app"]


@app.command("export")
def export_list(
    user: str | None = typer.Option(
        None, "--user", "-u", help="Whose list (default: the owner's)."
    ),
    export_format: str = typer.Option("csv", "--format", "-f", help="csv or json."),
) -> None:
    """Print a person's list (archived shipments too) as CSV or JSON on standard output."""
    if export_format not in ("csv", "json"):
        fail(f"--format: {export_format!r} is not csv or json", 2)
    with command_transaction() as session:
        account = (
            get_user(session, user)
            if user is not None
            else session.scalar(select(User).where(User.role == Role.OWNER))
        )
        if account is None:
            fail("there is no owner yet: give --user NAME, or create the owner first")
        rows = export.export_rows(session, account.id)
    text = export.as_csv(rows) if export_format == "csv" else export.as_json(rows)
    typer.echo(text, nl=False)
