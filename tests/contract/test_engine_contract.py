"""The contract every engine honours. Each test runs against every engine: the memory engine and
the Redis engine, on a private redis-server and on a private Redis Cluster of three masters
(each test under its own key prefix)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from agentplex.config import EngineSettings
from agentplex.core.channel_log import Accepted, Retention
from agentplex.engine import Engine, MemoryEngine
from agentplex.engine.redis import RedisEngine
from agentplex.v1 import agent_pb2, envelope_pb2, task_pb2

_prefixes = itertools.count()


def redis_engine(url: str, cluster: bool = False) -> Callable[[Retention], Engine]:
    def make(retention: Retention) -> Engine:
        settings = EngineSettings(
            name="redis",
            redis_url=url,
            redis_cluster=cluster,
            redis_prefix=f"contract{next(_prefixes)}",
        )
        return RedisEngine(retention, settings)

    return make


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def make_engine(request: pytest.FixtureRequest) -> Callable[[Retention], Engine]:
    if request.param == "redis":
        return redis_engine(request.getfixturevalue("private_redis").url)
    if request.param == "redis-cluster":
        return redis_engine(request.getfixturevalue("private_redis_cluster").url, cluster=True)
    return MemoryEngine


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[Accepted]] = []

    def __call__(self, entries: Sequence[Accepted]) -> None:
        self.batches.append(list(entries))

    @property
    def seqs(self) -> list[tuple[str, int]]:
        return [(e.channel, e.seq) for batch in self.batches for e in batch]


@pytest.fixture
async def started(
    make_engine: Callable[[Retention], Engine],
) -> AsyncIterator[tuple[Engine, Recorder]]:
    engine = make_engine(Retention(history_size=5, dedup_window_ns=60 * 10**9))
    recorder = Recorder()
    await engine.start(recorder, node="n1")
    for channel in ("a", "b"):
        await engine.listen(channel)
    yield engine, recorder
    await engine.close()


async def delivered(recorder: Recorder, count: int) -> list[tuple[str, int]]:
    """What reached the publication handler once `count` entries did (a shared engine delivers
    through Redis, a moment after publish returns)."""
    for _ in range(500):
        if len(recorder.seqs) >= count:
            break
        await asyncio.sleep(0.01)
    return recorder.seqs


def env(channel: str, payload: bytes, id: str) -> envelope_pb2.Envelope:
    e = envelope_pb2.Envelope(id=id, channel=channel, payload=payload, sender="t")
    e.created_at.GetCurrentTime()
    e.sha256 = hashlib.sha256(payload).hexdigest()
    return e


async def test_publish_assigns_consecutive_positions_per_channel(
    started: tuple[Engine, Recorder],
) -> None:
    engine, recorder = started
    now = time.time_ns()
    out = await engine.publish(
        [env("a", b"1", "i1"), env("b", b"2", "i2"), env("a", b"3", "i3")], now
    )
    assert [(o.seq, o.duplicate) for o in out] == [(1, False), (1, False), (2, False)]
    assert out[0].epoch == out[2].epoch and out[0].epoch
    assert out[0].sha256 == hashlib.sha256(b"1").hexdigest()
    assert sorted(await delivered(recorder, 3)) == [("a", 1), ("a", 2), ("b", 1)]
    entry = next(e for batch in recorder.batches for e in batch if e.channel == "a")
    assert envelope_pb2.Envelope.FromString(entry.wire).position.seq == 1
    assert entry.envelope.payload == b"1" and entry.local


async def test_duplicates_return_the_original_and_store_nothing(
    started: tuple[Engine, Recorder],
) -> None:
    engine, recorder = started
    now = time.time_ns()
    first = await engine.publish([env("a", b"x", "same")], now)
    again = await engine.publish([env("a", b"changed", "same"), env("a", b"y", "other")], now)
    assert (
        again[0].duplicate and again[0].seq == first[0].seq and again[0].sha256 == first[0].sha256
    )
    assert (again[1].seq, again[1].duplicate) == (2, False)
    assert await delivered(recorder, 2) == [("a", 1), ("a", 2)]
    page = await engine.history("a", None, None, 10)
    assert [e.envelope.payload for e in page.entries] == [b"x", b"y"]


async def test_an_id_repeated_within_one_publish_is_a_duplicate_of_its_first(
    started: tuple[Engine, Recorder],
) -> None:
    engine, recorder = started
    out = await engine.publish(
        [env("a", b"1", "twice"), env("a", b"2", "other"), env("a", b"3", "twice")],
        time.time_ns(),
    )
    assert [(o.seq, o.duplicate) for o in out] == [(1, False), (2, False), (1, True)]
    assert out[2].sha256 == out[0].sha256
    assert await delivered(recorder, 2) == [("a", 1), ("a", 2)]
    page = await engine.history("a", None, None, 10)
    assert [e.envelope.payload for e in page.entries] == [b"1", b"2"]


async def test_over_the_dedup_size_the_oldest_id_is_forgotten_first(
    make_engine: Callable[[Retention], Engine],
) -> None:
    engine = make_engine(Retention(dedup_size=2, dedup_window_ns=60 * 10**9))
    await engine.start(lambda entries: None, node="n1")
    try:
        now = time.time_ns()  # one millisecond for all: the order of acceptance decides
        seqs = []
        for id in ("z-first", "a-second", "m-third", "a-second", "z-first"):
            (out,) = await engine.publish([env("dedup", id.encode(), id)], now)
            seqs.append((out.seq, out.duplicate))
        assert seqs == [(1, False), (2, False), (3, False), (2, True), (4, False)]
    finally:
        await engine.close()


async def test_a_full_batch_keeps_its_order_and_its_duplicates_across_the_engines_steps(
    started: tuple[Engine, Recorder],
) -> None:
    """A maximal batch (which the Redis engine sends as several pipelined script calls) takes
    positions in its own order per channel, and an id it repeats far from its first use is a
    duplicate of that."""
    engine, recorder = started
    batch = [env("a" if i % 4 else "b", b"%d" % i, f"id{i}") for i in range(1000)]
    batch[901] = env("a", b"again", "id1")  # "id1" went to "a" first, as its 1st envelope
    out = await engine.publish(batch, time.time_ns())
    seqs = {"a": 0, "b": 0}
    for i, (envelope, outcome) in enumerate(zip(batch, out, strict=True)):
        if i == 901:
            assert outcome.duplicate and outcome.seq == out[1].seq == 1
            continue
        seqs[envelope.channel] += 1
        assert (outcome.seq, outcome.duplicate) == (seqs[envelope.channel], False)
    assert seqs == {"a": 749, "b": 250}
    arrived = await delivered(recorder, 999)
    assert [seq for channel, seq in arrived if channel == "a"] == list(range(1, 750))
    assert [seq for channel, seq in arrived if channel == "b"] == list(range(1, 251))
    page = await engine.history("a", None, None, 10)  # the history keeps 5
    kept = [e.payload for i, e in enumerate(batch) if e.channel == "a" and i != 901][-5:]
    assert [e.envelope.payload for e in page.entries] == kept


async def test_history_is_bounded_and_replays_after_a_position(
    started: tuple[Engine, Recorder],
) -> None:
    engine, _ = started
    now = time.time_ns()
    await engine.publish([env("h", str(i).encode(), f"h{i}") for i in range(1, 9)], now)
    everything = await engine.history("h", None, None, 100)
    assert [e.seq for e in everything.entries] == [4, 5, 6, 7, 8]
    after = await engine.history("h", 5, everything.epoch, 100)
    assert after.recovered and [e.seq for e in after.entries] == [6, 7, 8]
    gone = await engine.history("h", 1, everything.epoch, 100)
    assert not gone.recovered and [e.seq for e in gone.entries] == [4, 5, 6, 7, 8]
    other = await engine.history("h", 5, "another-epoch", 100)
    assert not other.recovered
    limited = await engine.history("h", 4, "", 2)
    assert [e.seq for e in limited.entries] == [5, 6] and limited.top == 8


async def test_history_drops_what_is_older_than_its_ttl(
    make_engine: Callable[[Retention], Engine],
) -> None:
    """An entry older than `channels.history_ttl` leaves history (the log's oldest entry is
    checked on every publish and before every read); a position inside what was dropped is
    reported unrecovered."""
    engine = make_engine(Retention(history_size=100, history_ttl_ns=10**9))
    await engine.start(Recorder(), node="n1")
    try:
        now = time.time_ns()
        old = [env("aged", b"old", f"old{i}") for i in range(3)]
        await engine.publish(old, now - 5 * 10**9)  # accepted five seconds ago
        kept = await engine.history("aged", None, None, 100)
        assert [e.seq for e in kept.entries] == []  # a read trims too
        await engine.publish([env("aged", b"new", f"new{i}") for i in range(2)], now)
        replay = await engine.history("aged", 1, kept.epoch, 100)
        assert [e.seq for e in replay.entries] == [4, 5] and not replay.recovered
    finally:
        await engine.close()


async def test_history_of_an_unknown_channel_is_empty(started: tuple[Engine, Recorder]) -> None:
    engine, _ = started
    page = await engine.history("never", None, None, 10)
    assert page.entries == [] and page.top == 0 and page.recovered
    from_start = await engine.history("never", 0, "", 10)
    assert from_start.recovered


async def test_registry_put_get_list_delete(started: tuple[Engine, Recorder]) -> None:
    engine, _ = started
    agent = agent_pb2.Agent(card=agent_pb2.AgentCard(id="a1"), status=agent_pb2.AGENT_STATUS_ONLINE)
    await engine.put_agent(agent)
    assert (await engine.get_agent("a1")) == agent
    assert [a.card.id for a in await engine.list_agents()] == ["a1"]
    agent.status = agent_pb2.AGENT_STATUS_BUSY
    await engine.put_agent(agent)
    stored = await engine.get_agent("a1")
    assert stored is not None and stored.status == agent_pb2.AGENT_STATUS_BUSY
    removed = await engine.delete_agent("a1")
    assert removed is not None and removed.card.id == "a1"
    assert await engine.get_agent("a1") is None
    assert await engine.delete_agent("a1") is None


async def test_idempotency_keys_are_claimed_once_released_and_forgotten_with_the_task(
    started: tuple[Engine, Recorder],
) -> None:
    engine, _ = started
    assert await engine.claim_idempotency_key("k", "t1") == "t1"
    assert await engine.claim_idempotency_key("k", "t2") == "t1"
    await engine.release_idempotency_key("k", "t2")  # not the holder: nothing changes
    assert await engine.claim_idempotency_key("k", "t3") == "t1"
    await engine.release_idempotency_key("k", "t1")
    assert await engine.claim_idempotency_key("k", "t4") == "t4"
    await engine.put_task(task_pb2.Task(id="t4", idempotency_key="k"))
    await engine.delete_task("t4")
    assert await engine.get_task("t4") is None
    assert await engine.claim_idempotency_key("k", "t5") == "t5"


async def test_task_queue_order_and_events(started: tuple[Engine, Recorder]) -> None:
    engine, _ = started
    await engine.enqueue_task("low", 1, 100)
    await engine.enqueue_task("high-late", 5, 300)
    await engine.enqueue_task("high-early", 5, 200)
    await engine.enqueue_task("low", 1, 100)  # queued once
    assert await engine.pending_tasks() == ["high-early", "high-late", "low"]
    assert await engine.dequeue_task("high-late")
    assert not await engine.dequeue_task("high-late")
    assert await engine.pending_tasks() == ["high-early", "low"]
    await engine.enqueue_task("mid", 3, 50)
    assert await engine.pending_tasks(1, 1) == ["mid"]
    assert await engine.pending_tasks(1) == ["mid", "low"]
    assert await engine.pending_tasks(5, 2) == []
    for i in range(5):
        event = task_pb2.TaskEvent(task=task_pb2.Task(id="t"), message=f"e{i}")
        assert await engine.append_task_event(event, keep=3) == i + 1
    kept = await engine.task_events("t", 0)
    assert [e.number for e in kept] == [3, 4, 5]
    assert [e.message for e in await engine.task_events("t", 4)] == ["e4"]


async def test_due_deadlines_are_taken_once(started: tuple[Engine, Recorder]) -> None:
    engine, _ = started
    await engine.set_deadline("soon", 1_000_000_000)
    await engine.set_deadline("later", 5_000_000_000)
    await engine.set_deadline("gone", 2_000_000_000)
    await engine.put_task(task_pb2.Task(id="gone"))
    await engine.delete_task("gone")  # a forgotten task has no deadline left
    assert await engine.due_deadlines(500_000_000) == []
    assert await engine.due_deadlines(3_000_000_000) == ["soon"]
    assert await engine.due_deadlines(3_000_000_000) == []  # taken: no other node gets it
    assert await engine.due_deadlines(6_000_000_000) == ["later"]


async def test_node_leases_are_listed_renewed_and_forgotten(
    started: tuple[Engine, Recorder],
) -> None:
    engine, _ = started
    assert not await engine.beat("n1", 5_000_000_000)  # the first beat: no lease before
    assert not await engine.beat("n2", 2_000_000_000)
    assert await engine.beat("n1", 6_000_000_000)  # renewed
    assert await engine.nodes() == {"n1": 6_000_000_000, "n2": 2_000_000_000}
    assert await engine.expired_nodes(3_000_000_000) == ["n2"]
    assert await engine.forget_node("n2")
    assert not await engine.forget_node("n2")  # one caller cleans up
    assert await engine.nodes() == {"n1": 6_000_000_000}
