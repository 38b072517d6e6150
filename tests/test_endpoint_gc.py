"""What a closed connection leaves for the garbage collector, in a real uvicorn server
run in the test's own process (so that its garbage can be inspected)."""

from __future__ import annotations

import asyncio
import gc

from chatserver.app import create_app
from chatserver.cli import HearthServer, build_parser, settings_from, uvicorn_config
from chatserver.connection import Connection
from chatserver.seats import Seat
from tests.conftest import TEST_ARGS
from tests.support.client import seeker
from tests.support.procs import free_port


async def test_a_closed_connection_leaves_no_cycle_for_the_collector() -> None:
    """Seekers connect, ask and leave: none of their Connections or Seats is left in a
    reference cycle. One was (a closure on the connection referring back to it), and it
    held uvicorn's and websockets' objects with it: ~100 objects a closed connection
    for young collections of 25-45 ms (docs/performance.md)."""
    port = free_port()
    settings = settings_from(build_parser().parse_args(
        [*TEST_ARGS, "--host", "127.0.0.1", "--port", str(port)]))
    server = HearthServer(uvicorn_config(create_app(settings), settings))
    serving = asyncio.create_task(server.serve())
    threshold = gc.get_threshold()
    try:
        while not server.started:
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.02)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds is kept in gc.garbage
        for _ in range(20):
            s = await seeker(f"ws://127.0.0.1:{port}/ws")
            await s.expect("queued")
            await s.close()
        await asyncio.sleep(0.5)  # the server ends each connection after its close
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, (Connection, Seat))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        gc.unfreeze()  # the app froze this process's objects at start-up
        gc.set_threshold(*threshold)
    assert left == []
