"""`parcelwatch tokens`: create (shown once), list and revoke personal API tokens, against the
database directly."""

from __future__ import annotations

from typing import Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from parcelwatch.accounts import tokens
from parcelwatch.accounts.cli import JsonOption
from parcelwatch.accounts.roles import Scope
from parcelwatch.cli.common import command_transaction, console, fail, print_json
from parcelwatch.config import parse_duration
from parcelwatch.models import ApiToken

app = typer.Typer(help="Personal API tokens for scripts and Home Assistant.", no_args_is_help=True)


def _as_dict(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "user": token.user.name,
        "name": token.name,
        "scope": token.scope.value,
        "prefix": token.prefix,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
    }


@app.command("create")
def create(
    user: str = typer.Option(..., "--user", help="The account the token acts for."),
    scope: Scope = typer.Option(..., "--scope", help="read, write, or admin (owner and admins)."),
    name: str | None = typer.Option(None, "--name", help="What it is for, e.g. home-assistant."),
    expires: str | None = typer.Option(
        None, "--expires", help="Lifetime, e.g. 30d or 12h (default: until revoked)."
    ),
    json_output: bool = JsonOption,
) -> None:
    """Create a token and print it once: it cannot be shown again."""
    lifetime = None
    if expires is not None:
        try:
            lifetime = parse_duration(expires)
        except ValueError as error:
            fail(f"--expires: {error}", 2)
    with command_transaction(write=True) as session:
        issued = tokens.create_token(
            session, user_name=user, scope=scope, name=name, expires_in=lifetime
        )
        shown = _as_dict(issued.token) | {"token": issued.secret}
    if json_output:
        print_json(shown)
        return
    console.print(
        f"token {shown['id']} for {escape(shown['user'])} ({shown['scope']}); "
        "copy it now, it is not shown again:",
        highlight=False,
    )
    console.print(shown["token"], highlight=False, markup=False)


@app.command("list")
def list_tokens(
    user: str | None = typer.Option(None, "--user", help="Only this account's tokens."),
    json_output: bool = JsonOption,
) -> None:
    """Every token (never the token itself: its first characters only)."""
    with command_transaction() as session:
        listed = [_as_dict(token) for token in tokens.list_tokens(session, user_name=user)]
    if json_output:
        print_json(listed)
        return
    if not listed:
        console.print("no API tokens: parcelwatch tokens create --user NAME --scope read")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "user", "name", "scope", "token", "last used", "state"):
        table.add_column(column)
    for token in listed:
        state = "revoked" if token["revoked_at"] else "active"
        if token["expires_at"] and state == "active":
            state = f"until {token['expires_at'].astimezone():%Y-%m-%d %H:%M}"
        last = token["last_used_at"]
        table.add_row(
            str(token["id"]),
            escape(token["user"]),
            escape(token["name"]),
            token["scope"],
            f"{token['prefix']}…",
            f"{last.astimezone():%Y-%m-%d %H:%M}" if last else "never",
            state,
        )
    console.print(table)


@app.command("revoke")
def revoke(token_id: int = typer.Argument(..., help="The token's id (see `tokens list`).")) -> None:
    """Revoke a token: it stops working at once."""
    with command_transaction(write=True) as session:
        tokens.revoke_token(session, token_id)
    console.print(f"token {token_id} revoked", highlight=False)
