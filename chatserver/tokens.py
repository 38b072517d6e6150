"""Signed listener and moderator tokens, and single-use resume tokens.

Listener and moderator tokens are JWTs (HS256) signed with the server's
secret, carrying ``role``, ``name`` and ``exp``. There is no account database:
whoever holds a valid token may take that role until it expires.

Resume tokens are random; the server keeps only their SHA-256 digest, so a
memory dump or a Redis scan never yields a usable token.
"""

from __future__ import annotations

import hashlib
import secrets
import time

import jwt

ISSUER = "hearth"
STAFF_ROLES = ("listener", "moderator")


class TokenError(Exception):
    """The token is malformed, forged, expired or for another role."""


def issue(secret: str, role: str, name: str, hours: float) -> str:
    if role not in STAFF_ROLES:
        raise ValueError("tokens are for listeners and moderators")
    now = int(time.time())
    claims = {"iss": ISSUER, "role": role, "name": name, "iat": now, "exp": now + int(hours * 3600)}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify(secret: str, token: str, role: str) -> str:
    """Return the display name in a valid token for ``role``."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp"]}
        )
    except jwt.PyJWTError:
        raise TokenError("invalid token") from None
    name = claims.get("name")
    if claims.get("role") != role or not isinstance(name, str) or not name.strip():
        raise TokenError("invalid token")
    return name.strip()[:40]


def new_resume_token() -> str:
    return secrets.token_urlsafe(24)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
