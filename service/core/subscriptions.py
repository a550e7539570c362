"""Which subscribers want a channel: exact names by lookup, patterns by glob, cached per channel.

Subscriptions change rarely and publishes often, so `match` caches its answer per channel name;
a change drops only the cached answers it affects (one name, or the names a pattern matches).
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Generic, TypeVar

from agentplex.core.globmatch import compile_glob, is_pattern

S = TypeVar("S", bound=Hashable)

_CACHE_LIMIT = 65_536


class SubscriptionIndex(Generic[S]):
    __slots__ = ("_cache", "_exact", "_patterns")

    def __init__(self) -> None:
        self._exact: dict[str, dict[S, None]] = {}
        self._patterns: dict[str, tuple[re.Pattern[str], dict[S, None]]] = {}
        self._cache: dict[str, tuple[S, ...]] = {}

    def _forget(self, channel: str) -> None:
        """Drop the cached answers a change of `channel` (a name or a pattern) affects."""
        cache = self._cache
        if not is_pattern(channel):
            cache.pop(channel, None)
            return
        regex = compile_glob(channel)
        for name in [name for name in cache if regex.fullmatch(name) is not None]:
            del cache[name]

    def add(self, subscriber: S, channel: str) -> bool:
        """Subscribe; True when this is the first subscriber of that name or pattern."""
        self._forget(channel)
        if is_pattern(channel):
            entry = self._patterns.get(channel)
            if entry is None:
                self._patterns[channel] = (compile_glob(channel), {subscriber: None})
                return True
            entry[1][subscriber] = None
            return False
        subs = self._exact.get(channel)
        if subs is None:
            self._exact[channel] = {subscriber: None}
            return True
        subs[subscriber] = None
        return False

    def remove(self, subscriber: S, channel: str) -> bool:
        """Unsubscribe; True when no subscriber of that name or pattern is left."""
        self._forget(channel)
        if is_pattern(channel):
            entry = self._patterns.get(channel)
            if entry is None:
                return False
            entry[1].pop(subscriber, None)
            if not entry[1]:
                del self._patterns[channel]
                return True
            return False
        subs = self._exact.get(channel)
        if subs is None:
            return False
        subs.pop(subscriber, None)
        if not subs:
            del self._exact[channel]
            return True
        return False

    def match(self, channel: str) -> tuple[S, ...]:
        """Every subscriber of `channel` once each: name subscribers first, then pattern ones."""
        hit = self._cache.get(channel)
        if hit is not None:
            return hit
        found: dict[S, None] = dict(self._exact.get(channel, ()))
        for regex, subs in self._patterns.values():
            if regex.fullmatch(channel) is not None:
                found.update(subs)
        result = tuple(found)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[channel] = result
        return result

    def __len__(self) -> int:
        return sum(len(s) for s in self._exact.values()) + sum(
            len(e[1]) for e in self._patterns.values()
        )
