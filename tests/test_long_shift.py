"""What a node keeps once sessions are over: nothing that grows with their number.

A listener may stay on shift for hours and a moderator watch all night, on a node
that runs for weeks. Every session ends in one of the ways people end them, in a
real uvicorn server run in the test's own process (so that the node can be
inspected): embedded, on a real Redis, and two nodes on it. Between two equal batches of sessions
after a warm-up, no container reachable from the node may grow: a list, dict,
set or deque that keeps something per session, per room or per message grows in
every batch. Bounded ones (the matcher's last match times, the scorer's words
met) fill in the warm-up and stay full."""

from __future__ import annotations

import asyncio
import collections
import itertools
import sys
import time

import pytest
import redis.asyncio as aioredis

from chatserver import tokens
from tests.support.client import Client, listener, moderator, seeker
from tests.support.inprocess import InProcess
from tests.support.procs import RedisServer
from tests.support.wait import eventually

LISTENERS, CAPACITY = 3, 4
BATCH = 12  # sessions at once: ten take a listener's seat, two wait and cancel
CRISIS = "I am going to kill myself tonight, I have the pills ready"
SETTLE_S = 0.3  # after the last seat has ended: for updates sent a moment later
KEYS_SETTLE_S = 5.0  # at most this long for Redis's key count to come back (see below)


def census(node: object) -> collections.Counter[str]:
    """The length of every container reachable from ``node`` or from a global of
    Hearth's modules through Hearth's own objects, by path (a dict's or list's items
    are ``[*]``, their lengths summed)."""
    sizes: collections.Counter[str] = collections.Counter()
    seen: set[int] = set()

    def walk(obj: object, path: str, depth: int) -> None:
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        if isinstance(obj, (dict, list, set, frozenset, tuple, collections.deque)):
            sizes[path] += len(obj)
            for item in (obj.values() if isinstance(obj, dict) else obj):
                walk(item, f"{path}[*]", depth + 1)
            return
        module = getattr(type(obj), "__module__", None)  # a compiled function's type has none
        if not isinstance(module, str) or not module.startswith(("chatserver", "matching")):
            return  # uvicorn's, websockets', redis-py's objects are theirs to bound
        fields = dict(getattr(obj, "__dict__", {}))
        for cls in type(obj).__mro__:
            # A class compiled by mypyc (chatserver.NATIVE) lists its attributes in
            # __mypyc_attrs__, not __slots__.
            for name in (*getattr(cls, "__slots__", ()), *getattr(cls, "__mypyc_attrs__", ())):
                if hasattr(obj, name):
                    fields[name] = getattr(obj, name)
        for name, value in fields.items():
            walk(value, f"{path}.{name}", depth + 1)

    walk(node, "node", 0)
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] in ("chatserver", "matching"):
            for key, value in vars(module).items():
                if not key.startswith("__"):
                    walk(value, f"{name}.{key}", 1)
    return sizes


async def _listen(c: Client) -> None:
    """A listener who greets every new room and types, and otherwise just reads."""
    while True:
        frame = await c._next(60)
        if frame["type"] == "matched":
            await c.send({"type": "typing", "room": frame["room"]})
            await c.send({"type": "message", "room": frame["room"], "text": "Hi, I am here."})


async def _moderate(c: Client) -> None:
    while True:
        await c._next(60)


async def _session(url: str, back_at: str, mod: Client, way: int) -> None:
    """One seeker's session through ``url``, ended in one of six ways (coming back
    through ``back_at``)."""
    if way == 5:  # waits for a topic nobody on shift covers, then gives up
        s = await seeker(url, topic="grief")
        await s.expect("queued")
        await s.send({"type": "cancel"})
        await s.expect("cancelled")
        await s.close()
        return
    s = await seeker(url, note="I would like to talk about a hard week.")
    room = (await s.expect("matched"))["room"]
    await s.expect("message", text="Hi, I am here.")
    await s.send({"type": "typing", "room": room})
    await s.send({"type": "message", "room": room, "text": "Thank you.", "id": "m1"})
    await s.send({"type": "message", "room": room, "text": "write to ana@gmail.com", "id": "m2"})
    await s.expect("notice")  # the contact details were removed, and the room escalated
    if way == 0:  # reports, then leaves
        await s.send({"type": "escalate", "room": room, "reason": "I want a moderator"})
        await s.send({"type": "leave", "room": room})
        await s.expect("ended")
        await s.close()
    elif way == 1:  # a moderator watches, joins, whispers and closes the room
        await mod.send({"type": "watch", "room": room})
        await mod.send({"type": "join", "room": room})
        await mod.send({"type": "whisper", "room": room, "text": "All well here?"})
        await s.expect("presence")
        await mod.send({"type": "close", "room": room, "reason": "done"})
        await s.expect("ended")
        await s.close()
    elif way == 2:  # the connection is lost, and the resume window runs out
        s.drop()
    elif way == 3:  # the connection is lost, the seeker comes back, then leaves
        token = s.resume
        s.drop()
        back = await Client.connect(back_at)
        await back.hello(resume=token, since=0)
        await back.send({"type": "leave", "room": room})
        await back.expect("ended")
        await back.close()
    else:  # crisis: resources, an escalation, the listener's cool-down
        await s.send({"type": "message", "room": room, "text": CRISIS, "id": "m3"})
        await s.expect("resources")
        await s.send({"type": "leave", "room": room})
        await s.expect("ended")
        await s.close()


@pytest.mark.parametrize("setup", ["embedded", "redis", "two nodes"])
async def test_sessions_leave_nothing_behind_on_the_node(
        setup: str, redis_server: RedisServer) -> None:
    """With two nodes, the listeners and the moderator are on the first and the seekers
    on the second, and a seeker who comes back resumes through the first."""
    args: tuple[str, ...] = ()
    if setup != "embedded":
        admin = aioredis.Redis.from_url(redis_server.url)
        await admin.flushdb()
        await admin.aclose()
        args = ("--redis", redis_server.url)
    readers: list[asyncio.Task[None]] = []
    staff = InProcess(*args)
    nodes = [staff] if setup != "two nodes" else [staff, InProcess(*args,
                                                                    secret=staff.settings.secret)]
    try:
        for n in nodes:
            await n.start()
        secret = staff.settings.secret
        for i in range(LISTENERS):
            c = await listener(staff.url, tokens.issue(secret, "listener", f"L{i}", 1),
                               capacity=CAPACITY, topics=["anxiety"])
            readers.append(asyncio.create_task(_listen(c)))
        mod = await moderator(staff.url, tokens.issue(secret, "moderator", "M", 1))
        readers.append(asyncio.create_task(_moderate(mod)))
        ways = itertools.cycle(range(6))
        seekers_at, back_at = nodes[-1].url, nodes[0].url

        def ended() -> bool:
            return (all(not n.node.rooms for n in nodes)
                    and len(staff.node.seats.all()) == LISTENERS + 1
                    and all(not n.node.seats.all() for n in nodes[1:]))

        async def batch() -> collections.Counter[str]:
            await asyncio.wait_for(asyncio.gather(
                *(_session(seekers_at, back_at, mod, next(ways)) for _ in range(BATCH))), 30)
            # A dropped seat ends when its resume window (TEST_ARGS: 1.5 s) is over.
            await eventually(ended, 10, "every room and seeker seat to end")
            await asyncio.sleep(SETTLE_S)
            sizes: collections.Counter[str] = collections.Counter()
            for i, n in enumerate(nodes):
                sizes.update({f"{i}:{path}": size for path, size in census(n.node).items()})
            return sizes

        await batch()  # warm-up: what is bounded fills here
        before = await batch()
        keys_before = await redis_keys(redis_server.url) if args else {}
        await batch()
        after = await batch()
        keys_after = await redis_keys(redis_server.url) if args else {}
        # The last seats' records are deleted a few round trips after their seats end
        # (by the seat writer, after the saves queued before: CrossNode.forget): on a
        # busy host that can be later than SETTLE_S (1 run in ~12 on 2026-12-06).
        # Growth that stays is still growth: a few seconds, then the count must be
        # back. (A delete that once raced a save and left two records: 0284358.)
        deadline = time.monotonic() + KEYS_SETTLE_S
        while len(keys_after) > len(keys_before) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            keys_after = await redis_keys(redis_server.url)
    finally:
        for task in readers:
            task.cancel()
        for n in nodes:
            await n.stop()
    grown = {path: (before[path], after[path]) for path in before.keys() | after.keys()
             if after[path] > before[path]}
    assert grown == {}, f"grew over {2 * BATCH} sessions (before, after): {grown}"
    assert [k for k, ttl in keys_after.items() if ttl == -1] == [], "every Redis key has a TTL"
    assert len(keys_after) <= len(keys_before), (
        f"new keys: {sorted(set(keys_after) - set(keys_before))}, "
        f"gone: {sorted(set(keys_before) - set(keys_after))}")


async def redis_keys(url: str) -> dict[str, int]:
    """Every key in Redis with its TTL in seconds (0: under a second left; -1: none;
    -2: gone since the scan saw it)."""
    client = aioredis.Redis.from_url(url)
    try:
        return {key.decode(): await client.ttl(key) async for key in client.scan_iter()}
    finally:
        await client.aclose()
