"""uvicorn's websockets-sansio protocol, reading the common frame itself.

For every frame a client sends, uvicorn's protocol runs websockets' sans-I/O
parser: a chain of generators over a stream reader, a ``Frame`` built and
checked, the events list, then uvicorn's dispatch by opcode. In timeit that is
~2.9 us a small text frame; the frame itself is a header, a mask and the
payload, which ``websockets.speedups.apply_mask`` unmasks in C.

:class:`Protocol` reads that common frame, and only it, itself: final, a text or
binary opcode, no reserved bit (no extension is ever negotiated: Hearth turns
deflate off), masked as a client's must be, within the size limit, on an open
connection with no fragmented message under way; a text frame's payload valid
UTF-8. It hands the message to the app exactly as uvicorn's
``send_receive_event_to_app`` does. Every other frame (control frames, fragments,
anything invalid or too large, anything once the connection is closing) is
handed whole to uvicorn's own ``data_received``, so websockets' parser, which
only ever sees whole frames, stays at a frame boundary and answers as it always
did (pongs, close codes 1002, 1007, 1009). Bytes of a frame not yet whole are
kept until it is (a frame is at most ``ws_max_size``: a larger one goes to the
parser, which refuses it). Before the connection opens, everything goes to
uvicorn; the first data after it opens is read here only if websockets' parser
is then waiting at a frame boundary, else that connection stays on uvicorn's
path for good.

Messages go to an :class:`Inbox` rather than uvicorn's ``asyncio.Queue``. While
the app's reader waits for one, with none queued, the inbox hands it to the
reader's ``direct`` function at once, in this read (``chatserver.endpoint``: no
wake-up of the connection's task a frame); otherwise it waits in order, and
the socket stops being read once ``PAUSE_AT`` wait, not after each one: as much
is held as uvicorn holds (everything one read of the socket brings, then no
more reads), without two system calls a frame.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State
from websockets.speedups import apply_mask
from websockets.streams import StreamReader

_OPEN = State.OPEN
_AT_BOUNDARY = StreamReader.at_eof.__code__  # what websockets' parser waits in between frames
_TEXT, _BINARY = 0x81, 0x82  # final, no reserved bit, text or binary
PAUSE_AT = 4  # messages waiting for the app before the socket is no longer read


def at_frame_boundary(conn: Any) -> bool:
    """True if websockets' parser of ``conn`` waits for the first byte of a frame, and
    ``conn`` keeps the state this module reads (``current_size``: a websockets of
    another shape leaves every frame to its own parser)."""
    if getattr(conn.reader, "buffer", b"x") or not hasattr(conn, "current_size"):
        return False
    gen = conn.parser
    while getattr(gen, "gi_yieldfrom", None) is not None:
        gen = gen.gi_yieldfrom
    return getattr(gen, "gi_code", None) is _AT_BOUNDARY


class Inbox:
    """What the protocol hands the app, in order, for one reader: the part of
    ``asyncio.Queue`` that uvicorn uses (``put_nowait``, ``get``, ``empty``) without
    the rest of its bookkeeping, which looks up the running loop at every ``get``
    (a ``getpid`` system call a frame on Python 3.11; strace)."""

    __slots__ = ("_items", "_loop", "_waiter", "direct", "taken")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._items: deque[Any] = deque()
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        # The app's reader, while it runs (chatserver.endpoint._read): a message that
        # comes while it waits, with nothing queued, goes to it at once; it returns
        # None, or what is to be queued for it instead.
        self.direct: Callable[[Any], Any] | None = None
        self.taken = 0  # messages given to it at once (tests look)

    def put_nowait(self, item: Any) -> None:
        direct = self.direct
        waiter = self._waiter
        if (direct is not None and waiter is not None and not self._items
                and not waiter.done() and item["type"] == "websocket.receive"):
            self.taken += 1
            item = direct(item)
            if item is None:
                return
        self._items.append(item)
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = self._loop.create_future()
            await self._waiter
        return self._items.popleft()

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Protocol(WebSocketsSansIOProtocol):
    """Pass as uvicorn's ``ws`` (``chatserver.cli.uvicorn_config``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: Any = Inbox(self.loop)
        self.fast: bool | None = None  # None: not decided yet (the connection not open)
        self.fast_frames = 0  # frames read here (tests look)
        # The start of a frame not yet whole, grown in place: a frame that comes a few
        # bytes a read is copied once, not once a read.
        self._partial = bytearray()

    def data_received(self, data: bytes) -> None:
        fast = self.fast
        if fast is None:
            if self.conn.state is not _OPEN:
                super().data_received(data)
                return
            fast = self.fast = at_frame_boundary(self.conn)
        if not fast:
            super().data_received(data)
            return
        partial = self._partial
        if partial:
            partial += data
            data = partial  # type: ignore[assignment]  # read in place, bytes-like
        conn = self.conn
        limit = self.config.ws_max_size
        end = len(data)
        i = 0
        while end - i >= 2:
            head = data[i]
            n = data[i + 1] & 0x7F
            at = i + 2
            if n == 126:
                if end - at < 2:
                    break
                n = int.from_bytes(data[at:at + 2], "big")
                at += 2
            elif n == 127:
                if end - at < 8:
                    break
                n = int.from_bytes(data[at:at + 8], "big")
                at += 8
            if n > limit or not data[i + 1] & 0x80:  # too large (1009), unmasked (1002)
                self.fast = False  # the parser refuses it, and has what follows
                rest = bytes(data[i:])
                partial.clear()
                super().data_received(rest)
                return
            stop = at + 4 + n
            if stop > end:
                break
            if ((head == _TEXT or head == _BINARY) and conn.state is _OPEN
                    and conn.current_size is None and not self.close_sent):
                payload = apply_mask(data[at + 4:stop], data[at:at + 4])
                if head == _TEXT:
                    try:
                        message: dict[str, Any] = {"type": "websocket.receive",
                                                   "text": payload.decode()}
                    except UnicodeDecodeError:  # the parser's path closes with 1007
                        message = {}
                else:
                    message = {"type": "websocket.receive", "bytes": payload}
                if message:
                    self.fast_frames += 1
                    queue = self.queue
                    queue.put_nowait(message)
                    # uvicorn stops reading after every message until the app takes
                    # it, and reads again once it has: a change of the socket's
                    # polling each way, ~0.7 system calls a frame (strace). Here
                    # only once PAUSE_AT wait.
                    if not self.read_paused and queue.qsize() >= PAUSE_AT:
                        self.read_paused = True
                        self.transport.pause_reading()
                    i = stop
                    continue
            super().data_received(bytes(data[i:stop]))  # one whole frame
            if conn.parser_exc is not None or self.transport.is_closing():
                partial.clear()
                return
            i = stop
        if data is partial:
            del partial[:i]  # the rest stays where it is: no copy while no frame ends
        elif i < end:
            partial += data[i:]
