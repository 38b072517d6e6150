"""What Hearth's own code costs a message, without the network: the read loop of
``chatserver.endpoint`` driven in-process through ASGI ``receive`` and ``send``
callables that hand over prepared frames and drop what is sent.

    python loadtests/core_cost.py                      # timeit: us a message, warm
    python loadtests/core_cost.py --instructions       # callgrind: instructions a message
    python loadtests/core_cost.py --mode core --mode bare --instructions

One seeker and one listener share a room on an embedded node, on uvloop as
the server runs; they take turns sending the bench's texts (``texts.py``),
each delivered to both, as in the relay scenarios. uvicorn, websockets, the
loop's I/O and the kernel are left out: what is counted is decoding and
validating the frame, the limits and metrics, masking, the room, the frame
out and its JSON, the seats and the writer, and the scoring batches (flushed
every 64 messages, as under load). ``--mode core`` replaces masking and
scoring with no-ops: what the relay core alone costs; ``--mode bare`` runs a
read loop that only sends each frame on to two members, on the same harness:
what the harness itself costs, to subtract. ``--instructions`` runs this
script twice under callgrind, at once, with and without the measured
messages, and divides the difference by the messages: the same from run to
run (under a fixed hash seed, as set and dict order moves the count). It
measures the modules as they are imported: compiled with mypyc when built
(``make native``), the Python sources with ``HEARTH_PURE=1``, which ``--mode
core`` needs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "loadtests"))

import uvloop  # noqa: E402
from procs import counted_scripts  # noqa: E402
from texts import TEXTS  # noqa: E402

from chatserver import endpoint, protocol  # noqa: E402
from chatserver.config import Settings  # noqa: E402
from chatserver.connection import Connection  # noqa: E402
from chatserver.node import Node  # noqa: E402
from matching import open_matcher  # noqa: E402


async def _sent(message: dict[str, Any]) -> None:
    """The server's ASGI send, as when the socket is writable: done at once."""


class Feed:
    """An ASGI ``receive`` that hands over the frames queued, in order, then waits."""

    def __init__(self) -> None:
        self.frames: deque[dict[str, Any]] = deque()
        self.waiter: asyncio.Future[None] | None = None

    async def __call__(self) -> dict[str, Any]:
        while not self.frames:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.frames.popleft()

    def put(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def _member(node: Node, hello: dict[str, Any], feed: Feed) -> Any:
    conn = Connection(_sent, msgpack_binary=False, outbox=node.settings.outbox)
    conn.start()
    name = "bench" if hello["role"] == "listener" else None
    seat = await node.attach(protocol.parse_hello(hello), name, conn, "origin")
    assert seat is not None
    asyncio.get_running_loop().create_task(endpoint._read(feed, node, conn, seat))
    return seat


async def _bare(receive: Feed) -> None:
    """The least a relay's read loop can do with the same receive and send: each
    frame's text sent on to both members (what this harness itself costs)."""
    while True:
        message = await receive()
        for _ in range(2):
            await _sent({"type": "websocket.send", "text": message["text"]})


async def run(mode: str, messages: int, timed: bool) -> float:
    """Send ``messages`` through the readers of ``mode`` after a warm-up; the
    seconds a message when ``timed``."""
    gc.freeze()  # as the app's lifespan does (chatserver.app)
    gc.set_threshold(50_000, 10, 10)
    feeds = (Feed(), Feed())
    loop = asyncio.get_running_loop()
    flush: Callable[[], None] | None = None
    if mode == "bare":
        room = "r"
        for feed in feeds:
            loop.create_task(_bare(feed))
    else:
        if mode == "core":  # for this process: --instructions runs each mode in its own
            from chatserver import contact, talk
            if not talk.__file__ or not talk.__file__.endswith(".py"):
                raise SystemExit("--mode core replaces functions, which the modules compiled "
                                 "with mypyc do not see: run it with HEARTH_PURE=1 (and the "
                                 "modes it is compared with, to compare like with like)")
            contact.mask_contacts = lambda text: (text, False)  # type: ignore[assignment]
            talk.Talk._queue_score = (  # type: ignore[method-assign]
                lambda self, room, seat, text: None)
        settings = Settings(rate=(1_000_000, 1.0))
        node = Node(settings, open_matcher(None, settings.node_id))
        await node.start()
        listener = await _member(node, {"type": "hello", "role": "listener", "token": "x"},
                                 feeds[1])
        await node.handle(listener, protocol.Shift(status="available", capacity=1))
        seeker = await _member(node, {"type": "hello", "role": "seeker"}, feeds[0])
        await node.handle(seeker, protocol.Request(topic=None, language="en", note=None))
        while not seeker.rooms:
            await asyncio.sleep(0.01)
        room = next(iter(seeker.rooms))
        flush = node.talk._score_now  # the batch, as the timer or a full batch would
    payloads = [f'{{"type":"message","room":"{room}","text":"{t}","id":"{i}"}}'
                for i, t in enumerate(TEXTS)]

    async def send(n: int) -> None:
        for i in range(n):
            feeds[i % 2].put({"type": "websocket.receive", "text": payloads[i % len(payloads)]})
            await asyncio.sleep(0)  # the reader takes it
            if flush is not None and i % 64 == 63:
                flush()
        if flush is not None:
            flush()

    await send(200)  # warm
    started = time.perf_counter()
    await send(messages)
    elapsed = time.perf_counter() - started
    return elapsed / messages if timed else 0.0


MODES = {
    "full": "as it is",
    "core": "without masking and scoring",
    "bare": "a bare relay loop on the same harness",
}


def measure(mode: str, messages: int, timed: bool) -> float:
    return uvloop.run(run(mode, messages, timed))


def counted(mode: str, messages: int) -> float:
    with_them, without = counted_scripts(__file__, ("--call", str(messages), "--mode", mode),
                                         ("--call", "0", "--mode", mode))
    return (with_them - without) / messages


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=None)
    p.add_argument("--instructions", action="store_true", help="count them under callgrind")
    p.add_argument("--mode", choices=tuple(MODES), action="append",
                   help="full (default), core (no masking, no scoring), bare (the harness alone)")
    p.add_argument("--call", type=int, help=argparse.SUPPRESS)  # under callgrind
    args = p.parse_args()
    modes = args.mode or ["full"]
    if args.call is not None:
        measure(modes[0], args.call, timed=False)
        return 0
    if args.instructions and shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    for mode in modes:
        if args.instructions:
            n = args.messages or 2000
            print(f"{counted(mode, n):10,.0f} instructions a message, {MODES[mode]} "
                  f"({n} messages, each delivered to 2; callgrind)")
        elif len(modes) > 1:  # each in a process of its own, as "core" changes modules
            subprocess.run([sys.executable, __file__, "--mode", mode,
                            *(["--messages", str(args.messages)] if args.messages else [])],
                           check=True)
        else:
            n = args.messages or 20000
            best = min(measure(mode, n, timed=True) for _ in range(3))
            print(f"{best * 1e6:8.2f} us a message, {MODES[mode]} ({n} messages, each "
                  "delivered to 2; best of 3, warm)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
