"""Queue and pairing of seekers with listeners, behind one interface.

``open_matcher(url)`` picks the backend from the URL scheme and imports its
driver only then, so the embedded default never imports Redis.

The modules in :data:`NATIVE` are also compiled with mypyc (``make native``),
in a build of their own; :mod:`matching.native` decides whether they run.
"""

from __future__ import annotations

from pathlib import Path

from .native import Compiled

# A pairing on Redis runs through these (memory: base's subclass, compiled with it).
NATIVE = ("base", "memory", "tasks", "resp", "redis")
_COMPILED = Compiled(__name__, Path(__file__).resolve().parent, NATIVE)
compiled = _COMPILED.files
stale = _COMPILED.stale
_COMPILED.choose()

from .base import (  # noqa: E402  (after choose(): it decides where they come from)
    HELD_FOREVER,
    Listener,
    Match,
    Matcher,
    MatchingError,
    NoteSealer,
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
    "NoteSealer",
    "Place",
    "Stats",
    "Ticket",
    "open_matcher",
]


def open_matcher(url: str | None, node_id: str, notes: NoteSealer | None = None) -> Matcher:
    """``None`` or ``memory://`` for this process alone; ``redis://...`` to share
    (``notes`` seals the notes it keeps in Redis; without it they are kept as sent)."""
    if not url or url.startswith("memory:"):
        from .memory import MemoryMatcher

        return MemoryMatcher()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisMatcher  # type: ignore[import-not-found,unused-ignore]

        return RedisMatcher(url, node_id, notes)  # type: ignore[no-any-return,unused-ignore]
    raise ValueError(f"unknown matching backend: {url.split(':', 1)[0]}")
