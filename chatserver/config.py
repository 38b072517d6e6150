"""Server settings: the command line of PROTOCOL.md, each flag also HEARTH_<FLAG>."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass(slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    redis: str | None = None
    allow_origin: list[str] = field(default_factory=list)
    resume_s: float = 60.0
    hello_timeout_s: float = 10.0
    idle_timeout_s: float = 1800.0
    rate: tuple[int, float] = (10, 10.0)
    node_id: str = field(default_factory=lambda: "node-" + secrets.token_hex(3))
    secret: str = ""
    secret_generated: bool = False
    cooldown_s: float = 300.0
    block_s: float = 3600.0
    history: int = 200
    outbox: int = 256
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0

    def origins(self) -> set[str]:
        """Origins allowed to open /ws: the flags, else the server's own address."""
        if self.allow_origin:
            return {o.rstrip("/") for o in self.allow_origin}
        hosts = {self.host}
        if self.host in ("127.0.0.1", "0.0.0.0", "::", "localhost"):
            hosts |= {"127.0.0.1", "localhost"}
        return {f"{scheme}://{h}:{self.port}" for h in hosts for scheme in ("http", "https")}


def parse_rate(text: str) -> tuple[int, float]:
    """``"10/10"`` -> (10 messages, 10.0 seconds)."""
    count, _, seconds = text.partition("/")
    n, s = int(count), float(seconds or "1")
    if n < 1 or s <= 0:
        raise ValueError("rate must be MESSAGES/SECONDS, both positive")
    return n, s
