"""The fixed-bucket histogram behind the routing latency metric."""

from __future__ import annotations

from hypothesis import given, strategies as st

from agentplex.core.histogram import Histogram


def test_observations_land_in_their_buckets_cumulatively() -> None:
    h = Histogram((1.0, 2.0))
    for value in (0.5, 1.0, 1.5, 3.0):
        h.observe(value)
    assert h.cumulative() == [(1.0, 2), (2.0, 3), (float("inf"), 4)]
    assert h.sum == 6.0


@given(st.lists(st.floats(min_value=0, max_value=1, allow_nan=False)))
def test_the_last_bucket_counts_everything(values: list[float]) -> None:
    h = Histogram()
    for value in values:
        h.observe(value)
    cumulative = [n for _, n in h.cumulative()]
    assert cumulative == sorted(cumulative) and cumulative[-1] == len(values)
