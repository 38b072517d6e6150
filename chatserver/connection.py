"""One WebSocket connection: a bounded outbox with one writer task, and limits.

Frames for a connection are pushed without awaiting (:meth:`Connection.push`).
While the socket keeps up, a frame is written at once, in the pusher's own
turn of the event loop; once the socket pushes back, frames wait in a bounded
queue that a single writer task drains, so a slow reader never blocks the
sender or anyone else in the room. When the outbox is full the client has
fallen too far behind and is closed with 4420; it may resume.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.types import Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

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
        # Fewer than ``count`` kept means fewer in the window, whatever their age: the
        # old ones are dropped only once ``count`` are kept. The same answers as
        # dropping them at every call (tests/test_limits.py), without reading the
        # oldest at every frame: with a thousand connections each one's times are
        # cold in the cache, and perf put that read at half the check's samples
        # (docs/performance.md). At most ``count`` are kept either way.
        if len(times) >= self.count:
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


_OPEN = State.OPEN
# What a direct write reads of uvicorn's protocol (websockets-sansio, uvicorn >= 0.35).
_DIRECT_NEEDS = ("transport", "conn", "writable", "disconnected", "close_sent")


def direct_protocol(send: Send) -> Any:
    """uvicorn's websockets-sansio protocol behind the server's ``send``, if frames can
    be written to its transport directly (:meth:`Connection.push`), else None.

    uvicorn's send runs a frame through websockets' sans-I/O ``Protocol`` (a
    ``Frame`` built and checked, serialised into a ``BytesIO``, a list to join)
    for every member it goes to, all of it interpreted: ~1.3 us a frame warm in
    timeit against ~0.2 for the finished frame written at once. The frame a
    server sends with no extension is only a header and the payload, and
    uvicorn writes what websockets makes at once, so writing it directly, while
    the connection is open and writable, puts the same bytes on the wire in the
    same order. Anything else (another server or version, an extension
    negotiated, uvicorn's trace logging wrapping ``send``) gets None: every frame
    then goes through ``send``."""
    proto = getattr(send, "__self__", None)
    if not isinstance(proto, WebSocketsSansIOProtocol):
        return None
    if not all(hasattr(proto, name) for name in _DIRECT_NEEDS):
        return None
    if getattr(proto.conn, "extensions", None) != [] or not hasattr(proto.conn, "writes"):
        return None
    return proto


def _message(item: str | bytes) -> dict[str, Any]:
    if isinstance(item, str):
        return {"type": "websocket.send", "text": item}
    return {"type": "websocket.send", "bytes": item}


def _step(coro: Coroutine[Any, Any, None], exc: BaseException | None = None) -> Any:
    """Run ``coro`` up to its next suspension, as a Task's step would (throwing
    ``exc`` into it if given). Returns ``_DONE`` if it finished, else what it
    yielded (the future it waits on); raises what the coroutine raised."""
    try:
        return coro.send(None) if exc is None else coro.throw(exc)
    except StopIteration:
        return _DONE


_DONE = object()


class Connection:
    """The outgoing side of one connection.

    Call order: :meth:`start` once, then :meth:`push` / :meth:`send` any number
    of times and :meth:`close` at most once (frames pushed after it are
    dropped), and :meth:`finish` when the reader is done.

    ``send`` is the server's own ASGI send (not Starlette's wrappers of it).
    While the writer is idle and nothing is queued, :meth:`push` writes the
    frame at once by stepping that coroutine once: the server's send finishes
    without suspending whenever the transport is writable, which is the common
    case, and saves the hop through the writer task (docs/performance.md). If
    it does suspend (the transport paused: the client reads slowly), the
    suspended send is handed to the writer, and later frames queue behind it.

    The outbox is a plain deque bounded by ``outbox`` frames plus one wake-up
    future for the writer, rather than an ``asyncio.Queue``: the same order and
    bound for a fraction of the bookkeeping per frame and of the memory per
    connection.
    """

    def __init__(self, send: Send, *, msgpack_binary: bool, outbox: int) -> None:
        self._send = send
        self._direct = direct_protocol(send)  # frames written to its transport directly
        self.direct_writes = 0  # how many (tests look)
        self.msgpack_binary = msgpack_binary
        self._limit = outbox
        self._outbox: deque[str | bytes | CloseCode] = deque()
        self._wakeup: asyncio.Future[None] | None = None  # set while the writer waits
        # A send that suspended in push(): the writer finishes it before anything else.
        self._stalled: tuple[Coroutine[Any, Any, None], Any] | None = None
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
        """Write or queue one frame; never awaits. Closes with 4420 when the client lags."""
        if self.closed:
            return
        binary = self.msgpack_binary
        idle = self._wakeup is not None and not self._outbox  # the writer waits
        proto = self._direct
        if idle and proto is not None:
            ws = proto.conn
            # Open, writable, nothing of websockets' own unwritten (uvicorn writes it
            # at once): the bytes uvicorn's send would write, written directly.
            if (ws.state is _OPEN and not ws.writes and proto.writable.is_set()
                    and not proto.close_sent and not proto.disconnected):
                try:
                    proto.transport.write(out.wire(binary))
                except Exception:  # the peer went away; the reader sees the disconnect
                    self.closed = self.gone = True
                    return
                self.direct_writes += 1
                return
        item = out.encoded(True) if binary else out.json()
        if idle:
            # _message written out, and _step's one step taken with next() (below):
            # this runs for every frame delivered.
            coro = self._send({"type": "websocket.send", "bytes" if binary else "text": item})
            try:
                # One step, as coro.send(None), but a send that finishes (returns
                # None) ends it without a StopIteration: next() with a default on
                # the coroutine's iterator raises none for a None result, where
                # catching one cost ~4,000 instructions a frame compiled, most of
                # it a traceback entry (callgrind; docs/performance.md).
                waiting = next(coro.__await__(), _DONE)
            except Exception:  # the peer went away; the reader sees the disconnect
                self.closed = self.gone = True
                return
            if waiting is _DONE:
                return  # sent
            self._stalled = (coro, waiting)  # type: ignore[assignment]
            self._wake()
            return
        if len(self._outbox) >= self._limit:
            self.close(CloseCode.BACKLOG)
            if self.on_backlog is not None:
                self.on_backlog()
            return
        self._outbox.append(item)
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
        while (self._outbox or self._stalled) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def finish(self) -> None:
        """The reader is done. If the peer is gone, stop writing at once; if we are
        closing, let the writer send what was queued and the close frame. Then the
        backlog callback is let go: it refers back to this connection, and the cycle
        would leave the connection and what it holds to the garbage collector."""
        writer = self._writer
        try:
            if writer is None:
                return
            if self.gone:
                writer.cancel()
            try:
                await asyncio.wait_for(writer, 2.0)
            except (asyncio.CancelledError, TimeoutError):
                pass
        finally:
            self.on_backlog = None

    async def _write_loop(self) -> None:
        send = self._send
        outbox = self._outbox
        loop = asyncio.get_running_loop()
        while True:
            stalled = self._stalled
            if stalled is not None:
                self._stalled = None
                try:
                    await _finish(*stalled)
                except Exception:  # the peer went away; the reader sees the disconnect
                    self.closed = self.gone = True
                    return
                continue
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
            await self._send({"type": "websocket.close", "code": int(code), "reason": ""})
        except Exception:  # already closed by the peer or the server
            pass


async def _finish(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Drive a coroutine that :func:`_step` left suspended on ``waiting`` to its end,
    inside the current task (so cancelling the task closes the coroutine)."""
    try:
        while waiting is not _DONE:
            try:
                if waiting is None:  # a bare yield, as in asyncio.sleep(0)
                    await asyncio.sleep(0)
                else:
                    # What Task.__step does with a yielded future: take over the
                    # "blocking" flag, or awaiting it again raises RuntimeError.
                    waiting._asyncio_future_blocking = False
                    await waiting
            except asyncio.CancelledError:
                raise  # the finally below closes the coroutine
            except Exception as exc:  # what the awaited future failed with goes to its awaiter
                waiting = _step(coro, exc)
                continue
            waiting = _step(coro)
    finally:
        if waiting is not _DONE:
            coro.close()
