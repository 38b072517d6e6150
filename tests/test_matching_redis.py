"""What only the shared (Redis) matcher has: several nodes, presence, races, resets."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from chatserver import seal
from matching import Listener, Matcher, MatchingError, NoteSealer, Ticket, open_matcher
from matching.redis import subscribe_forever
from tests.support.procs import RedisServer

pytestmark = pytest.mark.redis

Opened = Callable[..., Awaitable[Matcher]]


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[Opened]:
    """Open matchers that share the session's (flushed) redis, one per node id."""
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushdb()
    await client.aclose()
    opened: list[Matcher] = []

    async def open_(node: str, url: str = redis_server.url,
                    on_change: Callable[[], None] = lambda: None,
                    notes: NoteSealer | None = None) -> Matcher:
        m = open_matcher(url, node, notes)
        await m.start(on_change)
        opened.append(m)
        return m

    yield open_
    for m in opened:
        await m.close()


async def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def test_seeker_on_one_node_pairs_with_listener_on_another(nodes: Opened) -> None:
    """A seeker queued through node a is taken by a listener shifting through node b."""
    a, b = await nodes("a"), await nodes("b")
    assert await a.request(Ticket("s1", "a", note="hello")) == []
    matches = await b.set_shift(Listener("l1", "b"))
    assert [(m.ticket.seat, m.ticket.node, m.ticket.note, m.listener, m.listener_node)
            for m in matches] == [("s1", "a", "hello", "l1", "b")]


async def test_a_waiting_note_is_sealed_in_redis_and_opened_by_the_pairing_node(
        nodes: Opened, redis_server: RedisServer) -> None:
    """With a sealer, the ticket holds the note sealed; another node with the same
    secret opens it when it pairs the seeker; one with another secret pairs it
    without the note (it cannot read it)."""
    same = seal.Sealer(seal.secret_key("shared secret", "note"))
    other = seal.Sealer(seal.secret_key("another secret", "note"))
    a = await nodes("a", notes=same)
    b = await nodes("b", notes=seal.Sealer(seal.secret_key("shared secret", "note")))
    c = await nodes("c", notes=other)
    note = "cannot sleep since the move"
    assert await a.request(Ticket("s1", "a", note=note)) == []
    assert await a.request(Ticket("s2", "a", note=note)) == []
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        kept = await client.hget("hearth:ticket:s1", "note")
    finally:
        await client.aclose()
    assert kept is not None and note.encode() not in kept
    assert same.open_text(kept.decode(), "s1") == note
    assert same.open_text(kept.decode(), "s2") is None  # bound to its seat
    assert [m.ticket.note for m in await b.set_shift(Listener("l1", "b"))] == [note]
    assert [m.ticket.note for m in await c.set_shift(Listener("l2", "c"))] == [None]
    assert await a.request(Ticket("s3", "a", note="mine")) == []
    assert [m.ticket.note for m in await a.set_shift(Listener("l3", "a"))] == ["mine"]


async def test_racing_nodes_never_exceed_capacity_or_double_match(nodes: Opened) -> None:
    """Concurrent requests and shifts through three nodes: one listener per seeker, capacity
    held."""
    ms = [await nodes(f"n{i}") for i in range(3)]
    shifts = [ms[i % 3].set_shift(Listener(f"l{i}", f"n{i % 3}", capacity=2)) for i in range(5)]
    requests = [ms[i % 3].request(Ticket(f"s{i}", f"n{i % 3}")) for i in range(30)]
    results = await asyncio.gather(*shifts, *requests)
    matches = [m for batch in results for m in batch]
    seekers = [m.ticket.seat for m in matches]
    assert len(seekers) == len(set(seekers)) == 10
    per_listener: dict[str, int] = {}
    for m in matches:
        per_listener[m.listener] = per_listener.get(m.listener, 0) + 1
    assert per_listener == {f"l{i}": 2 for i in range(5)}
    assert (await ms[0].stats()).waiting == 20


async def test_waiters_of_a_dead_node_are_never_matched(nodes: Opened,
                                                        redis_server: RedisServer) -> None:
    """When a node's presence key is gone its seekers vanish instead of being paired."""
    a, b = await nodes("a"), await nodes("b")
    await a.request(Ticket("dead", "a"))
    await b.request(Ticket("alive", "b"))
    await a.close()  # a stops refreshing (and removes) its presence
    matches = await b.set_shift(Listener("l1", "b", capacity=2))
    assert [m.ticket.seat for m in matches] == ["alive"]
    assert (await b.stats()).waiting == 0


async def test_other_nodes_hear_of_changes(nodes: Opened) -> None:
    """A change through one node calls on_change on the others."""
    heard: list[int] = []
    await nodes("a", on_change=lambda: heard.append(1))
    b = await nodes("b")
    await asyncio.sleep(0.2)  # let a's subscriber settle
    heard.clear()
    await b.request(Ticket("s1", "b"))
    await wait_for(lambda: bool(heard))


async def test_subscriber_survives_client_kill(nodes: Opened, redis_server: RedisServer) -> None:
    """After CLIENT KILL TYPE pubsub the subscriber reconnects and hears changes again."""
    heard: list[int] = []
    await nodes("a", on_change=lambda: heard.append(1))
    b = await nodes("b")
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        await wait_for(lambda: bool(heard))
        await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await asyncio.sleep(0.5)
        heard.clear()

        async def subscribed() -> bool:
            return bool((await admin.pubsub_numsub("hearth:queue"))[0][1] >= 2)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not await subscribed():
            assert loop.time() < deadline
            await asyncio.sleep(0.05)
        heard.clear()
        await b.request(Ticket("s1", "b"))
        await wait_for(lambda: bool(heard))
    finally:
        await admin.aclose()


async def test_subscriber_notices_a_silent_redis_and_subscribes_again() -> None:
    """A Redis that stops answering but leaves the connection open (SIGSTOP: the kernel
    keeps the socket, as a network cut that sent no reset does) is noticed by the
    subscriber's PING, which goes unanswered: it drops the connection and subscribes
    again once Redis answers. A busy or a quiet but live subscription stays as it is."""
    server = RedisServer().start()
    assert server.proc is not None
    client = aioredis.Redis.from_url(server.url, socket_timeout=2)
    heard: list[bytes] = []
    connected: list[int] = []
    task = asyncio.create_task(subscribe_forever(
        client, ("t",), lambda channel, data: heard.append(data), lambda: connected.append(1),
        "test", ping_s=0.2))
    try:
        await wait_for(lambda: len(connected) == 1)
        for i in range(30):  # busy for 1.5 s: never pinged, never dropped
            await client.publish("t", str(i))
            await asyncio.sleep(0.05)
        await wait_for(lambda: len(heard) == 30)
        await asyncio.sleep(1.0)  # quiet for 5 ticks: pinged, answered, kept
        assert len(connected) == 1
        server.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(1.5)  # more than 3 ticks: the PING went unanswered
        server.proc.send_signal(signal.SIGCONT)
        await wait_for(lambda: len(connected) == 2, timeout=15)
        await client.publish("t", "after")
        await wait_for(lambda: heard[-1:] == [b"after"])
        assert heard[:30] == [str(i).encode() for i in range(30)]
    finally:
        server.proc.send_signal(signal.SIGCONT)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()
        server.stop()


async def test_unreachable_redis_raises_matching_error_and_restart_resyncs(
        nodes: Opened) -> None:
    """With redis down calls raise MatchingError and ready() is False; when it comes back
    empty the node's resync callback runs and the re-registered state pairs again."""
    own = RedisServer().start()
    try:
        a = await nodes("a", own.url)
        b = await nodes("b", own.url)
        resyncs: list[str] = []

        async def resync_a() -> None:
            resyncs.append("a")
            await a.request(Ticket("s1", "a"), head=True)

        async def resync_b() -> None:
            resyncs.append("b")

        a.set_resync(resync_a)
        b.set_resync(resync_b)
        await a.request(Ticket("s1", "a"))
        own.stop()
        assert not await a.ready()
        with pytest.raises(MatchingError):
            await a.request(Ticket("s2", "a"))
        own.start()  # same port, empty
        await wait_for(lambda: {"a", "b"} <= set(resyncs), 15)
        assert await a.ready()
        matches = await b.set_shift(Listener("l1", "b"))
        assert [m.ticket.seat for m in matches] == ["s1"]
    finally:
        own.stop()


async def test_every_key_has_a_ttl(nodes: Opened, redis_server: RedisServer) -> None:
    """After queueing, shifting, pairing and ending rooms, no key lacks a TTL."""
    a = await nodes("a")
    await a.request(Ticket("s1", "a", "crisis", "grief", "en", "first words"))
    await a.request(Ticket("s2", "a"), head=True)
    matches = await a.set_shift(Listener("l1", "a", capacity=1))
    await a.hold("l1", 0)
    await a.room_ended(matches[0].room)
    await a.set_shift(Listener("l2", "a", status="break"))
    await a.stats()
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        keys = [k async for k in admin.scan_iter("*")]
        assert keys
        assert [k for k in keys if await admin.ttl(k) == -1] == []
    finally:
        await admin.aclose()


async def test_a_listener_record_of_an_earlier_version_keeps_its_fair_place(
        nodes: Opened, redis_server: RedisServer) -> None:
    """The scripts keep a listener's free_since and order as the fixed-width text of its
    entry in the order of fairness; a record written before (free_since as Python's
    repr, order unpadded) is formatted when its entry is made again."""
    a = await nodes("a")
    await a.set_shift(Listener("l1", "a", capacity=2))
    await a.set_shift(Listener("l2", "a", capacity=2))
    admin = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await admin.hset("hearth:listener:l1", mapping={"free_since": "1700000000.5",
                                                        "order": "1"})
        (m1,) = await a.request(Ticket("s1", "a"))
        assert m1.listener == "l1"  # free the longest: first on shift
        free = await admin.zrange("hearth:free", 0, -1)
        assert free[1] == "000001|1700000000.5000000|000000000001|l1"  # one room now
        assert [len(entry.split("|")[1]) for entry in free] == [18, 18]
        await a.room_ended(m1.room)  # free again, since now: after l2
        assert [m.listener for m in await a.request(Ticket("s2", "a"))] == ["l2"]
    finally:
        await admin.aclose()


async def test_a_pairings_calls_made_together_run_as_one_script(
        nodes: Opened, redis_server: RedisServer) -> None:
    """Requests and room ends made in the same turn go to Redis as one call of the
    batch script and run in call order, each as it would alone; with the scripts
    flushed (a Redis restart), the batch script is loaded again and run."""
    a = await nodes("a")
    for i in range(3):
        await a.set_shift(Listener(f"l{i}", "a", capacity=1))
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        await admin.config_resetstat()
        asked = await asyncio.gather(*(a.request(Ticket(f"s{i}", "a")) for i in range(5)))
        evalsha = (await admin.info("commandstats"))["cmdstat_evalsha"]["calls"]
        assert evalsha <= 2, evalsha  # the batch, and perhaps a heartbeat
        assert [[m.listener for m in r] for r in asked] == [["l0"], ["l1"], ["l2"], [], []]
        await admin.script_flush()
        ended = await asyncio.gather(a.room_ended(asked[1][0].room),
                                     a.room_ended(asked[0][0].room))
        assert [[(m.ticket.seat, m.listener) for m in e] for e in ended] == [
            [("s3", "l1")], [("s4", "l0")]]  # the first waiting, the first freed
    finally:
        await admin.aclose()


async def test_listeners_of_a_dead_node_or_lost_record_are_never_matched(
        nodes: Opened, redis_server: RedisServer) -> None:
    """A listener whose node is gone, or whose record expired, is skipped by a request."""
    a, b = await nodes("a"), await nodes("b")
    await a.set_shift(Listener("gone-node", "a"))
    await b.set_shift(Listener("lost-record", "b"))
    await b.set_shift(Listener("fine", "b"))
    await a.close()
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        await admin.delete("hearth:listener:lost-record")
        matches = await b.request(Ticket("s1", "b"))
        assert [m.listener for m in matches] == ["fine"]
        assert await b.request(Ticket("s2", "b")) == []
        free = await admin.zrange("hearth:free", 0, -1)
        assert free == []  # the stale entries went, and "fine" is full
    finally:
        await admin.aclose()


async def test_changes_are_published_only_when_another_node_listens(
        nodes: Opened, redis_server: RedisServer) -> None:
    """A node alone publishes nothing; once a second node is up, its changes are published."""
    admin = aioredis.Redis.from_url(redis_server.url, decode_responses=True)

    async def publishes() -> int:
        stats = await admin.info("commandstats")
        return int(stats.get("cmdstat_publish", {}).get("calls", 0))

    try:
        a = await nodes("a")
        before = await publishes()
        await a.request(Ticket("s1", "a"))
        assert await publishes() == before
        await nodes("b")
        await a.request(Ticket("s2", "a"))
        assert await publishes() == before + 1
    finally:
        await admin.aclose()
