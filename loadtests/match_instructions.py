"""Instructions a pairing costs one node on Redis, counted by valgrind: Hearth
from several source trees, a measure that the host's noise does not move.

    git worktree add /tmp/before HEAD~3
    python loadtests/match_instructions.py /tmp/before .
    python loadtests/match_instructions.py --keep build/callgrind .   # + the dumps

bench.py's "through server" scenario in miniature: one Hearth node with
``--redis`` under ``valgrind --tool=callgrind --instr-atstart=no``, a
redis-server of its own natively (Redis is not Hearth's code; bench.py gives
its CPU), listeners on shift and seekers who each, in a loop, request, are
matched, leave and see the room end. For each tree: a warm-up round,
counters zeroed, an idle window (what the node runs a second with nothing to
do: its heartbeat, the queue refresh), then ``--pairs`` pairings counted.
``net`` takes the idle rate off over the pairings' time.

Under valgrind the node is ~50x slower, so few calls share a round trip to
Redis and each pairing is handled mostly alone, as at a light load natively,
not as at 3,000 pairs/s, where a batch of script calls and a flush of the seat
directory carry several. Repeats of the same code agree within ~2 %; compare
trees with it, and keep the targets in bench.py's pairs per second.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from instructions import Counted, counted
from procs import PinnedRedis, pin_self, raise_nofile
from scenarios import hearth_listener, hearth_match, hearth_seeker, ignore
from wsclient import WSClient


async def pairings(seekers: list[WSClient], each: int) -> None:
    async def loop(seeker: WSClient) -> None:
        for _ in range(each):
            matched, _ = await hearth_match(seeker, timeout=60)
            seeker.send_json({"type": "leave", "room": matched["room"]})
            await seeker.expect("ended", 60)

    await asyncio.gather(*(loop(s) for s in seekers))


async def count(tree: Path, name: str, args: argparse.Namespace) -> dict[str, float]:
    redis = PinnedRedis().start()
    out = Path(tempfile.mkdtemp(prefix="hearth-callgrind-"))
    node = Counted("--rate", "1000/1", "--redis", redis.url, root=tree, out_dir=out,
                   keep=args.keep)
    node.start()
    clients: list[WSClient] = []
    try:
        token = node.token("listener", "bench", 1)
        for i in range(args.listeners):
            clients.append(await hearth_listener(node.port, token, f"M{i}", 5))
            clients[-1].on_frame = ignore
        seekers = [await hearth_seeker(node.port) for _ in range(args.seekers)]
        clients += seekers
        each = max(1, args.pairs // args.seekers)

        async def work() -> None:
            await pairings(seekers, each)
            await asyncio.sleep(0.5)  # the last room's end reaches the matcher

        [idle_count], [busy], wall, _ = await counted(
            [node], pairings(seekers, max(1, each // 4)), 1, args.idle, work,
            [f"{name}.pairings.callgrind" if args.keep else None])
        idle = idle_count / args.idle
        done = each * len(seekers)
        return {"pairs": done, "ir_per_pair": busy / done,
                "net_ir_per_pair": (busy - idle * wall) / done, "idle_ir_per_s": idle,
                "seconds": wall}
    finally:
        for c in clients:
            c.abort()
        node.stop()
        redis.stop()
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trees", nargs="+", type=Path, help="source trees (checkouts) of Hearth")
    p.add_argument("--pairs", type=int, default=400, help="pairings counted a tree")
    p.add_argument("--seekers", type=int, default=8)
    p.add_argument("--listeners", type=int, default=10, help="each with room for five")
    p.add_argument("--idle", type=float, default=5.0, help="seconds of the idle window")
    p.add_argument("--keep", type=Path, help="keep each tree's dump of its pairings here "
                   "(callgrind_annotate --inclusive=yes FILE: where the instructions go)")
    args = p.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    if args.keep is not None:
        args.keep = args.keep.resolve()
        args.keep.mkdir(parents=True, exist_ok=True)
    raise_nofile(65536)
    pin_self()
    print("user-space instructions a pairing through one node on Redis (callgrind); "
          f"{args.seekers} seekers, {args.listeners} listeners")
    for i, tree in enumerate(t.resolve() for t in args.trees):
        r = asyncio.run(count(tree, str(i), args))
        print(f"{i}:{tree}  net {r['net_ir_per_pair']:11,.0f}  all {r['ir_per_pair']:11,.0f}"
              f"  idle/s {r['idle_ir_per_s']:11,.0f}  pairs {r['pairs']:.0f}"
              f" in {r['seconds']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
