"""Talk: what the members of a room do in it, and the scoring of what seekers say.

The handlers take a member's ``message``, ``typing``, ``leave`` and
``escalate`` frames for a room this node is home to; a frame for a room the
seat is not in raises ``not_in_room``, and a watching moderator may not speak.
A message is masked (contact details), posted and pushed to every member at
once; a seeker's message is scored afterwards, with the others of that moment
(at most ``SCORE_BATCH_S`` later). Risk only goes up: a rise tells the
listener and the moderators, and ``crisis`` sends the seeker ``resources``,
escalates, and holds the listener from new matches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from . import contact, metrics, protocol, resources, risk
from .protocol import ErrorCode, FrameError
from .rooms import Room
from .seats import Seat

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("hearth.node")
SCORE_BATCH_S = 0.05  # a seeker message is scored at most this long after it was relayed
SCORE_BATCH_MAX = 64  # or as soon as this many wait (a batch holds the loop ~1.5 ms)
# A member's typing frames go out at most once this often per room. A connection keeps
# the time of the last one per room; from eight rooms on it forgets those over a gap
# old, which hold nothing back (a listener on shift for hours, or a moderator all
# night, meets hundreds of rooms: tests/test_long_shift.py).
TYPING_GAP_S = 1.0


def _score(text: str, language: str | None) -> risk.Level | None:
    """risk.score, and None if it failed: one message's failure must not cost the
    others of its batch their scoring (logged by kind only: never the text)."""
    try:
        return risk.score(text, language)
    except Exception as exc:
        log.error("risk scoring failed: %s", type(exc).__name__)
        return None


def now_ms() -> int:
    """Wall time in milliseconds, the ``ts`` of frames."""
    return int(time.time() * 1000)


class Talk:
    """The room frames of members; made by the node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._to_score: list[tuple[Room, Seat, str]] = []  # seeker messages to score
        self._score_timer: asyncio.TimerHandle | None = None

    def message(self, seat: Seat, frame: protocol.Message) -> None:
        node = self.node
        room, member = node.room_of(seat, frame.room)
        if member.mode == "watching":
            raise FrameError(ErrorCode.NOT_ALLOWED, "Watching moderators cannot speak.", "message")
        text, masked = contact.mask_contacts(frame.text)
        out = room.post(member, text, frame.id, now_ms(), time.monotonic())
        node.broadcast(list(room.members), out)
        metrics.count_message()
        if masked:
            node.send(seat.id, {"type": "notice", "room": room.id, "code": "contact_info",
                                "message": "Contact details were removed. To keep everyone safe, "
                                           "chats stay on Hearth."})
            node.moderation.escalate_room(room, "system", "contact_info", room.risk, mark=False)
        if seat.role == "seeker" and room.risk != "crisis":  # risk only goes up
            self._queue_score(room, seat, frame.text)

    def _queue_score(self, room: Room, seat: Seat, text: str) -> None:
        """Score a seeker's message a moment after it was relayed, with the others
        of that moment: at most SCORE_BATCH_S later, or at once when
        SCORE_BATCH_MAX are waiting.

        The scorer's tables and regexes are cold in the cache after a trip
        through the rest of the server: 84 us a message cold against 12 us warm
        (timeit with the caches evicted), 37 us in the server. Scored
        back to back, all but the first find them warm: 50 ms batches cost 5-9 %
        less server CPU per message than 10 ms ones (docs/performance.md)."""
        self._to_score.append((room, seat, text))
        if len(self._to_score) == 1:
            self._score_timer = asyncio.get_running_loop().call_later(
                SCORE_BATCH_S, self._score_now)
        elif len(self._to_score) >= SCORE_BATCH_MAX:
            self._score_now()

    def _score_now(self) -> None:
        """Score the waiting batch here, in the timer's callback: a task only for
        the rises, which are rare. A task a batch cost ~31,000 instructions, a
        third of scoring a message, and at a quiet hour a batch holds one
        (loadtests/instructions.py; docs/performance.md)."""
        if self._score_timer is not None:
            self._score_timer.cancel()
            self._score_timer = None
        batch, self._to_score = self._to_score, []
        if not batch or self.node.stopped:
            return
        rises = []
        for room, seat, text in batch:
            if room.risk == "crisis":
                continue
            level = _score(text, room.language)
            if level is not None and risk.rank(level) > risk.rank(room.risk):
                rises.append((room, seat, level))
        if rises:
            self.node.spawn(self._raise_all(rises))

    async def _raise_all(self, rises: list[tuple[Room, Seat, risk.Level]]) -> None:
        for room, seat, level in rises:
            if self.node.rooms.get(room.id) is room:  # it may have ended during an await
                await self._raise_risk(room, seat, level)

    async def _raise_risk(self, room: Room, seat: Seat, level: risk.Level) -> None:
        node = self.node
        was = room.risk
        if not room.raise_risk(level):
            return
        seat.risk = risk.higher(seat.risk, level)
        watchers = [m.seat for m in room.members.values() if m.role != "seeker"]
        node.broadcast(watchers, {"type": "risk", "room": room.id, "risk": room.risk})
        if room.risk == "crisis" and was != "crisis":
            node.send(seat.id, resources.frame(seat.language))
            node.moderation.escalate_room(room, "system", "crisis", room.risk)
            listener = room.party("listener")
            target = node.seats.get(listener.seat) if listener else None
            if target is not None:
                await node.pairing.update_hold(target)
        node.moderation.rooms_changed()

    def typing(self, seat: Seat, frame: protocol.Typing) -> None:
        room, member = self.node.room_of(seat, frame.room)
        if member.mode == "watching":
            return
        conn = seat.conn
        now = time.monotonic()
        if conn is not None:
            typing_at = conn.typing_at
            if now - typing_at.get(room.id, 0.0) < TYPING_GAP_S:
                return  # one typing frame a second is plenty
            if len(typing_at) >= 8:  # forget the marks that no longer hold anything back
                for old in [r for r, at in typing_at.items() if now - at >= TYPING_GAP_S]:
                    del typing_at[old]
            typing_at[room.id] = now
        self.node.broadcast(room.others(seat.id), {"type": "typing", "room": room.id,
                                                   "from": member.who})

    async def leave(self, seat: Seat, frame: protocol.Leave) -> None:
        node = self.node
        room, member = node.room_of(seat, frame.room)
        if member.mode != "member":
            node.moderation.leave(room, seat, member)
            node.send(seat.id, {"type": "ended", "room": room.id, "reason": "left"})
            return
        node.home.end_room(room, {seat.id: "left"}, default="peer_left",
                           requeue=seat.role == "listener")

    async def escalate(self, seat: Seat, frame: protocol.Escalate) -> None:
        room, member = self.node.room_of(seat, frame.room)
        self.node.send(seat.id, {"type": "escalated", "room": room.id})
        self.node.moderation.escalate_room(room, seat.role, frame.reason, room.risk)
