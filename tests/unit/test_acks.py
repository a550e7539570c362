"""AckTracker: pending deliveries, redelivery with attempt numbers, the unacked limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from agentplex.core.acks import AckTracker, TooManyUnacked
from agentplex.core.channel_log import Accepted
from agentplex.v1 import envelope_pb2

TIMEOUT = 100


def entry(channel: str, seq: int) -> Accepted:
    env = envelope_pb2.Envelope(id=f"{channel}-{seq}", channel=channel)
    env.position.seq = seq
    env.position.epoch = "e"
    return Accepted(env, seq, "e", 0)


def test_track_and_ack() -> None:
    acks = AckTracker(TIMEOUT, limit=10)
    acks.track(entry("a", 1), 1, now_ns=0)
    acks.track(entry("a", 2), 1, now_ns=0)
    acks.track(entry("b", 1), 1, now_ns=0)
    assert len(acks) == 3
    assert acks.attempts() == {("a", 1): 1, ("a", 2): 1, ("b", 1): 1}
    assert acks.ack("a", 1) is True
    assert acks.ack("a", 1) is False  # already acknowledged
    assert acks.ack("c", 1) is False
    assert acks.ack("b", 2) is False  # right channel, wrong seq
    assert len(acks) == 2
    acks.clear()
    assert len(acks) == 0 and acks.due(10**9) == []


def test_due_after_timeout_with_next_attempt() -> None:
    acks = AckTracker(TIMEOUT, limit=10)
    e1, e2 = entry("a", 1), entry("a", 2)
    acks.track(e1, 1, now_ns=0)
    acks.track(e2, 3, now_ns=50)
    assert acks.due(TIMEOUT - 1) == []
    assert acks.due(TIMEOUT) == [(e1, 2)]  # due exactly at the timeout
    assert acks.attempts() == {("a", 1): 2, ("a", 2): 3}
    # e1 was re-armed at 100, so it is next due at 200; e2 is due at 150.
    assert acks.due(149) == []
    assert acks.due(150) == [(e2, 4)]
    assert acks.due(199) == []
    assert acks.due(250) == [(e1, 3), (e2, 5)]
    acks.ack("a", 1)
    assert acks.due(10_000) == [(e2, 6)]


def test_retrack_replaces_attempt_and_deadline() -> None:
    acks = AckTracker(TIMEOUT, limit=10)
    e = entry("a", 1)
    acks.track(e, 1, now_ns=0)
    acks.track(e, 5, now_ns=80)  # e.g. resent on resume
    assert len(acks) == 1
    assert acks.due(150) == []
    assert acks.due(180) == [(e, 6)]


def test_limit_raises_too_many_unacked() -> None:
    acks = AckTracker(TIMEOUT, limit=2)
    acks.track(entry("a", 1), 1, 0)
    acks.track(entry("a", 2), 1, 0)
    with pytest.raises(TooManyUnacked) as err:
        acks.track(entry("a", 3), 1, 0)
    assert "limits.max_unacked" in str(err.value)
    assert "2" in str(err.value)
    assert acks.attempts() == {("a", 1): 1, ("a", 2): 1}  # unchanged
    acks.track(entry("a", 2), 2, 0)  # re-tracking a held delivery needs no room
    assert acks.attempts()[("a", 2)] == 2
    acks.ack("a", 1)
    acks.track(entry("a", 3), 1, 0)
    assert len(acks) == 2


def test_a_replay_has_room_below_half_the_limit() -> None:
    acks = AckTracker(TIMEOUT, limit=4)
    acks.track(entry("a", 1), 1, 0)
    assert acks.has_room()
    acks.track(entry("a", 2), 1, 0)
    assert not acks.has_room()  # half of 4 pending: a replay waits, live still fits
    acks.ack("a", 1)
    assert acks.has_room()
    one = AckTracker(TIMEOUT, limit=1)
    assert one.has_room()  # a limit of 1 still lets one delivery out


def test_lowest_pending_per_channel() -> None:
    acks = AckTracker(TIMEOUT, limit=10)
    assert acks.lowest_pending("a") is None
    for seq in (5, 3, 9):
        acks.track(entry("a", seq), 1, 0)
    acks.track(entry("b", 1), 1, 0)
    assert acks.lowest_pending("a") == 3
    assert acks.lowest_pending("b") == 1
    acks.ack("a", 3)
    assert acks.lowest_pending("a") == 5
    acks.ack("b", 1)
    assert acks.lowest_pending("b") is None


KEYS = [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)]

op_strategy = st.one_of(
    st.tuples(st.just("track"), st.sampled_from(KEYS), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("ack"), st.sampled_from(KEYS), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("due"), st.just(("", 0)), st.integers(min_value=0, max_value=150)),
)


@settings(max_examples=200)
@given(limit=st.integers(min_value=1, max_value=5), ops=st.lists(op_strategy, max_size=50))
def test_tracker_agrees_with_model(limit: int, ops: list[tuple[str, tuple[str, int], int]]) -> None:
    acks = AckTracker(TIMEOUT, limit)
    entries = {key: entry(*key) for key in KEYS}
    model: dict[tuple[str, int], tuple[int, int]] = {}  # key -> (attempt, due), in send order
    now = 0
    for op, key, dt in ops:
        now += dt
        if op == "track":
            attempt = model[key][0] + 1 if key in model else 1
            if key not in model and len(model) >= limit:
                with pytest.raises(TooManyUnacked):
                    acks.track(entries[key], attempt, now)
            else:
                acks.track(entries[key], attempt, now)
                model.pop(key, None)
                model[key] = (attempt, now + TIMEOUT)
        elif op == "ack":
            assert acks.ack(*key) is (model.pop(key, None) is not None)
        else:
            expected = [(k, a + 1) for k, (a, due) in model.items() if due <= now]
            expected.sort(key=lambda item: model[item[0]][1])
            got = acks.due(now)
            assert [((e.channel, e.seq), a) for e, a in got] == expected
            for k, a in expected:
                model.pop(k)
                model[k] = (a, now + TIMEOUT)
        assert acks.attempts() == {k: a for k, (a, _) in model.items()}
        assert len(acks) == len(model) <= limit
        for channel in ("a", "b"):
            held = [seq for ch, seq in model if ch == channel]
            assert acks.lowest_pending(channel) == (min(held) if held else None)


def test_keep_only_forgets_channels_that_no_longer_want_acks_and_keeps_due_order() -> None:
    acks = AckTracker(TIMEOUT, limit=10)
    for at, (channel, seq) in enumerate([("a", 1), ("b", 1), ("a", 2), ("c", 1)]):
        acks.track(entry(channel, seq), 1, now_ns=at)
    acks.keep_only(lambda channel: channel != "a")
    assert list(acks.attempts()) == [("b", 1), ("c", 1)]
    assert [(e.channel, e.seq) for e, _ in acks.due(TIMEOUT + 10)] == [("b", 1), ("c", 1)]
