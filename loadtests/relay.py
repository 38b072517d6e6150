"""Rooms full of chatting clients, for Hearth and for the floor, and an open-loop
paced load over them.

A message's send time travels in its client ``id`` (``perf_counter_ns``), so
every delivered frame, the sender's echo and the peer's copy, gives one
end-to-end latency sample in the one process that both sends and receives.
Both Hearth and the floor end a message frame with ``"id":"..."}``, so the
receive path never parses JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import Pinned, cpu_seconds, switches
from texts import TEXTS
from wsclient import WSClient, connect

MESSAGE_PREFIX = b'{"type":"message"'
ID_KEY = b'"id":"'
now_ns = time.perf_counter_ns


class Recorder:
    """Counts message frames sent at or after ``since`` and keeps their latencies."""

    def __init__(self) -> None:
        self.since = 1 << 62
        self.lat_ns: list[int] = []

    def reset(self) -> None:
        self.since = now_ns()
        self.lat_ns = []

    def stop(self) -> None:
        self.since = 1 << 62

    def on_frame(self, payload: bytes) -> None:
        if not payload.startswith(MESSAGE_PREFIX):
            return
        j = payload.rfind(ID_KEY) + 6
        sent = int(payload[j:payload.index(b'"', j)])
        if sent >= self.since:
            self.lat_ns.append(now_ns() - sent)


def ignore(payload: bytes) -> None:
    return None


@dataclass
class Sender:
    """One member of one room, with a few ready-made frame prefixes."""

    client: WSClient
    prefixes: list[bytes]
    n: int = 0

    def send(self) -> None:
        prefix = self.prefixes[self.n % len(self.prefixes)]
        self.n += 1
        self.client.send(prefix + str(now_ns()).encode() + b'"}')


def prefixes(room: str, offset: int, count: int = 4) -> list[bytes]:
    return [(f'{{"type":"message","room":"{room}","text":"{TEXTS[(offset + k) % len(TEXTS)]}",'
             '"id":"').encode() for k in range(count)]


@dataclass
class Rooms:
    """Open rooms: every client, and one Sender per member of each room."""

    clients: list[WSClient] = field(default_factory=list)
    senders: list[Sender] = field(default_factory=list)
    match_lat_ns: list[int] = field(default_factory=list)

    def listen(self, recorder: Recorder) -> None:
        for c in self.clients:
            c.inbox.clear()
            c.on_frame = recorder.on_frame

    def close(self) -> None:
        for c in self.clients:
            c.close(1000)
            c.abort()


async def gather_limited(factories: Sequence[Callable[[], Awaitable[Any]]],
                         limit: int) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(f: Callable[[], Awaitable[Any]]) -> Any:
        async with sem:
            return await f()

    return await asyncio.gather(*(one(f) for f in factories))


# -- Hearth ----------------------------------------------------------------------------


async def hearth_listener(port: int, token: str, name: str, capacity: int,
                          topic: str | None = None) -> WSClient:
    c = await connect(port)
    c.send_json({"type": "hello", "role": "listener", "token": token, "name": name})
    await c.expect("welcome")
    c.send_json({"type": "shift", "status": "available", "topics": [topic] if topic else [],
                 "languages": [], "capacity": capacity})
    await c.expect("shift")
    return c


async def hearth_seeker(port: int) -> WSClient:
    c = await connect(port)
    c.send_json({"type": "hello", "role": "seeker"})
    await c.expect("welcome")
    return c


async def hearth_match(seeker: WSClient, topic: str | None = None,
                       timeout: float = 30.0) -> tuple[dict[str, Any], int]:
    """Send ``request``; return the ``matched`` frame and the match latency in ns."""
    t0 = now_ns()
    seeker.send_json({"type": "request", "topic": topic, "language": "en",
                      "note": "I would like to talk about a hard week."})
    matched = await seeker.expect("matched", timeout)
    return matched, now_ns() - t0


async def match_and_leave(seeker: WSClient, timeout: float, due: float | None = None) -> int:
    """One pairing of a seeker who leaves at once (``request``, ``matched``, ``leave``,
    ``ended``); the match latency in ns. With ``due`` (a ``time.perf_counter()`` time)
    it counts from then if the request went out later: a late request waited too.
    TimeoutError, before leaving, if no match came within ``timeout`` s."""
    matched, took = await hearth_match(seeker, timeout=timeout)
    if due is not None:
        took = max(took, int((time.perf_counter() - due) * 1e9))
    seeker.send_json({"type": "leave", "room": matched["room"]})
    await seeker.expect("ended", 10)
    return took


LATE_S = 0.002  # a paced request sent this long after it was due is counted as late


@dataclass
class Pairings:
    """What seekers pairing again and again (:func:`pair_until`) counted."""

    lat_ns: list[int] = field(default_factory=list)  # one a pairing (match_and_leave)
    done_s: list[float] = field(default_factory=list)  # when each ended (perf_counter)
    requests: int = 0  # paced requests sent
    late: int = 0  # of those, sent more than LATE_S after they were due
    timeouts: int = 0


async def pair_until(seeker: WSClient, deadline: float, tally: Pairings, *,
                     interval: float | None = None, phase: float = 0.0,
                     timeout: float = 5.0) -> None:
    """One seeker asking for a listener and leaving at once (:func:`match_and_leave`)
    until ``deadline`` (a ``time.perf_counter()`` time).

    Without ``interval`` a closed loop: it asks again as soon as its room ended.
    With it an open loop: its requests are due ``interval`` s apart, the first
    ``phase`` s from now, whatever the answers take; each latency counts from when
    its request was due, and a request sent over ``LATE_S`` after that is counted
    late (its last cycle ran past this one's start). A match that does not come
    within ``timeout`` s is counted, the request cancelled, and the loop goes on."""
    due = time.perf_counter() + phase - (interval or 0.0)
    while time.perf_counter() < deadline:
        if interval is not None:
            due += interval
            wait = due - time.perf_counter()
            if wait < -LATE_S:
                tally.late += 1
            await asyncio.sleep(max(0.0, wait))
            tally.requests += 1
        try:
            took = await match_and_leave(seeker, timeout,
                                         due if interval is not None else None)
        except TimeoutError:
            tally.timeouts += 1
            seeker.send_json({"type": "cancel"})
            continue
        tally.lat_ns.append(took)
        tally.done_s.append(time.perf_counter())


async def hearth_rooms(seeker_port: int, listener_port: int, token: str, n_rooms: int, *,
                       capacity: int = 5, batch: int = 20, tag: str = "L",
                       topic: str | None = None) -> Rooms:
    """Listeners on shift (on ``listener_port``), then seekers matched in batches
    of ``batch`` concurrent requests (on ``seeker_port``)."""
    rooms = Rooms()
    n_listeners = math.ceil(n_rooms / capacity)
    names = [f"{tag}{i}" for i in range(n_listeners)]
    listeners = await gather_limited(
        [lambda n=n: hearth_listener(listener_port, token, n, capacity, topic) for n in names],
        100)
    by_name = dict(zip(names, listeners, strict=True))
    seekers = await gather_limited([lambda: hearth_seeker(seeker_port)] * n_rooms, 100)
    rooms.clients += listeners + seekers
    for start in range(0, n_rooms, batch):
        group = seekers[start:start + batch]
        results = await asyncio.gather(*(hearth_match(s, topic) for s in group))
        for k, (s, (matched, lat)) in enumerate(zip(group, results, strict=True)):
            rooms.match_lat_ns.append(lat)
            listener = by_name[matched["peer"]["alias"]]
            i = start + k
            rooms.senders.append(Sender(s, prefixes(matched["room"], i)))
            rooms.senders.append(Sender(listener, prefixes(matched["room"], i + 1)))
    return rooms


# -- the floor -----------------------------------------------------------------------


async def floor_rooms(port: int, n_rooms: int) -> Rooms:
    rooms = Rooms()

    async def pair(i: int) -> tuple[WSClient, WSClient]:
        a = await connect(port, f"/ws?pair={i}")
        b = await connect(port, f"/ws?pair={i}")
        return a, b

    pairs = await gather_limited([lambda i=i: pair(i) for i in range(n_rooms)], 50)
    for i, (a, b) in enumerate(pairs):
        rooms.clients += [a, b]
        rooms.senders += [Sender(a, prefixes(f"r{i}", i)), Sender(b, prefixes(f"r{i}", i + 1))]
    return rooms


async def split_floor_rooms(port_a: int, port_b: int, n_rooms: int) -> Rooms:
    """``n_rooms`` of the floor's pairs, half on each of two floors, their senders
    interleaved one by one: as in the cross-node scenario (a seeker's frame to one
    node, a listener's to the other), every tick of :func:`paced` reaches both
    processes. The same frames as one floor's, over two processes and no Redis."""
    a, b = await asyncio.gather(floor_rooms(port_a, (n_rooms + 1) // 2),
                                floor_rooms(port_b, n_rooms // 2))
    rooms = Rooms(clients=a.clients + b.clients)
    for k in range(max(len(a.senders), len(b.senders))):
        rooms.senders += a.senders[k:k + 1] + b.senders[k:k + 1]
    return rooms


def tree_arguments(description: str, *, rooms: int, rate: float, seconds: float,
                   repeat: int) -> argparse.ArgumentParser:
    """The command line of the scripts that compare source trees with the floor."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("trees", nargs="+", type=Path, help="source trees (checkouts) of Hearth")
    p.add_argument("--rooms", type=int, default=rooms)
    p.add_argument("--rate", type=float, default=rate, help="messages sent per second")
    p.add_argument("--seconds", type=float, default=seconds, help="length of one window")
    p.add_argument("--repeat", type=int, default=repeat, help="windows per server")
    return p


Window = Callable[[int, int, Any, Rooms, Recorder], Awaitable[dict[str, Any]]]


async def pinned_rooms(server: Pinned, n_rooms: int) -> Rooms:
    """The floor's pairs, or Hearth's rooms with seekers and listeners on one server."""
    if server.floor:
        return await floor_rooms(server.port, n_rooms)
    token = server.token("listener", "bench", 1)
    return await hearth_rooms(server.port, server.port, token, n_rooms)


async def interleaved(servers: Sequence[Any], n_rooms: int, repeat: int, window: Window,
                      stop_s: float = 10,
                      open_rooms: Callable[[Any, int], Awaitable[Rooms]] = pinned_rooms,
                      ) -> list[list[dict[str, Any]]]:
    """Start the servers, open the same number of rooms on each (``open_rooms``:
    Hearth's, or the floor's pairs, on a ``Pinned``), then ``repeat`` rounds of
    ``window(round, i, server, rooms, recorder)`` for every server in turn; stop
    them all. Each server's results. A server is anything with ``start()`` and
    ``stop(timeout=...)`` that ``open_rooms`` knows (compare.py's two nodes)."""
    opened: list[Rooms] = []
    try:
        for server in servers:
            server.start()
        for server in servers:
            opened.append(await open_rooms(server, n_rooms))
        recorder = Recorder()
        for r in opened:
            r.listen(recorder)
        results: list[list[dict[str, Any]]] = [[] for _ in servers]
        for k in range(repeat):
            for i, (server, r) in enumerate(zip(servers, opened, strict=True)):
                results[i].append(await window(k, i, server, r, recorder))
        return results
    finally:
        for r in opened:
            r.close()
        for server in servers:
            server.stop(timeout=stop_s)


# -- load ------------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure of several :func:`measure` windows, with each run's
    CPU, p99 and rate kept under ``runs``."""
    out = dict(runs[-1])
    for key in ("cpu_us_per_msg", "delivered_per_s", "p50_ms", "p99_ms", "server_cpu_pct",
                "client_cpu_pct", "delivery"):
        values = [r[key] for r in runs if r[key] is not None]
        if values:
            out[key] = round(statistics.median(values), 4)
    # Each process's part (measure()), the median of each across the runs.
    each = [r["cpu_us_per_msg_each"] for r in runs
            if r.get("cpu_us_per_msg_each") and None not in r["cpu_us_per_msg_each"]]
    if each:
        out["cpu_us_per_msg_each"] = [round(statistics.median(p), 2)
                                      for p in zip(*each, strict=True)]
    switched = [r["switches_per_s_each"] for r in runs if r.get("switches_per_s_each")]
    if switched:
        out["switches_per_s_each"] = [
            [round(statistics.median(kind)) for kind in zip(*proc, strict=True)]
            for proc in zip(*switched, strict=True)]
    out["runs"] = [{k: r[k] for k in ("cpu_us_per_msg", "p99_ms", "delivered_per_s")}
                   for r in runs]
    return out


async def alternating(sides: Sequence[tuple[list[int], Rooms]], recorder: Recorder,
                      rate: float, repeat: int, seconds: float,
                      drain_s: float) -> list[dict[str, Any]]:
    """``repeat`` rounds of one :func:`measure` window of each side in turn (the
    processes whose CPU counts, and their rooms), so that drift in the machine's load
    hits every side alike; each side's :func:`median_of`, in order."""
    runs: list[list[dict[str, Any]]] = [[] for _ in sides]
    for _ in range(repeat):
        for side_runs, (pids, rooms) in zip(runs, sides, strict=True):
            side_runs.append(await measure(pids, rooms.senders, recorder, rate, seconds,
                                           drain_s))
    return [median_of(r) for r in runs]


async def paced(senders: Sequence[Sender], rate: float, seconds: float) -> int:
    """Send ``rate`` messages a second for ``seconds``, round-robin over the senders.
    Open loop: a late tick catches up, it does not lower the rate. Returns the count."""
    start = time.perf_counter()
    end = start + seconds
    sent = 0
    count = len(senders)
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - start) * rate)
        while sent < due:
            senders[sent % count].send()
            sent += 1
        await asyncio.sleep(0.001)
    return sent


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


async def measure(pids: list[int], senders: list[Sender], recorder: Recorder, rate: float,
                  seconds: float, drain_s: float, members: int = 2) -> dict[str, Any]:
    """One open-loop window: send at ``rate`` for ``seconds``, wait for the deliveries."""
    recorder.reset()
    each0 = [cpu_seconds(p) for p in pids]
    switched0 = [switches(p) for p in pids]
    me0 = cpu_seconds()
    t0 = time.perf_counter()
    sent = await paced(senders, rate, seconds)
    expected = sent * members
    deadline = time.perf_counter() + drain_s
    while len(recorder.lat_ns) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    wall = time.perf_counter() - t0
    each = [cpu_seconds(p) - c for p, c in zip(pids, each0, strict=True)]
    switched = [[round((now - before) / wall) for now, before in zip(switches(p), s0, strict=True)]
                for p, s0 in zip(pids, switched0, strict=True)]
    cpu = sum(each)
    me = cpu_seconds() - me0
    lat = recorder.lat_ns
    recorder.stop()
    delivered = len(lat)
    return {
        "rate": round(rate), "sent": sent, "delivered": delivered,
        "delivery": round(delivered / expected, 4) if expected else None,
        "delivered_per_s": round(delivered / seconds),
        "p50_ms": ms(percentile(lat, 0.50)), "p99_ms": ms(percentile(lat, 0.99)),
        "cpu_us_per_msg": round(cpu * 1e6 / delivered, 2) if delivered else None,
        # Each process's part, in the order of ``pids`` (two nodes and Redis, cross-node).
        "cpu_us_per_msg_each": [round(c * 1e6 / delivered, 2) if delivered else None
                                for c in each],
        "server_cpu_pct": round(100 * cpu / wall, 1), "client_cpu_pct": round(100 * me / wall, 1),
        # Each process's context switches a second, [voluntary, involuntary]: two nodes
        # and Redis on one core switch ~2.4x as often as one node for the same frames.
        "switches_per_s_each": switched,
    }
