"""What a cross-node flush costs the sending and the receiving node, the relay alone.

    python loadtests/relay_flush.py [--gaps 5,10,20] [--rate 2000] [--seconds 6]

Starts its own redis-server, then for each flush gap (``FLUSH_GAP_S``, in ms) two
processes on the server core, each with a ``RedisRelay`` as a node has: a sender
posting ``--rate`` events a second (an ``out`` event carrying a message frame's
JSON, made by ``crossnode.out_event`` as ``CrossNode.deliver`` makes it, a few at
a time as a node's connections would) to the receiver's inbox, and the
receiver, whose ``on_event`` only counts. Prints each one's CPU per second over the
same window, the PUBLISH commands Redis served per second (``INFO commandstats``),
and between one gap and the next the CPU each flush avoided saved. No WebSockets,
rooms or checks: what is left of the cross-node cost beyond this is the nodes' own
handling of the events. Timings are printed, never judged.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import redis
import uvloop
from procs import ROOT, SERVER_CPU, PinnedRedis, pin_self

FRAME = {"type": "message", "room": "r-0123456789abcdef", "seq": 1234, "ts": 1764600000000,
         "from": {"role": "seeker", "alias": "Quiet Otter"},
         "text": "I keep going over what happened at work today and it will not stop.",
         "id": "1764600000000123-42"}
WARM_S = 1.0


async def node(role: str, url: str, gap_s: float, rate: float, seconds: float) -> None:
    sys.path.insert(0, str(ROOT))
    from chatserver import relay_redis
    from chatserver.crossnode import out_event
    from chatserver.protocol import Outgoing

    relay_redis.FLUSH_GAP_S = gap_s
    got = [0]
    relay = relay_redis.RedisRelay(url, role)
    await relay.start(lambda event: got.__setitem__(0, got[0] + 1))
    loop = asyncio.get_running_loop()
    if role == "recv":
        print("ready", flush=True)
        while got[0] == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(WARM_S)
        c0, n0 = time.process_time(), got[0]
        await asyncio.sleep(seconds)
        cpu, n = time.process_time() - c0, got[0] - n0
        print(f"{1e3 * cpu / seconds:.1f} {n / seconds:.0f}", flush=True)
    else:
        out, to = Outgoing(FRAME), ["s-0123456789abcdef0123"]
        start, posted = loop.time(), 0
        c0: float | None = None  # CPU time when the measured window opened
        cpu: float | None = None  # and what the window took
        while loop.time() < start + WARM_S + seconds + 1.0:  # the receiver's window, and more
            due = int((loop.time() - start) * rate)
            while posted < due:
                relay.post("recv", out_event(to, out))  # an event a post, as a node makes
                posted += 1
            elapsed = loop.time() - start
            if c0 is None and elapsed >= WARM_S:
                c0 = time.process_time()
            elif c0 is not None and cpu is None and elapsed >= WARM_S + seconds:
                cpu = time.process_time() - c0
            await asyncio.sleep(0.002)
        assert cpu is not None
        print(f"{1e3 * cpu / seconds:.1f}", flush=True)
    await relay.close()


def publishes(r: redis.Redis) -> int:
    stats = r.info("commandstats").get("cmdstat_publish")
    return int(stats["calls"]) if stats else 0


def run_gap(url: str, r: redis.Redis, gap_ms: float, rate: float,
            seconds: float) -> dict[str, float]:
    base = ["taskset", "-c", str(SERVER_CPU), sys.executable, __file__, "--url", url,
            "--gap", str(gap_ms / 1000), "--rate", str(rate), "--seconds", str(seconds)]
    recv = subprocess.Popen([*base, "--role", "recv"], stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None
    assert recv.stdout.readline().strip() == "ready"
    send = subprocess.Popen([*base, "--role", "send"], stdout=subprocess.PIPE, text=True)
    time.sleep(WARM_S + 0.5)
    p0, t0 = publishes(r), time.perf_counter()
    recv_out, _ = recv.communicate(timeout=seconds + 30)
    p1, t1 = publishes(r), time.perf_counter()
    send_out, _ = send.communicate(timeout=30)
    recv_ms, events = (float(x) for x in recv_out.split())
    return {"gap_ms": gap_ms, "send_ms_per_s": float(send_out), "recv_ms_per_s": recv_ms,
            "events_per_s": events, "flushes_per_s": (p1 - p0) / (t1 - t0)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gaps", default="5,10,20", help="flush gaps in ms, comma-separated")
    p.add_argument("--rate", type=float, default=2000, help="events posted per second")
    p.add_argument("--seconds", type=float, default=6)
    p.add_argument("--role", choices=["send", "recv"], help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--gap", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role:
        uvloop.run(node(args.role, args.url, args.gap, args.rate, args.seconds))
        return 0
    pin_self()
    server = PinnedRedis().start()
    try:
        r = redis.Redis.from_url(server.url)
        rows = [run_gap(server.url, r, float(g), args.rate, args.seconds)
                for g in args.gaps.split(",")]
    finally:
        server.stop()
    prev = None
    for row in rows:
        line = (f"gap {row['gap_ms']:4.0f} ms: {row['events_per_s']:6.0f} events/s in "
                f"{row['flushes_per_s']:5.0f} flushes/s; sender {row['send_ms_per_s']:5.1f}, "
                f"receiver {row['recv_ms_per_s']:5.1f} ms CPU/s")
        if prev is not None and prev["flushes_per_s"] > row["flushes_per_s"]:
            fewer = prev["flushes_per_s"] - row["flushes_per_s"]
            send_us = 1e3 * (prev["send_ms_per_s"] - row["send_ms_per_s"]) / fewer
            recv_us = 1e3 * (prev["recv_ms_per_s"] - row["recv_ms_per_s"]) / fewer
            line += f"; each flush fewer saved {send_us:.0f} us sending, {recv_us:.0f} us receiving"
        print(line, flush=True)
        prev = row
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
