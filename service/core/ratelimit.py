"""Token buckets per principal for publishes, submits and connections: pure bookkeeping, the
caller passes the clock. A refusal says how long until the request would pass."""

from __future__ import annotations

from dataclasses import dataclass

from agentplex.config import RateLimitSettings
from agentplex.core.principal import Principal
from agentplex.errors import RateLimited

KINDS = ("publish", "submit", "connect")
MAX_BUCKETS = 100_000  # beyond this, buckets that have filled up again are forgotten


@dataclass(slots=True)
class Bucket:
    rate: float  # tokens added per second
    burst: float  # the most it holds
    tokens: float
    at: float  # when `tokens` was last brought up to date

    def take(self, n: float, now: float) -> float:
        """Take `n` tokens and return 0, or take none and return the seconds until `n` are
        there (a request larger than the burst can never pass: inf)."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        if n > self.burst:
            return float("inf")
        return (n - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.at) * self.rate >= self.burst


class RateLimiter:
    def __init__(self, settings: RateLimitSettings) -> None:
        self.enabled = settings.enabled
        self._limits = {
            kind: (getattr(settings, f"{kind}_rate"), getattr(settings, f"{kind}_burst"))
            for kind in KINDS
        }
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def check(self, principal: Principal, kind: str, now: float, n: int = 1) -> None:
        """Charge `n` requests of `kind` to `principal`; RateLimited when its bucket is dry."""
        if not self.enabled:
            return
        key = (principal.id, kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            rate, burst = self._limits[kind]
            bucket = self._buckets[key] = Bucket(rate, burst, burst, now)
        wait = bucket.take(n, now)
        if wait:
            retry = (
                "never: the request exceeds the burst"
                if wait == float("inf")
                else (f"retry after {wait:.3f}s")
            )
            raise RateLimited(
                f"{kind} rate limit for {principal.id!r} exceeded ({bucket.rate:g}/s, burst "
                f"{bucket.burst:g}; rate_limits.{kind}_rate, rate_limits.{kind}_burst): {retry}",
                wait,
            )

    def _forget_full(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
