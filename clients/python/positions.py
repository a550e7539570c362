"""The last position seen per channel: what a reconnect resumes from, and the duplicate filter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agentplex.core.globmatch import is_pattern
from agentplex.v1 import envelope_pb2

Since = Mapping[str, int | envelope_pb2.StreamPosition]


def requested(since: Since | None) -> list[envelope_pb2.ChannelPosition]:
    """A caller's start positions as the wire's (a bare int is a seq in any epoch)."""
    return [
        envelope_pb2.ChannelPosition(
            channel=name,
            position=envelope_pb2.StreamPosition(seq=pos) if isinstance(pos, int) else pos,
        )
        for name, pos in (since or {}).items()
    ]


class Positions:
    __slots__ = ("_last", "_start")

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, str]] = {}
        # Where a subscription began on a channel that has sent nothing since: a resume point,
        # never a duplicate filter (see `begin`).
        self._start: dict[str, tuple[int, str]] = {}

    def set(self, channel: str, seq: int, epoch: str) -> None:
        self._last[channel] = (seq, epoch)

    def begin(self, channel: str, position: envelope_pb2.StreamPosition) -> None:
        """Record where a subscription to `channel` began, so a channel still quiet when the
        stream drops resumes from there and loses nothing published during the outage. The
        first start stands (a later receipt's top would skip the outage, or a replay asked
        for), and it filters nothing: an envelope at or below it that comes after the receipt
        was published as the subscription began, and was never seen."""
        if channel not in self._last and channel not in self._start:
            self._start[channel] = (position.seq, position.epoch)

    def began(self, states: Iterable[envelope_pb2.SubscriptionState]) -> None:
        """`begin` from a subscribe receipt (or states header): its top position on each name
        (a pattern has none)."""
        for state in states:
            if not is_pattern(state.channel):
                self.begin(state.channel, state.position)

    def advance(self, channel: str, position: envelope_pb2.StreamPosition) -> bool:
        """Record `position`; False when it is not newer than what was seen (a duplicate)."""
        last = self._last.get(channel)
        seq, epoch = position.seq, position.epoch
        if last is not None and seq <= last[0] and (last[1] == epoch or not last[1]):
            return False
        self._last[channel] = (seq, epoch)
        return True

    def get(self, channel: str) -> tuple[int, str] | None:
        return self._last.get(channel)

    def as_list(self) -> list[envelope_pb2.ChannelPosition]:
        """Where to resume each channel: the last envelope seen, else where it began."""
        return [
            envelope_pb2.ChannelPosition(
                channel=channel, position=envelope_pb2.StreamPosition(seq=seq, epoch=epoch)
            )
            for channel, (seq, epoch) in (self._start | self._last).items()
        ]
