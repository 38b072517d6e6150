"""Coalesced: many pokes, one run, at most one per gap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chatserver.coalesce import Coalesced


async def _until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_pokes_in_one_turn_run_the_callback_once_in_the_next() -> None:
    """Ten pokes before the loop turns give one run, and not from inside poke."""
    runs: list[float] = []
    c = Coalesced(lambda: runs.append(asyncio.get_running_loop().time()), 0.2)
    for _ in range(10):
        c.poke()
    assert runs == []
    await asyncio.sleep(0)
    assert len(runs) == 1


async def test_a_poke_within_the_gap_runs_once_when_the_gap_is_over() -> None:
    """After a run, pokes within gap_s are served by one run gap_s after it."""
    loop = asyncio.get_running_loop()
    runs: list[float] = []
    c = Coalesced(lambda: runs.append(loop.time()), 0.2)
    c.poke()
    await _until(lambda: len(runs) == 1)
    c.poke()
    c.poke()
    await asyncio.sleep(0.1)
    assert len(runs) == 1
    await _until(lambda: len(runs) == 2)
    assert runs[1] - runs[0] >= 0.2 - 0.01
    await asyncio.sleep(0.3)
    assert len(runs) == 2


async def test_cancel_drops_the_pending_run() -> None:
    """A cancelled pending run never happens; a later poke schedules a new one."""
    runs: list[int] = []
    c = Coalesced(lambda: runs.append(1), 0.05)
    c.poke()
    c.cancel()
    await asyncio.sleep(0.1)
    assert runs == []
    c.poke()
    await _until(lambda: runs == [1])
