"""Token buckets: a burst passes, then requests pass at the rate; a refusal says when to retry;
each principal and each kind has its own bucket."""

from __future__ import annotations

import pytest

from agentplex.config import RateLimitSettings
from agentplex.core.principal import Principal
from agentplex.core.ratelimit import Bucket, RateLimiter
from agentplex.errors import RateLimited

ALICE, BOB = Principal("alice"), Principal("bob")


def test_bucket_burst_then_rate() -> None:
    bucket = Bucket(rate=10, burst=5, tokens=5, at=0.0)
    assert [bucket.take(1, 0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(1, 0.0) == pytest.approx(0.1)  # one token comes every 0.1 s
    assert bucket.take(1, 0.1) == 0.0
    assert bucket.take(3, 0.15) == pytest.approx((3 - 0.5) / 10)
    assert bucket.take(6, 100.0) == float("inf")  # beyond the burst: never
    assert bucket.take(5, 100.0) == 0.0  # a refusal took nothing


def test_bucket_refills_only_up_to_its_burst() -> None:
    bucket = Bucket(rate=1000, burst=3, tokens=0, at=0.0)
    assert bucket.full(1.0)
    assert [bucket.take(1, 1.0) for _ in range(4)][-1] > 0


def limiter(**settings: float) -> RateLimiter:
    return RateLimiter(RateLimitSettings(enabled=True, **settings))  # type: ignore[arg-type]


def test_limiter_names_the_setting_and_the_wait() -> None:
    rates = limiter(publish_rate=2, publish_burst=2)
    rates.check(ALICE, "publish", 0.0, 2)
    with pytest.raises(RateLimited) as err:
        rates.check(ALICE, "publish", 0.0)
    assert err.value.retry_after == pytest.approx(0.5)
    assert (
        "rate_limits.publish_rate" in err.value.message
        and "retry after 0.500s" in err.value.message
    )
    rates.check(BOB, "publish", 0.0, 2)  # bob has his own bucket
    rates.check(ALICE, "submit", 0.0)  # and each kind its own
    rates.check(ALICE, "publish", 0.5)
    with pytest.raises(RateLimited, match="exceeds the burst"):
        rates.check(BOB, "publish", 10.0, 3)


def test_disabled_limiter_lets_everything_through() -> None:
    rates = RateLimiter(RateLimitSettings(enabled=False, publish_rate=1, publish_burst=1))
    for _ in range(100):
        rates.check(ALICE, "publish", 0.0, 10)


def test_many_principals_do_not_grow_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agentplex.core.ratelimit.MAX_BUCKETS", 100)
    rates = limiter(connect_rate=1000, connect_burst=1)
    for i in range(1000):
        rates.check(Principal(f"p{i}"), "connect", float(i))
    assert len(rates._buckets) <= 100
