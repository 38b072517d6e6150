"""Pure tests of the rate window and the flood rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatserver.connection import Limits, RateWindow
from chatserver.protocol import FrameError


def test_rate_window_allows_count_per_window_then_slides() -> None:
    """10 in 10 s pass, the 11th is refused, and one frees up when the oldest ages out."""
    w = RateWindow(10, 10.0)
    assert all(w.allow(float(t) * 0.1) for t in range(10))
    assert not w.allow(1.0)
    assert w.allow(10.01)


@given(count=st.integers(1, 6), seconds=st.sampled_from([0.5, 1.0, 10.0]),
       gaps=st.lists(st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.5, 1.0, 3.0, 10.0, 11.0]),
                     max_size=80))
def test_rate_window_answers_as_counting_every_allowed_time_in_the_window(
        count: int, seconds: float, gaps: list[float]) -> None:
    """Each answer is what counting the allowed times of the last ``seconds`` gives,
    and no more than ``count`` times are ever kept."""
    w = RateWindow(count, seconds)
    allowed: list[float] = []
    now = 100.0
    for gap in gaps:
        now += gap
        expected = sum(1 for t in allowed if now - t < seconds) < count
        assert w.allow(now) == expected
        if expected:
            allowed.append(now)
        assert len(w._times or ()) <= count


def test_limits_apply_the_message_window_to_messages_only() -> None:
    """Typing frames do not use up the message window."""
    lim = Limits(2, 10.0)
    lim.check("typing", 0.0)
    lim.check("message", 0.0)
    lim.check("message", 0.1)
    with pytest.raises(FrameError) as info:
        lim.check("message", 0.2)
    assert info.value.code == "rate_limited"
    lim.check("typing", 0.3)


def test_strikes_past_the_window_mean_flooding() -> None:
    """A client that keeps sending after rate_limited is found to be flooding."""
    lim = Limits(3, 10.0)
    assert [lim.strike(0.1 * i) for i in range(4)] == [False, False, False, True]
