"""Arbitrary frames thrown at a live server: it answers error or closes with a named
code, and keeps serving everybody else."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.client import Client, listener, seeker
from tests.support.procs import Server

NAMED_CLOSES = {1009, 4400, 4401, 4403, 4408, 4409, 4420, 4429}
TYPES = ["request", "cancel", "shift", "message", "typing", "leave", "escalate", "rooms",
         "watch", "join", "close", "whisper", "hello", "", "MESSAGE", "x" * 300]

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False) | st.text(max_size=60))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                      | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=10)
objects = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | st.text(max_size=10) | scalars},
    optional={"room": values, "text": values, "id": values, "note": values, "topic": values,
              "status": st.sampled_from(["available", "break", "off"]) | values,
              "capacity": values, "topics": values, "reason": values, "block": values,
              "since": values, "resume": values, "role": values, "token": values},
)


def pack(obj: object) -> bytes:
    """MessagePack when it can encode the object (ints past 64 bits it cannot)."""
    try:
        return bytes(msgpack.packb(obj, use_bin_type=True))
    except (OverflowError, ValueError):
        return json.dumps(obj).encode()


frames = (
    objects.map(json.dumps)
    | objects.map(pack)
    | st.binary(max_size=300)
    | st.text(max_size=300)
    | values.map(lambda v: json.dumps(v))
)


async def answered(client: Client, sent: int) -> None:
    """Every frame gets something back or the socket closes with a named code."""
    try:
        await asyncio.wait_for(client.ws.ping(), 5)
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
        assert code in NAMED_CLOSES, code


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(frames, min_size=1, max_size=8),
       role=st.sampled_from(["seeker", "listener", "moderator", "none"]),
       binary=st.booleans())
def test_arbitrary_frames_get_error_or_named_close(shared_server: Server, batch: list[Any],
                                                   role: str, binary: bool) -> None:
    """Random JSON, wrong types, huge numbers, unknown fields and binary garbage, from every
    role, are answered with error frames or a named close; a pair keeps chatting meanwhile."""

    async def run() -> None:
        lst = await listener(shared_server.ws_url, shared_server.token("listener", "Sam"),
                             topics=["fuzz-canary"])
        canary = await seeker(shared_server.ws_url, topic="fuzz-canary")
        room = (await canary.expect("matched"))["room"]
        c = await Client.connect(shared_server.ws_url, msgpack_=binary)
        if role == "seeker":
            await c.hello(role="seeker")
        elif role != "none":
            await c.hello(role=role, token=shared_server.token(role, "Fuzz"))
        codes: list[str] = []
        try:
            for frame in batch:
                await c.send(frame)
            await answered(c, len(batch))
            for f in c.inbox:
                if f["type"] == "error":
                    codes.append(f["code"])
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is None or exc.rcvd.code in NAMED_CLOSES
        assert set(codes) <= {"bad_request", "unknown_type", "too_long", "rate_limited",
                              "not_in_room", "not_allowed", "unavailable"}
        await canary.send({"type": "message", "room": room, "text": "still fine"})
        assert (await lst.expect("message"))["text"] == "still fine"
        for client in (c, canary, lst):
            try:
                await client.close(1000)
            except websockets.ConnectionClosed:
                pass

    asyncio.run(run())
    assert shared_server.proc is not None and shared_server.proc.poll() is None
