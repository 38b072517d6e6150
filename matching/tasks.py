"""Stopping a background task for good.

redis-py writes a command inside ``asyncio.wait_for`` when a socket timeout is
set (every client here has one), and on Python 3.11 ``wait_for`` swallows a
cancellation that arrives just as the awaited write completes (CPython
gh-86296, fixed in 3.12): the task returns from the call and carries on. Measured
with redis-py 8.1 on this machine, 13-21 of 30 cancels sent to a task looping
over PUBLISH were swallowed, 26-30 of 30 with a busy loop on the machine. A
loop cancelled once and then awaited can therefore keep a node's shutdown
waiting forever (docs/multinode.md, "Failures").
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("hearth.tasks")

STOP_S = 2.0  # how long to keep cancelling a task before giving up on it
_CLEANUP_S = 0.05  # what a cancelled task is given to end (its finally blocks) before more


async def stop_task(task: asyncio.Task[Any] | None, timeout: float = STOP_S) -> None:
    """Cancel ``task`` and wait until it has ended; if it still runs after
    ``_CLEANUP_S``, cancel it again at every turn of the loop, so that one of the
    cancels lands outside the window where ``wait_for`` drops it (cancels sent at
    a fixed interval can keep landing in it: on a busy machine, forty in a row
    did). After ``timeout`` leave it with a warning rather than wait forever. What
    it ended with is retrieved and dropped."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    task.cancel()
    await asyncio.wait({task}, timeout=_CLEANUP_S)
    while not task.done():
        if loop.time() >= deadline:
            log.warning("a background task did not stop when cancelled")
            return
        task.cancel()
        await asyncio.sleep(0)  # one turn of the loop: the task runs, or not yet
    if not task.cancelled():
        task.exception()  # retrieved, so that asyncio does not log it as never retrieved
