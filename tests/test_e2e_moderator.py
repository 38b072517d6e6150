"""End to end: the moderator's rooms, watch, join, close, whisper and block."""

from __future__ import annotations

import asyncio

from tests.support.client import Client, listener, moderator, seeker
from tests.support.procs import Server


async def pair(server: Server) -> tuple[Client, Client, str]:
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    s = await seeker(server.ws_url, topic="grief", language="en")
    room = (await s.expect("matched"))["room"]
    await lst.expect("matched")
    return s, lst, room


async def test_rooms_list_is_pushed_and_answered(server: Server) -> None:
    """A new room appears in rooms pushed to moderators; {type: rooms} answers too."""
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    s, lst, room = await pair(server)
    pushed = await mod.expect("rooms")
    entry = next(r for r in pushed["rooms"] if r["room"] == room)
    assert entry["topic"] == "grief" and entry["language"] == "en"
    assert entry["risk"] == "normal" and entry["escalated"] is False
    assert entry["members"] == {"seeker": 1, "listener": 1} and entry["age_s"] >= 0
    await mod.send({"type": "rooms"})
    assert any(r["room"] == room for r in (await mod.expect("rooms"))["rooms"])


async def test_watch_is_silent_and_cannot_speak(server: Server) -> None:
    """A watcher gets history and live messages, nobody is told, and it cannot speak."""
    s, lst, room = await pair(server)
    await s.send({"type": "message", "room": room, "text": "before"})
    await lst.expect("message")
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    await mod.send({"type": "watch", "room": room})
    hist = await mod.expect("history")
    assert [m["text"] for m in hist["messages"]] == ["before"]
    await s.nothing("presence")
    await lst.send({"type": "message", "room": room, "text": "after"})
    assert (await mod.expect("message"))["text"] == "after"
    await mod.send({"type": "message", "room": room, "text": "hi"})
    assert (await mod.expect("error"))["code"] == "not_allowed"
    await mod.send({"type": "whisper", "room": room, "text": "psst"})
    assert (await mod.expect("error"))["code"] == "not_allowed"


async def test_join_is_announced_and_can_speak(server: Server) -> None:
    """Joining announces presence; the moderator's messages reach both members."""
    s, lst, room = await pair(server)
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    await mod.send({"type": "join", "room": room})
    await mod.expect("history")
    p = await s.expect("presence")
    assert p["who"] == {"role": "moderator", "alias": "Mod Ana"} and p["state"] == "joined"
    await lst.expect("presence", state="joined")
    await mod.send({"type": "message", "room": room, "text": "I'm here too"})
    assert (await s.expect("message"))["from"]["role"] == "moderator"
    await mod.send({"type": "leave", "room": room})
    assert (await s.expect("presence"))["state"] == "left"


async def test_watch_unknown_room_is_not_in_room(server: Server) -> None:
    """Watching a room that does not exist answers not_in_room."""
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    await mod.send({"type": "watch", "room": "no-such-room"})
    assert (await mod.expect("error"))["code"] == "not_in_room"


async def test_close_ends_the_room_for_everyone(server: Server) -> None:
    """close sends ended/closed to both members and the room leaves the list."""
    s, lst, room = await pair(server)
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    await mod.send({"type": "close", "room": room, "reason": "rules"})
    assert (await s.expect("ended"))["reason"] == "closed"
    assert (await lst.expect("ended"))["reason"] == "closed"
    await s.nothing("queued")
    rooms = await mod.expect("rooms")
    while any(r["room"] == room for r in rooms["rooms"]):
        rooms = await mod.expect("rooms")


async def test_whisper_reaches_the_listener_only(server: Server) -> None:
    """A joined moderator's whisper goes to the listener (and moderators), never the seeker."""
    s, lst, room = await pair(server)
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    await mod.send({"type": "join", "room": room})
    await mod.expect("history")
    await mod.send({"type": "whisper", "room": room, "text": "ask about their safety plan"})
    w = await lst.expect("whisper")
    assert w["text"] == "ask about their safety plan" and w["from"]["alias"] == "Mod Ana"
    await mod.expect("whisper")
    await s.nothing("whisper", 0.4)
    await mod.send({"type": "watch", "room": room})
    await mod.expect("history")
    assert [m["type"] for m in s.inbox if m["type"] == "whisper"] == []


async def test_close_with_block_removes_the_seeker_and_refuses_a_new_request(
        server: Server) -> None:
    """A blocking close ends the seeker's seat with 4403; a new request from there is refused."""
    s, lst, room = await pair(server)
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    await mod.send({"type": "close", "room": room, "block": True})
    assert (await s.expect("ended"))["reason"] == "closed"
    assert await s.closed() == 4403
    again = await seeker(server.ws_url)
    assert (await again.expect("error"))["code"] == "not_allowed"
    spent = await Client.connect(server.ws_url)
    await spent.send({"type": "hello", "resume": s.resume})
    assert await spent.closed() == 4401


async def test_typing_in_many_rooms_goes_out_once_a_second_in_each(server: Server) -> None:
    """A moderator who joined nine rooms types in each twice at once: every room hears
    it once. (A connection forgets a room's last typing time once a second has passed
    and it holds eight or more: the second round is held back all the same.)"""
    _on_shift = [await listener(server.ws_url, server.token("listener", f"L{i}"), capacity=5)
                 for i in range(2)]
    seekers = [await seeker(server.ws_url) for _ in range(9)]
    rooms = [(await s.expect("matched"))["room"] for s in seekers]
    mod = await moderator(server.ws_url, server.token("moderator", "Mod Ana"))
    for room in rooms:
        await mod.send({"type": "join", "room": room})
        await mod.expect("history")
    for _ in range(2):
        for room in rooms:
            await mod.send({"type": "typing", "room": room})

    async def hears_once(s: Client, room: str) -> None:
        t = await s.expect("typing")
        assert (t["room"], t["from"]["role"]) == (room, "moderator")
        await s.nothing("typing", 0.5)

    await asyncio.gather(*(hears_once(s, r) for s, r in zip(seekers, rooms, strict=True)))
