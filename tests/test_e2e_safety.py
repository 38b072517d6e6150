"""End to end: crisis triage, escalation within a second, holds and cool-down,
contact masking."""

from __future__ import annotations

import time

from tests.support.client import Client, listener, moderator, seeker
from tests.support.procs import Server

CRISIS = "i took all my pills an hour ago and i want to die tonight"


async def pair(server: Server, **kw: object) -> tuple[Client, Client, str]:
    lst = await listener(server.ws_url, server.token("listener", "Sam"), **kw)  # type: ignore[arg-type]
    s = await seeker(server.ws_url, language="en")
    room = (await s.expect("matched"))["room"]
    await lst.expect("matched", room=room)
    return s, lst, room


async def test_crisis_message_escalates_within_a_second(make_server) -> None:  # type: ignore[no-untyped-def]
    """Mid-chat crisis text: seeker gets resources, every moderator gets a system escalation
    within 1 s, the listener sees the risk and is held from new matches."""
    srv = make_server("--cooldown-s", "1.5")
    mods = [await moderator(srv.ws_url, srv.token("moderator", f"Mod {i}")) for i in range(2)]
    s, lst, room = await pair(srv, capacity=2)
    sent = time.monotonic()
    await s.send({"type": "message", "room": room, "text": CRISIS})
    for mod in mods:
        e = await mod.expect("escalation", timeout=1.0)
        assert (e["room"], e["by"], e["risk"], e["reason"]) == (room, "system", "crisis", "crisis")
    assert time.monotonic() - sent < 1.0
    items = (await s.expect("resources", timeout=1.0))["items"]
    assert items and all(i["name"] and (i["contact"] or i["url"]) for i in items)
    assert (await lst.expect("risk"))["risk"] == "crisis"
    await s.nothing("risk")
    held = await lst.expect("shift", timeout=2)
    while held["hold"] is None:
        held = await lst.expect("shift", timeout=2)
    assert held["hold"] == {"reason": "crisis_room"}
    second = await seeker(srv.ws_url)
    await second.nothing("matched", 0.5)  # capacity 2, but held
    await s.send({"type": "leave", "room": room})
    cool = await lst.expect("shift", timeout=2)
    while (cool["hold"] or {}).get("reason") != "cooldown":
        cool = await lst.expect("shift", timeout=2)
    assert 0 < cool["hold"]["remaining_s"] <= 2
    await second.nothing("matched", 0.5)
    assert (await second.expect("matched", timeout=3))["peer"]["alias"] == "Sam"
    after = await lst.expect("shift", timeout=2)
    while after["hold"] is not None:
        after = await lst.expect("shift", timeout=2)


async def test_resources_reach_the_seeker_with_no_moderator_online(server: Server) -> None:
    """Resources do not depend on a moderator being there, and follow the language."""
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    s = await seeker(server.ws_url, language="es")
    room = (await s.expect("matched"))["room"]
    await s.send({"type": "message", "room": room,
                  "text": "me quiero matar esta noche, ya tengo las pastillas"})
    items = (await s.expect("resources", timeout=1.0))["items"]
    assert items and any("024" in (i["contact"] + i["name"]) for i in items)
    await lst.expect("risk")


async def test_hyperbole_does_not_escalate(server: Server) -> None:
    """Everyday hyperbole stays normal: no resources, no escalation."""
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    s, lst, room = await pair(server)
    await s.send({"type": "message", "room": room, "text": "this homework is killing me lol"})
    await lst.expect("message")
    await s.nothing("resources", 0.4)
    await mod.nothing("escalation", 0.1)


async def test_elevated_message_raises_risk_without_crisis_escalation(server: Server) -> None:
    """Passive ideation raises the room to elevated; the listener sees it; no resources."""
    s, lst, room = await pair(server)
    await s.send({"type": "message", "room": room,
                  "text": "honestly everyone would be better off without me"})
    assert (await lst.expect("risk"))["risk"] == "elevated"
    await s.nothing("resources", 0.3)


async def test_contact_details_are_masked_and_escalated(server: Server) -> None:
    """Phone numbers and e-mails are replaced before relay; the sender is told why;
    moderators get a contact_info escalation."""
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    s, lst, room = await pair(server)
    await lst.send({"type": "message", "room": room,
                    "text": "text me on +1 415 555 0132 or mail sam.helper@example.com"})
    got = await s.expect("message")
    assert "555" not in got["text"] and "example.com" not in got["text"]
    assert "text me on" in got["text"]
    notice = await lst.expect("notice")
    assert notice["code"] == "contact_info" and notice["room"] == room
    e = await mod.expect("escalation")
    assert (e["by"], e["reason"]) == ("system", "contact_info")


async def test_escalation_frames_reach_moderators_on_join_later(server: Server) -> None:
    """A moderator who arrives after an escalation sees the room flagged in rooms."""
    s, lst, room = await pair(server)
    await s.send({"type": "escalate", "room": room})
    await s.expect("escalated")  # the flag is set before this acknowledgement is sent
    mod = await Client.connect(server.ws_url)
    await mod.hello(role="moderator", token=server.token("moderator", "Late"))
    rooms = (await mod.expect("rooms"))["rooms"]
    assert [r["escalated"] for r in rooms if r["room"] == room] == [True]


async def test_messages_scored_together_each_raise_their_own_room(server: Server) -> None:
    """Seeker messages sent at once are scored in one batch (talk.SCORE_BATCH_S):
    each room's risk follows its own messages, in order, and a calm room hears nothing."""
    lst = await listener(server.ws_url, server.token("listener", "Sam"), capacity=3)
    seekers = [await seeker(server.ws_url, language="en") for _ in range(3)]
    rooms = [(await s.expect("matched"))["room"] for s in seekers]
    texts = [
        ["i had a long day at work", CRISIS],  # normal, then crisis: one rise, to crisis
        ["honestly everyone would be better off without me", CRISIS],  # two rises
        ["thanks, that helps a lot"],  # stays normal
    ]
    for s, room, said in zip(seekers, rooms, texts, strict=True):
        for text in said:
            await s.send({"type": "message", "room": room, "text": text})
    risks: dict[str, list[str]] = {room: [] for room in rooms}
    for _ in range(3):
        frame = await lst.expect("risk", timeout=2.0)
        risks[frame["room"]].append(frame["risk"])
    await lst.nothing("risk", 0.3)
    assert risks == {rooms[0]: ["crisis"], rooms[1]: ["elevated", "crisis"], rooms[2]: []}
    for s, wanted in zip(seekers, [True, True, False], strict=True):
        if wanted:
            await s.expect("resources", timeout=1.0)
        else:
            await s.nothing("resources", 0.1)
