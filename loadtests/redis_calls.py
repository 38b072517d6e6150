"""What one Redis call costs the calling process, through redis-py and without it.

    python loadtests/redis_calls.py [--calls 5000] [--repeat 3]

Starts its own redis-server pinned to the server core, pins itself to the load
core (as bench.py does), and prints the client's CPU time (utime+stime) and
wall time per call for: a SET through redis-py, the same SET in a one-command
pipeline, an EVALSHA of ``return 1``, and the same SET written and read on a
bare asyncio socket with hiredis's reply parser (what any client must pay:
system calls and the loop's wake-up). The difference between the first and the
last is redis-py's own cost. Then what a cross-node flush costs (the relay's
PUBLISH of ~400 bytes): in a one-command pipeline as the relay sends it,
through ``Redis.publish``, on a connection taken from the pool
(``send_packed_command`` and ``read_response``), and a PUBLISH followed by the
subscriber's ``get_message`` for it (the reader's part is the difference).
Timings are printed, never judged.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import hiredis
import redis.asyncio as aioredis
import uvloop
from procs import PinnedRedis, pin_self

VALUE = b"x" * 200  # about a seat record
EVENTS = b"y" * 400  # about one flush of a few cross-node events


async def per_call(label: str, n: int, call: Callable[[int], Awaitable[object]]) -> None:
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        await call(i)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    print(f"{label:28} client CPU {1e6 * cpu / n:7.1f} us/call   "
          f"wall {1e6 * wall / n:7.1f} us/call", flush=True)


async def main_async(calls: int, repeat: int) -> None:
    pin_self()
    server = PinnedRedis().start()
    try:
        r = aioredis.Redis.from_url(server.url)
        sha = await r.script_load("return 1")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        parser = hiredis.Reader()

        async def pipelined(i: int) -> object:
            async with r.pipeline(transaction=False) as pipe:
                pipe.set(f"bench:{i % 100}", VALUE, ex=60)
                return await pipe.execute()

        async def raw(i: int) -> object:
            key = f"bench:{i % 100}".encode()
            writer.write(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nEX\r\n$2\r\n60\r\n"
                         % (len(key), key, len(VALUE), VALUE))
            while (reply := parser.gets()) is False:
                parser.feed(await reader.read(65536))
            return reply

        async def publish_pipelined(i: int) -> object:
            async with r.pipeline(transaction=False) as pipe:
                pipe.publish("bench:inbox", EVENTS)
                return await pipe.execute()

        conn = await r.connection_pool.get_connection()

        async def publish_on_connection(i: int) -> object:
            await conn.send_packed_command(conn.pack_command("PUBLISH", "bench:inbox", EVENTS))
            return await conn.read_response()

        sub = aioredis.Redis.from_url(server.url)
        pubsub = sub.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe("bench:heard")
        await asyncio.sleep(0.1)  # until the subscription is confirmed

        async def publish_and_hear(i: int) -> object:
            await r.publish("bench:heard", EVENTS)
            while (message := await pubsub.get_message(timeout=1.0)) is None:
                pass
            return message

        for _ in range(repeat):
            await per_call("redis-py SET", calls,
                           lambda i: r.set(f"bench:{i % 100}", VALUE, ex=60))
            await per_call("redis-py pipeline of 1 SET", calls, pipelined)
            await per_call("redis-py EVALSHA", calls, lambda i: r.evalsha(sha, 0, "a", "b"))
            await per_call("bare socket + hiredis SET", calls, raw)
            await per_call("PUBLISH, pipeline of 1", calls, publish_pipelined)
            await per_call("PUBLISH, Redis.publish", calls,
                           lambda i: r.publish("bench:inbox", EVENTS))
            await per_call("PUBLISH, pool connection", calls, publish_on_connection)
            await per_call("PUBLISH + get_message", calls, publish_and_hear)
        await r.connection_pool.release(conn)
        await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await sub.aclose()
        writer.close()
        await r.aclose()
    finally:
        server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    uvloop.run(main_async(args.calls, args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
