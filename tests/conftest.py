"""Fixtures: real servers on free ports, a real redis-server, matcher backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests.support.procs import RedisServer, Server

# Short limits so resume, idle and cool-down tests take seconds, not minutes.
TEST_ARGS = ("--resume-s", "1.5", "--hello-timeout-s", "1", "--cooldown-s", "1")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; tests that stop it restart it."""
    r = RedisServer().start()
    yield r
    r.stop()


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    """Start servers with extra flags; all are stopped after the test."""
    started: list[Server] = []

    def make(*args: str, **kw: object) -> Server:
        s = Server(*TEST_ARGS, *args, **kw).start()  # type: ignore[arg-type]
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    """A fresh embedded server for one test."""
    return make_server()


@pytest.fixture(scope="session")
def shared_server() -> Iterator[Server]:
    """One embedded server for tests that keep to themselves (pages, limits)."""
    s = Server(*TEST_ARGS).start()
    yield s
    s.stop()


BACKENDS = ["memory", "redis"]


@pytest.fixture(params=BACKENDS)
async def matcher(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    """Each matching test runs against every backend."""
    from matching import open_matcher

    if request.param == "memory":
        m = open_matcher(None, "node-a")
    else:
        import redis.asyncio as aioredis

        r: RedisServer = request.getfixturevalue("redis_server")
        client = aioredis.Redis.from_url(r.url)
        await client.flushdb()
        await client.aclose()
        m = open_matcher(r.url, "node-a")
    await m.start(lambda: None)
    yield m
    await m.close()
