"""Sealing what Hearth must leave in Redis for a while, so that Redis never holds
it readable (docs/multinode.md, "What Redis holds").

Two things cross nodes through Redis keys rather than only through pub/sub:

- **A seat's directory record**, which lets a seat resume on another node: its
  alias, its rooms (each with the ``matched`` frame, which names the peer),
  its place in the queue (and the note it waits with) and its shift. It is
  sealed with a key derived from the seat's current resume token, which only
  the client holds; a node keeps the key in memory beside the token's digest
  and the token never. Any node that is given the token in a ``hello`` can
  open the record; Redis, a dump of it, a replica or ``MONITOR`` cannot.
- **A waiting seeker's note**, which a listener's node must show in
  ``matched`` when it pairs them from another node's queue. It is sealed with a
  key derived from ``HEARTH_SECRET``, which every node of a deployment shares
  (as it must for listener tokens) and Redis does not hold.

AES-256-GCM from ``cryptography``, a random 96-bit nonce per seal; the seat id
is bound in as associated data, so a sealed value cannot be moved to another
seat. Nothing here is home-made cryptography beyond choosing labels for keys
derived with HMAC-SHA256.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


def _derive(material: str, label: bytes) -> bytes:
    return hmac.new(material.encode(), label, hashlib.sha256).digest()


def record_key(resume_token: str) -> bytes:
    """The key that seals a seat's record, from its resume token (never kept)."""
    return _derive(resume_token, b"hearth seat record v1")


def secret_key(secret: str, label: str) -> bytes:
    """A key for ``label`` from the deployment's secret (``HEARTH_SECRET``)."""
    return _derive(secret, b"hearth " + label.encode() + b" v1")


class Sealer:
    """Seals and opens bytes under one key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, data: bytes, context: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes | None:
        """The data, or None if it was sealed under another key or context, or altered."""
        if len(sealed) <= _NONCE:
            return None
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], context.encode())
        except InvalidTag:
            return None

    def seal_text(self, text: str, context: str) -> str:
        """``seal`` for a text field (the matcher's Redis link speaks text): base64."""
        return binascii.b2a_base64(self.seal(text.encode(), context), newline=False).decode()

    def open_text(self, sealed: str, context: str) -> str | None:
        try:
            raw = binascii.a2b_base64(sealed)
        except (binascii.Error, ValueError):
            return None
        data = self.open(raw, context)
        return data.decode() if data is not None else None
