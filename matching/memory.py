"""In-process matching: the embedded default, a complete backend in its own right.

The queue is a list kept sorted by ``(-risk rank, arrival)``; arrivals are a
counter, and seekers put back at the head get arrivals below every ordinary
one, first come first served among themselves. Every method runs without
awaiting in the middle, so on one event loop each pairing decision is atomic.
"""

from __future__ import annotations

import bisect
import itertools
import secrets
import time
from collections import deque
from collections.abc import Callable

from .base import (
    RISK_RANK,
    Listener,
    Match,
    Matcher,
    Place,
    Stats,
    Ticket,
    estimate,
    fits,
    is_free,
)

_HEAD = -(10**15)  # arrivals of seekers put back at the head start here
RATE_WINDOW_S = 900
RATE_SAMPLES = 20


class MemoryMatcher(Matcher):
    def __init__(self) -> None:
        self._queue: list[tuple[int, int, str]] = []  # (-rank, arrival, seat), sorted
        self._tickets: dict[str, tuple[Ticket, tuple[int, int, str]]] = {}
        self._listeners: dict[str, Listener] = {}
        self._room_listener: dict[str, str] = {}
        self._arrivals = itertools.count(1)
        self._heads = itertools.count(_HEAD)
        self._match_times: deque[float] = deque(maxlen=RATE_SAMPLES)
        self._on_change: Callable[[], None] = lambda: None

    async def start(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change

    async def close(self) -> None:
        self._on_change = lambda: None

    async def ready(self) -> bool:
        return True

    # -- seekers ---------------------------------------------------------------

    async def request(self, ticket: Ticket, *, head: bool = False) -> list[Match]:
        now = time.time()
        if ticket.since == 0.0:
            ticket.since = now
        self._remove(ticket.seat)
        best = self._fairest_for(ticket, now)
        if best is not None:
            matches = [self._pair(ticket, best, now)]
        else:
            arrival = next(self._heads) if head else next(self._arrivals)
            key = (-RISK_RANK[ticket.risk], arrival, ticket.seat)
            bisect.insort(self._queue, key)
            self._tickets[ticket.seat] = (ticket, key)
            matches = []
        self._on_change()
        return matches

    async def cancel(self, seat: str) -> bool:
        removed = self._remove(seat)
        if removed:
            self._on_change()
        return removed

    async def raise_risk(self, seat: str, risk: str) -> None:
        entry = self._tickets.get(seat)
        if entry is None or RISK_RANK[risk] <= RISK_RANK[entry[0].risk]:
            return
        ticket, key = entry
        self._remove(seat)
        ticket.risk = risk
        new_key = (-RISK_RANK[risk], key[1], seat)
        bisect.insort(self._queue, new_key)
        self._tickets[seat] = (ticket, new_key)
        self._on_change()

    # -- listeners -------------------------------------------------------------

    async def set_shift(self, listener: Listener) -> list[Match]:
        now = time.time()
        old = self._listeners.get(listener.seat)
        if old is not None:
            listener.rooms = old.rooms
            listener.held_until = old.held_until
            listener.free_since = old.free_since
        else:
            listener.free_since = now
        self._listeners[listener.seat] = listener
        matches = self._fill(listener, now)
        self._on_change()
        return matches

    async def hold(self, seat: str, until: float) -> list[Match]:
        listener = self._listeners.get(seat)
        if listener is None:
            return []
        changed = listener.held_until != until
        listener.held_until = until
        matches = self._fill(listener, time.time())
        if changed or matches:
            self._on_change()
        return matches

    async def room_ended(self, room: str) -> list[Match]:
        seat = self._room_listener.pop(room, None)
        listener = self._listeners.get(seat) if seat else None
        if listener is None:
            return []
        now = time.time()
        listener.rooms = max(0, listener.rooms - 1)
        listener.free_since = now
        matches = self._fill(listener, now)
        self._on_change()
        return matches

    async def drop_listener(self, seat: str) -> None:
        if self._listeners.pop(seat, None) is not None:
            self._on_change()

    # -- views -----------------------------------------------------------------

    async def places(self, seats: list[str]) -> dict[str, Place]:
        waiting = len(self._queue)
        on_shift = self._on_shift()
        times = list(self._match_times)
        cutoff = time.time() - RATE_WINDOW_S
        times = [t for t in times if t >= cutoff]
        out: dict[str, Place] = {}
        for seat in seats:
            entry = self._tickets.get(seat)
            if entry is None:
                continue
            position = bisect.bisect_left(self._queue, entry[1]) + 1
            out[seat] = Place(position, waiting, estimate(position, times, on_shift), on_shift)
        return out

    async def listeners(self, seats: list[str]) -> dict[str, tuple[Listener, int]]:
        out: dict[str, tuple[Listener, int]] = {}
        for seat in seats:
            listener = self._listeners.get(seat)
            if listener is not None:
                fitting = sum(1 for ticket, _ in self._tickets.values() if fits(ticket, listener))
                out[seat] = (listener, fitting)
        return out

    async def stats(self) -> Stats:
        by_risk = {level: 0 for level in RISK_RANK}
        for ticket, _ in self._tickets.values():
            by_risk[ticket.risk] += 1
        return Stats(len(self._queue), self._on_shift(), len(self._room_listener), by_risk)

    # -- internals ---------------------------------------------------------------

    def _on_shift(self) -> int:
        return sum(1 for x in self._listeners.values() if x.status == "available")

    def _remove(self, seat: str) -> bool:
        entry = self._tickets.pop(seat, None)
        if entry is None:
            return False
        index = bisect.bisect_left(self._queue, entry[1])
        del self._queue[index]
        return True

    def _fairest_for(self, ticket: Ticket, now: float) -> Listener | None:
        candidates = [
            x for x in self._listeners.values() if is_free(x, now) and fits(ticket, x)
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda x: (x.rooms, x.free_since))

    def _fill(self, listener: Listener, now: float) -> list[Match]:
        matches: list[Match] = []
        while is_free(listener, now):
            for key in self._queue:
                ticket = self._tickets[key[2]][0]
                if fits(ticket, listener):
                    self._remove(ticket.seat)
                    matches.append(self._pair(ticket, listener, now))
                    break
            else:
                break
        return matches

    def _pair(self, ticket: Ticket, listener: Listener, now: float) -> Match:
        room = secrets.token_urlsafe(12)
        listener.rooms += 1
        self._room_listener[room] = listener.seat
        self._match_times.append(now)
        return Match(room, ticket, listener.seat, listener.node, max(0.0, now - ticket.since))
