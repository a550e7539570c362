"""One channel's positions, bounded history and dedup window, as plain data (no I/O).

The memory engine keeps one `ChannelLog` per channel; the Redis engine keeps the same state in
Redis with the same rules. Sequence numbers start at 1 and grow by one per accepted envelope, so
history is contiguous and a replay is an index computation, not a search.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from agentplex.v1 import envelope_pb2

_epochs = random.Random()  # seeded from the system's entropy once, at import


class Accepted:
    """An accepted envelope with its wire encoding, made once and shared by every delivery.
    `first_delivery` caches the encoded first-attempt delivery (see core/wire.py) for fan-out.
    `json` caches the envelope's canonical JSON for text transports (made on first use).
    `local` is False for what another hub node accepted (a shared engine fans it out here), so
    an edge that mirrors traffic outward can leave that to the node that accepted it."""

    __slots__ = (
        "channel",
        "created_ns",
        "envelope",
        "epoch",
        "first_delivery",
        "json",
        "local",
        "seq",
        "sha256",
        "wire",
    )

    def __init__(
        self,
        envelope: envelope_pb2.Envelope,
        seq: int,
        epoch: str,
        created_ns: int,
        *,
        local: bool = True,
        wire: bytes = b"",
    ) -> None:
        """`envelope` carries its position (seq, epoch), given here too: reading them back
        from the message costs more than the caller's having them."""
        self.envelope = envelope
        self.channel = envelope.channel
        self.seq = seq
        self.epoch = epoch
        self.sha256 = envelope.sha256
        self.created_ns = created_ns
        self.wire = wire or envelope.SerializeToString()
        self.first_delivery = b""
        self.json = ""
        self.local = local


@dataclass(frozen=True, slots=True)
class Retention:
    """History bounds (`channels.history_size`, `channels.history_ttl`) and dedup window."""

    history_size: int = 10_000
    history_ttl_ns: int = 24 * 3600 * 10**9
    dedup_window_ns: int = 120 * 10**9
    dedup_size: int = 10_000


@dataclass(frozen=True, slots=True)
class Replay:
    """Entries after a requested position, and whether that position could be honoured."""

    entries: list[Accepted]
    top: int
    epoch: str
    recovered: bool


def intact(entry: Accepted) -> bool:
    """The stored payload still has the sha256 it was accepted with."""
    return hashlib.sha256(entry.envelope.payload).hexdigest() == entry.sha256


def new_epoch() -> str:
    """Eight hex digits that tell one life of a channel's positions from another. They need to
    differ, not to be secret: the Redis engine sends a candidate with every publish (used only
    for a channel Redis does not know), so this reads no system entropy."""
    return f"{_epochs.getrandbits(32):08x}"


def replay_start(
    seq: int | None, epoch: str | None, current: str, first: int, top: int, limit: int
) -> tuple[int, bool]:
    """Where a replay after (seq, epoch) starts, and whether that position is honoured.

    Without a position, the most recent `limit` entries. An empty epoch means the current one
    (a caller that knows only a seq). A position from another epoch or older than the history
    (`first` is the oldest seq kept) gives what is left, flagged unrecovered; a position ahead
    of the channel gives nothing, also unrecovered. Every engine answers by this rule.
    """
    if not epoch:
        epoch = current
    if seq is None:
        return max(first, top - limit + 1), True
    if epoch != current:
        return first, False
    if seq > top:
        return top + 1, False
    return max(seq + 1, first), seq + 1 >= first


class ChannelLog:
    __slots__ = ("_dedup", "_entries", "_retention", "epoch", "name", "top")

    def __init__(self, name: str, retention: Retention, epoch: str | None = None) -> None:
        self.name = name
        self.epoch = epoch or new_epoch()
        self.top = 0
        self._retention = retention
        self._entries: deque[Accepted] = deque(maxlen=retention.history_size)
        # id -> (seq, sha256, expiry in ns); order is expiry order. An OrderedDict, because
        # a plain dict used as a queue makes `next(iter(...))` walk deleted slots.
        self._dedup: OrderedDict[str, tuple[int, str, int]] = OrderedDict()

    def duplicate_of(self, envelope_id: str, now_ns: int) -> tuple[int, str] | None:
        """The (seq, sha256) an id was accepted with, if it is inside the dedup window."""
        hit = self._dedup.get(envelope_id)
        if hit is None or hit[2] < now_ns:
            return None
        return hit[0], hit[1]

    def append(self, envelope: envelope_pb2.Envelope, now_ns: int) -> Accepted:
        """Give `envelope` the next position and keep it. The caller has set id and sha256,
        and calls `trim` once per batch."""
        seq = self.top = self.top + 1
        pos = envelope.position
        pos.seq = seq
        pos.epoch = epoch = self.epoch
        entry = Accepted(envelope, seq, epoch, now_ns)
        self._entries.append(entry)
        dedup = self._dedup
        key = envelope.id
        if key in dedup:
            dedup.move_to_end(key)  # accepted again: it expires last now
        dedup[key] = (seq, entry.sha256, now_ns + self._retention.dedup_window_ns)
        if len(dedup) > self._retention.dedup_size:
            dedup.popitem(last=False)
        return entry

    def trim(self, now_ns: int) -> None:
        """Drop history older than the TTL and dedup entries past their window."""
        entries = self._entries
        horizon = now_ns - self._retention.history_ttl_ns
        while entries and entries[0].created_ns < horizon:
            entries.popleft()
        dedup = self._dedup
        while dedup:
            key = next(iter(dedup))
            if dedup[key][2] >= now_ns:
                break
            dedup.popitem(last=False)

    @property
    def first_seq(self) -> int:
        """The oldest seq still in history (top + 1 when history is empty)."""
        return self._entries[0].seq if self._entries else self.top + 1

    def __len__(self) -> int:
        return len(self._entries)

    def since(self, seq: int | None, epoch: str | None, limit: int) -> Replay:
        """Up to `limit` entries after (seq, epoch), oldest first (see `replay_start`)."""
        entries = self._entries
        first = self.first_seq
        start, recovered = replay_start(seq, epoch, self.epoch, first, self.top, limit)
        offset = start - first
        stop = min(len(entries), offset + limit)
        picked = [entries[i] for i in range(offset, stop)] if offset < stop else []
        return Replay(picked, self.top, self.epoch, recovered)

    def entries(self) -> Iterable[Accepted]:
        return iter(self._entries)
