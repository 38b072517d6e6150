"""End to end: queue, matching, chat, leaving, escalation, over real sockets."""

from __future__ import annotations

import asyncio

from tests.support.client import Client, listener, moderator, seeker
from tests.support.procs import Server


async def pair(server: Server, **request: object) -> tuple[Client, Client, str]:
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    s = await seeker(server.ws_url, **request)
    room = (await s.expect("matched"))["room"]
    await lst.expect("matched", room=room)
    return s, lst, room


async def test_seeker_queues_with_position_then_is_matched(server: Server) -> None:
    """queued at once (position, waiting, estimate), then matched when a listener comes."""
    s1 = await seeker(server.ws_url, topic="anxiety", language="en", note="can't sleep")
    q = await s1.expect("queued")
    assert (q["position"], q["waiting"], q["estimate_s"], q["on_shift"]) == (1, 1, None, 0)
    s2 = await seeker(server.ws_url)
    assert (await s2.expect("queued"))["position"] == 2
    assert (await s1.expect("queued"))["waiting"] == 2  # sent again when the queue changes
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    m = await s1.expect("matched")
    assert m["peer"] == {"role": "listener", "alias": "Sam"}
    assert (m["topic"], m["language"]) == ("anxiety", "en")
    lm = await lst.expect("matched")
    assert lm["room"] == m["room"] and lm["note"] == "can't sleep" and lm["risk"] == "normal"
    assert lm["peer"]["role"] == "seeker" and lm["peer"]["alias"] == s1.welcome["alias"]
    assert (await s2.expect("queued"))["position"] == 1


async def test_messages_go_both_ways_with_seq_echo_and_id(server: Server) -> None:
    """Every member gets each message, the sender's echo carries its own id."""
    s, lst, room = await pair(server)
    await s.send({"type": "message", "room": room, "text": " hi <b>there</b> ", "id": "c-1"})
    echo = await s.expect("message")
    got = await lst.expect("message")
    assert echo == got
    assert (got["seq"], got["id"], got["text"]) == (1, "c-1", "hi <b>there</b>")
    assert got["from"] == {"role": "seeker", "alias": s.welcome["alias"]}
    assert isinstance(got["ts"], int) and got["ts"] > 1_700_000_000_000
    await lst.send({"type": "message", "room": room, "text": "hello", "id": "l-1"})
    assert (await s.expect("message"))["seq"] == 2
    assert (await lst.expect("message"))["id"] == "l-1"


async def test_typing_reaches_the_other_side_only(server: Server) -> None:
    """typing goes to the peer with who is typing, not back to the typist."""
    s, lst, room = await pair(server)
    await s.send({"type": "typing", "room": room})
    t = await lst.expect("typing")
    assert t["from"]["role"] == "seeker" and t["room"] == room
    await s.nothing("typing")


async def test_seeker_leaves(server: Server) -> None:
    """The leaver gets ended/left, the listener ended/peer_left and is free again."""
    s, lst, room = await pair(server)
    await s.send({"type": "leave", "room": room})
    assert (await s.expect("ended"))["reason"] == "left"
    assert (await lst.expect("ended"))["reason"] == "peer_left"
    s2 = await seeker(server.ws_url)
    await s2.expect("matched")


async def test_listener_leaves_and_seeker_goes_back_to_the_head(server: Server) -> None:
    """When the listener leaves, the seeker is queued again ahead of later arrivals."""
    s, lst, room = await pair(server)
    other = await seeker(server.ws_url)
    await other.expect("queued")
    await lst.send({"type": "shift", "status": "break"})
    await lst.send({"type": "leave", "room": room})
    assert (await lst.expect("ended"))["reason"] == "left"
    assert (await s.expect("ended"))["reason"] == "peer_left"
    assert (await s.expect("queued"))["position"] == 1
    assert (await other.expect("queued", position=2))["waiting"] == 2


async def test_cancel_leaves_the_queue(server: Server) -> None:
    """cancel answers cancelled and the seeker is no longer counted."""
    s1 = await seeker(server.ws_url)
    s2 = await seeker(server.ws_url)
    await s2.expect("queued", position=2)
    await s1.send({"type": "cancel"})
    await s1.expect("cancelled")
    assert (await s2.expect("queued", position=1))["waiting"] == 1


async def test_crisis_note_goes_first_in_the_queue(server: Server) -> None:
    """A crisis seeker overtakes earlier normal ones and its listener sees the risk."""
    calm = await seeker(server.ws_url, note="I had a rough day at work")
    await calm.expect("queued")
    urgent = await seeker(server.ws_url,
                          note="I have the pills ready and I'm going to take them all tonight")
    assert (await urgent.expect("queued"))["position"] == 1
    assert (await urgent.expect("resources"))["items"]
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    m = await lst.expect("matched")
    assert m["risk"] == "crisis" and m["peer"]["alias"] == urgent.welcome["alias"]
    await urgent.expect("matched")


async def test_capacity_and_break(server: Server) -> None:
    """A listener of capacity 2 gets two rooms; on break it gets no more."""
    lst = await listener(server.ws_url, server.token("listener", "Sam"), capacity=2)
    a = await seeker(server.ws_url)
    b = await seeker(server.ws_url)
    room_a = (await a.expect("matched"))["room"]
    await b.expect("matched")
    c = await seeker(server.ws_url)
    assert (await c.expect("queued"))["position"] == 1
    state = await lst.expect("shift", rooms=2)
    assert state["status"] == "available"
    await lst.send({"type": "shift", "status": "break"})
    await lst.expect("shift", status="break")
    await a.send({"type": "leave", "room": room_a})
    await lst.expect("ended", room=room_a)
    await c.nothing("matched", 0.4)
    await lst.send({"type": "shift", "status": "available"})
    await c.expect("matched")


async def test_listener_shift_reports_waiting_for_its_topics(server: Server) -> None:
    """shift.waiting counts the seekers this listener could take, and updates."""
    lst = await listener(server.ws_url, server.token("listener", "Sam"), topics=["grief"])
    await lst.send({"type": "shift", "status": "break"})
    await lst.expect("shift", status="break")
    s = await seeker(server.ws_url, topic="grief")
    await s.expect("queued")
    assert (await lst.expect("shift", waiting=1))["rooms"] == 0
    await seeker(server.ws_url, topic="anxiety")
    await lst.nothing("shift", 0.3)


async def test_escalate_reaches_moderators(server: Server) -> None:
    """A seeker's report is acknowledged and moderators see the escalation."""
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    s, lst, room = await pair(server)
    await s.send({"type": "escalate", "room": room, "reason": "I feel unsafe"})
    assert (await s.expect("escalated"))["room"] == room
    e = await mod.expect("escalation")
    assert (e["room"], e["by"], e["reason"]) == (room, "seeker", "I feel unsafe")
    assert e["risk"] == "normal"
    rooms = await mod.expect("rooms", timeout=2)
    while not any(r["escalated"] for r in rooms["rooms"]):
        rooms = await mod.expect("rooms", timeout=2)
    await lst.send({"type": "escalate", "room": room})
    assert (await mod.expect("escalation"))["by"] == "listener"


async def test_idle_room_ends(make_server) -> None:  # type: ignore[no-untyped-def]
    """A room with no message for the idle limit ends with idle for both."""
    srv = make_server("--idle-timeout-s", "1")
    s, lst, room = await pair(srv)
    assert (await s.expect("ended", timeout=4))["reason"] == "idle"
    assert (await lst.expect("ended", timeout=2))["reason"] == "idle"


async def test_goodbye_close_ends_the_room_at_once(server: Server) -> None:
    """A seeker that closes with 1000 is gone: the listener gets peer_left now."""
    s, lst, room = await pair(server)
    await s.close(1000)
    assert (await lst.expect("ended", timeout=1))["reason"] == "peer_left"


async def test_many_rooms_relay_in_order(server: Server) -> None:
    """Messages in several concurrent rooms arrive in order with gap-free seq."""
    await listener(server.ws_url, server.token("listener", "Sam"), capacity=5)
    seekers = [await seeker(server.ws_url) for _ in range(5)]
    rooms = [(await s.expect("matched"))["room"] for s in seekers]
    for i in range(10):  # the rate window's worth
        await asyncio.gather(*(s.send({"type": "message", "room": r, "text": f"{i}"})
                               for s, r in zip(seekers, rooms, strict=True)))
    for s, r in zip(seekers, rooms, strict=True):
        seqs = [(await s.expect("message", room=r))["seq"] for _ in range(10)]
        assert seqs == list(range(1, 11))
