"""The request transaction gate: at most `capacity` open at once, a freed place goes to a
waiting writer before waiting readers, and a request cancelled while waiting (a client that
went away) neither keeps a place nor loses one."""

from __future__ import annotations

import asyncio

import pytest

from parcelwatch.api.deps import TransactionGate

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_waiting_writer_gets_the_next_place_before_readers_queued_earlier() -> None:
    gate = TransactionGate(capacity=2)
    order: list[str] = []
    release = asyncio.Event()

    async def request(name: str, *, write: bool) -> None:
        async with gate.turn(write=write):
            order.append(name)
            await release.wait()

    holders = [asyncio.create_task(request(f"hold{i}", write=False)) for i in range(2)]
    await asyncio.sleep(0)
    readers = [asyncio.create_task(request(f"read{i}", write=False)) for i in range(3)]
    await asyncio.sleep(0)
    writer = asyncio.create_task(request("write", write=True))
    await asyncio.sleep(0.01)
    assert order == ["hold0", "hold1"]  # everyone else waits
    release.set()
    await asyncio.gather(*holders, *readers, writer)
    assert order[2] == "write"
    assert order[3:] == ["read0", "read1", "read2"]


async def test_at_most_capacity_at_once_and_cancelled_waiters_lose_no_place() -> None:
    gate = TransactionGate(capacity=3)
    inside = peak = 0

    async def request(seconds: float) -> None:
        nonlocal inside, peak
        async with gate.turn(write=False):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(seconds)
            inside -= 1

    slow = [asyncio.create_task(request(0.05)) for _ in range(3)]
    await asyncio.sleep(0)
    gone = [asyncio.create_task(request(0)) for _ in range(5)]
    await asyncio.sleep(0)
    for task in gone:
        task.cancel()
    await asyncio.gather(*slow)
    await asyncio.gather(*gone, return_exceptions=True)
    assert peak == 3
    # Every place came back: three more fit at once, and a fourth still waits.
    await asyncio.wait_for(asyncio.gather(*(request(0) for _ in range(10))), 1)
    assert inside == 0
