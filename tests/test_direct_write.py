"""Frames written straight to uvicorn's transport (``Connection.push`` while the
socket keeps up), on a real uvicorn server with Hearth's settings and a real
``websockets`` client, which checks every frame it reads against RFC 6455.

The server here is a small ASGI app that owns a :class:`Connection` and pushes what
the test asks for, so that the test can read the connection's own count of direct
writes: with the uvicorn this project installs, the direct path must be the one
taken, and when the socket pushes back the frames must keep their order across
the two paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from chatserver.connection import Connection, direct_protocol
from chatserver.protocol import SUBPROTOCOL_MSGPACK, CloseCode, Outgoing, ws_frame
from tests.support.inprocess import bare_server
from tests.support.wait import eventually

# Payload sizes on both sides of the header's three length forms (RFC 6455, 5.2); the
# smallest JSON frame is ~40 bytes, so the first two are that.
SIZES = (0, 1, 125, 126, 127, 65535, 65536, 100_000)


def frame_of(size: int, i: int) -> Outgoing:
    """A frame whose JSON is ``size`` bytes (or the least it can be), its text not
    all ASCII."""
    room = max(0, size - len(orjson.dumps({"type": "message", "seq": i, "text": ""})))
    return Outgoing({"type": "message", "seq": i, "text": "é" * (room // 2) + "x" * (room % 2)})


class Pusher:
    """An ASGI app: one Connection a WebSocket; the client's text frames say what to push."""

    def __init__(self) -> None:
        self.conns: list[Connection] = []
        self.pushed = 0  # frames pushed so far, over all connections

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        binary = SUBPROTOCOL_MSGPACK in scope.get("subprotocols", [])
        await send({"type": "websocket.accept",
                    "subprotocol": SUBPROTOCOL_MSGPACK if binary else None})
        conn = Connection(send, msgpack_binary=binary, outbox=100_000)
        conn.start()
        self.conns.append(conn)
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                break
            ask = message.get("text") or ""
            if ask == "close":
                conn.close(CloseCode.GOODBYE)
                continue
            kind, _, rest = ask.partition(" ")
            if kind == "sizes":
                for i, size in enumerate(SIZES):
                    conn.push(frame_of(size, i))
            elif kind == "many":  # "many N SIZE"
                n, size = (int(x) for x in rest.split())
                for i in range(n):
                    conn.push(frame_of(size, i))
                    self.pushed += 1
        await conn.finish()


@pytest.fixture
async def pusher() -> AsyncIterator[tuple[Pusher, str]]:
    app = Pusher()
    async with bare_server(app) as server:
        yield app, f"ws://127.0.0.1:{server.config.port}/ws"


def decoded(data: str | bytes) -> Any:
    return msgpack.unpackb(data, raw=False) if isinstance(data, bytes) else orjson.loads(data)


async def read(ws: ClientConnection, n: int) -> list[Any]:
    return [decoded(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n)]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
async def test_frames_of_every_length_form_arrive_whole_and_direct(
        pusher: tuple[Pusher, str], binary: bool) -> None:
    """JSON and MessagePack frames of every header length form arrive as pushed, and
    with the uvicorn installed here all of them are written directly."""
    app, url = pusher
    subprotocols = [SUBPROTOCOL_MSGPACK] if binary else None
    async with websockets.connect(url, subprotocols=subprotocols,  # type: ignore[arg-type]
                                  max_size=2**20) as ws:
        await ws.send("sizes")
        got = await read(ws, len(SIZES))
        assert got == [frame_of(size, i).frame for i, size in enumerate(SIZES)]
        conn = app.conns[0]
        assert conn.direct_writes == len(SIZES), "the installed uvicorn took the slow path"
        await ws.send("close")
        with pytest.raises(websockets.ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == CloseCode.GOODBYE


async def test_a_socket_that_pushes_back_keeps_the_order_across_both_paths(
        pusher: tuple[Pusher, str]) -> None:
    """Frames pushed while the client does not read fill the socket: the rest wait in
    the outbox and go through uvicorn's send; once drained, frames go direct again."""
    app, url = pusher
    n, size = 400, 40_000  # ~16 MB: more than the kernel's buffers and uvicorn's
    async with websockets.connect(url, max_size=2**20, max_queue=2) as ws:
        await ws.send(f"many {n} {size}")
        # all pushed while nothing is read
        await eventually(lambda: app.pushed == n, what="every frame pushed")
        conn = app.conns[0]
        assert 0 < conn.direct_writes < n
        assert [f["seq"] for f in await read(ws, n)] == list(range(n))
        before = conn.direct_writes
        # the writer task has emptied the outbox and waits again
        await eventually(lambda: conn._wakeup is not None and not conn._outbox,
                         what="the writer idle again")
        await ws.send("many 3 10")
        assert [f["seq"] for f in await read(ws, 3)] == [0, 1, 2]
        assert conn.direct_writes == before + 3


def test_a_send_that_is_not_uvicorns_protocol_is_not_written_to_directly() -> None:
    """Another server's send (or uvicorn's wrapped by its trace logging) gets None."""
    async def send(message: Any) -> None:
        pass

    assert direct_protocol(send) is None


def test_ws_frame_headers() -> None:
    """The header's three length forms, and text taken as UTF-8."""
    assert ws_frame(1, b"hi") == b"\x81\x02hi"
    assert ws_frame(2, b"x" * 126)[:4] == b"\x82\x7e\x00\x7e"
    assert ws_frame(1, b"x" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")
    assert ws_frame(1, "é") == b"\x81\x02\xc3\xa9"
