"""`parcelwatch carriers ...`: check the configured carrier APIs' credentials and reachability."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import typer
from rich.markup import escape
from rich.table import Table

from parcelwatch.carriers import shipengine
from parcelwatch.carriers.base import ProviderSpec
from parcelwatch.carriers.errors import (
    AuthError,
    CarrierError,
    RateLimitedError,
    UnavailableError,
)
from parcelwatch.carriers.providers import PROVIDERS
from parcelwatch.carriers.registry import missing_credentials, open_registry
from parcelwatch.carriers.shipengine import ShipEngineProvider
from parcelwatch.cli.common import (
    carrier_settings,
    console,
    err_console,
    print_json,
    settings_or_exit,
)
from parcelwatch.config import Settings
from parcelwatch.webhooks import shipengine as shipengine_webhooks
from parcelwatch.webhooks.shipengine import WebhookRegistration

__all__ = ["CheckResult", "app", "check_providers", "register_webhook"]

app = typer.Typer(help="Carrier API providers.", no_args_is_help=True)

EXIT_ALL_OK, EXIT_SOME_FAILED, EXIT_NONE_CONFIGURED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class CheckResult:
    provider: str
    name: str
    configured: bool
    outcome: str  # ok | auth_failed | rate_limited | unreachable | bad_response | not_configured
    message: str | None


def _outcome(error: CarrierError) -> str:
    if isinstance(error, AuthError):
        return "auth_failed"
    if isinstance(error, RateLimitedError):
        return "rate_limited"
    if isinstance(error, UnavailableError):
        return "unreachable"
    return "bad_response"


async def check_providers(settings: Settings) -> list[CheckResult]:
    """Run every configured provider's `check()` at once; unconfigured ones are listed too."""
    async with open_registry(settings) as registry:

        async def one(spec: ProviderSpec) -> CheckResult:
            code = spec.code
            provider = registry.providers.get(code)
            if provider is None:
                missing = ", ".join(missing_credentials(spec, settings))
                return CheckResult(code, spec.name, False, "not_configured", f"{missing} not set")
            try:
                await provider.check()
            except CarrierError as error:
                return CheckResult(code, spec.name, True, _outcome(error), str(error))
            return CheckResult(code, spec.name, True, "ok", None)

        return list(await asyncio.gather(*(one(spec) for spec in PROVIDERS)))


def exit_status(results: list[CheckResult]) -> int:
    checked = [r for r in results if r.configured]
    if not checked:
        return EXIT_NONE_CONFIGURED
    return EXIT_ALL_OK if all(r.outcome == "ok" for r in checked) else EXIT_SOME_FAILED


STYLES = {"ok": "green", "not_configured": "dim"}


@app.command("check")
def check(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Fetch a token (USPS, UPS, FedEx) or make the cheapest authenticated call (DHL,
    ShipEngine) for each configured provider, and report ok / auth failed / unreachable.

    Exit status: 0 every configured provider is ok; 1 at least one failed; 2 no provider
    is configured (nothing could be checked)."""
    with carrier_settings(settings_or_exit()) as settings:
        results = asyncio.run(check_providers(settings))
    status = exit_status(results)
    if as_json:
        print_json({"providers": [asdict(r) for r in results], "exit_status": status})
        raise typer.Exit(status)
    table = Table(title="Carrier providers")
    for column in ("provider", "configured", "result", "detail"):
        table.add_column(column)
    for result in results:
        style = STYLES.get(result.outcome, "red")
        table.add_row(
            result.name,
            "yes" if result.configured else "no",
            f"[{style}]{result.outcome.replace('_', ' ')}[/{style}]",
            escape(result.message or ""),
        )
    console.print(table)
    if status == EXIT_NONE_CONFIGURED:
        err_console.print("no carrier provider is configured; set credentials first")
    raise typer.Exit(status)


WEBHOOK_PATH = "/api/webhooks/shipengine"


@app.command("register-webhook")
def register_webhook(
    url: str = typer.Argument(
        ...,
        help="This server's public webhook URL, e.g. https://parcels.example.com" + WEBHOOK_PATH,
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Ask ShipEngine to push tracking updates to URL (`POST /v1/environment/webhooks`, event
    `track`), sending SHIPENGINE_WEBHOOK_SECRET back on every push when it is set.
    Registering the same URL again changes nothing.

    Exit status: 0 registered (or already was); 1 ShipEngine refused or could not be
    reached; 2 SHIPENGINE_API_KEY is not set or URL is not an http(s) URL."""
    settings = settings_or_exit()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        err_console.print(f"not an http:// or https:// URL: {escape(url)}")
        raise typer.Exit(2)
    if not parts.path.rstrip("/").endswith(WEBHOOK_PATH):
        err_console.print(
            f"[yellow]note:[/yellow] parcelwatch receives ShipEngine pushes at {WEBHOOK_PATH}"
        )
    unset = missing_credentials(shipengine.PROVIDER, settings)
    if unset:
        err_console.print(f"{' and '.join(unset)} is not set")
        raise typer.Exit(2)
    secret = settings.shipengine_webhook_secret
    try:
        registration = asyncio.run(
            _register(settings, url, secret.get_secret_value() if secret else None)
        )
    except CarrierError as error:
        if as_json:
            print_json({"registered": False, "outcome": _outcome(error), "error": str(error)})
        else:
            err_console.print(f"[red]ShipEngine refused the webhook:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    if as_json:
        print_json({"registered": True, **asdict(registration)})
        return
    what = "registered" if registration.created else "already registered"
    console.print(f"[green]{what}[/green] {escape(registration.url)} ({registration.webhook_id})")


async def _register(settings: Settings, url: str, secret: str | None) -> WebhookRegistration:
    async with open_registry(settings) as registry:
        provider = registry.providers.get("shipengine")
        assert isinstance(provider, ShipEngineProvider)  # configured: checked by the caller
        return await shipengine_webhooks.register_webhook(provider, url, secret)
