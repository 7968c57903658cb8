"""`parcelwatch tokens`: a token is printed once, stored only as a hash, listed by its prefix,
checked live (not revoked, not expired), and admin scope is for the owner and admins only."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from parcelwatch.accounts.tokens import TOKEN_PREFIX, check_token
from parcelwatch.domain import utcnow
from parcelwatch.models import ApiToken
from tests.accounts.conftest import GOOD, OTHER, Invoke
from tests.conftest import Database


@pytest.fixture
def people(run: Invoke) -> None:
    assert run("users", "create", "alice", "--role", "owner", "--password", GOOD).exit_code == 0
    assert run("users", "create", "bob", "--role", "member", "--password", OTHER).exit_code == 0


def created(run: Invoke, *args: str) -> dict[str, object]:
    result = run("tokens", "create", *args, "--json")
    assert result.exit_code == 0, result.output
    document: dict[str, object] = json.loads(result.output)
    return document


@pytest.mark.usefixtures("people")
def test_a_token_is_shown_once_and_only_its_hash_is_stored(
    run: Invoke,
    database: Database,
) -> None:
    document = created(run, "--user", "bob", "--scope", "read", "--name", "home-assistant")
    secret = str(document["token"])
    assert secret.startswith(TOKEN_PREFIX)
    assert len(secret) == len(TOKEN_PREFIX) + 43
    assert (document["user"], document["scope"], document["name"]) == (
        "bob",
        "read",
        "home-assistant",
    )
    with database.sessions() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in (row.token_hash, row.prefix, row.name)
    listed = run("tokens", "list", "--json")
    assert secret not in listed.output
    assert json.loads(listed.output)[0]["prefix"] == secret[:12]
    table = run("tokens", "list")
    assert "home-assistant" in table.output
    assert secret not in table.output
    plain = run("tokens", "create", "--user", "alice", "--scope", "write")
    assert "it is not shown again" in plain.output


@pytest.mark.usefixtures("people")
def test_a_live_token_checks_and_a_revoked_or_expired_one_does_not(
    run: Invoke,
    database: Database,
) -> None:
    live = str(created(run, "--user", "bob", "--scope", "write")["token"])
    doomed = created(run, "--user", "bob", "--scope", "read")
    expiring = created(run, "--user", "alice", "--scope", "admin", "--expires", "30d")
    assert expiring["expires_at"] is not None
    with database.sessions.begin() as session:
        token = check_token(session, live)
        assert token is not None
        assert token.user.name == "bob"
        assert check_token(session, live[:-1] + ("A" if live[-1] != "A" else "B")) is None
        assert check_token(session, "not-a-token") is None
    revoked = run("tokens", "revoke", str(doomed["id"]))
    assert revoked.exit_code == 0, revoked.output
    with database.sessions.begin() as session:
        assert check_token(session, str(doomed["token"])) is None
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == expiring["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with database.sessions.begin() as session:
        assert check_token(session, str(expiring["token"])) is None
    states = {t["id"]: t["revoked_at"] for t in json.loads(run("tokens", "list", "--json").output)}
    assert states[doomed["id"]] is not None


@pytest.mark.usefixtures("people")
def test_admin_scope_is_refused_to_a_member_and_bad_input_names_the_problem(
    run: Invoke,
    database: Database,
) -> None:
    member = run("tokens", "create", "--user", "bob", "--scope", "admin")
    assert member.exit_code == 1
    assert "only the owner and admins get admin tokens" in member.output
    nobody = run("tokens", "create", "--user", "zed", "--scope", "read")
    assert nobody.exit_code == 1
    assert "no account named 'zed'" in nobody.output
    when = run("tokens", "create", "--user", "bob", "--scope", "read", "--expires", "soon")
    assert when.exit_code == 2
    assert "--expires" in when.output
    missing = run("tokens", "revoke", "999")
    assert missing.exit_code == 1
    assert "no API token with id 999" in missing.output
    with database.sessions() as session:
        assert session.scalars(select(ApiToken)).all() == []


@pytest.mark.usefixtures("people")
def test_deleting_an_account_deletes_its_tokens(
    run: Invoke,
    database: Database,
) -> None:
    secret = str(created(run, "--user", "bob", "--scope", "read")["token"])
    assert run("users", "delete", "bob", "--yes").exit_code == 0
    with database.sessions.begin() as session:
        assert check_token(session, secret) is None
        assert session.scalars(select(ApiToken)).all() == []
