"""Two-word aliases for seekers ("Quiet Fox"): friendly, not identifying.

A seeker's alias is derived from its seat id (random) with a key from the
deployment's secret, so that every node can name a seeker it pairs from
another node's queue without the alias being kept anywhere: not in Redis,
not in a seat record (docs/multinode.md, "What Redis holds").
"""

from __future__ import annotations

import hashlib
import hmac

ADJECTIVES = (
    "Quiet", "Gentle", "Brave", "Calm", "Bright", "Kind", "Steady", "Warm", "Soft", "Clear",
    "Patient", "Hopeful", "Little", "Silver", "Golden", "Misty", "Sunny", "Quick", "Wise", "Still",
    "Amber", "Cozy", "Early", "Tender", "Honest", "Lucky", "Mellow", "Noble", "Rosy", "Swift",
)
ANIMALS = (
    "Fox", "Otter", "Heron", "Wren", "Badger", "Hare", "Robin", "Finch", "Deer", "Owl",
    "Sparrow", "Seal", "Lark", "Moth", "Panda", "Koala", "Dove", "Swan", "Bear", "Lynx",
    "Puffin", "Beaver", "Crane", "Dolphin", "Hedgehog", "Kestrel", "Marten", "Newt", "Plover",
    "Raven",
)


def seeker_alias(key: bytes, seat_id: str) -> str:
    """The alias of the seeker whose seat is ``seat_id``, under ``key``
    (``seal.secret_key(secret, "alias")``)."""
    d = hmac.new(key, seat_id.encode(), hashlib.sha256).digest()
    adjective = int.from_bytes(d[:8], "big") % len(ADJECTIVES)
    animal = int.from_bytes(d[8:16], "big") % len(ANIMALS)
    return f"{ADJECTIVES[adjective]} {ANIMALS[animal]}"
