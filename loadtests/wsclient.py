"""A lean WebSocket client for benchmarks: an asyncio Protocol with RFC 6455
framing written out by hand, so that one client core can drive a server core.

Why not the ``websockets`` library here: at tens of thousands of frames a
second its per-frame cost (an asyncio future per ``recv``, a Frame object, a
UTF-8 decode) is about what the server spends, so the client would be the
bottleneck of every saturation figure. This client does the minimum:

- Client frames carry a zero masking key. RFC 6455 5.3 lets the key be any
  32-bit value and the server still unmasks; a zero key makes masking free.
- Server frames arrive unfragmented and unmasked; text and binary payloads are
  handed to ``on_frame`` as ``bytes`` without decoding.
- Pings are answered with pongs, a close frame is answered and its code kept.

Order of use: ``await connect(port)`` (the HTTP upgrade), then ``send`` and
``expect`` or a custom ``on_frame``; ``close()`` at the end. Only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

ZERO_MASK = b"\x00\x00\x00\x00"
HOST = "127.0.0.1"


def frame_header(opcode: int, length: int) -> bytes:
    """The header of a masked (zero key) client frame with FIN set."""
    if length < 126:
        return bytes((0x80 | opcode, 0x80 | length)) + ZERO_MASK
    if length < 65536:
        return bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big") + ZERO_MASK
    return bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big") + ZERO_MASK


class WSClient(asyncio.Protocol):
    """One connection. ``on_frame(payload)`` sees every data frame after the
    handshake; by default frames are JSON-decoded into ``inbox`` for ``expect``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.on_frame: Callable[[bytes], None] = self._keep
        self.inbox: deque[dict[str, Any]] = deque()
        self.close_code: int | None = None  # what the server closed with
        self.lost = asyncio.get_running_loop().create_future()
        self._handshake = asyncio.get_running_loop().create_future()
        self._waiter: asyncio.Future[None] | None = None
        self._buf = b""
        self._open = False

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        if not self._handshake.done():
            self._handshake.set_exception(ConnectionError("closed during the handshake"))
        if not self.lost.done():
            self.lost.set_result(self.close_code)
        self._wake()

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
            self._buf = b""
        if not self._open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buf = data
                return
            head, data = data[:end], data[end + 4:]
            if not head.startswith(b"HTTP/1.1 101"):
                self._handshake.set_exception(
                    ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace")))
                self.transport.close()  # type: ignore[union-attr]
                return
            self._open = True
            self._handshake.set_result(None)
        n = len(data)
        i = 0
        on_frame = self.on_frame
        while i + 2 <= n:
            b0 = data[i]
            length = data[i + 1] & 0x7F
            if length < 126:
                start = i + 2
            elif length == 126:
                if i + 4 > n:
                    break
                length = int.from_bytes(data[i + 2:i + 4], "big")
                start = i + 4
            else:
                if i + 10 > n:
                    break
                length = int.from_bytes(data[i + 2:i + 10], "big")
                start = i + 10
            end = start + length
            if end > n:
                break
            opcode = b0 & 0x0F
            i = end
            if opcode <= 2:
                on_frame(data[start:end])
            elif opcode == 9:
                self.write(0xA, data[start:end])
            elif opcode == 8:
                payload = data[start:end]
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.write(0x8, payload[:2])
                self.transport.close()  # type: ignore[union-attr]
                return
        if i < n:
            self._buf = data[i:]

    # -- sending -------------------------------------------------------------------------

    def write(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(frame_header(opcode, len(payload)) + payload)

    def send(self, payload: bytes) -> None:
        """Send one text frame (the bytes must be UTF-8)."""
        self.write(0x1, payload)

    def send_json(self, frame: dict[str, Any]) -> None:
        self.write(0x1, json.dumps(frame, separators=(",", ":")).encode())

    def close(self, code: int = 1000) -> None:
        self.write(0x8, code.to_bytes(2, "big"))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- waiting for frames (setup only; the hot path sets on_frame) -------------------

    def _keep(self, payload: bytes) -> None:
        self.inbox.append(json.loads(payload))
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first frame of type ``kind``; other frames before it are dropped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while self.inbox:
                frame = self.inbox.popleft()
                if frame.get("type") == kind:
                    return frame
            if self.lost.done():
                raise ConnectionError(f"closed ({self.close_code}) while waiting for {kind}")
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {kind} within {timeout} s")
            self._waiter = loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, left)
            except TimeoutError:
                pass


async def connect(port: int, path: str = "/ws", *, rcvbuf: int | None = None,
                  timeout: float = 10.0) -> WSClient:
    """Open a WebSocket to 127.0.0.1:port. ``rcvbuf`` shrinks SO_RCVBUF (slow reader)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), timeout)
    except BaseException:
        sock.close()
        raise
    _, client = await loop.create_connection(WSClient, sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n")
    client.transport.write(request.encode())  # type: ignore[union-attr]
    try:
        await asyncio.wait_for(client._handshake, timeout)
    except BaseException:
        client.abort()
        raise
    return client
