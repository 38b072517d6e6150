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
        # Made on first use: most connections never send some kinds of frame, and
        # an empty deque costs ~600 bytes per idle connection (docs/performance.md).
        self._times: deque[float] | None = None

    def allow(self, now: float) -> bool:
        times = self._times
        if times is None:
            times = self._times = deque()
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


def _message(item: str | bytes) -> dict[str, Any]:
    if isinstance(item, str):
        return {"type": "websocket.send", "text": item}
    return {"type": "websocket.send", "bytes": item}


class Connection:
    """The outgoing side of one connection.

    Call order: :meth:`start` once, then :meth:`push` / :meth:`send` any number
    of times and :meth:`close` at most once (frames pushed after it are
    dropped), and :meth:`finish` when the reader is done.

    The outbox is a plain deque bounded by ``outbox`` frames plus one wake-up
    future for the writer, rather than an ``asyncio.Queue``: the same order and
    bound for a fraction of the bookkeeping per frame and of the memory per
    connection (docs/performance.md).
    """

    def __init__(self, ws: WebSocket, *, msgpack_binary: bool, outbox: int) -> None:
        self.ws = ws
        self.msgpack_binary = msgpack_binary
        self._limit = outbox
        self._outbox: deque[str | bytes | CloseCode] = deque()
        self._wakeup: asyncio.Future[None] | None = None  # set while the writer waits
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
        if len(self._outbox) >= self._limit:
            self.close(CloseCode.BACKLOG)
            if self.on_backlog is not None:
                self.on_backlog()
            return
        self._outbox.append(out.encoded(self.msgpack_binary))
        self._wake()

    def send(self, frame: dict[str, Any]) -> None:
        self.push(Outgoing(frame))

    def close(self, code: CloseCode) -> None:
        """Close after the frames already queued (a full queue: at once)."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        if len(self._outbox) < self._limit:
            self._outbox.append(code)
            self._wake()
            return
        if self._writer is not None:
            self._writer.cancel()
        asyncio.ensure_future(self._close_now(code))

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    async def drain(self, timeout: float) -> None:
        """Wait until the outbox is empty (used before a shutdown close)."""
        deadline = time.monotonic() + timeout
        while self._outbox and time.monotonic() < deadline:
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
        outbox = self._outbox
        loop = asyncio.get_running_loop()
        while True:
            if not outbox:
                self._wakeup = loop.create_future()
                await self._wakeup
                continue
            item = outbox.popleft()  # everything queued goes out before the next wait
            if isinstance(item, CloseCode):
                await self._close_now(item)
                return
            try:
                await send(_message(item))
            except Exception:  # the peer went away; the reader sees the disconnect
                self.closed = self.gone = True
                return

    async def _close_now(self, code: CloseCode) -> None:
        try:
            await self.ws.close(code=int(code))
        except Exception:  # already closed by the peer or the server
            pass
