"""Run the Locust users headless against real servers (``make loadtest``).

1. One embedded server (in-memory matching).
2. Two nodes sharing one Redis (a redis-server this script starts on a free
   port), when the Redis backend is importable. While a seeker on one node
   cannot yet be matched with a listener on another (cross-node relay), the
   users keep their pairs on one node by topic and the run says so.

Servers get a known ``HEARTH_SECRET`` (tokens go to Locust in environment
variables) and ``--rate 1000/1``: the default 10 messages / 10 s per
connection would rate-limit listeners who answer several rooms. HTML reports
(and CSV stats) go to ``build/loadtest/``. Exits non-zero if Locust recorded
failures or a run could not start.

    python loadtests/run_locust.py [--time 60] [--users 60] [--spawn-rate 20]
                                   [--listeners 6] [--single-only]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from procs import ROOT, Pinned, PinnedRedis  # noqa: E402
from scenarios import probe_cross_node  # noqa: E402

SERVER_ARGS = ("--rate", "1000/1")
OUT = ROOT / "build" / "loadtest"


def redis_backend() -> str | None:
    """None when two nodes on Redis can run here; else why not."""
    try:
        import matching.redis  # noqa: F401
    except Exception as exc:  # not written yet, or its driver is missing
        return f"the Redis backend does not import ({type(exc).__name__})"
    from shutil import which

    if which("redis-server") is None:
        return "redis-server is not installed"
    return None


def locust(name: str, urls: list[str], token_from: Pinned, args: argparse.Namespace,
           extra_env: dict[str, str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "HEARTH_WS_URLS": ",".join(urls),
        "HEARTH_LISTENER_TOKEN": token_from.token("listener", "Load", 2),
        "HEARTH_MODERATOR_TOKEN": token_from.token("moderator", "Mod Load", 2),
        "HEARTH_LISTENERS": str(args.listeners),
        **extra_env,
    })
    cmd = [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless",
           "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.time}s",
           "--stop-timeout", "3", "--html", str(OUT / f"{name}.html"),
           "--csv", str(OUT / name), "--only-summary", "--loglevel", "WARNING"]
    print(f"== locust {name}: {args.users} users for {args.time} s on {', '.join(urls)}",
          flush=True)
    timeout = args.time + 60
    try:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        print(f"locust {name} did not finish within {timeout} s", flush=True)
        return 1
    print(f"== locust {name}: exit {rc}; report {OUT / (name + '.html')}", flush=True)
    return rc


def single(args: argparse.Namespace) -> int:
    server = Pinned(*SERVER_ARGS, cpu=None).start()
    try:
        return locust("one-node", [server.ws_url], server, args, {})
    finally:
        server.stop()


def two_nodes(args: argparse.Namespace) -> int:
    why = redis_backend()
    if why is not None:
        print(f"== two nodes on Redis: skipped, {why}", flush=True)
        return 0
    redis = PinnedRedis(cpu=None).start()
    nodes: list[Pinned] = []
    try:
        for node_id in ("load-a", "load-b"):
            nodes.append(Pinned(*SERVER_ARGS, "--redis", redis.url, "--node-id", node_id,
                                cpu=None).start())
        token = nodes[0].token("listener", "Probe", 1)
        cross = asyncio.run(probe_cross_node(nodes[0].port, nodes[1].port, token))
        if cross is not None:
            print(f"== cross-node relay: not available yet ({cross}); "
                  "users keep their pairs on one node by topic", flush=True)
        env = {"HEARTH_TOPIC_BY_NODE": "1" if cross is not None else "0"}
        return locust("two-nodes-redis", [n.ws_url for n in nodes], nodes[0], args, env)
    finally:
        for n in nodes:
            n.stop()
        redis.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Locust against one node, then two on Redis.")
    p.add_argument("--time", type=int, default=60, help="seconds per run (default 60)")
    p.add_argument("--users", type=int, default=60)
    p.add_argument("--spawn-rate", type=float, default=20)
    p.add_argument("--listeners", type=int, default=6, help="of the users, on shift")
    p.add_argument("--single-only", action="store_true", help="skip the two-node run")
    args = p.parse_args(argv)
    failed = single(args) != 0
    if not args.single_only:
        failed = two_nodes(args) != 0 or failed
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
