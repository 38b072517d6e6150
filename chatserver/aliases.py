"""Random two-word aliases for seekers ("Quiet Fox"): friendly, not identifying."""

from __future__ import annotations

import secrets

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


def random_alias() -> str:
    return f"{secrets.choice(ADJECTIVES)} {secrets.choice(ANIMALS)}"
