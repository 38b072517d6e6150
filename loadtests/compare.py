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

import asyncio
import statistics
from pathlib import Path
from typing import Any

from procs import Pinned, pin_self, raise_nofile
from relay import Recorder, Rooms, interleaved, measure, tree_arguments


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


def main() -> int:
    p = tree_arguments(__doc__.split("\n\n")[0], rooms=1000, rate=2000, seconds=6.0, repeat=3)
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
