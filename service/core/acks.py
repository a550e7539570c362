"""Deliveries awaiting acknowledgement: redelivery timing and committed positions (no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentplex.core.channel_log import Accepted


class TooManyUnacked(Exception):
    """The subscriber holds `limit` unacknowledged deliveries."""


@dataclass(slots=True)
class Pending:
    entry: Accepted
    attempt: int
    due_ns: int


class AckTracker:
    """Unacked deliveries in send order, keyed by (channel, seq).

    The timeout is the same for every entry, so insertion order is due order and `due` only looks
    at the front.
    """

    __slots__ = ("_pending", "limit", "timeout_ns")

    def __init__(self, timeout_ns: int, limit: int) -> None:
        self.timeout_ns = timeout_ns
        self.limit = limit
        self._pending: dict[tuple[str, int], Pending] = {}

    def track(self, entry: Accepted, attempt: int, now_ns: int) -> None:
        key = (entry.channel, entry.seq)
        pending = self._pending
        if pending.pop(key, None) is None and len(pending) >= self.limit:
            raise TooManyUnacked(
                f"{self.limit} deliveries are waiting for an ack (limits.max_unacked)"
            )
        pending[key] = Pending(entry, attempt, now_ns + self.timeout_ns)

    def has_room(self) -> bool:
        """Whether a replay may send another delivery that needs an ack. It pauses while half
        of `limit` are pending (as JetStream's max_ack_pending pauses delivery) instead of
        failing: a client acks what it reads. The other half is left to live deliveries,
        which are refused only at `limit` itself."""
        return len(self._pending) < max(1, self.limit // 2)

    def ack(self, channel: str, seq: int) -> bool:
        return self._pending.pop((channel, seq), None) is not None

    def due(self, now_ns: int) -> list[tuple[Accepted, int]]:
        """Entries past their ack timeout with their next attempt number; they stay tracked
        with a fresh timeout."""
        out: list[tuple[Accepted, int]] = []
        for item in self._pending.values():
            if item.due_ns > now_ns:
                break
            out.append((item.entry, item.attempt + 1))
        for entry, attempt in out:
            self.track(entry, attempt, now_ns)
        return out

    def keep_only(self, wanted: Callable[[str], bool]) -> None:
        """Forget the deliveries of channels that no longer want acks (after an unsubscribe):
        nobody will acknowledge them, and they would be redelivered for as long as the
        session lives, filling its `limits.max_unacked`."""
        self._pending = {key: item for key, item in self._pending.items() if wanted(key[0])}

    def attempts(self) -> dict[tuple[str, int], int]:
        """Attempts made so far for every pending delivery."""
        return {key: item.attempt for key, item in self._pending.items()}

    def lowest_pending(self, channel: str) -> int | None:
        seqs = [seq for (ch, seq) in self._pending if ch == channel]
        return min(seqs) if seqs else None

    def clear(self) -> None:
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)
