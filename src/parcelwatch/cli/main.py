"""The `parcelwatch` entry point: registers every command group."""

from __future__ import annotations

import typer

from parcelwatch import __version__
from parcelwatch.accounts.cli import app as users_app
from parcelwatch.accounts.tokens_cli import app as tokens_app
from parcelwatch.carriers.cli import app as carriers_app
from parcelwatch.cli import db, serve
from parcelwatch.emulator.cli import emulator as emulator_command
from parcelwatch.notifications.cli import app as notify_app
from parcelwatch.ops.alerts.cli import alert as alert_command
from parcelwatch.ops.health_cli import health as health_command
from parcelwatch.shipments.cli import app as shipments_app
from parcelwatch.sync.cli import sync as sync_command
from parcelwatch.worker.cli import worker as worker_command

app = typer.Typer(
    name="parcelwatch",
    help="Self-hosted shipment tracking that keeps itself current.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"parcelwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Self-hosted shipment tracking that keeps itself current."""


app.command("serve")(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(carriers_app, name="carriers")
app.add_typer(shipments_app, name="shipments")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(notify_app, name="notify")
app.command("emulator")(emulator_command)
app.command("sync")(sync_command)
app.command("worker")(worker_command)
app.command("health")(health_command)
app.command("alert")(alert_command)


def main() -> None:
    app()
