"""Frames of the Hearth wire protocol: decode, validate, encode. No I/O.

The contract is ``shared/PROTOCOL.md`` plus ``docs/protocol-extensions.md``.
Everything here is pure so it can be tested without an event loop; the
connection code in :mod:`chatserver.connection` calls it at the edges.

Order of use for one incoming frame::

    obj = decode(payload)            # FrameError(bad_request) if not an object
    hello = parse_hello(obj)         # first frame only; HelloError(4400)
    frame = parse_frame(obj, role)   # later frames; FrameError(code)

Exceptions::

    ProtocolError
    ├── FrameError   -> an ``error`` frame; the connection stays open
    └── HelloError   -> the connection closes with ``close_code``
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Literal

import msgpack
import orjson

Role = Literal["seeker", "listener", "moderator"]
ROLES: tuple[Role, ...] = ("seeker", "listener", "moderator")
ShiftStatus = Literal["available", "break", "off"]

SUBPROTOCOL_JSON = "hearth.json"
SUBPROTOCOL_MSGPACK = "hearth.msgpack"

MAX_FRAME_BYTES = 32 * 1024
TEXT_MAX = 2000
NOTE_MAX = 500
REASON_MAX = 500
CLIENT_ID_MAX = 64
TOPIC_MAX = 40
TOPICS_MAX = 20
CAPACITY_RANGE = range(1, 6)
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
_ROOM = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a room id, whole (fullmatch); checked by _is_room_id


class CloseCode(IntEnum):
    """Close codes of PROTOCOL.md; 4420 is a Hearth extension."""

    GOODBYE = 1000
    TOO_BIG = 1009
    INTERNAL = 1011
    RESTARTING = 1012
    BAD_HELLO = 4400
    UNAUTHORIZED = 4401
    REMOVED = 4403
    HELLO_TIMEOUT = 4408
    RESUMED_ELSEWHERE = 4409
    BACKLOG = 4420
    FLOODING = 4429


class ErrorCode(StrEnum):
    """Error codes of PROTOCOL.md's error table."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LONG = "too_long"
    RATE_LIMITED = "rate_limited"
    NOT_IN_ROOM = "not_in_room"
    NOT_ALLOWED = "not_allowed"
    UNAVAILABLE = "unavailable"


class ProtocolError(Exception):
    """A frame the server cannot act on."""


class FrameError(ProtocolError):
    """Answer with an ``error`` frame and keep the connection."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref

    def frame(self) -> dict[str, Any]:
        return error_frame(self.code, self.message, self.ref)


class HelloError(ProtocolError):
    """Close the connection with ``close_code``."""

    def __init__(self, close_code: CloseCode, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code


# -- frames a client sends ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    role: Role | None  # None when resuming
    token: str | None = None
    name: str | None = None
    resume: str | None = None
    since: dict[str, int] | int = 0


# Request and Leave come once a pairing each: not frozen, their __init__ written
# out, for the reason given at Message below (~5,400 and ~2,500 instructions a
# frame with the generated one, compiled; match_instructions.py).
@dataclass(slots=True, init=False)
class Request:
    topic: str | None
    language: str | None
    note: str | None

    def __init__(self, topic: str | None, language: str | None, note: str | None) -> None:
        self.topic = topic
        self.language = language
        self.note = note


@dataclass(frozen=True, slots=True)
class Cancel:
    pass


@dataclass(frozen=True, slots=True)
class Shift:
    status: ShiftStatus
    topics: tuple[str, ...] | None = None  # None: keep what was said before
    languages: tuple[str, ...] | None = None
    capacity: int | None = None


# Message and Typing, the frames of every turn of a chat, are not frozen: a frozen
# dataclass's __init__ sets each field through object.__setattr__, which made the
# Message 40 % of parse_frame's time (560 of 1,450 ns). Nothing changes a frame
# after parse_frame made it. Their __init__ is written out (init=False): compiled,
# the one dataclasses generates stays interpreted and cost ~1,500 instructions a
# frame, a written one is a call in C (callgrind; docs/performance.md). The same
# for Outgoing.
@dataclass(slots=True, init=False)
class Message:
    room: str
    text: str
    id: str | None

    def __init__(self, room: str, text: str, id: str | None) -> None:
        self.room = room
        self.text = text
        self.id = id


@dataclass(slots=True, init=False)
class Typing:
    room: str

    def __init__(self, room: str) -> None:
        self.room = room


@dataclass(slots=True, init=False)
class Leave:
    room: str

    def __init__(self, room: str) -> None:
        self.room = room


@dataclass(frozen=True, slots=True)
class Escalate:
    room: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Rooms:
    pass


@dataclass(frozen=True, slots=True)
class Watch:
    room: str


@dataclass(frozen=True, slots=True)
class Join:
    room: str


@dataclass(frozen=True, slots=True)
class Close:
    room: str
    reason: str | None
    block: bool = False


@dataclass(frozen=True, slots=True)
class Whisper:
    room: str
    text: str


Frame = (
    Request | Cancel | Shift | Message | Typing | Leave | Escalate | Rooms | Watch | Join | Close
    | Whisper
)

ALLOWED: dict[Role, frozenset[str]] = {
    "seeker": frozenset({"request", "cancel", "message", "typing", "leave", "escalate"}),
    "listener": frozenset({"shift", "message", "typing", "leave", "escalate"}),
    "moderator": frozenset(
        {"rooms", "watch", "join", "close", "message", "typing", "leave", "whisper"}
    ),
}


# -- decoding -------------------------------------------------------------------


def decode(payload: str | bytes, *, msgpack_binary: bool) -> dict[str, Any]:
    """Turn one WebSocket payload into an object with a string ``type``.

    Text frames are JSON. Binary frames are MessagePack when the connection
    chose ``hearth.msgpack``, else they are read as UTF-8 JSON. JSON is read
    strictly (orjson): a lone surrogate, NaN or Infinity is a bad request,
    where the standard library would let through text that cannot be sent on.
    """
    try:
        if isinstance(payload, bytes) and msgpack_binary:
            obj = msgpack.unpackb(payload, raw=False, strict_map_key=True)
        else:
            obj = orjson.loads(payload)
    except Exception:  # JSON and msgpack raise several kinds on garbage; none is our fault
        raise FrameError(
            ErrorCode.BAD_REQUEST, "Frames must be JSON or MessagePack objects."
        ) from None
    if not isinstance(obj, dict):
        raise FrameError(ErrorCode.BAD_REQUEST, "A frame must be an object.")
    if not isinstance(obj.get("type"), str):
        raise FrameError(ErrorCode.BAD_REQUEST, "A frame needs a string 'type'.")
    return obj


def parse_hello(obj: dict[str, Any]) -> Hello:
    """Validate the first frame. Token checks happen later, in :mod:`tokens`."""

    def bad(why: str) -> HelloError:
        return HelloError(CloseCode.BAD_HELLO, why)

    if obj.get("type") != "hello":
        raise bad("The first frame must be hello.")
    resume = obj.get("resume")
    if resume is not None:
        if not isinstance(resume, str) or not 0 < len(resume) <= 200:
            raise bad("resume must be a token string.")
        return Hello(role=None, resume=resume, since=_since(obj.get("since", 0), bad))
    role = obj.get("role")
    if role not in ROLES:
        raise bad("role must be seeker, listener or moderator.")
    token = obj.get("token")
    name = obj.get("name")
    if role == "seeker":
        return Hello(role="seeker")
    if not isinstance(token, str) or not 0 < len(token) <= 2000:
        raise bad("listeners and moderators need a token.")
    if name is not None:
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 40:
            raise bad("name must be 1 to 40 characters.")
        name = name.strip()
    return Hello(role=role, token=token, name=name if role == "listener" else None)


def _since(value: Any, bad: Any) -> dict[str, int] | int:
    if isinstance(value, bool):
        raise bad("since must be a number or an object of numbers.")
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, dict) and len(value) <= 10:
        out: dict[str, int] = {}
        for room, seq in value.items():
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise bad("since must be a number or an object of numbers.")
            out[str(room)] = max(0, seq)
        return out
    raise bad("since must be a number or an object of numbers.")


def parse_frame(obj: dict[str, Any], role: Role) -> Frame:
    """Validate a frame from a connection that said hello as ``role``."""
    kind: str = obj["type"]
    if kind not in ALLOWED[role]:
        raise FrameError(ErrorCode.UNKNOWN_TYPE, f"A {role} cannot send '{kind[:32]}'.", None)
    ref = kind
    if kind == "message":  # first: nearly every frame is one
        room = _room(obj, ref)
        client_id = obj.get("id")
        if client_id is not None:
            if isinstance(client_id, bool) or not isinstance(client_id, (str, int)):
                raise FrameError(ErrorCode.BAD_REQUEST, "id must be a string.", ref)
            client_id = str(client_id)
            if len(client_id) > CLIENT_ID_MAX:
                raise FrameError(ErrorCode.BAD_REQUEST, "id is too long.", ref)
        text = _text(obj, "text", TEXT_MAX, ref, required=True)
        assert text is not None
        return Message(room, text, client_id)
    if kind == "request":
        return Request(
            topic=_topic(obj.get("topic"), ref),
            language=_language(obj.get("language"), ref),
            note=_text(obj, "note", NOTE_MAX, ref, required=False),
        )
    if kind == "cancel":
        return Cancel()
    if kind == "rooms":
        return Rooms()
    if kind == "shift":
        return _shift(obj, ref)
    room = _room(obj, ref)
    if kind == "typing":
        return Typing(room=room)
    if kind == "leave":
        return Leave(room=room)
    if kind == "watch":
        return Watch(room=room)
    if kind == "join":
        return Join(room=room)
    if kind == "escalate":
        return Escalate(room=room, reason=_reason(obj, ref))
    if kind == "close":
        block = obj.get("block", False)
        if not isinstance(block, bool):
            raise FrameError(ErrorCode.BAD_REQUEST, "block must be true or false.", ref)
        return Close(room=room, reason=_reason(obj, ref), block=block)
    if kind == "whisper":
        text = _text(obj, "text", TEXT_MAX, ref, required=True)
        assert text is not None
        return Whisper(room=room, text=text)
    raise AssertionError(kind)  # pragma: no cover - ALLOWED and this function agree


def _is_room_id(room: str) -> bool:
    """1 to 64 of A-Z, a-z, 0-9, "_" and "-" (``_ROOM``, without "$"'s trailing newline):
    three string methods in C, where the regex cost ~2,300 instructions a frame
    (callgrind; tests/test_protocol.py checks the two agree)."""
    return (0 < len(room) <= 64 and room.isascii()
            and room.replace("-", "a").replace("_", "a").isalnum())


def _room(obj: dict[str, Any], ref: str) -> str:
    room = obj.get("room")
    if not isinstance(room, str) or not _is_room_id(room):
        raise FrameError(ErrorCode.BAD_REQUEST, "room must be a room id.", ref)
    return room


def _text(obj: dict[str, Any], key: str, limit: int, ref: str, *, required: bool) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise FrameError(ErrorCode.BAD_REQUEST, f"{key} must be a string.", ref)
    value = value.strip()
    if not value or len(value) > limit:
        raise FrameError(ErrorCode.TOO_LONG, f"{key} must be 1 to {limit} characters.", ref)
    return value


def _reason(obj: dict[str, Any], ref: str) -> str | None:
    reason = obj.get("reason")
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise FrameError(ErrorCode.BAD_REQUEST, "reason must be a string.", ref)
    reason = reason.strip()
    if len(reason) > REASON_MAX:
        raise FrameError(ErrorCode.TOO_LONG, f"reason is over {REASON_MAX} characters.", ref)
    return reason or None


def _topic(value: Any, ref: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value.strip()) > TOPIC_MAX:
        raise FrameError(ErrorCode.BAD_REQUEST, "topic must be a short string.", ref)
    return value.strip().lower() or None


def _language(value: Any, ref: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _LANGUAGE.match(value.strip().lower()):
        raise FrameError(ErrorCode.BAD_REQUEST, "language must be a code such as 'en'.", ref)
    return value.strip().lower().split("-")[0]


def _shift(obj: dict[str, Any], ref: str) -> Shift:
    status = obj.get("status")
    if status not in ("available", "break", "off"):
        raise FrameError(ErrorCode.BAD_REQUEST, "status must be available, break or off.", ref)
    topics = _list(obj.get("topics"), _topic, ref)
    languages = _list(obj.get("languages"), _language, ref)
    capacity = obj.get("capacity")
    if capacity is not None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise FrameError(ErrorCode.BAD_REQUEST, "capacity must be 1 to 5.", ref)
        if capacity not in CAPACITY_RANGE:
            raise FrameError(ErrorCode.BAD_REQUEST, "capacity must be 1 to 5.", ref)
    return Shift(status=status, topics=topics, languages=languages, capacity=capacity)


def _list(value: Any, item: Any, ref: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > TOPICS_MAX:
        raise FrameError(ErrorCode.BAD_REQUEST, "topics and languages must be short lists.", ref)
    out = [item(v, ref) for v in value]
    return tuple(sorted({v for v in out if v}))


# -- frames the server sends --------------------------------------------------


def _encode_json(frame: dict[str, Any]) -> str:
    """Compact JSON with non-ASCII as is (orjson: ~10x the standard library's
    encoder, which was 12% of the relay's CPU; docs/performance.md)."""
    return orjson.dumps(frame).decode()


def error_frame(code: ErrorCode, message: str, ref: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": str(code), "message": message}
    if ref is not None:
        frame["ref"] = ref
    return frame


@dataclass(slots=True, init=False)
class Outgoing:
    """One server frame, encoded at most once per codec however many receive it.

    Made from a frame object, or from JSON already encoded (:meth:`of_json`,
    for frames kept in a room's history); the object is decoded back from the
    JSON only when something asks for it (a MessagePack client, another node).
    """

    _frame: dict[str, Any] | None
    _json: str | None = field(default=None, repr=False)
    _msgpack: bytes | None = field(default=None, repr=False)
    # The whole WebSocket frame, text and binary (:meth:`wire`).
    _wire: bytes | None = field(default=None, repr=False)
    _wire_binary: bytes | None = field(default=None, repr=False)

    def __init__(self, _frame: dict[str, Any] | None, _json: str | None = None,
                 _msgpack: bytes | None = None) -> None:
        self._frame = _frame
        self._json = _json
        self._msgpack = _msgpack
        self._wire = None
        self._wire_binary = None

    @classmethod
    def of_json(cls, text: str) -> Outgoing:
        return cls(None, text)

    @property
    def frame(self) -> dict[str, Any]:
        if self._frame is None:
            assert self._json is not None
            self._frame = orjson.loads(self._json)
        return self._frame

    def encoded(self, msgpack_binary: bool) -> str | bytes:
        if msgpack_binary:
            if self._msgpack is None:
                self._msgpack = msgpack.packb(self.frame, use_bin_type=True)
            return self._msgpack
        return self.json()

    def json(self) -> str:
        text = self._json
        if text is None:
            assert self._frame is not None
            text = self._json = _encode_json(self._frame)
        return text

    def wire(self, msgpack_binary: bool) -> bytes:
        """The frame as a whole WebSocket frame from a server (final, unmasked, no
        extension): a text frame of the JSON, or a binary one of the MessagePack,
        made once for every member it is written to (``Connection.push``)."""
        if msgpack_binary:
            data = self._wire_binary
            if data is None:
                data = self._wire_binary = ws_frame(OPCODE_BINARY, self.encoded(True))
            return data
        data = self._wire
        if data is None:
            data = self._wire = ws_frame(OPCODE_TEXT, self.json().encode())
        return data


OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2


def ws_frame(opcode: int, payload: bytes | str) -> bytes:
    """One final, unmasked WebSocket frame (RFC 6455, 5.2) carrying ``payload``: what a
    server sends with no extension negotiated."""
    data = payload.encode() if isinstance(payload, str) else payload
    n = len(data)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126, n >> 8, n & 0xFF))
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + data
