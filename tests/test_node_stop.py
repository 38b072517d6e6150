"""A node that has stopped does nothing more, though its process may live on (an
embedder's, or a test's): a seat's resume window that runs out later does not end
the seat, which another node may resume from the directory, and nothing it does
tells Redis it is alive again."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from chatserver import tokens
from tests.conftest import TEST_ARGS
from tests.support.client import Client, listener, seeker
from tests.support.inprocess import InProcess
from tests.support.procs import RedisServer

RESUME_S = float(TEST_ARGS[TEST_ARGS.index("--resume-s") + 1])


async def test_a_stopped_node_leaves_its_seats_for_another_node(
        redis_server: RedisServer) -> None:
    admin = aioredis.Redis.from_url(redis_server.url)
    await admin.flushdb()
    first = await InProcess("--redis", redis_server.url).start()
    second: InProcess | None = None
    try:
        lst = await listener(first.url, tokens.issue(first.settings.secret, "listener", "L", 1),
                             topics=["grief"])
        s = await seeker(first.url, topic="anxiety")  # nobody on shift covers it: it waits
        await s.expect("queued")
        token = s.resume
        me = first.settings.node_id
        await first.stop()  # the server closes every connection (1012) and the node stops
        await asyncio.sleep(RESUME_S + 1.0)  # the seats' resume windows run out meanwhile
        assert await admin.exists(f"hearth:node:{me}") == 0, "the stopped node is gone"
        seat = await admin.get(f"hearth:resume:{tokens.digest(token)}")
        assert seat is not None and await admin.exists(f"hearth:seat:{seat.decode()}") == 1
        second = await InProcess("--redis", redis_server.url,
                                 secret=first.settings.secret).start()
        back = await Client.connect(second.url)
        await back.hello(resume=token)
        assert (await back.expect("queued"))["position"] == 1
        await back.close()
        assert await lst.closed() == 1012  # the stopping server's "come back soon"
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
        await admin.aclose()
