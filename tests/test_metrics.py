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


def test_pairing_counts_are_rendered_as_the_counters_and_histogram_they_were() -> None:
    """Requests by risk, matches, the match wait histogram and rooms ended by reason
    are plain counts until scraped, under the names and labels Prometheus knew."""
    counts = metrics._COUNTS
    before = (counts.requests["crisis"], counts.matches, list(counts.waited),
              counts.ended.get("left", 0))
    metrics.count_request("crisis")
    metrics.count_match(0.3)  # 0.1 < 0.3 <= 0.5
    metrics.count_match(4000.0)  # above every bound
    metrics.count_room_ended("left")
    assert counts.requests["crisis"] == before[0] + 1
    assert counts.matches == before[1] + 2
    assert counts.waited[3] == before[2][3] + 1 and counts.waited[-1] == before[2][-1] + 1
    assert counts.ended["left"] == before[3] + 1
    text = metrics.render().decode()
    assert f'hearth_requests_total{{risk="crisis"}} {float(before[0] + 1)}' in text
    assert f"hearth_matches_total {float(before[1] + 2)}" in text
    assert f'hearth_rooms_ended_total{{reason="left"}} {float(before[3] + 1)}' in text
    inf = sum(before[2]) + 2
    assert f'hearth_match_wait_seconds_bucket{{le="+Inf"}} {float(inf)}' in text
    assert 'hearth_match_wait_seconds_bucket{le="1800.0"}' in text
