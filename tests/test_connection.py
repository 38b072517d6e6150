"""The outgoing side of a connection: frames written at once while the socket keeps
up, queued behind a send that had to wait, and 4420 once the outbox is full.

``Transport`` stands in for the server's ASGI ``send`` the way uvicorn's behaves:
it writes at once while writable and otherwise awaits an ``asyncio.Event``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chatserver.connection import Connection
from chatserver.protocol import CloseCode, Outgoing


class Transport:
    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.sent: list[Any] = []
        self.waiting = 0
        self.abandoned = 0  # sends closed (or cancelled) while they waited

    async def send(self, message: dict[str, Any]) -> None:
        if not self.writable.is_set():
            self.waiting += 1
            try:
                await self.writable.wait()
            except (GeneratorExit, asyncio.CancelledError):
                self.abandoned += 1
                raise
            finally:
                self.waiting -= 1
        self.sent.append(message.get("text", message.get("code")))


def frame(i: int) -> Outgoing:
    return Outgoing({"type": "message", "seq": i})


def seqs(t: Transport) -> list[int]:
    return [int(s.split('"seq":')[1].rstrip("}")) for s in t.sent if isinstance(s, str)]


async def started(t: Transport, outbox: int = 4) -> Connection:
    conn = Connection(t.send, msgpack_binary=False, outbox=outbox)  # type: ignore[arg-type]
    conn.start()
    await asyncio.sleep(0)  # the writer reaches its first wait
    return conn


async def test_frames_go_out_at_once_while_the_socket_keeps_up() -> None:
    """A push is written before the pusher yields: no hop through the writer task."""
    t = Transport()
    conn = await started(t)
    for i in range(10):
        conn.push(frame(i))
        assert seqs(t) == list(range(i + 1))
    conn.close(CloseCode.GOODBYE)
    await conn.finish()
    assert t.sent[-1] == 1000


async def test_a_send_that_waits_keeps_the_order_of_everything_after_it() -> None:
    """Frames pushed while the socket pushes back are queued and sent in order later."""
    t = Transport()
    conn = await started(t, outbox=10)
    conn.push(frame(0))
    t.writable.clear()
    for i in range(1, 6):
        conn.push(frame(i))
    await asyncio.sleep(0)
    assert seqs(t) == [0] and t.waiting == 1
    t.writable.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert seqs(t) == list(range(6))
    conn.push(frame(6))  # idle again: written at once
    assert seqs(t) == list(range(7))
    assert not conn.closed
    conn.close(CloseCode.GOODBYE)
    await conn.finish()


async def test_a_client_that_stays_behind_is_closed_with_4420_once() -> None:
    """With the socket stalled, the outbox fills; the next push closes with 4420 and
    calls on_backlog once; later pushes are dropped."""
    t = Transport()
    conn = await started(t, outbox=3)
    lagging: list[bool] = []
    conn.on_backlog = lambda: lagging.append(True)
    t.writable.clear()
    for i in range(4):  # one send waiting, three queued
        conn.push(frame(i))
    assert not conn.closed
    conn.push(frame(4))
    conn.push(frame(5))
    assert conn.closed and conn.close_code == CloseCode.BACKLOG and lagging == [True]
    await asyncio.sleep(0)
    t.writable.set()  # the close frame goes out once the socket drains
    await conn.finish()
    assert t.sent == [4420]


async def test_finish_on_a_lost_socket_ends_a_waiting_send() -> None:
    """When the peer is gone, a send stuck waiting is closed, not left pending."""
    t = Transport()
    conn = await started(t)
    t.writable.clear()
    conn.push(frame(0))
    await asyncio.sleep(0)
    assert t.waiting == 1
    conn.gone = conn.closed = True
    await conn.finish()
    assert t.waiting == 0 and t.abandoned == 1 and t.sent == []
