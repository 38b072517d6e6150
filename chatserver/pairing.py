"""Pairing: seekers waiting in the queue and listeners on shift, as the matcher sees them.

A seeker's ``request`` becomes a :class:`Ticket` (its note scored and masked
first) and ``cancel`` withdraws it; a listener's ``shift`` becomes a
:class:`Listener` with its hold (in a crisis room, or cooling down after one).
Every matcher call may return matches: they go to :meth:`Home.open_rooms`
at once, whatever else fails. Queue changes are coalesced by
:meth:`Pairing.queue_changed` into one refresh ``REFRESH_S`` later that sends
seekers ``queued`` and listeners ``shift`` when what they show changed.
:meth:`Pairing.resync` registers this node's seats again after the shared
backend lost them.

Made by the node, which must have its seats, rooms and crossnode first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from matching import HELD_FOREVER, Listener, MatchingError, Ticket

from . import contact, metrics, protocol, resources, risk
from .protocol import ErrorCode, FrameError
from .seats import Seat

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("hearth.node")
REFRESH_S = 0.05


class Pairing:
    """The node's side of the matcher, for the seats on this node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._refresh_pending = False

    # -- seekers -----------------------------------------------------------------

    async def request(self, seat: Seat, frame: protocol.Request) -> None:
        if seat.waiting or seat.rooms:
            raise FrameError(ErrorCode.NOT_ALLOWED, "You are already waiting or talking.")
        if self.node.blocked.get(seat.origin_key, 0) > time.time():
            raise FrameError(ErrorCode.NOT_ALLOWED, "A moderator has paused new chats from here.")
        level = risk.score(frame.note, frame.language) if frame.note else "normal"
        note = frame.note
        if note:
            note, masked = contact.mask_contacts(note)
        seat.topic, seat.language, seat.note = frame.topic, frame.language, note
        seat.risk = risk.higher(seat.risk, level)
        await self.enqueue(seat, head=False)
        if seat.risk == "crisis":
            self.node.send(seat.id, resources.frame(seat.language))

    def _ticket(self, seat: Seat) -> Ticket:
        return Ticket(seat.id, self.node.settings.node_id, seat.risk, seat.topic, seat.language,
                      seat.note)

    def _listener(self, seat: Seat, status: str) -> Listener:
        return Listener(seat.id, self.node.settings.node_id, status, seat.topics, seat.languages,
                        seat.capacity)

    async def enqueue(self, seat: Seat, *, head: bool) -> None:
        """Queue the seeker (``head``: at the head of its level) and send ``queued``.

        Raises ``unavailable`` when the matcher cannot be reached."""
        try:
            matches = await self.node.matcher.request(self._ticket(seat), head=head)
        except MatchingError:
            raise FrameError(ErrorCode.UNAVAILABLE, "Matching is unavailable; try again.") from None
        if not head or not seat.queued_at:
            seat.queued_at = time.monotonic()
        seat.waiting = True
        self.node.cross.save(seat)
        metrics.count_request(seat.risk)
        try:
            if not any(m.ticket.seat == seat.id for m in matches):  # else it is not waiting
                await self._send_place(seat, force=True)
        except MatchingError:
            pass  # the place is sent again on the next refresh
        finally:
            # A match the backend made must be opened, whatever else.
            self.node.home.open_rooms(matches)

    async def requeue(self, seat: Seat, level: str) -> None:
        """The seeker's listener (on another node) was lost or left: back to the head."""
        seat.risk = risk.higher(seat.risk, level)  # type: ignore[arg-type]
        try:
            await self.enqueue(seat, head=True)
        except FrameError:
            log.warning("matcher unreachable while putting a seeker back")

    async def cancel(self, seat: Seat, frame: protocol.Cancel) -> None:
        if not seat.waiting:
            raise FrameError(ErrorCode.NOT_ALLOWED, "You are not waiting.")
        try:
            await self.node.matcher.cancel(seat.id)
        except MatchingError:
            raise FrameError(ErrorCode.UNAVAILABLE, "Matching is unavailable; try again.") from None
        seat.waiting = False
        self.node.cross.save(seat)
        self.node.send(seat.id, {"type": "cancelled"})

    async def _send_place(self, seat: Seat, *, force: bool = False) -> None:
        places = await self.node.matcher.places([seat.id])
        place = places.get(seat.id)
        if place is not None:
            self._tell_place(seat, place, force)

    def _tell_place(self, seat: Seat, place: Any, force: bool) -> None:
        key = (place.position, place.waiting, place.on_shift)
        if force or key != seat.last_place:
            seat.last_place = key
            self.node.send(seat.id, {"type": "queued", "position": place.position,
                                     "waiting": place.waiting, "estimate_s": place.estimate_s,
                                     "on_shift": place.on_shift})

    # -- listeners ---------------------------------------------------------------

    async def shift(self, seat: Seat, frame: protocol.Shift) -> None:
        seat.status = frame.status
        if frame.topics is not None:
            seat.topics = frame.topics
        if frame.languages is not None:
            seat.languages = frame.languages
        if frame.capacity is not None:
            seat.capacity = frame.capacity
        await self.matcher_shift(seat, status=frame.status)
        seat.last_shift = None
        await self._push_shift(seat)

    async def matcher_shift(self, seat: Seat, *, status: str) -> None:
        """Tell the matcher the listener's shift with ``status``; raises ``unavailable``."""
        seat.told_hold = None  # a listener new to the matcher starts with none
        try:
            matches = await self.node.matcher.set_shift(self._listener(seat, status))
        except MatchingError:
            raise FrameError(ErrorCode.UNAVAILABLE, "Matching is unavailable; try again.") from None
        self.node.home.open_rooms(matches)

    def _hold_state(self, seat: Seat) -> tuple[float, dict[str, Any] | None]:
        """The hold a listener is under: in a crisis room, cooling down, or none."""
        rooms = self.node.rooms
        if any(r in rooms and rooms[r].risk == "crisis" for r in seat.rooms):
            return HELD_FOREVER, {"reason": "crisis_room"}
        remaining = seat.cooldown_until - time.time()
        if remaining > 0:
            hold = {"reason": "cooldown", "remaining_s": int(remaining + 0.999)}
            return seat.cooldown_until, hold
        return 0.0, None

    async def update_hold(self, seat: Seat) -> None:
        """Tell the matcher the listener's hold as it is now (quietly if unreachable).

        Not asked again when the matcher was last told the same hold (a room
        ended and no hold began or ended): one round trip to Redis less per room.
        A hold call pairs a free listener too, but the ``room_ended`` or
        ``request`` that freed it or queued the seeker already did."""
        until, _ = self._hold_state(seat)
        if until != seat.told_hold:
            seat.told_hold = until
            try:
                matches = await self.node.matcher.hold(seat.id, until)
            except MatchingError:
                seat.told_hold = None  # not known: the next change asks again
                return
            self.node.home.open_rooms(matches)
        self.queue_changed()  # the refresh sends ``shift``, asking for all listeners at once

    async def _push_shift(self, seat: Seat,
                          states: dict[str, tuple[Listener, int]] | None = None) -> None:
        """Send ``shift`` when the room count, the waiting count or the hold changed.

        ``states`` is what :meth:`Matcher.listeners` said about this and other
        listeners (a refresh asks once for all); without it the matcher is asked."""
        if seat.conn is None:
            return
        if states is None:
            try:
                states = await self.node.matcher.listeners([seat.id])
            except MatchingError:
                return
        state = states.get(seat.id)
        waiting = state[1] if state is not None else 0
        _, hold = self._hold_state(seat)
        rooms = sum(1 for r in seat.rooms if r in self.node.rooms)
        key = (seat.status, rooms, waiting, hold and hold["reason"])
        if key == seat.last_shift:
            return
        seat.last_shift = key
        self.node.send(seat.id, {"type": "shift", "status": seat.status, "rooms": rooms,
                                 "waiting": waiting, "hold": hold})

    # -- refresh and resync ------------------------------------------------------

    def queue_changed(self) -> None:
        """Coalesce queue changes into one refresh of positions and shifts."""
        if self._refresh_pending:
            return
        self._refresh_pending = True
        self.node.spawn(self._refresh())

    async def _refresh(self) -> None:
        # Gather the changes of the next 50 ms into one refresh. Its three questions
        # (places, listeners, stats) are asked together: one round trip on Redis.
        await asyncio.sleep(REFRESH_S)
        self._refresh_pending = False
        node = self.node
        waiting = [s for s in node.seats.all() if s.waiting and s.conn is not None]
        listeners = [s for s in node.seats.all() if s.role == "listener" and s.conn is not None]
        asked_places = asyncio.ensure_future(node.matcher.places([s.id for s in waiting]))
        asked_states = asyncio.ensure_future(
            node.matcher.listeners([s.id for s in listeners]))
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
        metrics.ROOMS.set(len(node.rooms))

    async def _stats(self) -> Any:
        try:
            return await self.node.matcher.stats()
        except MatchingError:
            return None

    async def resync(self) -> None:
        """The shared backend lost what this node holds (Redis restarted empty):
        register again our listeners with their rooms, then our waiting seekers in
        their queue order, at the head of their level."""
        node = self.node
        node.cross.resave_all()  # the seat directory was lost too
        seats = [s for s in node.seats.all() if s.node is None]  # not ghosts
        for seat in seats:
            if seat.role != "listener":
                continue
            rooms = sorted(r for r in seat.rooms if r in node.rooms)
            status = seat.status if seat.conn is not None or seat.status != "available" else "away"
            listener = self._listener(seat, status)
            listener.rooms, listener.held_until = len(rooms), self._hold_state(seat)[0]
            seat.told_hold = listener.held_until
            node.home.open_rooms(await node.matcher.set_shift(listener))
            await node.matcher.restore_rooms(seat.id, rooms)
        for seat in sorted((s for s in seats if s.waiting), key=lambda s: s.queued_at):
            node.home.open_rooms(await node.matcher.request(self._ticket(seat), head=True))
        log.info("registered again with the matching backend")
