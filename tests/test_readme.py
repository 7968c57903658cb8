"""The README's reference tables say what the code does: every setting, command, option and
route is listed, and nothing listed is missing from the code."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from parcelwatch.api.auth import required_scope
from parcelwatch.cli.main import app as cli_app
from parcelwatch.config import Settings, parse_duration

README = Path(__file__).resolve().parents[1] / "README.md"
ENV_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")
ROUTE = re.compile(r"^`(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`$")
# Served outside the OpenAPI schema, so checked by asking the app.
ROUTES_OUTSIDE_SCHEMA = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


def section(title: str) -> str:
    """The README text under the `## title` heading, up to the next `## ` heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with `| header |`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_configuration_table_lists_every_setting_and_nothing_else() -> None:
    rows = table_rows(section("Configuration reference"), "Variable")
    documented = [name for row in rows for name in ENV_NAME.findall(row[0])]
    settings = {name.upper() for name in Settings.model_fields}

    assert sorted(set(documented)) == sorted(settings)
    assert len(documented) == len(set(documented)), "a variable is listed twice"


def test_configuration_table_defaults_match_the_settings() -> None:
    """Where the table gives a literal default, it is the field's default."""
    defaults = {
        name.upper(): field.get_default(call_default_factory=True)
        for name, field in Settings.model_fields.items()
    }
    for row in table_rows(section("Configuration reference"), "Variable"):
        names = ENV_NAME.findall(row[0])
        if not names or not row[1].startswith("`"):
            continue
        shown = row[1].split("`")[1]
        default = defaults[names[0]]
        if isinstance(default, bool):
            assert shown == str(default).lower(), names[0]
        elif isinstance(default, float):
            assert float(shown) == pytest.approx(default, rel=0.01), names[0]
        elif isinstance(default, timedelta):
            assert parse_duration(shown) == default, names[0]
        else:
            assert shown == str(default), names[0]


def _commands(group: Any, prefix: str = "") -> dict[str, Any]:
    """Every runnable command by its path (`shipments add`). Typer vendors click, so a group
    is told apart by its `commands`."""
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            found.update(_commands(command, f"{path} "))
        else:
            found[path] = command
    return found


def _command_rows() -> dict[str, str]:
    """Each row's command path (`shipments add`) and its usage cell."""
    by_command: dict[str, str] = {}
    for cells in table_rows(section("Command line"), "Command"):
        usage = cells[0].strip("`")
        path = []
        for word in usage.removeprefix("parcelwatch ").split():
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            path.append(word)
        by_command[" ".join(path)] = usage
    return by_command


def test_command_table_lists_every_command_with_every_option() -> None:
    commands = _commands(typer.main.get_command(cli_app))
    rows = _command_rows()

    assert sorted(rows) == sorted(commands)
    for path, command in commands.items():
        for parameter in command.params:
            if parameter.param_type_name != "option" or parameter.name == "help":
                continue
            for option in (*parameter.opts, *parameter.secondary_opts):
                if option.startswith("--"):
                    assert option in rows[path], f"`parcelwatch {path}` row lacks {option}"


def _documented_routes() -> set[tuple[str, str]]:
    routes = set()
    for cells in table_rows(section("REST API and dashboard"), "Method and path"):
        match = ROUTE.match(cells[0])
        assert match, f"not a `METHOD /path` cell: {cells[0]}"
        routes.add((match[1], match[2]))
    return routes


def test_api_table_lists_every_operation_of_the_openapi_schema(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    operations = {
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        for method in methods
        if method != "options"  # every path has it: one sentence under the table says so
    }

    assert _documented_routes() - ROUTES_OUTSIDE_SCHEMA == operations
    assert all("options" in methods for methods in schema["paths"].values())
    assert "`OPTIONS` on any path" in section("REST API and dashboard")


def _needs_column() -> dict[tuple[str, str], str]:
    needs = {}
    for cells in table_rows(section("REST API and dashboard"), "Method and path"):
        match = ROUTE.match(cells[0])
        assert match, f"not a `METHOD /path` cell: {cells[0]}"
        needs[(match[1], match[2])] = cells[1]
    return needs


def test_api_table_names_the_scope_each_route_needs(api: TestClient) -> None:
    documented = _needs_column()
    for context in iter_route_contexts(api.app.routes):  # type: ignore[attr-defined]
        route = context.route
        if not isinstance(route, APIRoute) or not context.path.startswith("/api"):
            continue
        scope = required_scope(route.dependant)
        for method in context.methods or ():
            key = (method, context.path)
            if key in documented:
                expected = scope.value if scope else "signature"
                assert documented[key] == expected, f"{key}: README says {documented[key]}"


def test_api_table_routes_outside_the_schema_are_served(api: TestClient) -> None:
    assert ROUTES_OUTSIDE_SCHEMA <= _documented_routes()
    for method, path in sorted(ROUTES_OUTSIDE_SCHEMA):
        assert api.request(method, path).status_code not in (404, 405), path


def test_readme_has_no_repeated_heading() -> None:
    headings, in_code = [], False
    for line in README.read_text(encoding="utf-8").splitlines():
        in_code ^= line.startswith("```")
        if line.startswith("#") and not in_code:
            headings.append(line)

    assert len(headings) == len(set(headings))
