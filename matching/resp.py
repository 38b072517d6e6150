"""A Redis connection spoken to directly, for the hot paths that need no more
than RESP: publishing (``PUBLISH``), reading a subscription, and the plain
commands a pairing costs (the matcher's scripts, the seat directory's writes:
:class:`Commands`).

redis-py's asyncio connection reads through a ``StreamReader`` and a chain of
coroutines (the subscriber's read, the parser's read, the stream's wait), so
each message it hears resumes a task through four or five frames, and each
command it sends goes through its checks, ``writelines`` and ``drain``. Here
the connection is an ``asyncio.Protocol``: bytes are written to the transport
as they are, and what Redis sends is fed to hiredis's C reader in
``data_received``, which hands each published message to a callback right
there and each reply to the future of the command that waits for it, in order.
Everything else (reading a seat's record to claim it, presence, health
checks) stays on redis-py.

:func:`connect` takes the address and the credentials from a redis-py client's
pool (``redis://``, ``rediss://`` and ``unix://`` URLs, a password and a user
name), so that both speak to the same server the same way.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

pack_command: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command


class Link(asyncio.Protocol):
    """One connection to Redis. ``on_message(channel, data)`` is called for each
    message of a subscription, in ``data_received``; every other reply goes to
    the oldest request still waiting for one (:meth:`request`)."""

    def __init__(self, on_message: Callable[[Any, Any], None] | None = None,
                 encoding: str | None = None) -> None:
        self._on_message = on_message
        # Replies as bytes, or as str with ``encoding`` (a client with decode_responses).
        self._reader = hiredis.Reader(encoding=encoding) if encoding else hiredis.Reader()
        self._message: bytes | str = "message" if encoding else b"message"
        self._loop = asyncio.get_running_loop()
        # Requests waiting for their replies, in the order sent: (future, how many, so far).
        self._waiting: collections.deque[tuple[asyncio.Future[list[Any]], int, list[Any]]] = (
            collections.deque())
        self._transport: asyncio.Transport | None = None
        self.heard = 0  # replies and messages read, ever (a subscriber's watchdog looks)
        self.lost: BaseException | None = None  # why the connection ended, once it did
        self.closed: asyncio.Future[None] = self._loop.create_future()  # done once it did

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:  # not RESP: nothing after it can be read
                self._fail(RedisConnectionError(f"protocol error: {exc}"))
                return
            if reply is False:
                return
            self.heard += 1
            if (self._on_message is not None and type(reply) is list and len(reply) == 3
                    and reply[0] == self._message):
                self._on_message(reply[1], reply[2])
            elif self._waiting:
                waiter, count, replies = self._waiting[0]
                replies.append(reply)
                if len(replies) == count:
                    self._waiting.popleft()
                    if not waiter.done():
                        waiter.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError("connection lost") if exc is None else exc)

    # -- use -------------------------------------------------------------------------

    def request(self, data: bytes, replies: int) -> asyncio.Future[list[Any]]:
        """Write ``data`` (packed commands) as it is; a future of the ``replies``
        it is answered with, in order, once all have come (an error reply as a
        ``hiredis.ReplyError``, returned, not raised). With ``replies`` 0 nothing
        waits: what comes back (a subscriber's PONG) is counted and dropped."""
        if self.lost is not None or self._transport is None:
            raise RedisConnectionError("not connected")
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if replies:
            self._waiting.append((future, replies, []))
        else:
            future.set_result([])
        self._transport.write(data)
        return future

    async def command(self, *args: Any) -> Any:
        """Send one command and wait for its reply; an error reply is raised."""
        reply = (await self.request(pack_command(args), 1))[0]
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    def close(self, why: BaseException | None = None) -> None:
        """Drop the connection; what waits fails with ``why`` (by default a
        ConnectionError)."""
        if self._transport is not None:
            self._transport.abort()  # no goodbye owed: nothing is left to read or write
        self._fail(why or RedisConnectionError("closed"))

    def _fail(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
        if not self.closed.done():  # (a task cancelled while it awaited it cancelled it)
            self.closed.set_result(None)
        while self._waiting:
            waiter = self._waiting.popleft()[0]
            if not waiter.done():
                waiter.set_exception(exc)


def error(reply: hiredis.ReplyError) -> RedisError:
    """An error reply as redis-py raises it (``NoScriptError``, ``ReadOnlyError``,
    ``BusyLoadingError``, which is a ConnectionError, ...)."""
    return BaseParser.parse_error(str(reply))  # type: ignore[no-any-return,no-untyped-call]


class Commands:
    """Plain commands on a :class:`Link` of their own, for a hot path that would
    otherwise go through redis-py's pool, pipeline and packer at every call
    (py-spy put those at a quarter of a node's time when it pairs on Redis;
    docs/performance.md).

    :meth:`run` writes its commands at once, in one write; the replies come back
    in order to one future, an error reply as a ``hiredis.ReplyError`` value (see
    :func:`error`). Calls made while others are out share the connection and are
    answered in the order they were written, so two calls from one task land in
    Redis in that order. The link is made on first use and again after any loss;
    a call not answered within ``timeout`` closes it, failing every call on it
    with ``redis.exceptions.TimeoutError``. With ``resend`` a call that fails
    because the connection was lost (a Redis restart) is sent once more on a new
    one, as redis-py's one retry on a reconnect did; a timeout is not retried.
    Without it (a caller with a retry policy of its own) every failure is raised."""

    def __init__(self, redis: Redis, timeout: float, *, resend: bool = True) -> None:
        self._redis = redis
        self._timeout = timeout
        self._resend = resend
        self._link: Link | None = None
        self._connecting = asyncio.Lock()
        self._closed = False  # close() was called: no new connection is made

    async def run(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        data = b"".join([pack_command(c) for c in commands])
        try:
            return await self._once(data, len(commands))
        except RedisTimeoutError:
            raise
        except (RedisConnectionError, OSError):
            if not self._resend:
                raise
            return await self._once(data, len(commands))

    async def _once(self, data: bytes, n: int) -> list[Any]:
        link = self._link
        if link is None or link.lost is not None:
            link = await self._connect()
        timer = asyncio.get_running_loop().call_later(self._timeout, _expire, link)
        try:
            return await link.request(data, n)
        finally:
            timer.cancel()

    async def _connect(self) -> Link:
        async with self._connecting:  # one new connection for all who found none
            link = self._link
            if link is None or link.lost is not None:
                self._link = None
                if self._closed:
                    raise RedisConnectionError("closed")
                try:
                    async with asyncio.timeout(self._timeout):
                        link = await connect(self._redis)
                except TimeoutError:
                    raise RedisTimeoutError("no connection in time") from None
                self._link = link
            return link

    def close(self) -> None:
        """Drop the link; what waits on it fails, and later calls fail at once."""
        self._closed = True
        if self._link is not None:
            self._link.close()
            self._link = None


def _expire(link: Link) -> None:
    """A call on ``link`` had no reply in time: close it, failing every call on it.
    The error is made here, not for every call (redis-py's exceptions run their
    ``__init__`` in Python: ~0.5 % of a node's time when it pairs; py-spy)."""
    link.close(RedisTimeoutError("no reply in time"))


async def connect(redis: Redis, on_message: Callable[[Any, Any], None] | None = None
                  ) -> Link:
    """A :class:`Link` to the server that ``redis``'s pool connects to, authenticated
    as it is, on its database. Raises ``OSError``, ``ConnectionError`` or
    ``ResponseError`` (bad credentials); the caller bounds the wait."""
    pool = redis.connection_pool
    kwargs = pool.connection_kwargs
    loop = asyncio.get_running_loop()
    link = Link(on_message, "utf-8" if kwargs.get("decode_responses") else None)
    if issubclass(pool.connection_class, UnixDomainSocketConnection):
        await loop.create_unix_connection(lambda: link, kwargs["path"])
    else:
        ssl = None
        if issubclass(pool.connection_class, SSLConnection):
            ssl = pool.connection_class(**kwargs).ssl_context.get()
        await loop.create_connection(lambda: link, kwargs.get("host", "localhost"),
                                     kwargs.get("port", 6379), ssl=ssl)
    try:
        password, username = kwargs.get("password"), kwargs.get("username")
        if password is not None:
            await link.command(*(("AUTH", username, password) if username
                                 else ("AUTH", password)))
        if int(kwargs.get("db") or 0):  # pub/sub ignores it; keys do not
            await link.command("SELECT", int(kwargs["db"]))
    except BaseException:
        link.close()
        raise
    return link
