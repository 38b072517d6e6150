"""The node: seats on this process, their rooms, and the matcher, tied together.

Connections call, in order: :meth:`Node.attach` after a valid ``hello``
(returns the seat), :meth:`Node.handle` for each later frame, and
:meth:`Node.detach` when the socket is gone. Everything a person sees is
pushed through :meth:`Node.send`, which never awaits the network.

What happens to a seat is decided here; who waits and who is paired is the
matcher's; how frames look is :mod:`protocol`'s; what a room holds is
:mod:`rooms`'.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from matching import HELD_FOREVER, Listener, Match, Matcher, MatchingError, Ticket

from . import contact, metrics, protocol, resources, risk, tokens
from .aliases import random_alias
from .config import Settings
from .connection import Connection
from .crossnode import CrossNode
from .protocol import CloseCode, ErrorCode, FrameError, Outgoing
from .relay import MemoryRelay, Relay
from .rooms import Member, Room
from .seats import Seat, SeatRegistry

log = logging.getLogger("hearth.node")
REFRESH_S = 0.05
SCORE_BATCH_S = 0.01  # a seeker message is scored at most this long after it was relayed


def _score(text: str, language: str | None) -> risk.Level | None:
    """risk.score, and None if it failed: one message's failure must not cost the
    others of its batch their scoring (logged by kind only: never the text)."""
    try:
        return risk.score(text, language)
    except Exception as exc:
        log.error("risk scoring failed: %s", type(exc).__name__)
        return None


def now_ms() -> int:
    return int(time.time() * 1000)


class Node:
    def __init__(self, settings: Settings, matcher: Matcher, relay: Relay | None = None) -> None:
        self.settings = settings
        self.matcher = matcher
        self.cross = CrossNode(self, relay or MemoryRelay(settings.node_id))
        self.seats = SeatRegistry()
        self.rooms: dict[str, Room] = {}
        self.moderators: set[str] = set()
        self._blocked: dict[str, float] = {}  # origin key -> until (wall)
        self._salt = (secrets.token_bytes(32), int(time.time() // 86400))
        self._refresh_pending = False
        self._rooms_pending = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._to_score: list[tuple[Room, Seat, str]] = []  # seeker messages to score
        self._sweeper: asyncio.Task[None] | None = None
        self.handlers: dict[type, Callable[[Seat, Any], Awaitable[None]]] = {
            protocol.Request: self._request,
            protocol.Cancel: self._cancel,
            protocol.Shift: self._shift,
            protocol.Message: self._message,
            protocol.Typing: self._typing,
            protocol.Leave: self._leave,
            protocol.Escalate: self._escalate,
            protocol.Rooms: self._rooms_frame,
            protocol.Watch: self._watch,
            protocol.Join: self._join,
            protocol.Close: self._close,
            protocol.Whisper: self._whisper,
        }

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self.matcher.set_resync(self._resync)
        await self.matcher.start(self._queue_changed)
        await self.cross.start()
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.cross.stop()
        await self.matcher.close()

    async def before_shutdown(self) -> None:
        """Tell everyone in a room that it ends, then let the outboxes drain.

        Called before the server closes every connection with 1012. In the
        embedded mode rooms cannot outlive the process, so they end with
        ``shutdown``.
        """
        for room in list(self.rooms.values()):
            self._end_room(room, {}, default="shutdown", requeue=False, notify_matcher=False)
        conns = [s.conn for s in self.seats.all() if s.conn is not None]
        await asyncio.gather(*(c.drain(1.0) for c in conns))

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run background work; its failure is logged by kind only, never its details."""
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

    # -- seats -------------------------------------------------------------------

    def origin_key(self, address: str | None) -> str:
        """A keyed hash of the client address, salted in memory and rotated daily."""
        day = int(time.time() // 86400)
        if self._salt[1] != day:
            self._salt = (secrets.token_bytes(32), day)
            self._blocked.clear()
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
                seat = await self.cross.claim(tokens.digest(hello.resume))
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
        alias = name if name else random_alias()
        seat = self.seats.create(hello.role, alias)
        seat.conn = conn
        seat.origin_key = origin_key
        if seat.role == "moderator":
            self.moderators.add(seat.id)
        metrics.CONNECTED.labels(seat.role).inc()
        conn.send(self._welcome(seat))
        if seat.role == "moderator":
            conn.send(self._rooms_list())
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
        if seat.lost_timer is not None:
            seat.lost_timer.cancel()
            seat.lost_timer = None
        if old is not None:
            old.close(CloseCode.RESUMED_ELSEWHERE)
        else:
            metrics.CONNECTED.labels(seat.role).inc()
        rooms = [self.rooms[r] for r in sorted(seat.rooms) if r in self.rooms]
        matched = {r.id: self._matched(r, seat) for r in rooms}
        matched.update({r: f for r, (_, f) in seat.remote_rooms.items() if f is not None})
        conn.send(self._welcome(seat, [matched[r] for r in sorted(matched)]))
        for room in rooms:
            after = since.get(room.id, 0) if isinstance(since, dict) else since
            for out in room.since(after):
                conn.push(out)
            if old is None:
                self._presence(room, seat, "back")
        if not claimed:  # the homes of remote rooms send presence and missed messages
            self.cross.tell_home(seat, "presence", state="back" if old is None else "sync",
                                 since=since)
        if seat.role == "moderator":
            conn.send(self._rooms_list())
        seat.last_place = None
        seat.last_shift = None
        if seat.role == "listener" and seat.status == "available":
            self.spawn(self._matcher_shift(seat, status="available"))
        self._queue_changed()

    def detach(self, seat: Seat, conn: Connection, code: int | None) -> None:
        """The socket is gone. A goodbye (1000) ends the seat; anything else keeps
        it for ``resume_s`` seconds."""
        if seat.conn is not conn:
            return  # resumed elsewhere already
        seat.conn = None
        metrics.CONNECTED.labels(seat.role).dec()
        if code == CloseCode.GOODBYE or conn.close_code == CloseCode.REMOVED:
            self.spawn(self._end_seat(seat, "peer_left"))
            return
        for room_id in seat.rooms:
            room = self.rooms.get(room_id)
            if room is not None:
                self._presence(room, seat, "away")
        self.cross.tell_home(seat, "presence", state="away")
        if seat.role == "listener" and seat.status == "available":
            self.spawn(self._matcher_shift(seat, status="away"))
        loop = asyncio.get_running_loop()
        seat.lost_timer = loop.call_later(
            self.settings.resume_s, lambda: self.spawn(self._end_seat(seat, "peer_lost"))
        )

    async def _end_seat(self, seat: Seat, reason: str) -> None:
        """The seat is gone for good: its rooms end for the others with ``reason``."""
        if self.seats.get(seat.id) is not seat:
            return
        self.seats.remove(seat)
        self.moderators.discard(seat.id)
        if seat.node is None:
            self.cross.tell_home(seat, "gone", reason=reason)
            seat.rooms.difference_update(seat.remote_rooms)
            seat.remote_rooms.clear()
            self.spawn(self.cross.forget(seat))
        for room_id in list(seat.rooms):
            room = self.rooms.get(room_id)
            if room is None:
                continue
            member = room.member(seat.id)
            if member is not None and member.mode != "member":
                self._leave_as_moderator(room, seat, member)
            else:
                self._end_room(room, {seat.id: None}, default=reason,
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

    async def handle(self, seat: Seat, frame: protocol.Frame) -> None:
        if seat.node is None and self.cross.forward(seat, frame):
            return  # the room lives on another node
        await self.handlers[type(frame)](seat, frame)

    def send(self, seat_id: str, frame: dict[str, Any] | Outgoing) -> None:
        self.broadcast((seat_id,), frame)

    def broadcast(self, seat_ids: Iterable[str], frame: dict[str, Any] | Outgoing) -> None:
        """Push one frame, encoded once, to local seats; post it once per other node."""
        out = frame if isinstance(frame, Outgoing) else Outgoing(frame)
        ghosts: dict[str, list[str]] = {}
        for seat_id in seat_ids:
            seat = self.seats.get(seat_id)
            if seat is None:
                continue
            if seat.node is not None:
                ghosts.setdefault(seat.node, []).append(seat_id)
            elif seat.conn is not None:
                seat.conn.push(out)
        if ghosts:
            self.cross.deliver(ghosts, out)

    def _room_of(self, seat: Seat, room_id: str) -> tuple[Room, Member]:
        room = self.rooms.get(room_id)
        member = room.member(seat.id) if room is not None else None
        if room is None or member is None:
            raise FrameError(ErrorCode.NOT_IN_ROOM, "You are not in that room.")
        return room, member

    # -- seekers -----------------------------------------------------------------

    async def _request(self, seat: Seat, frame: protocol.Request) -> None:
        if seat.waiting or seat.rooms:
            raise FrameError(ErrorCode.NOT_ALLOWED, "You are already waiting or talking.")
        if self._blocked.get(seat.origin_key, 0) > time.time():
            raise FrameError(ErrorCode.NOT_ALLOWED, "A moderator has paused new chats from here.")
        level = risk.score(frame.note, frame.language) if frame.note else "normal"
        note = frame.note
        if note:
            note, masked = contact.mask_contacts(note)
        seat.topic, seat.language, seat.note = frame.topic, frame.language, note
        seat.risk = risk.higher(seat.risk, level)
        await self._enqueue(seat, head=False)
        if seat.risk == "crisis":
            self.send(seat.id, self._resources(seat))

    def _ticket(self, seat: Seat) -> Ticket:
        return Ticket(seat.id, self.settings.node_id, seat.risk, seat.topic, seat.language,
                      seat.note)

    def _listener(self, seat: Seat, status: str) -> Listener:
        return Listener(seat.id, self.settings.node_id, status, seat.topics, seat.languages,
                        seat.capacity)

    async def _enqueue(self, seat: Seat, *, head: bool) -> None:
        try:
            matches = await self.matcher.request(self._ticket(seat), head=head)
        except MatchingError:
            raise FrameError(ErrorCode.UNAVAILABLE, "Matching is unavailable; try again.") from None
        if not head or not seat.queued_at:
            seat.queued_at = time.monotonic()
        seat.waiting = True
        self.cross.save(seat)
        metrics.REQUESTS.labels(seat.risk).inc()
        try:
            if not any(m.ticket.seat == seat.id for m in matches):  # else it is not waiting
                await self._send_place(seat, force=True)
        except MatchingError:
            pass  # the place is sent again on the next refresh
        finally:
            self._open_rooms(matches)  # a match the backend made must be opened, whatever else


    async def _cancel(self, seat: Seat, frame: protocol.Cancel) -> None:
        if not seat.waiting:
            raise FrameError(ErrorCode.NOT_ALLOWED, "You are not waiting.")
        try:
            await self.matcher.cancel(seat.id)
        except MatchingError:
            raise FrameError(ErrorCode.UNAVAILABLE, "Matching is unavailable; try again.") from None
        seat.waiting = False
        self.cross.save(seat)
        self.send(seat.id, {"type": "cancelled"})

    async def _send_place(self, seat: Seat, *, force: bool = False) -> None:
        places = await self.matcher.places([seat.id])
        place = places.get(seat.id)
        if place is not None:
            self._tell_place(seat, place, force)

    def _tell_place(self, seat: Seat, place: Any, force: bool) -> None:
        key = (place.position, place.waiting, place.on_shift)
        if force or key != seat.last_place:
            seat.last_place = key
            self.send(seat.id, {"type": "queued", "position": place.position,
                                "waiting": place.waiting, "estimate_s": place.estimate_s,
                                "on_shift": place.on_shift})

    def _resources(self, seat: Seat) -> dict[str, Any]:
        return {"type": "resources", "items": resources.resources_for(seat.language)}

    # -- listeners ---------------------------------------------------------------

    async def _shift(self, seat: Seat, frame: protocol.Shift) -> None:
        seat.status = frame.status
        if frame.topics is not None:
            seat.topics = frame.topics
        if frame.languages is not None:
            seat.languages = frame.languages
        if frame.capacity is not None:
            seat.capacity = frame.capacity
        await self._matcher_shift(seat, status=frame.status)
        seat.last_shift = None
        await self._push_shift(seat)

    async def _matcher_shift(self, seat: Seat, *, status: str) -> None:
        try:
            matches = await self.matcher.set_shift(self._listener(seat, status))
        except MatchingError:
            raise FrameError(ErrorCode.UNAVAILABLE, "Matching is unavailable; try again.") from None
        self._open_rooms(matches)

    def _hold_state(self, seat: Seat) -> tuple[float, dict[str, Any] | None]:
        """The hold a listener is under: in a crisis room, cooling down, or none."""
        if any(r in self.rooms and self.rooms[r].risk == "crisis" for r in seat.rooms):
            return HELD_FOREVER, {"reason": "crisis_room"}
        remaining = seat.cooldown_until - time.time()
        if remaining > 0:
            hold = {"reason": "cooldown", "remaining_s": int(remaining + 0.999)}
            return seat.cooldown_until, hold
        return 0.0, None

    async def _update_hold(self, seat: Seat) -> None:
        until, _ = self._hold_state(seat)
        try:
            matches = await self.matcher.hold(seat.id, until)
        except MatchingError:
            return
        self._open_rooms(matches)
        self._queue_changed()  # the refresh sends ``shift``, asking for all listeners at once

    async def _push_shift(self, seat: Seat,
                          states: dict[str, tuple[Listener, int]] | None = None) -> None:
        """Send ``shift`` when the room count, the waiting count or the hold changed.

        ``states`` is what :meth:`Matcher.listeners` said about this and other
        listeners (a refresh asks once for all); without it the matcher is asked."""
        if seat.conn is None:
            return
        if states is None:
            try:
                states = await self.matcher.listeners([seat.id])
            except MatchingError:
                return
        state = states.get(seat.id)
        waiting = state[1] if state is not None else 0
        _, hold = self._hold_state(seat)
        rooms = sum(1 for r in seat.rooms if r in self.rooms)
        key = (seat.status, rooms, waiting, hold and hold["reason"])
        if key == seat.last_shift:
            return
        seat.last_shift = key
        self.send(seat.id, {"type": "shift", "status": seat.status, "rooms": rooms,
                            "waiting": waiting, "hold": hold})

    # -- matches and rooms -------------------------------------------------------

    def _open_rooms(self, matches: list[Match]) -> None:
        for match in matches:
            if match.listener_node != self.settings.node_id:
                # A room's home is its listener's node: that node opens it.
                self.cross.forward_match(match, self.seats.get(match.ticket.seat))
            elif self.seats.get(match.ticket.seat) is None and \
                    match.ticket.node != self.settings.node_id:
                self.spawn(self.cross.open_remote(match, None))
            else:
                self._open_room(match)

    def _open_room(self, match: Match) -> None:
        seeker = self.seats.get(match.ticket.seat)
        listener = self.seats.get(match.listener)
        if seeker is None or listener is None:
            # One side ended while the match was made: undo it.
            self.spawn(self._undo_match(match, seeker))
            return
        now = time.monotonic()
        room = Room(match.room, match.ticket.topic, match.ticket.language, match.ticket.note,
                    seeker.risk, time.time(), now, self.settings.history)
        room.add(Member(seeker.id, "seeker", seeker.alias, "member"))
        room.add(Member(listener.id, "listener", listener.alias, "member"))
        self.rooms[room.id] = room
        seeker.waiting = False
        seeker.last_place = None
        seeker.rooms.add(room.id)
        listener.rooms.add(room.id)
        self.cross.save(seeker)
        self.cross.save(listener)
        metrics.MATCHES.inc()
        metrics.MATCH_WAIT.observe(match.waited_s)
        self.send(seeker.id, self._matched(room, seeker))
        self.send(listener.id, self._matched(room, listener))
        if room.risk == "crisis":
            self._escalate_room(room, "system", "crisis", room.risk)
            self.spawn(self._update_hold(listener))
        else:
            self._queue_changed()  # the refresh sends the listener ``shift``
        self._rooms_changed()

    async def _undo_match(self, match: Match, seeker: Seat | None) -> None:
        try:
            # Freeing the place can pair the listener with the next seeker at once.
            self._open_rooms(await self.matcher.room_ended(match.room))
            if seeker is not None and seeker.node is not None:
                self.cross.requeue(seeker.node, seeker.id, seeker.risk)
                self.seats.remove(seeker)
            elif seeker is not None:
                await self._enqueue(seeker, head=True)
        except (MatchingError, FrameError):
            log.warning("could not undo a match whose listener left")

    def _matched(self, room: Room, seat: Seat) -> dict[str, Any]:
        peer = room.party("listener" if seat.role == "seeker" else "seeker")
        frame: dict[str, Any] = {
            "type": "matched", "room": room.id,
            "peer": peer.who if peer else None,
            "topic": room.topic, "language": room.language,
        }
        if seat.role != "seeker":
            frame["note"] = room.note
            frame["risk"] = room.risk
        return frame

    def _end_room(self, room: Room, reasons: dict[str, str | None], *, default: str,
                  requeue: bool, notify_matcher: bool = True) -> None:
        """End a room for everyone in it. ``reasons`` maps seats to their own reason
        (None: tell them nothing, they are gone); the rest get ``default``.
        With ``requeue`` the seeker goes back to the head of the queue."""
        if self.rooms.pop(room.id, None) is None:
            return
        listener = room.party("listener")
        seeker = room.party("seeker")
        seeker_seat = self.seats.get(seeker.seat) if seeker is not None else None
        seeker_node = seeker_seat.node if seeker_seat is not None else None
        for seat_id in list(room.members):
            reason = reasons.get(seat_id, default)
            if reason is not None:
                self.send(seat_id, {"type": "ended", "room": room.id, "reason": reason})
            seat = self.seats.get(seat_id)
            if seat is not None:
                seat.rooms.discard(room.id)
                if seat.node is not None and not seat.rooms:
                    self.seats.remove(seat)  # a ghost with no room here any more
                else:
                    self.cross.save(seat)
        metrics.ROOMS_ENDED.labels(default).inc()
        if listener is not None:
            seat = self.seats.get(listener.seat)
            if seat is not None and room.risk == "crisis":
                seat.cooldown_until = time.time() + self.settings.cooldown_s
                asyncio.get_running_loop().call_later(
                    self.settings.cooldown_s + 0.05, lambda: self.spawn(self._update_hold(seat)))
        if notify_matcher:
            self.spawn(self._after_room(room, listener, seeker if requeue else None,
                                        seeker_node))
        self._rooms_changed()

    async def _after_room(self, room: Room, listener: Member | None,
                          requeue: Member | None, requeue_node: str | None = None) -> None:
        try:
            matches = await self.matcher.room_ended(room.id)
            self._open_rooms(matches)
            if requeue is not None and requeue_node is not None:
                self.cross.requeue(requeue_node, requeue.seat, room.risk)
            elif requeue is not None:
                seat = self.seats.get(requeue.seat)
                if seat is not None:
                    seat.risk = risk.higher(seat.risk, room.risk)
                    await self._enqueue(seat, head=True)
            if listener is not None:
                seat = self.seats.get(listener.seat)
                if seat is not None:
                    await self._update_hold(seat)
        except (MatchingError, FrameError):
            log.warning("matcher unreachable after a room ended")

    def _presence(self, room: Room, seat: Seat, state: str) -> None:
        member = room.member(seat.id)
        if member is None or member.mode == "watching":
            return
        self.broadcast(room.others(seat.id), {"type": "presence", "room": room.id,
                                              "who": member.who, "state": state})

    # -- in a room -----------------------------------------------------------------

    async def _message(self, seat: Seat, frame: protocol.Message) -> None:
        room, member = self._room_of(seat, frame.room)
        if member.mode == "watching":
            raise FrameError(ErrorCode.NOT_ALLOWED, "Watching moderators cannot speak.", "message")
        text, masked = contact.mask_contacts(frame.text)
        out = room.post(member, text, frame.id, now_ms(), time.monotonic())
        self.broadcast(list(room.members), out)
        metrics.MESSAGES.inc()
        if masked:
            self.send(seat.id, {"type": "notice", "room": room.id, "code": "contact_info",
                                "message": "Contact details were removed. To keep everyone safe, "
                                           "chats stay on Hearth."})
            self._escalate_room(room, "system", "contact_info", room.risk, mark=False)
        if seat.role == "seeker" and room.risk != "crisis":  # risk only goes up
            self._queue_score(room, seat, frame.text)

    def _queue_score(self, room: Room, seat: Seat, text: str) -> None:
        """Score a seeker's message a moment after it was relayed, with the others
        of that moment (at most SCORE_BATCH_S later).

        The scorer's tables and regexes are cold in the cache after a trip
        through the rest of the server: 84 us a message cold against 12 us warm
        (timeit with the caches evicted), 37 us in the server. Scored
        back to back, all but the first find them warm (docs/performance.md)."""
        if not self._to_score:
            asyncio.get_running_loop().call_later(
                SCORE_BATCH_S, lambda: self.spawn(self._score_batch()))
        self._to_score.append((room, seat, text))

    async def _score_batch(self) -> None:
        batch, self._to_score = self._to_score, []
        levels = [None if room.risk == "crisis" else _score(text, room.language)
                  for room, _, text in batch]
        for (room, seat, _), level in zip(batch, levels, strict=True):
            if level is not None and self.rooms.get(room.id) is room:
                await self._raise_risk(room, seat, level)

    async def _raise_risk(self, room: Room, seat: Seat, level: risk.Level) -> None:
        was = room.risk
        if not room.raise_risk(level):
            return
        seat.risk = risk.higher(seat.risk, level)
        watchers = [m.seat for m in room.members.values() if m.role != "seeker"]
        self.broadcast(watchers, {"type": "risk", "room": room.id, "risk": room.risk})
        if room.risk == "crisis" and was != "crisis":
            self.send(seat.id, self._resources(seat))
            self._escalate_room(room, "system", "crisis", room.risk)
            listener = room.party("listener")
            target = self.seats.get(listener.seat) if listener else None
            if target is not None:
                await self._update_hold(target)
        self._rooms_changed()

    async def _typing(self, seat: Seat, frame: protocol.Typing) -> None:
        room, member = self._room_of(seat, frame.room)
        if member.mode == "watching":
            return
        conn = seat.conn
        now = time.monotonic()
        if conn is not None:
            if now - conn.typing_at.get(room.id, 0.0) < 1.0:
                return  # one typing frame a second is plenty
            conn.typing_at[room.id] = now
        self.broadcast(room.others(seat.id), {"type": "typing", "room": room.id,
                                              "from": member.who})

    async def _leave(self, seat: Seat, frame: protocol.Leave) -> None:
        room, member = self._room_of(seat, frame.room)
        if member.mode != "member":
            self._leave_as_moderator(room, seat, member)
            self.send(seat.id, {"type": "ended", "room": room.id, "reason": "left"})
            return
        self._end_room(room, {seat.id: "left"}, default="peer_left",
                       requeue=seat.role == "listener")

    def _leave_as_moderator(self, room: Room, seat: Seat, member: Member) -> None:
        if member.mode == "joined":
            self._presence(room, seat, "left")
        room.remove(seat.id)
        seat.rooms.discard(room.id)
        self._rooms_changed()

    async def _escalate(self, seat: Seat, frame: protocol.Escalate) -> None:
        room, member = self._room_of(seat, frame.room)
        self.send(seat.id, {"type": "escalated", "room": room.id})
        self._escalate_room(room, seat.role, frame.reason, room.risk)

    def _escalate_room(self, room: Room, by: str, reason: str | None, level: str,
                       *, mark: bool = True) -> None:
        if mark:
            room.escalated = True
        metrics.ESCALATIONS.labels(by).inc()
        frame = {"type": "escalation", "room": room.id, "by": by, "reason": reason,
                 "risk": level, "ts": now_ms()}
        self.broadcast(self.moderators, frame)
        self.cross.escalation(frame)
        self._rooms_changed()

    # -- moderators ----------------------------------------------------------------

    def _rooms_list(self) -> dict[str, Any]:
        now = time.time()
        rooms = [r.summary(now) for r in self.rooms.values()]
        return {"type": "rooms", "rooms": rooms + self.cross.remote_summaries()}

    async def _rooms_frame(self, seat: Seat, frame: protocol.Rooms) -> None:
        self.send(seat.id, self._rooms_list())

    def _rooms_changed(self) -> None:
        self.cross.rooms_changed()
        self._push_rooms()

    def _push_rooms(self) -> None:
        """Send every moderator here a fresh ``rooms`` (coalesced to one per turn)."""
        if self._rooms_pending or not self.moderators:
            return
        self._rooms_pending = True

        def push() -> None:
            self._rooms_pending = False
            self.broadcast(self.moderators, self._rooms_list())

        asyncio.get_running_loop().call_soon(push)

    def _moderated_room(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            raise FrameError(ErrorCode.NOT_IN_ROOM, "That room does not exist.")
        return room

    async def _watch(self, seat: Seat, frame: protocol.Watch) -> None:
        await self._look_in(seat, frame.room, "watching")

    async def _join(self, seat: Seat, frame: protocol.Join) -> None:
        await self._look_in(seat, frame.room, "joined")

    async def _look_in(self, seat: Seat, room_id: str, mode: str) -> None:
        room = self._moderated_room(room_id)
        current = room.member(seat.id)
        if current is None or current.mode != mode:
            room.add(Member(seat.id, "moderator", seat.alias, mode))  # type: ignore[arg-type]
            seat.rooms.add(room.id)
            if mode == "joined":
                self._presence(room, seat, "joined")
            self._rooms_changed()
        self.send(seat.id, {"type": "history", "room": room.id, "messages": room.messages()})

    async def _close(self, seat: Seat, frame: protocol.Close) -> None:
        room = self._moderated_room(frame.room)
        seeker = room.party("seeker")
        self._end_room(room, {}, default="closed", requeue=False)
        if frame.block and seeker is not None:
            target = self.seats.get(seeker.seat)
            if target is not None and target.node is not None:
                self.cross.block(target)  # its own node blocks and removes it
            elif target is not None:
                await self._remove_seeker(target)

    async def _remove_seeker(self, target: Seat) -> None:
        """A moderator blocked this seeker: close it with 4403 and refuse its address."""
        self._blocked[target.origin_key] = time.time() + self.settings.block_s
        if target.conn is not None:
            target.conn.close(CloseCode.REMOVED)
        await self._end_seat(target, "closed")

    async def _requeue(self, seat: Seat, level: str) -> None:
        """The seeker's listener (on another node) was lost or left: back to the head."""
        seat.risk = risk.higher(seat.risk, level)  # type: ignore[arg-type]
        try:
            await self._enqueue(seat, head=True)
        except FrameError:
            log.warning("matcher unreachable while putting a seeker back")

    async def _whisper(self, seat: Seat, frame: protocol.Whisper) -> None:
        room, member = self._room_of(seat, frame.room)
        if member.mode != "joined":
            raise FrameError(ErrorCode.NOT_ALLOWED, "Join the room to whisper.", "whisper")
        to = [m.seat for m in room.members.values() if m.role != "seeker"]
        self.broadcast(to, {"type": "whisper", "room": room.id, "from": member.who,
                            "text": frame.text, "ts": now_ms()})

    # -- background ----------------------------------------------------------------

    async def _resync(self) -> None:
        """The shared backend lost what this node holds (Redis restarted empty):
        register again our listeners with their rooms, then our waiting seekers in
        their queue order, at the head of their level."""
        self.cross.resave_all()  # the seat directory was lost too
        seats = [s for s in self.seats.all() if s.node is None]  # not ghosts
        for seat in seats:
            if seat.role != "listener":
                continue
            rooms = sorted(r for r in seat.rooms if r in self.rooms)
            status = seat.status if seat.conn is not None or seat.status != "available" else "away"
            listener = self._listener(seat, status)
            listener.rooms, listener.held_until = len(rooms), self._hold_state(seat)[0]
            self._open_rooms(await self.matcher.set_shift(listener))
            await self.matcher.restore_rooms(seat.id, rooms)
        for seat in sorted((s for s in seats if s.waiting), key=lambda s: s.queued_at):
            self._open_rooms(await self.matcher.request(self._ticket(seat), head=True))
        log.info("registered again with the matching backend")

    def _queue_changed(self) -> None:
        """Coalesce queue changes into one refresh of positions and shifts."""
        if self._refresh_pending:
            return
        self._refresh_pending = True
        self.spawn(self._refresh())

    async def _refresh(self) -> None:
        # Gather the changes of the next 50 ms into one refresh. Its three questions
        # (places, listeners, stats) are asked together: one round trip on Redis.
        await asyncio.sleep(REFRESH_S)
        self._refresh_pending = False
        waiting = [s for s in self.seats.all() if s.waiting and s.conn is not None]
        listeners = [s for s in self.seats.all() if s.role == "listener" and s.conn is not None]
        asked_places = asyncio.ensure_future(self.matcher.places([s.id for s in waiting]))
        asked_states = asyncio.ensure_future(
            self.matcher.listeners([s.id for s in listeners]))
        stats = await self._stats()
        try:
            places = await asked_places
        except MatchingError:
            places = {}
        try:
            states = await asked_states
        except MatchingError:
            states = None
        for seat in waiting:
            if seat.id in places:
                self._tell_place(seat, places[seat.id], False)
        if states is not None:
            for seat in listeners:
                await self._push_shift(seat, states)
        if stats is not None:
            metrics.WAITING.set(stats.waiting)
            metrics.ON_SHIFT.set(stats.on_shift)
        metrics.ROOMS.set(len(self.rooms))

    async def _stats(self) -> Any:
        try:
            return await self.matcher.stats()
        except MatchingError:
            return None

    async def _sweep(self) -> None:
        """End idle rooms; a short period keeps the idle limit accurate."""
        period = min(5.0, max(0.2, self.settings.idle_timeout_s / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for room in list(self.rooms.values()):
                if now - room.last_active >= self.settings.idle_timeout_s:
                    self._end_room(room, {}, default="idle", requeue=False)

