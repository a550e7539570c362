"""The SDK's positions: where a subscription began is a resume point, never a duplicate filter."""

from __future__ import annotations

from agentplex.client.positions import Positions, requested
from agentplex.v1 import envelope_pb2

Pos = envelope_pb2.StreamPosition


def state(channel: str, seq: int) -> envelope_pb2.SubscriptionState:
    return envelope_pb2.SubscriptionState(channel=channel, position=Pos(seq=seq, epoch="e"))


def resume(positions: Positions) -> dict[str, int]:
    return {p.channel: p.position.seq for p in positions.as_list()}


def test_a_quiet_channel_resumes_from_where_its_subscription_began() -> None:
    positions = Positions()
    positions.began([state("quiet", 4), state("jobs.*", 0)])
    positions.began([state("quiet", 9)])  # a later receipt's top would skip the outage
    assert resume(positions) == {"quiet": 4}


def test_a_start_filters_nothing_and_the_last_seen_replaces_it() -> None:
    positions = Positions()
    positions.began([state("c", 4)])
    assert positions.advance("c", Pos(seq=4, epoch="e"))  # published as the subscription began
    assert not positions.advance("c", Pos(seq=4, epoch="e"))
    positions.began([state("c", 2)])
    assert resume(positions) == {"c": 4}


def test_a_requested_start_stands_before_the_receipts_top() -> None:
    positions = Positions()
    for start in requested({"c": 2, "d": Pos(seq=3, epoch="e")}):
        positions.begin(start.channel, start.position)
    positions.began([state("c", 10), state("d", 10)])
    assert resume(positions) == {"c": 2, "d": 3}
