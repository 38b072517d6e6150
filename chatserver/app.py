"""The Starlette application: routes, security headers, and the lifespan that
owns the matcher and the node.

Routes: ``/ws`` (the protocol), ``/`` ``/listener`` ``/moderator`` (pages),
``/static/...``, ``/api/resources``, ``/healthz``, ``/readyz``, ``/metrics``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matching import open_matcher

from . import endpoint, metrics, resources, seal
from .config import Settings
from .node import Node
from .relay import open_relay

STATIC = Path(__file__).resolve().parent.parent / "static"
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Adds the CSP and friends to every HTTP response (pure ASGI, no buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def page(name: str):  # type: ignore[no-untyped-def]
    async def serve(request: Request) -> Response:
        return FileResponse(STATIC / name, media_type="text/html")

    return serve


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    node: Node = request.app.state.node
    if await node.matcher.ready():
        return PlainTextResponse("ready")
    return PlainTextResponse("matching backend unreachable", status_code=503)


async def metrics_endpoint(request: Request) -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")


async def resources_endpoint(request: Request) -> Response:
    language = request.query_params.get("language") or None
    return JSONResponse({"items": resources.resources_for(language)})


class Hearth:
    """The ASGI application: ``/ws`` goes straight to :func:`endpoint.serve` with
    the server's own ``receive`` and ``send``; everything else (pages, health,
    metrics, the lifespan) goes to the Starlette app in ``starlette``."""

    def __init__(self, app: Starlette) -> None:
        self.starlette = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            scope["app"] = self.starlette  # what Starlette would set: ws.app.state
            await endpoint.serve(scope, receive, send)
            return
        await self.starlette(scope, receive, send)


def create_app(settings: Settings) -> Hearth:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        notes = seal.Sealer(seal.secret_key(settings.secret, "note"))  # in Redis: sealed
        node = Node(settings, open_matcher(settings.redis, settings.node_id, notes),
                    open_relay(settings.redis, settings.node_id))
        await node.start()
        app.state.node = node
        app.state.origins = settings.origins()
        # What start-up made (modules, the risk lexicon's regexes) lives as long as
        # the process: keep it out of every later collection. And collect the young
        # generation every 50,000 allocations, not 700: each waiting reader holds
        # ~10 fresh objects (uvicorn's receive, a future) until its next frame,
        # ~0.5 s later; at 700 they were promoted and drove full collections of
        # every connection's objects (75-145 ms pauses at 1,000 rooms, the p99
        # spikes). Full collections still run, 10 x 10 young ones apart
        # (docs/performance.md).
        gc.freeze()
        gc.set_threshold(50_000, 10, 10)
        try:
            yield
        finally:
            await node.stop()

    routes = [
        Route("/", page("index.html")),
        Route("/listener", page("listener.html")),
        Route("/moderator", page("moderator.html")),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/api/resources", resources_endpoint),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(SecurityHeaders)
    return Hearth(app)
