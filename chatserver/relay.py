"""Cross-node delivery: node inboxes, a broadcast channel and the seat directory.

One interface, two backends chosen by URL like the matcher (:func:`open_relay`):
:class:`MemoryRelay` for a node alone (``None``/``memory://``) and
:class:`RedisRelay` (``redis://``), which is the only place Redis is imported.

Call order: ``await start(on_event)``; then :meth:`Relay.post` (never awaits;
events to one node arrive in the order they were posted), :meth:`Relay.broadcast`,
the directory methods and :meth:`Relay.alive`; then ``await close()``.
``on_event`` is called with each event another node posted to this node or
broadcast, and with ``{"k": "reconnected"}`` whenever the subscription was
(re)established, since events may have been lost meanwhile.

Events are dicts with a short kind ``k`` (see docs/multinode.md); they are
MessagePack-encoded once per post; a frame for members on another node rides
as its JSON text, one for every moderator is packed once (:func:`pack_frame`)
and carried as bytes.

Exceptions: :class:`RelayError` (the shared backend is unreachable).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

log = logging.getLogger("hearth.relay")

Event = dict[str, Any]
OnEvent = Callable[[Event], None]


class RelayError(Exception):
    """The shared backend cannot be reached; cross-node work is unavailable."""


# One packer for all: msgpack.packb makes a Packer each call (a seat record packed
# cost 12.2k instructions so, 7.8k with this; match_instructions.py --keep).
_PACKER = msgpack.Packer(use_bin_type=True)


def pack_frame(frame: dict[str, Any]) -> bytes:
    """A frame (or a seat record) packed once, to ride inside events to any number of
    nodes (or to be sealed, crossnode.py)."""
    data: bytes = _PACKER.pack(frame)
    return data


def unpack_frame(data: bytes) -> dict[str, Any]:
    return dict(msgpack.unpackb(data, raw=False))


@dataclass(slots=True, init=False)
class SeatSave:
    """One seat's directory entry to write (:meth:`Relay.save_seats`).

    ``digest`` is the seat's resume token's SHA-256 (never the token). ``resume``
    False leaves the digest's own key (digest -> seat) as an earlier save wrote
    it; ``spent`` is the digest of the seat's previous token, whose key is
    deleted so that no node takes it.

    Not frozen, and its ``__init__`` written out: compiled, the generated one
    stays interpreted, ~8,000 instructions a save (match_instructions.py)."""

    seat: str
    record: dict[str, Any]
    digest: str | None
    resume: bool
    spent: str | None

    def __init__(self, seat: str, record: dict[str, Any], digest: str | None,
                 resume: bool = True, spent: str | None = None) -> None:
        self.seat = seat
        self.record = record
        self.digest = digest
        self.resume = resume
        self.spent = spent


class Relay(abc.ABC):
    """How a node reaches the others; see the module docstring."""

    node_id: str
    shared: bool  # False: this node is alone and nothing crosses nodes

    @abc.abstractmethod
    async def start(self, on_event: OnEvent) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def post(self, node: str, event: Event) -> None:
        """Queue ``event`` for ``node``'s inbox; in order per node; never awaits.
        The relay keeps the dict and may add to it: post a new one each time."""

    @abc.abstractmethod
    def broadcast(self, event: Event) -> None:
        """Queue ``event`` for every other node (a new dict, as for :meth:`post`)."""

    @property
    @abc.abstractmethod
    def healthy(self) -> bool:
        """False while the last attempt to reach other nodes failed."""

    @abc.abstractmethod
    async def alive(self, nodes: set[str]) -> set[str]:
        """Which of ``nodes`` are running (their presence is fresh)."""

    # -- the seat directory: what another node needs to take a seat back ----------

    @abc.abstractmethod
    async def save_seats(self, saves: list[SeatSave]) -> None:
        """Record where each seat is and what rebuilds it, all in one round trip,
        in order. Best effort; raises RelayError (then any of them may or may not
        have been written)."""

    @abc.abstractmethod
    async def claim(self, digest: str) -> tuple[str, dict[str, Any]] | None:
        """Spend a resume digest: the seat and its record, or None."""

    @abc.abstractmethod
    async def seat_record(self, seat: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def forget_seat(self, seat: str) -> None: ...


class MemoryRelay(Relay):
    """A node alone: events to itself are delivered on the next loop turn."""

    shared = False

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._on_event: OnEvent = lambda event: None

    async def start(self, on_event: OnEvent) -> None:
        self._on_event = on_event

    async def close(self) -> None:
        self._on_event = lambda event: None

    def post(self, node: str, event: Event) -> None:
        if node == self.node_id:
            asyncio.get_running_loop().call_soon(self._on_event, event)

    def broadcast(self, event: Event) -> None:
        return None

    @property
    def healthy(self) -> bool:
        return True

    async def alive(self, nodes: set[str]) -> set[str]:
        return {n for n in nodes if n == self.node_id}

    async def save_seats(self, saves: list[SeatSave]) -> None:
        return None

    async def claim(self, digest: str) -> tuple[str, dict[str, Any]] | None:
        return None

    async def seat_record(self, seat: str) -> dict[str, Any] | None:
        return None

    async def forget_seat(self, seat: str) -> None:
        return None


def open_relay(url: str | None, node_id: str, *, seat_ttl_s: float = 3600) -> Relay:
    """``None`` or ``memory://`` for a node alone; ``redis://...`` for many nodes."""
    if not url or url.startswith("memory:"):
        return MemoryRelay(node_id)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .relay_redis import RedisRelay

        return RedisRelay(url, node_id, seat_ttl_s=seat_ttl_s)
    raise ValueError(f"unknown relay backend: {url.split(':', 1)[0]}")

