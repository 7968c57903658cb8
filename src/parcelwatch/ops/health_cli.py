"""`parcelwatch health`: the health report as a readable table or JSON, with exit status
0 healthy, 1 warning, 2 critical."""

from __future__ import annotations

import asyncio

import typer
from rich.table import Table

from parcelwatch.cli.common import carrier_settings, console, print_json, settings_or_exit
from parcelwatch.db import create_db_engine
from parcelwatch.ops.checks import HealthReport, Level
from parcelwatch.ops.health import (
    DEFAULT_ALERT_THRESHOLD_HOURS,
    MAX_ALERT_THRESHOLD_HOURS,
    HealthOptions,
    run_health,
)

__all__ = ["health"]

STYLES = {Level.OK: "green", Level.WARNING: "yellow", Level.CRITICAL: "bold red"}
OVERALL_STYLES = {"healthy": "green", "warning": "yellow", "critical": "bold red"}


def health(
    json_output: bool = typer.Option(
        False, "--json", help="Print the report as one JSON document."
    ),
    check_stale: bool = typer.Option(False, "--check-stale", help="List the stale shipments."),
    alert_threshold: float = typer.Option(
        DEFAULT_ALERT_THRESHOLD_HOURS,
        "--alert-threshold",
        min=0.01,
        max=MAX_ALERT_THRESHOLD_HOURS,
        help="Hours without a successful sync run before the status is critical.",
    ),
) -> None:
    """Check the database, carrier APIs, sync activity, stale shipments and the error rate.

    Exit status: 0 healthy, 1 warning, 2 critical."""
    settings = settings_or_exit()
    db = create_db_engine(settings.sqlalchemy_url)
    options = HealthOptions(alert_threshold_hours=alert_threshold, check_stale=check_stale)
    try:
        with carrier_settings(settings) as asked_with:
            report = asyncio.run(run_health(asked_with, db, options))
    finally:
        db.dispose()
    if json_output:
        print_json(report.as_dict())
    else:
        render(report)
    raise typer.Exit(report.exit_code)


def render(report: HealthReport) -> None:
    style = OVERALL_STYLES[report.status]
    console.print(
        f"parcelwatch is [{style}]{report.status.upper()}[/] "
        f"({report.checked_at:%Y-%m-%d %H:%M:%S} UTC)"
    )
    table = Table(show_header=True, header_style="bold")
    table.add_column("check")
    table.add_column("status")
    table.add_column("details", overflow="fold")
    for check in report.checks:
        table.add_row(check.name, f"[{STYLES[check.status]}]{check.status.value}[/]", check.message)
    console.print(table)
    if report.stale_shipments is None:
        return
    if not report.stale_shipments:
        console.print("No stale shipments.")
        return
    stale = Table(title="Stale shipments", header_style="bold")
    for column in ("id", "carrier", "tracking number", "status", "last checked", "last error"):
        stale.add_column(column, overflow="fold")
    for row in report.stale_shipments:
        stale.add_row(
            str(row["id"]),
            row["carrier"],
            row["tracking_number"],
            row["status"],
            row["last_checked_at"] or "never",
            row["last_error"] or "",
        )
    console.print(stale)
