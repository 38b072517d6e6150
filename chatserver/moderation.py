"""Moderation: what moderators are told, and what they do in rooms.

Told: every moderator here gets a ``rooms`` list of this node's rooms and the
other nodes' (on connecting, on asking, and after any change, at most one
every ``ROOMS_GAP_S`` by :meth:`Moderation.rooms_changed`) and an ``escalation`` frame
for each escalation, on any node (:meth:`Moderation.escalate_room`).

Done: ``watch`` (silently) or ``join`` (announced, may speak and ``whisper``
to the listener and other moderators) a room, then ``leave`` it; ``close`` it
for everyone, with ``block`` also closing the seeker with 4403 and refusing
its origin for ``block_s`` seconds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import metrics, protocol
from .coalesce import Coalesced
from .protocol import CloseCode, ErrorCode, FrameError
from .rooms import Member, Room
from .seats import Seat
from .talk import now_ms

if TYPE_CHECKING:
    from .node import Node

ROOMS_GAP_S = 0.1  # a moderator's room list follows changes at most this often


class Moderation:
    """The moderators' side of the node (``node.moderators``); made by the node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._push = Coalesced(self._push_now, ROOMS_GAP_S)

    # -- what moderators are told --------------------------------------------------

    def rooms_list(self) -> dict[str, Any]:
        """The ``rooms`` frame: every room here and on the other nodes."""
        now = time.time()
        rooms = [r.summary(now) for r in self.node.rooms.values()]
        return {"type": "rooms", "rooms": rooms + self.node.cross.remote_summaries()}

    async def rooms(self, seat: Seat, frame: protocol.Rooms) -> None:
        self.node.send(seat.id, self.rooms_list())

    def rooms_changed(self) -> None:
        """A room opened, ended or changed: tell the other nodes and the moderators here."""
        self.node.cross.rooms_changed()
        self.push_rooms()

    def push_rooms(self) -> None:
        """Send every moderator here a fresh ``rooms`` soon (at most one every
        ROOMS_GAP_S: the list is rebuilt whole, and read by people)."""
        if self.node.moderators:
            self._push.poke()

    def _push_now(self) -> None:
        if self.node.moderators:
            self.node.broadcast(self.node.moderators, self.rooms_list())

    def escalate_room(self, room: Room, by: str, reason: str | None, level: str,
                      *, mark: bool = True) -> None:
        """Tell every moderator, on every node; with ``mark`` the room shows escalated."""
        if mark:
            room.escalated = True
        metrics.ESCALATIONS.labels(by).inc()
        frame = {"type": "escalation", "room": room.id, "by": by, "reason": reason,
                 "risk": level, "ts": now_ms()}
        self.node.broadcast(self.node.moderators, frame)
        self.node.cross.escalation(frame)
        self.rooms_changed()

    # -- what moderators do ------------------------------------------------------

    def _moderated_room(self, room_id: str) -> Room:
        room = self.node.rooms.get(room_id)
        if room is None:
            raise FrameError(ErrorCode.NOT_IN_ROOM, "That room does not exist.")
        return room

    async def watch(self, seat: Seat, frame: protocol.Watch) -> None:
        await self._look_in(seat, frame.room, "watching")

    async def join(self, seat: Seat, frame: protocol.Join) -> None:
        await self._look_in(seat, frame.room, "joined")

    async def _look_in(self, seat: Seat, room_id: str, mode: str) -> None:
        room = self._moderated_room(room_id)
        current = room.member(seat.id)
        if current is None or current.mode != mode:
            room.add(Member(seat.id, "moderator", seat.alias, mode))  # type: ignore[arg-type]
            seat.rooms.add(room.id)
            if mode == "joined":
                self.node.presence(room, seat, "joined")
            self.rooms_changed()
        self.node.send(seat.id, {"type": "history", "room": room.id,
                                 "messages": room.messages()})

    def leave(self, room: Room, seat: Seat, member: Member) -> None:
        """A moderator leaves the room (the room goes on)."""
        if member.mode == "joined":
            self.node.presence(room, seat, "left")
        room.remove(seat.id)
        seat.rooms.discard(room.id)
        self.rooms_changed()

    async def whisper(self, seat: Seat, frame: protocol.Whisper) -> None:
        room, member = self.node.room_of(seat, frame.room)
        if member.mode != "joined":
            raise FrameError(ErrorCode.NOT_ALLOWED, "Join the room to whisper.", "whisper")
        to = [m.seat for m in room.members.values() if m.role != "seeker"]
        self.node.broadcast(to, {"type": "whisper", "room": room.id, "from": member.who,
                                 "text": frame.text, "ts": now_ms()})

    async def close(self, seat: Seat, frame: protocol.Close) -> None:
        node = self.node
        room = self._moderated_room(frame.room)
        seeker = room.party("seeker")
        node.home.end_room(room, {}, default="closed", requeue=False)
        if frame.block and seeker is not None:
            target = node.seats.get(seeker.seat)
            if target is not None and target.node is not None:
                node.cross.block(target)  # its own node blocks and removes it
            elif target is not None:
                await self.remove_seeker(target)

    async def remove_seeker(self, target: Seat) -> None:
        """A moderator blocked this seeker: close it with 4403 and refuse its address."""
        node = self.node
        node.blocked[target.origin_key] = time.time() + node.settings.block_s
        if target.conn is not None:
            target.conn.close(CloseCode.REMOVED)
        await node.end_seat(target, "closed")
