"""Instructions per delivered message, counted by valgrind: Hearth from several
source trees against the floor, a measure that the host's noise does not move.

    git worktree add /tmp/before HEAD~3
    python loadtests/instructions.py /tmp/before .       # before and after
    python loadtests/instructions.py --rooms 200 --rate 100 --keep build/callgrind .
    python loadtests/instructions.py --cross --keep build/callgrind .   # two nodes + Redis

CPU time on this shared two-core machine moves by +-10 % between runs of the
same code (docs/performance.md, "Noise"), and the machine has no hardware
counters (``perf stat -e instructions``: not supported). Callgrind counts the
instructions a process executes in user space, whatever else the host does:
each server runs under ``valgrind --tool=callgrind --instr-atstart=no``, the
same rooms are opened on every one (natively fast, instrumentation off), then
for each server in turn instrumentation is switched on, a warm-up window is
sent, the counters are zeroed, one idle window and one paced window are
counted (``callgrind_control --zero`` / ``--dump``), and instrumentation is
switched off again.

What it is and is not: user-space instructions only (the kernel's socket work,
38 % of the floor's samples in ``perf``, is not in them), and instructions are not
time (a cache miss costs many); under valgrind a server is ~50x slower, so the
paced rate is low (``--rate``, default 40 a second) and each message is mostly
handled alone, as at 1,000 rooms x 1 msg/s natively, not as at saturation. The
``idle`` column is what a server executes a second with nothing sent (timers,
the loop, the pings uvicorn sends every connection every 20 s: keep windows a
multiple of 20 s, or the ping rounds a window happens to hold move it by
several percent); ``net`` takes it off. Repeats of the same code agree
within 0.4 %. Use it to compare versions of Hearth with each
other and with the floor; the targets stay in CPU time (``bench.py``).

With ``--cross`` each tree runs as bench.py's cross-node scenario (compare.py's
``CrossNodes``): seekers on node a, listeners (the rooms' homes) on node b, both
under callgrind, and a redis-server of their own, natively (Redis is not Hearth's
code; compare.py --cross gives its CPU). A window's count is the two nodes'
together; each node's is printed too, and ``--keep`` keeps both dumps
(``N.a.windowK``, ``N.b.windowK``). At this paced rate almost every cross-node
event is flushed alone, where at 1,000 rooms natively a flush carries a dozen:
the flush's own instructions weigh more here than in ``bench.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from compare import CrossNodes, open_rooms
from procs import Pinned, callgrind_total, pin_self, raise_nofile
from relay import Recorder, Rooms, interleaved, paced, tree_arguments

T = TypeVar("T")

VALGRIND = ("valgrind", "-q", "--tool=callgrind", "--instr-atstart=no", "--dump-line=no")


class Counted(Pinned):
    """A server (Hearth from ``root``, or the floor) under callgrind, instrumentation off."""

    def __init__(self, *args: str, out_dir: Path, keep: Path | None = None, **kw: Any) -> None:
        self.out_dir = out_dir
        self.keep = keep  # where the paced windows' dumps go, for callgrind_annotate
        out = out_dir / "callgrind.out"
        super().__init__(*args, wrap=(*VALGRIND, f"--callgrind-out-file={out}"),
                         ready_s=180, **kw)

    def control(self, *what: str) -> None:
        done = subprocess.run(["callgrind_control", *what, str(self.pid)], timeout=120,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"callgrind_control {' '.join(what)}: {done.stderr.strip()}")

    def dumped(self, keep_as: str | None = None) -> int:
        """Dump the counters since the last zero or dump; the instructions counted.
        The dump is moved to ``keep/keep_as`` if both are given, else removed."""
        before = set(self.out_dir.glob("callgrind.out.*"))
        self.control("--dump")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = set(self.out_dir.glob("callgrind.out.*")) - before
            for path in new:
                total = callgrind_total(path)
                if total is not None:  # the dump is complete
                    if self.keep is not None and keep_as is not None:
                        shutil.move(path, self.keep / keep_as)
                    else:
                        path.unlink()
                    return total
            time.sleep(0.2)
        raise TimeoutError("callgrind wrote no dump")


class CountedNodes(CrossNodes):
    """Two nodes under callgrind and a redis-server, as compare.py's ``CrossNodes``."""

    def __init__(self, tree: Path, out_dir: Path, keep: Path | None) -> None:
        self.out_dir, self.keep = out_dir, keep
        super().__init__(tree)

    def node(self, name: str, tree: Path) -> Counted:
        (self.out_dir / name).mkdir()
        return Counted(*self.node_args(name), root=tree, out_dir=self.out_dir / name,
                       keep=self.keep)

    @property
    def counted(self) -> list[Counted]:
        return [node for node in self.nodes if isinstance(node, Counted)]


async def counted(servers: list[Counted], warm_up: Awaitable[Any], settle_s: float,
                  idle_s: float, work: Callable[[], Awaitable[T]],
                  keep_as: Sequence[str | None]) -> tuple[list[int], list[int], float, T]:
    """Instrumentation on; ``warm_up`` (valgrind's and Python's); ``settle_s`` for its
    late work to land before the counters are zeroed; an idle window of ``idle_s``
    counted; then ``work()`` counted and timed, each server's dump of it kept as the
    matching name of ``keep_as``; instrumentation off. Returns the idle counts, the
    work's counts, its wall time and its result."""
    for server in servers:
        server.control("--instr=on")
    try:
        await warm_up
        await asyncio.sleep(settle_s)
        for server in servers:
            server.control("--zero")
        await asyncio.sleep(idle_s)
        idle = [server.dumped() for server in servers]
        t0 = time.perf_counter()
        result = await work()
        wall = time.perf_counter() - t0
        busy = [server.dumped(name) for server, name in zip(servers, keep_as, strict=True)]
    finally:
        for server in servers:
            server.control("--instr=off")
    return idle, busy, wall, result


async def count_one(servers: list[Counted], rooms: Rooms, recorder: Recorder, rate: float,
                    seconds: float, keep_as: list[str]) -> dict[str, Any]:
    """Warm-up, then an idle window and a paced window, counted: ``servers`` are the
    processes of one server (one, or two nodes), their counts summed; each one's
    paced dump is kept as the matching name of ``keep_as``."""

    async def window() -> int:
        recorder.reset()
        sent = await paced(rooms.senders, rate, seconds)
        deadline = time.perf_counter() + 30
        while len(recorder.lat_ns) < 2 * sent and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        return sent

    # settle_s 3: late deliveries of the warm-up land before the zero
    idle, busy, wall, sent = await counted(servers, paced(rooms.senders, rate, seconds / 2),
                                           3, seconds, window, keep_as)
    delivered = len(recorder.lat_ns)
    recorder.stop()

    def per_msg(count: float) -> int | None:
        return round(count / delivered) if delivered else None

    nets = [b - i / seconds * wall for b, i in zip(busy, idle, strict=True)]
    return {
        "sent": sent, "delivered": delivered,
        "ir_per_msg": per_msg(sum(busy)),
        "idle_ir_per_s": round(sum(idle) / seconds),
        "net_ir_per_msg": per_msg(sum(nets)),
        "net_ir_per_msg_each": [per_msg(n) for n in nets],
    }


async def run(trees: list[Path], n_rooms: int, rate: float, seconds: float, repeat: int,
              keep: Path | None, cross: bool = False) -> dict[str, list[dict[str, Any]]]:
    raise_nofile(65536)
    pin_self()
    work = Path(tempfile.mkdtemp(prefix="hearth-callgrind-"))
    names = [f"{i}:{t}" for i, t in enumerate(trees)] + ["floor"]  # a tree may come twice
    servers: list[Counted | CountedNodes] = []
    for i, tree in enumerate(trees):
        (work / str(i)).mkdir()
        if cross:
            servers.append(CountedNodes(tree, work / str(i), keep))
        else:
            servers.append(Counted("--rate", "1000/1", root=tree, out_dir=work / str(i),
                                   keep=keep))
    (work / "floor").mkdir()
    servers.append(Counted(floor=True, out_dir=work / "floor", keep=keep))

    async def window(k: int, i: int, server: Counted | CountedNodes, rooms: Rooms,
                     recorder: Recorder) -> dict[str, Any]:
        if isinstance(server, CountedNodes):
            return await count_one(server.counted, rooms, recorder, rate, seconds,
                                   [f"{i}.{n}.window{k}.callgrind" for n in "ab"])
        tag = "floor" if server.floor else str(i)
        return await count_one([server], rooms, recorder, rate, seconds,
                               [f"{tag}.window{k}.callgrind"])

    try:
        results = await interleaved(servers, n_rooms, repeat, window, stop_s=60,
                                    open_rooms=open_rooms)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dict(zip(names, results, strict=True))


def main() -> int:
    # 20 s: the server's ping interval, so that every window holds one ping per connection
    p = tree_arguments(__doc__.split("\n\n")[0], rooms=100, rate=40, seconds=20.0, repeat=1)
    p.add_argument("--keep", type=Path, help="keep each paced window's dump here "
                   "(callgrind_annotate --inclusive=yes FILE: where the instructions go)")
    p.add_argument("--cross", action="store_true", help="each tree as two nodes and a "
                   "Redis (bench.py's cross-node scenario); the nodes' counts summed")
    args = p.parse_args()
    if args.keep is not None:
        args.keep = args.keep.resolve()
        args.keep.mkdir(parents=True, exist_ok=True)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    results = asyncio.run(run([t.resolve() for t in args.trees], args.rooms, args.rate,
                              args.seconds, args.repeat, args.keep, args.cross))
    floor = results["floor"]
    floor_net = min(r["net_ir_per_msg"] for r in floor)
    print("user-space instructions per delivered message (callgrind); "
          f"{args.rooms} rooms, {args.rate:g} msg/s, {args.seconds:g} s windows")
    for name, runs in results.items():
        net = [r["net_ir_per_msg"] for r in runs]
        print(f"{name:30s} net {min(net):9,d} ({min(net) / floor_net:4.2f}x floor)  "
              f"windows {[r['ir_per_msg'] for r in runs]}  net {net}  "
              f"idle/s {[r['idle_ir_per_s'] for r in runs]}  "
              f"delivered {[r['delivered'] for r in runs]}")
        if args.cross and name != "floor":
            print(f"{'':30s} node a, node b: "
                  f"{[r['net_ir_per_msg_each'] for r in runs]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
