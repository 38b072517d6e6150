"""matching.resp: the direct Redis connection of the relay's publisher, of every
subscriber, and of the matcher's scripts and the seat directory (``Commands``),
against a real redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from matching import resp
from tests.support.procs import RedisServer, free_port
from tests.support.wait import eventually


async def subscribed(client: aioredis.Redis, *channels: str
                     ) -> tuple[resp.Link, list[tuple[Any, Any]]]:
    heard: list[tuple[Any, Any]] = []
    link = await resp.connect(client, lambda channel, data: heard.append((channel, data)))
    replies = await link.request(resp.pack_command(("SUBSCRIBE", *channels)), len(channels))
    assert [r[0] in (b"subscribe", "subscribe") for r in replies] == [True] * len(channels)
    return link, heard


async def test_published_messages_are_heard_in_order_whatever_their_size() -> None:
    """Three PUBLISHes written at once come back as three counts in one reply list,
    and the subscriber hears them in order, a 1 MB payload (many reads) whole."""
    server = RedisServer().start()
    client = aioredis.Redis.from_url(server.url)
    try:
        sub, heard = await subscribed(client, "c1", "c2")
        pub = await resp.connect(client)
        big = os.urandom(1 << 20)
        batch = [("c1", b"one"), ("c2", big), ("nobody", b"x"), ("c1", b"three")]
        counts = await pub.request(
            b"".join(resp.pack_command(("PUBLISH", c, d)) for c, d in batch), len(batch))
        assert counts == [1, 1, 0, 1]
        await eventually(lambda: len(heard) == 3)
        assert heard == [(b"c1", b"one"), (b"c2", big), (b"c1", b"three")]
        pub.close()
        sub.close()
    finally:
        await client.aclose()
        server.stop()


async def test_an_error_reply_is_returned_or_raised_and_the_link_stays_usable() -> None:
    server = RedisServer().start()
    client = aioredis.Redis.from_url(server.url)
    try:
        link = await resp.connect(client)
        [reply] = await link.request(resp.pack_command(("PUBLISH", "only-a-channel")), 1)
        assert isinstance(reply, hiredis.ReplyError)
        with pytest.raises(ResponseError):
            await link.command("NOSUCHCOMMAND")
        assert await link.command("PING") == b"PONG"
        link.close()
    finally:
        await client.aclose()
        server.stop()


async def test_it_authenticates_over_tcp_and_a_unix_socket_and_decodes_when_asked() -> None:
    """The address and the password come from the redis-py client's URL; a wrong
    password is refused; a client with decode_responses hears str, not bytes."""
    server = RedisServer("--requirepass", "s3cret", "--unixsocket", "SOCK",
                         "--unixsocketperm", "700").start()
    sock = os.path.join(server.dir, "SOCK")
    await eventually(lambda: os.path.exists(sock))
    clients = [aioredis.Redis.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/0"),
               aioredis.Redis.from_url(f"unix://{sock}?password=s3cret",
                                       decode_responses=True)]
    wrong = aioredis.Redis.from_url(f"redis://:wrong@127.0.0.1:{server.port}/0")
    try:
        for client in clients:
            link = await resp.connect(client)
            assert await link.command("PING") in (b"PONG", "PONG")
            link.close()
        sub, heard = await subscribed(clients[1], "t")
        await clients[0].publish("t", "hello")
        await eventually(lambda: heard == [("t", "hello")])
        sub.close()
        with pytest.raises(ResponseError):
            await resp.connect(wrong)
    finally:
        for client in (*clients, wrong):
            await client.aclose()
        server.stop()


async def test_a_lost_connection_fails_what_waits_and_every_later_request() -> None:
    """Redis stopped while a reply is awaited: the waiter fails with ConnectionError,
    ``closed`` is done, and the link refuses further requests."""
    server = RedisServer().start()
    client = aioredis.Redis.from_url(server.url)
    try:
        link = await resp.connect(client)
        waiting = link.request(resp.pack_command(("BLPOP", "nothing", "0")), 1)
        await asyncio.sleep(0.1)
        server.stop()
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(waiting, 5)
        await asyncio.wait_for(link.closed, 5)
        assert link.lost is not None
        with pytest.raises(RedisConnectionError):
            link.request(resp.pack_command(("PING",)), 1)
    finally:
        await client.aclose()
        server.stop()


async def test_it_speaks_tls_to_a_rediss_url(tmp_path: Path) -> None:
    """A ``rediss://`` URL: the link wraps its socket with the SSL context redis-py
    builds from that URL, subscribes over TLS and hears what is published."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    tls_port = free_port()
    server = RedisServer("--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                         "--tls-auth-clients", "no").start()
    plain = aioredis.Redis.from_url(server.url)
    tls = aioredis.Redis.from_url(
        f"rediss://127.0.0.1:{tls_port}/0?ssl_cert_reqs=required&ssl_ca_certs={cert}"
        "&ssl_check_hostname=false")
    try:
        link = await resp.connect(tls)
        assert await link.command("PING") == b"PONG"
        link.close()
        sub, heard = await subscribed(tls, "t")
        await plain.publish("t", "over tls")
        await eventually(lambda: heard == [(b"t", b"over tls")])
        sub.close()
    finally:
        await plain.aclose()
        await tls.aclose()
        server.stop()


async def test_commands_are_answered_in_order_on_their_database_and_survive_a_restart() -> None:
    """resp.Commands: calls from many tasks share one connection, made once, and are
    answered in the order written, an error reply as a value; keys land in the URL's
    database; after a Redis restart the next call connects again and is answered;
    once closed, a call fails at once and connects nothing."""
    server = RedisServer().start()
    client = aioredis.Redis.from_url(server.url.replace("/0", "/3"))
    db3 = aioredis.Redis.from_url(server.url.replace("/0", "/3"))
    commands = resp.Commands(client, 2.0)
    try:
        replies = await asyncio.gather(*(
            commands.run([("SET", f"k{i}", i, "EX", 60), ("INCR", "n"), ("GET", f"k{i}")])
            for i in range(20)))
        assert [r[2] for r in replies] == [str(i).encode() for i in range(20)]
        assert [r[1] for r in replies] == list(range(1, 21))  # the order they were called in
        info = await db3.info("clients")
        assert info["connected_clients"] == 2  # the link and db3's own: one link for all
        assert await db3.get("k7") == b"7" and await db3.ttl("k7") > 0
        [bad, good] = await commands.run([("NOSUCHCOMMAND",), ("PING",)])
        assert isinstance(bad, hiredis.ReplyError) and good == b"PONG"
        assert isinstance(resp.error(bad), ResponseError)
        server.restart()
        assert await commands.run([("SET", "after", "1"), ("GET", "after")]) == [b"OK", b"1"]
        commands.close()  # then no call connects again
        with pytest.raises(RedisConnectionError):
            await commands.run([("PING",)])

        async def only_db3() -> bool:
            return bool((await db3.info("clients"))["connected_clients"] == 1)

        await eventually(only_db3, 5, "the link's connection to close")
    finally:
        commands.close()
        await client.aclose()
        await db3.aclose()
        server.stop()


async def test_commands_on_a_silent_redis_time_out_then_connect_again() -> None:
    """Redis stopped (SIGSTOP: the socket stays open, nothing answers): a call fails
    with redis-py's TimeoutError after the timeout, not retried, and the link is
    dropped; once Redis answers again the next call is served on a new one."""
    server = RedisServer().start()
    assert server.proc is not None
    client = aioredis.Redis.from_url(server.url)
    commands = resp.Commands(client, 0.3)
    try:
        assert await commands.run([("PING",)]) == [b"PONG"]
        server.proc.send_signal(signal.SIGSTOP)
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisTimeoutError):
            await commands.run([("PING",)])
        assert 0.25 < asyncio.get_running_loop().time() - started < 1.5
        server.proc.send_signal(signal.SIGCONT)
        assert await commands.run([("PING",)]) == [b"PONG"]
    finally:
        server.proc.send_signal(signal.SIGCONT)
        commands.close()
        await client.aclose()
        server.stop()
