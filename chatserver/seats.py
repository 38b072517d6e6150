"""Seats: a person's place in the service, which outlives a dropped connection.

A seat is made by a ``hello`` and holds the role, the alias, the rooms, the
place in the queue and the shift. Its connection may drop; the seat is kept
for ``resume_s`` seconds and is taken back with a single-use resume token.
The registry keeps only digests of resume tokens, and beside each the key
derived from it that seals the seat's record in the directory (seal.py).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import seal, tokens
from .risk import Level

if TYPE_CHECKING:
    from .connection import Connection


@dataclass(slots=True)
class Seat:
    id: str
    role: str
    alias: str
    conn: Connection | None = None
    rooms: set[str] = field(default_factory=set)
    waiting: bool = False  # seeker in the queue
    risk: Level = "normal"  # seeker's highest risk so far
    topic: str | None = None
    language: str | None = None
    note: str | None = None
    # listener
    status: str = "off"
    topics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    capacity: int = 1
    cooldown_until: float = 0.0
    told_hold: float | None = None  # the hold the matcher was last told (None: not known)
    last_shift: tuple[object, ...] | None = None  # last shift frame sent, to send on change
    # seeker
    last_place: tuple[object, ...] | None = None
    queued_at: float = 0.0  # monotonic time of the request that holds its place
    origin_key: str = ""  # keyed hash of the address (never the address)
    resume_digest: str = ""
    resume_saved: str = ""  # the digest whose key the seat directory holds (crossnode.py)
    # Seals the seat's record under its current token. A cipher object, 1.3 KiB (RSS an
    # idle connection in bench.py 20.1 -> 21.5 KiB); keeping only the 32-byte key and
    # making one a save cost 5.2k instructions more a seal, two seals a pairing.
    sealer: seal.Sealer | None = None
    lost_timer: asyncio.TimerHandle | None = None
    # across nodes (see crossnode.py)
    node: str | None = None  # None: the seat is here; else a ghost of a seat on that node
    remote_rooms: dict[str, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)
    remote_seq: dict[str, int] = field(default_factory=dict)  # last seq delivered, by room

    def keep(self) -> None:
        """Cancel the end that ``lost_timer`` holds for this seat, if any."""
        if self.lost_timer is not None:
            self.lost_timer.cancel()
            self.lost_timer = None


class SeatRegistry:
    def __init__(self) -> None:
        self._seats: dict[str, Seat] = {}
        self._by_resume: dict[str, str] = {}

    def create(self, role: str, alias: str) -> Seat:
        seat = Seat(id=secrets.token_urlsafe(9), role=role, alias=alias)
        self._seats[seat.id] = seat
        return seat

    def ghost(self, seat_id: str, role: str, alias: str, node: str) -> Seat:
        """A seat that lives on another node, as a member of rooms homed here."""
        seat = Seat(id=seat_id, role=role, alias=alias, node=node)
        self._seats[seat_id] = seat
        return seat

    def adopt(self, seat: Seat) -> None:
        """A seat rebuilt from the directory after it resumed here from another node."""
        self._seats[seat.id] = seat

    def forget_resume(self, seat: Seat) -> None:
        self._by_resume.pop(seat.resume_digest, None)

    def get(self, seat_id: str) -> Seat | None:
        return self._seats.get(seat_id)

    def all(self) -> list[Seat]:
        return list(self._seats.values())

    def issue_resume(self, seat: Seat) -> str:
        """A fresh single-use token; the previous one stops working."""
        self._by_resume.pop(seat.resume_digest, None)
        token = tokens.new_resume_token()
        seat.resume_digest = tokens.digest(token)
        seat.sealer = seal.Sealer(seal.record_key(token))
        self._by_resume[seat.resume_digest] = seat.id
        return token

    def take(self, token: str) -> Seat | None:
        """Spend a resume token; None if it is unknown, spent or its seat ended."""
        seat_id = self._by_resume.pop(tokens.digest(token), None)
        return self._seats.get(seat_id) if seat_id else None

    def remove(self, seat: Seat) -> None:
        self._seats.pop(seat.id, None)
        self._by_resume.pop(seat.resume_digest, None)
        seat.keep()
