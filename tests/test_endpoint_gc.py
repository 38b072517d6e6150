"""What a closed connection leaves for the garbage collector, in a real uvicorn server
run in the test's own process (so that its garbage can be inspected)."""

from __future__ import annotations

import asyncio
import gc

from chatserver.connection import Connection
from chatserver.seats import Seat
from tests.support.client import seeker
from tests.support.inprocess import InProcess


async def test_a_closed_connection_leaves_no_cycle_for_the_collector() -> None:
    """Seekers connect, ask and leave: none of their Connections or Seats is left in a
    reference cycle. One was (a closure on the connection referring back to it), and it
    held uvicorn's and websockets' objects with it: ~100 objects a closed connection
    for young collections of 25-45 ms (docs/performance.md)."""
    server = await InProcess().start()
    try:
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds is kept in gc.garbage
        for _ in range(20):
            s = await seeker(server.url)
            await s.expect("queued")
            await s.close()
        await asyncio.sleep(0.5)  # the server ends each connection after its close
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, (Connection, Seat))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        await server.stop()  # and undoes the app's gc.freeze and threshold
    assert left == []
