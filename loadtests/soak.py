"""A night on one node: many short sessions, and the server's memory as they go.

    python loadtests/soak.py [--sessions 20000] [--at-once 40] [--every 2000] [--redis]

Starts Hearth pinned to the server core (embedded; with ``--redis`` on a
redis-server of its own), puts ``LISTENERS`` listeners on shift, and runs seeker
sessions ``--at-once`` at a time: request with a note, matched, a typing frame
each way, three messages (the listener answers each room once), then leave
(four in five) or lose the connection (one in five: the seat ends when its
resume window, 2 s here, runs out). At every ``--every`` sessions it prints one
JSON line: sessions done, the server's RSS, sessions a second, and what
``/metrics`` says is open (rooms, connections). At the end, RSS growth from the
first checkpoint to the last per 1,000 sessions. Numbers, not pass/fail: a leak
shows as growth that goes on (a small one hides in the allocator's noise);
``tests/test_long_shift.py`` is the test that fails on one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.request
from typing import Any

from procs import Pinned, PinnedRedis, pin_self, raise_nofile, rss_bytes
from relay import hearth_listener, hearth_match, hearth_seeker
from wsclient import WSClient

LISTENERS, CAPACITY = 20, 5
TEXTS = ("Thanks for being here.", "It has been a long week.", "That helps, really.")


def open_now(port: int) -> dict[str, float]:
    """Rooms and connections open on the node, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {"connections": 0.0}
    for line in text.splitlines():
        if line.startswith("hearth_rooms "):
            out["rooms"] = float(line.split()[1])
        elif m := re.match(r'hearth_connections\{role="(\w+)"\} (\S+)', line):
            out["connections"] += float(m.group(2))
    return out


def answering(c: WSClient) -> None:
    """The listener types and says one thing in every new room, and reads the rest unparsed."""

    def on_frame(payload: bytes) -> None:
        if b'"matched"' in payload:
            frame = json.loads(payload)
            if frame.get("type") == "matched":
                c.send_json({"type": "typing", "room": frame["room"]})
                c.send_json({"type": "message", "room": frame["room"], "text": "I'm listening."})

    c.on_frame = on_frame


async def session(port: int, n: int) -> None:
    s = await hearth_seeker(port)
    try:
        matched, _ = await hearth_match(s, timeout=30)
        room = matched["room"]
        s.send_json({"type": "typing", "room": room})
        for i, text in enumerate(TEXTS):
            s.send_json({"type": "message", "room": room, "text": text, "id": f"{n}-{i}"})
            await s.expect("message")
        if n % 5 == 4:
            s.abort()  # lost: the seat ends after the resume window
            return
        s.send_json({"type": "leave", "room": room})
        await s.expect("ended")
        s.close()
        await asyncio.wait_for(s.lost, 10)  # the server's close: a goodbye, the seat ends now
    finally:
        s.abort()  # a no-op unless the session failed


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    redis = PinnedRedis().start() if args.redis else None
    server_args = ["--rate", "1000/1", "--resume-s", "2"]
    if redis is not None:
        server_args += ["--redis", redis.url]
    server = Pinned(*server_args).start()
    lines: list[dict[str, Any]] = []
    listeners: list[WSClient] = []
    try:
        token = server.token("listener", "soak", 8)
        for i in range(LISTENERS):
            c = await hearth_listener(server.port, token, f"L{i}", CAPACITY)
            answering(c)
            listeners.append(c)
        done = last_done = 0
        t0 = last_t = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()
        next_n = 0
        while done < args.sessions:
            while len(pending) < args.at_once and next_n < args.sessions:
                pending.add(asyncio.create_task(session(server.port, next_n)))
                next_n += 1
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                task.result()  # a failed session stops the soak: say so, not average it away
            before = done
            done += len(finished)
            if done // args.every > before // args.every or done == args.sessions:
                now = time.perf_counter()
                line = {"scenario": "soak", "sessions": done, "rss_mb": round(
                    rss_bytes(server.pid) / 2**20, 1), "sessions_per_s": round(
                    (done - last_done) / (now - last_t)), **open_now(server.port),
                    "elapsed_s": round(now - t0, 1)}
                last_t, last_done = now, done
                lines.append(line)
                print(json.dumps(line), flush=True)
        await asyncio.sleep(3)  # the lost seats' resume windows run out
        end = {"scenario": "soak_end", "rss_mb": round(rss_bytes(server.pid) / 2**20, 1),
               **open_now(server.port)}
        lines.append(end)
        print(json.dumps(end), flush=True)
    finally:
        for c in listeners:
            c.abort()
        server.stop()
        if redis is not None:
            redis.stop()
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=20_000)
    p.add_argument("--at-once", type=int, default=40)
    p.add_argument("--every", type=int, default=2_000)
    p.add_argument("--redis", action="store_true", help="a node on a redis-server of its own")
    args = p.parse_args(argv)
    pin_self()
    raise_nofile()
    lines = asyncio.run(run(args))
    points = [line for line in lines if line["scenario"] == "soak"]
    if len(points) >= 2:
        first, last = points[0], points[-1]
        per_k = (last["rss_mb"] - first["rss_mb"]) / ((last["sessions"] - first["sessions"]) / 1000)
        print(f"RSS {first['rss_mb']} MB after {first['sessions']} sessions, {last['rss_mb']} MB "
              f"after {last['sessions']}: {per_k:+.2f} MB per 1,000 sessions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
