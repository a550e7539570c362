"""A fixed-bucket histogram (counts, sum) cheap enough for hot paths: one bisect and two adds per
observation. Exporters (Prometheus at /metrics) read it; nothing here does I/O."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

# Seconds: 1 µs to 10 ms, where a routing decision falls.
MICRO_TO_MILLI = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2)


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = MICRO_TO_MILLI) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), ending with (inf, total)."""
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out
