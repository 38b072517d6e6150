"""Prometheus metrics: counts and latencies only.

No label ever carries a room id, an alias, message text or an address; label
values come from fixed sets (roles, frame types, codes, risk levels).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

CONNECTED = Gauge("hearth_connections", "Open connections with a seat", ["role"],
                  registry=REGISTRY)
ERRORS = Counter("hearth_errors_total", "Error frames sent", ["code"], registry=REGISTRY)
CLOSES = Counter("hearth_closes_total", "Connections closed by the server", ["code"],
                 registry=REGISTRY)
ESCALATIONS = Counter("hearth_escalations_total", "Escalations to moderators", ["by"],
                      registry=REGISTRY)
ROOMS = Gauge("hearth_rooms", "Rooms open on this node", registry=REGISTRY)
WAITING = Gauge("hearth_queue_waiting", "Seekers waiting", registry=REGISTRY)
ON_SHIFT = Gauge("hearth_listeners_on_shift", "Listeners available", registry=REGISTRY)

KNOWN_TYPES = frozenset({
    "hello", "request", "cancel", "shift", "message", "typing", "leave", "escalate", "rooms",
    "watch", "join", "close", "whisper",
})


# Upper bounds (le) of the frame handling histogram, in seconds. Typed as a tuple of
# any length: compiled, a tuple of ten floats is kept unboxed and boxed again, ten new
# floats, at every use.
HANDLE_BUCKETS: Final[tuple[float, ...]] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5)
# Upper bounds of the match wait histogram (request to match), in seconds.
WAIT_BUCKETS: Final[tuple[float, ...]] = (
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
RISKS: Final = ("normal", "elevated", "crisis")


class _Counts:
    """What changes on every frame, kept as plain numbers and turned into metrics
    when scraped (:class:`_PerFrame`): a prometheus_client Counter or Histogram
    takes a lock on every update (three a message, ~8 % of the relay's CPU in the
    profile), and the event loop that updates these is one thread. A class of its
    own, not the collector: compiled, its attributes are read and written in C,
    where the collector's (a subclass of a Python class) were looked up by name,
    ~3,000 instructions a frame with the histogram's bucket search (callgrind)."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = dict.fromkeys((*KNOWN_TYPES, "other"), 0)
        self.messages = 0
        self.handled = [0] * (len(HANDLE_BUCKETS) + 1)  # the last: above every bound
        self.handled_s = 0.0
        # What changes on every pairing, likewise (~23,000 instructions a pairing
        # through prometheus_client's labels, locks and bucket search; callgrind).
        self.requests: dict[str, int] = dict.fromkeys(RISKS, 0)
        self.matches = 0
        self.waited = [0] * (len(WAIT_BUCKETS) + 1)
        self.waited_s = 0.0
        self.ended: dict[str, int] = {}  # by reason: a fixed set of words (home.end_room)


_COUNTS: Final = _Counts()


class _PerFrame(Collector):
    """The per-frame and per-pairing counts (:data:`_COUNTS`) as metrics, read when
    scraped."""

    def collect(self) -> Iterator[Metric]:
        counts = _COUNTS
        yield _labelled("hearth_frames_received", "Frames received", "type", counts.frames)
        yield CounterMetricFamily("hearth_messages", "Room messages relayed",
                                  value=counts.messages)
        yield _histogram("hearth_frame_handle_seconds", "Time to handle one frame",
                         HANDLE_BUCKETS, counts.handled, counts.handled_s)
        yield _labelled("hearth_requests", "Seekers queued", "risk", counts.requests)
        yield CounterMetricFamily("hearth_matches", "Seekers paired with a listener",
                                  value=counts.matches)
        yield _histogram("hearth_match_wait_seconds", "Time from request to match",
                         WAIT_BUCKETS, counts.waited, counts.waited_s)
        yield _labelled("hearth_rooms_ended", "Rooms ended", "reason", counts.ended)


def _labelled(name: str, documentation: str, label: str, counts: dict[str, int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, n in counts.items():
        family.add_metric([value], n)
    return family


def _histogram(name: str, documentation: str, bounds: tuple[float, ...], counts: list[int],
               total: float) -> Metric:
    cumulative, buckets = 0, []
    for bound, n in zip((*(str(b) for b in bounds), "+Inf"), counts, strict=True):
        cumulative += n
        buckets.append((bound, cumulative))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=total)


REGISTRY.register(_PerFrame())


def count_frame(kind: object) -> None:
    """Count a received frame under its type, or "other" for one Hearth does not know."""
    frames = _COUNTS.frames  # its keys: KNOWN_TYPES and "other"
    if isinstance(kind, str) and kind in frames:
        frames[kind] += 1
    else:
        frames["other"] += 1


def count_message() -> None:
    _COUNTS.messages += 1


def bucket(seconds: float, bounds: tuple[float, ...] = HANDLE_BUCKETS) -> int:
    """The index of the first bound at or above ``seconds`` (le), as bisect_left:
    a loop that compiled runs in C, where bisect_left was a call through the
    interpreter's protocol; nearly every frame stops at the first or second."""
    i = 0
    for bound in bounds:
        if seconds <= bound:
            break
        i += 1
    return i


def observe_handle(seconds: float) -> None:
    counts = _COUNTS
    counts.handled[bucket(seconds)] += 1
    counts.handled_s += seconds


def count_request(risk: str) -> None:
    """A seeker queued, by risk level (one of :data:`RISKS`)."""
    requests = _COUNTS.requests
    requests[risk] = requests.get(risk, 0) + 1


def count_match(waited_s: float) -> None:
    counts = _COUNTS
    counts.matches += 1
    counts.waited[bucket(waited_s, WAIT_BUCKETS)] += 1
    counts.waited_s += waited_s


def count_room_ended(reason: str) -> None:
    ended = _COUNTS.ended
    ended[reason] = ended.get(reason, 0) + 1


def render() -> bytes:
    return generate_latest(REGISTRY)
