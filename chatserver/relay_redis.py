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

Posts go through one writer task that drains a queue into a pipeline, so
events to one node keep their order and a burst costs one round trip.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgpack
from redis import exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis

from matching.redis import ONE_RETRY_ON_RECONNECT, subscribe_forever

from .relay import Event, OnEvent, Relay, RelayError, cancel_quietly

log = logging.getLogger("hearth.relay")

BROADCAST = "hearth:broadcast"
_UNREACHABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ReadOnlyError, OSError,
                asyncio.TimeoutError)
_BATCH = 256
_RETRY_S = 0.05  # pause before publishing a failed batch once more


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
        self._on_event: OnEvent = lambda event: None
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=100_000)
        self._healthy = True
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, on_event: OnEvent) -> None:
        self._on_event = on_event
        self._tasks = [asyncio.create_task(self._writer()), asyncio.create_task(self._reader())]

    async def close(self) -> None:
        self._on_event = lambda event: None
        for task in self._tasks:
            await cancel_quietly(task)
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()

    @property
    def healthy(self) -> bool:
        return self._healthy

    # -- events --------------------------------------------------------------------

    def post(self, node: str, event: Event) -> None:
        self._put(inbox(node), {**event, "from": self.node_id})

    def broadcast(self, event: Event) -> None:
        self._put(BROADCAST, {**event, "from": self.node_id})

    def _put(self, channel: str, event: Event) -> None:
        try:
            self._queue.put_nowait((channel, msgpack.packb(event, use_bin_type=True)))
        except asyncio.QueueFull:
            self._healthy = False
            log.warning("relay backlog full; dropping an event")

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._publish(batch)
            except _UNREACHABLE:
                # After a Redis restart the pool's first connection is dead; a publish
                # that failed on it sent nothing, so it is sent once more on a new one.
                await asyncio.sleep(_RETRY_S)
                try:
                    await self._publish(batch)
                except _UNREACHABLE:
                    self._healthy = False
                    log.warning("redis unreachable; %d cross-node events lost", len(batch))
                except Exception as exc:  # the kind only: details may hold personal data
                    log.error("relay writer failed: %s", type(exc).__name__)
            except Exception as exc:  # the kind only: details may hold personal data
                log.error("relay writer failed: %s", type(exc).__name__)

    async def _publish(self, batch: list[tuple[str, bytes]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, data in batch:
                pipe.publish(channel, data)
            await pipe.execute()
        self._healthy = True

    async def _reader(self) -> None:
        """Deliver inbox and broadcast events; reconnect with backoff forever."""

        def heard(message: dict[str, Any]) -> None:
            event = msgpack.unpackb(message["data"], raw=False)
            if isinstance(event, dict) and event.get("from") != self.node_id:
                self._deliver(event)

        await subscribe_forever(self._redis, (inbox(self.node_id), BROADCAST), heard,
                                lambda: self._on_event({"k": "reconnected"}), "relay")

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

    async def save_seat(self, seat: str, record: dict[str, Any], digest: str | None) -> None:
        data = msgpack.packb({**record, "node": self.node_id, "digest": digest},
                             use_bin_type=True)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(f"hearth:seat:{seat}", data, ex=self.seat_ttl_s)
                if digest:
                    pipe.set(f"hearth:resume:{digest}", seat, ex=self.seat_ttl_s)
                await pipe.execute()
        except _UNREACHABLE as exc:
            raise RelayError("redis unreachable") from exc

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
        return dict(msgpack.unpackb(data, raw=False)) if data else None

    async def forget_seat(self, seat: str) -> None:
        record = await self.seat_record(seat)
        keys = [f"hearth:seat:{seat}"]
        if record and record.get("digest"):
            keys.append(f"hearth:resume:{record['digest']}")
        try:
            await self._redis.delete(*keys)
        except _UNREACHABLE as exc:
            raise RelayError("redis unreachable") from exc
