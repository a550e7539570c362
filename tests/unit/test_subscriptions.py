"""SubscriptionIndex: exact names and glob patterns, each subscriber once, cache invalidation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from agentplex.core import subscriptions
from agentplex.core.globmatch import glob_match, is_pattern
from agentplex.core.subscriptions import SubscriptionIndex


def test_add_reports_first_subscriber() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    assert index.add("s1", "jobs") is True
    assert index.add("s2", "jobs") is False
    assert index.add("s1", "jobs") is False  # again: no change
    assert index.add("s1", "jobs.*") is True
    assert index.add("s2", "jobs.*") is False
    assert len(index) == 4


def test_remove_reports_last_subscriber() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("s1", "jobs")
    index.add("s2", "jobs")
    index.add("s1", "j*")
    assert index.remove("s1", "jobs") is False
    assert index.remove("s2", "jobs") is True
    assert index.remove("s2", "jobs") is False  # nothing left to remove
    assert index.remove("s9", "j*") is False  # not a subscriber: s1 stays
    assert index.match("jobs") == ("s1",)
    assert index.remove("s1", "j*") is True
    assert index.remove("s1", "never") is False
    assert index.match("jobs") == ()
    assert len(index) == 0


def test_match_exact_and_patterns_once_each() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("exact", "jobs.build")
    index.add("star", "jobs.*")
    index.add("q", "jobs.b????")
    index.add("both", "jobs.build")
    index.add("both", "*.build")
    index.add("both", "jobs.*")
    index.add("other", "news.*")
    matched = index.match("jobs.build")
    assert sorted(matched) == ["both", "exact", "q", "star"]
    assert len(matched) == len(set(matched))
    assert index.match("jobs.x") == ("star", "both")
    assert index.match("news.today") == ("other",)
    assert index.match("nothing") == ()


def test_match_is_recomputed_after_changes() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    assert index.match("a.b") == ()  # cached empty answer
    index.add("p", "a.*")
    assert index.match("a.b") == ("p",)
    index.add("e", "a.b")
    assert set(index.match("a.b")) == {"p", "e"}
    index.remove("p", "a.*")
    assert index.match("a.b") == ("e",)
    index.remove("e", "a.b")
    assert index.match("a.b") == ()


def test_escaped_pattern_matches_literally() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("s", "a\\*")  # a pattern (it has a backslash) that matches only "a*"
    assert index.match("a*") == ("s",)
    assert index.match("ab") == ()


def test_cache_limit_keeps_answers_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriptions, "_CACHE_LIMIT", 3)
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("s", "c?")
    for round_ in range(3):
        for i in range(10):
            assert index.match(f"c{i}") == ("s",), round_
            assert index.match(f"d{i}") == ()
        assert len(index._cache) <= 3


NAMES = ["a", "b", "a.b", "a.c", "b.a", "ab", "a-b"]
CHANNELS = [*NAMES, "a*", "*", "a.?", "[ab]*", "*.a", "[^a]*", "a\\.b"]
SUBSCRIBERS = ["s1", "s2", "s3"]


@settings(max_examples=200)
@given(
    ops=st.lists(
        st.tuples(st.booleans(), st.sampled_from(SUBSCRIBERS), st.sampled_from(CHANNELS)),
        max_size=40,
    )
)
def test_index_agrees_with_model(ops: list[tuple[bool, str, str]]) -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    model: set[tuple[str, str]] = set()
    for add, subscriber, channel in ops:
        # Fill the cache before every change so a stale cache would show.
        for name in NAMES:
            index.match(name)
        first = not any(c == channel for _, c in model)
        if add:
            assert index.add(subscriber, channel) is first
            model.add((subscriber, channel))
        else:
            present = (subscriber, channel) in model
            model.discard((subscriber, channel))
            last = present and not any(c == channel for _, c in model)
            assert index.remove(subscriber, channel) is last
        assert len(index) == len(model)
        for name in NAMES:
            matched = index.match(name)
            assert len(matched) == len(set(matched))
            expected = {s for s, c in model if c == name or (is_pattern(c) and glob_match(c, name))}
            assert set(matched) == expected, name
