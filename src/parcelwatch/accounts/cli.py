"""`parcelwatch users`: create, list, reset the password of and delete accounts, against the
database directly (as `db upgrade` does), so the first account can be made before `serve`."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from parcelwatch.accounts import service
from parcelwatch.accounts.roles import Role
from parcelwatch.cli.common import command_transaction, console, fail, print_json
from parcelwatch.models import User

app = typer.Typer(help="Manage accounts: the owner, admins and members.", no_args_is_help=True)

JsonOption = typer.Option(False, "--json", help="Print one JSON document instead of text.")
PasswordOption = typer.Option(
    None,
    "--password",
    help="The password (visible to other users of this machine in the process list: "
    "prefer --password-stdin or the prompt).",
)
PasswordStdinOption = typer.Option(
    False, "--password-stdin", help="Read the password from the first line of standard input."
)


def _password(given: str | None, from_stdin: bool) -> str:
    if given is not None and from_stdin:
        fail("give the password with --password or --password-stdin, not both", 2)
    if given is not None:
        return given
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            fail("--password-stdin: standard input is empty", 2)
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("no password given: use --password-stdin (or --password) when not at a terminal", 2)
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _as_dict(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "role": user.role.value,
        "password": user.password_hash is not None,
        "created_at": user.created_at,
        "last_login_at": user.last_login_at,
    }


@app.command("create")
def create(
    name: str = typer.Argument(..., help="The account name (an e-mail address works)."),
    role: Role = typer.Option(..., "--role", help="owner (the first account), admin or member."),
    password: str | None = PasswordOption,
    password_stdin: bool = PasswordStdinOption,
    json_output: bool = JsonOption,
) -> None:
    """Create an account (the first one must be the owner)."""
    secret = _password(password, password_stdin)
    with command_transaction(write=True) as session:
        user = service.create_user(session, name=name, role=role, password=secret)
        shown = _as_dict(user)
    if json_output:
        print_json(shown)
        return
    console.print(f"created {escape(shown['name'])} ({shown['role']})", highlight=False)


@app.command("list")
def list_users(json_output: bool = JsonOption) -> None:
    """Every account, with its role and last sign-in."""
    with command_transaction() as session:
        users = [_as_dict(user) for user in service.list_users(session)]
    if json_output:
        print_json(users)
        return
    if not users:
        console.print("no accounts yet: parcelwatch users create NAME --role owner")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "name", "role", "created", "last sign-in"):
        table.add_column(column)
    for user in users:
        last = user["last_login_at"]
        table.add_row(
            str(user["id"]),
            escape(user["name"]),
            user["role"],
            user["created_at"].astimezone().strftime("%Y-%m-%d %H:%M"),
            last.astimezone().strftime("%Y-%m-%d %H:%M") if last else "never",
        )
    console.print(table)


@app.command("reset-password")
def reset_password(
    name: str = typer.Argument(..., help="The account name."),
    password: str | None = PasswordOption,
    password_stdin: bool = PasswordStdinOption,
) -> None:
    """Set a new password for an account."""
    secret = _password(password, password_stdin)
    with command_transaction(write=True) as session:
        user = service.set_password(session, name, secret)
        shown = user.name
    console.print(f"password of {escape(shown)} changed", highlight=False)


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="The account name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete an account (never the owner)."""
    if not yes and not typer.confirm(f"Delete the account {name!r}?"):
        raise typer.Exit(1)
    with command_transaction(write=True) as session:
        service.delete_user(session, name)
    console.print(f"deleted {escape(name)}", highlight=False)
