"""The floor: a bare Starlette WebSocket relay on the same uvicorn settings as
Hearth (websockets-sansio, 32 KiB frames, no deflate; ``chatserver.cli.uvicorn_config``),
with uvicorn's own protocol class: Hearth's reads the common frame itself (``chatserver.wsfast``).

It does the least a chat relay can do: two connections that open ``/ws?pair=K``
with the same ``K`` are paired, and every text frame one of them sends is sent,
unchanged, to both (the sender's echo and the peer), as Hearth delivers a
``message`` to every member of a room, the sender included. No hello, no JSON
parsing, no outbox, no limits. Every Hearth figure in ``bench.py`` is also
given as a ratio to this floor measured in the same run.

    python loadtests/floor.py --port 8200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chatserver.cli import uvicorn_config  # noqa: E402
from chatserver.config import Settings  # noqa: E402

pairs: dict[str, list[WebSocket]] = {}


async def relay(ws: WebSocket) -> None:
    await ws.accept()
    key = ws.query_params.get("pair", "")
    members = pairs.setdefault(key, [])
    if len(members) >= 2:
        await ws.close(code=1008)
        return
    members.append(ws)
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                continue
            for member in members:
                try:
                    await member.send_text(text)
                except Exception:  # the other side went away; its own reader ends
                    pass
    finally:
        members.remove(ws)
        if not members:
            pairs.pop(key, None)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app() -> Starlette:
    return Starlette(routes=[WebSocketRoute("/ws", relay), Route("/healthz", healthz)])


def main() -> int:
    p = argparse.ArgumentParser(description="Bare WebSocket pair relay (the benchmark floor).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8200)
    args = p.parse_args()
    settings = Settings(host=args.host, port=args.port)
    # uvicorn's own websockets-sansio protocol, not Hearth's reader of it (chatserver.wsfast)
    uvicorn.Server(uvicorn_config(create_app(), settings, ws="websockets-sansio")).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
