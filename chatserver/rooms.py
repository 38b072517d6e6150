"""A room: its members, its message sequence and its short history. No I/O.

A room opens when a seeker is matched with a listener and ends when either of
them leaves or is lost, when a moderator closes it, or when it is idle too
long. Its history lives in this process's memory only while the room lives;
when the room ends, the object and the text in it are dropped.

Members have a mode: ``member`` (the seeker and the listener), ``joined`` (a
moderator who was announced and may speak) or ``watching`` (a moderator who
receives everything silently and may not speak).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from .risk import Level, higher

Mode = Literal["member", "joined", "watching"]


@dataclass(slots=True)
class Member:
    seat: str
    role: str
    alias: str
    mode: Mode

    @property
    def who(self) -> dict[str, str]:
        return {"role": self.role, "alias": self.alias}


@dataclass(slots=True)
class Room:
    id: str
    topic: str | None
    language: str | None
    note: str | None
    risk: Level
    opened_at: float  # wall seconds
    last_active: float  # monotonic seconds
    history_size: int = 200
    escalated: bool = False
    seq: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    history: deque[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.history_size)

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
             now: float) -> dict[str, Any]:
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
        self.history.append(frame)
        return frame

    def since(self, seq: int) -> list[dict[str, Any]]:
        return [m for m in self.history if m["seq"] > seq]

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
