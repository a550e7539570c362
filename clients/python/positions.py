"""The last position seen per channel: what a reconnect resumes from, and the duplicate filter."""

from __future__ import annotations

from agentplex.v1 import envelope_pb2


class Positions:
    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, str]] = {}

    def set(self, channel: str, seq: int, epoch: str) -> None:
        self._last[channel] = (seq, epoch)

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
        return [
            envelope_pb2.ChannelPosition(
                channel=channel, position=envelope_pb2.StreamPosition(seq=seq, epoch=epoch)
            )
            for channel, (seq, epoch) in self._last.items()
        ]
