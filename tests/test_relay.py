"""The relay between nodes: memory and Redis backends."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis

from chatserver import relay_redis
from chatserver.relay import Relay, SeatSave, open_relay, pack_frame, unpack_frame
from tests.support.procs import RedisServer
from tests.support.wait import eventually


async def test_memory_relay_delivers_only_to_itself() -> None:
    """A node alone gets its own events on the next loop turn and has no directory."""
    got: list[dict[str, Any]] = []
    relay = open_relay(None, "solo")
    await relay.start(got.append)
    relay.post("solo", {"k": "x"})
    relay.post("other", {"k": "y"})
    await asyncio.sleep(0)
    assert got == [{"k": "x"}]
    assert await relay.claim("digest") is None
    assert await relay.alive({"solo", "other"}) == {"solo"}
    await relay.close()


@pytest.mark.redis
async def test_redis_relay_orders_events_and_keeps_a_seat_directory(
        redis_server: RedisServer) -> None:
    """Events to a node arrive in order with their sender; a resume digest is spent once."""
    admin = aioredis.Redis.from_url(redis_server.url)
    await admin.flushdb()
    a, b = open_relay(redis_server.url, "a"), open_relay(redis_server.url, "b")
    got: list[dict[str, Any]] = []
    await a.start(lambda e: None)
    await b.start(got.append)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while [e for e in got if e["k"] == "reconnected"] == [] or \
                (await admin.pubsub_numsub("hearth:inbox:b"))[0][1] == 0:
            assert loop.time() < deadline
            await asyncio.sleep(0.02)
        frame = pack_frame({"type": "message", "text": "x"})
        for i in range(50):
            a.post("b", {"k": "out", "i": i, "f": frame})
        while len([e for e in got if e["k"] == "out"]) < 50:
            assert loop.time() < deadline + 5
            await asyncio.sleep(0.02)
        outs = [e for e in got if e["k"] == "out"]
        assert [e["i"] for e in outs] == list(range(50))
        assert {e["from"] for e in outs} == {"a"}
        assert unpack_frame(outs[0]["f"])["type"] == "message"
        # A node reads both forms on the wire: one event, or an array of them.
        await admin.publish("hearth:inbox:b", msgpack.packb({"k": "one", "from": "z"}))
        await admin.publish("hearth:inbox:b", msgpack.packb(
            [{"k": "two", "from": "z"}, {"k": "three", "from": "z"}, {"k": "own", "from": "b"}]))
        while [e["k"] for e in got if e["k"] in ("one", "two", "three")] != ["one", "two", "three"]:
            assert loop.time() < deadline + 10
            await asyncio.sleep(0.02)
        assert "own" not in [e["k"] for e in got]  # its own events are not delivered back
        # Junk on an inbox (only something else with access to Redis could put it
        # there) is dropped, and the subscription kept.
        reconnects = [e["k"] for e in got].count("reconnected")
        await admin.publish("hearth:inbox:b", b"\xc1 not msgpack")
        await admin.publish("hearth:inbox:b", msgpack.packb({"k": "odd", "from": ["x"], "n": 1}))
        await admin.publish("hearth:inbox:b", msgpack.packb({"k": "four", "from": "z", "n": 1}))
        while "four" not in [e["k"] for e in got]:
            assert loop.time() < deadline + 15
            await asyncio.sleep(0.02)
        assert [e["k"] for e in got].count("reconnected") == reconnects

        await a.save_seats([SeatSave("s1", {"role": "seeker", "alias": "Quiet Fox"}, "d1")])
        claimed = await b.claim("d1")
        assert claimed is not None and claimed[0] == "s1" and claimed[1]["node"] == "a"
        assert await b.claim("d1") is None
        await admin.set("hearth:node:a", "1", ex=5)
        assert await b.alive({"a", "zzz"}) == {"a"}
        assert all([await admin.ttl(k) > 0 async for k in admin.scan_iter("hearth:*")])
        await a.forget_seat("s1")
        assert await b.seat_record("s1") is None
    finally:
        await a.close()
        await b.close()
        await admin.aclose()


@pytest.mark.redis
async def test_redis_relay_holds_an_inbox_until_its_node_listens(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pub/sub forgets what nobody hears: events to a node whose subscriber is away
    (resubscribing after a restart) wait and arrive in order once it listens; a
    node that never listens has its events dropped after HOLD_S, memory freed."""
    monkeypatch.setattr(relay_redis, "HOLD_S", 4.0)  # margin for a slow start of b
    a = open_relay(redis_server.url, "ha")
    b = open_relay(redis_server.url, "hb")
    got: list[dict[str, Any]] = []
    await a.start(lambda e: None)
    try:
        for i in range(5):
            a.post("hb", {"k": "out", "i": i})
            a.post("nobody", {"k": "out", "i": i})
        await asyncio.sleep(0.5)  # published and unheard several times by now
        await b.start(got.append)
        a.post("hb", {"k": "out", "i": 5})
        await eventually(lambda: len([e for e in got if e["k"] == "out"]) == 6, 5, "held events")
        assert [e["i"] for e in got if e["k"] == "out"] == list(range(6))
        assert isinstance(a, relay_redis.RedisRelay)
        await eventually(lambda: a._held == {} and a._backlog == 0, 10, "the unheard inbox dropped")
    finally:
        await a.close()
        await b.close()


@pytest.mark.redis
async def test_redis_relay_holds_events_through_a_redis_restart() -> None:
    """Events posted while Redis is down are published when it is back, in order."""
    r = RedisServer().start()
    a, b = open_relay(r.url, "ra"), open_relay(r.url, "rb")
    got: list[dict[str, Any]] = []
    try:
        await a.start(lambda e: None)
        await b.start(got.append)
        await eventually(lambda: any(e["k"] == "reconnected" for e in got), 5, "b subscribed")
        r.stop()
        for i in range(3):
            a.post("rb", {"k": "out", "i": i})
        await eventually(lambda: not a.healthy, 5, "the relay to notice")
        r.start()  # the same port, empty
        await eventually(lambda: len([e for e in got if e["k"] == "out"]) == 3, 8, "held events")
        assert [e["i"] for e in got if e["k"] == "out"] == [0, 1, 2]
        assert a.healthy
    finally:
        await a.close()
        await b.close()
        r.stop()


@pytest.mark.redis
async def test_redis_relay_delivers_once_after_a_publish_timed_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis stalls (SIGSTOP) longer than a flush may wait: the flush times out and
    its events are held and published again, while its first write still waits in
    Redis's socket and runs when Redis wakes. Each event still arrives once, in
    order (before numbering, the stalled event arrived twice: a seeker's message
    forwarded to its room's home would have been posted twice). A sender that
    starts again under the same node id numbers afresh and is heard."""
    monkeypatch.setattr(relay_redis, "PUBLISH_TIMEOUT_S", 0.3)
    r = RedisServer().start()
    assert r.proc is not None
    a, b = open_relay(r.url, "sa"), open_relay(r.url, "sb")
    got: list[dict[str, Any]] = []

    def outs() -> list[int]:
        return [e["i"] for e in got if e["k"] == "out"]

    try:
        await a.start(lambda e: None)
        await b.start(got.append)
        await eventually(lambda: any(e["k"] == "reconnected" for e in got), 5, "b subscribed")
        a.post("sb", {"k": "out", "i": 0})
        await eventually(lambda: outs() == [0], 5, "the first event")
        r.proc.send_signal(signal.SIGSTOP)
        a.post("sb", {"k": "out", "i": 1})
        await asyncio.sleep(1.0)  # timed out (0.3 s), held, tried again and again
        a.post("sb", {"k": "out", "i": 2})
        r.proc.send_signal(signal.SIGCONT)
        await eventually(lambda: outs()[-1:] == [2], 8, "the held events")
        await asyncio.sleep(0.5)  # what else would come
        assert outs() == [0, 1, 2]
        await a.close()
        a = open_relay(r.url, "sa")  # the node again, a new life
        await a.start(lambda e: None)
        a.post("sb", {"k": "out", "i": 3})
        await eventually(lambda: outs() == [0, 1, 2, 3], 5, "the restarted sender")
    finally:
        r.proc.send_signal(signal.SIGCONT)
        await a.close()
        await b.close()
        r.stop()


async def test_event_numbers_stay_bounded_and_copies_are_still_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Node ids are new at every start, so the channels a relay numbers and the
    senders it has heard would grow with the other nodes' restarts: past the bound
    both are forgotten, the sender taking a new life id (so that its numbers from 1
    are not taken for copies), and a copy is still dropped afterwards."""
    monkeypatch.setattr(relay_redis, "_NUMBERED_MAX", 3)
    r = relay_redis.RedisRelay("redis://127.0.0.1:1/0", "me")  # never started
    for node in ("n1", "n2", "n3"):
        r.post(node, {"k": "x"})
    first_life = r._boot
    r.post("n4", {"k": "x"})
    assert len(r._numbered) == 1 and r._boot != first_life
    assert r._pending["hearth:inbox:n4"] == [{"k": "x", "from": "me", "b": r._boot, "n": 1}]
    r.post("n1", {"k": "x"})
    assert r._pending["hearth:inbox:n1"][-1]["n"] == 1
    assert r._pending["hearth:inbox:n1"][-1]["b"] == r._boot

    def event(sender: str, n: int, boot: str = "b0") -> dict[str, Any]:
        return {"k": "x", "from": sender, "b": boot, "n": n}

    channel = b"hearth:inbox:me"
    assert [r._fresh(channel, event(s, 1)) for s in ("s1", "s2", "s3")] == [True] * 3
    assert r._fresh(channel, event("s4", 1)) and len(r._heard) == 1  # forgotten, then s4
    assert not r._fresh(channel, event("s4", 1))  # a copy
    assert r._fresh(channel, event("s4", 1, boot="b1"))  # s4 started again
    assert r._fresh(channel, {"k": "x", "from": "old"})  # no number: an older node
    await r.close()


@pytest.mark.parametrize("first,then", [(1, 1), (1, 15), (2, 14), (15, 1), (16, 1), (3, 65533),
                                        (65535, 1), (65536, 2)])
def test_held_payloads_join_without_unpacking(first: int, then: int) -> None:
    """A held channel's payload and the next events' join into one payload that reads
    as all the events in order, across the array header's three sizes."""
    a = [{"k": "a", "i": i} for i in range(first)]
    b = [{"k": "b", "i": i} for i in range(then)]
    n, payload = relay_redis._join((first, relay_redis._pack(a)), (then, relay_redis._pack(b)))
    assert n == first + then
    assert msgpack.unpackb(payload, raw=False) == a + b


@pytest.mark.redis
async def test_a_busy_redis_relay_closes_promptly(redis_server: RedisServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """close() returns while events are still being posted and published. redis-py
    writes a command inside asyncio.wait_for (with a socket timeout), which on Python
    3.11 swallows a cancellation that lands as the write completes, and a writer that
    carried on after it kept a node's shutdown waiting forever. With no gap between
    flushes the writer is nearly always in a call; twenty relays, each closed mid-burst."""
    monkeypatch.setattr(relay_redis, "FLUSH_GAP_S", 0.0)
    loop = asyncio.get_running_loop()
    for _ in range(20):
        relay = open_relay(redis_server.url, "busy")
        await relay.start(lambda e: None)

        async def post_forever(relay: Relay) -> None:
            while True:
                relay.post("nobody", {"k": "out", "f": b"x" * 400})
                await asyncio.sleep(0.001)

        poster = asyncio.create_task(post_forever(relay))
        await asyncio.sleep(0.05)
        started = loop.time()
        await asyncio.wait_for(relay.close(), 10)
        assert loop.time() - started < 3
        poster.cancel()
