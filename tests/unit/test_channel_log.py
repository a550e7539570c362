"""ChannelLog: positions, bounded history, dedup window and `since` replay semantics."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings, strategies as st

from agentplex.core.channel_log import Accepted, ChannelLog, Retention, new_epoch
from agentplex.v1 import envelope_pb2

SECOND = 10**9
BIG = Retention(history_size=1_000_000, history_ttl_ns=10**18, dedup_window_ns=10**18)


def make_envelope(
    envelope_id: str, payload: bytes = b"", channel: str = "c"
) -> envelope_pb2.Envelope:
    return envelope_pb2.Envelope(
        id=envelope_id,
        channel=channel,
        payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
    )


def publish(
    log: ChannelLog, envelope_id: str, now_ns: int, payload: bytes = b""
) -> tuple[int, bool]:
    """What the engine does: answer a duplicate with its original seq, else append."""
    dup = log.duplicate_of(envelope_id, now_ns)
    if dup is not None:
        return dup[0], True
    return log.append(make_envelope(envelope_id, payload, log.name), now_ns).seq, False


def fill(log: ChannelLog, count: int, now_ns: int = 0) -> list[Accepted]:
    return [log.append(make_envelope(f"m{i}"), now_ns) for i in range(count)]


def seqs(entries: list[Accepted]) -> list[int]:
    return [e.seq for e in entries]


# --- positions ----------------------------------------------------------------------------------


def test_new_log_is_empty() -> None:
    log = ChannelLog("c", Retention(), epoch="e1")
    assert log.top == 0
    assert len(log) == 0
    assert log.first_seq == 1
    assert log.epoch == "e1"
    assert list(log.entries()) == []


def test_default_epochs_are_random_hex() -> None:
    a, b = ChannelLog("c", Retention()), ChannelLog("c", Retention())
    assert a.epoch != b.epoch
    assert len(new_epoch()) == 8
    int(new_epoch(), 16)


def test_append_sets_position_and_encodes_once() -> None:
    log = ChannelLog("c", BIG, epoch="ep")
    env = make_envelope("x", b"payload")
    entry = log.append(env, 123)
    assert (entry.seq, entry.channel, entry.created_ns) == (1, "c", 123)
    assert env.position.seq == 1 and env.position.epoch == "ep"
    assert entry.sha256 == hashlib.sha256(b"payload").hexdigest()
    assert entry.envelope is env
    decoded = envelope_pb2.Envelope.FromString(entry.wire)
    assert decoded == env


@settings(max_examples=150)
@given(ids=st.lists(st.text(alphabet="abcdef0123456789", min_size=1, max_size=6), max_size=60))
def test_seq_grows_by_one_per_accepted_envelope(ids: list[str]) -> None:
    log = ChannelLog("c", BIG, epoch="e")
    seen: dict[str, int] = {}
    for now, envelope_id in enumerate(ids):
        before_top, before_len = log.top, len(log)
        seq, duplicate = publish(log, envelope_id, now)
        if envelope_id in seen:
            assert duplicate
            assert seq == seen[envelope_id]
            assert (log.top, len(log)) == (before_top, before_len)
        else:
            assert not duplicate
            assert seq == before_top + 1 == log.top
            assert len(log) == before_len + 1
            seen[envelope_id] = seq
    assert seqs(list(log.entries())) == list(range(1, len(seen) + 1))
    assert [e.envelope.id for e in log.entries()] == list(seen)


# --- dedup window -------------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    window=st.integers(min_value=1, max_value=20),
    ops=st.lists(
        st.tuples(st.sampled_from("abcde"), st.integers(min_value=0, max_value=8)), max_size=60
    ),
)
def test_dedup_window_model(window: int, ops: list[tuple[str, int]]) -> None:
    """Within the window a repeated id returns its original seq and stores nothing; after it,
    the id is accepted again as a new envelope."""
    log = ChannelLog(
        "c",
        Retention(
            history_size=10_000, history_ttl_ns=10**18, dedup_window_ns=window, dedup_size=10_000
        ),
    )
    model: dict[str, tuple[int, int]] = {}  # id -> (seq, accepted at)
    now = 0
    for envelope_id, dt in ops:
        now += dt
        before = len(log)
        hit = model.get(envelope_id)
        expect_dup = hit is not None and now <= hit[1] + window
        seq, duplicate = publish(log, envelope_id, now)
        assert duplicate is expect_dup
        if expect_dup:
            assert hit is not None
            assert seq == hit[0]
            assert len(log) == before
        else:
            assert seq == log.top
            assert len(log) == before + 1
            model[envelope_id] = (seq, now)


def test_duplicate_returns_original_seq_and_sha() -> None:
    log = ChannelLog("c", Retention(dedup_window_ns=10))
    first = log.append(make_envelope("id", b"one"), 100)
    log.append(make_envelope("other"), 100)
    assert log.duplicate_of("id", 105) == (first.seq, hashlib.sha256(b"one").hexdigest())
    assert log.duplicate_of("id", 110) == (1, first.sha256)  # the window's last instant
    assert log.duplicate_of("id", 111) is None
    assert log.duplicate_of("never", 100) is None


def test_dedup_size_forgets_oldest_ids() -> None:
    log = ChannelLog("c", Retention(dedup_window_ns=100, dedup_size=2))
    for i, envelope_id in enumerate("abc"):
        log.append(make_envelope(envelope_id), i)
    assert log.duplicate_of("a", 3) is None
    hit = log.duplicate_of("b", 3)
    assert hit is not None and hit[0] == 2
    assert log.duplicate_of("c", 3) is not None


def test_trim_drops_expired_dedup_entries() -> None:
    log = ChannelLog("c", Retention(dedup_window_ns=10, dedup_size=2))
    log.append(make_envelope("a"), 0)
    log.append(make_envelope("b"), 5)
    log.trim(12)
    assert log.duplicate_of("a", 12) is None
    assert log.duplicate_of("b", 12) is not None
    # Only "b" is left, so two new ids fit without evicting it.
    log.append(make_envelope("c"), 13)
    assert log.duplicate_of("b", 13) is not None


def test_reaccepted_id_is_remembered_for_a_full_window() -> None:
    log = ChannelLog("c", Retention(dedup_window_ns=10, dedup_size=2))
    assert publish(log, "A", 0) == (1, False)
    assert publish(log, "B", 0) == (2, False)
    assert publish(log, "A", 11) == (3, False)  # A's window expired: accepted again
    assert publish(log, "C", 11) == (4, False)  # live ids are A and C: they fit in dedup_size 2
    # A was accepted at 11, so until 21 a retry must be answered as a duplicate of seq 3.
    assert publish(log, "A", 12) == (3, True)
    assert len(log) == 4


# --- bounded history ----------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    size=st.integers(min_value=1, max_value=8),
    ttl=st.integers(min_value=1, max_value=30),
    gaps=st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=40),
)
def test_history_bounded_by_count_and_age(size: int, ttl: int, gaps: list[int]) -> None:
    log = ChannelLog("c", Retention(history_size=size, history_ttl_ns=ttl, dedup_window_ns=1))
    times: list[int] = []
    now = 0
    for i, gap in enumerate(gaps):
        now += gap
        log.append(make_envelope(f"m{i}"), now)
        log.trim(now)  # the engine trims once per batch
        times.append(now)
        kept = [seq for seq, t in enumerate(times, start=1) if t >= now - ttl][-size:]
        assert seqs(list(log.entries())) == kept
        assert len(log) == len(kept) <= size
        assert log.first_seq == (kept[0] if kept else log.top + 1)
        assert log.top == i + 1


def test_entry_exactly_at_ttl_is_kept() -> None:
    log = ChannelLog("c", Retention(history_ttl_ns=10))
    log.append(make_envelope("a"), 0)
    log.trim(10)
    assert len(log) == 1
    log.trim(11)
    assert len(log) == 0
    assert log.first_seq == 2 == log.top + 1


# --- replay -------------------------------------------------------------------------------------


@dataclass
class Scenario:
    log: ChannelLog
    kept: list[int] = field(default_factory=list)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    size = draw(st.integers(min_value=1, max_value=12))
    total = draw(st.integers(min_value=0, max_value=30))
    log = ChannelLog("c", Retention(history_size=size, history_ttl_ns=10**18), epoch="cur")
    fill(log, total)
    return Scenario(log, list(range(max(1, total - size + 1), total + 1)))


@settings(max_examples=200)
@given(sc=scenarios(), data=st.data())
def test_since_same_epoch(sc: Scenario, data: st.DataObject) -> None:
    log, kept = sc.log, sc.kept
    seq = data.draw(st.integers(min_value=0, max_value=log.top + 3), label="seq")
    limit = data.draw(st.integers(min_value=1, max_value=15), label="limit")
    epoch = data.draw(st.sampled_from(["cur", ""]), label="epoch")  # "" means current
    replay = log.since(seq, epoch, limit)
    assert seqs(replay.entries) == [s for s in kept if s > seq][:limit]
    assert (replay.top, replay.epoch) == (log.top, "cur")
    gap_trimmed = seq + 1 < log.first_seq
    ahead = seq > log.top
    assert replay.recovered is not (gap_trimmed or ahead)


@settings(max_examples=200)
@given(sc=scenarios(), data=st.data())
def test_since_other_epoch_is_never_recovered(sc: Scenario, data: st.DataObject) -> None:
    log, kept = sc.log, sc.kept
    seq = data.draw(st.integers(min_value=0, max_value=log.top + 3), label="seq")
    limit = data.draw(st.integers(min_value=1, max_value=15), label="limit")
    replay = log.since(seq, "old-epoch", limit)
    assert replay.recovered is False
    assert seqs(replay.entries) == kept[:limit]  # what is left, oldest first
    assert replay.epoch == "cur"


@settings(max_examples=200)
@given(sc=scenarios(), limit=st.integers(min_value=0, max_value=15))
def test_since_without_position_gives_latest(sc: Scenario, limit: int) -> None:
    replay = sc.log.since(None, None, limit)
    assert replay.recovered is True
    assert seqs(replay.entries) == (sc.kept[-limit:] if limit else [])


@settings(max_examples=200)
@given(sc=scenarios(), data=st.data())
def test_paging_reconstructs_exact_tail(sc: Scenario, data: st.DataObject) -> None:
    log, kept = sc.log, sc.kept
    start = data.draw(st.integers(min_value=log.first_seq - 1, max_value=log.top), label="start")
    limit = data.draw(st.integers(min_value=1, max_value=5), label="limit")
    got: list[Accepted] = []
    position = start
    for _ in range(len(kept) + 2):
        page = log.since(position, "cur", limit)
        assert page.recovered
        assert len(page.entries) <= limit
        if not page.entries:
            break
        got.extend(page.entries)
        position = page.entries[-1].seq
    else:
        pytest.fail("paging did not terminate")
    assert seqs(got) == [s for s in kept if s > start]
    assert [e.envelope.id for e in got] == [f"m{s - 1}" for s in seqs(got)]


def test_since_reports_trimmed_gap() -> None:
    log = ChannelLog("c", Retention(history_size=3), epoch="e")
    fill(log, 10)  # keeps 8, 9, 10
    assert log.first_seq == 8
    exact = log.since(7, "e", 100)
    assert exact.recovered and seqs(exact.entries) == [8, 9, 10]
    lossy = log.since(6, "e", 100)
    assert not lossy.recovered and seqs(lossy.entries) == [8, 9, 10]
    up_to_date = log.since(10, "e", 100)
    assert up_to_date.recovered and up_to_date.entries == []
    ahead = log.since(11, "e", 100)
    assert not ahead.recovered and ahead.entries == []


def test_since_on_empty_channel() -> None:
    log = ChannelLog("c", Retention(), epoch="e")
    assert log.since(0, "e", 10).recovered
    assert log.since(None, None, 10).entries == []
    assert not log.since(1, "e", 10).recovered
    assert not log.since(0, "other", 10).recovered


def test_since_after_ttl_expiry() -> None:
    log = ChannelLog("c", Retention(history_ttl_ns=5 * SECOND), epoch="e")
    fill(log, 3, now_ns=0)
    log.append(make_envelope("late"), 4 * SECOND)
    log.trim(6 * SECOND)  # the first three are older than 5 s
    assert seqs(list(log.entries())) == [4]
    assert log.since(3, "e", 10).recovered
    assert not log.since(2, "e", 10).recovered
    log.trim(10 * SECOND)
    assert len(log) == 0
    assert log.since(4, "e", 10).recovered  # nothing was missed after 4
    assert not log.since(3, "e", 10).recovered
