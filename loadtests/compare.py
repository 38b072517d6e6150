"""Hearth from several source trees against the floor, windows interleaved.

    git worktree add /tmp/before HEAD~3
    python loadtests/compare.py /tmp/before .            # before and after, same run
    python loadtests/compare.py --rate 4000 --repeat 5 .

On a shared two-core machine the server CPU per message moves by +-10 %
between runs of the same code, so a change of a few percent shows only when
both versions are measured minutes apart in one run: this opens the same
rooms on every server (pinned to core 0, the load on core 1, as bench.py) and
measures them in turn, ``--repeat`` times, then prints each one's median CPU
per delivered message, its ratio to the floor, and every window's p99.
Bounded in count and time; 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path
from typing import Any

from procs import Pinned, pin_self, raise_nofile
from relay import Recorder, Rooms, floor_rooms, hearth_rooms, measure


async def compare(trees: list[Path], rooms: int, rate: float, seconds: float,
                  repeat: int) -> list[tuple[str, list[dict[str, Any]]]]:
    raise_nofile(65536)
    pin_self()
    servers = [Pinned("--rate", "1000/1", root=tree) for tree in trees]
    servers.append(Pinned(floor=True))
    names = [str(tree) for tree in trees] + ["floor"]
    opened: list[Rooms] = []
    try:
        for server in servers:
            server.start()
        for server, name in zip(servers, names, strict=True):
            if name == "floor":
                opened.append(await floor_rooms(server.port, rooms))
            else:
                token = server.token("listener", "compare", 1)
                opened.append(await hearth_rooms(server.port, server.port, token, rooms))
        recorder = Recorder()
        for r in opened:
            r.listen(recorder)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for _ in range(repeat):
            for server, name, r in zip(servers, names, opened, strict=True):
                runs[name].append(await measure([server.pid], r.senders, recorder, rate,
                                                seconds, 2.0))
        return [(name, runs[name]) for name in names]
    finally:
        for r in opened:
            r.close()
        for server in servers:
            server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trees", nargs="+", type=Path, help="source trees (checkouts) of Hearth")
    p.add_argument("--rooms", type=int, default=1000)
    p.add_argument("--rate", type=float, default=2000, help="messages sent per second")
    p.add_argument("--seconds", type=float, default=6.0, help="length of one window")
    p.add_argument("--repeat", type=int, default=3, help="windows per server")
    args = p.parse_args()
    results = asyncio.run(compare([t.resolve() for t in args.trees], args.rooms, args.rate,
                                  args.seconds, args.repeat))
    floor = statistics.median(r["cpu_us_per_msg"] for r in dict(results)["floor"])
    for name, runs in results:
        cpu = statistics.median(r["cpu_us_per_msg"] for r in runs)
        windows = [r["cpu_us_per_msg"] for r in runs]
        print(f"{name:30s} {cpu:7.1f} us/msg  {cpu / floor:5.2f}x floor  "
              f"windows {windows}  p99 ms {[r['p99_ms'] for r in runs]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
