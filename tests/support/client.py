"""A test client over a real WebSocket: send frames, wait for the one you expect."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import websockets
from websockets.asyncio.client import ClientConnection


class Client:
    def __init__(self, ws: ClientConnection, binary: bool = False) -> None:
        self.ws = ws
        self.binary = binary
        self.inbox: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str, *, msgpack_: bool = False, **kw: Any) -> Client:
        sub = ["hearth.msgpack"] if msgpack_ else None
        ws = await websockets.connect(url, subprotocols=sub, max_size=2**20,  # type: ignore[arg-type]
                                      compression=None, open_timeout=5, **kw)
        return cls(ws, binary=msgpack_)

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        if isinstance(frame, (str, bytes)):
            await self.ws.send(frame)
        elif self.binary:
            await self.ws.send(msgpack.packb(frame))
        else:
            await self.ws.send(json.dumps(frame))

    async def _next(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(raw, bytes):
            return dict(msgpack.unpackb(raw))
        return dict(json.loads(raw))

    async def expect(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The first frame of ``kind`` (with the given fields); earlier others are kept."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for i, frame in enumerate(self.inbox):
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return self.inbox.pop(i)
        while True:
            left = deadline - loop.time()
            if left <= 0:
                seen = [f["type"] for f in self.inbox]
                raise TimeoutError(f"no {kind} {match or ''}; got {seen}")
            frame = await self._next(left)
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame
            self.inbox.append(frame)

    async def nothing(self, kind: str, within: float = 0.3) -> None:
        """Assert no frame of ``kind`` arrives within ``within`` seconds."""
        try:
            frame = await self.expect(kind, within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {kind}: {frame}")

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close; return its close code."""
        try:
            while True:
                self.inbox.append(await self._next(timeout))
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    async def close(self, code: int = 1000) -> None:
        await self.ws.close(code)

    def drop(self) -> None:
        """Lose the connection without a closing handshake (a network drop)."""
        self.ws.transport.abort()

    # -- conveniences -------------------------------------------------------------

    async def hello(self, **fields: Any) -> dict[str, Any]:
        await self.send({"type": "hello", **fields})
        self.welcome = await self.expect("welcome")
        return self.welcome

    @property
    def resume(self) -> str:
        return str(self.welcome["resume"])


async def seeker(url: str, **request: Any) -> Client:
    c = await Client.connect(url)
    await c.hello(role="seeker")
    if request is not None and request.get("skip") is None:
        await c.send({"type": "request", **request})
    return c


async def listener(url: str, token: str, *, capacity: int = 1, topics: list[str] | None = None,
                   languages: list[str] | None = None, name: str | None = None) -> Client:
    c = await Client.connect(url)
    fields: dict[str, Any] = {"role": "listener", "token": token}
    if name:
        fields["name"] = name
    await c.hello(**fields)
    await c.send({"type": "shift", "status": "available", "topics": topics or [],
                  "languages": languages or [], "capacity": capacity})
    await c.expect("shift")
    return c


async def moderator(url: str, token: str) -> Client:
    c = await Client.connect(url)
    await c.hello(role="moderator", token=token)
    await c.expect("rooms")
    return c
