"""`parcelwatch users`, run as an operator runs it, on the configured database: the first account
is the owner, passwords meet the policy and are stored as Argon2id hashes, never shown."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from parcelwatch.accounts import service
from parcelwatch.accounts.roles import Role
from parcelwatch.models import User
from tests.accounts.conftest import GOOD, OTHER, Invoke
from tests.conftest import Database


def stored(database: Database, name: str) -> User | None:
    with database.sessions() as session:
        return session.scalar(select(User).where(User.name == name))


def test_the_first_account_is_the_owner_with_an_argon2id_hash(
    run: Invoke, database: Database
) -> None:
    result = run("users", "create", "Alice", "--role", "owner", "--password-stdin", input=GOOD)
    assert result.exit_code == 0, result.output
    assert "created alice (owner)" in result.output
    user = stored(database, "alice")
    assert user is not None
    assert user.role is Role.OWNER
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert GOOD not in result.output


def test_the_first_account_must_be_the_owner(run: Invoke, database: Database) -> None:
    result = run("users", "create", "bob", "--role", "member", "--password", GOOD)
    assert result.exit_code == 1
    assert "the first account must be the owner" in result.output
    assert "parcelwatch users create bob --role owner" in result.output
    assert stored(database, "bob") is None


def test_there_is_one_owner_and_names_are_unique_in_any_case(
    run: Invoke, database: Database
) -> None:
    assert run("users", "create", "alice", "--role", "owner", "--password", GOOD).exit_code == 0
    second = run("users", "create", "carol", "--role", "owner", "--password", GOOD)
    assert second.exit_code == 1
    assert "'alice' is already the owner" in second.output
    again = run("users", "create", "ALICE", "--role", "member", "--password", GOOD)
    assert again.exit_code == 1
    assert "an account named 'alice' exists already" in again.output
    assert stored(database, "carol") is None


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short one", "too short (9 characters); use at least 12"),
        ("password1234", "one of the most common passwords"),
        ("aaaaaaaaaaaaaaaa", "one of the most common passwords"),
        ("dave-is-my-name-ok", "must not contain the account name"),
        ("tab\tin the middle", "control characters are not allowed"),
    ],
)
def test_a_weak_password_is_refused_with_the_reason_and_nothing_is_stored(
    run: Invoke, database: Database, password: str, reason: str
) -> None:
    result = run("users", "create", "dave", "--role", "owner", "--password-stdin", input=password)
    assert result.exit_code == 1
    assert reason in result.output
    assert password not in result.output
    assert stored(database, "dave") is None


def test_an_invalid_name_says_what_a_name_may_hold(run: Invoke) -> None:
    result = run("users", "create", "bad name!", "--role", "owner", "--password", GOOD)
    assert result.exit_code == 1
    assert "'bad name!' is not a valid account name" in result.output


def test_list_shows_accounts_and_never_a_hash(run: Invoke) -> None:
    run("users", "create", "alice", "--role", "owner", "--password", GOOD)
    run("users", "create", "bob@example.com", "--role", "member", "--password", OTHER)
    listed = run("users", "list", "--json")
    assert listed.exit_code == 0, listed.output
    users = json.loads(listed.output)
    assert [(u["name"], u["role"], u["password"]) for u in users] == [
        ("alice", "owner", True),
        ("bob@example.com", "member", True),
    ]
    table = run("users", "list")
    assert "bob@example.com" in table.output
    assert "never" in table.output
    assert "argon2" not in listed.output + table.output


def test_reset_password_replaces_the_hash_and_only_the_new_password_signs_in(
    run: Invoke, database: Database
) -> None:
    run("users", "create", "alice", "--role", "owner", "--password", GOOD)
    result = run("users", "reset-password", "Alice", "--password-stdin", input=OTHER + "\n")
    assert result.exit_code == 0, result.output
    assert "password of alice changed" in result.output
    with database.sessions.begin() as session:
        assert service.authenticate(session, "alice", GOOD) is None
        signed_in = service.authenticate(session, "alice", OTHER)
        assert signed_in is not None
        assert signed_in.last_login_at is not None


def test_sign_in_answers_the_same_for_an_unknown_name_and_a_wrong_password(
    run: Invoke, database: Database
) -> None:
    run("users", "create", "alice", "--role", "owner", "--password", GOOD)
    with database.sessions.begin() as session:
        assert service.authenticate(session, "alice", OTHER) is None
        assert service.authenticate(session, "nobody", GOOD) is None
        assert service.authenticate(session, "not a name!", GOOD) is None


def test_delete_removes_a_member_but_never_the_owner(run: Invoke, database: Database) -> None:
    run("users", "create", "alice", "--role", "owner", "--password", GOOD)
    run("users", "create", "bob", "--role", "member", "--password", OTHER)
    assert run("users", "delete", "bob", "--yes").exit_code == 0
    assert stored(database, "bob") is None
    owner = run("users", "delete", "alice", "--yes")
    assert owner.exit_code == 1
    assert "is the owner and cannot be deleted" in owner.output
    missing = run("users", "delete", "zed", "--yes")
    assert missing.exit_code == 1
    assert "no account named 'zed'" in missing.output


def test_password_flags_are_checked_before_the_database_is_touched(run: Invoke) -> None:
    both = run("users", "create", "a", "--role", "owner", "--password", GOOD, "--password-stdin")
    assert both.exit_code == 2
    assert "not both" in both.output
    empty = run("users", "create", "a", "--role", "owner", "--password-stdin", input="")
    assert empty.exit_code == 2
    assert "standard input is empty" in empty.output


def test_no_password_reaches_a_log_line(
    run: Invoke, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG):
        run("users", "create", "alice", "--role", "owner", "--password", GOOD)
        run("users", "reset-password", "alice", "--password", OTHER)
        run("users", "create", "bob", "--role", "member", "--password", "password1234")
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert GOOD not in text
        assert OTHER not in text
        assert "password1234" not in text
