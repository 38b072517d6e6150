"""End to end: dropped connections keep their seat; resume replays what was missed."""

from __future__ import annotations

from tests.support.client import Client, listener, seeker
from tests.support.procs import Server


async def test_drop_and_resume_replays_missed_messages(server: Server) -> None:
    """The peer sees away then back; the resumed seeker gets welcome then the missed messages."""
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    s = await seeker(server.ws_url)
    room = (await s.expect("matched"))["room"]
    await lst.expect("matched")
    await s.send({"type": "message", "room": room, "text": "one", "id": "a"})
    await s.expect("message")
    token = s.resume
    s.drop()
    assert (await lst.expect("presence"))["state"] == "away"
    for text in ("two", "three"):
        await lst.send({"type": "message", "room": room, "text": text})
    back = await Client.connect(server.ws_url)
    w = await back.hello(resume=token, since=1)
    assert w["resume"] != token and w["rooms"][0]["room"] == room
    assert [(await back.expect("message"))["text"] for _ in range(2)] == ["two", "three"]
    assert (await lst.expect("presence"))["state"] == "back"
    await back.send({"type": "message", "room": room, "text": "four"})
    assert (await lst.expect("message", text="four"))["seq"] == 4


async def test_resume_token_works_once(server: Server) -> None:
    """A spent resume token closes with 4401."""
    s = await seeker(server.ws_url)
    token = s.resume
    s.drop()
    again = await Client.connect(server.ws_url)
    await again.hello(resume=token)
    third = await Client.connect(server.ws_url)
    await third.send({"type": "hello", "resume": token})
    assert await third.closed() == 4401


async def test_resuming_an_open_seat_closes_the_old_connection_4409(server: Server) -> None:
    """A second tab that resumes takes the seat; the first is closed with 4409."""
    s = await seeker(server.ws_url)
    await s.expect("queued")
    other = await Client.connect(server.ws_url)
    await other.hello(resume=s.resume)
    assert await s.closed() == 4409
    assert (await other.expect("queued"))["position"] == 1


async def test_waiting_seeker_keeps_its_place_across_a_drop(server: Server) -> None:
    """A waiting seeker that drops and resumes is still first and is told so."""
    first = await seeker(server.ws_url)
    await first.expect("queued")
    second = await seeker(server.ws_url)
    await second.expect("queued")
    first.drop()
    back = await Client.connect(server.ws_url)
    await back.hello(resume=first.resume)
    assert (await back.expect("queued"))["position"] == 1


async def test_listener_lost_puts_seeker_back_with_peer_lost(server: Server) -> None:
    """After resume_s a lost listener's room ends with peer_lost and the seeker is queued."""
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    s = await seeker(server.ws_url)
    await s.expect("matched")
    lst.drop()
    assert (await s.expect("presence"))["state"] == "away"
    assert (await s.expect("ended", timeout=4))["reason"] == "peer_lost"
    assert (await s.expect("queued"))["position"] == 1


async def test_seeker_lost_ends_room_for_the_listener(server: Server) -> None:
    """After resume_s a lost seeker's room ends for the listener, who is free again."""
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    s = await seeker(server.ws_url)
    await s.expect("matched")
    await lst.expect("matched")
    s.drop()
    assert (await lst.expect("ended", timeout=4))["reason"] == "peer_lost"
    s2 = await seeker(server.ws_url)
    await s2.expect("matched")


async def test_expired_seat_cannot_be_resumed(server: Server) -> None:
    """After resume_s the token no longer works (4401)."""
    s = await seeker(server.ws_url)
    await s.expect("queued")
    s.drop()
    watcher = await seeker(server.ws_url)
    await watcher.expect("queued", position=2)
    await watcher.expect("queued", position=1, timeout=4)
    late = await Client.connect(server.ws_url)
    await late.send({"type": "hello", "resume": s.resume})
    assert await late.closed() == 4401


async def test_resumed_listener_takes_new_seekers_again(server: Server) -> None:
    """A listener is not matched while away, and is matched again once resumed."""
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    lst.drop()
    s = await seeker(server.ws_url)
    assert (await s.expect("queued"))["on_shift"] in (0, 1)
    await s.nothing("matched", 0.3)
    back = await Client.connect(server.ws_url)
    await back.hello(resume=lst.resume)
    await s.expect("matched")
    await back.expect("matched")
