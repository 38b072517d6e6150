"""Instructions redis-server spends a pairing (the matcher's scripts), counted by
valgrind: matching from several source trees, a measure that the host's noise
does not move.

    git worktree add /tmp/before HEAD~3
    python loadtests/redis_instructions.py /tmp/before .
    python loadtests/redis_instructions.py --keep build/callgrind .   # + the dumps

For each tree: a redis-server of its own under ``valgrind --tool=callgrind``, and
that tree's ``RedisMatcher`` (imported from the tree, in a process of its own)
with 20 listeners on shift and four workers that each, in a loop, request (and
are paired at once) and end the room: ``request`` and ``room_ended``, the two
scripts of a pairing, as in bench.py's "matcher direct" scenario. Run twice,
with ``--few`` and with ``--pairs`` pairings, so that what does not grow with
them (start-up, loading the scripts, the shifts) drops out of the difference.
Every pairing is a call of its own here; under load a node sends several calls
in one write, which this count does not show (Redis's share of the system calls
is outside it anyway: user space only). Timings are in bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from procs import RedisServer, callgrind_total

LISTENERS = 20
WORKERS = 4


async def drive(url: str, pairs: int) -> None:
    """In the tree's own process: the pairings, through its matcher."""
    from matching import Listener, Ticket, open_matcher

    matcher = open_matcher(url, "count-node")
    await matcher.start(lambda: None)
    try:
        for i in range(LISTENERS):
            await matcher.set_shift(Listener(f"l{i}", "count-node", "available", (), (), 5))

        async def worker(w: int) -> None:
            for k in range(pairs // WORKERS):
                ticket = Ticket(f"s{w}-{k}", "count-node", "normal", None, "en", "a hard week")
                matches = await matcher.request(ticket)
                if len(matches) != 1:
                    raise RuntimeError("a request was not paired at once")
                await matcher.room_ended(matches[0].room)

        await asyncio.gather(*(worker(w) for w in range(WORKERS)))
    finally:
        await matcher.close()


def count(tree: Path, pairs: int, dump: Path) -> int:
    """Instructions of a redis-server that served ``pairs`` pairings from ``tree``."""
    redis = RedisServer(under=("valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}"),
                        ready_s=60).start()
    assert redis.proc is not None
    try:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, __file__, "--drive", redis.url, "--pairs", str(pairs)],
                       cwd=tree, env=env, check=True, timeout=600)
        with socket.create_connection(("127.0.0.1", redis.port)) as s:
            s.sendall(b"SHUTDOWN NOSAVE\r\n")  # valgrind writes the dump as it exits
            s.recv(16)
        redis.proc.wait(timeout=60)
    finally:
        if redis.proc.poll() is None:  # the drive failed: no dump is wanted
            redis.proc.kill()
            redis.proc.wait()
        shutil.rmtree(redis.dir, ignore_errors=True)
    total = callgrind_total(dump)
    if total is None:
        raise RuntimeError(f"no complete dump in {dump}")
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trees", nargs="*", type=Path, help="source trees (checkouts) of Hearth")
    p.add_argument("--pairs", type=int, default=1040, help="pairings in the long run")
    p.add_argument("--few", type=int, default=40, help="pairings in the short run")
    p.add_argument("--keep", type=Path, help="keep each tree's dump of the long run here "
                   "(callgrind_annotate --inclusive=yes FILE)")
    p.add_argument("--drive", metavar="URL", help=argparse.SUPPRESS)  # the inner process
    args = p.parse_args()
    if args.drive:
        asyncio.run(drive(args.drive, args.pairs))
        return 0
    if shutil.which("valgrind") is None or shutil.which("redis-server") is None:
        print("needs valgrind and redis-server (Debian: apt-get install valgrind "
              "redis-server)", file=sys.stderr)
        return 2
    if not args.trees or args.pairs <= args.few:
        p.error("give one tree or more, and --pairs above --few")
    out = Path(tempfile.mkdtemp(prefix="hearth-redis-callgrind-"))
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    print(f"redis-server's instructions a pairing (request + room_ended; callgrind), "
          f"{LISTENERS} listeners, {WORKERS} workers")
    try:
        for i, tree in enumerate(t.resolve() for t in args.trees):
            few = count(tree, args.few, out / f"{i}.few.callgrind")
            many = count(tree, args.pairs, out / f"{i}.pairings.callgrind")
            if args.keep is not None:
                shutil.copy(out / f"{i}.pairings.callgrind", args.keep)
            done = (args.pairs // WORKERS - args.few // WORKERS) * WORKERS
            print(f"{i}:{tree}  {(many - few) / done:11,.0f}  ({args.pairs} and {args.few} "
                  "pairings)", flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
