"""Pure tests of the room state machine (sequence, history, risk, membership)."""

from __future__ import annotations

import gc

from chatserver.rooms import Member, Room


def make_room() -> Room:
    room = Room("r1", "grief", "en", "first words", "normal", 1000.0, 0.0, history_size=3)
    room.add(Member("s", "seeker", "Quiet Fox", "member"))
    room.add(Member("l", "listener", "Sam", "member"))
    return room


def test_post_numbers_messages_from_one_and_keeps_client_id() -> None:
    """seq starts at 1 and rises by one; the client's id is echoed."""
    room = make_room()
    seeker = room.member("s")
    assert seeker is not None
    first = room.post(seeker, "hello", "c-1", 123, 1.0).frame
    second = room.post(seeker, "again", None, 124, 2.0).frame
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["id"] == "c-1" and "id" not in second
    assert first["from"] == {"role": "seeker", "alias": "Quiet Fox"}
    assert room.last_active == 2.0


def test_history_is_bounded_and_since_replays_the_missed() -> None:
    """Only the recent messages are kept, and since(n) gives those after n."""
    room = make_room()
    listener = room.member("l")
    assert listener is not None
    for i in range(5):
        room.post(listener, f"m{i}", None, i, float(i))
    assert [m["seq"] for m in room.messages()] == [3, 4, 5]
    assert [m.frame["seq"] for m in room.since(4)] == [5]
    assert room.since(4)[0].frame["text"] == "m4"


def test_history_holds_nothing_the_garbage_collector_tracks() -> None:
    """A kept message adds no object the collector must walk: with a thousand busy
    rooms, (seq, JSON) tuples made every young collection stop the loop for 40-50 ms."""
    room = make_room()
    listener = room.member("l")
    assert listener is not None
    for i in range(5):
        room.post(listener, f"m{i}", None, i, float(i))
    kept = [*room.history_seqs, *room.history]
    assert len(kept) == 6 and not any(gc.is_tracked(x) for x in kept)


def test_risk_only_goes_up() -> None:
    """A lower score never lowers the room's risk."""
    room = make_room()
    assert room.raise_risk("crisis")
    assert not room.raise_risk("elevated")
    assert room.risk == "crisis"


def test_parties_and_counts_ignore_moderators_for_roles() -> None:
    """party() finds the seeker and listener; counts() counts every member by role."""
    room = make_room()
    room.add(Member("m", "moderator", "Mod Ana", "watching"))
    assert room.party("listener").alias == "Sam"  # type: ignore[union-attr]
    assert room.counts() == {"seeker": 1, "listener": 1, "moderator": 1}
    assert sorted(room.others("s")) == ["l", "m"]
    summary = room.summary(1310.0)
    assert summary["age_s"] == 310 and summary["risk"] == "normal"
