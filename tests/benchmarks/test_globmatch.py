"""Channel pattern matching in-process: `glob_match` and `SubscriptionIndex.match`.

No fixed target; these are the per-publish costs of routing, so they should stay well below the
per-message budget of the throughput target (10 us per message at 100,000 msgs/s).

- `glob_match` with its compiled pattern cached (the lru_cache of `compile_glob`), and uncached:
  1,000 distinct patterns with the glob and `re` caches cleared first, so each call translates
  and compiles (reported per pattern);
- `SubscriptionIndex.match` over 1,000 patterns and 1,000 exact names: cached (the per-channel
  answer cache hit, the publish path in steady state) and uncached (cache cleared before each
  call, as after any subscribe or unsubscribe: one regex per pattern).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from agentplex.core.globmatch import compile_glob, glob_match
from agentplex.core.subscriptions import SubscriptionIndex
from tests.benchmarks.helpers import per_op_figures, report

PATTERNS = 1000
NAMES = 1000
CHANNEL = "svc.5.build"  # what a publish routes: 4 patterns and 1 name match it


def patterns(count: int) -> list[str]:
    """A mix of the shapes subscribers use: prefix, suffix, single character, class."""
    shapes = ("svc.{i}.*", "*.job{i}", "team{i}.?.log", "w[0-9]{i}.*.done", "agent.{i}*")
    generic = ["svc.*", "*.build", "svc.?.build"]
    made = [shapes[i % len(shapes)].format(i=i) for i in range(count - len(generic))]
    return made + generic


def expected_matches(channel: str, pats: list[str]) -> set[str]:
    """The reference answer, by a direct translation (enough for these simple patterns)."""
    out = set()
    for p in pats:
        rx = "".join(
            ".*" if c == "*" else "." if c == "?" else c if c in "[]-" else re.escape(c) for c in p
        )
        if re.fullmatch(rx, channel, re.DOTALL):
            out.add(p)
    return out


@pytest.mark.benchmark(group="glob")
def test_glob_match_cached(benchmark: Any) -> None:
    assert benchmark(glob_match, "svc.*.build", CHANNEL) is True
    assert glob_match("svc.*.build", "svc.7.test") is False
    report(benchmark, "glob_match cached", **per_op_figures(benchmark, 1))


@pytest.mark.benchmark(group="glob")
def test_glob_match_uncached(benchmark: Any) -> None:
    pats = patterns(PATTERNS)

    def clear_caches() -> None:
        compile_glob.cache_clear()
        re.purge()

    def match_all() -> int:
        return sum(glob_match(p, CHANNEL) for p in pats)

    hits = benchmark.pedantic(match_all, setup=clear_caches, rounds=20, warmup_rounds=1)
    assert hits == len(expected_matches(CHANNEL, pats))
    assert hits == 4
    report(
        benchmark,
        f"glob_match uncached ({PATTERNS:,} distinct patterns per round)",
        **per_op_figures(benchmark, PATTERNS),
    )


def build_index() -> tuple[SubscriptionIndex[str], list[str]]:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    pats = patterns(PATTERNS)
    for i, p in enumerate(pats):
        index.add(f"pattern-sub-{i}", p)
    for i in range(NAMES):
        index.add(f"name-sub-{i}", f"svc.{i}.build")
    return index, pats


def check_answer(found: tuple[str, ...], pats: list[str]) -> None:
    """Each subscriber once, exact names first, then patterns in subscription order."""
    wanted = expected_matches(CHANNEL, pats)
    assert len(wanted) == 4
    by_pattern = [f"pattern-sub-{i}" for i, p in enumerate(pats) if p in wanted]
    assert list(found) == ["name-sub-5", *by_pattern]


@pytest.mark.benchmark(group="subscription-index")
def test_index_match_cached(benchmark: Any) -> None:
    index, pats = build_index()
    index.match(CHANNEL)
    found = benchmark(index.match, CHANNEL)
    check_answer(found, pats)
    report(
        benchmark,
        f"SubscriptionIndex.match cached ({PATTERNS:,} patterns, {NAMES:,} names)",
        **per_op_figures(benchmark, 1),
    )


@pytest.mark.benchmark(group="subscription-index")
def test_index_match_uncached(benchmark: Any) -> None:
    index, pats = build_index()

    def invalidate() -> None:
        # Any subscription change clears the answer cache (the public way to invalidate it).
        index.add("dummy", "dummy.channel")
        index.remove("dummy", "dummy.channel")

    found = benchmark.pedantic(
        index.match, args=(CHANNEL,), setup=invalidate, rounds=300, warmup_rounds=5
    )
    check_answer(found, pats)
    figures = per_op_figures(benchmark, 1)
    if figures:
        figures["us_per_pattern_median"] = round(figures["us_per_op_median"] / PATTERNS, 4)
    report(
        benchmark,
        f"SubscriptionIndex.match uncached ({PATTERNS:,} patterns, {NAMES:,} names)",
        **figures,
    )
