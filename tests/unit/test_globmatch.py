"""Redis glob semantics: the pure translation, and agreement with a real redis-server."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings, strategies as st

from agentplex.core.globmatch import compile_glob, covers, glob_match, is_pattern, translate
from tests.support.redis_server import RedisServer

# (pattern, name, expected) following Redis's stringmatchlen.
TRUTH_TABLE: list[tuple[str, str, bool]] = [
    ("*", "a", True),
    ("*", "a.b-c", True),
    ("?", "a", True),
    ("?", "ab", False),
    ("?", "", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("?*", "a", True),
    ("*?", "", False),
    ("[abc]", "b", True),
    ("[abc]", "d", False),
    ("[abc]", "ab", False),
    ("[^a]", "a", False),
    ("[^a]", "b", True),
    ("[^a]", "ba", False),
    ("[a-c]", "b", True),
    ("[a-c]", "c", True),
    ("[a-c]", "d", False),
    ("[c-a]", "b", True),  # reversed ranges match as if swapped
    ("[c-a]", "a", True),
    ("[c-a]", "d", False),
    ("[b-b]", "b", True),
    ("[]", "a", False),  # an empty class matches nothing
    ("[]", "]", False),
    ("[]", "[]", False),
    ("[]a", "a", False),
    ("[^]", "x", True),  # a negated empty class matches any one character
    ("[^]", "]", True),
    ("[^]", "xy", False),
    ("[ab", "a", True),  # an unclosed class ends at the end of the pattern
    ("[ab", "b", True),
    ("[ab", "[ab", False),
    ("a[", "a", False),
    ("a[", "a[", False),
    ("[^", "x", True),
    ("[a-]", "]", True),  # `-]` is a range a..] (swapped to ]..a), and the class stays open
    ("[a-]", "_", True),
    ("[a-]", "-", False),
    ("[-a]", "-", True),
    ("[-a]", "a", True),
    ("[-a]", "b", False),
    ("[\\]]", "]", True),
    ("[\\]]", "\\", False),
    ("[\\", "\\", True),  # a lone backslash at the end of a class is literal
    ("[a\\-z]", "-", True),
    ("[a\\-z]", "b", False),
    ("[.]", ".", True),
    ("[.]", "a", False),
    ("a[^.]c", "a.c", False),
    ("a[^.]c", "abc", True),
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("\\?", "?", True),
    ("\\?", "a", False),
    ("\\[a]", "[a]", True),
    ("\\[a]", "a", False),
    ("\\a", "a", True),
    ("\\\\", "\\", True),
    ("\\\\", "\\\\", False),
    ("a\\", "a\\", True),  # a trailing backslash is literal
    ("a\\", "a", False),
    ("**", "abc", True),
    ("**", "a", True),
    ("a**b", "ab", True),
    ("a**b", "axxb", True),
    ("a*b*c", "aXbYc", True),
    ("a*b*c", "abc", True),
    ("a*b*c", "acb", False),
    ("a*b*c", "abcb", False),
    ("a*", "a", True),
    ("*a", "a", True),
    ("a*", "ba", False),
    ("a.b", "a.b", True),
    ("a.b", "axb", False),  # `.` is literal, not a regex wildcard
    ("^a", "^a", True),
    ("^a", "a", False),
    ("a+", "aa", False),
    ("a+", "a+", True),
    ("(a|b)", "a", False),
    ("jobs.*", "jobs.a.b", True),
    ("jobs.*", "jobs", False),
    ("jobs.?", "jobs.ab", False),
    ("a\nb", "a\nb", True),
    ("?", "\n", True),  # wildcards match newlines too (Redis works on bytes)
    ("*", "a\nb", True),
    ("[^a]", "\n", True),
]

TABLE_PATTERNS = sorted({p for p, _, _ in TRUTH_TABLE if "\n" not in p})

PSUBSCRIBE_CASES = ["a*", "a?b", "[^a]*", "[c-a]", "a\\*", "[ab", "[]", "a[-]b"]
PSUBSCRIBE_NAMES = ["a", "ab", "a*", "b", "aab", "acb", "[ab", "ba", "c", "a-b", "a]b", "-"]

# Every non-empty name from the truth table plus all short names over a small alphabet.
CANDIDATE_NAMES = sorted(
    {n for _, n, _ in TRUTH_TABLE if n and "\n" not in n}
    | set(PSUBSCRIBE_NAMES)
    | {"".join(p) for k in range(1, 4) for p in itertools.product("ab.-", repeat=k)}
    | {"*", "?", "[", "]", "^", "\\", "a*b", "a]", "[a", "abcb", "axxb", "jobs.a", "jobs.", "_"}
)


@pytest.mark.parametrize(("pattern", "name", "expected"), TRUTH_TABLE)
def test_truth_table(pattern: str, name: str, expected: bool) -> None:
    assert glob_match(pattern, name) is expected


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("jobs", False),
        ("a.b-c:d_e", False),
        ("a]b", False),
        ("a^b", False),
        ("a-b", False),
        ("", False),
        ("a*", True),
        ("a?", True),
        ("a[b", True),
        ("a\\b", True),
    ],
)
def test_is_pattern(channel: str, expected: bool) -> None:
    assert is_pattern(channel) is expected


@settings(max_examples=200)
@given(
    name=st.text(alphabet="ab.-:_]^", max_size=8),
    other=st.text(alphabet="ab.-:_]^", max_size=8),
)
def test_plain_names_match_only_themselves(name: str, other: str) -> None:
    assert not is_pattern(name)
    assert glob_match(name, name)
    assert glob_match(name, other) is (name == other)


@settings(max_examples=200)
@given(name=st.text(alphabet="ab.-*?[]^\\", max_size=8))
def test_star_matches_everything_and_escaped_text_matches_itself(name: str) -> None:
    assert glob_match("*", name) or name == ""
    escaped = "".join("\\" + c for c in name)
    assert glob_match(escaped, name)
    assert glob_match(escaped, name + "a") is False


def test_translate_gives_a_fullmatch_regex() -> None:
    regex = re.compile(translate("a*[b-c]?"), re.DOTALL)
    assert regex.fullmatch("axyzbq")
    assert regex.fullmatch("abq")
    assert not regex.fullmatch("abqq")
    assert not regex.fullmatch("adq")
    assert compile_glob("a*[b-c]?") is compile_glob("a*[b-c]?")  # cached


# --- agreement with a real redis-server -------------------------------------------------------


@pytest.fixture(scope="module")
def rdb(private_redis: RedisServer) -> Iterator[redis.Redis]:
    client = private_redis.client(db=15)  # its own database: it flushes it between cases
    try:
        yield client
    finally:
        client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _redis_keys(client: redis.Redis, pattern: str) -> set[str]:
    return {_text(k) for k in client.keys(pattern)}


def test_redis_fixture_is_private(private_redis: RedisServer) -> None:
    assert private_redis.port != 6379
    assert private_redis.host == "127.0.0.1"


@pytest.fixture
def loaded_candidates(rdb: redis.Redis) -> redis.Redis:
    rdb.flushdb()
    rdb.mset(dict.fromkeys(CANDIDATE_NAMES, 1))
    assert rdb.dbsize() == len(CANDIDATE_NAMES)
    return rdb


@pytest.mark.parametrize("pattern", TABLE_PATTERNS)
def test_table_agrees_with_redis_keys(loaded_candidates: redis.Redis, pattern: str) -> None:
    expected = _redis_keys(loaded_candidates, pattern)
    ours = {name for name in CANDIDATE_NAMES if glob_match(pattern, name)}
    assert ours == expected, f"pattern {pattern!r}"


# Names are never empty: channel names have 1 to 200 characters. (For the empty string Redis's
# stringmatchlen differs from a regex: it does not match "**" or, in PSUBSCRIBE, "*".)
names_strategy = st.text(alphabet="ab.-", min_size=1, max_size=6) | st.text(
    alphabet="ab.-*?[]^\\", min_size=1, max_size=6
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pattern=st.text(alphabet="ab.*?[]^-\\", max_size=8),
    names=st.lists(names_strategy, min_size=1, max_size=10),
)
def test_random_patterns_agree_with_redis_keys(
    rdb: redis.Redis, pattern: str, names: list[str]
) -> None:
    candidates = set(names)
    if pattern:
        candidates.add(pattern)
    rdb.flushdb()
    rdb.mset(dict.fromkeys(candidates, 1))
    expected = _redis_keys(rdb, pattern)
    ours = {name for name in candidates if glob_match(pattern, name)}
    assert ours == expected, f"pattern {pattern!r}"


def _await_message(pubsub: redis.client.PubSub, kind: str) -> dict[str, object]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message: dict[str, object] | None = pubsub.get_message(timeout=0.5)
        if message is not None and message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message from redis")


@pytest.mark.parametrize("pattern", PSUBSCRIBE_CASES)
def test_psubscribe_agrees_with_keys_and_glob_match(
    private_redis: RedisServer, loaded_candidates: redis.Redis, pattern: str
) -> None:
    listener = private_redis.client()
    pubsub = listener.pubsub()  # type: ignore[no-untyped-call]
    try:
        pubsub.psubscribe(pattern)
        _await_message(pubsub, "psubscribe")
        keys = _redis_keys(loaded_candidates, pattern)
        for name in PSUBSCRIBE_NAMES:
            receivers = loaded_candidates.publish(name, name)
            delivered = receivers == 1
            if delivered:
                message = _await_message(pubsub, "pmessage")
                assert message["channel"] == name.encode()
                assert message["pattern"] == pattern.encode()
            assert delivered is glob_match(pattern, name), f"{pattern!r} vs {name!r}"
            assert delivered is (name in keys), f"KEYS and PSUBSCRIBE differ on {name!r}"
    finally:
        pubsub.close()
        listener.close()


def test_covers_takes_names_as_names_and_patterns_as_patterns() -> None:
    assert covers(["chat", "jobs.*"], "jobs.build")
    assert covers(["chat", "jobs.*"], "chat")
    assert not covers(["chat", "jobs.*"], "chat.old")
    assert not covers([], "chat")
