"""Stopping background tasks that make redis-py calls (matching/tasks.py)."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aioredis

from matching.tasks import stop_task
from tests.support.procs import RedisServer


@pytest.mark.redis
async def test_a_task_looping_over_redis_calls_is_stopped(redis_server: RedisServer) -> None:
    """Thirty tasks that PUBLISH in a loop, each stopped at a random moment, all end
    within the bound. One cancel is not enough: counted here, redis-py's write inside
    asyncio.wait_for (Python 3.11) swallows some of them and the loop carries on."""
    r = aioredis.Redis.from_url(redis_server.url, socket_timeout=2)
    swallowed = 0
    loop = asyncio.get_running_loop()
    try:
        for _ in range(30):
            calls = 0

            async def publish_forever() -> None:
                nonlocal calls
                while True:
                    await r.publish("hearth:test:tasks", b"x" * 400)
                    calls += 1

            task = asyncio.create_task(publish_forever())
            # Once it is making calls (the first one connects: slow on a busy
            # machine), stop it at a random moment of its loop.
            deadline = loop.time() + 5
            while calls == 0 and loop.time() < deadline:
                await asyncio.sleep(0.001)
            assert calls > 0
            await asyncio.sleep(random.uniform(0.002, 0.01))
            started = loop.time()
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
            swallowed += not task.done()
            await stop_task(task)
            assert task.done()
            assert loop.time() - started < 2
    finally:
        await r.aclose()
    print(f"cancels swallowed by redis-py: {swallowed} of 30")


async def test_stop_task_returns_for_none_and_for_a_task_that_failed() -> None:
    """Nothing to stop, and a task that already failed: its exception is retrieved."""
    await stop_task(None)

    async def fail() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(fail())
    await asyncio.sleep(0)
    await stop_task(task)
    assert isinstance(task.exception(), ValueError)
