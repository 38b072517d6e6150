"""The ``/ws`` endpoint: origin check, hello, then one frame at a time.

Order for a connection: refuse a foreign ``Origin`` before the upgrade (403);
accept with the chosen subprotocol; wait ``hello_timeout_s`` for ``hello``
(4408), validate it (4400) and its token (4401); then read frames until the
socket closes, answering every bad frame with an ``error`` and keeping the
connection. An unexpected failure closes with 1011 and reveals nothing.

:func:`serve` is a plain ASGI application that the app mounts in front of
Starlette's middleware and router (``chatserver.app``), so every frame in and
out goes straight through the server's own ``receive`` and ``send``: on this
path Starlette's wrappers cost a coroutine layer or two per frame and add
nothing (docs/performance.md). Starlette's ``WebSocket`` is still used for the
handshake and the headers. On Hearth's own protocol (``chatserver.wsfast``)
most frames go straighter still: a frame that comes while :func:`_read` waits
is handled in the protocol's read, and ``Connection.push`` writes the finished
frame to the transport.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from . import metrics, protocol, tokens
from .connection import Connection, Limits
from .protocol import CloseCode, FrameError, HelloError
from .wsfast import Inbox

if TYPE_CHECKING:
    from .node import Node
    from .seats import Seat

log = logging.getLogger("hearth.endpoint")


def choose_subprotocol(offered: list[str]) -> str | None:
    for name in (protocol.SUBPROTOCOL_MSGPACK, protocol.SUBPROTOCOL_JSON):
        if name in offered:
            return name
    return None


async def serve(scope: Scope, receive: Receive, send: Send) -> None:
    ws = WebSocket(scope, receive, send)
    node: Node = ws.app.state.node
    origin = ws.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in ws.app.state.origins:
        metrics.CLOSES.labels("403").inc()
        await ws.close(code=1008)  # before accept: the server answers HTTP 403
        return
    subprotocol = choose_subprotocol(ws.scope.get("subprotocols", []))
    await ws.accept(subprotocol=subprotocol)
    conn = Connection(send, msgpack_binary=subprotocol == protocol.SUBPROTOCOL_MSGPACK,
                      outbox=node.settings.outbox)
    conn.start()
    seat = None
    try:
        seat = await _hello(ws, node, conn)
        if seat is not None:
            backlogged = seat

            def lagging() -> None:
                metrics.CLOSES.labels(str(int(CloseCode.BACKLOG))).inc()
                node.detach(backlogged, conn, None)

            conn.on_backlog = lagging
            await _read(receive, node, conn, seat)
    except Exception:
        # Don't include exception details, which may hold message text.
        log.error("unexpected failure on a connection", exc_info=False)
        metrics.CLOSES.labels("1011").inc()
        conn.close(CloseCode.INTERNAL)
    finally:
        if seat is not None:
            node.detach(seat, conn, conn.peer_close_code)
        await conn.finish()


def _close(conn: Connection, code: CloseCode) -> None:
    metrics.CLOSES.labels(str(int(code))).inc()
    conn.close(code)


async def _hello(ws: WebSocket, node: Node, conn: Connection):  # type: ignore[no-untyped-def]
    settings = node.settings
    try:
        message = await asyncio.wait_for(ws.receive(), settings.hello_timeout_s)
    except TimeoutError:
        _close(conn, CloseCode.HELLO_TIMEOUT)
        return None
    if message["type"] == "websocket.disconnect":
        conn.closed = conn.gone = True
        return None
    metrics.count_frame("hello")
    try:
        payload = message.get("text")
        if payload is None:
            payload = message.get("bytes") or b""
        obj = protocol.decode(payload, msgpack_binary=conn.msgpack_binary)
        hello = protocol.parse_hello(obj)
    except FrameError:
        _close(conn, CloseCode.BAD_HELLO)
        return None
    except HelloError as exc:
        _close(conn, exc.close_code)
        return None
    name = None
    if hello.role in ("listener", "moderator"):
        assert hello.token is not None
        try:
            name = tokens.verify(settings.secret, hello.token, hello.role)
        except tokens.TokenError:
            _close(conn, CloseCode.UNAUTHORIZED)
            return None
        if hello.name:
            name = hello.name
    client = ws.client.host if ws.client else None
    seat = await node.attach(hello, name, conn, node.origin_key(client))
    if seat is None:
        _close(conn, CloseCode.UNAUTHORIZED)
    return seat


def _take(message: Message, node: Node, conn: Connection, seat: Seat, limits: Limits,
          started: float) -> tuple[protocol.Frame, str] | None:
    """One client message as far as it goes without awaiting: decoded, counted,
    limited, parsed and, if it is a ``message`` or ``typing``, handled; a bad frame
    answered (:func:`_refuse`). The frame and its type if ``Node.handle`` must
    still be awaited for it (then :func:`_handle`), else None."""
    kind = "other"
    # The functions below are called by name, not bound to locals first: compiled,
    # a call by name is a call in C, and one through a local a call through the
    # interpreter's protocol (~300 instructions more each, callgrind).
    try:
        payload = message.get("text")
        if payload is None:
            payload = message.get("bytes") or b""
        obj = protocol.decode(payload, msgpack_binary=conn.msgpack_binary)
        kind = obj["type"]
        metrics.count_frame(kind)
        limits.check(kind, started)
        frame = protocol.parse_frame(obj, seat.role)  # type: ignore[arg-type]
        if not node.handle_now(seat, frame):
            return frame, kind
    except FrameError as exc:
        _refuse(exc, kind, conn, limits, started)
    return None


async def _handle(taken: tuple[protocol.Frame, str], node: Node, conn: Connection,
                  seat: Seat, limits: Limits, started: float) -> None:
    """The rest of a frame that :func:`_take` left: its handler, awaited."""
    try:
        await node.handle(seat, taken[0])
    except FrameError as exc:
        _refuse(exc, taken[1], conn, limits, started)


def _refuse(exc: FrameError, kind: Any, conn: Connection, limits: Limits,
            started: float) -> None:
    """Answer a bad frame with its ``error``; close a client that keeps flooding (4429)."""
    metrics.ERRORS.labels(str(exc.code)).inc()
    if exc.ref is None and isinstance(kind, str) and kind in metrics.KNOWN_TYPES:
        exc.ref = kind
    conn.send(exc.frame())
    if exc.code == protocol.ErrorCode.RATE_LIMITED and limits.strike(started):
        _close(conn, CloseCode.FLOODING)


async def _read(receive: Receive, node: Node, conn: Connection, seat: Seat) -> None:
    """Every message of the client, in order, until it disconnects.

    On Hearth's protocol (:mod:`chatserver.wsfast`) a message that arrives while
    this loop waits for one, with none queued, is taken at once by the protocol
    (:func:`_take`, in ``Inbox.put_nowait``): no wake-up of this task and no
    ``receive`` a frame. Only a frame whose handler awaits comes back here."""
    limits = Limits(*node.settings.rate)
    inbox = _inbox(receive)
    if inbox is not None:

        def direct(message: Message) -> Message | None:
            if conn.closed:
                return None  # closing: drain what the client still sends
            started = perf_counter()
            try:
                taken = _take(message, node, conn, seat, limits, started)
            except Exception:  # this loop fails the connection, as for one it read
                return {"type": "hearth.failed"}
            if taken is not None:
                return {"type": "hearth.frame", "taken": taken, "started": started}
            metrics.observe_handle(perf_counter() - started)
            return None

        inbox.direct = direct
    try:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                conn.peer_close_code = message.get("code")
                conn.closed = conn.gone = True
                return
            if conn.closed:
                continue  # closing: drain what the client still sends
            if kind == "hearth.frame":  # taken at once, and its handler awaits
                started = message["started"]
                await _handle(message["taken"], node, conn, seat, limits, started)
            elif kind == "hearth.failed":
                raise RuntimeError("a frame taken at once failed")
            else:
                started = perf_counter()
                taken = _take(message, node, conn, seat, limits, started)
                if taken is not None:
                    await _handle(taken, node, conn, seat, limits, started)
            metrics.observe_handle(perf_counter() - started)
    finally:
        if inbox is not None:
            inbox.direct = None


def _inbox(receive: Receive) -> Inbox | None:
    """The :class:`~chatserver.wsfast.Inbox` behind uvicorn's ``receive``, if it is
    Hearth's protocol's."""
    inbox = getattr(getattr(receive, "__self__", None), "queue", None)
    return inbox if isinstance(inbox, Inbox) else None
