"""Many changes, one update: run a callback soon after a change, at most every ``gap_s``.

Contract: :meth:`Coalesced.poke` says something changed. The callback runs in
the next loop turn when it last ran at least ``gap_s`` ago, else when the gap
is over; every poke until then is served by that one run. The callback is
never run twice at once and never from inside ``poke``. Must be used inside a
running event loop. :meth:`cancel` drops a pending run.

Used for what is rebuilt whole on every change and read by people: a node's
room list for the other nodes and for its moderators. At thousands of rooms
opening and ending a second, one rebuild per loop turn would cost a rebuild of
every room per pairing; once per ``gap_s`` it costs a few a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Coalesced:
    def __init__(self, callback: Callable[[], None], gap_s: float) -> None:
        self._callback = callback
        self._gap_s = gap_s
        self._last = float("-inf")
        self._pending: asyncio.Handle | None = None

    def poke(self) -> None:
        if self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last + self._gap_s - loop.time()
        self._pending = loop.call_later(wait, self._run) if wait > 0 else loop.call_soon(self._run)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _run(self) -> None:
        self._pending = None
        self._last = asyncio.get_running_loop().time()
        self._callback()
