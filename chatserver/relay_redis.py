"""The Redis relay: node inboxes over pub/sub and the seat directory.

Keys and channels (every key has a TTL; nothing here is message text, an
address or a token):

==============================  =======  ==========  ============================================
name                            type     TTL         holds
==============================  =======  ==========  ============================================
``hearth:inbox:{node}``         channel  -           MessagePack events for one node
``hearth:broadcast``            channel  -           events for every node (escalations, rooms)
``hearth:seat:{seat}``          STRING   seat TTL    MessagePack record: node, role, alias, rooms
                                                     (room -> home and the ``matched`` frame
                                                     without the note), queue and shift state
``hearth:resume:{sha256}``      STRING   seat TTL    the seat whose resume token has this digest
``hearth:node:{node}``          STRING   10 s        presence, written by the matcher; read here
==============================  =======  ==========  ============================================

Posts go through one writer task. Events posted close together are coalesced:
all the events for one channel since the last flush go out as one PUBLISH of a
MessagePack array (a lone event as a plain map), and every channel's publish
in one write on the writer's own connection, so events to one node keep their
order, a burst costs one round trip, and a busy node pays one Redis command per channel per flush
instead of one per event. Flushes are at least ``FLUSH_GAP_S`` apart: an event
after a quiet spell goes out at once, one during a burst waits at most that
long. A flush costs CPU whatever it carries, so the gap bounds that cost under
any load, for at most 10 ms more per hop (docs/performance.md). Both ends speak
to Redis through :class:`matching.resp.Link` rather than redis-py's connection
(``_publish``, ``matching.redis.subscribe_forever``): with 3,000 events a second
in ~100 flushes, ``loadtests/relay_flush.py`` on 2026-12-06 put the sender at
50-56 ms of CPU a second instead of 70-72, and the receiver at 17-20 instead
of 29-30. Readers take either form. The seat directory's writes go on a
:class:`matching.resp.Commands` link of their own, for the same reason.

Pub/sub forgets what nobody hears, so an inbox event is not given up when its
node's subscriber is away (PUBLISH answers that it reached no one: the node is
resubscribing after a Redis restart or a network cut) or when Redis cannot be
reached: its channel is *held*, published again every ``HOLD_RETRY_S`` with
the events that came after it, in order, until it is heard, and dropped with a
warning after ``HOLD_S`` (then the node is gone, and its presence has lapsed
too). Broadcast events are held only while Redis is unreachable: every node
hears its own broadcasts, so PUBLISH cannot say whether the others did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import hiredis
import msgpack
from redis import exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis

from matching import resp
from matching.redis import NODE_TTL_S, ONE_RETRY_ON_RECONNECT, subscribe_forever
from matching.tasks import stop_task

from .relay import Event, OnEvent, Relay, RelayError, SeatSave

log = logging.getLogger("hearth.relay")

BROADCAST = "hearth:broadcast"
_UNREACHABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ReadOnlyError, OSError,
                asyncio.TimeoutError)
FLUSH_GAP_S = 0.010  # at most one flush per this many seconds; see the module docstring
_BACKLOG = 100_000  # events waiting for Redis before new ones are dropped
_RETRY_S = 0.05  # pause before publishing a failed batch once more
HOLD_RETRY_S = 0.1  # a held channel is published again this often
HOLD_S = float(NODE_TTL_S)  # a channel held this long is dropped: its node is gone
PUBLISH_TIMEOUT_S = 2.0  # a flush's publishes and their replies, all together
# Channels numbered, and senders heard, kept at most (node ids are new at every start,
# so over a long life these would grow with the other nodes' restarts).
_NUMBERED_MAX = 1024


# One packer for every payload and array header: packb makes one a call (~1 us of
# the ~3 a pair of events).
_PACKER = msgpack.Packer(use_bin_type=True)


def _pack(events: list[Event]) -> bytes:
    """One channel's events as one payload: a lone event as a map, else an array."""
    payload: bytes = _PACKER.pack(events[0] if len(events) == 1 else events)
    return payload


def _body(n: int, payload: bytes) -> bytes:
    """The packed events of a payload of ``n``, without the array's header."""
    if n == 1:
        return payload
    return payload[len(_PACKER.pack_array_header(n)):]


def _join(first: tuple[int, bytes], then: tuple[int, bytes] | None) -> tuple[int, bytes]:
    """The payload of ``first``'s events followed by ``then``'s, without unpacking."""
    if then is None:
        return first
    n = first[0] + then[0]
    return n, _PACKER.pack_array_header(n) + _body(*first) + _body(*then)


def _record(data: Any) -> dict[str, Any] | None:
    """A seat's record as stored (``_seat_data``), or None for no key."""
    return dict(msgpack.unpackb(data, raw=False)) if data else None


def inbox(node: str) -> str:
    return f"hearth:inbox:{node}"


class RedisRelay(Relay):
    shared = True

    def __init__(self, url: str, node_id: str, *, seat_ttl_s: float = 3600) -> None:
        self.node_id = node_id
        self.seat_ttl_s = int(seat_ttl_s)
        pool = BlockingConnectionPool.from_url(
            url, max_connections=10, timeout=3, socket_timeout=2, socket_connect_timeout=2,
            health_check_interval=10, retry=ONE_RETRY_ON_RECONNECT)
        self._redis = Redis(connection_pool=pool)
        # The writer's own connection (_publish); _publish_twice retries, so it does not.
        self._pub = resp.Commands(self._redis, PUBLISH_TIMEOUT_S, resend=False)
        self._seats = resp.Commands(self._redis, PUBLISH_TIMEOUT_S)  # the seat directory's
        self._on_event: OnEvent = lambda event: None
        self._pending: dict[str, list[Event]] = {}  # channel -> events, in post order
        # channel -> (since, count, payload): held inboxes, packed once, not per retry
        self._held: dict[str, tuple[float, int, bytes]] = {}
        self._backlog = 0
        self._wakeup: asyncio.Future[None] | None = None  # set while the writer waits
        self._healthy = True
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False  # the writer stops at its next turn, even if a cancel was lost
        # Events are numbered per channel, under an id of this relay's life (_fresh).
        self._boot = secrets.token_hex(4)
        self._numbered: dict[str, int] = {}  # channel -> the last number given
        self._heard: dict[tuple[str, bytes], tuple[Any, int]] = {}  # (from, channel) -> (b, n)

    async def start(self, on_event: OnEvent) -> None:
        self._on_event = on_event
        self._tasks = [asyncio.create_task(self._writer()), asyncio.create_task(self._reader())]

    async def close(self) -> None:
        self._on_event = lambda event: None
        self._closed = True
        for task in self._tasks:
            await stop_task(task)
        self._pub.close()
        self._seats.close()
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()

    @property
    def healthy(self) -> bool:
        return self._healthy

    # -- events --------------------------------------------------------------------

    def post(self, node: str, event: Event) -> None:
        self._put(inbox(node), event)

    def broadcast(self, event: Event) -> None:
        self._put(BROADCAST, event)

    def _put(self, channel: str, event: Event) -> None:
        if self._backlog >= _BACKLOG:
            self._healthy = False
            log.warning("relay backlog full; dropping an event")
            return
        self._backlog += 1
        number = self._numbered.get(channel)
        if number is None:
            if len(self._numbered) >= _NUMBERED_MAX:  # forget them, as a new life
                self._numbered.clear()
                self._boot = secrets.token_hex(4)
            number = 0
        number += 1
        self._numbered[channel] = number
        # Added to the caller's dict, which the relay keeps (Relay.post): no copy an event.
        event["from"] = self.node_id
        event["b"] = self._boot
        event["n"] = number
        events = self._pending.get(channel)
        if events is None:
            self._pending[channel] = [event]
        else:
            events.append(event)
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        last = -FLUSH_GAP_S
        while not self._closed:
            # The gap first, then a look at what waits: under load that is one wake-up
            # a flush, not one for the first event and another after the gap.
            wait = last + FLUSH_GAP_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not self._pending:
                self._wakeup = loop.create_future()
                if not self._held:
                    await self._wakeup  # the gap has passed: the event goes out at once
                    continue
                # Held channels are tried again after a pause, or with the next event.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup, last + HOLD_RETRY_S - loop.time())
                self._wakeup = None
                if not self._pending and loop.time() < last + HOLD_RETRY_S:
                    continue
            pending, self._pending = self._pending, {}
            last = loop.time()
            batch = {channel: (len(events), _pack(events)) for channel, events in pending.items()}
            for channel, (_, n, payload) in self._held.items():  # the held go first, in order
                batch[channel] = _join((n, payload), batch.get(channel))
            channels = list(batch)
            try:
                heard = await self._publish_twice([(c, batch[c][1]) for c in channels])
                unheard = self._unheard(channels, heard)
            except _UNREACHABLE:
                if self._healthy:
                    log.warning("redis unreachable; holding cross-node events for up to %.0f s",
                                HOLD_S)
                self._healthy = False
                unheard = channels
            except Exception as exc:  # the kind only: details may hold personal data
                log.error("relay writer failed: %s", type(exc).__name__)
                unheard = []
            self._hold(batch, unheard, loop.time())

    async def _publish_twice(self, batch: list[tuple[str, bytes]]) -> list[int]:
        try:
            return await self._publish(batch)
        except _UNREACHABLE:
            # After a Redis restart the pool's first connection is dead; a publish
            # that failed on it sent nothing, so it is sent once more on a new one.
            await asyncio.sleep(_RETRY_S)
            return await self._publish(batch)

    @staticmethod
    def _unheard(channels: list[str], heard: list[int]) -> list[str]:
        """The inboxes a publish reached no subscriber of."""
        return [c for c, n in zip(channels, heard, strict=True) if n == 0 and c != BROADCAST]

    def _hold(self, batch: dict[str, tuple[int, bytes]], unheard: list[str], now: float) -> None:
        """Keep the unheard channels' events for the next try; drop those held too long."""
        held: dict[str, tuple[float, int, bytes]] = {}
        for channel in unheard:
            n, payload = batch[channel]
            since = self._held[channel][0] if channel in self._held else now
            if now - since < HOLD_S:
                held[channel] = (since, n, payload)
            else:
                log.warning("%d cross-node events dropped: nobody read %s for %.0f s",
                            n, channel, now - since)
        self._held = held
        # What waits now: the held, and what was posted while the batch was out.
        self._backlog = (sum(n for _, n, _ in held.values())
                         + sum(len(events) for events in self._pending.values()))

    async def _publish(self, batch: list[tuple[str, bytes]]) -> list[int]:
        """Publish each channel's events; how many subscribers heard each.

        On the writer's own :class:`~matching.resp.Commands` link: the commands are
        written to the socket at once and the replies come back to one future, with
        none of redis-py's machinery on the way (docs/performance.md). A flush not
        answered within ``PUBLISH_TIMEOUT_S`` closes the link (a timer, not an
        ``asyncio.timeout``, which cost a flush more than the rest of it); the
        next flush connects again. Replies are matched to requests in the order
        written, so one is never read as another flush's."""
        heard = await self._pub.run([("PUBLISH", c, data) for c, data in batch])
        self._healthy = True
        for n in heard:
            if not isinstance(n, int):  # an error reply
                raise rexc.ResponseError(str(n))
        return heard

    async def _reader(self) -> None:
        """Deliver inbox and broadcast events; reconnect with backoff forever."""

        def heard(channel: bytes, payload: bytes) -> None:
            try:
                data = msgpack.unpackb(payload, raw=False)
            except Exception as exc:  # not from a node: dropped, the subscription kept
                log.error("an unreadable cross-node payload: %s", type(exc).__name__)
                return
            for event in data if isinstance(data, list) else (data,):
                if (isinstance(event, dict) and event.get("from") != self.node_id
                        and self._fresh(channel, event)):
                    self._deliver(event)

        await subscribe_forever(self._redis, (inbox(self.node_id), BROADCAST), heard,
                                lambda: self._on_event({"k": "reconnected"}), "relay")

    def _fresh(self, channel: bytes, event: Event) -> bool:
        """False for an event heard before. A flush that timed out (Redis stalled
        for PUBLISH_TIMEOUT_S) is published again, held, on a new connection, yet
        its first write may still reach Redis once it wakes: without this, a
        seeker's message forwarded to its room's home would be posted twice. Each
        sender numbers its events per channel under an id of its life (``b``),
        and a publisher's commands reach subscribers in the order sent, so an
        event numbered at or below the last heard from that life on that channel
        is a copy. Events with no number (a node of an older version) pass."""
        n, sender = event.get("n"), event.get("from")
        if not isinstance(n, int) or not isinstance(sender, str):
            return True
        key = (sender, channel)
        boot = event.get("b")
        last = self._heard.get(key)
        if last is None:
            if len(self._heard) >= _NUMBERED_MAX:
                self._heard.clear()
        elif last[0] == boot and n <= last[1]:
            return False
        self._heard[key] = (boot, n)
        return True

    def _deliver(self, event: Event) -> None:
        try:
            self._on_event(event)
        except Exception as exc:  # the kind only: details may hold personal data
            log.error("a cross-node event failed: %s", type(exc).__name__)

    # -- presence and the seat directory ---------------------------------------------

    async def alive(self, nodes: set[str]) -> set[str]:
        ordered = sorted(nodes)
        if not ordered:
            return set()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for n in ordered:
                    pipe.exists(f"hearth:node:{n}")
                flags = await pipe.execute()
        except _UNREACHABLE as exc:
            raise RelayError("redis unreachable") from exc
        return {n for n, f in zip(ordered, flags, strict=True) if f}

    async def save_seats(self, saves: list[SeatSave]) -> None:
        """On the directory's own :class:`~matching.resp.Commands` link: packed by
        hiredis, written at once, one write for all (redis-py's pipeline and packer
        cost a pairing more than the writes themselves; docs/performance.md)."""
        if not saves:
            return
        ttl = self.seat_ttl_s
        commands: list[tuple[Any, ...]] = []
        for save in saves:
            if save.spent:
                commands.append(("DEL", f"hearth:resume:{save.spent}"))
            commands.append(("SET", f"hearth:seat:{save.seat}", self._seat_data(save), "EX", ttl))
            if save.digest and save.resume:
                commands.append(("SET", f"hearth:resume:{save.digest}", save.seat, "EX", ttl))
        await self._directory(commands)

    async def _directory(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Run these on the directory's link; RelayError if Redis failed or refused."""
        try:
            replies = await self._seats.run(commands)
        except _UNREACHABLE as exc:
            raise RelayError("redis unreachable") from exc
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):  # READONLY, OOM: not written
                raise RelayError(type(resp.error(reply)).__name__)
        return replies

    def _seat_data(self, save: SeatSave) -> bytes:
        data: bytes = _PACKER.pack({**save.record, "node": self.node_id, "digest": save.digest})
        return data

    async def claim(self, digest: str) -> tuple[str, dict[str, Any]] | None:
        try:
            raw_seat = await self._redis.getdel(f"hearth:resume:{digest}")
            if raw_seat is None:
                return None
            seat = raw_seat.decode() if isinstance(raw_seat, bytes) else str(raw_seat)
            record = await self.seat_record(seat)
        except _UNREACHABLE as exc:
            raise RelayError("redis unreachable") from exc
        return (seat, record) if record is not None else None

    async def seat_record(self, seat: str) -> dict[str, Any] | None:
        try:
            data = await self._redis.get(f"hearth:seat:{seat}")
        except _UNREACHABLE as exc:
            raise RelayError("redis unreachable") from exc
        return _record(data)

    async def forget_seat(self, seat: str) -> None:
        """Delete the seat's record and its resume key, on the link the saves take."""
        key = f"hearth:seat:{seat}"
        record = _record((await self._directory([("GET", key)]))[0])
        keys = [key]
        if record and record.get("digest"):
            keys.append(f"hearth:resume:{record['digest']}")
        await self._directory([("DEL", *keys)])
