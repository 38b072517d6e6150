"""Queue and pairing of seekers with listeners, behind one interface.

``open_matcher(url)`` picks the backend from the URL scheme and imports its
driver only then, so the embedded default never imports Redis.
"""

from __future__ import annotations

from .base import (
    HELD_FOREVER,
    Listener,
    Match,
    Matcher,
    MatchingError,
    Place,
    Stats,
    Ticket,
)

__all__ = [
    "HELD_FOREVER",
    "Listener",
    "Match",
    "Matcher",
    "MatchingError",
    "Place",
    "Stats",
    "Ticket",
    "open_matcher",
]


def open_matcher(url: str | None, node_id: str) -> Matcher:
    """``None`` or ``memory://`` for this process alone; ``redis://...`` to share."""
    if not url or url.startswith("memory:"):
        from .memory import MemoryMatcher

        return MemoryMatcher()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisMatcher  # type: ignore[import-not-found,unused-ignore]

        return RedisMatcher(url, node_id)  # type: ignore[no-any-return,unused-ignore]
    raise ValueError(f"unknown matching backend: {url.split(':', 1)[0]}")
