"""Locust users that speak PROTOCOL.md over real WebSockets.

- ``ListenerUser`` (a fixed number): goes on shift with a capacity and answers
  every seeker message after a think time.
- ``SeekerUser``: says hello, requests with a note, waits to be matched, chats
  a few messages with think times, leaves with a goodbye close, and comes back
  later as a new anonymous seeker.
- ``ModeratorUser`` (one): watches the pushed room list, asks for it, and looks
  into a random room now and then.

Latencies go to Locust as request events of type ``WS``, so its statistics,
percentiles and charts show them: ``hello`` (connect to ``welcome``),
``match`` (``request`` to ``matched``), ``message`` (``message`` to the
sender's echo), ``rooms`` and ``watch`` (moderator round trips). Unexpected
closes, ``error`` frames and timeouts are failures.

Client: ``websockets.sync.client``. Locust runs on gevent and monkey-patches
``socket`` and ``threading``, so the sync client's background reader thread
becomes a greenlet and its blocking socket calls yield to the hub: hundreds of
users share one process without real threads. (``geventhttpclient`` has no
WebSocket client; ``websocket-client`` would also work but is not installed,
and the ``websockets`` package is already a Hearth dependency.) Each
connection gets a reader greenlet that drains frames into an unbounded inbox,
so a user that is busy elsewhere never stops reading (which Hearth would
rightly close with 4420).

Environment (set by ``run_locust.py``):

- ``HEARTH_WS_URLS``: comma-separated ``ws://`` URLs; users spread over them.
- ``HEARTH_LISTENER_TOKEN``, ``HEARTH_MODERATOR_TOKEN``: signed by the
  server's ``HEARTH_SECRET``.
- ``HEARTH_LISTENERS`` (default 6), ``HEARTH_CAPACITY`` (default 3).
- ``HEARTH_TOPIC_BY_NODE=1``: users on node k use topic ``node-k``, which keeps
  every pair on one node (used while cross-node relay is not available).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.queue import Empty, Queue
from locust import User, between, constant, task
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from texts import NOTES, TEXTS  # noqa: E402

URLS = [u for u in os.environ.get("HEARTH_WS_URLS", "ws://127.0.0.1:8000/ws").split(",") if u]
LISTENER_TOKEN = os.environ.get("HEARTH_LISTENER_TOKEN", "")
MODERATOR_TOKEN = os.environ.get("HEARTH_MODERATOR_TOKEN", "")
TOPIC_BY_NODE = os.environ.get("HEARTH_TOPIC_BY_NODE") == "1"
MATCH_TIMEOUT_S = 60.0
ECHO_TIMEOUT_S = 10.0
_placement = itertools.count()
_listener_names = itertools.count()


class Closed(Exception):
    """The server closed the connection while we waited."""


class RoomGone(Exception):
    """The server answered not_in_room: the room ended while our frame was on its way."""


class RoomEnded(Exception):
    """The room ended from the other side while the seeker was in it."""


class HearthUser(User):
    abstract = True

    def on_start(self) -> None:
        self.node = next(_placement) % len(URLS)
        self.ws: ClientConnection | None = None
        self.inbox: Queue[dict[str, Any]] = Queue()
        self.reader: gevent.Greenlet | None = None

    def topic(self) -> str | None:
        return f"node-{self.node}" if TOPIC_BY_NODE else None

    # -- connection -------------------------------------------------------------------

    def event(self, name: str, started: float, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=exc, context={})

    def open(self, hello: dict[str, Any]) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            self.ws = connect(URLS[self.node], open_timeout=10, compression=None,
                              max_size=2**20, legacy=True)
            self.inbox = Queue()
            self.reader = gevent.spawn(self._read, self.ws, self.inbox)
            self.send({"type": "hello", **hello})
            welcome = self.expect("welcome", 10)
        except Exception as exc:
            self.event("hello", started, exc)
            self.close()
            return None
        self.event("hello", started)
        return welcome

    @staticmethod
    def _read(ws: ClientConnection, inbox: Queue[dict[str, Any]]) -> None:
        try:
            for raw in ws:
                inbox.put(json.loads(raw))
        except ConnectionClosed:
            pass
        code = ws.close_code
        inbox.put({"type": "_closed", "code": code})

    def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        self.ws.send(json.dumps(frame))

    def expect(self, kind: str, timeout: float, *, gone: str | None = None,
               **match: Any) -> dict[str, Any]:
        """Frames are handled (``on_frame``) until one of ``kind`` with ``match`` comes.

        With ``gone``, a ``not_in_room`` error for a frame of that type raises
        RoomGone: the room ended while the frame was on its way."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind} within {timeout} s")
            try:
                frame = self.inbox.get(timeout=left)
            except Empty:
                continue
            if frame["type"] == "_closed":
                raise Closed(f"closed by the server with {frame['code']}")
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame
            if (gone is not None and frame["type"] == "error"
                    and frame.get("code") == "not_in_room" and frame.get("ref") == gone):
                raise RoomGone(f"{gone}: the room had ended")
            self.on_frame(frame)

    def on_frame(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "error" and not self.benign(frame):
            self.environment.events.request.fire(
                request_type="WS",
                name=f"error {frame.get('code')} ({frame.get('ref')}, {type(self).__name__})",
                response_time=0,
                response_length=0, exception=RuntimeError(frame.get("message")), context={})

    def benign(self, error: dict[str, Any]) -> bool:
        """An error that is a race, not a fault: the room ended while a staff
        member's reply or look-in was on its way."""
        return False

    def close(self, code: int = 1000) -> None:
        if self.ws is not None:
            try:
                self.ws.close(code)
            except Exception:
                pass
        if self.reader is not None:
            self.reader.kill(block=False)
        self.ws = None
        self.reader = None

    def on_stop(self) -> None:
        self.close()


class SeekerUser(HearthUser):
    weight = 10
    wait_time = between(1, 4)  # between sessions

    @task
    def session(self) -> None:
        if self.open({"role": "seeker"}) is None:
            return
        try:
            started = time.perf_counter()
            self.send({"type": "request", "topic": self.topic(), "language": "en",
                       "note": random.choice(NOTES)})
            try:
                room = self.expect("matched", MATCH_TIMEOUT_S)["room"]
            except (TimeoutError, Closed) as exc:
                self.event("match", started, exc)
                return
            self.event("match", started)
            for n in range(random.randint(3, 8)):
                if not self.say(room, n):
                    return
                gevent.sleep(random.uniform(0.5, 2.5))
            self.send({"type": "leave", "room": room})
            self.expect("ended", ECHO_TIMEOUT_S, room=room)
        except RoomEnded:
            pass
        except (TimeoutError, Closed, ConnectionClosed) as exc:
            self.event("session", time.perf_counter(), exc)
        finally:
            self.close(1000)  # goodbye: the seat ends at once

    def say(self, room: str, n: int) -> bool:
        """Send one message and time its echo; RoomEnded if the room ends first."""
        client_id = f"s-{n}"
        started = time.perf_counter()
        self.send({"type": "message", "room": room, "text": random.choice(TEXTS),
                   "id": client_id})
        try:
            self.expect("message", ECHO_TIMEOUT_S, id=client_id, room=room)
        except (TimeoutError, Closed) as exc:
            self.event("message", started, exc)
            return False
        self.event("message", started)
        return True

    def on_frame(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "ended":
            # The listener left (at the end of a run listeners stop first): this
            # session is over, which is not a failure.
            raise RoomEnded(frame.get("reason"))
        super().on_frame(frame)


class ListenerUser(HearthUser):
    fixed_count = int(os.environ.get("HEARTH_LISTENERS", "6"))
    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.index = next(_listener_names)
        self.rooms: set[str] = set()
        self.pending: dict[str, float] = {}
        self.sent = itertools.count()
        self.shift()

    def shift(self) -> None:
        self.rooms.clear()
        name = f"Listener {self.index}"
        if self.open({"role": "listener", "token": LISTENER_TOKEN, "name": name}) is None:
            gevent.sleep(1)
            return
        topic = self.topic()
        self.send({"type": "shift", "status": "available", "topics": [topic] if topic else [],
                   "languages": [], "capacity": int(os.environ.get("HEARTH_CAPACITY", "3"))})

    @task
    def work(self) -> None:
        if self.ws is None:
            self.shift()
            return
        try:
            self.expect("_never", 5.0)
        except TimeoutError:
            pass
        except (Closed, ConnectionClosed) as exc:
            self.event("listener connection", time.perf_counter(), exc)
            self.close()

    def on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "matched":
            self.rooms.add(frame["room"])
        elif kind == "ended":
            self.rooms.discard(frame["room"])
        elif kind == "message":
            started = self.pending.pop(frame.get("id") or "", None)
            if started is not None:
                self.event("message", started)
            elif frame["from"]["role"] == "seeker":
                gevent.spawn_later(random.uniform(0.5, 2.0), self.reply, frame["room"])
        else:
            super().on_frame(frame)

    def benign(self, error: dict[str, Any]) -> bool:
        return error.get("code") == "not_in_room"

    def reply(self, room: str) -> None:
        if self.ws is None or room not in self.rooms:
            return
        client_id = f"l-{next(self.sent)}"
        self.pending[client_id] = time.perf_counter()
        try:
            self.send({"type": "typing", "room": room})
            self.send({"type": "message", "room": room, "text": random.choice(TEXTS),
                       "id": client_id})
        except Exception:
            self.pending.pop(client_id, None)


class ModeratorUser(HearthUser):
    fixed_count = 1
    wait_time = between(2, 5)

    def on_start(self) -> None:
        super().on_start()
        self.rooms: list[str] = []
        if self.open({"role": "moderator", "token": MODERATOR_TOKEN}) is None:
            return

    def benign(self, error: dict[str, Any]) -> bool:
        return error.get("code") == "not_in_room"

    def on_frame(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "rooms":
            self.rooms = [r["room"] for r in frame["rooms"]]
        elif frame["type"] not in ("escalation", "message", "presence", "ended", "typing"):
            super().on_frame(frame)

    @task(3)
    def room_list(self) -> None:
        if self.ws is None:
            return
        started = time.perf_counter()
        try:
            self.send({"type": "rooms"})
            frame = self.expect("rooms", ECHO_TIMEOUT_S)
            self.rooms = [r["room"] for r in frame["rooms"]]
            self.event("rooms", started)
        except Exception as exc:
            self.event("rooms", started, exc)

    @task(1)
    def watch(self) -> None:
        if self.ws is None or not self.rooms:
            return
        room = random.choice(self.rooms)
        started = time.perf_counter()
        try:
            self.send({"type": "watch", "room": room})
            self.expect("history", ECHO_TIMEOUT_S, gone="watch", room=room)
        except RoomGone:
            # The room ended after the last room list: the server said so at once.
            # Counted on a row of its own, not as a watch's latency or a failure.
            self.event("watch: room had ended", started)
            return
        except Exception as exc:
            self.event("watch", started, exc)
            return
        self.event("watch", started)
        gevent.sleep(random.uniform(1, 3))
        if self.ws is not None:
            self.send({"type": "leave", "room": room})
