"""A room: its members, its message sequence and its short history. No I/O.

A room opens when a seeker is matched with a listener and ends when either of
them leaves or is lost, when a moderator closes it, or when it is idle too
long. Its history lives in this process's memory only while the room lives;
when the room ends, the object and the text in it are dropped. History holds
each message as ``(seq, JSON)``: the encoding made for delivery anyway, and
objects the garbage collector never has to traverse, where a dict per message
(with its sender's dict) made full collections of a busy node take over
100 ms (docs/performance.md).

Members have a mode: ``member`` (the seeker and the listener), ``joined`` (a
moderator who was announced and may speak) or ``watching`` (a moderator who
receives everything silently and may not speak).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from .protocol import Outgoing
from .risk import Level, higher

Mode = Literal["member", "joined", "watching"]


# Member and Room write their __init__ out (init=False): compiled, the generated one
# stays interpreted, ~2,400 and ~10,400 instructions each, a pairing's (callgrind,
# match_instructions.py).
@dataclass(slots=True, init=False)
class Member:
    seat: str
    role: str
    alias: str
    mode: Mode
    # One object for every frame this member appears in; never mutated.
    who: dict[str, str] = field(repr=False, compare=False)

    def __init__(self, seat: str, role: str, alias: str, mode: Mode) -> None:
        self.seat = seat
        self.role = role
        self.alias = alias
        self.mode = mode
        self.who = {"role": role, "alias": alias}


@dataclass(slots=True, init=False)
class Room:
    id: str
    topic: str | None
    language: str | None
    note: str | None
    risk: Level
    opened_at: float  # wall seconds
    last_active: float  # monotonic seconds
    history_size: int
    escalated: bool
    seq: int
    members: dict[str, Member]
    # The kept messages: their seqs and their frames as JSON, side by side. Two deques
    # of ints and strings rather than one of (seq, JSON) tuples: a tuple is an object
    # the garbage collector tracks, and a thousand busy rooms' histories made every
    # young collection walk ~50,000 of them, 40-50 ms with the loop stopped (p99 spikes,
    # docs/performance.md); ints and strings it never tracks.
    history_seqs: deque[int]
    history: deque[str]

    def __init__(self, id: str, topic: str | None, language: str | None, note: str | None,
                 risk: Level, opened_at: float, last_active: float, history_size: int = 200,
                 escalated: bool = False, seq: int = 0,
                 members: dict[str, Member] | None = None) -> None:
        self.id = id
        self.topic = topic
        self.language = language
        self.note = note
        self.risk = risk
        self.opened_at = opened_at
        self.last_active = last_active
        self.history_size = history_size
        self.escalated = escalated
        self.seq = seq
        self.members = {} if members is None else members
        self.history_seqs = deque(maxlen=history_size)
        self.history = deque(maxlen=history_size)

    # -- membership ------------------------------------------------------------

    def add(self, member: Member) -> None:
        self.members[member.seat] = member

    def remove(self, seat: str) -> Member | None:
        return self.members.pop(seat, None)

    def member(self, seat: str) -> Member | None:
        return self.members.get(seat)

    def party(self, role: str) -> Member | None:
        """The seeker or the listener of the room."""
        for m in self.members.values():
            if m.role == role and m.mode == "member":
                return m
        return None

    def others(self, seat: str) -> list[str]:
        return [s for s in self.members if s != seat]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.members.values():
            out[m.role] = out.get(m.role, 0) + 1
        return out

    # -- messages --------------------------------------------------------------

    def post(self, sender: Member, text: str, client_id: str | None, ts_ms: int,
             now: float) -> Outgoing:
        """Give the message the next ``seq``, keep it in history, return the frame."""
        self.seq += 1
        self.last_active = now
        frame: dict[str, Any] = {
            "type": "message",
            "room": self.id,
            "seq": self.seq,
            "ts": ts_ms,
            "from": sender.who,
            "text": text,
        }
        if client_id is not None:
            frame["id"] = client_id
        out = Outgoing(frame)
        self.history_seqs.append(self.seq)
        self.history.append(out.json())
        return out

    def since(self, seq: int) -> list[Outgoing]:
        """The kept messages after ``seq``, oldest first, ready to send again."""
        return [Outgoing.of_json(text)
                for s, text in zip(self.history_seqs, self.history, strict=True) if s > seq]

    def messages(self) -> list[dict[str, Any]]:
        """The kept messages as frame objects (for a ``history`` frame)."""
        return [m.frame for m in self.since(0)]

    def raise_risk(self, level: Level) -> bool:
        """Risk only goes up; True if it rose."""
        new = higher(self.risk, level)
        if new == self.risk:
            return False
        self.risk = new
        return True

    def summary(self, now_wall: float) -> dict[str, Any]:
        return {
            "room": self.id,
            "topic": self.topic,
            "language": self.language,
            "risk": self.risk,
            "escalated": self.escalated,
            "age_s": max(0, int(now_wall - self.opened_at)),
            "members": self.counts(),
        }
