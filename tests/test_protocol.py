"""Pure tests of frame decoding, validation and encoding (no event loop)."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatserver import protocol as p
from chatserver.protocol import CloseCode, ErrorCode, FrameError, HelloError


def code_of(obj: object, role: p.Role = "seeker") -> str:
    with pytest.raises(FrameError) as info:
        p.parse_frame(obj, role)  # type: ignore[arg-type]
    return str(info.value.code)


def test_decode_reads_json_text_and_msgpack_binary() -> None:
    """A JSON text frame and a MessagePack binary frame decode to the same object."""
    obj = {"type": "typing", "room": "r1"}
    assert p.decode(json.dumps(obj), msgpack_binary=False) == obj
    assert p.decode(msgpack.packb(obj), msgpack_binary=True) == obj


@pytest.mark.parametrize("payload", ["not json", "[1,2]", '"text"', "{}", '{"type": 3}', "null"])
def test_decode_rejects_what_is_not_an_object_with_a_type(payload: str) -> None:
    """Anything but an object with a string type is bad_request."""
    with pytest.raises(FrameError) as info:
        p.decode(payload, msgpack_binary=False)
    assert info.value.code == ErrorCode.BAD_REQUEST


def test_decode_rejects_binary_garbage_under_msgpack() -> None:
    """Random bytes on a MessagePack connection are bad_request, not a crash."""
    with pytest.raises(FrameError):
        p.decode(b"\xc1\xff\x00garbage", msgpack_binary=True)


@given(st.binary(max_size=200))
def test_decode_never_raises_anything_but_frame_error(data: bytes) -> None:
    """No byte string makes decode raise an unexpected exception."""
    for binary in (True, False):
        try:
            p.decode(data, msgpack_binary=binary)
        except FrameError:
            pass


def test_hello_for_each_role() -> None:
    """Seekers need nothing; listeners and moderators need a token."""
    assert p.parse_hello({"type": "hello", "role": "seeker"}).role == "seeker"
    h = p.parse_hello({"type": "hello", "role": "listener", "token": "t", "name": " Sam "})
    assert (h.role, h.token, h.name) == ("listener", "t", "Sam")
    assert p.parse_hello({"type": "hello", "role": "moderator", "token": "t"}).name is None


@pytest.mark.parametrize("obj", [
    {"type": "request"},
    {"type": "hello"},
    {"type": "hello", "role": "admin"},
    {"type": "hello", "role": "listener"},
    {"type": "hello", "role": "listener", "token": 5},
    {"type": "hello", "resume": 7},
    {"type": "hello", "resume": "abc", "since": "x"},
    {"type": "hello", "resume": "abc", "since": True},
])
def test_malformed_hello_closes_4400(obj: dict[str, object]) -> None:
    """A first frame that is not a well-formed hello means close 4400."""
    with pytest.raises(HelloError) as info:
        p.parse_hello(obj)
    assert info.value.close_code == CloseCode.BAD_HELLO


def test_resume_hello_takes_since_as_number_or_per_room() -> None:
    """since may be one number or an object of room -> seq."""
    assert p.parse_hello({"type": "hello", "resume": "x", "since": 41}).since == 41
    assert p.parse_hello({"type": "hello", "resume": "x", "since": {"r": 3}}).since == {"r": 3}


def test_types_a_role_may_not_send_are_unknown_type() -> None:
    """A seeker cannot shift, a listener cannot request, nobody can 'hello' twice."""
    assert code_of({"type": "shift", "status": "available"}) == "unknown_type"
    assert code_of({"type": "request"}, "listener") == "unknown_type"
    assert code_of({"type": "hello", "role": "seeker"}) == "unknown_type"
    assert code_of({"type": "whisper", "room": "r", "text": "x"}, "listener") == "unknown_type"
    assert code_of({"type": "frobnicate"}, "moderator") == "unknown_type"


def test_message_text_limits() -> None:
    """Text is 1 to 2000 characters after trimming; more or none is too_long."""
    ok = p.parse_frame({"type": "message", "room": "r1", "text": "  hi  ", "id": "c-1"}, "seeker")
    assert ok == p.Message(room="r1", text="hi", id="c-1")
    assert code_of({"type": "message", "room": "r1", "text": "   "}) == "too_long"
    assert code_of({"type": "message", "room": "r1", "text": "x" * 2001}) == "too_long"
    p.parse_frame({"type": "message", "room": "r1", "text": "x" * 2000}, "seeker")
    assert code_of({"type": "message", "room": "r1", "text": 5}) == "bad_request"
    assert code_of({"type": "message", "text": "hi"}) == "bad_request"
    assert code_of({"type": "message", "room": "r1", "text": "hi", "id": ["x"]}) == "bad_request"


def test_request_fields_are_optional_and_checked() -> None:
    """topic, language and note are optional; a long note is too_long."""
    assert p.parse_frame({"type": "request"}, "seeker") == p.Request(None, None, None)
    r = p.parse_frame({"type": "request", "topic": "Anxiety", "language": "en-GB",
                       "note": " hi "}, "seeker")
    assert r == p.Request("anxiety", "en", "hi")
    assert code_of({"type": "request", "note": "x" * 501}) == "too_long"
    assert code_of({"type": "request", "language": "english!"}) == "bad_request"
    assert code_of({"type": "request", "topic": {"a": 1}}) == "bad_request"


def test_shift_capacity_is_one_to_five() -> None:
    """capacity outside 1..5, or not an integer, is bad_request."""
    s = p.parse_frame({"type": "shift", "status": "available", "topics": ["Grief", "anxiety"],
                       "languages": ["en"], "capacity": 5}, "listener")
    assert s == p.Shift("available", ("anxiety", "grief"), ("en",), 5)
    for bad in (0, 6, 2.5, True, "2", 10**30):
        assert code_of({"type": "shift", "status": "available", "capacity": bad},
                       "listener") == "bad_request"
    assert code_of({"type": "shift", "status": "sleeping"}, "listener") == "bad_request"
    assert code_of({"type": "shift", "status": "break", "topics": "x"}, "listener") == "bad_request"


def test_moderator_frames() -> None:
    """Moderators watch, join, close (optionally blocking) and whisper."""
    assert p.parse_frame({"type": "watch", "room": "r"}, "moderator") == p.Watch("r")
    assert p.parse_frame({"type": "close", "room": "r", "block": True},
                         "moderator") == p.Close("r", None, True)
    assert code_of({"type": "close", "room": "r", "block": "yes"}, "moderator") == "bad_request"
    assert code_of({"type": "join", "room": "../etc"}, "moderator") == "bad_request"


def test_outgoing_encodes_once_per_codec() -> None:
    """The same Outgoing object returns the identical encoded payload every time."""
    out = p.Outgoing({"type": "message", "text": "é"})
    assert out.encoded(False) is out.encoded(False)
    assert json.loads(out.encoded(False)) == {"type": "message", "text": "é"}
    assert msgpack.unpackb(out.encoded(True)) == {"type": "message", "text": "é"}


@given(st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8), max_size=6), st.sampled_from(p.ROLES), st.sampled_from(sorted(
        {"message", "typing", "request", "shift", "watch", "close", "whisper", "leave", "x"})))
def test_parse_frame_answers_every_object_with_a_frame_or_frame_error(
        obj: dict[str, object], role: p.Role, kind: str) -> None:
    """Arbitrary fields never crash validation."""
    obj = {**obj, "type": kind}
    try:
        p.parse_frame(obj, role)
    except FrameError:
        pass


@given(st.one_of(
    st.text(alphabet="Az09_-", max_size=70),
    st.text(alphabet="Az09_-\n é\x00", max_size=70),
    st.text(max_size=70),
))
def test_room_ids_are_checked_as_the_pattern_says(room: str) -> None:
    """The room id check (string methods, for speed) accepts exactly what the
    pattern matches whole: 1 to 64 ASCII letters, digits, "_" and "-", and not a
    trailing newline (which the pattern with "$" let through before)."""
    assert p._is_room_id(room) == (p._ROOM.fullmatch(room) is not None)


def test_a_room_id_with_a_trailing_newline_is_refused() -> None:
    assert code_of({"type": "typing", "room": "r1\n"}) == "bad_request"
    assert code_of({"type": "typing", "room": "é"}) == "bad_request"
    assert code_of({"type": "typing", "room": "x" * 65}) == "bad_request"
    assert p.parse_frame({"type": "typing", "room": "x" * 64}, "seeker").room == "x" * 64
