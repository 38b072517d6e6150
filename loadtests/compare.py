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
CPU summed over the three (the floor stays one process), then each one's part.
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
    hearth_rooms,
    interleaved,
    measure,
    pinned_rooms,
    tree_arguments,
)


class CrossNodes:
    """One tree as bench.py's cross-node scenario: two nodes and a redis-server of
    their own, started and stopped together."""

    def __init__(self, tree: Path) -> None:
        self.redis = PinnedRedis()
        self.nodes = [self.node(n, tree) for n in "ab"]

    def node_args(self, name: str) -> tuple[str, ...]:
        """The command line of node ``name`` (a or b) on this Redis."""
        return ("--rate", "1000/1", "--redis", self.redis.url, "--node-id", f"cmp-{name}")

    def node(self, name: str, tree: Path) -> Pinned:
        return Pinned(*self.node_args(name), root=tree)

    def start(self) -> CrossNodes:
        self.redis.start()
        for node in self.nodes:
            node.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        for node in self.nodes:
            node.stop(timeout=timeout)
        self.redis.stop()

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes] + [self.redis.pid]


async def open_rooms(server: Pinned | CrossNodes, n_rooms: int) -> Rooms:
    """Seekers on one node and listeners on the other for two nodes, else as ever."""
    if isinstance(server, CrossNodes):
        a, b = server.nodes
        return await hearth_rooms(a.port, b.port, a.token("listener", "bench", 1), n_rooms,
                                  batch=20)
    return await pinned_rooms(server, n_rooms)


async def compare(trees: list[Path], rooms: int, rate: float, seconds: float, repeat: int,
                  cross: bool = False) -> list[tuple[str, list[dict[str, Any]]]]:
    raise_nofile(65536)
    pin_self()
    servers: list[Pinned | CrossNodes] = [
        CrossNodes(tree) if cross else Pinned("--rate", "1000/1", root=tree) for tree in trees]
    servers.append(Pinned(floor=True))
    names = [str(tree) for tree in trees] + ["floor"]

    async def window(k: int, i: int, server: Pinned | CrossNodes, rooms: Rooms,
                     recorder: Recorder) -> dict[str, Any]:
        pids = server.pids if isinstance(server, CrossNodes) else [server.pid]
        return await measure(pids, rooms.senders, recorder, rate, seconds, 2.0)

    results = await interleaved(servers, rooms, repeat, window, open_rooms=open_rooms)
    return list(zip(names, results, strict=True))


def main() -> int:
    p = tree_arguments(__doc__.split("\n\n")[0], rooms=1000, rate=2000, seconds=6.0, repeat=3)
    p.add_argument("--cross", action="store_true",
                   help="each tree as two nodes and a Redis (bench.py's cross-node scenario)")
    args = p.parse_args()
    results = asyncio.run(compare([t.resolve() for t in args.trees], args.rooms, args.rate,
                                  args.seconds, args.repeat, cross=args.cross))
    floor = statistics.median(r["cpu_us_per_msg"] for r in dict(results)["floor"])
    for name, runs in results:
        cpu = statistics.median(r["cpu_us_per_msg"] for r in runs)
        windows = [r["cpu_us_per_msg"] for r in runs]
        ratio = cpu / floor if floor else float("nan")  # a window too short to see CPU
        print(f"{name:30s} {cpu:7.1f} us/msg  {ratio:5.2f}x floor  "
              f"windows {windows}  p99 ms {[r['p99_ms'] for r in runs]}")
        if args.cross and name != "floor":  # the medians of each process's part
            parts = zip(*(r["cpu_us_per_msg_each"] for r in runs), strict=True)
            print(f"{'':30s} node a, node b, redis: "
                  f"{[round(statistics.median(p), 1) for p in parts]} us/msg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
