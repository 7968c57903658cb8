"""`parcelwatch alert`: `--check-and-alert` (health checks, then notify) or `--test-alert`."""

from __future__ import annotations

import asyncio

import typer

from parcelwatch.cli.common import carrier_settings, console, fail, print_json, settings_or_exit
from parcelwatch.db import create_db_engine
from parcelwatch.ops.alerts.dispatch import Delivery, check_and_alert, send_test_alert
from parcelwatch.ops.health import DEFAULT_ALERT_THRESHOLD_HOURS, HealthOptions

__all__ = ["alert"]


def alert(
    check: bool = typer.Option(
        False, "--check-and-alert", help="Run the health checks and notify every enabled channel."
    ),
    test: bool = typer.Option(
        False, "--test-alert", help="Send a clearly marked test alert through every channel."
    ),
    alert_threshold: float = typer.Option(
        DEFAULT_ALERT_THRESHOLD_HOURS,
        "--alert-threshold",
        min=0.01,
        help="Hours without a successful sync run before the status is critical.",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print the result as one JSON document."
    ),
) -> None:
    """Send alerts. Exit status 1 when any enabled channel could not be reached."""
    if check == test:
        fail("choose one of --check-and-alert or --test-alert", 2)
    settings = settings_or_exit()
    if test:
        deliveries = asyncio.run(send_test_alert(settings))
        if json_output:
            print_json({"deliveries": [d.as_dict() for d in deliveries]})
        else:
            _print_deliveries(deliveries)
        raise typer.Exit(0 if all(d.delivered for d in deliveries) else 1)
    db = create_db_engine(settings.sqlalchemy_url)
    try:
        options = HealthOptions(alert_threshold_hours=alert_threshold)
        with carrier_settings(settings) as asked_with:
            run = asyncio.run(check_and_alert(asked_with, db, options=options))
    finally:
        db.dispose()
    if json_output:
        print_json(run.as_dict())
    else:
        console.print(f"health: {run.status}")
        if not run.notices:
            console.print(
                "nothing to send"
                + (f" ({len(run.suppressed)} in cool-down)" if run.suppressed else "")
            )
        for notice in run.notices:
            console.print(f"  {notice.line()}")
        for key in run.suppressed:
            console.print(f"  [dim]{key}: already sent, inside ALERT_COOLDOWN[/]")
        _print_deliveries(run.deliveries)
    raise typer.Exit(0 if run.all_delivered else 1)


def _print_deliveries(deliveries: list[Delivery]) -> None:
    for delivery in deliveries:
        if delivery.delivered:
            console.print(f"  [green]delivered[/]  {delivery.channel}")
        else:
            console.print(
                f"  [red]FAILED[/]     {delivery.channel} after {delivery.attempts} attempts: "
                f"{delivery.error}"
            )
