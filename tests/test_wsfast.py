"""Hearth's reader of client frames (``chatserver.wsfast``) on a real uvicorn server
with Hearth's settings, spoken to over a raw socket, so that frames can be split,
joined and broken at will.

The app echoes every message back through uvicorn's send, so what the reader
handed over is what comes back; the server's protocol objects are read for how
many frames took the fast path.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from chatserver.protocol import MAX_FRAME_BYTES
from chatserver.wsfast import Protocol
from tests.support.inprocess import bare_server
from tests.support.wait import eventually


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


@pytest.fixture(params=[None, "websockets-sansio"], ids=["wsfast", "uvicorn"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[uvicorn.Server]:
    """Hearth's protocol, and uvicorn's own, which every test holds it to."""
    async with bare_server(echo, ws=request.param) as srv:
        yield srv


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    n = len(payload)
    head = bytes((0x80 * fin | opcode,))
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes((bit | n,))
    elif n < 65536:
        head += bytes((bit | 126,)) + struct.pack("!H", n)
    else:
        head += bytes((bit | 127,)) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Raw:
    """A WebSocket client on a plain socket: frames written as given, read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def write(self, *chunks: bytes) -> None:
        """Each chunk its own write, a moment apart, so that the server reads them
        separately (a pause, not a synchronisation: joined reads would pass too)."""
        for chunk in chunks:
            self.writer.write(chunk)
            await self.writer.drain()
            await asyncio.sleep(0.01)

    async def read(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame from the server."""
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), 5)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def close_code(self) -> int:
        """The code of the server's close frame, skipping anything before it."""
        while True:
            opcode, payload = await self.read()
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])

    def close(self) -> None:
        self.writer.close()


def fast_frames(srv: uvicorn.Server) -> int | None:
    """Frames read by Hearth's reader on this server; None on uvicorn's own protocol."""
    if srv.config.ws != Protocol:
        return None
    return sum(p.fast_frames for p in srv.server_state.connections
               if isinstance(p, Protocol))


def fast(srv: uvicorn.Server, n: int) -> int | None:
    """``n`` where Hearth's reader runs, else None: what ``fast_frames`` must say."""
    return n if srv.config.ws == Protocol else None


async def test_frames_joined_and_split_arrive_whole_in_order(server: uvicorn.Server) -> None:
    """Frames several to a read, or cut anywhere across reads, reach the app whole."""
    port = server.config.port
    ws = await Raw.open(port)
    small = [frame(0x1, f"m{i}".encode()) for i in range(5)]
    big = frame(0x2, bytes(range(256)) * 100)  # 25,600 bytes: the two-byte length form
    text = frame(0x1, "é, ü and 😀".encode())
    # five frames in one write; then a frame cut inside its header, its mask and its
    # payload; then the end of one frame and the whole of the next in one write
    await ws.write(b"".join(small), big[:1], big[1:3], big[3:6], big[6:5000], big[5000:],
                   text[:4], text[4:] + frame(0x1, b"last"))
    got = [await ws.read() for _ in range(8)]
    assert got == ([(0x1, f"m{i}".encode()) for i in range(5)]
                   + [(0x2, bytes(range(256)) * 100), (0x1, "é, ü and 😀".encode()),
                      (0x1, b"last")])
    assert fast_frames(server) == fast(server, 8)
    ws.close()


async def test_a_frame_that_comes_a_little_at_a_time_arrives_whole(
        server: uvicorn.Server) -> None:
    """A frame cut into a hundred reads, the last of them also starting the next
    frame, arrives whole, and so does the next."""
    ws = await Raw.open(server.config.port)
    payload = os.urandom(20_000)
    data = frame(0x2, payload) + frame(0x1, b"next")
    for k in range(0, len(data), 200):
        ws.writer.write(data[k:k + 200])
        await ws.writer.drain()
        await asyncio.sleep(0.002)
    assert await ws.read() == (0x2, payload)
    assert await ws.read() == (0x1, b"next")
    assert fast_frames(server) == fast(server, 2)
    ws.close()


async def test_pings_and_fragments_go_through_websockets_and_the_rest_stays_fast(
        server: uvicorn.Server) -> None:
    """A ping is answered and a fragmented message joined by websockets' parser; the
    frames after them are read fast again."""
    ws = await Raw.open(server.config.port)
    await ws.write(frame(0x9, b"are you there")
                   + frame(0x1, b"frag", fin=False) + frame(0x0, b"ment", fin=False)
                   + frame(0x0, b"ed") + frame(0x1, b"after"))
    assert await ws.read() == (0xA, b"are you there")  # the pong
    assert await ws.read() == (0x1, b"fragmented")
    assert await ws.read() == (0x1, b"after")
    assert fast_frames(server) == fast(server, 1)
    await ws.write(frame(0x1, b"again"))
    assert await ws.read() == (0x1, b"again")
    assert fast_frames(server) == fast(server, 2)
    ws.close()


@pytest.mark.parametrize("bad, code", [
    (frame(0x1, b"\xff\xfe not utf-8"), 1007),
    (frame(0x1, b"unmasked", mask=False), 1002),
    (frame(0x2, b"x" * (MAX_FRAME_BYTES + 1)), 1009),
    (frame(0x1, b"reserved bit")[:1].replace(b"\x81", b"\xc1") + frame(0x1, b"reserved bit")[1:],
     1002),
], ids=["invalid-utf8", "unmasked", "too-large", "rsv1"])
async def test_bad_frames_are_refused_as_websockets_refuses_them(
        server: uvicorn.Server, bad: bytes, code: int) -> None:
    """Invalid text, an unmasked frame, one over the limit or one with a reserved bit
    closes the connection with the code websockets gives it."""
    ws = await Raw.open(server.config.port)
    await ws.write(frame(0x1, b"fine"))
    assert await ws.read() == (0x1, b"fine")
    await ws.write(bad)
    assert await ws.close_code() == code
    ws.close()


async def test_a_close_from_the_client_is_answered(server: uvicorn.Server) -> None:
    """The client's close is answered with its code; a frame after it is not read."""
    ws = await Raw.open(server.config.port)
    await ws.write(frame(0x1, b"bye soon"))
    assert await ws.read() == (0x1, b"bye soon")
    await ws.write(frame(0x8, struct.pack("!H", 1000)) + frame(0x1, b"after the close"))
    assert await ws.close_code() == 1000  # and what came after the close is not read
    ws.close()


@pytest.mark.parametrize("ws", [None, "websockets-sansio"], ids=["wsfast", "uvicorn"])
async def test_a_client_the_app_does_not_keep_up_with_is_no_longer_read(ws: Any) -> None:
    """While the app takes no message, the socket stops being read after a few: what a
    client sends then waits in its own buffers, and nothing is lost once the app reads."""
    held = asyncio.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await held.wait()
        count = 0
        while (await receive())["type"] != "websocket.disconnect":
            count += 1
            if count == 2000:
                await send({"type": "websocket.send", "text": f"got {count}"})

    async with bare_server(slow, ws=ws) as srv:
        client = await Raw.open(srv.config.port)
        client.writer.write(b"".join(frame(0x1, b"x" * 1000) for _ in range(2000)))  # ~2 MB
        proto = next(iter(srv.server_state.connections))
        await eventually(lambda: proto.read_paused, what="reading paused")
        await asyncio.sleep(0.2)  # were it still read, more would arrive meanwhile
        assert proto.read_paused and proto.queue.qsize() < 2000
        held.set()
        assert await client.read() == (0x1, b"got 2000")
        client.close()
