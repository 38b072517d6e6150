"""Profile the same-node relay path with py-spy while the bench client drives it.

    .venv/bin/pip install py-spy
    python loadtests/profile_relay.py [--rooms 500] [--rate 6000] [--seconds 15]

Starts Hearth pinned to core 0 (``--rate 1000/1``), opens the rooms, sends at
``--rate`` messages/s, and records the server with ``py-spy record --format raw``
(collapsed stacks) into ``build/profile/relay.txt``; then prints the functions
with the most samples, inclusive and self. Also writes a speedscope-free
flamegraph SVG next to it for a look in a browser.

The server runs its Python sources (``HEARTH_PURE=1``): py-spy sees no frames
inside the modules compiled with mypyc (``chatserver.NATIVE``), so a profile of
them would put their time on whoever called them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
from pathlib import Path

from procs import ROOT, Pinned, pin_self
from relay import Recorder, hearth_rooms, measure

OUT = ROOT / "build" / "profile"


def summarize(raw: Path, top: int = 30) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    lines = [f"{total} samples", "", "inclusive %  function"]
    lines += [f"{100 * n / total:10.1f}  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self %       function"]
    lines += [f"{100 * n / total:10.1f}  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    pin_self()
    server = Pinned("--rate", "1000/1", env={"HEARTH_PURE": "1"}).start()
    try:
        rooms = await hearth_rooms(server.port, server.port,
                                   server.token("listener", "prof", 1), args.rooms)
        recorder = Recorder()
        rooms.listen(recorder)
        OUT.mkdir(parents=True, exist_ok=True)
        raw = OUT / f"{args.name}.txt"
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        proc = subprocess.Popen([spy, "record", "-p", str(server.pid), "-d", str(args.seconds),
                                 "-r", "250", "--format", "raw", "-o", str(raw), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = await measure([server.pid], rooms.senders, recorder, args.rate,
                               args.seconds, 2.0)
        await asyncio.get_running_loop().run_in_executor(None, proc.wait)
        print(result)
        print(summarize(raw))
        rooms.close()
    finally:
        server.stop()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=500)
    p.add_argument("--rate", type=float, default=3000, help="messages sent per second")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--name", default="relay")
    return asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
