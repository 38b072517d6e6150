"""What a pairing through one node on Redis costs, by the rate requests arrive at.

    python loadtests/pairing_rates.py [--rates 500,1000,2000,3000] [--seconds 4]

Starts its own redis-server and one Hearth node with ``--redis``, both pinned
to the server core (as bench.py does), connects ``--listeners`` listeners of
capacity 5 and ``--seekers`` seekers from the load core, then for each rate
runs an open loop: every seeker asks every seekers / rate seconds, their
phases spread evenly, leaves as soon as it is matched and waits for
``ended``. For each rate it prints the pairs a second it got, the node's and
Redis's share of the core and their CPU microseconds a pairing, the match
latency p50 / p99 (from when each request was due), the Redis commands a
pairing (``INFO commandstats``, reset before each rate; the commands inside
the Lua scripts are counted too) and Redis's reads from its clients a pairing
(``total_reads_processed``: about one a round trip, as a client waits for each
reply before it writes again), the requests sent late (``relay.LATE_S``) and
the matches that did not come within 10 s (counted, cancelled). With
``--bursts`` it also lists the 100 ms stretches of each window that held
matches over 10 ms: whether the slow ones come spread out or together. Each seeker's
loop is the bench's (``relay.pair_until``). Then the closed loop of bench.py (the
first ``--closed`` seekers, each asking again at once) for comparison, where
requests come in bursts and the node batches its Redis calls. ``--redis-cpu
1`` puts redis-server on the load core instead: a diagnostic of what sharing
the node's core costs, not the bench's set-up.

Measured on 2026-12-06 (docs/performance.md, "Where the time goes now"): a
pairing cost the node 3-5 times as much at 500 a second as in the closed
loop. That CPU follows what the core has spare (a busy loop beside the server
nearly halved it at 2,000 a second): below capacity it says how small the
node's batches could be, not what a pairing needs; the closed loop's pairs a
second are the capacity. Timings are printed, never judged.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from typing import Any

import redis.asyncio as aioredis
from procs import (
    SERVER_CPU,
    Pinned,
    PinnedRedis,
    cpu_seconds,
    hold_gc,
    pin_self,
    raise_nofile,
)
from relay import (
    Pairings,
    gather_limited,
    hearth_listener,
    hearth_seeker,
    ignore,
    pair_until,
    percentile,
)
from wsclient import WSClient

CAPACITY = 5


def bursts(tally: Pairings, slow_ms: float = 10.0, width_s: float = 0.1) -> str:
    """The ``width_s`` stretches of a window that held matches over ``slow_ms``,
    as ``start s: how many x the worst ms``, by when each pairing ended."""
    if not tally.done_s:
        return "no pairings"
    start = min(tally.done_s) - 1e-9
    worst: dict[int, list[float]] = {}
    for done, took in zip(tally.done_s, tally.lat_ns, strict=True):
        if took / 1e6 > slow_ms:
            worst.setdefault(int((done - start) / width_s), []).append(took / 1e6)
    stretches = int((max(tally.done_s) - start) / width_s) + 1
    return (f"{len(worst)} of {stretches} stretches of {1000 * width_s:.0f} ms held matches "
            f"over {slow_ms:.0f} ms" + (": " if worst else "")
            + " ".join(f"{k * width_s:.1f}s: {len(v)} x {max(v):.0f}"
                       for k, v in sorted(worst.items())))


async def phase(server: Pinned, redis: PinnedRedis, seekers: list[WSClient],
                rate: float | None, seconds: float, show_bursts: bool = False) -> str:
    """One window: an open loop at ``rate`` pairings a second, or with ``rate``
    None a closed loop; one line of what it cost."""
    gc.collect()  # before the window, not in it (procs.hold_gc)
    client = aioredis.Redis.from_url(redis.url)
    await client.config_resetstat()
    reads0 = (await client.info("stats"))["total_reads_processed"]
    tally = Pairings()
    n = len(seekers)
    interval = n / rate if rate else None
    pids = [server.pid, redis.pid]
    cpu0 = [cpu_seconds(p) for p in pids]
    t0 = time.perf_counter()
    await asyncio.gather(*(
        pair_until(s, t0 + seconds, tally, interval=interval,
                   phase=interval * k / n if interval else 0.0, timeout=10)
        for k, s in enumerate(seekers)))
    wall = time.perf_counter() - t0
    lat = tally.lat_ns
    node, db = (cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True))
    stats: dict[str, Any] = await client.info("commandstats")
    reads = (await client.info("stats"))["total_reads_processed"] - reads0
    await client.aclose()
    pairs = max(1, len(lat))
    commands = sorted(((k.removeprefix("cmdstat_"), v["calls"] / pairs)
                       for k, v in stats.items()), key=lambda kv: -kv[1])
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    label = f"{rate:.0f} a second" if rate else f"closed loop, {n} seekers"
    return (f"{label:26} {len(lat) / wall:6.0f} pairs/s  node {100 * node / wall:3.0f} % "
            f"{1e6 * node / pairs:5.0f} us/pairing  Redis {100 * db / wall:3.0f} % "
            f"{1e6 * db / pairs:5.0f} us/pairing  match p50 / p99 "
            f"{(p50 or 0) / 1e6:.1f} / {(p99 or 0) / 1e6:.1f} ms\n"
            f"{'':26} Redis reads a pairing {reads / pairs:.2f}; "
            + (f"{tally.late} of {tally.requests} requests late; " if rate else "")
            + f"{tally.timeouts} timeouts; commands a pairing: "
            + ", ".join(f"{name} {calls:.2f}" for name, calls in commands if calls >= 0.05)
            + (f"\n{'':26} {bursts(tally)}" if show_bursts else ""))


async def main_async(args: argparse.Namespace) -> int:
    pin_self()
    hold_gc()
    raise_nofile()
    redis = PinnedRedis(args.redis_cpu)
    redis.start()
    print(f"redis-server on cores {sorted(os.sched_getaffinity(redis.pid))}, "
          f"the node on core {SERVER_CPU}", flush=True)
    server = Pinned("--rate", "1000/1", "--redis", redis.url)
    clients: list[WSClient] = []
    try:
        server.start()
        token = server.token("listener", "rates", 1)
        for i in range(args.listeners):
            listener = await hearth_listener(server.port, token, f"R{i}", CAPACITY)
            listener.on_frame = ignore
            clients.append(listener)
        seekers = await gather_limited([lambda: hearth_seeker(server.port)] * args.seekers, 50)
        clients += seekers
        for rate in args.rates:
            print(await phase(server, redis, seekers, rate, args.seconds, args.bursts),
                  flush=True)
        print(await phase(server, redis, seekers[:args.closed], None, args.seconds,
                          args.bursts), flush=True)
    finally:
        for c in clients:
            c.abort()
        server.stop()
        redis.stop()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=lambda v: [float(r) for r in v.split(",")],
                   default=[500.0, 1000.0, 2000.0, 3000.0],
                   help="pairings a second, comma-separated")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each window")
    p.add_argument("--seekers", type=int, default=150)
    p.add_argument("--listeners", type=int, default=40, help=f"of capacity {CAPACITY} each")
    p.add_argument("--closed", type=int, default=50, help="seekers in the closed loop")
    p.add_argument("--redis-cpu", type=int, default=SERVER_CPU,
                   help="the core redis-server is pinned to: the node's, as bench.py has it, "
                        "or another, to see what sharing the core costs")
    p.add_argument("--bursts", action="store_true",
                   help="list the 100 ms stretches that held matches over 10 ms")
    args = p.parse_args()
    if args.listeners * CAPACITY < args.seekers:
        p.error(f"--listeners x {CAPACITY} must hold every seeker at once")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
