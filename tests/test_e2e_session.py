"""End to end: session start, limits and every error and close code, over real sockets."""

from __future__ import annotations

import asyncio
import json

import msgpack
import pytest
import websockets

from chatserver import tokens
from tests.support.client import Client, listener, moderator, seeker
from tests.support.procs import SECRET, Server


async def closed_with(client: Client) -> int | None:
    return await client.closed(5)


async def test_welcome_for_each_role(server: Server) -> None:
    """Seekers get a random alias; listeners their chosen name; moderators their token name."""
    s = await Client.connect(server.ws_url)
    w = await s.hello(role="seeker")
    assert w["role"] == "seeker" and len(w["alias"].split()) == 2
    assert w["resume_s"] == 1 and w["limits"] == {"text": 2000, "note": 500, "rate": [10, 10]}
    lst = await Client.connect(server.ws_url)
    w = await lst.hello(role="listener", token=server.token("listener", "Token Name"), name="Sam")
    assert w["alias"] == "Sam"
    mod = await Client.connect(server.ws_url)
    w = await mod.hello(role="moderator", token=server.token("moderator", "Mod Ana"))
    assert w["alias"] == "Mod Ana"
    assert (await mod.expect("rooms"))["rooms"] == []


async def test_no_hello_in_time_closes_4408(server: Server) -> None:
    """Silence after connecting is closed with 4408 after the hello timeout."""
    c = await Client.connect(server.ws_url)
    assert await closed_with(c) == 4408


@pytest.mark.parametrize("first", [
    {"type": "request"}, {"type": "hello", "role": "pirate"}, "not json", b"\x00\x01",
])
async def test_malformed_hello_closes_4400(server: Server, first: object) -> None:
    """A first frame that is not a valid hello is closed with 4400."""
    c = await Client.connect(server.ws_url)
    await c.send(first if isinstance(first, (str, bytes)) else json.dumps(first))
    assert await closed_with(c) == 4400


async def test_bad_expired_or_wrong_role_token_closes_4401(server: Server) -> None:
    """Forged, expired and other-role tokens are all unauthorized."""
    bad = [
        "not-a-token",
        tokens.issue("another-secret-entirely-xxxxxxxx", "listener", "Sam", 1),
        tokens.issue(SECRET, "listener", "Sam", -1),
        tokens.issue(SECRET, "moderator", "Sam", 1),
    ]
    for token in bad:
        c = await Client.connect(server.ws_url)
        await c.send({"type": "hello", "role": "listener", "token": token})
        assert await closed_with(c) == 4401


async def test_foreign_origin_is_refused_with_403(server: Server) -> None:
    """An upgrade from another site's page is refused before it becomes a WebSocket."""
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(server.ws_url, origin="https://evil.example")  # type: ignore[arg-type]
    assert info.value.response.status_code == 403
    ok = await websockets.connect(server.ws_url, origin=server.url)  # type: ignore[arg-type]
    await ok.close()


async def test_allow_origin_flag_admits_that_origin(make_server) -> None:  # type: ignore[no-untyped-def]
    """--allow-origin lets a configured front end connect."""
    srv = make_server("--allow-origin", "https://hearth.example")
    ws = await websockets.connect(srv.ws_url, origin="https://hearth.example")  # type: ignore[arg-type]
    await ws.close()


async def test_msgpack_subprotocol_carries_binary_frames(server: Server) -> None:
    """Offering hearth.msgpack makes every frame a MessagePack binary frame."""
    c = await Client.connect(server.ws_url, msgpack_=True)
    assert c.ws.subprotocol == "hearth.msgpack"
    await c.send({"type": "hello", "role": "seeker"})
    raw = await c.ws.recv()
    assert isinstance(raw, bytes) and msgpack.unpackb(raw)["type"] == "welcome"


async def test_json_subprotocol_is_accepted(server: Server) -> None:
    """hearth.json is selected when offered alone."""
    ws = await websockets.connect(server.ws_url, subprotocols=["hearth.json"])  # type: ignore[list-item]
    assert ws.subprotocol == "hearth.json"
    await ws.close()


async def test_frame_over_32_kib_closes_1009(server: Server) -> None:
    """A frame over the size limit closes with 1009."""
    c = await seeker(server.ws_url, skip=True)
    await c.send("x" * (32 * 1024 + 1))
    assert await closed_with(c) == 1009


async def test_every_bad_frame_gets_its_error_and_the_connection_stays(server: Server) -> None:
    """Each error code of the protocol, then a normal exchange on the same socket."""
    s = await seeker(server.ws_url, skip=True)
    cases = [
        ("not json at all", "bad_request"),
        ('["a list"]', "bad_request"),
        ({"type": "shift", "status": "available"}, "unknown_type"),
        ({"type": "request", "note": "x" * 501}, "too_long"),
        ({"type": "message", "room": "nope", "text": "hi"}, "not_in_room"),
        ({"type": "cancel"}, "not_allowed"),
        ({"type": "message", "room": "r", "text": "   "}, "too_long"),
    ]
    for frame, code in cases:
        await s.send(frame if isinstance(frame, str) else json.dumps(frame))
        err = await s.expect("error")
        assert err["code"] == code, (frame, err)
        assert isinstance(err["message"], str) and err["message"]
    await s.send({"type": "request"})
    assert (await s.expect("queued"))["position"] == 1


async def test_error_ref_names_the_frame_type(server: Server) -> None:
    """error.ref carries the type of the frame that failed."""
    s = await seeker(server.ws_url, skip=True)
    await s.send({"type": "message", "room": "nope", "text": "hi"})
    assert (await s.expect("error"))["ref"] == "message"


async def test_request_while_matched_is_not_allowed(server: Server) -> None:
    """A seeker already in a room cannot queue again."""
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    s = await seeker(server.ws_url)
    await s.expect("matched")
    await s.send({"type": "request"})
    assert (await s.expect("error"))["code"] == "not_allowed"
    await lst.close()


async def test_rate_limit_then_flood_close_4429(make_server) -> None:  # type: ignore[no-untyped-def]
    """Past the window messages are dropped with rate_limited; flooding on closes 4429."""
    srv = make_server("--rate", "3/10")
    lst = await listener(srv.ws_url, srv.token("listener", "Sam"))
    s = await seeker(srv.ws_url)
    room = (await s.expect("matched"))["room"]
    for i in range(4):
        await s.send({"type": "message", "room": room, "text": f"m{i}", "id": str(i)})
    for i in range(3):
        assert (await s.expect("message", id=str(i)))["seq"] == i + 1
    assert (await s.expect("error"))["code"] == "rate_limited"
    for _ in range(10):
        try:
            await s.send({"type": "message", "room": room, "text": "flood"})
        except websockets.ConnectionClosed:
            break
    assert await closed_with(s) == 4429
    assert [m["seq"] for m in [await lst.expect("message") for _ in range(3)]] == [1, 2, 3]


async def test_unknown_fields_are_ignored(server: Server) -> None:
    """Extra fields in a valid frame do not cause an error."""
    s = await seeker(server.ws_url, skip=True)
    await s.send({"type": "request", "topic": "grief", "colour": "blue", "n": 10**40})
    assert (await s.expect("queued"))["position"] == 1


async def test_a_crashing_client_does_not_affect_others(server: Server) -> None:
    """Garbage from one client leaves another client's chat untouched."""
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    s = await seeker(server.ws_url)
    room = (await s.expect("matched"))["room"]
    bad = await seeker(server.ws_url, skip=True)
    for junk in [b"\xff" * 100, "{", '{"type": null}', json.dumps({"type": "leave"})]:
        await bad.send(junk)
    await asyncio.sleep(0)
    await s.send({"type": "message", "room": room, "text": "still here"})
    assert (await lst.expect("message"))["text"] == "still here"
    await moderator(server.ws_url, server.token("moderator", "M"))


async def test_a_client_that_stops_reading_is_dropped_with_4420(make_server) -> None:  # type: ignore[no-untyped-def]
    """A seeker that stops reading is cut off (4420) without slowing its room: the listener
    sees it away at once, and the stalled client finds 4420 when it reads again."""
    srv = make_server("--rate", "100000/1")
    lst = await listener(srv.ws_url, srv.token("listener", "Sam"))
    slow = await seeker(srv.ws_url)  # from here on it reads nothing until the end
    room = (await lst.expect("matched"))["room"]

    # The listener reads its own echoes as it goes, at most 128 in flight (half its outbox),
    # so it never lags itself: only the seeker, which reads nothing, may fall behind. (Reading
    # them only between bursts let the listener be cut off first on a busy CI machine.)
    sent = echoed = 0
    away: dict[str, object] | None = None
    while away is None and sent < 50_000:
        while sent - echoed < 128 and sent < 50_000:
            await lst.send({"type": "message", "room": room, "text": "x" * 2000})
            sent += 1
        frame = await lst._next(10)
        if frame["type"] == "message":
            echoed += 1
        elif frame["type"] == "presence":
            away = frame
    assert away is not None and away["state"] == "away"
    assert await slow.closed(10) == 4420
    assert len(slow.inbox) < sent  # what was queued past the cap was dropped, not kept
