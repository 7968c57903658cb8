"""Fixtures for the carrier tests: real payloads and a scripted carrier over MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "carrier-samples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sample(carrier: str, name: str) -> Any:
    """A carrier's real payload from tests/fixtures/carrier-samples/<carrier>/<name>.json."""
    return json.loads((SAMPLES / carrier / f"{name}.json").read_text())


def sample_bytes(carrier: str, name: str) -> bytes:
    return (SAMPLES / carrier / f"{name}.json").read_bytes()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


Handler = Callable[[httpx.Request], httpx.Response]


def reply(
    status: int = 200,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> Handler:
    """A handler answering every request with a fresh response."""

    def answer(_request: httpx.Request) -> httpx.Response:
        if content is not None:
            return httpx.Response(status, content=content, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return answer


class Recorder:
    """An `httpx.MockTransport` handler that records requests and answers by route."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Handler]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, path: str, *answers: Handler) -> None:
        """Answer requests to `path` with `answers` in turn (the last one repeats)."""
        self.routes[path] = list(answers)

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answers = self.routes.get(request.url.path)
        if not answers:
            return httpx.Response(599, text=f"no route for {request.url.path}")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(request)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def http(recorder: Recorder) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        yield client
