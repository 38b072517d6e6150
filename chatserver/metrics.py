"""Prometheus metrics: counts and latencies only.

No label ever carries a room id, an alias, message text or an address; label
values come from fixed sets (roles, frame types, codes, risk levels).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

CONNECTED = Gauge("hearth_connections", "Open connections with a seat", ["role"],
                  registry=REGISTRY)
FRAMES = Counter("hearth_frames_received_total", "Frames received", ["type"], registry=REGISTRY)
ERRORS = Counter("hearth_errors_total", "Error frames sent", ["code"], registry=REGISTRY)
CLOSES = Counter("hearth_closes_total", "Connections closed by the server", ["code"],
                 registry=REGISTRY)
REQUESTS = Counter("hearth_requests_total", "Seekers queued", ["risk"], registry=REGISTRY)
MATCHES = Counter("hearth_matches_total", "Seekers paired with a listener", registry=REGISTRY)
MATCH_WAIT = Histogram(
    "hearth_match_wait_seconds", "Time from request to match", registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800),
)
MESSAGES = Counter("hearth_messages_total", "Room messages relayed", registry=REGISTRY)
HANDLE_SECONDS = Histogram(
    "hearth_frame_handle_seconds", "Time to handle one frame", registry=REGISTRY,
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5),
)
ESCALATIONS = Counter("hearth_escalations_total", "Escalations to moderators", ["by"],
                      registry=REGISTRY)
ROOMS_ENDED = Counter("hearth_rooms_ended_total", "Rooms ended", ["reason"], registry=REGISTRY)
ROOMS = Gauge("hearth_rooms", "Rooms open on this node", registry=REGISTRY)
WAITING = Gauge("hearth_queue_waiting", "Seekers waiting", registry=REGISTRY)
ON_SHIFT = Gauge("hearth_listeners_on_shift", "Listeners available", registry=REGISTRY)

KNOWN_TYPES = frozenset({
    "hello", "request", "cancel", "shift", "message", "typing", "leave", "escalate", "rooms",
    "watch", "join", "close", "whisper",
})


def frame_type_label(kind: object) -> str:
    return kind if isinstance(kind, str) and kind in KNOWN_TYPES else "other"


# Children resolved once: labels() is a lock and a dict lookup per call.
_FRAME_COUNTERS = {kind: FRAMES.labels(kind) for kind in (*KNOWN_TYPES, "other")}


def count_frame(kind: object) -> None:
    _FRAME_COUNTERS[frame_type_label(kind)].inc()


def render() -> bytes:
    return generate_latest(REGISTRY)
