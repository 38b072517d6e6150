"""Rooms across nodes: what a node does for seats and rooms that live elsewhere.

A room lives on one node, its *home*: the listener's node, which keeps the
room's ``seq``, history, members and risk exactly as in a node alone. A member
on another node is a *ghost* seat at the home (``Seat.node`` names its node):
frames the home sends to a ghost are posted to that node's inbox, and frames the
member sends in the room are forwarded to the home as ``act`` events and
handled there as if the member were local. Rooms whose members all share a
node never touch Redis. The design is written out in docs/multinode.md.

Events between nodes (``k``): ``out`` (frames for seats), ``act`` (a member's
frame for the home), ``match`` (a pairing for the listener's node to open),
``presence`` (away/back, with ``since``), ``gone`` (a seat ended), ``requeue``
(put a seeker back at the head), ``moved`` (a seat resumed on another node),
``block`` (a moderator removed a seeker), ``rooms`` (a node's rooms, broadcast),
``mods`` (a frame for every moderator, broadcast).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from matching import Match, MatchingError, Ticket
from matching.tasks import stop_task

from . import protocol, seal, tokens
from .aliases import seeker_alias
from .coalesce import Coalesced
from .protocol import CloseCode, FrameError, Outgoing
from .relay import Event, Relay, RelayError, SeatSave, pack_frame, unpack_frame
from .risk import Level
from .rooms import Member, Room
from .seats import Seat

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("hearth.crossnode")

WATCH_S = 1.0  # how often the nodes of ghosts and homes are checked for life
SNAPSHOT_S = 5.0  # rooms are re-announced this often; older snapshots are dropped at 3x
ANNOUNCE_GAP_S = 0.1  # and after a change, at most this often
RESAVE_S = 300.0  # seat records are refreshed this often (their TTL is an hour)
SAVE_RETRY_S = 1.0  # seats whose save failed (Redis unreachable) are tried again after this
SAVE_BATCH = 200  # seat records per round trip (a resave of thousands: the loop runs between)
FRAMES: dict[str, type] = {cls.__name__: cls for cls in (
    protocol.Message, protocol.Typing, protocol.Leave, protocol.Escalate, protocol.Watch,
    protocol.Join, protocol.Close, protocol.Whisper)}
# Their fields, for a forwarded frame's map: the frames are flat, so this is what
# dataclasses.asdict gives, without its recursive copy (~5 us a message).
_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in FRAMES.values()}


def out_event(seats: list[str], out: Outgoing) -> Event:
    """The event that has another node deliver ``out`` to these of its seats: the frame
    as the JSON made for local members and the history anyway, which that node sends
    on as it is, with the type, room and seq its view of the room needs."""
    frame = out.frame
    return {"k": "out", "to": seats, "j": out.json(), "t": frame.get("type"),
            "r": frame.get("room"), "s": frame.get("seq")}


class CrossNode:
    """The node's side of the relay. Made by the node; call :meth:`start` after the
    matcher started and :meth:`stop` before it closes."""

    def __init__(self, node: Node, relay: Relay) -> None:
        self.node = node
        self.relay = relay
        self.me = node.settings.node_id
        self.snapshots: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._orphans: dict[str, asyncio.TimerHandle] = {}  # room -> end timer (home gone)
        self._dirty: set[str] = set()
        self._rewrite: set[str] = set()  # seats whose resume key is written again
        self._forget: list[str] = []  # ended seats whose records the writer deletes
        # No gap between writes: a node that dies loses what it had not written yet, and a
        # 20 ms gap made a seeker who resumed elsewhere at once find no record
        # (test_killed_node_rooms_end_or_resume_elsewhere, 1 run in 8 on a busy machine).
        self._saver = Coalesced(self._start_flush, 0.0)
        self._flushing = False  # a flush task runs (at most one)
        self._changed = Coalesced(self._announce, ANNOUNCE_GAP_S)
        self._retry: asyncio.TimerHandle | None = None  # a flush again, after one failed
        self._task: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        return self.relay.shared

    async def start(self) -> None:
        await self.relay.start(self.on_event)
        if self.shared:
            self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        self._changed.cancel()
        self._saver.cancel()
        if self._retry is not None:
            self._retry.cancel()
        await stop_task(self._task)
        await self.relay.close()

    # -- outgoing --------------------------------------------------------------------

    def deliver(self, ghosts: dict[str, list[str]], out: Outgoing) -> None:
        """Post one frame to ghosts grouped by node (:func:`out_event`, docs/multinode.md)."""
        for node, seats in ghosts.items():
            self.relay.post(node, out_event(seats, out))

    def forward(self, seat: Seat, frame: protocol.Frame) -> bool:
        """Send a member's frame to its room's home; False if the room is local or unknown."""
        room_id = getattr(frame, "room", None)
        if room_id is None or room_id in self.node.rooms or not self.shared:
            return False
        entry = seat.remote_rooms.get(room_id)
        home = entry[0] if entry else self._snapshot_home(room_id)
        if home is None:
            return False
        if not self.relay.healthy:
            raise FrameError(protocol.ErrorCode.UNAVAILABLE, "The room is unreachable; try again.")
        self.relay.post(home, {"k": "act", "seat": seat.id, "role": seat.role,
                               "alias": seat.alias, "t": type(frame).__name__,
                               "f": {k: getattr(frame, k) for k in _FIELDS[type(frame)]}})
        return True

    def forward_match(self, match: Match, seeker: Seat | None) -> None:
        """A pairing whose listener is on another node: that node opens the room."""
        t = match.ticket
        self.relay.post(match.listener_node, {
            "k": "match", "room": match.room, "listener": match.listener,
            "waited": match.waited_s, "alias": seeker.alias if seeker else None,
            "ticket": [t.seat, t.node, t.risk, t.topic, t.language, t.note, t.since]})

    def tell_home(self, seat: Seat, kind: str, **fields: Any) -> None:
        """Tell the homes of a local seat's remote rooms about it (away, back, gone)."""
        by_home: dict[str, list[str]] = {}
        for room_id, (home, _) in seat.remote_rooms.items():
            by_home.setdefault(home, []).append(room_id)
        for home, rooms in by_home.items():
            self.relay.post(home, {"k": kind, "seat": seat.id, "rooms": rooms, **fields})

    def requeue(self, node: str, seat_id: str, level: str) -> None:
        """Put a seeker on another node back at the head of the queue (its node asks)."""
        self.relay.post(node, {"k": "requeue", "seat": seat_id, "risk": level})

    def block(self, seat: Seat) -> None:
        assert seat.node is not None
        self.relay.post(seat.node, {"k": "block", "seat": seat.id})

    def escalation(self, frame: dict[str, Any]) -> None:
        if self.shared:
            self.relay.broadcast({"k": "mods", "f": pack_frame(frame)})

    def rooms_changed(self) -> None:
        """Announce this node's rooms to the others soon: at most one snapshot every
        ANNOUNCE_GAP_S (each holds every room here)."""
        if self.shared:
            self._changed.poke()

    def _announce(self) -> None:
        self.relay.broadcast({"k": "rooms", "node": self.me, "rooms": [
            {**r.summary(0), "opened_at": r.opened_at} for r in self.node.rooms.values()]})

    def remote_summaries(self) -> list[dict[str, Any]]:
        now, fresh = time.time(), time.monotonic() - 3 * SNAPSHOT_S
        out = []
        for at, rooms in self.snapshots.values():
            if at < fresh:
                continue
            for r in rooms:
                summary = {k: v for k, v in r.items() if k != "opened_at"}
                summary["age_s"] = max(0, int(now - r["opened_at"]))
                out.append(summary)
        return out

    def _snapshot_home(self, room_id: str) -> str | None:
        for node, (_, rooms) in self.snapshots.items():
            if any(r["room"] == room_id for r in rooms):
                return node
        return None

    # -- the seat directory -------------------------------------------------------------

    def save(self, seat: Seat) -> None:
        """Write the seat's record soon: in the next loop turn, or as soon as the write
        under way is done, with every other seat changed by then."""
        if not self.shared or seat.node is not None:
            return
        self._dirty.add(seat.id)
        if self._retry is None:  # else the retry writes it with the others
            self._saver.poke()

    def _start_flush(self) -> None:
        if not self._flushing:  # else the running flush starts the next when it ends
            self._flushing = True
            self.node.spawn(self._flush())

    async def _flush(self) -> None:
        """One writer at a time: two in flight could land out of order on different
        Redis connections and leave an older record (a listener without its new room)."""
        try:
            dirty, self._dirty = list(self._dirty), set()
            for at in range(0, len(dirty), SAVE_BATCH):
                if not await self._save(dirty[at:at + SAVE_BATCH]):
                    # Unknown what was written: all of these again, resume keys too, soon.
                    for seat_id in dirty[at:]:
                        self._rewrite.add(seat_id)
                        self._dirty.add(seat_id)
                    if self._retry is None:
                        self._retry = asyncio.get_running_loop().call_later(
                            SAVE_RETRY_S, self._flush_again)
                    return
            forget, self._forget = self._forget, []
            for seat_id in forget:  # best effort, as ever: the records' TTL ends them
                with contextlib.suppress(RelayError):
                    await self.relay.forget_seat(seat_id)
        finally:
            self._flushing = False
        if (self._dirty or self._forget) and self._retry is None:  # changed meanwhile
            self._saver.poke()

    def _flush_again(self) -> None:
        """After a failed flush: try the seats that were not saved once more."""
        self._retry = None
        if self._dirty or self._forget:
            self._saver.poke()

    async def _save(self, seat_ids: list[str]) -> bool:
        """Save these seats' records in one round trip; False if Redis failed."""
        saves: list[SeatSave] = []
        seats: list[Seat] = []
        for seat_id in seat_ids:
            seat = self.node.seats.get(seat_id)
            if seat is None or seat.node is not None:
                self._rewrite.discard(seat_id)
                continue
            # A record changes with every room and shift; the resume key (digest -> seat)
            # only with a new token: it is written when the digest is new to the
            # directory (and the spent token's key deleted), and on the resaves that
            # refresh every key.
            digest, saved = seat.resume_digest, seat.resume_saved
            saves.append(SeatSave(seat.id, self.record(seat), digest,
                                  resume=digest != saved or seat.id in self._rewrite,
                                  spent=saved if saved and saved != digest else None))
            seats.append(seat)
        if not saves:
            return True
        try:
            await self.relay.save_seats(saves)
        except RelayError:
            return False
        for seat, save in zip(seats, saves, strict=True):
            seat.resume_saved = save.digest or ""
            self._rewrite.discard(seat.id)
        return True

    def record(self, seat: Seat) -> dict[str, Any]:
        """The seat's directory record: its role in the open, and sealed under its
        current resume token (seal.py) all that rebuilds it: its alias, its rooms
        with their ``matched`` frames (which name the peer), its place (with the
        note it waits with) and shift."""
        sealer = seat.sealer
        if sealer is None:  # no token issued yet, so nothing could resume it
            return {"role": seat.role}
        rooms: dict[str, list[Any]] = {}
        for room_id in seat.rooms:
            room = self.node.rooms.get(room_id)
            if room is not None and room.member(seat.id) is not None:
                frame = self.node.home.matched(room, seat)
                rooms[room_id] = [self.me, {k: v for k, v in frame.items() if k != "note"}]
            elif room_id in seat.remote_rooms:
                home, remote = seat.remote_rooms[room_id]
                rooms[room_id] = [home, {k: v for k, v in (remote or {}).items() if k != "note"}]
        # A waiting seeker's note too: resumed on another node, it asks again with it.
        private = {"alias": seat.alias, "rooms": rooms, "waiting": seat.waiting,
                   "note": seat.note if seat.waiting else None,
                   "risk": seat.risk, "topic": seat.topic, "language": seat.language,
                   "status": seat.status, "topics": list(seat.topics),
                   "languages": list(seat.languages), "capacity": seat.capacity}
        return {"role": seat.role, "sealed": sealer.seal(pack_frame(private), seat.id)}

    def forget(self, seat: Seat) -> None:
        """Delete an ended seat's record soon, by the same writer as the saves and
        after them: deleted beside it, a save under way on another Redis connection
        could land after the delete and leave the record behind for its TTL (an
        hour; test_long_shift saw it on a busy machine)."""
        if not self.shared:
            return
        self._dirty.discard(seat.id)
        self._forget.append(seat.id)
        if self._retry is None:  # else the retry deletes it with the others
            self._saver.poke()

    async def claim(self, token: str) -> Seat | None:
        """Take back a seat another node held with its resume token: rebuild it from
        its record, which the token opens."""
        if not self.shared:
            return None
        try:
            claimed = await self.relay.claim(tokens.digest(token))
        except RelayError:
            return None
        if claimed is None:
            return None
        seat_id, stored = claimed
        sealer = seal.Sealer(seal.record_key(token))
        rec = _opened(stored, seat_id, sealer)
        if rec is None:
            log.warning("a claimed directory record could not be opened; resume refused")
            return None
        seat = self.node.seats.get(seat_id) or Seat(id=seat_id, role=stored["role"],
                                                    alias=rec["alias"])
        seat.sealer = sealer  # until the welcome issues the next token
        seat.node = None  # a ghost here becomes the seat itself
        seat.risk, seat.topic, seat.language = rec["risk"], rec["topic"], rec["language"]
        seat.status, seat.capacity = rec["status"], rec["capacity"]
        seat.topics, seat.languages = tuple(rec["topics"]), tuple(rec["languages"])
        seat.waiting = bool(rec["waiting"])
        seat.note = rec.get("note")  # not in a record of an earlier version
        for room_id, (home, frame) in rec["rooms"].items():
            if home != self.me:
                seat.rooms.add(room_id)
                seat.remote_rooms[room_id] = (home, frame)
        self.node.seats.adopt(seat)
        old = stored.get("node")
        if old and old != self.me and old not in {h for h, _ in seat.remote_rooms.values()}:
            self.relay.post(old, {"k": "moved", "seat": seat.id, "node": self.me, "since": 0})
        return seat

    async def after_claim(self, seat: Seat, since: dict[str, int] | int) -> None:
        """Tell the homes where the seat is now; queue it or put its shift back."""
        for room_id, (home, _) in seat.remote_rooms.items():
            after = since.get(room_id, 0) if isinstance(since, dict) else since
            self.relay.post(home, {"k": "moved", "seat": seat.id, "node": self.me,
                                   "room": room_id, "since": after})
        node = self.node
        try:
            if seat.role == "seeker" and seat.waiting and not seat.rooms:
                await node.pairing.enqueue(seat, head=True)
            elif seat.role == "listener" and seat.status in ("available", "break"):
                await node.pairing.matcher_shift(seat, status=seat.status)
        except (MatchingError, FrameError):
            log.warning("could not put a resumed seat back in the queue")
        self.save(seat)

    # -- incoming -----------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        kind = event.get("k")
        # The two kinds of a message, called by name first: compiled, a call in C,
        # where the lookup below builds a name and a bound method for every event.
        if kind == "out":
            self._on_out(event)
            return
        if kind == "act":
            self._on_act(event)
            return
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)

    def _on_reconnected(self, event: Event) -> None:
        self.rooms_changed()

    def _on_out(self, event: Event) -> None:
        out = Outgoing(None, event["j"])
        kind, room_id, seq = event.get("t"), event.get("r"), event.get("s")
        for seat_id in event["to"]:
            seat = self.node.seats.get(seat_id)
            if seat is None and kind == "matched":
                # The seat ended while its match was made: the room ends at its home.
                self.relay.post(event["from"], {"k": "gone", "seat": seat_id,
                                                "rooms": [room_id], "reason": "peer_left"})
            if seat is None or seat.node is not None:
                continue
            self._mirror(seat, kind, room_id, seq, out, event.get("from", ""))
            if seat.conn is not None:
                seat.conn.push(out)

    def _mirror(self, seat: Seat, kind: Any, room_id: Any, seq: Any, out: Outgoing,
                home: str) -> None:
        """Keep a local seat's view of its remote rooms from the frames it is sent."""
        if not isinstance(room_id, str) or room_id in self.node.rooms:
            return
        if kind == "message" and isinstance(seq, int):
            if seq > seat.remote_seq.get(room_id, 0):
                seat.remote_seq[room_id] = seq
        elif kind in ("matched", "history") and room_id not in seat.remote_rooms:
            seat.rooms.add(room_id)
            seat.remote_rooms[room_id] = (home, out.frame if kind == "matched" else None)
            if kind == "matched":
                seat.waiting = False
                seat.last_place = None
            self.save(seat)
        elif kind == "ended":
            seat.rooms.discard(room_id)
            seat.remote_rooms.pop(room_id, None)
            seat.remote_seq.pop(room_id, None)
            self._cancel_orphan(room_id)
            self.save(seat)

    def _ghost(self, seat_id: str, role: str, alias: str, node: str) -> Seat:
        seat = self.node.seats.get(seat_id)
        if seat is None:
            seat = self.node.seats.ghost(seat_id, role, alias, node)
        return seat

    def _on_act(self, event: Event) -> None:
        seat = self.node.seats.get(event["seat"])
        if seat is None:
            if event["role"] != "moderator":
                return
            seat = self._ghost(event["seat"], "moderator", event["alias"], event["from"])
        if seat.node is None:
            return  # a stale forward for a seat that lives here again
        frame = FRAMES[event["t"]](**event["f"])
        try:
            done = self.node.handle_now(seat, frame)  # a message: no task for it
        except FrameError as exc:
            self.node.send(seat.id, exc.frame())
            done = True
        if done:
            self._acted(seat)
        else:
            self.node.spawn(self._act(seat, frame))

    async def _act(self, seat: Seat, frame: protocol.Frame) -> None:
        try:
            await self.node.handle(seat, frame)
        except FrameError as exc:
            self.node.send(seat.id, exc.frame())
        self._acted(seat)

    def _acted(self, seat: Seat) -> None:
        if seat.node is not None and not seat.rooms:
            self.node.seats.remove(seat)  # a ghost with no room here any more

    def _on_match(self, event: Event) -> None:
        seat, node, level, topic, language, note, since = event["ticket"]
        ticket = Ticket(seat, node, level, topic, language, note, since)
        match = Match(event["room"], ticket, event["listener"], self.me, event["waited"])
        self.node.spawn(self.open_remote(match, event.get("alias")))

    async def open_remote(self, match: Match, alias: str | None) -> None:
        """Open a room here (the listener's node) for a seeker on another node."""
        t = match.ticket
        if alias is None:
            try:
                rec = await self.relay.seat_record(t.seat)
            except RelayError:
                rec = None
            # The record only tells that the seat still lives: a seeker's alias is
            # derived from its seat (aliases.py), never kept.
            alias = seeker_alias(self.node.alias_key, t.seat) if rec else None
        if alias is None:  # no record: free the place; its node requeues it if it is there
            self.requeue(t.node, t.seat, t.risk)
            try:
                self.node.home.open_rooms(await self.node.matcher.room_ended(match.room))
            except MatchingError:
                pass
            return
        ghost = self._ghost(t.seat, "seeker", alias, t.node)
        ghost.risk = t.risk  # type: ignore[assignment]  # a level the matcher was given
        ghost.topic, ghost.language = t.topic, t.language
        self.node.home.open_room(match)

    def _on_presence(self, event: Event) -> None:
        seat = self.node.seats.get(event["seat"])
        if seat is None or seat.node is None:
            return
        state = event["state"]
        for room_id in event["rooms"]:
            room = self.node.rooms.get(room_id)
            if room is None:
                continue
            if state in ("away", "back"):
                self.node.presence(room, seat, state)
            if state in ("back", "sync"):
                self._send_missed(seat, room, event.get("since", 0))

    def _send_missed(self, seat: Seat, room: Room, since: Any) -> None:
        after = since.get(room.id, 0) if isinstance(since, dict) else int(since or 0)
        for frame in room.since(after):
            self.node.send(seat.id, frame)

    def _on_gone(self, event: Event) -> None:
        seat = self.node.seats.get(event["seat"])
        if seat is not None and seat.node is not None:
            self.node.spawn(self.node.end_seat(seat, event["reason"]))

    def _on_requeue(self, event: Event) -> None:
        seat = self.node.seats.get(event["seat"])
        if seat is None or seat.node is not None:
            return
        self.node.spawn(self.node.pairing.requeue(seat, event["risk"]))

    def _on_block(self, event: Event) -> None:
        seat = self.node.seats.get(event["seat"])
        if seat is not None and seat.node is None:
            self.node.spawn(self.node.moderation.remove_seeker(seat))

    def _on_moved(self, event: Event) -> None:
        seat = self.node.seats.get(event["seat"])
        if seat is None:
            return
        new = event["node"]
        if seat.node is None:
            # The seat was here: its old connection is replaced by one elsewhere.
            if seat.conn is not None:
                seat.conn.close(CloseCode.RESUMED_ELSEWHERE)
            self.node.seats.forget_resume(seat)
            if not any(r in self.node.rooms for r in seat.rooms):
                self.node.seats.remove(seat)
                return
        seat.keep()
        was_away = seat.node != new or seat.conn is None
        seat.node, seat.conn = new, None
        room = self.node.rooms.get(event.get("room", ""))
        if room is not None and room.member(seat.id) is not None:
            if was_away:
                self.node.presence(room, seat, "back")
            self._send_missed(seat, room, event.get("since", 0))

    def _on_rooms(self, event: Event) -> None:
        self.snapshots[event["node"]] = (time.monotonic(), event["rooms"])
        self.node.moderation.push_rooms()

    def _on_mods(self, event: Event) -> None:
        self.node.broadcast(self.node.moderators, unpack_frame(event["f"]))

    # -- nodes that die -----------------------------------------------------------------

    async def _watch(self) -> None:
        """Ghosts on dead nodes are lost; rooms whose home died end after resume_s."""
        last_snapshot = last_save = time.monotonic()
        while True:
            await asyncio.sleep(WATCH_S)
            try:
                await self._check_nodes()
            except RelayError:
                continue  # redis is down: nobody can be judged dead
            except Exception as exc:  # the kind only: details may hold personal data
                log.error("node watch failed: %s", type(exc).__name__)
            now = time.monotonic()
            if now - last_snapshot >= SNAPSHOT_S:
                last_snapshot = now
                self._announce()
                stale = now - 3 * SNAPSHOT_S
                for node in [n for n, (at, _) in self.snapshots.items() if at < stale]:
                    del self.snapshots[node]
                    self.node.moderation.push_rooms()
            if now - last_save >= RESAVE_S:
                last_save = now
                self.resave_all(announce=False)

    async def _check_nodes(self) -> None:
        seats = self.node.seats.all()
        ghosts = [s for s in seats if s.node is not None]
        homes = {h for s in seats if s.node is None for h, _ in s.remote_rooms.values()}
        nodes = {s.node for s in ghosts if s.node is not None} | homes
        if not nodes:
            return
        alive = await self.relay.alive(nodes)
        for ghost in ghosts:
            if ghost.node not in alive and ghost.lost_timer is None:
                self._lose_ghost(ghost)
        for seat in seats:
            if seat.node is not None:
                continue
            for room_id, (home, frame) in list(seat.remote_rooms.items()):
                if home in alive:
                    continue
                if seat.role == "listener":
                    self._rehome(seat, room_id, frame)
                elif room_id not in self._orphans:
                    self._orphans[room_id] = asyncio.get_running_loop().call_later(
                        self.node.settings.resume_s, self._orphan_timer, room_id, home)

    def _rehome(self, listener: Seat, room_id: str, frame: dict[str, Any] | None) -> None:
        """The room's home died and its listener is here now: the room moves here.

        Its history died with the old home; its ``seq`` goes on from the last one the
        other members' nodes delivered (they answer ``rehome`` with ``adopt``).
        Messages sent to the dead home in between are lost.
        """
        listener.remote_rooms.pop(room_id, None)
        frame = frame or {}
        said = frame.get("risk")
        level: Level = said if said in ("elevated", "crisis") else "normal"
        room = Room(room_id, frame.get("topic"), frame.get("language"), None, level,
                    time.time(), time.monotonic(), self.node.settings.history)
        room.add(Member(listener.id, "listener", listener.alias, "member"))
        self.node.rooms[room_id] = room
        listener.rooms.add(room_id)
        self.save(listener)
        self.relay.broadcast({"k": "rehome", "room": room_id, "home": self.me})
        self.node.spawn(self._restore_capacity(listener))
        self.node.moderation.rooms_changed()

    async def _restore_capacity(self, listener: Seat) -> None:
        rooms = sorted(r for r in listener.rooms if r in self.node.rooms)
        try:
            await self.node.matcher.restore_rooms(listener.id, rooms)
        except MatchingError:
            log.warning("could not restore a moved listener's rooms in matching")

    def _on_rehome(self, event: Event) -> None:
        """A room's home moved: point our members at it and tell it who they are."""
        room_id, home = event["room"], event["home"]
        for seat in self.node.seats.all():
            if seat.node is not None or room_id not in seat.remote_rooms:
                continue
            _, frame = seat.remote_rooms[room_id]
            seat.remote_rooms[room_id] = (home, frame)
            self._cancel_orphan(room_id)
            self.relay.post(home, {"k": "adopt", "room": room_id, "seat": seat.id,
                                   "role": seat.role, "alias": seat.alias,
                                   "seq": seat.remote_seq.get(room_id, 0)})
            self.save(seat)

    def _on_adopt(self, event: Event) -> None:
        """A member of a room that moved here, on the node that sent this."""
        room = self.node.rooms.get(event["room"])
        if room is None:
            return
        ghost = self._ghost(event["seat"], event["role"], event["alias"], event["from"])
        ghost.rooms.add(room.id)
        room.add(Member(ghost.id, ghost.role, ghost.alias, "member"))
        room.seq = max(room.seq, int(event["seq"]))
        listener = room.party("listener")
        listener_seat = self.node.seats.get(listener.seat) if listener else None
        if listener_seat is not None:
            self.node.presence(room, listener_seat, "back")  # tells the member
        self.node.presence(room, ghost, "back")  # tells the listener
        self.node.moderation.rooms_changed()

    def _cancel_orphan(self, room_id: str) -> None:
        timer = self._orphans.pop(room_id, None)
        if timer is not None:
            timer.cancel()

    def _orphan_timer(self, room_id: str, home: str) -> None:
        self.node.spawn(self._orphaned(room_id, home))

    def _lose_ghost(self, ghost: Seat) -> None:
        for room_id in ghost.rooms:
            room = self.node.rooms.get(room_id)
            if room is not None:
                self.node.presence(room, ghost, "away")
        ghost.lost_timer = asyncio.get_running_loop().call_later(
            self.node.settings.resume_s,
            lambda: self.node.spawn(self.node.end_seat(ghost, "peer_lost")))

    async def _orphaned(self, room_id: str, home: str) -> None:
        """The room's home died and did not come back: the room ends here too."""
        self._orphans.pop(room_id, None)
        try:
            if home in await self.relay.alive({home}):
                return
        except RelayError:
            return
        for seat in self.node.seats.all():
            if seat.node is None and seat.remote_rooms.get(room_id, ("", None))[0] == home:
                seat.remote_rooms.pop(room_id)
                seat.rooms.discard(room_id)
                self.node.send(seat.id, {"type": "ended", "room": room_id,
                                         "reason": "peer_lost"})
                if seat.role == "seeker":
                    await self.node.pairing.requeue(seat, seat.risk)
                self.save(seat)

    # -- after the matcher lost its state -----------------------------------------------

    def resave_all(self, *, announce: bool = True) -> None:
        """Write every local seat's record and resume key again: after Redis lost the
        seat directory, and every RESAVE_S to refresh their TTLs."""
        for seat in self.node.seats.all():
            if seat.node is None:
                self._rewrite.add(seat.id)
            self.save(seat)
        if announce:
            self.rooms_changed()


def _opened(record: dict[str, Any], seat_id: str, sealer: seal.Sealer) -> dict[str, Any] | None:
    """A seat record's sealed part, opened; None if this key does not open it. A record
    with no sealed part was written in the open by a node of an earlier version."""
    sealed = record.get("sealed")
    if sealed is None:
        return record if "alias" in record else None
    data = sealer.open(sealed, seat_id)
    return unpack_frame(data) if data is not None else None
