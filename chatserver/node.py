"""The node: seats on this process, their rooms, and the matcher, tied together.

Connections call, in order: :meth:`Node.attach` after a valid ``hello``
(returns the seat), :meth:`Node.handle` for each later frame, and
:meth:`Node.detach` when the socket is gone. Everything a person sees is
pushed through :meth:`Node.send` or :meth:`Node.broadcast`, which never await
the network.

The node keeps the shared state (seats, rooms, moderators) and a seat's life
from ``hello`` to its end; what a frame does is decided by the node's parts,
each holding a reference to the node: :class:`~.pairing.Pairing` (who waits,
who is on shift), :class:`~.home.Home` (rooms opened here and ended),
:class:`~.talk.Talk` (what members do in a room), :class:`~.moderation.Moderation`
(what moderators see and do) and :class:`~.crossnode.CrossNode` (seats and rooms
on other nodes). Who is paired is the matcher's; how frames look is
:mod:`protocol`'s; what a room holds is :mod:`rooms`'.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from matching import Matcher, MatchingError
from matching.tasks import stop_task

from . import metrics, protocol, seal
from .aliases import seeker_alias
from .config import Settings
from .connection import Connection
from .crossnode import CrossNode
from .home import Home
from .moderation import Moderation
from .pairing import Pairing
from .protocol import CloseCode, ErrorCode, FrameError, Outgoing
from .relay import MemoryRelay, Relay
from .rooms import Member, Room
from .seats import Seat, SeatRegistry
from .talk import Talk

log = logging.getLogger("hearth.node")
STOP_WORK_S = 1.0  # what background work still runs when the node stops has this long


class Node:
    def __init__(self, settings: Settings, matcher: Matcher, relay: Relay | None = None) -> None:
        self.settings = settings
        self.matcher = matcher
        self.cross = CrossNode(self, relay or MemoryRelay(settings.node_id))
        self.seats = SeatRegistry()
        self.rooms: dict[str, Room] = {}
        self.moderators: set[str] = set()
        # Origin key -> until (wall). Kept with the salt: a key means nothing once it rotates.
        self.blocked: dict[str, float] = {}
        self._salt = (secrets.token_bytes(32), int(time.time() // 86400))
        self.alias_key = seal.secret_key(settings.secret, "alias")  # aliases.seeker_alias
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stopped = False
        self._sweeper: asyncio.Task[None] | None = None
        self.pairing = Pairing(self)
        self.home = Home(self)
        self.talk = Talk(self)
        self.moderation = Moderation(self)
        # Straight to the parts' bound methods: no hop on the way to a message's broadcast.
        # A message and typing never wait for anything: they are handled by a plain
        # call, with no coroutine (and, from another node, no task) made for them.
        self.handlers: dict[type, Callable[[Seat, Any], Awaitable[None]]] = {
            protocol.Request: self.pairing.request,
            protocol.Cancel: self.pairing.cancel,
            protocol.Shift: self.pairing.shift,
            protocol.Leave: self.talk.leave,
            protocol.Escalate: self.talk.escalate,
            protocol.Rooms: self.moderation.rooms,
            protocol.Watch: self.moderation.watch,
            protocol.Join: self.moderation.join,
            protocol.Close: self.moderation.close,
            protocol.Whisper: self.moderation.whisper,
        }

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self.matcher.set_resync(self.pairing.resync)
        await self.matcher.start(self.pairing.queue_changed)
        await self.cross.start()
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        """Stop for good. Nothing that comes due later runs: a seat whose resume
        window runs out is not ended (another node may resume it from the directory),
        and no timer's work is started, so nothing tells Redis this node is alive
        again after the matcher's close deleted its presence. Work under way gets
        ``STOP_WORK_S`` to finish, then is cancelled."""
        self.stopped = True
        for seat in self.seats.all():
            seat.keep()
        await stop_task(self._sweeper)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_WORK_S)
            await asyncio.gather(*(stop_task(t) for t in list(self._tasks)))
        await self.cross.stop()
        await self.matcher.close()

    async def before_shutdown(self) -> None:
        """Tell everyone in a room that it ends, then let the outboxes drain.

        Called before the server closes every connection with 1012. In the
        embedded mode rooms cannot outlive the process, so they end with
        ``shutdown``.
        """
        for room in list(self.rooms.values()):
            self.home.end_room(room, {}, default="shutdown", requeue=False, notify_matcher=False)
        conns = [s.conn for s in self.seats.all() if s.conn is not None]
        await asyncio.gather(*(c.drain(1.0) for c in conns))

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run background work; its failure is logged by kind only, never its details.
        Once the node has stopped, work is dropped unstarted."""
        if self.stopped:
            if isinstance(coro, Coroutine):
                coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, FrameError) and exc.code == ErrorCode.UNAVAILABLE:
            log.warning("matching backend unreachable in background work")
        elif exc is not None:
            log.error("background work failed: %s", type(exc).__name__)

    async def _sweep(self) -> None:
        """End idle rooms; a short period keeps the idle limit accurate."""
        period = min(5.0, max(0.2, self.settings.idle_timeout_s / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for room in list(self.rooms.values()):
                if now - room.last_active >= self.settings.idle_timeout_s:
                    self.home.end_room(room, {}, default="idle", requeue=False)

    # -- seats -------------------------------------------------------------------

    def origin_key(self, address: str | None) -> str:
        """A keyed hash of the client address, salted in memory and rotated daily."""
        day = int(time.time() // 86400)
        if self._salt[1] != day:
            self._salt = (secrets.token_bytes(32), day)
            self.blocked.clear()
        return hmac.new(self._salt[0], (address or "").encode(), hashlib.sha256).hexdigest()

    async def attach(self, hello: protocol.Hello, name: str | None, conn: Connection,
                     origin_key: str) -> Seat | None:
        """Seat a new ``hello`` (or take back a resumed seat, held here or on another
        node) and send ``welcome``.

        Returns None when a resume token is spent or unknown (caller closes 4401).
        """
        if hello.resume is not None:
            seat = self.seats.take(hello.resume)
            claimed = False
            if seat is None:
                seat = await self.cross.claim(hello.resume)
                claimed = seat is not None
            if seat is None:
                return None
            if claimed:
                seat.origin_key = origin_key
            self._resume(seat, conn, hello.since, claimed=claimed)
            if claimed:
                self.spawn(self.cross.after_claim(seat, hello.since))
            return seat
        assert hello.role is not None
        seat = self.seats.create(hello.role, name or "")
        if not name:  # a seeker: named from its seat, the same on every node
            seat.alias = seeker_alias(self.alias_key, seat.id)
        seat.conn = conn
        seat.origin_key = origin_key
        if seat.role == "moderator":
            self.moderators.add(seat.id)
        metrics.CONNECTED.labels(seat.role).inc()
        conn.send(self._welcome(seat))
        if seat.role == "moderator":
            conn.send(self.moderation.rooms_list())
        return seat

    def _welcome(self, seat: Seat, rooms: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        rate = self.settings.rate
        resume = self.seats.issue_resume(seat)
        self.cross.save(seat)
        frame: dict[str, Any] = {
            "type": "welcome",
            "role": seat.role,
            "alias": seat.alias,
            "resume": resume,
            "resume_s": int(self.settings.resume_s),
            "limits": {
                "text": protocol.TEXT_MAX,
                "note": protocol.NOTE_MAX,
                "rate": [rate[0], int(rate[1]) if rate[1] == int(rate[1]) else rate[1]],
            },
        }
        if rooms is not None:
            frame["rooms"] = rooms
        return frame

    def _resume(self, seat: Seat, conn: Connection, since: dict[str, int] | int, *,
                claimed: bool = False) -> None:
        old = seat.conn
        seat.conn = conn
        seat.keep()
        if old is not None:
            old.close(CloseCode.RESUMED_ELSEWHERE)
        else:
            metrics.CONNECTED.labels(seat.role).inc()
        rooms = [self.rooms[r] for r in sorted(seat.rooms) if r in self.rooms]
        matched = {r.id: self.home.matched(r, seat) for r in rooms}
        matched.update({r: f for r, (_, f) in seat.remote_rooms.items() if f is not None})
        conn.send(self._welcome(seat, [matched[r] for r in sorted(matched)]))
        for room in rooms:
            after = since.get(room.id, 0) if isinstance(since, dict) else since
            for out in room.since(after):
                conn.push(out)
            if old is None:
                self.presence(room, seat, "back")
        if not claimed:  # the homes of remote rooms send presence and missed messages
            self.cross.tell_home(seat, "presence", state="back" if old is None else "sync",
                                 since=since)
        if seat.role == "moderator":
            conn.send(self.moderation.rooms_list())
        seat.last_place = None
        seat.last_shift = None
        if seat.role == "listener" and seat.status == "available":
            self.spawn(self.pairing.matcher_shift(seat, status="available"))
        self.pairing.queue_changed()

    def detach(self, seat: Seat, conn: Connection, code: int | None) -> None:
        """The socket is gone. A goodbye (1000) ends the seat; anything else keeps
        it for ``resume_s`` seconds."""
        if seat.conn is not conn:
            return  # resumed elsewhere already
        seat.conn = None
        metrics.CONNECTED.labels(seat.role).dec()
        if code == CloseCode.GOODBYE or conn.close_code == CloseCode.REMOVED:
            self.spawn(self.end_seat(seat, "peer_left"))
            return
        for room_id in seat.rooms:
            room = self.rooms.get(room_id)
            if room is not None:
                self.presence(room, seat, "away")
        self.cross.tell_home(seat, "presence", state="away")
        if seat.role == "listener" and seat.status == "available":
            self.spawn(self.pairing.matcher_shift(seat, status="away"))
        loop = asyncio.get_running_loop()
        seat.lost_timer = loop.call_later(
            self.settings.resume_s, lambda: self.spawn(self.end_seat(seat, "peer_lost"))
        )

    async def end_seat(self, seat: Seat, reason: str) -> None:
        """The seat is gone for good: its rooms end for the others with ``reason``."""
        if self.seats.get(seat.id) is not seat:
            return
        self.seats.remove(seat)
        self.moderators.discard(seat.id)
        if seat.node is None:
            self.cross.tell_home(seat, "gone", reason=reason)
            seat.rooms.difference_update(seat.remote_rooms)
            seat.remote_rooms.clear()
            self.cross.forget(seat)
        for room_id in list(seat.rooms):
            room = self.rooms.get(room_id)
            if room is None:
                continue
            member = room.member(seat.id)
            if member is not None and member.mode != "member":
                self.moderation.leave(room, seat, member)
            else:
                self.home.end_room(room, {seat.id: None}, default=reason,
                                   requeue=seat.role == "listener")
        if seat.node is not None:
            return  # a ghost: its own node keeps its place in the queue
        try:
            if seat.waiting:
                seat.waiting = False
                await self.matcher.cancel(seat.id)
            if seat.role == "listener":
                await self.matcher.drop_listener(seat.id)
        except MatchingError:
            log.warning("matcher unreachable while ending a seat")

    # -- dispatch ----------------------------------------------------------------

    def handle_now(self, seat: Seat, frame: protocol.Frame) -> bool:
        """Handle ``frame`` at once if its handler never awaits (raising what it
        raises); False, having done nothing, if :meth:`handle` must: ``message``
        and ``typing``. Tested with isinstance rather than looked up in a table of
        handlers: compiled, the two calls below are calls in C, and one through a
        bound method from a table went through the interpreter's protocol."""
        if not isinstance(frame, (protocol.Message, protocol.Typing)):
            return False
        # Both kinds name a room; one of this node's needs no look at the others.
        if (seat.node is None and frame.room not in self.rooms
                and self.cross.forward(seat, frame)):
            return True  # the room lives on another node
        if isinstance(frame, protocol.Message):
            self.talk.message(seat, frame)
        else:
            self.talk.typing(seat, frame)
        return True

    async def handle(self, seat: Seat, frame: protocol.Frame) -> None:
        if self.handle_now(seat, frame):
            return
        if seat.node is None and self.cross.forward(seat, frame):
            return  # the room lives on another node
        await self.handlers[type(frame)](seat, frame)

    def send(self, seat_id: str, frame: dict[str, Any] | Outgoing) -> None:
        self.broadcast((seat_id,), frame)

    def broadcast(self, seat_ids: Iterable[str], frame: dict[str, Any] | Outgoing) -> None:
        """Push one frame, encoded once, to local seats; post it once per other node."""
        out = frame if isinstance(frame, Outgoing) else Outgoing(frame)
        ghosts: dict[str, list[str]] | None = None  # made only when a member is elsewhere
        get = self.seats.get
        for seat_id in seat_ids:
            seat = get(seat_id)
            if seat is None:
                continue
            if seat.node is not None:
                if ghosts is None:
                    ghosts = {}
                ghosts.setdefault(seat.node, []).append(seat_id)
            elif seat.conn is not None:
                seat.conn.push(out)
        if ghosts:
            self.cross.deliver(ghosts, out)

    def room_of(self, seat: Seat, room_id: str) -> tuple[Room, Member]:
        """The room and the seat's membership, or ``not_in_room``."""
        room = self.rooms.get(room_id)
        member = room.member(seat.id) if room is not None else None
        if room is None or member is None:
            raise FrameError(ErrorCode.NOT_IN_ROOM, "You are not in that room.")
        return room, member

    def presence(self, room: Room, seat: Seat, state: str) -> None:
        """Tell the others in the room that this seat is away, back, joined or left
        (nothing for a watching moderator, who is never announced)."""
        member = room.member(seat.id)
        if member is None or member.mode == "watching":
            return
        self.broadcast(room.others(seat.id), {"type": "presence", "room": room.id,
                                              "who": member.who, "state": state})
