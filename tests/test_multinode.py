"""Several nodes sharing one Redis behave as one service: real processes, real sockets."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis

from chatserver import seal, tokens
from tests.support.client import Client, listener, moderator, seeker
from tests.support.procs import RedisServer, Server
from tests.support.wait import eventually

pytestmark = pytest.mark.redis

CHATTED: list[str] = []  # every text sent in this file; none may be found in Redis


def said(text: str) -> str:
    CHATTED.append(text)
    return text


async def say(c: Client, room: str, text: str, cid: str = "c") -> None:
    await c.send({"type": "message", "room": room, "text": said(text), "id": cid})


Cluster = list[Server]


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer) -> Iterator[Cluster]:
    """Three nodes on the session's redis, shared by the tests that leave it healthy."""
    import redis as syncredis

    syncredis.Redis.from_url(redis_server.url).flushdb()
    from tests.conftest import TEST_ARGS

    nodes = [Server(*TEST_ARGS, "--redis", redis_server.url, "--node-id", f"n{i}").start()
             for i in (1, 2, 3)]
    yield nodes
    for n in nodes:
        n.stop()


@pytest.fixture
def fresh(make_server: Callable[..., Server]) -> Iterator[Callable[[RedisServer, int], Cluster]]:
    """Nodes on a redis of the test's own, for tests that stop, restart or kill things."""
    owned: list[RedisServer] = []

    def start(r: RedisServer, count: int) -> Cluster:
        owned.append(r)
        return [make_server("--redis", r.url, "--node-id", f"f{i}") for i in range(1, count + 1)]

    yield start
    for r in owned:
        r.stop()


async def pair(lst_node: Server, seek_node: Server, name: str = "Sam"
               ) -> tuple[Client, Client, str]:
    """A listener and a seeker paired on a topic of their own (nobody else fits)."""
    topic = f"topic-{random.getrandbits(32):x}"
    lst = await listener(lst_node.ws_url, lst_node.token("listener", name), topics=[topic])
    s = await seeker(seek_node.ws_url, topic=topic)
    room = (await s.expect("matched"))["room"]
    assert (await lst.expect("matched"))["room"] == room
    return lst, s, room


async def test_cross_node_match_and_chat_both_directions(cluster: Cluster) -> None:
    """A seeker on one node and a listener on another are paired and chat both ways, in
    order; also when the listener arrives after the seeker."""
    n1, n2, n3 = cluster
    lst, s, room = await pair(n1, n2)
    await say(s, room, "hello from node two", "a")
    assert (await lst.expect("message", id="a"))["seq"] == 1
    await say(lst, room, "hello from node one", "b")
    assert [(await s.expect("message", id=i))["seq"] for i in ("a", "b")] == [1, 2]
    assert (await lst.expect("message", id="b"))["seq"] == 2
    for c in (s, lst):
        await c.close()

    waiting = await seeker(n1.ws_url)
    await waiting.expect("queued")
    lst2 = await listener(n3.ws_url, n3.token("listener", "Ana"))
    room2 = (await waiting.expect("matched"))["room"]
    assert (await lst2.expect("matched"))["peer"]["alias"] == waiting.welcome["alias"]
    await say(waiting, room2, "seeker speaks first", "x")
    assert (await lst2.expect("message", id="x"))["seq"] == 1
    await say(lst2, room2, "listener answers", "y")
    assert (await waiting.expect("message", id="y"))["seq"] == 2
    await waiting.send({"type": "leave", "room": room2})
    assert (await lst2.expect("ended"))["reason"] == "peer_left"
    for c in (waiting, lst2):
        await c.close()


async def test_moderator_on_another_node_sees_and_joins_a_room(cluster: Cluster) -> None:
    """A moderator on a third node lists the room, gets escalations, joins with history
    and speaks to both members."""
    n1, n2, n3 = cluster
    mod = await moderator(n3.ws_url, n3.token("moderator", "Mod Ana"))
    lst, s, room = await pair(n1, n2, name="Kim")
    await say(s, room, "a message before the moderator", "m1")
    await lst.expect("message", id="m1")

    async def listed() -> bool:
        frame = await mod.expect("rooms", timeout=6)
        return any(r["room"] == room for r in frame["rooms"])

    await eventually(listed, 8, "the room in the moderator's list")
    await s.send({"type": "escalate", "room": room, "reason": "please help"})
    esc = await mod.expect("escalation", timeout=5)
    assert (esc["room"], esc["by"]) == (room, "seeker")
    await mod.send({"type": "join", "room": room})
    history = await mod.expect("history")
    assert [m["id"] for m in history["messages"]] == ["m1"]
    assert (await s.expect("presence"))["state"] == "joined"
    await say(mod, room, "a moderator is here", "mod")
    assert (await s.expect("message", id="mod"))["seq"] == 2
    assert (await lst.expect("message", id="mod"))["seq"] == 2
    for c in (s, lst, mod):
        await c.close()


async def test_crisis_reaches_moderators_on_every_node_within_a_second(cluster: Cluster) -> None:
    """A crisis message in a room spanning two nodes escalates to moderators on all three
    nodes within one second, and the seeker gets resources."""
    n1, n2, n3 = cluster
    mods = [await moderator(n.ws_url, n.token("moderator", f"Mod {i}"))
            for i, n in enumerate(cluster)]
    lst, s, room = await pair(n1, n2, name="Lee")
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await say(s, room, "i took all my pills an hour ago and i want to die tonight", "c")
    for mod in mods:
        e = await mod.expect("escalation", timeout=1.0, room=room)
        assert (e["by"], e["risk"]) == ("system", "crisis")
    assert loop.time() - sent < 1.0
    assert (await s.expect("resources", timeout=1.0))["items"]
    assert (await lst.expect("risk"))["risk"] == "crisis"
    for c in (s, lst, *mods):
        await c.close()


class Tracked:
    """A client whose frames are read in the background, for the randomized test."""

    def __init__(self, c: Client, role: str, capacity: int = 0) -> None:
        self.c, self.role, self.capacity = c, role, capacity
        self.rooms: set[str] = set()
        self.waiting = False
        self.violations: list[str] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.c._next(3600)
                kind = frame["type"]
                if kind == "matched":
                    self.rooms.add(frame["room"])
                    self.waiting = False
                    limit = 1 if self.role == "seeker" else self.capacity
                    if len(self.rooms) > limit:
                        self.violations.append(f"{self.role} in {len(self.rooms)} rooms")
                elif kind == "ended":
                    self.rooms.discard(frame["room"])
                elif kind == "queued":
                    self.waiting = not self.rooms
                elif kind == "cancelled":
                    self.waiting = False
        except Exception:
            return


@pytest.mark.parametrize("seed", [7, 8])
async def test_random_traffic_keeps_matching_rules(
        fresh: Callable[[RedisServer, int], Cluster], seed: int) -> None:
    """60 seekers and 10 listeners (capacity 2) on three nodes come and go at random: no
    seeker has two listeners, no listener exceeds capacity, and nobody waits while a
    listener is free."""
    redis_server = RedisServer().start()
    cluster = fresh(redis_server, 3)
    rnd = random.Random(seed)
    listeners = []
    for i in range(10):
        node = cluster[i % 3]
        c = await listener(node.ws_url, node.token("listener", f"L{i}"), capacity=2)
        listeners.append(Tracked(c, "listener", 2))
    seekers: list[Tracked] = []
    for i in range(60):
        node = rnd.choice(cluster)
        c = await seeker(node.ws_url)
        seekers.append(Tracked(c, "seeker"))
        if i % 4 == 3:
            for t in rnd.sample(seekers, 3):
                action = rnd.random()
                try:
                    if t.rooms and action < 0.4:
                        await t.c.send({"type": "leave", "room": next(iter(t.rooms))})
                    elif action < 0.55:
                        await t.c.close(1000)
                    elif action < 0.65:
                        t.c.drop()
                except Exception:
                    pass
            lt = rnd.choice(listeners)
            if lt.rooms and rnd.random() < 0.5:
                await lt.c.send({"type": "leave", "room": next(iter(lt.rooms))})
        await asyncio.sleep(rnd.random() * 0.02)

    def settled() -> bool:
        waiting = [t for t in seekers if t.waiting and not t.task.done()]
        free = [t for t in listeners if len(t.rooms) < t.capacity]
        return not (waiting and free)

    try:
        await eventually(settled, 15, "no seeker waiting while a listener is free")
    except TimeoutError:
        waiting = [i for i, t in enumerate(seekers) if t.waiting and not t.task.done()]
        free = [(i, len(t.rooms)) for i, t in enumerate(listeners) if len(t.rooms) < t.capacity]
        admin = aioredis.Redis.from_url(redis_server.url)
        seen = {}
        async for key in admin.scan_iter("hearth:listener:*"):
            h = await admin.hgetall(key)
            seen[key.decode()[-6:]] = {k.decode(): v.decode() for k, v in h.items()
                                       if k in (b"rooms", b"status", b"held_until", b"node")}
            seat = key.decode().split(":", 2)[2]
            seen[key.decode()[-6:]]["lrooms"] = sorted(
                m.decode() for m in await admin.smembers(f"hearth:lrooms:{seat}"))
        seen["clients"] = [sorted(t.rooms) for t in listeners]  # type: ignore[assignment]
        await admin.aclose()
        raise AssertionError(f"seekers {waiting} wait while listeners {free} are free; "
                             f"redis sees {seen}") from None
    for t in seekers + listeners:
        assert t.violations == []
    for t in seekers + listeners:
        t.task.cancel()
        await t.c.ws.close()
    admin = aioredis.Redis.from_url(redis_server.url)
    try:  # dropped seekers keep their place for resume_s; later tests start with none
        async def drained() -> bool:
            return int(await admin.zcard("hearth:waiting")) == 0
        await eventually(drained, 10, "the queue to drain")
    finally:
        await admin.aclose()


async def test_pubsub_reader_survives_client_kill(cluster: Cluster,
                                                  redis_server: RedisServer) -> None:
    """After CLIENT KILL TYPE pubsub the nodes resubscribe and cross-node rooms still relay."""
    n1, n2, _ = cluster
    lst, s, room = await pair(n1, n2)
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")

        async def resubscribed() -> bool:
            counts = dict(await admin.pubsub_numsub("hearth:inbox:n1", "hearth:inbox:n2",
                                                    "hearth:queue"))
            return bool(counts.get(b"hearth:inbox:n1") and counts.get(b"hearth:inbox:n2")
                        and counts.get(b"hearth:queue", 0) >= 3)

        await eventually(resubscribed, 10, "nodes to resubscribe")
    finally:
        await admin.aclose()
    await say(s, room, "after the kill", "k")
    assert (await lst.expect("message", id="k"))["seq"] == 1
    for c in (s, lst):
        await c.close()


async def test_redis_outage_and_empty_restart(fresh: Callable[[RedisServer, int], Cluster]
                                             ) -> None:
    """Redis stops mid-chat: same-node rooms keep relaying, /readyz is 503, a request is
    unavailable or stays queued. Redis comes back empty: nodes register again, the seeker
    still waiting is matched, /readyz is 200."""
    r = RedisServer().start()
    n1, n2 = fresh(r, 2)
    local_l, local_s, local_room = await pair(n1, n1, name="Local")
    waiting = await seeker(n2.ws_url)
    await waiting.expect("queued")
    r.stop()
    await eventually(lambda: n1.status("/readyz") == 503, 5, "readyz 503")
    await say(local_s, local_room, "still here without redis", "o1")
    assert (await local_l.expect("message", id="o1"))["seq"] == 1
    late = await seeker(n1.ws_url)
    got = await asyncio.wait_for(late._next(5), 5)
    assert got["type"] == "queued" or (got["type"] == "error" and got["code"] == "unavailable")
    assert n1.healthy() and n2.healthy()

    r.start()  # the same port, empty
    await eventually(lambda: n1.status("/readyz") == 200 and n2.status("/readyz") == 200, 10,
                     "readyz 200")
    lst = await listener(n1.ws_url, n1.token("listener", "Back"))

    async def matched_after_restart() -> bool:
        try:
            await waiting.expect("matched", timeout=0.5)
            return True
        except TimeoutError:
            return False

    try:
        await eventually(matched_after_restart, 12, "the waiting seeker to be matched")
    except TimeoutError:  # the nodes' logs hold no personal data; they say what happened
        admin = aioredis.Redis.from_url(r.url)
        state = {"waiting": await admin.zrange("hearth:waiting", 0, -1, withscores=True)}
        async for key in admin.scan_iter("hearth:listener:*"):
            state[key.decode()] = await admin.hgetall(key)
        async for key in admin.scan_iter("hearth:node:*"):
            state[key.decode()] = await admin.ttl(key)
        state["available"] = await admin.smembers("hearth:available")
        await admin.aclose()
        raise AssertionError(f"not matched after restart: redis {state}\n" + n1.output()[-1500:]
                             + "\n---\n" + n2.output()[-1500:]) from None
    await say(local_s, local_room, "and after the restart", "o2")
    assert (await local_l.expect("message", id="o2"))["seq"] == 2
    for c in (local_l, local_s, waiting, late, lst):
        await c.close()


async def _records(url: str, token: str) -> list[dict[str, Any]]:
    """The seat directory's records that this resume token opens, as a node given the
    token in a ``hello`` reads them (chatserver/seal.py): the record's sealed part."""
    sealer = seal.Sealer(seal.record_key(token))
    admin = aioredis.Redis.from_url(url)
    try:
        out = []
        async for key in admin.scan_iter("hearth:seat:*"):
            data = await admin.get(key)
            record = msgpack.unpackb(data, raw=False) if data else None
            if record and "sealed" in record:
                opened = sealer.open(record["sealed"], key.decode().rsplit(":", 1)[1])
                if opened is not None:
                    out.append(msgpack.unpackb(opened, raw=False))
        return out
    finally:
        await admin.aclose()


async def _saved(url: str, token: str) -> bool:
    """The directory holds this resume token's key (written with its seat's record,
    after it)."""
    admin = aioredis.Redis.from_url(url)
    try:
        return bool(await admin.exists(f"hearth:resume:{tokens.digest(token)}"))
    finally:
        await admin.aclose()


async def _redis_blob(url: str) -> bytes:
    """Every key and value Redis holds, one per line; and that every key has a TTL."""
    admin = aioredis.Redis.from_url(url)
    try:
        values: list[bytes] = []
        async for key in admin.scan_iter("*"):
            assert await admin.ttl(key) != -1, key  # -1: no TTL (-2: expired since the scan)
            values.append(key)
            kind = (await admin.type(key)).decode()
            if kind == "string":
                values.append(await admin.get(key) or b"")
            elif kind == "hash":
                for field, value in (await admin.hgetall(key)).items():
                    values += [field, value]
            elif kind == "list":
                values.extend(await admin.lrange(key, 0, -1))
            elif kind == "set":
                values.extend(await admin.smembers(key))
            elif kind == "zset":
                values.extend(await admin.zrange(key, 0, -1))
        return b"\n".join(values)
    finally:
        await admin.aclose()


async def test_seat_records_that_failed_to_save_are_written_once_redis_is_back(
        fresh: Callable[[RedisServer, int], Cluster]) -> None:
    """Redis is down while a room ends (and comes back with its data: a snapshot
    taken just before), so the seat records cannot be saved. Once it is back they
    are, within a few seconds, not at the next five-minute resave: another node
    would otherwise rebuild the listener on resume with a room that is gone."""
    r = RedisServer().start()
    (n1,) = fresh(r, 1)
    lst, s, room = await pair(n1, n1, name="Stale")

    async def listener_rooms() -> list[str] | None:
        records = await _records(r.url, lst.resume)
        return sorted(records[0]["rooms"]) if len(records) == 1 else None

    await eventually(lambda: _equals(listener_rooms(), [room]), 5, "the room in the record")
    admin = aioredis.Redis.from_url(r.url)
    await admin.save()  # dump.rdb in its dir: the restart below loads it
    await admin.aclose()
    r.stop()
    await s.send({"type": "leave", "room": room})
    assert (await lst.expect("ended"))["reason"] == "peer_left"  # local: no Redis needed
    await asyncio.sleep(0.5)  # the records' save fails meanwhile
    r.start()
    assert await listener_rooms() == [room]  # as the snapshot had it
    await eventually(lambda: _equals(listener_rooms(), []), 5, "the record without the room")
    for c in (lst, s):
        await c.close()


async def test_every_seat_record_is_written_again_after_redis_restarts_empty(
        fresh: Callable[[RedisServer, int], Cluster]) -> None:
    """Redis comes back empty under a node with 300 seekers: the node writes every
    seat's record and resume key again (several round trips of at most 200 seats),
    so any node could take each of them back."""
    r = RedisServer().start()
    (n1,) = fresh(r, 1)

    async def one() -> Client:
        c = await Client.connect(n1.ws_url)
        await c.hello(role="seeker")
        return c

    seekers = [c for _ in range(6) for c in await asyncio.gather(*(one() for _ in range(50)))]

    async def counts() -> tuple[int, int]:
        admin = aioredis.Redis.from_url(r.url)
        try:
            seats = [k async for k in admin.scan_iter("hearth:seat:*", count=1000)]
            resumes = [k async for k in admin.scan_iter("hearth:resume:*", count=1000)]
            return len(seats), len(resumes)
        finally:
            await admin.aclose()

    await eventually(lambda: _equals(counts(), (300, 300)), 10, "300 records before")
    r.restart()  # empty
    await eventually(lambda: _equals(counts(), (300, 300)), 15, "300 records after")
    for c in seekers:
        c.drop()


async def _equals(value: Any, expected: Any) -> bool:
    return await value == expected


async def test_killed_node_rooms_end_or_resume_elsewhere(
        fresh: Callable[[RedisServer, int], Cluster]) -> None:
    """A node killed with SIGKILL: its waiters vanish; a room whose seeker was there ends
    with peer_lost for the listener, unless the seeker resumes on another node in time."""
    r = RedisServer().start()
    n1, n2, n3 = fresh(r, 3)
    lost_l, lost_s, lost_room = await pair(n1, n2, name="One")
    kept_l, kept_s, kept_room = await pair(n3, n2, name="Two")
    await say(kept_s, kept_room, "before the crash", "b1")
    await kept_l.expect("message", id="b1")
    await kept_s.expect("message", id="b1")
    ghost_waiter = await seeker(n2.ws_url)
    await ghost_waiter.expect("queued")
    token = kept_s.resume

    n2.stop(signal.SIGKILL)
    # One seeker resumes on node one at once; its room (homed with its listener) goes on.
    back = await Client.connect(n1.ws_url)
    await back.hello(resume=token, since=1)
    assert [r["room"] for r in back.welcome["rooms"]] == [kept_room]
    assert (await kept_l.expect("presence", state="back", timeout=5))["room"] == kept_room
    await say(back, kept_room, "after the crash", "b2")
    assert (await kept_l.expect("message", id="b2"))["seq"] == 2
    assert (await back.expect("message", id="b2"))["seq"] == 2
    # The other room ends for its listener once the node is known dead and resume_s passed.
    assert (await lost_l.expect("ended", timeout=20))["reason"] == "peer_lost"
    await kept_l.nothing("ended", within=0.5)
    # The waiter of the dead node is not in the queue: a new listener takes no one.
    fresh_l = await listener(n1.ws_url, n1.token("listener", "Three"))
    await fresh_l.nothing("matched", within=1.0)
    for c in (lost_l, kept_l, back, fresh_l):
        await c.close()


async def test_a_node_stopped_mid_chat_exits_and_is_gone_at_once(
        fresh: Callable[[RedisServer, int], Cluster]) -> None:
    """SIGTERM to a node whose seekers chat with listeners on another node: it exits by
    itself (not killed after the wait) within a few seconds, and its presence key is
    gone at once, not after its 10 s TTL, so the other nodes act on it now
    (docs/multinode.md, "Failures"). The race that could hang the stop is rare at this
    load and proved in test_relay.py and test_tasks.py; this is the contract end to end."""
    r = RedisServer().start()
    n1, n2 = fresh(r, 2)
    pairs = [await pair(n1, n2, name=f"Chat{i}") for i in range(3)]
    admin = aioredis.Redis.from_url(r.url)
    assert await admin.exists("hearth:node:f2") == 1

    async def chat() -> None:
        n = 0
        try:
            while True:
                for _, s, room in pairs:
                    n += 1
                    await s.send({"type": "message", "room": room, "text": said("still here"),
                                  "id": f"k{n}"})
                await asyncio.sleep(0.005)
        except Exception:  # the stopped node closed the seekers' sockets
            return

    chatting = asyncio.create_task(chat())
    await asyncio.sleep(0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    code = await asyncio.to_thread(n2.stop, signal.SIGTERM, 15)
    took = loop.time() - started
    chatting.cancel()
    # uvicorn re-raises the signal after its graceful shutdown; -SIGKILL would mean stop()
    # gave up waiting and killed it.
    assert code in (0, -signal.SIGTERM), n2.output()[-2000:]
    assert took < 8
    assert await admin.exists("hearth:node:f2") == 0
    await admin.aclose()
    for lst, _, _ in pairs:
        await lst.close()


async def test_a_spent_resume_token_is_refused_on_every_node(
        cluster: Cluster, redis_server: RedisServer) -> None:
    """A seeker resumes on its own node: its old token is spent there, and no other
    node takes it either (the directory forgets an old token when a new one is saved);
    the new token works anywhere."""
    n1, n2, _ = cluster
    first = await seeker(n1.ws_url)
    old = first.resume
    first.drop()
    again = await Client.connect(n1.ws_url)
    await again.hello(resume=old)
    new = again.resume
    assert new != old

    await eventually(lambda: _saved(redis_server.url, new), timeout=5)
    assert not await _saved(redis_server.url, old)
    thief = await Client.connect(n2.ws_url)
    await thief.send({"type": "hello", "resume": old})
    assert await thief.closed(5) == 4401
    again.drop()
    elsewhere = await Client.connect(n2.ws_url)
    await elsewhere.hello(resume=new)
    assert elsewhere.welcome["role"] == "seeker"
    await elsewhere.close()


async def test_a_room_on_one_node_sends_redis_nothing_per_message(
        make_server: Callable[..., Server]) -> None:
    """With --redis, a hundred messages in a room whose members share a node cause no
    Redis command: what Redis sees meanwhile is the node's heartbeat script alone."""
    r = RedisServer().start()
    try:
        node = make_server("--redis", r.url, "--node-id", "q1", "--rate", "1000/1")
        await _no_command_per_message(node, r)
    finally:
        r.stop()


async def _no_command_per_message(node: Server, r: RedisServer) -> None:
    lst, s, room = await pair(node, node)
    await asyncio.sleep(0.5)  # the seat records of the match are written by now
    admin = aioredis.Redis.from_url(r.url)
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        async with admin.monitor() as m:
            async for command in m.listen():
                seen.append(command)

    probe = aioredis.Redis.from_url(r.url)

    async def probed(mark: str) -> list[int]:
        """Send a command until the monitor shows it; where it shows in ``seen``."""
        async def sent_and_seen() -> bool:
            await probe.echo(mark)
            await asyncio.sleep(0.05)
            return any(mark in c["command"] for c in seen)

        await eventually(sent_and_seen, what="the monitor")
        return [i for i, c in enumerate(seen) if mark in c["command"]]

    watcher = asyncio.create_task(watch())
    try:
        started = (await probed("probe-before"))[-1] + 1
        for k in range(50):
            for speaker, other in ((s, lst), (lst, s)):
                await say(speaker, room, f"message {k}")
                await other.expect("message")
                await speaker.expect("message")  # the echo: every member gets a message
        await asyncio.sleep(0.2)  # anything the messages caused has been sent by now
        ended = (await probed("probe-after"))[0]
        during = [c for c in seen[started:ended] if c.get("client_address") != "lua"]
    finally:
        watcher.cancel()
        await probe.aclose()
        await admin.aclose()
        await s.close()
        await lst.close()
    names = [c["command"].split(" ")[0].upper() for c in during]
    assert [n for n in names if n != "EVALSHA"] == [], names
    assert names.count("EVALSHA") <= 2  # the heartbeat, every 3 s


async def test_redis_keeps_no_alias_name_or_note_readable(
        cluster: Cluster, redis_server: RedisServer) -> None:
    """What Redis must keep a while is sealed: a waiting seeker's note (under
    HEARTH_SECRET) and the seat records that let a seat resume on another node, with
    its alias and its rooms, whose matched frames name the peer (under the seat's
    resume token). No alias, listener name or note is in any key or value. Yet the
    listener's node, pairing a seeker from another node's queue, shows the seeker's
    alias and note, and a record still rebuilds its seat on another node."""
    n1, n2, _ = cluster
    topic = f"topic-{random.getrandbits(32):x}"
    note = said("the bakery night shift keeps me awake")
    w = await seeker(n2.ws_url, topic=topic, note=note)
    await w.expect("queued")
    name = "Wrenna Quill"
    plain = [w.welcome["alias"], name, note]

    async def readable() -> list[str]:
        blob = await _redis_blob(redis_server.url)
        return [p for p in plain if p.encode() in blob]

    async def rooms(token: str) -> list[str] | None:
        records = await _records(redis_server.url, token)
        return sorted(records[0]["rooms"]) if len(records) == 1 else None

    await eventually(lambda: _saved(redis_server.url, w.resume), 5, "the waiting seeker's record")
    assert await readable() == []
    assert await rooms(w.resume) == []
    lst = await listener(n1.ws_url, n1.token("listener", name), topics=[topic])
    matched = await lst.expect("matched")  # n1 paired it from n2's queue
    assert matched["peer"]["alias"] == w.welcome["alias"] and matched["note"] == note
    room = matched["room"]
    assert (await w.expect("matched"))["peer"] == {"role": "listener", "alias": name}
    await eventually(lambda: _equals(rooms(w.resume), [room]), 5, "the room in the records")
    await eventually(lambda: _equals(rooms(lst.resume), [room]), 5, "the room in the records")
    assert await readable() == []

    w.drop()
    back = await Client.connect(n1.ws_url)  # not its node: rebuilt from the sealed record
    await back.hello(resume=w.resume)
    assert back.welcome["alias"] == w.welcome["alias"]
    assert [(r["room"], r["peer"]["alias"]) for r in back.welcome["rooms"]] == [(room, name)]
    await say(back, room, "still here after moving", "p1")
    assert (await lst.expect("message", id="p1"))["from"]["alias"] == w.welcome["alias"]
    assert await readable() == []
    for c in (back, lst):
        await c.close()


async def test_a_waiting_seeker_moved_to_another_node_keeps_its_place_and_note(
        cluster: Cluster, redis_server: RedisServer) -> None:
    """A seeker waits on one node with a note, loses its connection and resumes on
    another: it waits on, and the listener who takes it sees its first words."""
    n1, n2, n3 = cluster
    topic = f"topic-{random.getrandbits(32):x}"
    note = said("my sister stopped calling")
    w = await seeker(n2.ws_url, topic=topic, note=note)
    await w.expect("queued")
    token = w.resume
    await eventually(lambda: _saved(redis_server.url, token), 5, "the seat's record")
    w.drop()
    back = await Client.connect(n1.ws_url)
    await back.hello(resume=token)
    assert back.welcome["alias"] == w.welcome["alias"]
    assert (await back.expect("queued"))["position"] == 1
    lst = await listener(n3.ws_url, n3.token("listener", "Ana"), topics=[topic])
    matched = await lst.expect("matched")
    assert matched["peer"]["alias"] == w.welcome["alias"] and matched["note"] == note
    assert (await back.expect("matched"))["room"] == matched["room"]
    for c in (back, lst):
        await c.close()


async def test_redis_holds_no_text_and_no_key_without_ttl(redis_server: RedisServer) -> None:
    """After the tests above, no key lacks a TTL and no key or value holds any chatted
    text."""
    blob = await _redis_blob(redis_server.url)
    assert CHATTED
    assert [t for t in CHATTED if t.encode() in blob] == []


async def test_room_moves_with_its_listener_when_the_home_node_dies(
        fresh: Callable[[RedisServer, int], Cluster]) -> None:
    """The listener's node (the room's home) is killed; the listener resumes on another
    node and the room goes on there: nobody gets ended, seq keeps rising, both sides
    speak again."""
    r = RedisServer().start()
    n1, n2, n3 = fresh(r, 3)
    lst, s, room = await pair(n1, n2, name="Home")
    await say(s, room, "before the home dies", "h1")
    await lst.expect("message", id="h1")
    await s.expect("message", id="h1")
    token = lst.resume
    # The seat directory is written a moment after a match (asynchronously); a home that
    # dies within that moment takes the listener's claim to the room with it. Here the
    # home dies after the record is written, which is what this test is about.
    async def recorded() -> bool:
        return any(room in rec["rooms"] for rec in await _records(r.url, token))

    await eventually(recorded, 5, "the listener's seat record to hold the room")

    n1.stop(signal.SIGKILL)
    back = await Client.connect(n3.ws_url)
    await back.hello(resume=token, since=1)
    assert [x["room"] for x in back.welcome["rooms"]] == [room], back.welcome
    # Once n1 is known dead (its presence key expires), n3 takes the room over.
    assert (await s.expect("presence", timeout=20, state="back"))["room"] == room
    await say(s, room, "are you still there", "h2")
    assert (await back.expect("message", id="h2", timeout=5))["seq"] == 2
    await say(back, room, "yes, still here", "h3")
    assert (await s.expect("message", id="h3", timeout=5))["seq"] == 3
    await s.nothing("ended", within=0.3)
    await s.send({"type": "leave", "room": room})
    assert (await back.expect("ended", timeout=5))["reason"] == "peer_left"
    for c in (s, back):
        await c.close()
