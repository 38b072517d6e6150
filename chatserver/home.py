"""The rooms this node is home to: opened from a match, ended for everyone in it.

A room's home is its listener's node. :meth:`Home.open_rooms` takes every
match a matcher call returned: one whose listener is elsewhere goes to that
node, one whose seeker is elsewhere is opened through the crossnode, the rest
open here (:meth:`Home.open_room` sends ``matched`` to both sides; a match one
side of which ended meanwhile is undone and the seeker queued again).
:meth:`Home.end_room` sends ``ended`` to everyone in the room, drops it and
its history, starts a crisis listener's cool-down, and then, in the
background, frees the listener's place with the matcher and puts the seeker
back at the head of the queue when asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from matching import Match, MatchingError

from . import metrics, risk
from .protocol import FrameError
from .rooms import Member, Room
from .seats import Seat

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("hearth.node")


class Home:
    """Opens and ends the node's rooms (``node.rooms``)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def open_rooms(self, matches: list[Match]) -> None:
        node = self.node
        for match in matches:
            if match.listener_node != node.settings.node_id:
                # A room's home is its listener's node: that node opens it.
                node.cross.forward_match(match, node.seats.get(match.ticket.seat))
            elif node.seats.get(match.ticket.seat) is None and \
                    match.ticket.node != node.settings.node_id:
                node.spawn(node.cross.open_remote(match, None))
            else:
                self.open_room(match)

    def open_room(self, match: Match) -> None:
        node = self.node
        seeker = node.seats.get(match.ticket.seat)
        listener = node.seats.get(match.listener)
        if seeker is None or listener is None:
            # One side ended while the match was made: undo it.
            node.spawn(self._undo_match(match, seeker))
            return
        now = time.monotonic()
        room = Room(match.room, match.ticket.topic, match.ticket.language, match.ticket.note,
                    seeker.risk, time.time(), now, node.settings.history)
        room.add(Member(seeker.id, "seeker", seeker.alias, "member"))
        room.add(Member(listener.id, "listener", listener.alias, "member"))
        node.rooms[room.id] = room
        seeker.waiting = False
        seeker.last_place = None
        seeker.rooms.add(room.id)
        listener.rooms.add(room.id)
        node.cross.save(seeker)
        node.cross.save(listener)
        metrics.count_match(match.waited_s)
        node.send(seeker.id, self.matched(room, seeker))
        node.send(listener.id, self.matched(room, listener))
        if room.risk == "crisis":
            node.moderation.escalate_room(room, "system", "crisis", room.risk)
            node.spawn(node.pairing.update_hold(listener))
        else:
            node.pairing.queue_changed()  # the refresh sends the listener ``shift``
        node.moderation.rooms_changed()

    async def _undo_match(self, match: Match, seeker: Seat | None) -> None:
        node = self.node
        try:
            # Freeing the place can pair the listener with the next seeker at once.
            self.open_rooms(await node.matcher.room_ended(match.room))
            if seeker is not None and seeker.node is not None:
                node.cross.requeue(seeker.node, seeker.id, seeker.risk)
                node.seats.remove(seeker)
            elif seeker is not None:
                await node.pairing.enqueue(seeker, head=True)
        except (MatchingError, FrameError):
            log.warning("could not undo a match whose listener left")

    def matched(self, room: Room, seat: Seat) -> dict[str, Any]:
        """The ``matched`` frame for this seat (the listener's carries note and risk)."""
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

    def end_room(self, room: Room, reasons: dict[str, str | None], *, default: str,
                 requeue: bool, notify_matcher: bool = True) -> None:
        """End a room for everyone in it. ``reasons`` maps seats to their own reason
        (None: tell them nothing, they are gone); the rest get ``default``.
        With ``requeue`` the seeker goes back to the head of the queue."""
        node = self.node
        if node.rooms.pop(room.id, None) is None:
            return
        listener = room.party("listener")
        seeker = room.party("seeker")
        seeker_seat = node.seats.get(seeker.seat) if seeker is not None else None
        seeker_node = seeker_seat.node if seeker_seat is not None else None
        for seat_id in list(room.members):
            reason = reasons.get(seat_id, default)
            if reason is not None:
                node.send(seat_id, {"type": "ended", "room": room.id, "reason": reason})
            seat = node.seats.get(seat_id)
            if seat is not None:
                seat.rooms.discard(room.id)
                if seat.node is not None and not seat.rooms:
                    node.seats.remove(seat)  # a ghost with no room here any more
                else:
                    node.cross.save(seat)
        metrics.count_room_ended(default)
        if listener is not None:
            seat = node.seats.get(listener.seat)
            if seat is not None and room.risk == "crisis":
                seat.cooldown_until = time.time() + node.settings.cooldown_s
                asyncio.get_running_loop().call_later(
                    node.settings.cooldown_s + 0.05,
                    lambda: node.spawn(node.pairing.update_hold(seat)))
        if notify_matcher:
            node.spawn(self._after_room(room, listener, seeker if requeue else None,
                                        seeker_node))
        node.moderation.rooms_changed()

    async def _after_room(self, room: Room, listener: Member | None,
                          requeue: Member | None, requeue_node: str | None = None) -> None:
        node = self.node
        try:
            matches = await node.matcher.room_ended(room.id)
            self.open_rooms(matches)
            if requeue is not None and requeue_node is not None:
                node.cross.requeue(requeue_node, requeue.seat, room.risk)
            elif requeue is not None:
                seat = node.seats.get(requeue.seat)
                if seat is not None:
                    seat.risk = risk.higher(seat.risk, room.risk)
                    await node.pairing.enqueue(seat, head=True)
            if listener is not None:
                seat = node.seats.get(listener.seat)
                if seat is not None:
                    await node.pairing.update_hold(seat)
        except (MatchingError, FrameError):
            log.warning("matcher unreachable after a room ended")
