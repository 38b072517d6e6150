"""Hearth from several source trees against the floor, windows interleaved.

    git worktree add /tmp/before HEAD~3
    python loadtests/compare.py /tmp/before .            # before and after, same run
    python loadtests/compare.py --rate 4000 --repeat 5 .
    python loadtests/compare.py --cross /tmp/before .    # two nodes + Redis a tree

On a shared two-core machine the server CPU per message moves by +-10 %
between runs of the same code, so a change of a few percent shows only when
both versions are measured minutes apart in one run: this opens the same
rooms on every server (pinned to core 0, the load on core 1, as bench.py) and
measures them in turn, ``--repeat`` times, then prints each one's median CPU
per delivered message, its ratio to the floor, and every window's p99.
With ``--cross`` each tree runs as bench.py's cross-node scenario: two nodes
and a redis-server of its own, seekers on one node and listeners on the other,
CPU summed over the three (the floor stays one process).
Bounded in count and time; 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

from procs import Pinned, PinnedRedis, pin_self, raise_nofile
from relay import (
    Recorder,
    Rooms,
    floor_rooms,
    hearth_rooms,
    interleaved,
    measure,
    tree_arguments,
)


async def compare(trees: list[Path], rooms: int, rate: float, seconds: float,
                  repeat: int) -> list[tuple[str, list[dict[str, Any]]]]:
    raise_nofile(65536)
    pin_self()
    servers = [Pinned("--rate", "1000/1", root=tree) for tree in trees]
    servers.append(Pinned(floor=True))
    names = [str(tree) for tree in trees] + ["floor"]

    async def window(k: int, i: int, server: Pinned, rooms: Rooms,
                     recorder: Recorder) -> dict[str, Any]:
        return await measure([server.pid], rooms.senders, recorder, rate, seconds, 2.0)

    results = await interleaved(servers, rooms, repeat, window)
    return list(zip(names, results, strict=True))


async def compare_cross(trees: list[Path], rooms: int, rate: float, seconds: float,
                        repeat: int) -> list[tuple[str, list[dict[str, Any]]]]:
    raise_nofile(65536)
    pin_self()
    procs: list[Pinned | PinnedRedis] = []
    pids: list[list[int]] = []
    opened: list[Rooms] = []
    try:
        for tree in trees:
            redis = PinnedRedis().start()
            procs.append(redis)
            a, b = (Pinned("--rate", "1000/1", "--redis", redis.url, "--node-id", f"cmp-{n}",
                           root=tree).start() for n in "ab")
            procs += [a, b]
            pids.append([a.pid, b.pid, redis.pid])
            opened.append(await hearth_rooms(a.port, b.port, a.token("listener", "bench", 1),
                                             rooms, batch=20))
        floor = Pinned(floor=True).start()
        procs.append(floor)
        pids.append([floor.pid])
        opened.append(await floor_rooms(floor.port, rooms))
        recorder = Recorder()
        for r in opened:
            r.listen(recorder)
        results: list[list[dict[str, Any]]] = [[] for _ in opened]
        for _ in range(repeat):
            for i, r in enumerate(opened):
                results[i].append(await measure(pids[i], r.senders, recorder, rate, seconds, 2.0))
    finally:
        for r in opened:
            r.close()
        for proc in procs:
            proc.stop()
    names = [str(tree) for tree in trees] + ["floor"]
    return list(zip(names, results, strict=True))


def main() -> int:
    p = tree_arguments(__doc__.split("\n\n")[0], rooms=1000, rate=2000, seconds=6.0, repeat=3)
    p.add_argument("--cross", action="store_true",
                   help="each tree as two nodes and a Redis (bench.py's cross-node scenario)")
    args = p.parse_args()
    run = compare_cross if args.cross else compare
    results = asyncio.run(run([t.resolve() for t in args.trees], args.rooms, args.rate,
                              args.seconds, args.repeat))
    floor = statistics.median(r["cpu_us_per_msg"] for r in dict(results)["floor"])
    for name, runs in results:
        cpu = statistics.median(r["cpu_us_per_msg"] for r in runs)
        windows = [r["cpu_us_per_msg"] for r in runs]
        ratio = cpu / floor if floor else float("nan")  # a window too short to see CPU
        print(f"{name:30s} {cpu:7.1f} us/msg  {ratio:5.2f}x floor  "
              f"windows {windows}  p99 ms {[r['p99_ms'] for r in runs]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
