"""The matching interface: who waits, who listens, who is paired with whom.

One interface, several backends chosen by URL (see :func:`matching.open_matcher`):
``memory://`` keeps everything in this process (the embedded default),
``redis://`` keeps it in Redis so that many nodes share one queue.

Rules every backend implements the same way:

- Seekers wait in order of risk (``crisis`` before ``elevated`` before
  ``normal``), then arrival. A seeker put back after losing its listener goes
  to the head of its risk level (``request(ticket, head=True)``).
- A listener fits a seeker when its topics are empty or hold the seeker's topic
  (a seeker without a topic fits anyone), and likewise for languages.
- A listener is free when it is ``available``, has fewer rooms than its
  capacity and is not held (crisis room or cool-down, see :meth:`hold`).
- Pairing happens when the second party arrives: a ``request`` takes the
  fairest free fitting listener (fewest rooms, then longest free); a listener
  that becomes free takes the first fitting seekers in queue order.
- Every method that can pair returns the :class:`Match` es it made. The caller
  opens the rooms and tells both sides. A pairing decision is atomic.

Call order: ``await start(on_change)`` once, then any method, then
``await close()``. ``on_change`` is called (not awaited) whenever the queue or
any listener changed, on this node or another, so that nodes can refresh the
positions they show.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

RISK_RANK = {"normal": 0, "elevated": 1, "crisis": 2}
HELD_FOREVER = math.inf


class MatchingError(Exception):
    """The matching backend cannot be reached; the caller answers ``unavailable``."""


@dataclass(slots=True)
class Ticket:
    """A seeker's place in the queue."""

    seat: str
    node: str
    risk: str = "normal"
    topic: str | None = None
    language: str | None = None
    note: str | None = None
    since: float = 0.0  # wall time the seeker first asked; set by the backend


@dataclass(slots=True)
class Listener:
    """A listener's shift as the matcher sees it."""

    seat: str
    node: str
    status: str = "available"
    topics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    capacity: int = 1
    rooms: int = 0
    free_since: float = 0.0
    held_until: float = 0.0  # wall time; HELD_FOREVER while in a crisis room


class NoteSealer(Protocol):
    """Seals a waiting seeker's note while a shared backend keeps it (Redis never
    holds it readable; ``chatserver.seal.Sealer``). ``context`` is the seat."""

    def seal_text(self, text: str, context: str) -> str: ...

    def open_text(self, sealed: str, context: str) -> str | None: ...


@dataclass(slots=True)
class Match:
    room: str
    ticket: Ticket
    listener: str
    listener_node: str
    waited_s: float


@dataclass(slots=True)
class Place:
    """What a waiting seeker is told in ``queued``."""

    position: int
    waiting: int
    estimate_s: int | None
    on_shift: int


@dataclass(slots=True)
class Stats:
    waiting: int = 0
    on_shift: int = 0
    rooms: int = 0
    by_risk: dict[str, int] = field(default_factory=dict)


def fits(ticket: Ticket, listener: Listener) -> bool:
    topic_ok = not listener.topics or ticket.topic is None or ticket.topic in listener.topics
    lang_ok = (
        not listener.languages or ticket.language is None or ticket.language in listener.languages
    )
    return topic_ok and lang_ok


def is_free(listener: Listener, now: float) -> bool:
    return (
        listener.status == "available"
        and listener.rooms < listener.capacity
        and listener.held_until <= now
    )


def estimate(position: int, match_times: list[float], on_shift: int) -> int | None:
    """Seconds until ``position`` is served, from the recent service rate, or None.

    The rate is the pace of the last matches (at least three); with nobody on
    shift or too little history, the honest answer is that we do not know.
    """
    if on_shift == 0 or len(match_times) < 3:
        return None
    span = match_times[-1] - match_times[0]
    if span <= 0:
        return None
    per_match = span / (len(match_times) - 1)
    return max(1, math.ceil(position * per_match))


class Matcher(abc.ABC):
    """The queue and the listeners on shift; see the module docstring."""

    @abc.abstractmethod
    async def start(self, on_change: Callable[[], None]) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ready(self) -> bool:
        """True while the backend is reachable."""

    @abc.abstractmethod
    async def request(self, ticket: Ticket, *, head: bool = False) -> list[Match]:
        """Queue a seeker (or pair it at once)."""

    @abc.abstractmethod
    async def cancel(self, seat: str) -> bool:
        """Take a seeker out of the queue; False if it was not waiting."""

    @abc.abstractmethod
    async def raise_risk(self, seat: str, risk: str) -> None:
        """Move a waiting seeker up to ``risk`` (it never goes down)."""

    @abc.abstractmethod
    async def set_shift(self, listener: Listener) -> list[Match]:
        """Start or change a shift; ``status='off'`` leaves it (rooms stay counted)."""

    @abc.abstractmethod
    async def hold(self, seat: str, until: float) -> list[Match]:
        """Keep a listener from new matches until wall time ``until`` (0 lifts it)."""

    @abc.abstractmethod
    async def room_ended(self, room: str) -> list[Match]:
        """Free the room's place in its listener's capacity."""

    @abc.abstractmethod
    async def drop_listener(self, seat: str) -> None:
        """The listener's seat is gone: forget its shift."""

    @abc.abstractmethod
    async def places(self, seats: list[str]) -> dict[str, Place]:
        """Queue places of these seekers (only those still waiting)."""

    async def listener(self, seat: str) -> tuple[Listener, int] | None:
        """A listener's shift and how many waiting seekers it could take."""
        return (await self.listeners([seat])).get(seat)

    @abc.abstractmethod
    async def listeners(self, seats: list[str]) -> dict[str, tuple[Listener, int]]:
        """:meth:`listener` for many seats in one call (only those with a shift on
        record); one round trip on a shared backend."""

    @abc.abstractmethod
    async def stats(self) -> Stats: ...

    # -- after the backend lost its state ------------------------------------------

    def set_resync(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Register what to await when a shared backend lost what this node holds.

        Redis restarted empty, or this node was cut off long enough to be taken
        for dead: the callback registers again, in this order, the node's
        listeners (``set_shift`` with ``rooms`` and ``held_until`` set, then
        :meth:`restore_rooms`) and its waiting seekers (``request(head=True)``
        in their original queue order). A backend that cannot lose its state
        (the in-process one) never calls it.
        """
        return None

    async def restore_rooms(self, seat: str, rooms: list[str]) -> None:
        """After a resync: the rooms a re-registered listener is still in, so that
        :meth:`room_ended` frees their places. A no-op where state is never lost."""
        return None
