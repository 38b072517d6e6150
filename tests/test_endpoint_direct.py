"""Client frames taken at once by Hearth's protocol (``endpoint._read`` and
``wsfast.Inbox``), on a real uvicorn server in this process with real clients."""

from __future__ import annotations

from chatserver import tokens
from tests.support.client import listener, seeker
from tests.support.inprocess import InProcess


async def test_a_chat_is_handled_in_the_protocols_read_and_in_order() -> None:
    """Messages arrive in order and are answered as before, and those that came while
    their connection's reader waited were handled without waking it."""
    server = await InProcess().start()
    try:
        lst = await listener(server.url, tokens.issue(server.settings.secret, "listener",
                                                      "Sam", 1))
        s = await seeker(server.url, note="a hard week")
        room = (await s.expect("matched"))["room"]
        await lst.expect("matched")
        taken = sum(p.queue.taken for p in server.server.server_state.connections)
        for i in range(10):
            await s.send({"type": "message", "room": room, "text": f"s{i}", "id": f"s{i}"})
            await lst.send({"type": "message", "room": room, "text": f"l{i}", "id": f"l{i}"})
        for c in (s, lst):
            got = [(await c.expect("message"))["text"] for _ in range(20)]
            assert [t for t in got if t[0] == "s"] == [f"s{i}" for i in range(10)]
            assert [t for t in got if t[0] == "l"] == [f"l{i}" for i in range(10)]
        await s.send({"type": "message", "room": "nope", "text": "hi"})
        assert (await s.expect("error"))["code"] == "not_in_room"
        await s.send({"type": "leave", "room": room})  # a frame whose handler awaits
        await s.expect("ended")
        await lst.expect("ended")
        after = sum(p.queue.taken for p in server.server.server_state.connections)
        assert after - taken >= 20
        await s.close()
        await lst.close()
    finally:
        await server.stop()
