"""Matching rules, run against every backend through the ``matcher`` fixture."""

from __future__ import annotations

import asyncio
import time

from matching import HELD_FOREVER, Listener, Matcher, Ticket


def ticket(seat: str, risk: str = "normal", topic: str | None = None,
           language: str | None = None) -> Ticket:
    return Ticket(seat, "node-a", risk, topic, language, None)


def shift(seat: str, capacity: int = 1, topics: tuple[str, ...] = (),
          languages: tuple[str, ...] = (), status: str = "available") -> Listener:
    return Listener(seat, "node-a", status, topics, languages, capacity)


async def test_seeker_waits_until_a_listener_arrives(matcher: Matcher) -> None:
    """With nobody on shift a request queues; the listener's shift pairs them."""
    assert await matcher.request(ticket("s1")) == []
    place = (await matcher.places(["s1"]))["s1"]
    assert (place.position, place.waiting, place.on_shift) == (1, 1, 0)
    matches = await matcher.set_shift(shift("l1"))
    assert [(m.ticket.seat, m.listener) for m in matches] == [("s1", "l1")]
    assert await matcher.places(["s1"]) == {}


async def test_queue_order_is_risk_then_arrival(matcher: Matcher) -> None:
    """crisis before elevated before normal; first come first served within a level."""
    for seat, level in [("n1", "normal"), ("e1", "elevated"), ("c1", "crisis"),
                        ("n2", "normal"), ("c2", "crisis")]:
        await matcher.request(ticket(seat, level))
    places = await matcher.places(["n1", "e1", "c1", "n2", "c2"])
    order = sorted(places, key=lambda s: places[s].position)
    assert order == ["c1", "c2", "e1", "n1", "n2"]
    matches = await matcher.set_shift(shift("l1", capacity=5))
    assert [m.ticket.seat for m in matches] == ["c1", "c2", "e1", "n1", "n2"]


async def test_raise_risk_moves_a_waiting_seeker_up(matcher: Matcher) -> None:
    """A seeker whose risk rises overtakes lower-risk seekers."""
    await matcher.request(ticket("a"))
    await matcher.request(ticket("b"))
    await matcher.raise_risk("b", "crisis")
    assert (await matcher.places(["b"]))["b"].position == 1


async def test_head_requeue_goes_before_its_level(matcher: Matcher) -> None:
    """A seeker whose listener was lost goes back ahead of others of its level."""
    await matcher.request(ticket("early"))
    await matcher.request(ticket("back"), head=True)
    await matcher.request(ticket("crisis", "crisis"))
    places = await matcher.places(["early", "back", "crisis"])
    assert places["crisis"].position == 1 and places["back"].position == 2


async def test_topics_and_languages_constrain_pairing(matcher: Matcher) -> None:
    """A listener only takes seekers whose topic and language it covers."""
    await matcher.request(ticket("es", language="es"))
    await matcher.request(ticket("grief", topic="grief", language="en"))
    matches = await matcher.set_shift(shift("l1", 2, topics=("grief",), languages=("en",)))
    assert [m.ticket.seat for m in matches] == ["grief"]
    state = await matcher.listener("l1")
    assert state is not None and state[1] == 0  # the Spanish seeker does not fit
    anyone = await matcher.set_shift(shift("l2"))
    assert [m.ticket.seat for m in anyone] == ["es"]


async def test_a_request_looks_past_every_listener_that_does_not_fit(matcher: Matcher) -> None:
    """40 listeners for another topic come first in fairness order (more than the Redis
    script's first pages of 4 and 32): the seeker still gets the one that fits."""
    for i in range(40):
        await matcher.set_shift(shift(f"grief{i}", topics=("grief",)))
    await matcher.set_shift(shift("anyone"))
    matches = await matcher.request(ticket("s1", topic="work"))
    assert [(m.ticket.seat, m.listener) for m in matches] == [("s1", "anyone")]


async def test_a_seeker_asking_again_keeps_one_place(matcher: Matcher) -> None:
    """A second request from a waiting seat replaces its place, it does not add one; then
    a listener takes it once."""
    await matcher.request(ticket("s1"))
    await matcher.request(ticket("s2"))
    await matcher.request(ticket("s1", topic="work"))
    places = await matcher.places(["s1", "s2"])
    assert (places["s2"].position, places["s1"].position, places["s1"].waiting) == (1, 2, 2)
    matches = await matcher.set_shift(shift("l1", capacity=3))
    assert [m.ticket.seat for m in matches] == ["s2", "s1"]
    assert matches[1].ticket.topic == "work"


async def test_capacity_is_never_exceeded(matcher: Matcher) -> None:
    """A listener of capacity 2 takes two seekers; the third waits."""
    await matcher.set_shift(shift("l1", capacity=2))
    got = [await matcher.request(ticket(f"s{i}")) for i in range(3)]
    assert [len(m) for m in got] == [1, 1, 0]
    state = await matcher.listener("l1")
    assert state is not None and state[0].rooms == 2


async def test_room_end_frees_capacity_and_takes_the_next(matcher: Matcher) -> None:
    """When a room ends its listener takes the next waiting seeker at once."""
    await matcher.set_shift(shift("l1"))
    first = await matcher.request(ticket("s1"))
    await matcher.request(ticket("s2"))
    nxt = await matcher.room_ended(first[0].room)
    assert [m.ticket.seat for m in nxt] == ["s2"]


async def test_fairest_listener_first(matcher: Matcher) -> None:
    """Fewest rooms first, then the one free the longest."""
    await matcher.set_shift(shift("a", capacity=3))
    await matcher.set_shift(shift("b", capacity=3))
    m1 = await matcher.request(ticket("s1"))
    m2 = await matcher.request(ticket("s2"))
    assert {m1[0].listener, m2[0].listener} == {"a", "b"}
    assert m1[0].listener == "a"  # a has been free longer
    m3 = await matcher.request(ticket("s3"))
    assert m3[0].listener == "a"


async def test_break_and_off_take_no_new_seekers(matcher: Matcher) -> None:
    """A listener on break or off is not matched; back to available, it is."""
    await matcher.set_shift(shift("l1", status="break"))
    assert await matcher.request(ticket("s1")) == []
    await matcher.set_shift(shift("l1", status="off"))
    assert (await matcher.places(["s1"]))["s1"].on_shift == 0
    matches = await matcher.set_shift(shift("l1"))
    assert [m.ticket.seat for m in matches] == ["s1"]


async def test_hold_keeps_a_listener_from_new_matches_until_lifted(matcher: Matcher) -> None:
    """A held listener (crisis room, cool-down) is skipped; lifting the hold pairs."""
    await matcher.set_shift(shift("l1", capacity=3))
    await matcher.hold("l1", HELD_FOREVER)
    assert await matcher.request(ticket("s1")) == []
    await matcher.hold("l1", time.time() + 60)
    assert await matcher.request(ticket("s2")) == []
    matches = await matcher.hold("l1", 0)
    assert [m.ticket.seat for m in matches] == ["s1", "s2"]


async def test_cancel_and_drop_listener(matcher: Matcher) -> None:
    """A cancelled seeker leaves the queue; a dropped listener takes no one."""
    await matcher.request(ticket("s1"))
    assert await matcher.cancel("s1")
    assert not await matcher.cancel("s1")
    await matcher.set_shift(shift("l1"))
    await matcher.drop_listener("l1")
    assert await matcher.request(ticket("s2")) == []
    assert await matcher.listener("l1") is None


async def test_estimate_is_null_without_history_then_from_service_rate(matcher: Matcher) -> None:
    """No history: estimate_s is None; after several matches it is a positive number."""
    await matcher.request(ticket("w", language="es"))
    assert (await matcher.places(["w"]))["w"].estimate_s is None
    await matcher.set_shift(shift("l1", capacity=5, languages=("en",)))
    for i in range(4):
        await matcher.request(ticket(f"s{i}", language="en"))
    place = (await matcher.places(["w"]))["w"]
    assert place.estimate_s is not None and place.estimate_s >= 1


async def test_listeners_answers_for_many_seats_at_once(matcher: Matcher) -> None:
    """listeners() gives each listener's shift and fitting waiters, as listener() does."""
    await matcher.request(ticket("g", topic="grief"))
    await matcher.request(ticket("w", topic="work"))
    await matcher.set_shift(shift("l1", topics=("grief",), status="break"))
    await matcher.set_shift(shift("l2", capacity=2, status="break"))
    states = await matcher.listeners(["l1", "l2", "nobody"])
    assert sorted(states) == ["l1", "l2"]
    assert (states["l1"][1], states["l2"][1]) == (1, 2)
    assert (states["l2"][0].capacity, states["l2"][0].status) == (2, "break")
    for seat in ("l1", "l2"):
        single = await matcher.listener(seat)
        assert single is not None
        assert (single[0].topics, single[1]) == (states[seat][0].topics, states[seat][1])
    assert await matcher.listeners([]) == {}


async def test_fairness_follows_room_ends_and_capacity_changes(matcher: Matcher) -> None:
    """The listener whose room ended first is free the longest; a full listener whose
    capacity grows takes seekers again."""
    await matcher.set_shift(shift("a"))
    await matcher.set_shift(shift("b"))
    ra = await matcher.request(ticket("s1"))
    rb = await matcher.request(ticket("s2"))
    assert (ra[0].listener, rb[0].listener) == ("a", "b")
    assert await matcher.request(ticket("s3")) == []  # both full
    assert await matcher.cancel("s3")
    await matcher.room_ended(rb[0].room)
    await matcher.room_ended(ra[0].room)
    assert (await matcher.request(ticket("s4")))[0].listener == "b"  # b was free first
    await matcher.set_shift(shift("b", capacity=2))
    assert (await matcher.request(ticket("s5")))[0].listener == "a"  # fewest rooms
    assert (await matcher.request(ticket("s6")))[0].listener == "b"  # a is full now


async def test_calls_made_together_apply_in_call_order(matcher: Matcher) -> None:
    """Requests made concurrently queue in the order they were made."""
    seats = [f"s{i}" for i in range(12)]
    await asyncio.gather(*(matcher.request(ticket(s)) for s in seats))
    places = await matcher.places(seats)
    assert [places[s].position for s in seats] == list(range(1, 13))
