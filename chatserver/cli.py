"""The command line of PROTOCOL.md ("Running the server").

    python -m chatserver [--host H] [--port P] [--redis URL] [--allow-origin O]...
                         [--resume-s 60] [--hello-timeout-s 10] [--idle-timeout-s 1800]
                         [--rate 10/10] [--node-id NAME] [--cooldown-s 300] [--block-s 3600]
    python -m chatserver token (listener|moderator) --name NAME [--hours 8]

Every flag has an environment variable HEARTH_<FLAG> (HEARTH_ALLOW_ORIGIN takes
a comma-separated list); the token secret is HEARTH_SECRET.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from . import tokens
from .config import Settings, parse_rate
from .protocol import MAX_FRAME_BYTES
from .wsfast import Protocol

log = logging.getLogger("hearth")


def _env(name: str, default: Any) -> Any:
    return os.environ.get("HEARTH_" + name.upper().replace("-", "_"), default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chatserver",
                                description="Hearth peer-support chat server.")
    d = Settings()
    p.add_argument("--host", default=_env("host", d.host))
    p.add_argument("--port", type=int, default=int(_env("port", d.port)))
    p.add_argument("--redis", default=_env("redis", None) or None,
                   help="redis://HOST:PORT/DB to share matching with other nodes")
    origins = _env("allow_origin", "")
    p.add_argument("--allow-origin", action="append",
                   default=[o.strip() for o in origins.split(",") if o.strip()])
    p.add_argument("--resume-s", type=float, default=float(_env("resume_s", d.resume_s)))
    p.add_argument("--hello-timeout-s", type=float,
                   default=float(_env("hello_timeout_s", d.hello_timeout_s)))
    p.add_argument("--idle-timeout-s", type=float,
                   default=float(_env("idle_timeout_s", d.idle_timeout_s)))
    p.add_argument("--rate", type=parse_rate, default=parse_rate(_env("rate", "10/10")))
    p.add_argument("--node-id", default=_env("node_id", d.node_id))
    p.add_argument("--cooldown-s", type=float, default=float(_env("cooldown_s", d.cooldown_s)),
                   help="pause for a listener after a crisis room ends (extension)")
    p.add_argument("--block-s", type=float, default=float(_env("block_s", d.block_s)),
                   help="how long a moderator's block lasts (extension)")
    return p


def token_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m chatserver token")
    p.add_argument("role", choices=tokens.STAFF_ROLES)
    p.add_argument("--name", required=True)
    p.add_argument("--hours", type=float, default=8.0)
    args = p.parse_args(argv)
    secret = os.environ.get("HEARTH_SECRET")
    if not secret:
        print("HEARTH_SECRET is not set: a token must be signed with the server's secret.",
              file=sys.stderr)
        return 2
    print(tokens.issue(secret, args.role, args.name, args.hours))
    return 0


def settings_from(args: argparse.Namespace) -> Settings:
    secret = os.environ.get("HEARTH_SECRET", "")
    return Settings(
        host=args.host, port=args.port, redis=args.redis, allow_origin=args.allow_origin,
        resume_s=args.resume_s, hello_timeout_s=args.hello_timeout_s,
        idle_timeout_s=args.idle_timeout_s, rate=args.rate, node_id=args.node_id,
        secret=secret or secrets.token_urlsafe(32), secret_generated=not secret,
        cooldown_s=args.cooldown_s, block_s=args.block_s,
    )


def links(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    base = f"http://{host}:{settings.port}"
    lines = [f"Hearth is running on {base} (node {settings.node_id}, "
             f"{'redis' if settings.redis else 'embedded'} matching)",
             f"  Seeker:    {base}/"]
    if settings.secret_generated:
        listener = tokens.issue(settings.secret, "listener", "Sam", 8)
        moderator = tokens.issue(settings.secret, "moderator", "Mod Ana", 8)
        lines += [f"  Listener:  {base}/listener#token={listener}",
                  f"  Moderator: {base}/moderator#token={moderator}",
                  "  (HEARTH_SECRET is not set: a random secret was made; these links work "
                  "until this process stops.)"]
        if settings.redis:
            lines.append("  With --redis, give every node the same HEARTH_SECRET: tokens, "
                         "seekers' aliases and their notes across nodes depend on it.")
    else:
        lines += ["  Listener and moderator links: python -m chatserver token listener --name NAME"]
    return "\n".join(lines)


class PrivacyFilter(logging.Filter):
    """Drops uvicorn's per-connection lines, which carry the client address."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if msg.startswith("%s - ") or msg in ("connection open", "connection closed"):
            return False
        return "WebSocket" not in msg


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"privacy": {"()": PrivacyFilter}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "filters": ["privacy"], "stream": "ext://sys.stderr"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "hearth": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


class HearthServer(uvicorn.Server):
    """Ends embedded rooms with ``shutdown`` before uvicorn closes sockets with 1012."""

    async def shutdown(self, sockets: Any = None) -> None:
        app = self.config.app
        node = getattr(getattr(app, "state", None), "node", None)
        if node is not None:
            await node.before_shutdown()
        await super().shutdown(sockets=sockets)


def uvicorn_config(app: Any, settings: Settings, *, ws: Any = None) -> uvicorn.Config:
    """Hearth's uvicorn settings. ``ws``: the WebSocket protocol, by default uvicorn's
    websockets-sansio one reading the common frame itself (``chatserver.wsfast``);
    the benchmark's floor passes ``"websockets-sansio"``, uvicorn's own."""
    return uvicorn.Config(
        app, host=settings.host, port=settings.port,
        ws=Protocol if ws is None else ws, ws_max_size=MAX_FRAME_BYTES,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval_s, ws_ping_timeout=settings.ping_timeout_s,
        access_log=False, log_config=LOG_CONFIG, lifespan="on", timeout_graceful_shutdown=3,
        server_header=False, proxy_headers=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["token"]:
        return token_main(argv[1:])
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    from .app import create_app

    app = create_app(settings)
    print(links(settings), flush=True)
    HearthServer(uvicorn_config(app, settings)).run()
    return 0
