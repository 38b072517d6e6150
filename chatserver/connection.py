"""One WebSocket connection: a bounded outbox with one writer task, and limits.

Frames for a connection are pushed without awaiting (:meth:`Connection.push`)
into a bounded queue that a single writer task drains, so a slow reader never
blocks the sender or anyone else in the room. When the outbox is full the
client has fallen too far behind and is closed with 4420; it may resume.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket

from .protocol import CloseCode, ErrorCode, FrameError, Outgoing

log = logging.getLogger("hearth.connection")


class RateWindow:
    """At most ``count`` events in any ``seconds`` window (sliding). Pure."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count = count
        self.seconds = seconds
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        times = self._times
        while times and now - times[0] >= self.seconds:
            times.popleft()
        if len(times) >= self.count:
            return False
        times.append(now)
        return True


class Limits:
    """The rate window on ``message`` frames, a looser one on every frame, and
    the strike count after which a flooding client is closed with 4429."""

    def __init__(self, count: int, seconds: float) -> None:
        self.messages = RateWindow(count, seconds)
        self.frames = RateWindow(max(30, count * 6), seconds)
        self.strikes = RateWindow(count, seconds)

    def check(self, kind: str, now: float) -> None:
        """Raise FrameError(rate_limited) for a frame over the window."""
        ok = self.frames.allow(now)
        if ok and kind == "message":
            ok = self.messages.allow(now)
        if not ok:
            raise FrameError(ErrorCode.RATE_LIMITED, "Slow down a little.", kind)

    def strike(self, now: float) -> bool:
        """Record a rate_limited answer; True when the client keeps flooding."""
        return not self.strikes.allow(now)


class Connection:
    def __init__(self, ws: WebSocket, *, msgpack_binary: bool, outbox: int) -> None:
        self.ws = ws
        self.msgpack_binary = msgpack_binary
        self._queue: asyncio.Queue[str | bytes | CloseCode] = asyncio.Queue(outbox)
        self._writer: asyncio.Task[None] | None = None
        self.closed = False
        self.close_code: int | None = None  # what the server closed with
        self.peer_close_code: int | None = None  # what the client closed with
        self.gone = False  # the socket is closed; nothing more can be sent
        self.typing_at: dict[str, float] = {}
        # Called once when the client fell behind (4420): the seat is dropped at
        # once, even though the close frame waits until the client reads again.
        self.on_backlog: Callable[[], None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())

    def push(self, out: Outgoing) -> None:
        """Queue one frame; never awaits. Closes with 4420 when the client lags."""
        if self.closed:
            return
        try:
            self._queue.put_nowait(out.encoded(self.msgpack_binary))
        except asyncio.QueueFull:
            self.close(CloseCode.BACKLOG)
            if self.on_backlog is not None:
                self.on_backlog()

    def send(self, frame: dict[str, Any]) -> None:
        self.push(Outgoing(frame))

    def close(self, code: CloseCode) -> None:
        """Close after the frames already queued (a full queue: at once)."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        try:
            self._queue.put_nowait(code)
        except asyncio.QueueFull:
            if self._writer is not None:
                self._writer.cancel()
            asyncio.ensure_future(self._close_now(code))

    async def drain(self, timeout: float) -> None:
        """Wait until the outbox is empty (used before a shutdown close)."""
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def finish(self) -> None:
        """The reader is done. If the peer is gone, stop writing at once; if we are
        closing, let the writer send what was queued and the close frame."""
        writer = self._writer
        if writer is None:
            return
        if self.gone:
            writer.cancel()
        try:
            await asyncio.wait_for(writer, 2.0)
        except (asyncio.CancelledError, TimeoutError):
            pass

    async def _write_loop(self) -> None:
        send = self.ws.send
        while True:
            item = await self._queue.get()
            if isinstance(item, CloseCode):
                await self._close_now(item)
                return
            message = (
                {"type": "websocket.send", "bytes": item}
                if isinstance(item, bytes)
                else {"type": "websocket.send", "text": item}
            )
            try:
                await send(message)
            except Exception:  # the peer went away; the reader sees the disconnect
                self.closed = self.gone = True
                return

    async def _close_now(self, code: CloseCode) -> None:
        try:
            await self.ws.close(code=int(code))
        except Exception:  # already closed by the peer or the server
            pass
