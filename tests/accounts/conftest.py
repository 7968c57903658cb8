"""Fixtures for the account commands: `run` invokes `parcelwatch` on the test database."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import Result
from typer.testing import CliRunner

from parcelwatch.cli.main import app
from parcelwatch.config import Settings

Invoke = Callable[..., Result]
GOOD = "correct horse battery staple"
OTHER = "a different long passphrase"


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke
