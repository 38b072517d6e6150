"""Matching in Redis, so that many nodes share one queue and one set of listeners.

Every pairing decision is one Lua script (:mod:`matching.redis_lua`) run
atomically by Redis; the rules are those of :mod:`matching.base`, the same as
:class:`~matching.memory.MemoryMatcher`. Pairing happens inside the call that
brings the second party, never on a timer.

Data layout. Every key has a TTL; "1 h" keys are refreshed whenever they are
touched and by each node's heartbeat, so they live as long as there is activity
and vanish an hour after the last node is gone.

=====================================  ======  ======  ==========================================
key                                    type    TTL     holds
=====================================  ======  ======  ==========================================
``hearth:waiting``                     ZSET    1 h     waiting seats; score = risk band + arrival
``hearth:ticket:{seat}``               HASH    1 h     node, risk, topic, language, note, since,
                                                       arrival. Deleted on match and cancel.
``hearth:listener:{seat}``             HASH    1 h     node, status, topics, languages (JSON),
                                                       capacity, rooms, free_since, held_until,
                                                       order (first-on-shift tie-break), fkey
                                                       (its entry in ``hearth:free``)
``hearth:lrooms:{seat}``               SET     1 h     the listener's open rooms
``hearth:room:{room}``                 STRING  1 h     the room's listener (room -> listener)
``hearth:available``                   SET     1 h     listeners whose status is ``available``
``hearth:free``                        ZSET    1 h     available listeners below capacity, as
                                                       ``rooms|free_since|order|seat`` (fixed
                                                       width, score 0: lexical = fairness order)
``hearth:nodes``                       SET     1 h     nodes seen since their presence began
``hearth:listeners``                   SET     1 h     every listener on record
``hearth:rooms``                       ZSET    1 h     open rooms, scored by last refresh (stats)
``hearth:match_times``                 LIST    1 h     wall times of the last 20 matches
``hearth:arrivals``, ``hearth:heads``  STRING  1 h     arrival counters (ordinary, head requeue)
``hearth:listener_order``              STRING  1 h     counter for ``order``
``hearth:node:{node}``                 STRING  10 s    presence; refreshed every 3 s and by every
                                                       script the node runs
``hearth:epoch``                       STRING  1 h     random value; a change means Redis lost
                                                       its data and nodes must register again
``hearth:sweep``                       STRING  2.5 s   lock: one node a period sweeps the dead
=====================================  ======  ======  ==========================================

Score of a waiting seat: ``band * 2**44 + arrival`` with band 0 for crisis, 1 for
elevated, 2 for normal; ordinary arrivals are ``2**43 + INCR hearth:arrivals``,
head requeues ``INCR hearth:heads``, so they go before their level, first come
first served among themselves.

Nothing here is message text, an address or a token. The one piece of a
person's words is the ticket's ``note`` (the seeker's first words, which the
listener sees on match), sealed by the ``notes`` given (chatserver passes one
keyed by ``HEARTH_SECRET``: Redis holds it unreadable); it lives only while the
seeker waits: the ticket is deleted when matched or cancelled and otherwise
expires.

Presence: a ticket or listener whose node's presence key is gone is treated as
gone (skipped and deleted by the scripts, swept by the heartbeat), so a waiter
whose node died is never matched. A node that finds its own presence key lapsed
or ``hearth:epoch`` changed calls the resync callback (:meth:`set_resync`).

Changes are announced on the channel ``hearth:queue`` (the payload is the
node id) when another live node is there to hear them; a subscriber calls
``on_change`` for other nodes' changes, and each call here calls it at once for
this node's own.

Round trips: script calls made in the same turn of the event loop (by different
tasks), or while the previous batch is out, are sent in one write, in call
order, on the matcher's own :class:`~matching.resp.Commands` link; each script
still runs atomically. Consecutive calls of a pairing's two scripts (``request``
and ``room_ended``) in such a write go as one call of ``batch``, which runs them
in order in one script, atomically together.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import hiredis
import orjson
from redis import exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from . import resp
from .base import (
    HELD_FOREVER,
    Listener,
    Match,
    Matcher,
    MatchingError,
    NoteSealer,
    Place,
    Stats,
    Ticket,
    estimate,
)
from .memory import RATE_WINDOW_S
from .redis_lua import SCRIPTS
from .tasks import stop_task

log = logging.getLogger("hearth.matching.redis")

CHANNEL = "hearth:queue"
TTL_S = 3600
NODE_TTL_S = 10
_TTL, _NODE_TTL = str(TTL_S), str(NODE_TTL_S)  # as the scripts take them: text
_COMMON = 4  # every script's first arguments (node id, now, TTL, node TTL); see _run
BEAT_S = 3.0
# Pipelines of script calls in flight at once. While one is out, new calls wait and go
# together in the next: fewer writes and reads per call (bench: more pairs/s and less
# client CPU with 1 than with 2, 4 or no limit). Redis runs them one at a time anyway.
IN_FLIGHT = 1
TOUCH_EVERY = 10  # beats between refreshes of this node's own tickets and listeners
PING_S = 2.0  # a subscription that heard nothing for this long is PINGed (subscribe_forever)
SUBSCRIBE_TIMEOUT_S = 5.0  # connecting and subscribing, all together
FOREVER = 1e300  # how HELD_FOREVER is stored
COMMAND_TIMEOUT_S = 2.0  # a batch of script calls not answered by then fails (unreachable)
BATCHED = frozenset({"request", "room_ended"})  # the steps of the batch script (redis_lua)
_UNREACHABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ReadOnlyError, OSError,
                asyncio.TimeoutError)


def _opt(value: str | None) -> str:
    return "" if value is None else "v:" + value


def _none(value: str | bool) -> str | None:
    """Lua's false (an absent optional field) as None."""
    return None if value is False else str(value)


def _held(value: str) -> float:
    held = float(value)
    return HELD_FOREVER if held >= FOREVER / 10 else held


# One retry, on connection errors only: after a Redis restart the pool's connections
# are dead and the new server never saw the command, so it is sent again on a fresh
# connection. Timeouts are not retried: a script may have run.
ONE_RETRY_ON_RECONNECT = Retry(NoBackoff(), 1, supported_errors=(rexc.ConnectionError,))


@dataclass(slots=True)
class _Call:
    """One script call waiting to be sent with the others of its turn."""

    name: str
    args: list[Any]
    reply: asyncio.Future[Any]

    def settle(self, reply: Any) -> None:
        if self.reply.done():
            return  # the caller gave up (cancelled)
        if isinstance(reply, BaseException):
            self.reply.set_exception(reply)
        else:
            self.reply.set_result(reply)


def _units(batch: list[_Call]) -> list[list[_Call]]:
    """The calls of one write as the scripts that run them, in order: each run of
    consecutive calls in :data:`BATCHED` is one unit (the batch script), and any other
    call a unit of its own."""
    units: list[list[_Call]] = []
    for call in batch:
        if call.name in BATCHED and units and units[-1][0].name in BATCHED:
            units[-1].append(call)
        else:
            units.append([call])
    return units


def _script(unit: list[_Call]) -> str:
    return unit[0].name if len(unit) == 1 else "batch"


def _settle(unit: list[_Call], reply: Any) -> None:
    """Give each call of the unit its part of the script's reply (or its error)."""
    if isinstance(reply, hiredis.ReplyError):
        for call in unit:
            call.settle(resp.error(reply))
        return
    if len(unit) == 1:
        unit[0].settle(orjson.loads(reply))
        return
    lapsed, steps = orjson.loads(reply)
    for i, (call, (changed, info, raw)) in enumerate(zip(unit, steps, strict=True)):
        call.settle((lapsed and i == 0, changed, info, raw))  # lapsed: told once


class RedisMatcher(Matcher):
    def __init__(self, url: str, node_id: str, notes: NoteSealer | None = None) -> None:
        self.node_id = node_id
        self._notes = notes  # seals each note while Redis keeps it (chatserver/seal.py)
        pool = BlockingConnectionPool.from_url(
            url, max_connections=20, timeout=3, socket_timeout=2, socket_connect_timeout=2,
            health_check_interval=10, decode_responses=True, retry=ONE_RETRY_ON_RECONNECT)
        self._redis = Redis(connection_pool=pool)
        self._scripts = {name: self._redis.register_script(src) for name, src in SCRIPTS.items()}
        self._commands = resp.Commands(self._redis, COMMAND_TIMEOUT_S)  # the scripts' link
        self._seed = secrets.token_hex(16)  # room ids: sha1 of this and a counter, in Lua
        self._seeds = itertools.count()
        self._batch: list[_Call] = []  # script calls waiting to be sent
        self._senders: set[asyncio.Task[None]] = set()
        self._on_change: Callable[[], None] = lambda: None
        self._resync: Callable[[], Awaitable[None]] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._resync_again = False
        self._epoch: str | None = None
        self._started = False
        self._lapsed = False  # the last script found this node's presence key gone
        self._mine_tickets: set[str] = set()
        # The notes of this node's requests, as sent: a match of one made here needs no
        # opening (~16k instructions a pairing). Kept while the ticket is, as above.
        self._own_notes: dict[str, str] = {}
        self._mine_listeners: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------

    async def start(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        try:
            await self._beat(touch=True)
        except MatchingError:
            log.warning("redis unreachable at start; will keep trying")
        self._started = True
        self._tasks = [asyncio.create_task(self._heartbeat()),
                       asyncio.create_task(self._subscriber())]

    async def close(self) -> None:
        self._on_change = lambda: None
        for task in [*self._tasks, self._resync_task]:
            await stop_task(task)
        if self._senders:  # let the calls already sent settle
            await asyncio.wait(set(self._senders), timeout=1)
        self._commands.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._redis.delete(f"hearth:node:{self.node_id}"), 1)
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()

    def set_resync(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._resync = callback

    async def ready(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), 1.0))
        except Exception:
            return False

    # -- seekers -----------------------------------------------------------------

    async def request(self, ticket: Ticket, *, head: bool = False) -> list[Match]:
        now = time.time()
        if ticket.since == 0.0:
            ticket.since = now
        if ticket.note is not None and self._notes is not None:
            self._own_notes[ticket.seat] = ticket.note
        try:
            _, matches = await self._run(
                "request", now, ticket.seat, ticket.node, ticket.risk, _opt(ticket.topic),
                _opt(ticket.language), _opt(self._seal_note(ticket)), repr(ticket.since),
                "1" if head else "0",
                self._room_seed())
        except MatchingError:
            self._own_notes.pop(ticket.seat, None)  # a match of it opens the note instead
            raise
        if matches:
            self._mine_tickets.discard(ticket.seat)
            self._own_notes.pop(ticket.seat, None)
        else:
            self._mine_tickets.add(ticket.seat)
        return matches

    async def cancel(self, seat: str) -> bool:
        info, _ = await self._run("cancel", time.time(), seat)
        self._mine_tickets.discard(seat)
        self._own_notes.pop(seat, None)
        return bool(info[0])

    async def raise_risk(self, seat: str, risk: str) -> None:
        await self._run("raise_risk", time.time(), seat, risk)

    # -- listeners ---------------------------------------------------------------

    async def set_shift(self, listener: Listener) -> list[Match]:
        held = FOREVER if listener.held_until == HELD_FOREVER else listener.held_until
        info, matches = await self._run(
            "set_shift", time.time(), listener.seat, listener.node, listener.status,
            json.dumps(list(listener.topics)), json.dumps(list(listener.languages)),
            str(listener.capacity), str(listener.rooms), repr(held), self._room_seed())
        listener.rooms = int(info[0])
        listener.held_until = _held(info[1])
        listener.free_since = float(info[2])
        self._mine_listeners.add(listener.seat)
        return matches

    async def hold(self, seat: str, until: float) -> list[Match]:
        held = FOREVER if until == HELD_FOREVER else until
        _, matches = await self._run("hold", time.time(), seat, repr(held),
                                     self._room_seed())
        return matches

    async def room_ended(self, room: str) -> list[Match]:
        _, matches = await self._run("room_ended", time.time(), room, self._room_seed())
        return matches

    async def restore_rooms(self, seat: str, rooms: list[str]) -> None:
        await self._run("restore_rooms", time.time(), seat, *rooms)

    async def drop_listener(self, seat: str) -> None:
        await self._run("drop_listener", time.time(), seat)
        self._mine_listeners.discard(seat)

    # -- views -------------------------------------------------------------------

    async def places(self, seats: list[str]) -> dict[str, Place]:
        if not seats:
            return {}
        now = time.time()
        info, _ = await self._run("places", now, *seats)
        waiting, on_shift, raw_times, ranks = int(info[0]), int(info[1]), info[2], info[3]
        cutoff = now - RATE_WINDOW_S
        times = [t for t in sorted(float(x) for x in raw_times) if t >= cutoff]
        out: dict[str, Place] = {}
        for seat, rank in zip(seats, ranks, strict=True):
            if int(rank) < 0:
                continue
            position = int(rank) + 1
            out[seat] = Place(position, waiting, estimate(position, times, on_shift), on_shift)
        return out

    async def listeners(self, seats: list[str]) -> dict[str, tuple[Listener, int]]:
        if not seats:
            return {}
        info, _ = await self._run("listeners", time.time(), *seats)
        out: dict[str, tuple[Listener, int]] = {}
        for seat, entry in zip(seats, info, strict=True):
            if not entry:
                continue
            f, fitting = entry[0], int(entry[1])
            out[seat] = (Listener(
                seat, f[0], f[1], tuple(json.loads(f[2])), tuple(json.loads(f[3])), int(f[4]),
                int(f[5]), float(f[6]), _held(f[7])), fitting)
        return out

    async def stats(self) -> Stats:
        info, _ = await self._run("stats", time.time())
        by_risk = {"crisis": int(info[3]), "elevated": int(info[4]), "normal": int(info[5])}
        return Stats(int(info[0]), int(info[1]), int(info[2]), by_risk)

    # -- internals -----------------------------------------------------------------

    async def _run(self, name: str, now: float, *args: str) -> tuple[Any, list[Match]]:
        """Run one script; announce a change locally; turn its matches into Matches.

        Scripts called in the same turn of the event loop (by different tasks), or
        while the previous batch is out, go to Redis in one write, in the order
        they were called; each runs atomically (a pairing's consecutive calls
        together, as one call of the batch script: :meth:`_send`)."""
        # now with 7 decimals, fixed width: the scripts keep it as text (redis_lua).
        call = _Call(name, [self.node_id, f"{now:.7f}", _TTL, _NODE_TTL, *args],
                     asyncio.get_running_loop().create_future())
        if not self._batch and len(self._senders) < IN_FLIGHT:
            asyncio.get_running_loop().call_soon(self._send_batch)
        self._batch.append(call)
        try:
            lapsed, changed, info, raw = await call.reply
        except _UNREACHABLE as exc:
            raise MatchingError("redis unreachable") from exc
        self._lapsed = bool(lapsed)
        if lapsed and self._started:
            log.warning("this node's presence had lapsed in redis; registering again")
            # This resync also answers a new epoch (Redis restarted empty), so the next
            # beat takes the epoch as it finds it instead of registering a second time,
            # which could put back a seeker matched in between. A later loss of data
            # removes the presence key again and is caught as a lapse.
            self._epoch = None
            self._need_resync()
        matches = [self._match(m, now) for m in raw]
        if changed:
            self._on_change()
        return info, matches

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        task = asyncio.create_task(self._send(batch))
        self._senders.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._senders.discard(task)
        if self._batch:  # calls that waited for the batch out
            self._send_batch()

    async def _send(self, batch: list[_Call]) -> None:
        """Send a batch of script calls in one write and settle each call's future
        with its reply, decoded: lapsed, changed, info, matches.

        On the matcher's own :class:`~matching.resp.Commands` link rather than
        redis-py's pipeline: packing by hiredis, one write, the replies read by
        hiredis in ``data_received`` (docs/performance.md). Runs of calls in
        :data:`BATCHED` go as one call of the batch script each."""
        try:
            units = _units(batch)
            replies = await self._commands.run([self._evalsha(unit) for unit in units])
            for unit, reply in zip(units, replies, strict=True):
                if isinstance(reply, hiredis.ReplyError) and \
                        isinstance(resp.error(reply), rexc.NoScriptError):
                    # Redis restarted or flushed its scripts: the call did not run.
                    await self._commands.run(
                        [("SCRIPT", "LOAD", self._scripts[_script(unit)].script)])
                    reply = (await self._commands.run([self._evalsha(unit)]))[0]
                _settle(unit, reply)
        except BaseException as exc:
            for call in batch:
                call.settle(exc)
            if not isinstance(exc, Exception):
                raise

    def _evalsha(self, unit: list[_Call]) -> tuple[Any, ...]:
        first, sha = unit[0], self._scripts[_script(unit)].sha
        if len(unit) == 1:
            return ("EVALSHA", sha, 0, *first.args)
        # One now for all (the first call's): the batch runs at one instant.
        args: list[Any] = ["EVALSHA", sha, 0, *first.args[:_COMMON]]
        for call in unit:
            args += [call.name, str(len(call.args) - _COMMON), *call.args[_COMMON:]]
        return tuple(args)

    def _seal_note(self, ticket: Ticket) -> str | None:
        if ticket.note is None or self._notes is None:
            return ticket.note
        return self._notes.seal_text(ticket.note, ticket.seat)

    def _room_seed(self) -> str:
        """Unique per call and unguessable: what the script hashes into room ids."""
        return f"{self._seed}.{next(self._seeds)}"

    def _match(self, m: list[Any], now: float) -> Match:
        room, seat, node, risk, topic, language, note, since, listener, listener_node = m
        kept = _none(note)
        if kept is not None and self._notes is not None:
            own = self._own_notes.pop(seat, None) if node == self.node_id else None
            # open_text: None if it was sealed under another secret
            kept = own if own is not None else self._notes.open_text(kept, seat)
        ticket = Ticket(seat, node, risk, _none(topic), _none(language), kept, float(since))
        return Match(room, ticket, listener, listener_node, max(0.0, now - ticket.since))

    async def _beat(self, *, touch: bool) -> None:
        tickets = sorted(self._mine_tickets) if touch else []
        listeners = sorted(self._mine_listeners) if touch else []
        info, _ = await self._run("heartbeat", time.time(), secrets.token_hex(8),
                                  str(int(BEAT_S * 1000 * 0.8)), str(len(tickets)),
                                  *tickets, *listeners)
        epoch, gone_tickets, gone_listeners = info
        self._mine_tickets.difference_update(gone_tickets)
        for seat in gone_tickets:
            self._own_notes.pop(seat, None)
        self._mine_listeners.difference_update(gone_listeners)
        if self._epoch is not None and epoch != self._epoch and not self._lapsed:
            log.warning("redis lost its data (new epoch); registering again")
            self._need_resync()
        self._epoch = epoch

    async def _heartbeat(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(BEAT_S)
            beats += 1
            try:
                await self._beat(touch=beats % TOUCH_EVERY == 0)
            except MatchingError:
                log.debug("heartbeat: redis unreachable")
            except Exception as exc:  # the kind only: details may hold personal data
                log.error("heartbeat failed: %s", type(exc).__name__)

    def _need_resync(self) -> None:
        if self._resync_task is not None and not self._resync_task.done():
            self._resync_again = True
            return
        self._resync_task = asyncio.create_task(self._run_resync())

    async def _run_resync(self) -> None:
        while True:
            self._resync_again = False
            if self._resync is not None:
                try:
                    await self._resync()
                except Exception as exc:  # the kind only: details may hold personal data
                    log.error("resync failed; trying again shortly: %s", type(exc).__name__)
                    self._resync_again = True
                    await asyncio.sleep(BEAT_S)
                    continue
            self._on_change()
            if not self._resync_again:
                return

    async def _subscriber(self) -> None:
        """Call on_change for other nodes' changes (and after every reconnect, since
        notifications may have been missed while away)."""

        def heard(channel: str, data: str) -> None:
            if data != self.node_id:
                self._on_change()

        await subscribe_forever(self._redis, (CHANNEL,), heard, self._on_change, "queue")


async def subscribe_forever(redis: Redis, channels: tuple[str, ...],
                            on_message: Callable[[Any, Any], None],
                            on_connected: Callable[[], None], what: str,
                            ping_s: float = PING_S) -> None:
    """Read ``channels`` until cancelled, calling ``on_message`` with each message's
    channel and data, and resubscribing with backoff (0.1 s to 2 s) after any loss: ``CLIENT
    KILL TYPE pubsub``, a Redis restart, a network cut.

    On a :class:`~matching.resp.Link` of its own, which calls ``on_message`` as
    the bytes arrive, with no task resumed for a message (redis-py's reads cost
    a cross-node flush's receiver more; docs/performance.md). A watchdog ticks
    every ``ping_s``: a connection that heard nothing over a whole tick is sent a
    PING, and one that hears nothing, not even the answer, by the tick after is
    dropped. A cut that sent no reset is noticed within 3 x ping_s; a busy
    connection is never pinged."""
    backoff = 0.1

    def connected() -> None:
        nonlocal backoff
        backoff = 0.1
        on_connected()

    while True:
        try:
            await _subscribed(redis, channels, on_message, connected, ping_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("%s subscriber lost redis: %s", what, type(exc).__name__)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 2.0)


async def _subscribed(redis: Redis, channels: tuple[str, ...],
                      on_message: Callable[[Any, Any], None],
                      on_connected: Callable[[], None], ping_s: float) -> None:
    """Subscribe a new link and read it until it fails or, by its watchdog, is lost."""
    loop = asyncio.get_running_loop()
    watchdog: asyncio.TimerHandle | None = None
    link: resp.Link | None = None
    try:
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
            link = await resp.connect(redis, on_message)
            replies = await link.request(resp.pack_command(("SUBSCRIBE", *channels)),
                                         len(channels))
            if not all(isinstance(reply, list) for reply in replies):  # an error: not subscribed
                raise rexc.ConnectionError("subscribe refused")
        on_connected()
        quiet, heard = 0, link.heard  # watchdog ticks with nothing heard

        def tick() -> None:
            nonlocal quiet, heard, watchdog
            assert link is not None
            if link.heard != heard:
                quiet, heard = 0, link.heard
            quiet += 1
            if quiet == 3:
                link.close()  # lost: the wait below ends
                return
            if quiet == 2 and link.lost is None:
                link.request(resp.pack_command(("PING",)), 0)  # its answer counts as heard
            watchdog = loop.call_later(ping_s, tick)

        watchdog = loop.call_later(ping_s, tick)
        await link.closed
        raise rexc.ConnectionError("subscription lost")
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if link is not None:
            link.close()
