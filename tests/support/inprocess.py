"""A real uvicorn server running Hearth in the test's own process, so that its node
can be read (the other end-to-end tests run servers as processes)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from chatserver.app import create_app
from chatserver.cli import HearthServer, build_parser, settings_from, uvicorn_config
from chatserver.config import Settings
from tests.conftest import TEST_ARGS
from tests.support.procs import free_port


class InProcess:
    def __init__(self, *args: str, secret: str | None = None) -> None:
        self.settings = settings_from(build_parser().parse_args(
            [*TEST_ARGS, "--host", "127.0.0.1", "--port", str(free_port()), "--rate", "100/1",
             *args]))
        if secret is not None:  # nodes of one service share it
            self.settings.secret = secret
        self.app = create_app(self.settings)
        self.server = HearthServer(uvicorn_config(self.app, self.settings))
        self.url = f"ws://127.0.0.1:{self.settings.port}/ws"
        self.serving: asyncio.Task[None] | None = None
        self._threshold = gc.get_threshold()

    async def start(self) -> InProcess:
        self.serving = await started(self.server)
        return self

    @property
    def node(self) -> Any:
        return self.app.state.node

    async def stop(self) -> None:
        """Shut the server down as on SIGTERM, and undo what the app did to the
        collector for this process (it freezes what start-up made)."""
        if self.serving is not None:
            self.server.should_exit = True
            await asyncio.wait_for(self.serving, 10)
            self.serving = None
        gc.unfreeze()
        gc.set_threshold(*self._threshold)


@contextlib.asynccontextmanager
async def bare_server(app: Any, *, ws: Any = None) -> AsyncIterator[uvicorn.Server]:
    """A real uvicorn server with Hearth's settings (``ws``: its WebSocket protocol,
    Hearth's by default) on a free port, serving a bare ASGI app with no lifespan."""
    config = uvicorn_config(app, Settings(port=free_port()), ws=ws)
    config.lifespan = "off"
    config.log_config = None
    server = uvicorn.Server(config)
    serving = await started(server)
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


async def started(server: uvicorn.Server) -> asyncio.Task[None]:
    """Start ``server`` serving in this process; its task, once it listens."""
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "the server did not start"
        await asyncio.sleep(0.02)
    return serving
