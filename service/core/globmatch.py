"""Redis glob patterns (`*`, `?`, `[...]`, `\\` escapes), compiled to regular expressions.

The translation follows Redis's `stringmatchlen` so a pattern means the same thing on every
transport, including its corner cases: reversed ranges match, an unclosed `[` class ends at the
end of the pattern, and `[]` matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

_SPECIAL = frozenset("*?[\\")


def is_pattern(channel: str) -> bool:
    """True when `channel` contains glob syntax and must be matched, not looked up."""
    return not _SPECIAL.isdisjoint(channel)


def _class_to_regex(members: list[tuple[str, str]], negate: bool) -> str:
    if not members:
        return "[\\s\\S]" if negate else "(?!)"
    parts = "".join(
        re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in members
    )
    return f"[{'^' if negate else ''}{parts}]"


def translate(pattern: str) -> str:
    """Return a regular expression (for `fullmatch`) equivalent to the Redis glob `pattern`."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append("[\\s\\S]*")
            continue
        if c == "?":
            out.append("[\\s\\S]")
        elif c == "[":
            i += 1
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            members: list[tuple[str, str]] = []
            while i < n and pattern[i] != "]":
                if pattern[i] == "\\" and i + 1 < n:
                    i += 1
                    members.append((pattern[i], pattern[i]))
                elif i + 2 < n and pattern[i + 1] == "-":
                    lo, hi = sorted((pattern[i], pattern[i + 2]))
                    members.append((lo, hi))
                    i += 2
                else:
                    members.append((pattern[i], pattern[i]))
                i += 1
            out.append(_class_to_regex(members, negate))
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    return re.compile(translate(pattern), re.DOTALL)


def glob_match(pattern: str, name: str) -> bool:
    return compile_glob(pattern).fullmatch(name) is not None


def covers(names: Iterable[str], channel: str) -> bool:
    """Whether one of `names` (channel names and patterns, as subscriptions hold them) is
    `channel` or a pattern matching it; a plain name is compared, not compiled."""
    return any(n == channel or (is_pattern(n) and glob_match(n, channel)) for n in names)


@lru_cache(maxsize=16384)
def match_any(patterns: tuple[str, ...] | frozenset[str], name: str) -> bool:
    """Whether any of `patterns` matches `name`, remembered: access checks (scopes, the Redis
    edge's allow-list) ask this for the same few patterns and channels on every message."""
    return any(glob_match(pattern, name) for pattern in patterns)
