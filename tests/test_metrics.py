"""Pure tests of the per-frame metrics (no server)."""

from __future__ import annotations

from bisect import bisect_left

from hypothesis import given
from hypothesis import strategies as st

from chatserver import metrics


@given(st.one_of(st.floats(min_value=0, max_value=2), st.sampled_from(metrics.HANDLE_BUCKETS)))
def test_a_handling_time_falls_in_the_first_bucket_at_or_above_it(seconds: float) -> None:
    """The bucket search is bisect_left's (le: the first bound >= the time), the
    bounds themselves included, and a time above every bound goes to +Inf."""
    assert metrics.bucket(seconds) == bisect_left(metrics.HANDLE_BUCKETS, seconds)


def test_an_observed_time_is_counted_and_summed() -> None:
    before = list(metrics._COUNTS.handled), metrics._COUNTS.handled_s
    metrics.observe_handle(0.0003)
    metrics.observe_handle(7.0)
    handled = metrics._COUNTS.handled
    assert handled[2] == before[0][2] + 1  # 0.00025 < 0.0003 <= 0.0005
    assert handled[-1] == before[0][-1] + 1  # above 0.5: +Inf only
    assert abs(metrics._COUNTS.handled_s - before[1] - 7.0003) < 1e-9
    text = metrics.render().decode()
    assert 'hearth_frame_handle_seconds_bucket{le="+Inf"}' in text
